"""Admission to an exchange, shared by every worker on every machine through one Redis.

Three rules are checked together, atomically, by one Lua script before each request (or before
requests a check sends together, ``slots``: as many of them at once as the rules allow now):

- a **cap** on the venue's requests in flight at once (``<PREFIX>_MAX_CONCURRENT_REQUESTS``), so
  a refresh wave never exceeds what we promise the venue, however many workers run. A slot is a
  lease: a worker that dies holding one frees it when the lease ends;
- the venue's **request limits**, as data (``Venue.limits``): per account or key (the caller's
  scope), or per IP for limits the venue counts per address and so every user of this server
  shares (``Limit.shared``: e.g. a request weight per IP). A request counts against its path's
  limit and against every limit the venue counts all its traffic against
  (``Venue.traffic_limits``: e.g. all requests per IP, signed ones included). Kept as sliding
  windows of weighted entries, which bounds every window of that length, the venue's own fixed
  windows included, with a safety margin for the time a request takes to get there;
- a **ban**: when the venue says "no more requests until T" (HTTP 418/429 with Retry-After),
  ``block`` stops every worker from calling it until then.

The script reads Redis's clock, so machines whose clocks disagree still share one timeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import redis

try:
    from hiredis import pack_command as _pack
except ImportError:  # redis-py packs instead (hiredis is in requirements.txt)
    _pack = None

from .errors import GateBusy, GateUnavailable
from .venue import Limit

__all__ = ["PUBLIC_SCOPE", "SAFETY", "Gate", "GateBusy", "GateUnavailable", "InteractiveGate"]

# Share of each limit we allow ourselves: requests take a few ms to reach the venue, so a
# window measured here and the venue's are not exactly the same.
SAFETY = 0.9
PUBLIC_SCOPE = "ip"

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
for token in string.gmatch(ARGV[3], '%S+') do
  redis.call('ZREM', KEYS[1], token)
end
local banned = redis.call('PTTL', KEYS[2])
if banned > 0 then
  return {banned, 0}
end
-- KEYS[3..]: one sliding window per limit, ARGV 4.. as (limit, window) for each.
local limit, window, used = {}, {}, {}
local a = 4
for w = 3, #KEYS do
  limit[w], window[w] = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  redis.call('ZREMRANGEBYSCORE', KEYS[w], '-inf', now - window[w])
  used[w] = redis.call('ZCARD', KEYS[w])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = cap - redis.call('ZCARD', KEYS[1])
-- Then the requests in order, each as its token, how many windows it counts against and each
-- of those as (key index, weight). A request is admitted when every one of its windows has
-- room (none is charged otherwise) and a slot is free; the first that is not ends the
-- admission. Returns {0, how many} or, when none is, {ms to wait, 0} or {-1, 0} (no slot).
local admitted = 0
while a <= #ARGV do
  local token, first = ARGV[a], a + 2
  a = first + 2 * tonumber(ARGV[a + 1])
  local wait = 0
  for j = first, a - 1, 2 do
    local w, weight = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
    if wait == 0 and used[w] + weight > limit[w] then
      local oldest = redis.call('ZRANGE', KEYS[w], 0, 0, 'WITHSCORES')
      wait = oldest[2] and math.max(1, tonumber(oldest[2]) + window[w] - now) or window[w]
    end
  end
  if wait == 0 and free <= 0 then
    wait = -1
  end
  if wait ~= 0 then
    if admitted == 0 then
      return {wait, 0}
    end
    break
  end
  redis.call('ZADD', KEYS[1], now + lease, token)
  free = free - 1
  for j = first, a - 1, 2 do
    local w, weight = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
    for i = 1, weight do
      redis.call('ZADD', KEYS[w], now, token .. ':' .. i)
    end
    used[w] = used[w] + weight
    redis.call('PEXPIRE', KEYS[w], window[w])
  end
  admitted = admitted + 1
end
return {0, admitted}
"""
_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


