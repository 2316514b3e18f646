"""Reads. Pages render from the database only; nothing here calls an exchange."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import CharField, OuterRef, Q, Subquery, Value
from django.shortcuts import get_object_or_404
from django.utils import timezone

from . import registry
from .models import BalanceLine, BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status

# Decrypting is for the venue clients only: pages never load key material.
_KEY_FIELDS = (
    "access_key",
    "secret_key",
    "passphrase",
    "pending_access_key",
    "pending_secret_key",
    "pending_passphrase",
)


def connection_get_for_user(user, pk: int) -> ExchangeConnection:
    """The one way views reach a connection: anyone else's gives 404."""
    return get_object_or_404(
        ExchangeConnection.objects.defer(*_KEY_FIELDS),
        pk=pk,
        owner=user,
    )


def connections_due_for_check() -> list[int]:
    """Ids to queue: connections due for their next check, and submissions nobody picked up
    (a lost message, a dead worker, a Redis restarted without persistence)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VERIFY_STALE_SECONDS)
    submitted = Q(status=Status.VERIFYING) | Q(pending_fingerprint__isnull=False)
    return list(
        ExchangeConnection.objects.unclaimed(now)
        .needing_check(now)
        .filter(
            Q(next_check_at__lte=now, access_key_fingerprint__isnull=False) & ~Q(status=Status.VERIFYING)
            | submitted & Q(updated_at__lt=stale)
        )
        .values_list("pk", flat=True)
    )


# --- My Exchanges and the detail page ---------------------------------------------------------

# Statuses whose (last good) balance counts: a key whose trading right expired still reads.
WORKING = (Status.CONNECTED, Status.TRADING_EXPIRED, Status.TEMPORARY)


@dataclass(frozen=True, slots=True)
class Portfolio:
    connections: list[ExchangeConnection]
    total_usdt: Decimal | None
    total_btc: Decimal | None
    change_24h: Decimal | None  # USDT, against the snapshots of 24 hours ago
    change_24h_pct: Decimal | None
    allocation: list[tuple[str, Decimal]]  # (asset, USDT value) across working connections
    by_exchange: list[tuple[str, Decimal]]  # (exchange, USDT value) of working connections


def portfolio_for_user(user) -> Portfolio:
    """Everything My Exchanges shows, in three queries whatever the number of connections."""
    day_ago = timezone.now() - timedelta(hours=24)
    before = (
        BalanceSnapshot.objects.filter(connection=OuterRef("pk"), taken_at__lte=day_ago)
        .order_by("-taken_at")
        .values("total_usdt")[:1]
    )
    connections = list(
        ExchangeConnection.objects.for_owner(user)
        .defer(*_KEY_FIELDS)
        .annotate(total_usdt_24h_ago=Subquery(before))
        .order_by("created_at", "id")
    )
    working = [c for c in connections if c.status in WORKING and c.total_usdt is not None]
    total = sum((c.total_usdt for c in working), Decimal(0)) if working else None
    btc = [c.total_btc for c in working if c.total_btc is not None]
    compared = [c for c in working if c.total_usdt_24h_ago is not None]
    change = pct = None
    if compared:
        then = sum((Decimal(c.total_usdt_24h_ago) for c in compared), Decimal(0))
        change = sum((c.total_usdt for c in compared), Decimal(0)) - then
        pct = change / then * 100 if then else None
    counted = {id(c) for c in working}  # by identity: `c in working` compares models, O(n²)
    for c in connections:
        c.share = c.total_usdt / total * 100 if total and id(c) in counted else None
    allocation: dict[str, Decimal] = {}
    latest = ExchangeConnection.objects.for_owner(user).filter(status__in=WORKING).values("latest_snapshot")
    rows = BalanceLine.objects.filter(snapshot_id__in=Subquery(latest), value_usdt__isnull=False)
    for currency, value in rows.values_list("currency", "value_usdt"):
        asset = currency.upper()
        allocation[asset] = allocation.get(asset, Decimal(0)) + value
    exchanges: dict[str, Decimal] = {}
    for c in working:
        name = registry.name_of(c.exchange)
        exchanges[name] = exchanges.get(name, Decimal(0)) + c.total_usdt
    return Portfolio(
        connections=connections,
        total_usdt=total,
        total_btc=sum(btc, Decimal(0)) if btc else None,
        change_24h=change,
        change_24h_pct=pct,
        allocation=sorted(allocation.items(), key=lambda item: -item[1]),
        by_exchange=sorted(exchanges.items(), key=lambda item: -item[1]),
    )


@dataclass(frozen=True, slots=True)
class HoldingRow:
    account_type: str
    asset: str
    available: Decimal
    in_orders: Decimal
    debt: Decimal
    total: Decimal
    price_usdt: Decimal | None
    value_usdt: Decimal | None
    value_btc: Decimal | None
    share: Decimal | None  # % of this connection's value


SMALL_BALANCE_USDT = Decimal(1)
HOLDING_SORTS = {
    "asset": lambda h: h.asset,
    "account": lambda h: h.account_type,
    "available": lambda h: h.available,
    "in_orders": lambda h: h.in_orders,
    "total": lambda h: h.total,
    "price": lambda h: h.price_usdt or Decimal(-1),
    "value": lambda h: h.value_usdt if h.value_usdt is not None else Decimal(-1),
}


@dataclass(frozen=True, slots=True)
class Holdings:
    main: list[HoldingRow]
    small: list[HoldingRow]  # priced below SMALL_BALANCE_USDT: folded, never hidden
    unpriced: list[HoldingRow]
    snapshot: BalanceSnapshot | None

    @property
    def all(self) -> list[HoldingRow]:
        return self.main + self.small + self.unpriced


def holdings_for(connection: ExchangeConnection, *, sort: str = "value", descending: bool = True) -> Holdings:
    snapshot = connection.latest_snapshot
    if snapshot is None:
        return Holdings([], [], [], None)
    total, total_btc = snapshot.total_usdt, snapshot.total_btc
    btc_per_usdt = total_btc / total if total and total_btc is not None else None
    rows = [
        HoldingRow(
            account_type=line.account_type,
            asset=line.currency.upper(),
            available=line.available,
            in_orders=line.in_orders,
            debt=line.debt,
            total=line.total,
            price_usdt=line.price_usdt,
            value_usdt=line.value_usdt,
            value_btc=line.value_usdt * btc_per_usdt
            if line.value_usdt is not None and btc_per_usdt
            else None,
            share=line.value_usdt / total * 100 if line.value_usdt is not None and total else None,
        )
        for line in snapshot.lines.all()
    ]
    key = HOLDING_SORTS.get(sort, HOLDING_SORTS["value"])
    rows.sort(key=key, reverse=descending)
    priced = [r for r in rows if r.value_usdt is not None]
    return Holdings(
        main=[r for r in priced if abs(r.value_usdt) >= SMALL_BALANCE_USDT],
        small=[r for r in priced if abs(r.value_usdt) < SMALL_BALANCE_USDT],
        unpriced=[r for r in rows if r.value_usdt is None],
        snapshot=snapshot,
    )


def history_for(connection: ExchangeConnection, *, days: int = 30) -> list[tuple[datetime, Decimal]]:
    since = timezone.now() - timedelta(days=days)
    return list(
        BalanceSnapshot.objects.filter(connection=connection, taken_at__gte=since)
        .order_by("taken_at")
        .values_list("taken_at", "total_usdt")
    )


def timeline_for(connection: ExchangeConnection, *, page: int | str | None, per_page: int = 20) -> Page:
    """Status changes and balance refreshes, newest first, as (at, kind, status, message, total)."""
    text = CharField()
    # Each side without its model's default ordering: SQL forbids ORDER BY inside a UNION part.
    events = (
        ConnectionEvent.objects.filter(connection=connection)
        .order_by()
        .values_list(
            "at", Value("event", output_field=text), "status", "message", Value(None, output_field=text)
        )
    )
    refreshes = (
        BalanceSnapshot.objects.filter(connection=connection)
        .order_by()
        .values_list(
            "taken_at",
            Value("refresh", output_field=text),
            Value("", output_field=text),
            Value("", output_field=text),
            "total_usdt",
        )
    )
    return Paginator(events.union(refreshes, all=True).order_by("-at"), per_page).get_page(page)
