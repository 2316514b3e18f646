"""The worker's check of a key with HTX: verifying a new key, refreshing a connected one, and
installing a replacement key. Workers call ``connection_check`` with ids; HTX is only ever
called from here, never while rendering a page.

One routine serves verify and refresh: every check re-reads what HTX says about the key (so a
key that gained Withdraw permission is caught) and then its balances.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.services import security_log
from exchanges.venues.htx.client import HtxClient
from exchanges.venues.htx.errors import ErrorKind, HtxError
from exchanges.venues.kit.gate import Gate, GateUnavailable
from exchanges.venues.htx.types import Account, ApiKeyInfo

from .explain import explain
from .models import (
    PENDING_KEY_FIELDS,
    BalanceLine,
    BalanceSnapshot,
    ConnectionEvent,
    ExchangeConnection,
    Status,
)
from .valuation import Valuation, value_balances

logger = logging.getLogger(__name__)

TICKERS_CACHE_KEY = "htx:tickers:v1"
TICKERS_LOCK_KEY = "htx:tickers:lock"
TICKERS_LOCK_SECONDS = 15
TICKERS_WAIT_STEPS, TICKERS_WAIT_STEP_SECONDS = 20, 0.1
# Each process also keeps the shared table for a few seconds, so a refresh wave does not read
# and decode it from Redis once per check.
TICKERS_MEMO_SECONDS = 5
_tickers_memo: tuple[float, dict[str, Decimal]] | None = None

_STATUS_BY_KIND = {
    ErrorKind.INVALID_ACCESS_KEY: Status.INVALID,
    ErrorKind.INVALID_SIGNATURE: Status.INVALID,
    ErrorKind.LOGIN_REQUIRED: Status.INVALID,
    ErrorKind.IP_NOT_ALLOWED: Status.IP_NOT_ALLOWED,
    ErrorKind.KEY_EXPIRED: Status.EXPIRED,
    ErrorKind.NO_PERMISSION: Status.INCORRECT_PERMISSIONS,
    ErrorKind.FORBIDDEN: Status.INCORRECT_PERMISSIONS,
}


# What a check writes. Saving only these keeps a change the user made meanwhile (a new label,
# a replacement key, a "Refresh now") instead of overwriting it with the worker's stale copy.
_CHECK_FIELDS = [
    "status",
    "error_kind",
    "error_detail",
    "established",
    "htx_uid",
    "key_info_known",
    "permissions",
    "ip_addresses",
    "key_expires_at",
    "clock_skew_ms",
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
    "replacement_error",
    "updated_at",
]
# Written only when a check destroys the key (a refused or withdraw-enabled key): rewriting
# the encrypted key on every refresh would cost two encryptions and a larger UPDATE for nothing.
_KEY_FIELDS = ["access_key", "secret_key", "access_key_fingerprint", "access_key_head", "access_key_tail"]


def _fields_to_save(connection: ExchangeConnection) -> list[str]:
    return _CHECK_FIELDS + _KEY_FIELDS if getattr(connection, "keys_destroyed", False) else _CHECK_FIELDS


# --- Checking a key ----------------------------------------------------------------------------


def _claim(connection_id: int) -> ExchangeConnection | None:
    """Take a connection that needs a check, with one conditional UPDATE.

    None when there is nothing to do or another worker has it, so a duplicate task message is
    harmless. The claim's expiry doubles as its token: results are only written while it holds.
    """
    now = timezone.now()
    token = now + timedelta(seconds=settings.CHECK_CLAIM_SECONDS)
    taken = (
        ExchangeConnection.objects.unclaimed(now)
        .needing_check(now)
        .filter(pk=connection_id)
        .update(claimed_until=token)
    )
    if not taken:
        return None
    connection = ExchangeConnection.objects.select_related("owner").get(pk=connection_id)
    connection.claimed_until = token  # exactly as we wrote it, whatever the DB's precision
    # Not a field: the last "Refresh now" this check covers. A later one, seen when the result
    # is written, makes the next check due at once. Comparing values rather than times means the
    # web's and the worker's clocks never need to agree.
    connection.refresh_seen = connection.refresh_requested_at
    return connection


def _still_ours(connection: ExchangeConnection) -> bool:
    """Inside a transaction: lock the row and check our claim was not taken over meanwhile.
    Also picks up a "Refresh now" the user asked for during the check."""
    row = (
        ExchangeConnection.objects.select_for_update()
        .filter(pk=connection.pk, claimed_until=connection.claimed_until)
        .values_list("refresh_requested_at")
        .first()
    )
    if row is None:
        return False
    connection.refresh_requested_at = row[0]
    return True


def _next_check(connection: ExchangeConnection, seconds: float) -> datetime:
    """When to check again; at once if the user asked for a refresh while this check ran."""
    seen = getattr(connection, "refresh_seen", connection.refresh_requested_at)
    if connection.refresh_requested_at != seen:
        return timezone.now()
    return _later(seconds)


_redis: redis.Redis | None = None
_gate: Gate | None = None
_shared_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """This process's client for the project's Redis (its connection pool is thread-safe), for
    what the Django cache does not offer: the HTX gate's script, the sweeper's marks."""
    global _redis
    with _shared_lock:
        if _redis is None:
            _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
        return _redis


def htx_gate() -> Gate:
    """This process's admission to HTX: the global cap and HTX's limits, kept in Redis."""
    global _gate
    client = redis_client()
    with _shared_lock:
        if _gate is None:
            _gate = Gate(
                client,
                cap=settings.HTX_MAX_CONCURRENT_REQUESTS,
                lease_seconds=sum(settings.HTX_TIMEOUT) + 5,
                max_wait_seconds=settings.HTX_GATE_WAIT_SECONDS,
            )
        return _gate


def _client_for(connection: ExchangeConnection, *, pending: bool = False) -> HtxClient:
    """A client signing with the connection's key, or with the replacement key it holds."""
    if pending:
        access_key, secret_key = connection.pending_access_key, connection.pending_secret_key
        scope = f"conn:{connection.pk}:new"
    else:
        access_key, secret_key = connection.access_key, connection.secret_key
        # Every key of one HTX account shares its limits: count them together once known.
        scope = f"uid:{connection.htx_uid}" if connection.htx_uid else f"conn:{connection.pk}"
    return HtxClient(
        settings.HTX_API_URL,
        access_key=access_key,
        secret_key=secret_key,
        timeout=settings.HTX_TIMEOUT,
        gate=htx_gate(),
        scope=scope,
    )