# A slot's token: this process's random origin and a counter, unique across every worker of every
# machine sharing the Redis, for a fraction of a uuid4's cost (one per request). A forked child
# draws an origin of its own.
_tokens = itertools.count()
_origin = os.urandom(8).hex()


def _new_origin() -> None:
    global _origin
    _origin = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_origin)


def _any_limit(path: str) -> Limit:
    return Limit("other", 10, 1000)


@dataclass
class Gate:
    """``with gate.slot(path, scope):`` around each request to one venue.

    ``scope`` names whose limit a signed call counts against (``uid:<uid>`` once known,
    otherwise the key's own); public calls and shared limits count against ``PUBLIC_SCOPE``.
    """

    client: redis.Redis
    cap: int
    lease_seconds: float
    max_wait_seconds: float = 20.0
    prefix: str = "htx:gate"
    limit_for: Callable[[str], Limit] = _any_limit
    # Limits every request counts against besides its own (``Venue.traffic_limits``).
    traffic_limits: tuple[Limit, ...] = ()
    # Slots of the cap only checks a user is waiting for may take (a new key, Refresh now, a
    # replacement): a refresh wave holding every other slot never makes them queue behind it.
    reserved: int = 0

    def __post_init__(self) -> None:
        # Per thread: the slot of its last request, released by its next admission (in the
        # same script call: one Redis round trip per request instead of two) or by ``settle``;
        # and the thread's own connection to Redis (``_call``).
        self._local = threading.local()

    def _call(self, *command):
        """One command on this thread's own connection to the gate's Redis. A gated request
        costs one round trip; through the client's pool, taking and giving back a connection
        (a lock, a fork check, retry wrappers) cost more CPU than the round trip itself. A
        connection Redis closed (a restart: the command never reached the new server) is
        opened again once; a timeout is not retried (the command may have run), and failures
        raise ``redis.RedisError`` as the client would."""
        local = self._local
        wire = getattr(local, "wire", None)
        if wire is None or local.pid != os.getpid():
            pool = self.client.connection_pool
            wire = local.wire = pool.connection_class(**pool.connection_kwargs)
            local.pid = os.getpid()
        # Packed by hiredis at once (redis-py's packer re-splits and re-checks every argument).
        packed = [_pack(command)] if _pack is not None else wire.pack_command(*command)
        try:
            wire.send_packed_command(packed, check_health=False)
            return wire.read_response()
        except redis.ConnectionError:
            wire.disconnect()
        wire.send_packed_command(packed, check_health=False)
        return wire.read_response()

    def _admit(self, keys: list[str], args: tuple):
        try:
            return self._call("EVALSHA", _ADMIT_SHA, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # A new Redis, or one restarted or flushed: load the script (once each time).
            self._call("SCRIPT", "LOAD", _ADMIT)
            return self._call("EVALSHA", _ADMIT_SHA, len(keys), *keys, *args)

    def interactive(self) -> InteractiveGate:
        """This gate as seen by a check a user is waiting for: the reserved slots count too."""
        return InteractiveGate(self)

    def slot(self, path: str, scope: str, *, interactive: bool = False) -> AbstractContextManager[int]:
        """``with gate.slot(path, scope):`` around one request (``slots`` of one path)."""
        return self.slots([path], scope, interactive=interactive)

    @contextmanager
    def slots(self, paths: Sequence[str], scope: str, *, interactive: bool = False) -> Iterator[int]:
        """``with gate.slots(paths, scope) as n:`` around requests sent together: admits the first
        ``n`` of ``paths`` at once, in one script call (at least the first, waiting for it as one
        request waits; as many more as the cap and the limits allow now). The caller sends
        those and asks again for the rest."""
        cap = self.cap if interactive else self.cap - self.reserved
        keys = [f"{self.prefix}:inflight", f"{self.prefix}:ban"]
        index: dict[str, int] = {}
        windows: list = []
        requests: list = []
        tokens = []
        for path in paths:
            rule = self.limit_for(path)
            token = f"{_origin}:{next(_tokens)}"
            counted: list = []
            # The path's own limit, and every limit the venue counts all its traffic against
            # (e.g. all requests per IP, signed ones too).
            for limit in (rule, *(extra for extra in self.traffic_limits if extra.group != rule.group)):
                key = f"{self.prefix}:rate:{PUBLIC_SCOPE if limit.shared else scope}:{limit.group}"
                if key not in index:
                    keys.append(key)
                    index[key] = len(keys)  # Lua counts from 1
                    windows += (max(limit.weight, int(limit.limit * SAFETY)), limit.window_ms)
                counted += (index[key], limit.weight)
            tokens.append(token)
            requests += (token, len(counted) // 2, *counted)
        lease = int(self.lease_seconds * 1000)
        deadline = time.monotonic() + self.max_wait_seconds
        pause = 0.002
        while True:
            previous = " ".join(getattr(self._local, "held", None) or ())
            try:
                verdict, admitted = self._admit(keys=keys, args=(cap, lease, previous, *windows, *requests))
                verdict = int(verdict)
            except redis.RedisError as exc:
                raise GateUnavailable(type(exc).__name__) from None
            self._local.held = None
            if verdict == 0:
                break
            left = deadline - time.monotonic()
            if verdict > 0:
                # This scope used its share of a limit (or the venue banned us): wait for the
                # window to move on, or give the work back if that is too far away.
                if verdict / 1000 > left:
                    raise GateBusy("this account's share of a request limit is used up")
                time.sleep(verdict / 1000)
            else:
                if left <= 0:
                    raise GateBusy("too many requests in flight")
                # Every slot is taken: wait, longer each time (jittered, so waiters do not move
                # in step and do not poll Redis hard while a wave holds every slot).
                time.sleep(random.uniform(pause, 2 * pause))
                pause = min(pause * 2, 0.1)
        try:
            yield int(admitted)
        finally:
            # Still counted in flight until this thread's next admission or ``settle``: a few
            # milliseconds more than the requests took, which only ever errs on the safe side.
            # (Slots taken inside others let the outer ones go now.)
            self._release(getattr(self._local, "held", None))
            self._local.held = tokens[: int(admitted)]

    def settle(self) -> None:
        """Release this thread's last slots now (a check is over, or moves to another venue)."""
        held, self._local.held = getattr(self._local, "held", None), None
        self._release(held)

    def _release(self, tokens: list[str] | None) -> None:
        if tokens:
            with contextlib.suppress(redis.RedisError):  # if Redis is gone, the lease ends by itself
                self._call("ZREM", f"{self.prefix}:inflight", *tokens)

    def block(self, seconds: float) -> None:
        """The venue asked every caller from this server to stop for ``seconds`` (a ban)."""
        with contextlib.suppress(redis.RedisError):
            self.client.set(f"{self.prefix}:ban", 1, px=max(1, int(seconds * 1000)))

    def in_flight(self) -> int:
        """Requests holding a slot now (leases of dead workers not counted)."""
        seconds, micros = self.client.time()
        return int(self.client.zcount(f"{self.prefix}:inflight", seconds * 1000 + micros // 1000, "+inf"))


@dataclass(frozen=True)
class InteractiveGate:
    """A gate's admission for a check a user is waiting for (``Gate.interactive``): the same
    limits, bans and leases, with the reserved slots of the cap open to it."""

    gate: Gate

    def slot(self, path: str, scope: str) -> contextlib.AbstractContextManager[int]:
        return self.gate.slot(path, scope, interactive=True)

    def slots(self, paths: Sequence[str], scope: str) -> contextlib.AbstractContextManager[int]:
        return self.gate.slots(paths, scope, interactive=True)

    def settle(self) -> None:
        self.gate.settle()

    def block(self, seconds: float) -> None:
        self.gate.block(seconds)

    def in_flight(self) -> int:
        return self.gate.in_flight()
