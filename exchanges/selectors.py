"""Reads. Pages render from the database only; nothing here calls an exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db import connections as databases
from django.db import router
from django.db.models import Case, CharField, Count, F, OuterRef, Q, Subquery, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from . import registry
from .egress import ServerAddresses, Sighting, parse_egress_ips
from .models import BalanceLine, BalanceSnapshot, ConnectionEvent, ExchangeConnection, SeenAddress, Status

# Decrypting is for the venue clients only: pages never load key material.
KEY_FIELDS = (
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
        ExchangeConnection.objects.defer(*KEY_FIELDS),
        pk=pk,
        owner=user,
    )


def connections_due_for_check() -> list[int]:
    """Ids to queue: connections due for their next check, and submissions nobody picked up
    (a lost message, a dead worker, a Redis restarted without persistence)."""
    return list(due_for_check(timezone.now()).values_list("pk", flat=True))


# --- My Exchanges and the detail page ---------------------------------------------------------

# Statuses whose (last good) balance counts: a key whose trading right expired still reads.
# Any other status (a key refused, expired or destroyed) leaves only a last known balance,
# shown as such and kept out of the portfolio.
WORKING = (Status.CONNECTED, Status.TRADING_EXPIRED, Status.TEMPORARY)


def balance_counts(connection: ExchangeConnection) -> bool:
    """The connection's balance is live: it counts in the portfolio."""
    return connection.status in WORKING and connection.total_usdt is not None


def last_known_only(connection: ExchangeConnection) -> bool:
    """A balance was read once, but the key no longer works (refused, expired or destroyed)."""
    return connection.total_usdt is not None and not balance_counts(connection)


def is_stale(
    connection: ExchangeConnection, stale_after: timedelta | None, now: datetime | None = None
) -> bool:
    """A working connection whose last good balance is older than ``stale_after`` (twice the
    owner's refresh interval)."""
    if not balance_counts(connection) or connection.last_refreshed_at is None:
        return False
    return bool(stale_after) and (now or timezone.now()) - connection.last_refreshed_at > stale_after


def with_share(connection: ExchangeConnection) -> ExchangeConnection:
    """The connection with its share of its owner's live portfolio (as portfolio_for_user sets
    it), for a row rendered alone: the row keeps its "% of portfolio" line while it polls."""
    connection.share = None
    if balance_counts(connection):
        live = ExchangeConnection.objects.for_owner(connection.owner_id).filter(
            status__in=WORKING, total_usdt__isnull=False
        )
        # Summed in Python: amounts are stored as exact text (ExactDecimalField).
        total = sum(live.values_list("total_usdt", flat=True), Decimal(0))
        if total:
            connection.share = connection.total_usdt / total * 100
    return connection


@dataclass(frozen=True, slots=True)
class Portfolio:
    connections: list[ExchangeConnection]
    # Of the live connections only (balance_counts); None when no connection has a balance.
    total_usdt: Decimal | None
    total_btc: Decimal | None
    change_24h: Decimal | None  # USDT, against the snapshots of 24 hours ago
    change_24h_pct: Decimal | None
    allocation: list[tuple[str, Decimal]]  # (asset, USDT value) across working connections
    by_exchange: list[tuple[str, Decimal]]  # (exchange, USDT value) of working connections
    # Connections with a last known balance that is not in the totals (their key no longer works).
    not_counted: list[ExchangeConnection] = field(default_factory=list)
    change_24h_btc: Decimal | None = None
    # The same in BTC at each venue's own BTC price; None when a BTC price is missing somewhere.
    allocation_btc: list[tuple[str, Decimal]] | None = None
    by_exchange_btc: list[tuple[str, Decimal]] | None = None


def _by_value(values: dict[str, Decimal]) -> list[tuple[str, Decimal]]:
    return sorted(values.items(), key=lambda item: -item[1])


def _change(compared: list[ExchangeConnection], now_field: str, then_field: str):
    then = sum((Decimal(getattr(c, then_field)) for c in compared), Decimal(0))
    change = sum((getattr(c, now_field) for c in compared), Decimal(0)) - then
    return change, (change / then * 100 if then else None)


# A snapshot and its lines are written once, in one transaction, and never changed (retention
# only deletes snapshots that are no one's latest): the allocation of a set of latest snapshots
# is the same every time it is computed. Each is named by its id and its connection's id, creation
# time, refresh time and total, so an id used again (SQLite reuses the ids of rolled-back rows,
# as the tests do) is another key.
SnapshotKey = tuple[int, int, datetime, datetime | None, Decimal | None]


