"""How many scheduled refreshes a minute this server may send each venue, and what that does to
every connection's refresh interval.

Some venues count requests per IP address, so every user of this server shares one budget (a
request weight per IP a minute; a number of requests per IP every few seconds). The gate
(``venues.kit.gate``) keeps each request under 90 % of those limits, but a sweep that sent every
due row at once would only have the gate queue them and give them back. Instead the sweeper
(``tasks.queue_due_checks``) sends each such venue what its budget allows until the next sweep,
oldest due first, spread evenly over that time (``pace``), and leaves the rest for later sweeps.

The budget is derived from the venue's own declarations, never restated here: the paths of one
refresh (``Venue.refresh_paths``), the limit and weight the gate uses for each
(``Venue.limit_for``, counted only when ``shared``, i.e. per IP), the limits that count every
request (``Venue.traffic_limits``), the gate's share of each limit (``gate.SAFETY``), and headroom
for checks a user is waiting for: in every window of every such limit, room for as many checks as
the gate reserves slots for them (``<PREFIX>_INTERACTIVE_RESERVED_REQUESTS``, at most a quarter
of the cap, as ``venue_state.gate_for`` reads it). Those checks (a new key, Refresh now, a
replacement) are sent by ``dispatch``, never by the sweeper, so the budget never holds them back.

One IP: the gate counts a per-IP limit in one window for every worker on every machine, whatever
``EGRESS_IPS`` lists (that setting tells users which addresses to bind keys to; nothing sends
from a chosen address). So the budget is one IP's, and several machines behind several addresses
share it too: conservative, never over the venue's limits.

Effective interval: when a venue's connections want more refreshes than its budget allows, each
waits past its due time. The sweeper solves for that wait from the current counts (one query) and
keeps it in Redis for a few sweeps (``publish``); pages read it (``interval_note``) and show
nothing when it is missing or stale, or when the workers do not keep up with the budget (then
refreshes come later than the budget says), rather than a figure that may be wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import redis
from django.conf import settings

from . import registry
from .venue_state import redis_client
from .venues.kit.gate import SAFETY
from .venues.kit.venue import Limit, Venue

PACED_KEY = "budget:{}:paced_until"  # ms (Redis's clock) when the last sent check is due to start
STRETCH_KEY = "budget:{}:stretch"
# The stretch is kept this many sweeps: a sweeper that stopped leaves no note behind.
STRETCH_SWEEPS = 3


@dataclass(frozen=True, slots=True)
class Share:
    """What one refresh costs against one per-IP limit of its venue."""

    group: str
    limit: int  # what the gate allows itself: ``SAFETY`` of the venue's figure
    window_ms: int
    cost: int  # weight of one refresh against it
    headroom: int  # weight kept, in every window, for checks a user is waiting for

    @property
    def per_minute(self) -> float:
        room = self.limit - self.headroom
        if room < self.cost:  # a tiny limit: give refreshes the whole of it rather than nothing
            room = self.limit
        return room / self.cost * 60_000 / self.window_ms


@dataclass(frozen=True, slots=True)
class Budget:
    venue_id: str
    venue_name: str
    shares: tuple[Share, ...]  # every per-IP limit a refresh counts against
    ips: int = 1

    @property
    def binding(self) -> Share | None:
        """The limit that allows the fewest refreshes (None: no per-IP limit counts them)."""
        return min(self.shares, key=lambda share: share.per_minute, default=None)

    @property
    def per_minute(self) -> float | None:
        """Scheduled refreshes a minute this server may send; None: no per-IP budget."""
        binding = self.binding
        return None if binding is None else binding.per_minute * self.ips

    @property
    def per_second(self) -> float | None:
        per_minute = self.per_minute
        return None if per_minute is None else per_minute / 60


def interactive_reserve(venue: Venue) -> int:
    """How many of the gate's slots only checks a user is waiting for may take (as gate_for)."""
    cap = int(registry.setting(venue, "MAX_CONCURRENT_REQUESTS"))
    return min(int(registry.setting(venue, "INTERACTIVE_RESERVED_REQUESTS")), cap // 4)


def venue_budget(venue: Venue) -> Budget:
    """The venue's refresh budget for this server, from its own limit declarations."""
    costs: dict[str, list] = {}  # group -> [Limit, cost of one refresh]
    for path in venue.refresh_paths:
        rule = venue.limit_for(path)
        counted = [rule] if rule.shared else []
        counted += [extra for extra in venue.traffic_limits if extra.group != rule.group]
        for limit in counted:
            entry = costs.setdefault(limit.group, [limit, 0])
            entry[1] += limit.weight
    reserve = interactive_reserve(venue)
    shares = tuple(
        Share(
            group=group,
            limit=_gate_limit(limit),
            window_ms=limit.window_ms,
            cost=cost,
            headroom=reserve * cost,
        )
        for group, (limit, cost) in costs.items()
    )
    return Budget(venue.id, venue.name, shares)


def _gate_limit(rule: Limit) -> int:
    # What the gate admits in one window (kit.gate.Gate.slot): its share of the venue's figure.
    return max(rule.weight, int(rule.limit * SAFETY))


def budgets() -> dict[str, Budget]:
    """Every offered venue whose refreshes count against a per-IP limit: {venue id: budget}."""
    found = {venue.id: venue_budget(venue) for venue in registry.venues()}
    return {venue_id: budget for venue_id, budget in found.items() if budget.per_minute}


# --- Pacing: what the sweeper may send now -----------------------------------------------------


def _redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


@dataclass(frozen=True, slots=True)
class Pace:
    """``allowance`` checks may be sent now, the first ``start_s`` seconds from now and then one
    every ``1 / per_second`` seconds; ``sent(n)`` records how many were."""

    venue_id: str
    now_ms: int
    start_ms: int
    per_second: float
    allowance: int

    @property
    def start_s(self) -> float:
        return (self.start_ms - self.now_ms) / 1000

    def countdown(self, index: int) -> float:
        """Seconds from now until the ``index``-th check sent may start."""
        return self.start_s + index / self.per_second

    def sent(self, count: int) -> None:
        if count <= 0:
            return
        until = self.start_ms + math.ceil(count * 1000 / self.per_second)
        horizon = max(int(settings.SWEEP_SECONDS), 1)
        keep_ms = until - self.now_ms + 4 * horizon * 1000
        redis_client().set(PACED_KEY.format(self.venue_id), until, px=keep_ms)


def pace(budget: Budget, horizon_seconds: float | None = None) -> Pace:
    """What fits ``budget`` from where the previous sweeps' checks end until ``horizon_seconds``
    from now (default: SWEEP_SECONDS, i.e. the next sweep). Sweeps that come early or twice send
    nothing twice: the schedule continues where the last one stopped."""
    horizon = float(settings.SWEEP_SECONDS if horizon_seconds is None else horizon_seconds)
    client = redis_client()
    now = _redis_ms(client)
    raw = client.get(PACED_KEY.format(budget.venue_id))
    start = max(now, int(raw)) if raw else now
    per_second = budget.per_second or 0.0
    allowance = math.floor((now + horizon * 1000 - start) / 1000 * per_second)
    return Pace(budget.venue_id, now, start, per_second, max(allowance, 0))


# --- The effective interval ----------------------------------------------------------------------


def stretch_seconds(intervals: Mapping[int, int], per_second: float) -> float:
    """How long past its due time each connection waits, in the steady state, when connections
    wanting a refresh every ``interval`` seconds (``{interval: how many}``) share ``per_second``
    refreshes: the D for which sum(n / (interval + D)) = per_second, 0 when they all fit."""
    if per_second <= 0 or not intervals:
        return 0.0
    demand = sum(n / max(interval, 1) for interval, n in intervals.items())
    if demand <= per_second:
        return 0.0
    low, high = 0.0, sum(intervals.values()) / per_second
    for _ in range(60):
        mid = (low + high) / 2
        if sum(n / (interval + mid) for interval, n in intervals.items()) > per_second:
            low = mid
        else:
            high = mid
    return high


def behind(*, waiting: int, allowance: int) -> bool:
    """Are the workers behind the venue's budget? ``waiting``: rows of this sweep's allowance
    that earlier sweeps sent and whose checks have not started yet (a few are the last checks of
    the previous sweep, due about now)."""
    return waiting > max(2, allowance // 10)


def publish(budget: Budget, intervals: Mapping[int, int], *, behind: bool = False) -> float | None:
    """Keep the venue's current stretch (and what it came from) for the pages; returns it.

    ``behind``: the workers do not keep up with the budget (the machine is busy with other
    work), so connections wait longer than the budget alone says: the figure is withdrawn (no
    note) rather than shown too short."""
    key = STRETCH_KEY.format(budget.venue_id)
    if behind:
        with contextlib.suppress(redis.RedisError):
            redis_client().delete(key)
        return None
    stretch = stretch_seconds(intervals, budget.per_second or 0.0)
    keys = sum(intervals.values())
    value = {"stretch": round(stretch, 1), "keys": keys, "per_minute": round(budget.per_minute or 0.0, 2)}
    ttl = STRETCH_SWEEPS * max(int(settings.SWEEP_SECONDS), 1)
    with contextlib.suppress(redis.RedisError):
        redis_client().set(key, json.dumps(value), ex=ttl)
    return stretch


@dataclass(frozen=True, slots=True)
class Stretch:
    venue_id: str
    seconds: float  # how long past its due time a refresh waits
    keys: int  # connections of the venue sharing the budget
    per_minute: float


def stretches(venue_ids: list[str]) -> dict[str, Stretch]:
    """The stretches the sweeper published lately (one Redis round trip); a venue missing from
    the answer has none, or none we can vouch for."""
    venue_ids = list(dict.fromkeys(venue_ids))
    if not venue_ids:
        return {}
    try:
        raws = redis_client().mget([STRETCH_KEY.format(v) for v in venue_ids])
    except redis.RedisError:
        return {}
    found: dict[str, Stretch] = {}
    for venue_id, raw in zip(venue_ids, raws, strict=True):
        if not raw:
            continue
        try:
            data = json.loads(raw)
            stretch, keys, per_minute = float(data["stretch"]), int(data["keys"]), float(data["per_minute"])
        except (ValueError, KeyError, TypeError):
            continue
        found[venue_id] = Stretch(venue_id, stretch, keys, per_minute)
    return found


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@dataclass(frozen=True, slots=True)
class IntervalNote:
    """What a connection's page says when its venue's budget stretches its refresh interval."""

    seconds: float  # the effective interval
    wanted: int  # the user's refresh interval
    venue_name: str
    keys: int

    @property
    def every(self) -> str:
        return _duration(self.seconds)

    @property
    def short(self) -> str:
        return f"Refreshed about every {self.every}"

    @property
    def text(self) -> str:
        keys = f"{self.keys:,} {self.venue_name} key{'s' if self.keys != 1 else ''}"
        return (
            f"Refreshed about every {self.every}, not every {_duration(self.wanted)}: "
            f"{self.venue_name} limits how often one server may ask for balances, and the {keys} "
            "on this server share that limit. Refresh now is not held back by it."
        )


def interval_note(stretch: Stretch | None, wanted_seconds: int, venue_name: str) -> IntervalNote | None:
    """The note for a connection refreshed every ``wanted_seconds`` when nothing holds it back;
    None when the budget does not stretch it noticeably (less than a sweep, or 10 %)."""
    if stretch is None or stretch.seconds <= 0:
        return None
    if stretch.seconds < max(float(settings.SWEEP_SECONDS), 0.1 * wanted_seconds):
        return None
    return IntervalNote(wanted_seconds + stretch.seconds, wanted_seconds, venue_name, stretch.keys)
