"""Writes: creating connections, verifying keys with HTX, refreshing balances.

Workers call these with ids; views call ``connection_create``. HTX is only ever called from
here (in a worker), never while rendering a page.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import salted_hmac

from exchanges.htx.client import HtxClient
from exchanges.htx.errors import ErrorKind, HtxError
from exchanges.htx.types import ApiKeyInfo

from .models import BalanceLine, BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from .valuation import Valuation, value_balances

logger = logging.getLogger(__name__)

TICKERS_CACHE_KEY = "htx:tickers:v1"
# A worker holds a connection this long; after that the sweeper may hand it to another.
CLAIM_SECONDS = 120

_STATUS_BY_KIND = {
    ErrorKind.INVALID_ACCESS_KEY: Status.INVALID,
    ErrorKind.INVALID_SIGNATURE: Status.INVALID,
    ErrorKind.LOGIN_REQUIRED: Status.INVALID,
    ErrorKind.IP_NOT_ALLOWED: Status.IP_NOT_ALLOWED,
    ErrorKind.KEY_EXPIRED: Status.EXPIRED,
    ErrorKind.NO_PERMISSION: Status.INCORRECT_PERMISSIONS,
    ErrorKind.FORBIDDEN: Status.INCORRECT_PERMISSIONS,
}


def access_key_fingerprint(access_key: str) -> str:
    """Keyed hash of an access key: finds duplicates without decrypting every row."""
    return salted_hmac("exchanges.access_key", access_key, algorithm="sha256").hexdigest()


def connection_create(
    *, owner, exchange: str, label: str, access_key: str, secret_key: str
) -> ExchangeConnection:
    """Store a new key (encrypted) as Verifying and queue its verification after commit.

    The form has already cleaned the input and checked for duplicates; the unique constraint
    on the fingerprint is the last guard against a race between two submissions.
    """
    from .tasks import enqueue_verification

    with transaction.atomic():
        # Earlier failed attempts hold no key material; a new attempt replaces them.
        ExchangeConnection.objects.filter(
            owner=owner, established=False, access_key_fingerprint__isnull=True
        ).delete()
        connection = ExchangeConnection.objects.create(
            owner=owner,
            exchange=exchange,
            label=label,
            access_key=access_key,
            secret_key=secret_key,
            access_key_fingerprint=access_key_fingerprint(access_key),
            access_key_head=access_key[:4],
            access_key_tail=access_key[-4:],
            status=Status.VERIFYING,
            next_check_at=timezone.now(),
        )
        ConnectionEvent.objects.create(
            connection=connection, status=Status.VERIFYING, message="Key submitted"
        )
        enqueue_verification(connection.pk)
    return connection


def connection_dismiss(*, connection: ExchangeConnection) -> None:
    """Delete a failed attempt. A connection that holds a key or ever worked is not touched:
    removing those is a deliberate action with its own confirmation."""
    if connection.established or connection.has_keys:
        raise Http404("Only a failed attempt can be dismissed")
    connection.delete()


# --- Working on a connection -------------------------------------------------------------------


def _claim(connection_id: int, *, statuses: tuple[str, ...], due_only: bool) -> ExchangeConnection | None:
    """Take a connection for this worker with one conditional UPDATE; None if someone else has it.

    Running the same task twice is harmless: the second one finds the claim taken (or the work
    done) and returns.
    """
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = Q(next_check_at__isnull=True) | Q(next_check_at__lte=now) if due_only else Q()
    taken = ExchangeConnection.objects.filter(
        free, due, pk=connection_id, status__in=statuses, access_key_fingerprint__isnull=False
    ).update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    if not taken:
        return None
    return ExchangeConnection.objects.get(pk=connection_id)


def _client_for(connection: ExchangeConnection) -> HtxClient:
    return HtxClient(
        settings.HTX_API_URL,
        access_key=connection.access_key,
        secret_key=connection.secret_key,
        timeout=settings.HTX_TIMEOUT,
    )


@dataclass(frozen=True, slots=True)
class KeyReport:
    uid: int
    info: ApiKeyInfo
    skew_ms: int


def _inspect_key(client: HtxClient) -> KeyReport:
    skew = client.sync_clock()
    # The accounts call proves key, secret and IP binding at once; it works for every key type.
    client.accounts()
    uid = client.uid()
    return KeyReport(uid=uid, info=client.api_key_info(uid), skew_ms=skew)


def _status_from_key(info: ApiKeyInfo) -> tuple[str, str]:
    """Decide from HTX's description of the key; withdraw is checked first and always refused."""
    if "withdraw" in info.permissions:
        return Status.WITHDRAW_ENABLED, ""
    if info.status == "expired" or info.valid_days == 0:
        return Status.EXPIRED, ErrorKind.KEY_EXPIRED
    if not {"readOnly", "trade"} <= info.permissions:
        return Status.INCORRECT_PERMISSIONS, ""
    return Status.CONNECTED, ""


def tickers_get(client: HtxClient) -> dict[str, Decimal]:
    """HTX tickers, fetched at most once per TICKERS_CACHE_SECONDS and shared by all workers."""
    cached = cache.get(TICKERS_CACHE_KEY)
    if cached is not None:
        return {symbol: Decimal(price) for symbol, price in cached.items()}
    prices = client.tickers()
    cache.set(
        TICKERS_CACHE_KEY, {s: str(p) for s, p in prices.items()}, timeout=settings.TICKERS_CACHE_SECONDS
    )
    return prices


def _read_balances(client: HtxClient) -> Valuation:
    balances = [client.balance(account) for account in client.accounts()]
    return value_balances(balances, tickers_get(client))