def _snapshot_key(c: ExchangeConnection) -> SnapshotKey:
    return (c.latest_snapshot_id, c.pk, c.created_at, c.last_refreshed_at, c.total_usdt)


@lru_cache(maxsize=1024)
def _allocation(snapshots: tuple[SnapshotKey, ...]) -> tuple[tuple, tuple | None]:
    """(asset, USDT value) across the snapshots, and the same in BTC at each snapshot's own BTC
    price (None when a snapshot has none), largest first. One query, on a plain cursor: a page
    has a thousand lines, and the ORM's per-value converters cost three times the query."""
    allocation: dict[str, Decimal] = {}
    allocation_btc: dict[str, Decimal] | None = {}
    lines = BalanceLine.objects.filter(
        snapshot_id__in=[key[0] for key in snapshots], value_usdt__isnull=False
    ).values_list("snapshot_id", "currency", "value_usdt", "snapshot__total_usdt", "snapshot__total_btc")
    rows: list[tuple] = []
    if snapshots:
        sql, params = lines.query.get_compiler(using=lines.db).as_sql()
        with databases[lines.db].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    totals: dict[int, tuple[Decimal, Decimal | None]] = {}  # per snapshot, converted once
    for snapshot_id, currency, value, snapshot_usdt, snapshot_btc in rows:
        asset = currency.upper()
        value = Decimal(value)  # stored as exact text (ExactDecimalField)
        allocation[asset] = allocation.get(asset, Decimal(0)) + value
        if allocation_btc is not None:
            if snapshot_id not in totals:
                totals[snapshot_id] = (
                    Decimal(snapshot_usdt),
                    None if snapshot_btc is None else Decimal(snapshot_btc),
                )
            snapshot_usdt, snapshot_btc = totals[snapshot_id]
            if snapshot_btc is None or not snapshot_usdt:
                allocation_btc = None  # no BTC price on that venue: the chart stays in USDT
            else:
                allocation_btc[asset] = allocation_btc.get(asset, Decimal(0)) + (
                    value * snapshot_btc / snapshot_usdt
                )
    return tuple(_by_value(allocation)), None if allocation_btc is None else tuple(_by_value(allocation_btc))


def _list_queryset(owner_id: int, day_ago: datetime):
    """The user's connections, oldest first, with the totals of their last snapshot taken at or
    before ``day_ago`` (key material left out)."""
    before = BalanceSnapshot.objects.filter(connection=OuterRef("pk"), taken_at__lte=day_ago).order_by(
        "-taken_at"
    )
    return (
        ExchangeConnection.objects.for_owner(owner_id)
        .defer(*KEY_FIELDS)
        .annotate(
            total_usdt_24h_ago=Subquery(before.values("total_usdt")[:1]),
            total_btc_24h_ago=Subquery(before.values("total_btc")[:1]),
        )
        .order_by("created_at", "id")
    )


