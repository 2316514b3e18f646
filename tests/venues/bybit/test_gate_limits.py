"""Bybit's limits in the gate, in real Redis: the per-IP budget counts every request."""

from __future__ import annotations

import os
import time

import pytest
import redis

from exchanges.venues.bybit import limits as bybit
from exchanges.venues.kit.gate import SAFETY, Gate, GateBusy


def test_a_traffic_limit_counts_every_request_besides_its_own_limit():
    # Bybit counts all requests per IP (600 per 5 s), signed ones too, on top of each endpoint's
    # per-UID limit: a wave of keys of many accounts must stop at the IP's share.
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test:gate:{os.getpid()}:{time.monotonic_ns()}"
    gate = Gate(
        client,
        cap=1000,
        lease_seconds=5,
        max_wait_seconds=0.1,
        prefix=prefix,
        limit_for=bybit.limit_for,
        traffic_limits=bybit.TRAFFIC_LIMITS,
    )
    share = int(bybit.IP_LIMIT * SAFETY)
    try:
        for n in range(share):  # every call from another account: no per-UID limit is near
            with gate.slot(bybit.WALLET, f"uid:{n}"):
                pass
        with pytest.raises(GateBusy), gate.slot(bybit.WALLET, "uid:fresh"):
            pass
        with pytest.raises(GateBusy), gate.slot(bybit.TICKERS, "ip"):  # public calls share it
            pass
        # The refused requests charged nothing: the IP's window holds exactly its share, and the
        # fresh account's own window is empty.
        assert client.zcard(f"{prefix}:rate:ip:{bybit.IP_GROUP}") == share
        assert client.zcard(f"{prefix}:rate:uid:fresh:{bybit.WALLET}") == 0
    finally:
        gate.settle()
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