# HTX's clock against ours, measured once per CLOCK_SYNC_SECONDS by each process rather than
# before every check (HTX allows 100 timestamp calls per 2 s per IP; a refresh wave needs more).
# It is this process's clock that may be off, so the figure is not shared between machines.
_clock: tuple[float, int] | None = None  # (monotonic time measured, offset ms)


def _sync_clock(client: HtxClient) -> int:
    global _clock
    clock = _clock
    if clock is None or time.monotonic() - clock[0] > settings.HTX_CLOCK_SYNC_SECONDS:
        offset = client.sync_clock()
        _clock = clock = (time.monotonic(), offset)
    client.clock_offset_ms = clock[1]
    return clock[1]


def _forget_clock() -> None:
    """HTX refused our timestamp: measure again before the next signed call."""
    global _clock
    _clock = None


def forget_process_state() -> None:
    """Drop what this process remembers between checks (clock offset, tickers): for tests."""
    global _tickers_memo
    _forget_clock()
    _tickers_memo = None


@dataclass(frozen=True, slots=True)
class KeyReport:
    accounts: list[Account]
    skew_ms: int
    uid: int | None = None
    info: ApiKeyInfo | None = None  # None: a sub-user key, which HTX will not describe


def _inspect_key(client: HtxClient, *, key_info_known: bool = False, uid: int | None = None) -> KeyReport:
    """What HTX says about the key. ``key_info_known``: HTX described this key before, so a
    refusal to describe it now is not taken for a sub-user key (that would fail open).
    ``uid``: the key's HTX account, when known (a key never changes account), saves a call."""
    skew = _sync_clock(client)
    # The accounts call proves key, secret and IP binding at once; it works for every key type.
    try:
        accounts = client.accounts()
    except HtxError as error:
        if error.kind == ErrorKind.INVALID_TIMESTAMP:
            _forget_clock()
        raise
    try:
        uid = uid or client.uid()
        info = client.api_key_info(uid)
    except HtxError as error:
        # Sub-user keys get "forbidden" (1002), or per the docs a plain 403, right after the
        # accounts call has accepted the same key.
        if key_info_known or not (error.kind == ErrorKind.FORBIDDEN or error.code == "403"):
            raise
        # HTX answers "forbidden" to sub-user keys on both calls (htx-api.md §4 E3, not
        # confirmed today). Failing safe: such keys cannot hold Withdraw permission (§7), and
        # the accounts call above proved they can read; the user is told what went unchecked.
        return KeyReport(accounts=accounts, skew_ms=skew)
    return KeyReport(accounts=accounts, skew_ms=skew, uid=uid, info=info)