# Stand-ins for the two parameters while the list's SQL is compiled (_list_sql).
_OWNER_SENTINEL = -918_273_645
_DAY_SENTINEL = datetime(1971, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_OWNER_SLOT, _DAY_SLOT = object(), object()


@lru_cache(maxsize=8)
def _list_sql(alias: str) -> tuple[str, tuple] | None:
    """_list_queryset's SQL, compiled once per database (compiling it cost as much as running
    it and building the rows), with its parameters as slots; None if the sentinels cannot be
    told apart from the other parameters (the ORM is then used as it is)."""
    sql, params = _list_queryset(_OWNER_SENTINEL, _DAY_SENTINEL).query.get_compiler(using=alias).as_sql()
    day = databases[alias].ops.adapt_datetimefield_value(_DAY_SENTINEL)
    slots = tuple(_OWNER_SLOT if p == _OWNER_SENTINEL else _DAY_SLOT if p == day else p for p in params)
    if (slots.count(_OWNER_SLOT), slots.count(_DAY_SLOT)) != (1, 2):
        return None
    return sql, slots


def _connections_with_24h_ago(owner_id: int, day_ago: datetime) -> list[ExchangeConnection]:
    """_list_queryset's rows, from its SQL compiled once (the same columns and conversions:
    a raw query converts the model's columns; the two totals are converted here)."""
    alias = router.db_for_read(ExchangeConnection)
    compiled = _list_sql(alias)
    if compiled is None:
        return list(_list_queryset(owner_id, day_ago).using(alias))
    sql, slots = compiled
    day = databases[alias].ops.adapt_datetimefield_value(day_ago)
    params = [owner_id if s is _OWNER_SLOT else day if s is _DAY_SLOT else s for s in slots]
    connections = list(ExchangeConnection.objects.raw(sql, params).using(alias))
    for c in connections:
        for name in ("total_usdt_24h_ago", "total_btc_24h_ago"):
            value = getattr(c, name)
            if value is not None and not isinstance(value, Decimal):
                setattr(c, name, Decimal(value))  # stored as exact text (ExactDecimalField)
    return connections


def portfolio_for_user(user) -> Portfolio:
    """Everything My Exchanges shows, in two queries whatever the number of connections: the
    connections (with their totals of 24 hours ago), and the lines of their latest snapshots,
    which is not made again for a set of snapshots already summed (_allocation)."""
    connections = _connections_with_24h_ago(user.pk, timezone.now() - timedelta(hours=24))
    working = [c for c in connections if balance_counts(c)]
    not_counted = [c for c in connections if last_known_only(c)]
    # The live total stays shown (zero if none is live) while last known balances exist.
    total = sum((c.total_usdt for c in working), Decimal(0)) if working or not_counted else None
    btc = [c.total_btc for c in working if c.total_btc is not None]
    compared = [c for c in working if c.total_usdt_24h_ago is not None]
    change = pct = change_btc = None
    if compared:
        change, pct = _change(compared, "total_usdt", "total_usdt_24h_ago")
        both = [c for c in compared if c.total_btc is not None and c.total_btc_24h_ago is not None]
        if len(both) == len(compared):
            change_btc, _ = _change(both, "total_btc", "total_btc_24h_ago")
    counted = {id(c) for c in working}  # by identity: `c in working` compares models, O(n²)
    for c in connections:
        c.share = c.total_usdt / total * 100 if total and id(c) in counted else None
    allocation, allocation_btc = _allocation(
        tuple(sorted(_snapshot_key(c) for c in connections if c.status in WORKING and c.latest_snapshot_id))
    )
    exchanges: dict[str, Decimal] = {}
    exchanges_btc: dict[str, Decimal] | None = {}
    for c in working:
        name = registry.name_of(c.exchange)
        exchanges[name] = exchanges.get(name, Decimal(0)) + c.total_usdt
        if exchanges_btc is not None and c.total_btc is None:
            exchanges_btc = None
        elif exchanges_btc is not None:
            exchanges_btc[name] = exchanges_btc.get(name, Decimal(0)) + c.total_btc
    return Portfolio(
        connections=connections,
        total_usdt=total,
        total_btc=sum(btc, Decimal(0)) if btc or (total is not None and not working) else None,
        change_24h=change,
        change_24h_pct=pct,
        allocation=list(allocation),
        by_exchange=_by_value(exchanges),
        not_counted=not_counted,
        change_24h_btc=change_btc,
        allocation_btc=None if allocation_btc is None else list(allocation_btc),
        by_exchange_btc=None if exchanges_btc is None else _by_value(exchanges_btc),
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
    price_btc: Decimal | None = None


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
            price_btc=line.price_usdt * btc_per_usdt
            if line.price_usdt is not None and btc_per_usdt
            else None,
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


def history_for(
    connection: ExchangeConnection, *, days: int = 30, unit: str = "USDT"
) -> list[tuple[datetime, Decimal]]:
    """(time, total) of the last `days` days, in USDT or (unit "BTC") in BTC where known."""
    since = timezone.now() - timedelta(days=days)
    total = "total_btc" if unit == "BTC" else "total_usdt"
    return list(
        BalanceSnapshot.objects.filter(
            connection=connection, taken_at__gte=since, **{f"{total}__isnull": False}
        )
        .order_by("taken_at")
        .values_list("taken_at", total)
    )


def timeline_for(connection: ExchangeConnection, *, page: int | str | None, per_page: int = 20) -> Page:
    """Status changes and balance refreshes, newest first, as (at, kind, status, message, total,
    total in BTC)."""
    text = CharField()
    # Each side without its model's default ordering: SQL forbids ORDER BY inside a UNION part.
    events = (
        ConnectionEvent.objects.filter(connection=connection)
        .order_by()
        .values_list(
            "at",
            Value("event", output_field=text),
            "status",
            "message",
            Value(None, output_field=text),
            Value(None, output_field=text),
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
            "total_btc",
        )
    )
    return Paginator(events.union(refreshes, all=True).order_by("-at"), per_page).get_page(page)


# What a dialog or guide lists of what exchanges saw (the newest first).
SEEN_SHOWN = 5


def seen_addresses() -> list[Sighting]:
    """Every address an exchange said it saw our requests come from, newest first (one query;
    the table holds one row per venue, site and address)."""
    rows = SeenAddress.objects.order_by("-seen_at", "-id")[:50]
    return [
        Sighting(
            row.exchange,
            registry.name_of(row.exchange),
            _site_label(row.exchange, row.site),
            row.ip,
            row.seen_at,
        )
        for row in rows
    ]


def _site_label(venue_id: str, site: str) -> str:
    if not site:
        return ""
    for spec in registry.get_or_retired(venue_id).credential_fields:
        if spec.name == "site":
            return dict(spec.choices).get(site, site)
    return site


def seen_addresses_once(request) -> list[Sighting]:
    """seen_addresses, read once per request however many rows or forms ask."""
    cached = getattr(request, "_seen_addresses", None)
    if cached is None:
        cached = seen_addresses()
        if request is not None:
            request._seen_addresses = cached
    return cached


def server_addresses(venue_id: str, seen: list[Sighting] | None = None) -> ServerAddresses:
    """This server's outgoing addresses for one venue's dialog, guide or key facts: EGRESS_IPS,
    and what exchanges saw (this venue's first). ``seen``: from ``seen_addresses`` when the
    caller already has them (a page with many rows asks once)."""
    seen = seen_addresses() if seen is None else seen
    ordered = sorted(seen, key=lambda s: s.venue_id != venue_id)  # stable: newest first within
    return ServerAddresses(
        venue_id=venue_id,
        configured=parse_egress_ips(settings.EGRESS_IPS),
        seen=tuple(ordered[:SEEN_SHOWN]),
    )


# --- The sweeper and the venues' refresh budgets (exchanges.budget) ------------------------------


def due_for_check(now: datetime):
    """The rows ``connections_due_for_check`` returns, as a QuerySet."""
    stale = now - timedelta(seconds=settings.VERIFY_STALE_SECONDS)
    submitted = Q(status=Status.VERIFYING) | Q(pending_fingerprint__isnull=False)
    return (
        ExchangeConnection.objects.unclaimed(now)
        .needing_check(now)
        .filter(
            Q(next_check_at__lte=now, access_key_fingerprint__isnull=False) & ~Q(status=Status.VERIFYING)
            | submitted & Q(updated_at__lt=stale)
        )
    )


def connections_due_except(venue_ids: list[str]) -> list[int]:
    """Ids due for a check on every venue but ``venue_ids`` (those the sweeper budgets)."""
    return list(due_for_check(timezone.now()).exclude(exchange__in=venue_ids).values_list("pk", flat=True))


def connections_due_oldest(venue_id: str, limit: int) -> list[int]:
    """At most ``limit`` ids due for a check on one venue, the longest overdue first (a lost
    submission, whose due time is unset, before them all): one query."""
    if limit <= 0:
        return []
    return list(
        due_for_check(timezone.now())
        .filter(exchange=venue_id)
        .order_by(F("next_check_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )


def refresh_intervals(venue_ids: list[str]) -> dict[str, dict[int, int]]:
    """Per venue, the connections on a schedule by the interval they want, in seconds:
    ``{venue id: {interval: how many}}`` (one query). A working key wants its owner's refresh
    interval; a refused one is looked at every RECHECK_REFUSED_SECONDS."""
    if not venue_ids:
        return {}
    rows = (
        ExchangeConnection.objects.filter(
            exchange__in=venue_ids, access_key_fingerprint__isnull=False, next_check_at__isnull=False
        )
        .annotate(working=Case(When(status__in=WORKING, then=Value(True)), default=Value(False)))
        .values_list("exchange", "working", "owner__refresh_minutes")
        .annotate(n=Count("pk"))
        .order_by()
    )
    found: dict[str, dict[int, int]] = {venue_id: {} for venue_id in venue_ids}
    for exchange, working, minutes, n in rows:
        if working:
            seconds = minutes * 60 if minutes else settings.BALANCE_REFRESH_SECONDS
        else:
            seconds = settings.RECHECK_REFUSED_SECONDS
        found[exchange][seconds] = found[exchange].get(seconds, 0) + n
    return found
