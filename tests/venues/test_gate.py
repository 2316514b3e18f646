"""The HTX gate: a global cap on requests in flight and HTX's per-scope limits, in real Redis."""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis

from exchanges.venues.htx.client import HtxClient
from exchanges.venues.htx.limits import LIMITS, group_of, limit_for
from exchanges.venues.kit.gate import SAFETY, Gate, GateBusy, GateUnavailable
from tests.conftest import demo_key

GOOD = demo_key("demo: good key")


@pytest.fixture
def gate():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test:gate:{os.getpid()}:{time.monotonic_ns()}"
    yield Gate(client, cap=3, lease_seconds=5, max_wait_seconds=5, prefix=prefix, limit_for=limit_for)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def test_endpoints_fall_into_htx_limit_groups():
    assert group_of("/v1/account/accounts") == "accounts"
    assert group_of("/v1/account/accounts/123/balance") == "balance"
    assert group_of("/v2/user/api-key") == "api-key"
    assert group_of("/market/tickers") == "tickers"
    assert group_of("/v1/order/orders") == "other"


def test_the_cap_is_never_exceeded_by_many_threads(gate):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def call(n: int) -> None:
        with gate.slot("/v1/account/accounts", f"uid:{n}"):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.02)
            with lock:
                in_flight[0] -= 1
        gate.settle()  # as a worker does after each check

    threads = [threading.Thread(target=call, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == gate.cap, f"peak {peak[0]} with cap {gate.cap}"
    assert gate.in_flight() == 0


def test_a_slot_held_by_a_dead_worker_is_freed_when_its_lease_ends(gate):
    gate.lease_seconds = 0.2
    holders = [gate.slot("/v2/user/uid", f"uid:{n}") for n in range(gate.cap)]
    for holder in holders:
        holder.__enter__()  # and never left, as if the process had been killed
    assert gate.in_flight() == gate.cap
    started = time.monotonic()
    with gate.slot("/v2/user/uid", "uid:99"):
        waited = time.monotonic() - started
    assert 0.1 < waited < 2, waited


def test_a_full_cap_that_does_not_free_up_sends_nothing_and_says_busy(gate):
    gate.max_wait_seconds = 0.2
    holders = [gate.slot("/v2/user/uid", f"uid:{n}") for n in range(gate.cap)]
    for holder in holders:
        holder.__enter__()
    with pytest.raises(GateBusy), gate.slot("/v2/user/uid", "uid:99"):
        pytest.fail("admitted beyond the cap")
    for holder in holders:
        holder.__exit__(None, None, None)


def test_one_scope_gets_its_share_of_an_htx_limit_per_window_and_waits_for_the_next(gate):
    gate.cap = 100
    limit, window_ms = LIMITS["api-key"].limit, LIMITS["api-key"].window_ms
    allowed = int(limit * SAFETY)
    started = time.monotonic()
    for _ in range(allowed):
        with gate.slot("/v2/user/api-key", "uid:1"):
            pass
    assert time.monotonic() - started < window_ms / 1000 / 2
    with gate.slot("/v2/user/api-key", "uid:2"):  # another UID has its own budget
        pass
    with gate.slot("/v2/user/api-key", "uid:1"):  # this one waits for its window to move on
        pass
    assert time.monotonic() - started >= window_ms / 1000 * 0.9


def test_a_scope_over_its_share_longer_than_the_wait_allowed_sends_nothing(gate):
    gate.cap, gate.max_wait_seconds = 100, 0.1
    limit = LIMITS["uid"].limit
    for _ in range(int(limit * SAFETY)):
        with gate.slot("/v2/user/uid", "uid:1"):
            pass
    with pytest.raises(GateBusy), gate.slot("/v2/user/uid", "uid:1"):
        pytest.fail("admitted beyond HTX's limit")


def test_without_redis_nothing_is_sent(sandbox):
    dead = Gate(redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5), cap=5, lease_seconds=5)
    client = HtxClient(sandbox.url, access_key=GOOD[0], secret_key=GOOD[1], gate=dead)
    sandbox.stats.reset()
    with pytest.raises(GateUnavailable):
        client.accounts()
    assert sandbox.stats.snapshot()["requests"] == 0


def test_the_client_asks_the_gate_before_every_call(sandbox, gate):
    client = HtxClient(sandbox.url, access_key=GOOD[0], secret_key=GOOD[1], gate=gate, scope="uid:63628520")
    client.sync_clock()
    client.accounts()
    keys = {key.decode() for key in gate.client.scan_iter(f"{gate.prefix}:rate:*")}
    assert keys == {f"{gate.prefix}:rate:ip:timestamp", f"{gate.prefix}:rate:uid:63628520:accounts"}
    assert client.calls == 2


def test_a_wave_holding_every_slot_it_may_take_leaves_the_reserved_ones_to_a_waiting_user(gate):
    """A refresh wave takes cap - reserved slots at most; a check a user waits for (a new key,
    Refresh now, a replacement) is admitted at once on the reserved ones, and never above the cap."""
    import contextlib

    gate.reserved = 1
    gate.max_wait_seconds = 0.2
    with contextlib.ExitStack() as wave:
        for n in range(gate.cap - gate.reserved):
            wave.enter_context(gate.slot("/v1/account/accounts", f"uid:{n}"))
        # One more refresh must wait: the rest is reserved.
        with pytest.raises(GateBusy), gate.slot("/v1/account/accounts", "uid:late"):
            pass
        started = time.monotonic()
        with gate.interactive().slot("/v1/account/accounts", "uid:user"):
            assert time.monotonic() - started < 0.1
            assert gate.in_flight() == gate.cap
            # The cap itself holds for everyone.
            with pytest.raises(GateBusy), gate.interactive().slot("/v1/account/accounts", "uid:user2"):
                pass
    gate.settle()
    assert gate.in_flight() == 0


def test_a_threads_last_slot_is_released_by_its_next_request_or_by_settle(gate):
    """One Redis call per request: the slot of a thread's previous request is let go by the same
    script that admits its next one; ``settle`` lets go of the last one (after each check)."""
    with gate.slot("/v1/account/accounts", "uid:1"):
        assert gate.in_flight() == 1
    assert gate.in_flight() == 1  # still counted: errs on the safe side until the next request
    with gate.slot("/v1/account/accounts", "uid:1"):
        assert gate.in_flight() == 1  # the previous one went with this admission
    gate.settle()
    assert gate.in_flight() == 0
    # Slots taken inside one another (no client does, but nothing must leak if one did).
    with gate.slot("/v1/account/accounts", "uid:1"), gate.slot("/v1/account/accounts", "uid:2"):
        assert gate.in_flight() == 2
    assert gate.in_flight() == 1
    gate.settle()
    assert gate.in_flight() == 0
    # Another thread's slot is its own: settling here does not touch it.
    other = threading.Thread(target=lambda: gate.slot("/v1/account/accounts", "uid:3").__enter__())
    other.start()
    other.join()
    gate.settle()
    assert gate.in_flight() == 1


def test_the_reserve_is_at_most_a_quarter_of_a_venues_cap(settings):
    from exchanges import venue_state
    from exchanges.registry import get

    venue_state.forget_process_state()
    settings.HTX_MAX_CONCURRENT_REQUESTS = 48
    assert venue_state.gate_for(get("htx")).reserved == 8
    venue_state.forget_process_state()
    settings.HTX_MAX_CONCURRENT_REQUESTS = 4
    assert venue_state.gate_for(get("htx")).reserved == 1
    venue_state.forget_process_state()


def test_a_threads_own_connection_survives_redis_closing_it_and_forgetting_the_script(gate):
    """Each thread admits on its own connection to Redis (Gate._call). When Redis closes it (a
    restart) the next admission opens it again; when Redis no longer knows the script (a new or
    flushed server) it is loaded again: neither is a failure the check would see."""
    with gate.slot("/v1/account/accounts", "uid:1"):
        pass
    gate.settle()
    wire_id = gate._call("CLIENT", "ID")
    assert gate.client.client_kill_filter(_id=wire_id) == 1
    with gate.slot("/v1/account/accounts", "uid:1"):
        assert gate.in_flight() == 1
    gate.settle()
    gate.client.script_flush()
    with gate.slot("/v1/account/accounts", "uid:1"):
        assert gate.in_flight() == 1
    gate.settle()
    assert gate.in_flight() == 0


def test_a_redis_that_does_not_answer_in_time_is_not_asked_twice(gate, monkeypatch):
    """A timeout may come after Redis ran the admission: it is not sent again (that would hold
    a second slot), the caller is told the gate is unavailable."""
    with gate.slot("/v1/account/accounts", "uid:1"):
        pass
    gate.settle()
    wire = gate._local.wire
    sent = []
    real_send = wire.send_packed_command

    def send(packed, **kwargs):
        sent.append(b"".join(packed).split(b"\r\n")[2].decode())  # the command's name
        real_send(packed, **kwargs)

    def late(*args, **kwargs):
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(wire, "send_packed_command", send)
    monkeypatch.setattr(wire, "read_response", late)
    with pytest.raises(GateUnavailable), gate.slot("/v1/account/accounts", "uid:1"):
        pass
    assert sent == ["EVALSHA"]


def test_requests_sent_together_are_admitted_together_as_far_as_the_cap_and_limits_allow(gate):
    """``slots``: one script call admits as many of the paths as the cap and every limit allow
    now, in order (the rest wait for the caller's next admission), and charges only those."""
    with gate.slots(["/v1/account/accounts"] * 5, "uid:1") as admitted:
        assert admitted == gate.cap == gate.in_flight() == 3
    assert gate.in_flight() == 3  # held until the thread's next admission or settle
    with gate.slots(["/v1/account/accounts"] * 2, "uid:1") as admitted:
        assert admitted == 2 and gate.in_flight() == 2  # the three went with this admission
    gate.settle()
    assert gate.in_flight() == 0

    gate.cap = 100
    window = f"{gate.prefix}:rate:uid:2:api-key"
    allowed = int(LIMITS["api-key"].limit * SAFETY)
    with gate.slots(["/v2/user/api-key"] * (allowed + 4), "uid:2") as admitted:
        assert admitted == allowed == gate.client.zcard(window)  # the others were not charged
    gate.settle()
    # Two paths with limits of their own: both counted, each against its own window.
    with gate.slots(["/v1/account/accounts", "/v2/user/api-key"], "uid:3") as admitted:
        assert admitted == 2
    assert gate.client.zcard(f"{gate.prefix}:rate:uid:3:accounts") == 1
    assert gate.client.zcard(f"{gate.prefix}:rate:uid:3:api-key") == 1
    # None of them fits: the first waits as one request would, then says busy.
    gate.max_wait_seconds = 0.1
    with pytest.raises(GateBusy), gate.slots(["/v2/user/api-key"] * 2, "uid:2"):
        pytest.fail("admitted beyond HTX's limit")
    gate.settle()
    assert gate.in_flight() == 0
