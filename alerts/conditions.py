"""When an alert is raised, and what it says.

Changes of a connection raise theirs inside the transaction that writes them (the recording and
services modules call in here): a key destroyed because it can withdraw, a key replaced, a
connection removed, a connection working again after an alert that it failed. Conditions that
time brings are raised by a periodic scan (``scan``), each in its own transaction: a key about
to expire or be deleted, a connection refused for longer than the user's threshold.

Every alert names the connection by its exchange, label and masked API Key (never more of the
key), says what happened in the product's words and the one step to take, and links to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from exchanges.explain import explain
from exchanges.formatting import connection_title, day, days_left, moment
from exchanges.models import ExchangeConnection, Status

from .models import Alert, AlertSettings
from .outbox import raise_alert, settings_for

# Refused statuses that count as failing (Temporary is the venue's trouble, not the key's).
FAILING = (
    Status.INVALID,
    Status.IP_NOT_ALLOWED,
    Status.INCORRECT_PERMISSIONS,
    Status.EXPIRED,
    Status.TRADING_EXPIRED,
)
# A key whose venue deletes it after days without a signed call is only at risk once our own
# checks have stopped succeeding: looked at once the last success is this old.
IDLE_AT_RISK_AFTER = timedelta(days=1)


def name_of(connection: ExchangeConnection) -> str:
    """ "HTX · Main account (1a2b…9f8e)": exchange, label and the API Key's masked ends."""
    title = connection_title(connection)
    return title if not connection.label else f"{title} ({connection.masked_access_key})"


def _raise(
    connection: ExchangeConnection,
    kind: str,
    key: str,
    title: str,
    happened: str,
    fix: str,
    *,
    removed: bool = False,
):
    """Raise an alert about ``connection``, named and linked; a removed one links to the list
    and is not referred to (its row is about to go)."""
    name = name_of(connection)
    link = (
        reverse("exchanges:connection-list")
        if removed
        else reverse("exchanges:connection-detail", args=[connection.pk])
    )
    return raise_alert(
        user=connection.owner,
        connection=None if removed else connection,
        kind=kind,
        dedupe_key=key,
        title=f"{name}: {title}",
        happened=happened,
        fix=fix,
        link=link,
        connection_name=name,
        exchange_name=connection.exchange_name,
    )


# --- Changes, inside the transaction that writes them ---------------------------------------


def status_changed(connection: ExchangeConnection, new: str) -> None:
    """A check changed the status (exchanges.recording): start or end a failing episode."""
    if new in FAILING and connection.failing_since is None and connection.established:
        connection.failing_since = timezone.now()
    elif new == Status.CONNECTED and connection.failing_since is not None:
        episode = _failing_key(connection)
        connection.failing_since = None
        if Alert.objects.filter(dedupe_key=episode).exists():
            prefs = settings_for(connection.owner)
            if prefs.on_failing:
                venue = connection.venue
                _raise(
                    connection,
                    Alert.Kind.RECOVERED,
                    f"recovered:{episode}",
                    "working again",
                    f"{venue.name} accepts the key again: balances are refreshing.",
                    "Nothing to do.",
                )


def key_refused_withdraw(connection: ExchangeConnection) -> None:
    """A working key gained Withdraw and was destroyed (exchanges.recording)."""
    if not settings_for(connection.owner).on_security:
        return
    said = explain(Status.WITHDRAW_ENABLED, venue=connection.venue)
    _raise(
        connection,
        Alert.Kind.WITHDRAW,
        f"withdraw:{connection.pk}:{connection.masked_access_key}",
        "key refused and deleted, it can withdraw",
        said.cause,
        said.fix,
    )


def key_replaced(connection: ExchangeConnection, old_masked: str) -> None:
    """A replacement key was installed (exchanges.keycheck)."""
    if not settings_for(connection.owner).on_security:
        return
    _raise(
        connection,
        Alert.Kind.REPLACED,
        f"replaced:{connection.pk}:{old_masked}:{connection.masked_access_key}",
        "API key replaced",
        f"The API Key {old_masked} was replaced by {connection.masked_access_key}; the old key's "
        "secret was deleted from this dashboard.",
        "If you did not do this, change your password, sign out other sessions (Settings → Sessions) "
        f"and delete both keys on {connection.exchange_name}.",
    )


