"""Writing what a check found: the key's facts and status, a balance snapshot, a failure with
its backoff, a refused replacement. Every write happens only while the check's claim holds."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.services import security_log
from alerts import conditions as alerts

from . import rows
from .claims import next_check, still_ours, still_ours_many
from .egress import normalise
from .explain import caller_ip
from .models import (
    PENDING_KEY_FIELDS,
    BalanceLine,
    BalanceSnapshot,
    ConnectionEvent,
    ExchangeConnection,
    SeenAddress,
    Status,
)
from .venues.kit.errors import ErrorKind, VenueError
from .venues.kit.types import KeyFacts

if TYPE_CHECKING:
    from .keycheck import BalanceReport

logger = logging.getLogger(__name__)

_STATUS_BY_KIND = {
    ErrorKind.INVALID_ACCESS_KEY: Status.INVALID,
    ErrorKind.INVALID_SIGNATURE: Status.INVALID,
    ErrorKind.LOGIN_REQUIRED: Status.INVALID,
    ErrorKind.KEY_IP_OR_PERMISSION: Status.INVALID,
    ErrorKind.INVALID_PASSPHRASE: Status.INVALID,
    ErrorKind.WRONG_ENVIRONMENT: Status.INVALID,
    ErrorKind.IP_NOT_ALLOWED: Status.IP_NOT_ALLOWED,
    ErrorKind.KEY_EXPIRED: Status.EXPIRED,
    ErrorKind.NO_PERMISSION: Status.INCORRECT_PERMISSIONS,
    ErrorKind.FORBIDDEN: Status.INCORRECT_PERMISSIONS,
}

# What _store_facts sets.
FACT_FIELDS = [
    "account_uid",
    "key_info_known",
    "permissions",
    "key_flags",
    "ip_addresses",
    "ip_restricted",
    "key_expires_at",
    "trading_expires_at",
    "idle_deletion_days",
    "clock_skew_ms",
    "venue_kept",
]

# What a check writes. Saving only these keeps a change the user made meanwhile (a new label,
# a replacement key, a "Refresh now") instead of overwriting it with the worker's stale copy.
CHECK_FIELDS = [
    "status",
    "error_kind",
    "error_detail",
    "established",
    *FACT_FIELDS,
    "site",
    "total_usdt",
    "total_btc",
    "accounts_read",
    "accounts_unread",
    "unpriced",
    "latest_snapshot",
    "attempts",
    "next_check_at",
    "claimed_until",
    "last_verified_at",
    "last_refreshed_at",
    "last_error_at",
    "last_checked_at",
    "failing_since",
    "replacement_error",
    "updated_at",
]
# Written only when a check destroys the key (a refused or withdraw-enabled key): rewriting
# the encrypted key on every refresh would cost two encryptions and a larger UPDATE for nothing.
KEY_FIELDS = [
    "access_key",
    "secret_key",
    "passphrase",
    "access_key_fingerprint",
    "access_key_head",
    "access_key_tail",
]


def _fields_to_save(connection: ExchangeConnection) -> list[str]:
    return CHECK_FIELDS + KEY_FIELDS if getattr(connection, "keys_destroyed", False) else CHECK_FIELDS


def _set_status(connection: ExchangeConnection, status: str, message: str) -> None:
    if status != connection.status:
        ConnectionEvent.objects.create(connection=connection, status=status, message=message)
        alerts.status_changed(connection, status)
    connection.status = status


def _destroy_keys(connection: ExchangeConnection) -> None:
    connection.keys_destroyed = True  # not a field: tells the save to write the key fields
    connection.access_key = None
    connection.secret_key = None
    connection.passphrase = None
    connection.access_key_fingerprint = None
    if connection.error_kind in (ErrorKind.INVALID_ACCESS_KEY, ErrorKind.KEY_IP_OR_PERMISSION):
        # The venue did not know what was typed as the API Key: it may have been the secret,
        # pasted into the wrong field, so not even its first and last characters are kept.
        connection.access_key_head = connection.access_key_tail = ""


def _after_refusal(connection: ExchangeConnection) -> None:
    """A key the venue refused: drop it if it never worked; otherwise keep it and look again
    now and then, so a fix made on the venue (IP list, permissions) brings it back by itself."""
    if connection.established:
        connection.next_check_at = next_check(connection, settings.RECHECK_REFUSED_SECONDS)
    else:
        _destroy_keys(connection)
        connection.next_check_at = None


def _store_facts(connection: ExchangeConnection, facts: KeyFacts) -> None:
    connection.account_uid = facts.account_uid or ""
    connection.key_info_known = facts.known
    connection.permissions = ",".join(facts.permissions)
    connection.key_flags = [[flag.name, flag.on, flag.danger, flag.required] for flag in facts.flags]
    connection.ip_addresses = ",".join(facts.ip_addresses)
    connection.ip_restricted = facts.ip_restricted
    connection.key_expires_at = facts.key_expires_at
    connection.trading_expires_at = facts.trading_expires_at
    connection.idle_deletion_days = facts.idle_deletion_days
    connection.clock_skew_ms = facts.skew_ms
    connection.venue_kept = facts.keep


def record_key(
    connection: ExchangeConnection,
    facts: KeyFacts,
    status: str,
    kind: str,
    balances: BalanceReport | None,
) -> str | None:
    now = timezone.now()
    venue = connection.venue
    with transaction.atomic():
        if not still_ours(connection):
            return None
        _store_facts(connection, facts)
        if facts.site and facts.site != connection.site:
            # The key answered on another site of the venue than the one chosen: use that one.
            connection.site = facts.site
            ConnectionEvent.objects.create(
                connection=connection,
                status=connection.status,
                message=f"{venue.name} knows this key on {connection.site_label}: switched to that site.",
            )
        connection.last_verified_at = connection.last_checked_at = now
        connection.error_kind = kind
        # What the venue said about the key, for the "Details from <venue>" of a refusal.
        working = status == Status.CONNECTED or not facts.known
        connection.error_detail = "" if working else facts.summary
        connection.attempts = 0
        connection.claimed_until = None
        connection.replacement_error = ""  # a refused replacement is reported until the next check
        if status == Status.CONNECTED:
            message = f"Key verified with {venue.name}"
        elif status == Status.TRADING_EXPIRED:
            message = f"{venue.name} turned this key's trading permission off; balances are still read"
        else:
            message = f"{venue.name} reports permissions: {connection.permissions or 'none'}"
        _set_status(connection, status, message)
        if balances is not None:
            if not connection.established:
                # Logged once the venue has accepted the key, so its masked ends are a real API Key.
                security_log(
                    user=connection.owner,
                    kind=SecurityEvent.Kind.KEY_ADDED,
                    detail=f"{venue.name} {connection.masked_access_key}",
                )
            connection.established = True
            _save_snapshot(connection, balances)
            connection.next_check_at = next_check(connection, connection.owner.refresh_seconds)
            if status != Status.CONNECTED:
                connection.last_error_at = now
        else:
            connection.last_error_at = now
            if status == Status.WITHDRAW_ENABLED:
                # A key that can withdraw is destroyed as soon as the venue says so.
                _destroy_keys(connection)
                if connection.established:
                    security_log(
                        user=connection.owner,
                        kind=SecurityEvent.Kind.KEY_REMOVED,
                        detail=f"{connection.masked_access_key}: {venue.name} reports Withdraw permission",
                    )
                    alerts.key_refused_withdraw(connection)
                connection.next_check_at = None
            else:
                _after_refusal(connection)
        connection.save(update_fields=_fields_to_save(connection))
    return status


def plain_refresh(connection: ExchangeConnection, facts: KeyFacts, status: str, kind: str, balances) -> bool:
    """Whether ``record_key`` would write nothing but the key's facts, a new snapshot and the
    refresh's times: a working key that stays Connected, with nothing to report or reset, on the
    site it was on. Almost every refresh of a wave is one; ``record_refreshes`` writes a batch
    of them in a few queries."""
    return (
        balances is not None
        and status == Status.CONNECTED == connection.status
        and kind == connection.error_kind == ""
        and connection.established
        and not connection.replacing
        and connection.error_detail == ""
        and connection.attempts == 0
        and connection.replacement_error == ""
        and connection.failing_since is None
        and (not facts.site or facts.site == connection.site)
    )


# What record_refreshes writes on each connection: what record_key changes on a plain refresh.
REFRESH_FIELDS = [
    *FACT_FIELDS,
    "total_usdt",
    "total_btc",
    "accounts_read",
    "accounts_unread",
    "unpriced",
    "latest_snapshot",
    "next_check_at",
    "claimed_until",
    "last_verified_at",
    "last_refreshed_at",
    "last_checked_at",
    "updated_at",
]


def record_refreshes(
    refreshes: list[tuple[ExchangeConnection, KeyFacts, BalanceReport]],
) -> list[ExchangeConnection]:
    """``record_key`` for a batch of plain refreshes (``plain_refresh``), in one transaction and
    five queries whatever the batch's size: lock the rows still ours, insert their snapshots,
    then their lines, update the rows. Rows whose claim was taken over are skipped, as
    ``record_key`` skips one. Returns the connections written."""
    if not refreshes:
        return []
    found = {connection.pk: (facts, balances) for connection, facts, balances in refreshes}
    with transaction.atomic():
        ours = still_ours_many([connection for connection, _, _ in refreshes])
        if not ours:
            return []
        now = timezone.now()
        snapshot_ids = _insert_snapshots([(connection, found[connection.pk][1]) for connection in ours], now)
        for connection, snapshot_id in zip(ours, snapshot_ids, strict=True):
            facts, balances = found[connection.pk]
            _store_facts(connection, facts)
            connection.last_verified_at = connection.last_checked_at = now
            connection.claimed_until = None
            _show_snapshot(connection, snapshot_id, now, balances)
            connection.next_check_at = next_check(connection, connection.owner.refresh_seconds)
            connection.updated_at = now
        rows.update_each(ours, REFRESH_FIELDS)
    return ours


def remember_seen_address(connection: ExchangeConnection, error: VenueError) -> None:
    """Keep the address the venue saw our request come from, when its refusal names it: the
    dialogs and guides show it, and compare it with EGRESS_IPS."""
    named = getattr(error, "ip", None) or caller_ip(error.kind, error.detail)
    try:
        ip = normalise(named or "")
    except ValueError:
        return
    SeenAddress.objects.update_or_create(
        exchange=connection.exchange, site=connection.site, ip=ip, defaults={"seen_at": timezone.now()}
    )


def record_failure(connection: ExchangeConnection, error: VenueError) -> str | None:
    logger.info("%s check of connection %s failed: %s", connection.venue.name, connection.pk, error)
    remember_seen_address(connection, error)
    with transaction.atomic():
        if not still_ours(connection):
            return None
        connection.error_kind = error.kind
        connection.error_detail = error.detail[:1000]
        connection.last_error_at = connection.last_checked_at = timezone.now()
        connection.claimed_until = None
        if error.permanent:
            _set_status(connection, _STATUS_BY_KIND.get(error.kind, Status.INVALID), error.detail)
            _after_refusal(connection)
        else:
            # Keep the key and the last good balance; try again with growing pauses, and never
            # sooner than the venue asked (Retry-After).
            _set_status(connection, Status.TEMPORARY, error.detail)
            delay = min(settings.RETRY_BASE_SECONDS * 2**connection.attempts, settings.RETRY_MAX_SECONDS)
            connection.attempts += 1
            connection.next_check_at = next_check(connection, delay)
            if error.retry_after:
                # The jitter may shorten a pause; never below what the venue asked for.
                asked = timezone.now() + timedelta(seconds=error.retry_after)
                connection.next_check_at = max(connection.next_check_at, asked)
        connection.save(update_fields=_fields_to_save(connection))
    return connection.status


def refuse_key_in_use(connection: ExchangeConnection, kind: str) -> str | None:
    """A new key the venue accepted that another connection already holds: told as such (the
    submitter proved the secret) and not stored twice."""
    with transaction.atomic():
        if not still_ours(connection):
            return None
        connection.error_kind = kind
        connection.error_detail = ""  # our verdict, not the venue's
        connection.last_error_at = connection.last_checked_at = timezone.now()
        connection.claimed_until = None
        connection.attempts = 0
        _set_status(connection, Status.INVALID, "Key already connected here: not stored twice")
        _destroy_keys(connection)
        connection.next_check_at = None
        connection.save(update_fields=_fields_to_save(connection))
    return connection.status


def refuse_replacement(connection: ExchangeConnection, reason: str) -> str | None:
    with transaction.atomic():
        if not still_ours(connection):
            return None
        connection.pending_access_key = connection.pending_secret_key = None
        connection.pending_passphrase = connection.pending_fingerprint = None
        connection.replacement_error = reason
        connection.claimed_until = None
        connection.save(
            update_fields=[*PENDING_KEY_FIELDS, "replacement_error", "claimed_until", "updated_at"]
        )
        ConnectionEvent.objects.create(
            connection=connection, status=connection.status, message=f"New key refused: {reason}"
        )
    return connection.status


def _save_snapshot(connection: ExchangeConnection, balances: BalanceReport) -> None:
    now = timezone.now()
    (snapshot_id,) = _insert_snapshots([(connection, balances)], now)
    _show_snapshot(connection, snapshot_id, now, balances)


def _insert_snapshots(found: list[tuple[ExchangeConnection, BalanceReport]], taken_at) -> list[int]:
    """One snapshot per connection with its lines, in two INSERTs whatever their number."""
    snapshot_ids = rows.insert(
        BalanceSnapshot,
        [_snapshot_values(connection, balances, taken_at) for connection, balances in found],
        returning_pks=True,
    )
    rows.insert(
        BalanceLine,
        [
            {"snapshot": snapshot_id, **line}
            for (_, balances), snapshot_id in zip(found, snapshot_ids, strict=True)
            for line in _line_values(balances)
        ],
    )
    return snapshot_ids


def _snapshot_values(connection: ExchangeConnection, balances: BalanceReport, taken_at) -> dict:
    valuation = balances.valuation
    return {
        "connection": connection,
        "taken_at": taken_at,
        "total_usdt": valuation.total_usdt,
        "total_btc": valuation.total_btc,
        "account_types": list(valuation.account_types),
        "accounts_unread": balances.unread,
        "unpriced": list(valuation.unpriced),
        "other_lines": [
            {"account_type": o.wallet, "currency": o.asset, "type": o.type, "balance": str(o.balance)}
            for o in valuation.other_lines
        ],
    }


def _line_values(balances: BalanceReport) -> list[dict]:
    return [
        {
            "account_type": h.account_type,
            "currency": h.currency,
            "available": h.available,
            "in_orders": h.in_orders,
            "debt": h.debt,
            "total": h.total,
            "price_usdt": h.price_usdt,
            "value_usdt": h.value_usdt,
        }
        for h in balances.valuation.holdings
    ]


def _show_snapshot(
    connection: ExchangeConnection, snapshot_id: int, taken_at, balances: BalanceReport
) -> None:
    """The connection's own copy of its latest snapshot, which the pages read."""
    valuation = balances.valuation
    connection.total_usdt = valuation.total_usdt
    connection.total_btc = valuation.total_btc
    connection.accounts_read = list(valuation.account_types)
    connection.accounts_unread = balances.unread
    connection.unpriced = list(valuation.unpriced)
    connection.latest_snapshot_id = snapshot_id
    connection.last_refreshed_at = taken_at