def connection_verify(*, connection_id: int) -> str | None:
    """Verify a submitted key with HTX and read its balances. Returns the new status."""
    connection = _claim(connection_id, statuses=(Status.VERIFYING, Status.TEMPORARY), due_only=False)
    if connection is None:
        return None
    try:
        with _client_for(connection) as client:
            report = _inspect_key(client)
            status, kind = _status_from_key(report.info)
            valuation = _read_balances(client) if status == Status.CONNECTED else None
    except HtxError as error:
        return _record_failure(connection, error)
    return _record_key(connection, report, status, kind, valuation)


def connection_refresh(*, connection_id: int) -> str | None:
    """Re-read balances of a working key; a failure keeps the last good balance."""
    # A failing key (Temporary issue) is not refreshed but verified again in full by the
    # sweeper, since its permissions may have changed meanwhile.
    connection = _claim(connection_id, statuses=(Status.CONNECTED,), due_only=True)
    if connection is None:
        return None
    try:
        with _client_for(connection) as client:
            client.sync_clock()
            valuation = _read_balances(client)
    except HtxError as error:
        return _record_failure(connection, error)
    with transaction.atomic():
        _save_snapshot(connection, valuation)
        connection.attempts = 0
        _schedule(connection, settings.BALANCE_REFRESH_SECONDS)
        connection.save()
    return connection.status


def _schedule(connection: ExchangeConnection, seconds: float) -> None:
    # Jitter so keys connected together do not all hit HTX in the same second.
    connection.next_check_at = timezone.now() + timedelta(seconds=seconds * random.uniform(0.9, 1.1))
    connection.claimed_until = None


def _set_status(connection: ExchangeConnection, status: str, message: str) -> None:
    if status != connection.status:
        ConnectionEvent.objects.create(connection=connection, status=status, message=message)
    connection.status = status


def _destroy_keys(connection: ExchangeConnection) -> None:
    connection.access_key = None
    connection.secret_key = None
    connection.access_key_fingerprint = None


@transaction.atomic
def _record_key(
    connection: ExchangeConnection, report: KeyReport, status: str, kind: str, valuation: Valuation | None
) -> str:
    now = timezone.now()
    info = report.info
    connection.htx_uid = report.uid
    connection.permissions = ",".join(sorted(info.permissions))
    connection.ip_addresses = ",".join(info.ip_addresses)
    connection.key_expires_at = now + timedelta(days=info.valid_days) if info.valid_days > 0 else None
    connection.clock_skew_ms = report.skew_ms
    connection.last_verified_at = now
    connection.error_kind = kind
    connection.error_detail = ""
    connection.attempts = 0
    _set_status(
        connection,
        status,
        "Key verified with HTX"
        if status == Status.CONNECTED
        else f"HTX reports permissions: {connection.permissions or 'none'}",
    )
    if status == Status.CONNECTED:
        connection.established = True
        _save_snapshot(connection, valuation)
        _schedule(connection, settings.BALANCE_REFRESH_SECONDS)
    else:
        connection.last_error_at = now
        connection.next_check_at = None
        connection.claimed_until = None
        if status == Status.WITHDRAW_ENABLED or not connection.established:
            # A withdraw-enabled key is never kept, not even encrypted; nor is a key that
            # never worked.
            _destroy_keys(connection)
    connection.save()
    return status


@transaction.atomic
def _record_failure(connection: ExchangeConnection, error: HtxError) -> str:
    now = timezone.now()
    connection.error_kind = error.kind
    connection.error_detail = error.detail[:1000]
    connection.last_error_at = now
    logger.info("HTX refused connection %s: %s", connection.pk, error)
    if error.permanent:
        _set_status(connection, _STATUS_BY_KIND.get(error.kind, Status.INVALID), error.detail)
        connection.next_check_at = None
        connection.claimed_until = None
        if not connection.established:
            _destroy_keys(connection)
    else:
        # Keep the key and the last good balance; try again later with growing pauses.
        _set_status(connection, Status.TEMPORARY, error.detail)
        delay = min(settings.RETRY_BASE_SECONDS * 2**connection.attempts, settings.RETRY_MAX_SECONDS)
        connection.attempts += 1
        _schedule(connection, delay)
    connection.save()
    return connection.status


def _save_snapshot(connection: ExchangeConnection, valuation: Valuation) -> None:
    snapshot = BalanceSnapshot.objects.create(
        connection=connection,
        total_usdt=valuation.total_usdt,
        total_btc=valuation.total_btc,
        account_types=list(valuation.account_types),
        unpriced=list(valuation.unpriced),
    )
    BalanceLine.objects.bulk_create(
        BalanceLine(
            snapshot=snapshot,
            currency=h.currency,
            available=h.available,
            in_orders=h.in_orders,
            total=h.total,
            price_usdt=h.price_usdt,
            value_usdt=h.value_usdt,
        )
        for h in valuation.holdings
    )
    connection.total_usdt = valuation.total_usdt
    connection.total_btc = valuation.total_btc
    connection.last_refreshed_at = snapshot.taken_at
    connection.error_detail = ""


# --- Periodic work ---------------------------------------------------------------------------


def connections_to_verify() -> list[int]:
    """Verifying rows nobody is working on (lost message, dead worker, Redis restarted) and
    failing rows whose retry time has come."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VERIFY_STALE_SECONDS)
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return list(
        ExchangeConnection.objects.filter(free, access_key_fingerprint__isnull=False)
        .filter(
            Q(status=Status.VERIFYING, updated_at__lt=stale)
            | Q(status=Status.TEMPORARY, next_check_at__lte=now)
        )
        .values_list("pk", flat=True)
    )


def connections_due_for_refresh() -> list[int]:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return list(
        ExchangeConnection.objects.filter(
            free,
            status=Status.CONNECTED,
            next_check_at__lte=now,
            access_key_fingerprint__isnull=False,
        ).values_list("pk", flat=True)
    )