def connection_removed(connection: ExchangeConnection) -> None:
    """A connection is being removed (exchanges.services), before its row goes."""
    if not settings_for(connection.owner).on_security:
        return
    _raise(
        connection,
        Alert.Kind.REMOVED,
        f"removed:{connection.pk}",
        "connection removed",
        f"The connection and its stored keys were deleted from this dashboard. The key itself "
        f"still exists on {connection.exchange_name}.",
        f"Delete the key on {connection.exchange_name} too. If you did not remove it, change your "
        "password and sign out other sessions (Settings → Sessions).",
        removed=True,
    )


# --- Time: the periodic scan ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadline:
    what: str  # key, trading, idle
    at: datetime


def _deadlines(connection: ExchangeConnection, now: datetime) -> Iterator[Deadline]:
    if connection.key_expires_at and connection.status in (Status.CONNECTED, Status.TRADING_EXPIRED):
        yield Deadline("key", connection.key_expires_at)
    if connection.trading_expires_at and connection.status == Status.CONNECTED:
        yield Deadline("trading", connection.trading_expires_at)
    # Whatever the status: it is when checks stop succeeding (refused, venue down) that it counts.
    idle = connection.idle_deletion_at
    if idle and connection.last_verified_at < now - IDLE_AT_RISK_AFTER:
        yield Deadline("idle", idle)


def _expiry_texts(connection: ExchangeConnection, deadline: Deadline, left: int) -> tuple[str, str, str]:
    venue = connection.venue
    when = f"on {day(deadline.at)} (in {left} day{'s' if left != 1 else ''})"
    addresses = f" This server's addresses: {', '.join(settings.EGRESS_IPS)}." if settings.EGRESS_IPS else ""
    rule = venue.unbound_key_rule
    bind = (
        f"On {venue.name}, bind the key to this server's IP addresses, or create a new key and use "
        "Replace keys on this connection."
        if rule
        else f"Create a new key on {venue.name} and use Replace keys on this connection before then."
    ) + addresses
    if deadline.what == "idle":
        return (
            f"key will be deleted {when}",
            f"{venue.name} deletes a key after {connection.idle_deletion_days} days without a signed call. "
            f"Our last successful check was {moment(connection.last_verified_at)}, so {venue.name} "
            f"deletes this key {when} unless a check succeeds before then.",
            "Open the connection and fix what stops our checks (its status says what), then use Refresh now.",
        )
    why = f" {rule.line(venue.name)}" if rule else ""
    if deadline.what == "trading":
        return (
            f"trading permission expires {when}",
            f"{venue.name} turns this key's trading permission off {when}.{why}",
            bind,
        )
    return (f"key expires {when}", f"{venue.name} stops accepting this key {when}.{why}", bind)


def _expiry_due(
    connection: ExchangeConnection, prefs: AlertSettings, now: datetime
) -> list[tuple[str, Deadline]]:
    """(dedupe key, deadline) of each expiry alert this connection is due, by its own fields."""
    due = []
    for deadline in _deadlines(connection, now):
        if deadline.at <= now:
            continue  # past: the check says Expired, and the failing alert tells it
        left = days_left(deadline.at, now)
        crossed = [t for t in prefs.expiry_thresholds if left <= t]
        if crossed:
            # One alert per threshold and deadline, the smallest threshold crossed.
            due.append((f"{_expiry_base(connection, deadline)}:{min(crossed)}", deadline))
    return due


def _expiry_base(connection: ExchangeConnection, deadline: Deadline) -> str:
    return f"expiring:{connection.pk}:{deadline.what}:{deadline.at:%Y%m%d}"


def _expiry_alert(connection: ExchangeConnection, key: str, deadline: Deadline, now: datetime) -> int:
    # Never two alerts of one deadline within a day (a key connected 1.5 days before it dies
    # crosses 7 and then 1 within hours). A deadline computed from whole days left (HTX's
    # validDays) moves by hours from one check to the next, across a date too: a deadline within
    # a day of one already told about at this threshold is the same deadline.
    prefix = f"expiring:{connection.pk}:{deadline.what}"
    threshold = key.rsplit(":", 1)[1]
    told = [f"{prefix}:{deadline.at + timedelta(days=d):%Y%m%d}:{threshold}" for d in (-1, 1)]
    recent = Alert.objects.filter(
        dedupe_key__startswith=f"{prefix}:", created_at__gt=now - timedelta(days=1)
    ).exists()
    if recent or Alert.objects.filter(dedupe_key__in=told).exists():
        return 0
    title, happened, fix = _expiry_texts(connection, deadline, days_left(deadline.at, now))
    return bool(_raise(connection, Alert.Kind.EXPIRING, key, title, happened, fix))