def _status_from_key(info: ApiKeyInfo | None) -> tuple[str, str]:
    """Decide from HTX's description of the key; withdraw is checked first and always refused."""
    if info is None:
        return Status.CONNECTED, ""
    if "withdraw" in info.permissions:
        return Status.WITHDRAW_ENABLED, ""
    if info.status == "expired" or info.valid_days == 0:
        return Status.EXPIRED, ErrorKind.KEY_EXPIRED
    if not {"readOnly", "trade"} <= info.permissions:
        return Status.INCORRECT_PERMISSIONS, ""
    return Status.CONNECTED, ""


def tickers_get(client: HtxClient) -> dict[str, Decimal]:
    """HTX tickers, fetched at most once per TICKERS_CACHE_SECONDS and shared by all workers.

    When the cached table expires, one worker fetches it while the others wait briefly for
    it, so a refresh wave does not send every worker to HTX at once.
    """
    global _tickers_memo
    memo = _tickers_memo
    if memo is not None and time.monotonic() < memo[0]:
        return memo[1]
    for _ in range(TICKERS_WAIT_STEPS):
        cached = cache.get(TICKERS_CACHE_KEY)
        if cached is not None:
            prices = {symbol: Decimal(price) for symbol, price in cached.items()}
            _tickers_memo = (time.monotonic() + TICKERS_MEMO_SECONDS, prices)
            return prices
        if cache.add(TICKERS_LOCK_KEY, 1, timeout=TICKERS_LOCK_SECONDS):
            break
        time.sleep(TICKERS_WAIT_STEP_SECONDS)
    try:
        prices = client.tickers()
        cache.set(
            TICKERS_CACHE_KEY, {s: str(p) for s, p in prices.items()}, timeout=settings.TICKERS_CACHE_SECONDS
        )
    finally:
        cache.delete(TICKERS_LOCK_KEY)
    return prices


@dataclass(frozen=True, slots=True)
class BalanceReport:
    valuation: Valuation
    unread: list[dict[str, str | int]]


def _read_balances(client: HtxClient, accounts: list[Account]) -> BalanceReport:
    """Read every account the key can see. An account HTX refuses (other than spot) is
    recorded as unread instead of failing the whole check; a transient failure retries all."""
    balances, unread = [], []
    for account in accounts:
        try:
            balances.append(client.balance(account))
        except HtxError as error:
            if account.type == "spot" or not error.permanent:
                raise
            unread.append({"type": account.type, "id": account.id, "reason": error.detail[:200]})
    return BalanceReport(value_balances(balances, tickers_get(client)), unread)


def connection_check(*, connection_id: int) -> str | None:
    """Check a key with HTX and read its balances. Returns the new status, or None when
    another worker had it or there was nothing to do."""
    connection = _claim(connection_id)
    if connection is None:
        return None
    if connection.replacing:
        return _check_replacement(connection)
    try:
        with _client_for(connection) as client:
            report = _inspect_key(
                client, key_info_known=connection.htx_uid is not None, uid=connection.htx_uid
            )
            status, kind = _status_from_key(report.info)
            balances = _read_balances(client, report.accounts) if status == Status.CONNECTED else None
    except (GateUnavailable, redis.RedisError):
        # Redis (our broker too) did not answer, or every slot to HTX stayed taken: HTX was not
        # asked, so nothing is known about the key. Let go of the row at once (its status stays
        # as it was); the sweeper queues it again.
        _release(connection)
        logger.warning("No admission to HTX; connection %s left for the next sweep", connection.pk)
        return None
    except HtxError as error:
        # A swapped pair is not probed by trying it the other way round: when the API Key is
        # merely wrong, that probe would send the real secret to HTX as AccessKeyId, in a URL.
        return _record_failure(connection, error)
    return _record_key(connection, report, status, kind, balances)


