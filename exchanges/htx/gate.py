"""Admission to HTX, shared by every worker on every machine through one Redis.

Two rules are checked together, atomically, by one Lua script before each HTX request:

- a **global cap** on HTX requests in flight at once (``HTX_MAX_CONCURRENT_REQUESTS``), so a
  refresh wave never exceeds what we promise HTX, however many workers run. A slot is a lease:
  a worker that dies holding one frees it when the lease ends (connect + read timeout + margin);
- HTX's **request limits** per scope and endpoint (htx-api.md §6): per UID for the account
  endpoints, per key for the others, per IP for public ones. They are kept as sliding windows,
  which bounds every window of that length, HTX's own fixed windows included, and with a
  safety margin for the time a request takes to reach HTX.

The script reads Redis's clock, so machines whose clocks disagree still share one timeline.
No Django here: ``exchanges.checks`` builds the gate from settings.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

# (limit, window in ms) per endpoint group, from htx-api.md §6 (DOCS21 and HTX's newer guards).
LIMITS: dict[str, tuple[int, int]] = {
    "accounts": (100, 2000),  # E4, per UID
    "balance": (100, 2000),  # E5, per UID (every account's balance shares it)
    "asset-valuation": (100, 2000),  # E7, per UID
    "uid": (20, 2000),  # E2
    "api-key": (20, 2000),  # E3
    "timestamp": (100, 2000),  # E1, public: per IP
    "tickers": (10, 1000),  # E6, public: per IP
    "other": (10, 1000),  # HTX's default: 10 per second per key
}
# Share of each limit we allow ourselves: requests take a few ms to reach HTX, so a window
# measured here and HTX's are not exactly the same.
SAFETY = 0.9
_GROUP_BY_PATH = {
    "/v1/account/accounts": "accounts",
    "/v2/account/asset-valuation": "asset-valuation",
    "/v2/user/uid": "uid",
    "/v2/user/api-key": "api-key",
    "/v1/common/timestamp": "timestamp",
    "/market/tickers": "tickers",
}
_BALANCE = re.compile(r"/v1/account/accounts/\d+/balance")
PUBLIC_SCOPE = "ip"

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, lease, token, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
    tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= cap then
  return -1
end
redis.call('ZADD', KEYS[1], now + lease, token)
redis.call('ZADD', KEYS[2], now, token)
redis.call('PEXPIRE', KEYS[2], window)
return 0
"""


class GateUnavailable(Exception):
    """Redis could not be asked: the request is not sent (the cap is a promise, not a hint)."""


class GateBusy(GateUnavailable):
    """No slot within ``max_wait_seconds`` (the cap, or this scope's share of an HTX limit):
    the request is not sent. Nothing is known about the key, so a check gives the row back
    for a later sweep instead of reporting a status."""


def group_of(path: str) -> str:
    group = _GROUP_BY_PATH.get(path)
    if group is None:
        group = "balance" if _BALANCE.fullmatch(path) else "other"
    return group


@dataclass
class Gate:
    """``with gate.slot(path, scope):`` around each HTX request.

    ``scope`` names whose limit a signed call counts against (``uid:<uid>`` once known,
    otherwise the key's own); public calls count against ``PUBLIC_SCOPE``.
    """

    client: redis.Redis
    cap: int
    lease_seconds: float
    max_wait_seconds: float = 20.0
    prefix: str = "htx:gate"

    def __post_init__(self) -> None:
        self._admit = self.client.register_script(_ADMIT)

    @contextmanager
    def slot(self, path: str, scope: str) -> Iterator[None]:
        group = group_of(path)
        limit, window = LIMITS[group]
        inflight = f"{self.prefix}:inflight"
        token = uuid.uuid4().hex
        args = (self.cap, int(self.lease_seconds * 1000), token, max(1, int(limit * SAFETY)), window)
        keys = (inflight, f"{self.prefix}:rate:{scope}:{group}")
        deadline = time.monotonic() + self.max_wait_seconds
        pause = 0.002
        while True:
            try:
                verdict = int(self._admit(keys=keys, args=args))
            except redis.RedisError as exc:
                raise GateUnavailable(type(exc).__name__) from None
            if verdict == 0:
                break
            left = deadline - time.monotonic()
            if verdict > 0:
                # This scope used its share of HTX's limit: wait for the window to move on.
                if verdict / 1000 > left:
                    raise GateBusy("this account's share of an HTX request limit is used up")
                time.sleep(verdict / 1000)
            else:
                if left <= 0:
                    raise GateBusy("too many HTX requests in flight")
                # Every slot is taken: wait, longer each time (jittered, so waiters do not move
                # in step and do not poll Redis hard while a wave holds every slot).
                time.sleep(random.uniform(pause, 2 * pause))
                pause = min(pause * 2, 0.1)
        try:
            yield
        finally:
            with contextlib.suppress(redis.RedisError):  # if Redis is gone, the lease ends by itself
                self.client.zrem(inflight, token)

    def in_flight(self) -> int:
        """Requests holding a slot now (leases of dead workers not counted)."""
        seconds, micros = self.client.time()
        return int(self.client.zcount(f"{self.prefix}:inflight", seconds * 1000 + micros // 1000, "+inf"))
