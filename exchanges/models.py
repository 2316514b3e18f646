from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from fernet_fields import EncryptedTextField

from .fields import ExactDecimalField

# A replacement key waiting for its check (see ExchangeConnection.pending_*).
PENDING_KEY_FIELDS = ["pending_access_key", "pending_secret_key", "pending_passphrase", "pending_fingerprint"]
# A submission no worker has taken for this long is shown as queued (awaiting_worker).
QUEUED_NOTICE_AFTER = timedelta(seconds=10)
# A row in flight asks for its state this often (_connection_row.html): briefly at first, while the
# user watches a check that usually ends within a second, then at a pace a forgotten tab can keep.
POLL_FAST, POLL_SLOW, POLL_FAST_FOR = "500ms", "2s", timedelta(seconds=10)


class Status(models.TextChoices):
    VERIFYING = "verifying", "Verifying"
    CONNECTED = "connected", "Connected"
    EXPIRED = "expired", "Expired"
    WITHDRAW_ENABLED = "withdraw_enabled", "Withdrawal enabled"
    INCORRECT_PERMISSIONS = "incorrect_permissions", "Incorrect permissions"
    # The key reads, but the venue took its trading right away (some venues do so after a
    # while without an IP restriction): balances keep refreshing.
    TRADING_EXPIRED = "trading_expired", "Trading expired"
    INVALID = "invalid", "Invalid"
    IP_NOT_ALLOWED = "ip_not_allowed", "IP not allowed"
    TEMPORARY = "temporary", "Temporary issue"


class ConnectionQuerySet(models.QuerySet):
    def for_owner(self, user) -> ConnectionQuerySet:
        return self.filter(owner=user)

    def unclaimed(self, now) -> ConnectionQuerySet:
        """Rows no worker is holding (a claim past its expiry is free again)."""
        return self.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))

    def needing_check(self, now) -> ConnectionQuerySet:
        """Rows waiting to be verified, holding a replacement key to verify, or due for their
        next check."""
        return self.filter(
            Q(access_key_fingerprint__isnull=False, status=Status.VERIFYING)
            | Q(pending_fingerprint__isnull=False)
            | Q(access_key_fingerprint__isnull=False, next_check_at__lte=now)
        )