def _failing_key(connection: ExchangeConnection) -> str:
    return f"failing:{connection.pk}:{connection.failing_since:%Y%m%dT%H%M%S.%f}"


def _failing_due(connection: ExchangeConnection, prefs: AlertSettings, now: datetime) -> bool:
    return (
        prefs.on_failing
        and connection.failing_since is not None
        and connection.status in FAILING
        and now - connection.failing_since >= timedelta(minutes=prefs.failing_minutes)
    )


def _failing_alert(connection: ExchangeConnection) -> int:
    said = explain(connection.status, connection.error_kind, connection.error_detail, venue=connection.venue)
    since = moment(connection.failing_since)
    return bool(
        _raise(
            connection,
            Alert.Kind.FAILING,
            _failing_key(connection),
            said.title,
            f"{connection.get_status_display()} since {since}. {said.cause}",
            said.fix or "Open the connection to see what the exchange said.",
        )
    )


def _due(connection: ExchangeConnection, prefs: AlertSettings, now: datetime) -> list[str]:
    """Dedupe keys of every alert the connection is due now, judged from its fields alone."""
    keys = []
    if prefs.on_expiry:
        keys += [key for key, _ in _expiry_due(connection, prefs, now)]
    if _failing_due(connection, prefs, now):
        keys.append(_failing_key(connection))
    return keys


def _raise_due(pk: int, owner, prefs: AlertSettings, now: datetime) -> int:
    """Raise what the connection is due, judged again on the row locked for this transaction
    (a check may have changed it since it was read)."""
    raised = 0
    with transaction.atomic():
        connection = ExchangeConnection.objects.select_for_update().filter(pk=pk).first()
        if connection is None:
            return 0
        connection.owner = owner
        if prefs.on_expiry:
            for key, deadline in _expiry_due(connection, prefs, now):
                raised += _expiry_alert(connection, key, deadline, now)
        if _failing_due(connection, prefs, now):
            raised += _failing_alert(connection)
    return raised


def scan(now: datetime | None = None) -> int:
    """Raise what time has brought: keys about to die, connections failing too long. Rows with
    nothing new due cost no query beyond the one that reads them (and one per 500 for the alerts
    already raised), so a scan of thousands of keys a month from expiry stays cheap."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.ALERT_EXPIRY_MAX_DAYS)
    candidates = (
        ExchangeConnection.objects.filter(established=True, access_key_fingerprint__isnull=False)
        .filter(
            Q(failing_since__isnull=False, status__in=FAILING)
            | Q(key_expires_at__lte=horizon)
            | Q(trading_expires_at__lte=horizon)
            | Q(idle_deletion_days__isnull=False, last_verified_at__lt=now - IDLE_AT_RISK_AFTER)
        )
        .select_related("owner", "owner__alert_settings")
        .order_by("pk")
    )
    raised = 0
    chunk: list[tuple[ExchangeConnection, AlertSettings, list[str]]] = []
    for candidate in candidates.iterator(chunk_size=500):
        prefs = getattr(candidate.owner, "alert_settings", None) or AlertSettings(user=candidate.owner)
        keys = _due(candidate, prefs, now)
        if keys:
            chunk.append((candidate, prefs, keys))
        if len(chunk) >= 500:
            raised += _raise_chunk(chunk, now)
            chunk = []
    return raised + _raise_chunk(chunk, now)


def _raise_chunk(chunk: list[tuple[ExchangeConnection, AlertSettings, list[str]]], now: datetime) -> int:
    wanted = {key for _, _, keys in chunk for key in keys}
    raised_before = set(Alert.objects.filter(dedupe_key__in=wanted).values_list("dedupe_key", flat=True))
    raised = 0
    for candidate, prefs, keys in chunk:
        if set(keys) - raised_before:
            raised += _raise_due(candidate.pk, candidate.owner, prefs, now)
    return raised