def _check_replacement(connection: ExchangeConnection) -> str | None:
    """Check the new key with HTX before it replaces the current one. It must be a working key
    of the same HTX account; otherwise it is discarded and the current key stays in place."""
    try:
        with _client_for(connection, pending=True) as client:
            report = _inspect_key(client, key_info_known=True)
            status, kind = _status_from_key(report.info)
            if status != Status.CONNECTED:
                return _refuse_replacement(connection, explain(status, kind).title)
            if connection.htx_uid is None or report.uid != connection.htx_uid:
                return _refuse_replacement(connection, _other_account(connection.htx_uid, report.uid))
            balances = _read_balances(client, report.accounts)
    except (GateUnavailable, redis.RedisError):
        _release(connection)
        return None
    except HtxError as error:
        if not error.permanent:
            # HTX unreachable or busy: keep the new key and try again (the sweeper re-queues it).
            _release(connection)
            return connection.status
        return _refuse_replacement(connection, f"{explain('', error.kind).title} ({error.detail})")
    new_key = connection.pending_access_key
    old_masked = connection.masked_access_key
    try:
        with transaction.atomic():
            if not _still_ours(connection):
                return None
            # The old secret is destroyed here, in the same write that installs the new one.
            ExchangeConnection.objects.filter(pk=connection.pk).update(
                access_key=new_key,
                secret_key=connection.pending_secret_key,
                access_key_fingerprint=connection.pending_fingerprint,
                access_key_head=new_key[:4],
                access_key_tail=new_key[-4:],
                pending_access_key=None,
                pending_secret_key=None,
                pending_fingerprint=None,
            )
    except IntegrityError:  # the same key was connected elsewhere meanwhile
        return _refuse_replacement(connection, "This key was connected to another connection meanwhile.")
    connection.refresh_from_db(fields=[*_KEY_FIELDS, *PENDING_KEY_FIELDS])
    security_log(
        user=connection.owner,
        kind=SecurityEvent.Kind.KEY_REPLACED,
        detail=f"{old_masked} → {connection.masked_access_key}",
    )
    ConnectionEvent.objects.create(
        connection=connection,
        status=connection.status,
        message=f"Key replaced by {connection.masked_access_key}",
    )
    return _record_key(connection, report, status, kind, balances)


def _release(connection: ExchangeConnection) -> None:
    """Give up our claim without writing a result, so the next check can take the row."""
    ExchangeConnection.objects.filter(pk=connection.pk, claimed_until=connection.claimed_until).update(
        claimed_until=None
    )


def _other_account(current: int | None, new: int | None) -> str:
    if current is None or new is None:
        return (
            "HTX does not tell us which account this key or the current one belongs to (sub-user keys), "
            "so it cannot replace it safely. Remove this connection and connect the new key instead."
        )
    return (
        f"The new key belongs to HTX account {new}, not to account {current} of this connection. "
        "Connect it as a new exchange instead."
    )


def _refuse_replacement(connection: ExchangeConnection, reason: str) -> str | None:
    with transaction.atomic():
        if not _still_ours(connection):
            return None
        connection.pending_access_key = connection.pending_secret_key = connection.pending_fingerprint = None
        connection.replacement_error = reason
        connection.claimed_until = None
        connection.save(
            update_fields=[*PENDING_KEY_FIELDS, "replacement_error", "claimed_until", "updated_at"]
        )
        ConnectionEvent.objects.create(
            connection=connection, status=connection.status, message=f"New key refused: {reason}"
        )
    return connection.status


def _later(seconds: float) -> datetime:
    # Jitter so keys connected together do not all hit HTX in the same second.
    return timezone.now() + timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def _set_status(connection: ExchangeConnection, status: str, message: str) -> None:
    if status != connection.status:
        ConnectionEvent.objects.create(connection=connection, status=status, message=message)
    connection.status = status


def _destroy_keys(connection: ExchangeConnection) -> None:
    connection.keys_destroyed = True  # not a field: tells the save to write the key fields
    connection.access_key = None
    connection.secret_key = None
    connection.access_key_fingerprint = None
    if connection.error_kind == ErrorKind.INVALID_ACCESS_KEY:
        # HTX did not know what was typed as the API Key: it may have been the secret, pasted
        # into the wrong field, so not even its first and last characters are kept for display.
        connection.access_key_head = connection.access_key_tail = ""


def _after_refusal(connection: ExchangeConnection) -> None:
    """A key HTX refused: drop it if it never worked; otherwise keep it and look again now and
    then, so a fix made on HTX (IP list, permissions) brings it back by itself."""
    if connection.established:
        connection.next_check_at = _next_check(connection, settings.RECHECK_REFUSED_SECONDS)
    else:
        _destroy_keys(connection)
        connection.next_check_at = None