class ExchangeConnection(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_connections"
    )
    # A venue id (exchanges.registry): the choices come from settings.VENUES, not a migration.
    exchange = models.CharField(max_length=32, default="htx")
    label = models.CharField(max_length=64, blank=True)

    # Key material. Encrypted at rest (Fernet, FERNET_KEYS); NULL once destroyed. The keyed
    # fingerprint finds duplicates without decrypting; head/tail are for display only.
    access_key = EncryptedTextField(null=True, editable=False)
    secret_key = EncryptedTextField(null=True, editable=False)
    # A third credential some venues have (a passphrase): a secret like the Secret Key.
    passphrase = EncryptedTextField(null=True, editable=False)
    # NULL (not "") once the key is destroyed, so the unique constraint ignores those rows.
    access_key_fingerprint = models.CharField(max_length=64, null=True, editable=False)  # noqa: DJ001
    access_key_head = models.CharField(max_length=4, blank=True, editable=False)
    access_key_tail = models.CharField(max_length=4, blank=True, editable=False)

    status = models.CharField(max_length=32, choices=Status.choices, default=Status.VERIFYING)
    error_kind = models.CharField(max_length=32, blank=True)  # exchanges.venues.htx.errors.ErrorKind
    error_detail = models.TextField(blank=True)  # raw HTX code and message, never a secret
    # True once the key has verified successfully at least once.
    established = models.BooleanField(default=False)

    # The venue's site (region) the account lives on, for venues with several (a key works only
    # on its own site's host); "" for venues with one.
    site = models.CharField(max_length=32, blank=True)

    # What the venue said about the key at the last check (exchanges.venues.kit.types.KeyFacts).
    account_uid = models.CharField(max_length=64, blank=True)  # the venue's account id
    # False when the venue would not describe the key (HTX sub-user keys): permissions, IPs and
    # expiry unknown.
    key_info_known = models.BooleanField(default=True)
    permissions = models.TextField(blank=True)  # the venue's names of the permissions on, comma-separated
    # [[name, on, danger, required]] in the venue's words (kit.types.Flag)
    key_flags = models.JSONField(default=list, blank=True)
    ip_addresses = models.TextField(blank=True)
    ip_restricted = models.BooleanField(null=True, blank=True)  # None: not known
    key_expires_at = models.DateTimeField(null=True, blank=True)
    trading_expires_at = models.DateTimeField(null=True, blank=True)  # the trading right's expiry
    # The venue deletes the key after this many days without a signed call (the last one we made
    # is last_verified_at); None: no such rule for this key.
    idle_deletion_days = models.PositiveSmallIntegerField(null=True, blank=True)
    clock_skew_ms = models.IntegerField(null=True, blank=True)
    # What the venue's client kept from the last check to save calls at the next one
    # (kit.types.KeyFacts.keep; HTX: the key's account list; never a secret). None: nothing.
    venue_kept = models.JSONField(null=True, blank=True, editable=False)

    total_usdt = ExactDecimalField(null=True, blank=True)
    total_btc = ExactDecimalField(null=True, blank=True)
    # From the last good snapshot, kept on the row so the list needs no extra query.
    accounts_read = models.JSONField(default=list, blank=True)  # wallets (account types) read
    accounts_unread = models.JSONField(default=list, blank=True)  # [{"type", "id", "reason"}]
    unpriced = models.JSONField(default=list, blank=True)  # currencies with no route to USDT

    # A replacement key waiting for its check (Replace keys): the current key stays in use
    # until the new one has proved to be a working key of the same account on the venue.
    pending_access_key = EncryptedTextField(null=True, editable=False)
    pending_secret_key = EncryptedTextField(null=True, editable=False)
    pending_passphrase = EncryptedTextField(null=True, editable=False)
    pending_fingerprint = models.CharField(max_length=64, null=True, editable=False)  # noqa: DJ001
    replacement_error = models.TextField(blank=True)  # why the last replacement was refused

    latest_snapshot = models.ForeignKey(
        "BalanceSnapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Scheduling: the database is the source of truth for pending work, not the broker.
    attempts = models.PositiveIntegerField(default=0)  # consecutive transient failures
    next_check_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)  # any finished check
    # When the connection last went from working to refused (alerts.conditions.FAILING); cleared
    # when it works again. A pause in between (Temporary) does not restart the count.
    failing_since = models.DateTimeField(null=True, blank=True)
    refresh_requested_at = models.DateTimeField(null=True, blank=True)  # "Refresh now"

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One access key, one connection, in the whole system, once the venue accepted it.
            # A submission not yet checked may hold a key another account uses: whoever does
            # not hold the secret is told nothing about it; whoever does is told after the
            # check (keycheck's "already connected", which this constraint settles in a race).
            # A replacement key is held the same way until it is installed.
            models.UniqueConstraint(
                fields=["exchange", "access_key_fingerprint"],
                condition=Q(access_key_fingerprint__isnull=False, established=True),
                name="unique_established_key_per_exchange",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_check_at"]),
            # The form's and the worker's look-ups of a key by its fingerprint.
            models.Index(fields=["exchange", "access_key_fingerprint"], name="key_fingerprint_idx"),
            models.Index(fields=["exchange", "pending_fingerprint"], name="pending_fingerprint_idx"),
            models.Index(fields=["failing_since"], name="failing_since_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.exchange_name} {self.masked_access_key} ({self.status})"

    @property
    def venue(self):
        from .registry import get_or_retired

        return get_or_retired(self.exchange)

    @property
    def exchange_name(self) -> str:
        from .registry import name_of

        return name_of(self.exchange)

    @property
    def site_label(self) -> str:
        """The site as the venue names it (its choice label), for venues with several."""
        for spec in self.venue.credential_fields:
            for value, label in spec.choices:
                if spec.name == "site" and value == self.site:
                    return label
        return ""

    @property
    def idle_deletion_at(self):
        """When the venue would delete the key if no signed call were made after the last one
        (our refreshes keep it from happening)."""
        if self.idle_deletion_days is None or self.last_verified_at is None:
            return None
        return self.last_verified_at + timedelta(days=self.idle_deletion_days)

    @property
    def masked_access_key(self) -> str:
        return f"{self.access_key_head}…{self.access_key_tail}" if self.access_key_head else "—"

    @property
    def display_name(self) -> str:
        return self.label or self.exchange_name

    @property
    def has_keys(self) -> bool:
        return self.access_key_fingerprint is not None

    @property
    def replacing(self) -> bool:
        return self.pending_fingerprint is not None

    @property
    def refreshing(self) -> bool:
        """A "Refresh now" the worker has not finished yet."""
        requested = self.refresh_requested_at
        return requested is not None and (self.last_checked_at is None or self.last_checked_at < requested)

    @property
    def awaiting_worker(self) -> bool:
        """A submission no worker is checking: its message could not be sent (the broker was
        down, see services.connection_check_not_sent) or nobody has taken it for a while. The
        sweeper queues it again; the user is told verification is queued, not lost."""
        now = timezone.now()
        if self.status != Status.VERIFYING or (self.claimed_until and self.claimed_until > now):
            return False
        return self.next_check_at is not None or self.updated_at < now - QUEUED_NOTICE_AFTER

    @property
    def not_sent(self) -> bool:
        """The broker refused this submission's check (services.connection_check_not_sent), as
        opposed to a check that is queued behind others."""
        return self.status == Status.VERIFYING and self.next_check_at is not None

    @property
    def settled(self) -> bool:
        """Nothing in flight: no polling needed."""
        return self.status != Status.VERIFYING and not self.refreshing and not self.replacing

    @property
    def poll_every(self) -> str:
        """How often a row in flight polls: fast for the first seconds after the user's action
        (a new key, Refresh now and a replacement all stamp updated_at), then slower."""
        return POLL_FAST if self.updated_at > timezone.now() - POLL_FAST_FOR else POLL_SLOW


class BalanceSnapshot(models.Model):
    connection = models.ForeignKey(ExchangeConnection, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(auto_now_add=True, db_index=True)
    total_usdt = ExactDecimalField()
    total_btc = ExactDecimalField(null=True)
    account_types = models.JSONField(default=list)  # wallets (account types) that were read
    accounts_unread = models.JSONField(default=list)  # [{"type", "id", "reason"}]
    unpriced = models.JSONField(default=list)  # currencies with no route to USDT
    # Balance lines that are neither holdings nor debt (e.g. loan-available), kept as sent.
    other_lines = models.JSONField(default=list)

    class Meta:
        ordering = ["-taken_at", "-id"]
        get_latest_by = "taken_at"

    def __str__(self) -> str:
        return f"{self.total_usdt} USDT at {self.taken_at:%Y-%m-%d %H:%M}"


class BalanceLine(models.Model):
    # No index of its own: the unique constraint's index below starts with the snapshot and serves
    # every lookup by snapshot (a second one cost ~10 % of the history's size, docs/performance.md).
    snapshot = models.ForeignKey(
        BalanceSnapshot, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    account_type = models.CharField(max_length=32, default="spot")
    currency = models.CharField(max_length=32)
    available = ExactDecimalField()  # free to trade (HTX "trade")
    in_orders = ExactDecimalField()  # held by open orders (HTX "frozen")
    debt = ExactDecimalField(default=0)  # borrowed + interest (margin), zero or negative
    total = ExactDecimalField()  # available + in orders
    price_usdt = ExactDecimalField(null=True)
    value_usdt = ExactDecimalField(null=True)

    class Meta:
        ordering = ["account_type", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "account_type", "currency"], name="one_line_per_account_currency"
            )
        ]

    def __str__(self) -> str:
        return f"{self.total} {self.currency.upper()} ({self.account_type})"


class SnapshotPruneMark(models.Model):
    """Where the last snapshots_prune finished (one row), so that the next one looks only at the
    snapshots that have aged into a coarser bucket, arrived, or stopped being a connection's
    latest since then, instead of every snapshot kept."""

    pruned_at = models.DateTimeField()  # the `now` that prune used
    max_snapshot_id = models.BigIntegerField()  # the newest snapshot it had seen
    hourly_days = models.PositiveIntegerField()  # the settings it pruned with
    daily_days = models.PositiveIntegerField()
    # Latest snapshots older than a day, left out of their bucket because they were latest.
    protected = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"snapshots pruned at {self.pruned_at:%Y-%m-%d %H:%M}"


class ConnectionEvent(models.Model):
    connection = models.ForeignKey(ExchangeConnection, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=32, choices=Status.choices)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.status}: {self.message}"


class SeenAddress(models.Model):
    """An address an exchange said it saw our requests come from (its refusal of a key bound to
    other IPs names the caller's address), per venue and site, with when it was last said.

    Kept in the database rather than Redis: pages show it as a fact ("seen by … on 1 Dec"), pages
    render from the database, and it must survive a Redis restart. It is written only when a
    refusal names an address, one row per venue, site and address, so the table stays tiny."""

    exchange = models.CharField(max_length=32)
    site = models.CharField(max_length=32, blank=True)
    ip = models.GenericIPAddressField()
    first_seen_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["exchange", "site", "ip"], name="one_seen_address_per_venue_site")
        ]

    def __str__(self) -> str:
        where = f"{self.exchange}/{self.site}" if self.site else self.exchange
        return f"{where} saw {self.ip} at {self.seen_at:%Y-%m-%d %H:%M}"
