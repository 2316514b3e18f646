"""What a worker process keeps per venue between checks: its gate to the venue, the venue's
clock offset, and the venue's prices shared through Redis. Also the client for a connection.

Kept per venue, never mixed: each exchange has its own limits, clock and tickers.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import redis
from django.conf import settings
from django.core.cache import cache

from . import registry
from .venues.kit.gate import Gate
from .venues.kit.types import Credentials
from .venues.kit.venue import Venue, VenueClient

PRICES_CACHE_KEY = "{}:tickers:v2"
PRICES_LOCK_KEY = "{}:tickers:lock"
PRICES_LOCK_SECONDS = 15
PRICES_WAIT_STEPS, PRICES_WAIT_STEP_SECONDS = 20, 0.1
# Each process also keeps the shared table for a few seconds, so a refresh wave does not read
# and decode it from Redis once per check.
PRICES_MEMO_SECONDS = 5

_lock = threading.Lock()
_redis: redis.Redis | None = None
_gates: dict[str, Gate] = {}
# The venue's clock against ours, measured once per <PREFIX>_CLOCK_SYNC_SECONDS by each process
# rather than before every check. It is this process's clock that may be off, so the figure is
# not shared between machines. venue id -> (monotonic time measured, offset ms)
_clocks: dict[str, tuple[float, int]] = {}
_clock_locks: dict[str, threading.Lock] = {}
_prices_memo: dict[str, tuple[float, dict[str, Decimal]]] = {}


def redis_client() -> redis.Redis:
    """This process's client for the project's Redis (its connection pool is thread-safe), for
    what the Django cache does not offer: the gates' script, the sweeper's marks."""
    global _redis
    with _lock:
        if _redis is None:
            _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
        return _redis


def gate_for(venue: Venue) -> Gate:
    """This process's admission to the venue: the cap on requests in flight and its limits."""
    client = redis_client()
    with _lock:
        gate = _gates.get(venue.id)
        if gate is None:
            cap = int(registry.setting(venue, "MAX_CONCURRENT_REQUESTS"))
            gate = _gates[venue.id] = Gate(
                client,
                cap=cap,
                lease_seconds=sum(registry.timeout(venue)) + 5,
                max_wait_seconds=float(registry.setting(venue, "GATE_WAIT_SECONDS")),
                prefix=f"{venue.id}:gate",
                limit_for=venue.limit_for,
                traffic_limits=venue.traffic_limits,
                # At most a quarter of the cap, so a small cap still leaves refreshes room.
                reserved=min(int(registry.setting(venue, "INTERACTIVE_RESERVED_REQUESTS")), cap // 4),
            )
        return gate


def client_for(connection, *, pending: bool = False, interactive: bool = False) -> VenueClient:
    """A client signing with the connection's key, or with the replacement key it holds.
    ``interactive``: a user is waiting for this check (its requests may use the gate's reserve)."""
    venue = connection.venue
    if pending:
        key, secret, passphrase = (
            connection.pending_access_key,
            connection.pending_secret_key,
            connection.pending_passphrase,
        )
        scope = f"conn:{connection.pk}:new"
    else:
        key, secret, passphrase = connection.access_key, connection.secret_key, connection.passphrase
        # Every key of one account shares the venue's per-account limits: count them together.
        scope = f"uid:{connection.account_uid}" if connection.account_uid else f"conn:{connection.pk}"
    extra = {"site": connection.site} if connection.site else {}
    if passphrase:
        extra["passphrase"] = passphrase
    credentials = Credentials(key, secret, extra)
    return venue.client(
        base_url=registry.api_url(venue),
        credentials=credentials,
        timeout=registry.timeout(venue),
        gate=gate_for(venue).interactive() if interactive else gate_for(venue),
        scope=scope,
    )


def settle_gates() -> None:
    """Release the slot this thread still holds at any venue's gate (Gate.settle): after each
    check, or when a batch moves on to another venue."""
    for gate in list(_gates.values()):
        gate.settle()


def _fresh_clock(venue: Venue) -> tuple[float, int] | None:
    clock = _clocks.get(venue.id)
    if clock is None or time.monotonic() - clock[0] > float(registry.setting(venue, "CLOCK_SYNC_SECONDS")):
        return None
    return clock


def sync_clock(venue: Venue, client: VenueClient) -> int:
    clock = _fresh_clock(venue)
    if clock is None:
        # One thread of this process measures while the others wait for its figure: at a wave's
        # start every thread would otherwise call the venue's clock at once, and a venue limiting
        # that call per IP (10 per 2 s) refuses some.
        with _lock:
            venue_lock = _clock_locks.setdefault(venue.id, threading.Lock())
        with venue_lock:
            clock = _fresh_clock(venue)
            if clock is None:
                offset = client.sync_clock()
                _clocks[venue.id] = clock = (time.monotonic(), offset)
    client.clock_offset_ms = clock[1]
    return clock[1]


def forget_clock(venue: Venue) -> None:
    """The venue refused our timestamp: measure again before the next signed call."""
    _clocks.pop(venue.id, None)


def prices(venue: Venue, client: VenueClient, site: str = "") -> dict[str, Decimal]:
    """The venue's prices (of one of its sites, whose markets may differ), fetched at most once
    per TICKERS_CACHE_SECONDS and shared by all workers. When the cached table expires, one
    worker fetches it while the others wait briefly for it, so a refresh wave does not send
    every worker to the venue at once."""
    name = f"{venue.id}:{site}" if site else venue.id
    memo = _prices_memo.get(name)
    if memo is not None and time.monotonic() < memo[0]:
        return memo[1]
    key, lock = PRICES_CACHE_KEY.format(name), PRICES_LOCK_KEY.format(name)
    for _ in range(PRICES_WAIT_STEPS):
        cached = cache.get(key)
        if cached is not None:
            table = {symbol: Decimal(price) for symbol, price in cached.items()}
            _prices_memo[name] = (time.monotonic() + PRICES_MEMO_SECONDS, table)
            return table
        if cache.add(lock, 1, timeout=PRICES_LOCK_SECONDS):
            break
        time.sleep(PRICES_WAIT_STEP_SECONDS)
    try:
        table = client.prices()
        cache.set(key, {s: str(p) for s, p in table.items()}, timeout=settings.TICKERS_CACHE_SECONDS)
    finally:
        cache.delete(lock)
    return table


def forget_process_state() -> None:
    """Drop what this process remembers between checks (clock offsets, prices, gates built from
    the settings of the time): for tests."""
    _gates.clear()
    _clocks.clear()
    _prices_memo.clear()