def _record_key(
    connection: ExchangeConnection, report: KeyReport, status: str, kind: str, balances: BalanceReport | None
) -> str | None:
    now = timezone.now()
    info = report.info
    with transaction.atomic():
        if not _still_ours(connection):
            return None
        connection.htx_uid = report.uid
        connection.key_info_known = info is not None
        connection.permissions = ",".join(sorted(info.permissions)) if info else ""
        connection.ip_addresses = ",".join(info.ip_addresses) if info else ""
        valid_days = info.valid_days if info else -1
        connection.key_expires_at = now + timedelta(days=valid_days) if valid_days > 0 else None
        connection.clock_skew_ms = report.skew_ms
        connection.last_verified_at = connection.last_checked_at = now
        connection.error_kind = kind
        # What HTX said about the key, for the "Details from HTX" of a refusal based on it.
        connection.error_detail = (
            ""
            if status == Status.CONNECTED or info is None
            else f"permission: {','.join(sorted(info.permissions)) or '(none)'}; status: {info.status}; "
            f"validDays: {info.valid_days}"
        )
        connection.attempts = 0
        connection.claimed_until = None
        connection.replacement_error = ""  # a refused replacement is reported until the next check
        message = (
            "Key verified with HTX"
            if status == Status.CONNECTED
            else f"HTX reports permissions: {connection.permissions or 'none'}"
        )
        _set_status(connection, status, message)
        if status == Status.CONNECTED:
            if not connection.established:
                # Logged once HTX has accepted the key, so its masked ends are a real API Key.
                security_log(
                    user=connection.owner,
                    kind=SecurityEvent.Kind.KEY_ADDED,
                    detail=f"HTX {connection.masked_access_key}",
                )
            connection.established = True
            _save_snapshot(connection, balances)
            connection.next_check_at = _next_check(connection, connection.owner.refresh_seconds)
        else:
            connection.last_error_at = now
            if status == Status.WITHDRAW_ENABLED:
                # A key that can withdraw is destroyed as soon as HTX says so.
                _destroy_keys(connection)
                if connection.established:
                    security_log(
                        user=connection.owner,
                        kind=SecurityEvent.Kind.KEY_REMOVED,
                        detail=f"{connection.masked_access_key}: HTX reports Withdraw permission",
                    )
                connection.next_check_at = None
            else:
                _after_refusal(connection)
        connection.save(update_fields=_fields_to_save(connection))
    return status


def _record_failure(connection: ExchangeConnection, error: HtxError) -> str | None:
    logger.info("HTX check of connection %s failed: %s", connection.pk, error)
    with transaction.atomic():
        if not _still_ours(connection):
            return None
        connection.error_kind = error.kind
        connection.error_detail = error.detail[:1000]
        connection.last_error_at = connection.last_checked_at = timezone.now()
        connection.claimed_until = None
        if error.permanent:
            _set_status(connection, _STATUS_BY_KIND.get(error.kind, Status.INVALID), error.detail)
            _after_refusal(connection)
        else:
            # Keep the key and the last good balance; try again with growing pauses.
            _set_status(connection, Status.TEMPORARY, error.detail)
            delay = min(settings.RETRY_BASE_SECONDS * 2**connection.attempts, settings.RETRY_MAX_SECONDS)
            connection.attempts += 1
            connection.next_check_at = _next_check(connection, delay)
        connection.save(update_fields=_fields_to_save(connection))
    return connection.status


def _save_snapshot(connection: ExchangeConnection, balances: BalanceReport) -> None:
    valuation = balances.valuation
    snapshot = BalanceSnapshot.objects.create(
        connection=connection,
        total_usdt=valuation.total_usdt,
        total_btc=valuation.total_btc,
        account_types=list(valuation.account_types),
        accounts_unread=balances.unread,
        unpriced=list(valuation.unpriced),
        other_lines=[
            {
                "account_type": o.account_type,
                "currency": o.currency,
                "type": o.type,
                "balance": str(o.balance),
            }
            for o in valuation.other_lines
        ],
    )
    BalanceLine.objects.bulk_create(
        BalanceLine(
            snapshot=snapshot,
            account_type=h.account_type,
            currency=h.currency,
            available=h.available,
            in_orders=h.in_orders,
            debt=h.debt,
            total=h.total,
            price_usdt=h.price_usdt,
            value_usdt=h.value_usdt,
        )
        for h in valuation.holdings
    )
    connection.total_usdt = valuation.total_usdt
    connection.total_btc = valuation.total_btc
    connection.accounts_read = list(valuation.account_types)
    connection.accounts_unread = balances.unread
    connection.unpriced = list(valuation.unpriced)
    connection.latest_snapshot = snapshot
    connection.last_refreshed_at = snapshot.taken_at
