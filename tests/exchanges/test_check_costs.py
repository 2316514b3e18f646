"""What a refresh costs HTX and how checks share work: the clock measured once per process, the
UID not asked again, tickers shared, batches, and the HTX gate in front of every call."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from exchanges import batches, keycheck, services, tasks, venue_state
from exchanges.models import ExchangeConnection, Status
from exchanges.venues.htx.adapter import KEPT_ACCOUNTS_SECONDS
from exchanges.venues.htx.venue import HTX
from exchanges.venues.kit.gate import Gate
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")
SUB_USER = demo_key("demo: sub-user")


def _connected(owner, sandbox) -> ExchangeConnection:
    connection = services.connection_create(
        owner=owner, exchange="htx", label="", access_key=GOOD[0], secret_key=GOOD[1]
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    return connection


def _make_due(*pks: int) -> None:
    ExchangeConnection.objects.filter(pk__in=pks).update(next_check_at=timezone.now())


def _calls(sandbox, action) -> dict[str, int]:
    """HTX requests by endpoint while `action` runs (from the sandbox's own counters)."""
    sandbox.reset_rate_limits()
    action()
    stats = sandbox.stats.snapshot()
    return {"requests": stats["requests"], **stats["busiest_window_per_uid"]}


def test_a_refresh_of_a_known_key_costs_htx_its_key_info_and_balances(sandbox, alice):
    connection = _connected(alice, sandbox)
    _make_due(connection.pk)
    calls = _calls(sandbox, lambda: keycheck.connection_check(connection_id=connection.pk))
    # Key info and one balance per account the key sees; not the clock, the UID (a key never
    # changes account), the tickers (shared for TICKERS_CACHE_SECONDS) or the account list
    # (kept from the first check for KEPT_ACCOUNTS_SECONDS).
    accounts = len(sandbox.accounts[GOOD[0]]["accounts"])
    assert calls["requests"] == 1 + accounts, calls
    assert "uid" not in calls and "accounts" not in calls and calls["api-key"] == 1


def test_the_account_list_is_kept_from_the_first_check_and_read_again_after_an_hour(sandbox, alice):
    connection = _connected(alice, sandbox)
    kept = ExchangeConnection.objects.get(pk=connection.pk).venue_kept
    sandbox_ids = sorted(a["id"] for a in sandbox.accounts[GOOD[0]]["accounts"])
    assert sorted(row[0] for row in kept["accounts"]) == sandbox_ids
    assert abs(kept["read_at"] - time.time()) < 60
    # An hour later the list stands in no longer: the refresh asks HTX and keeps the new one.
    stale = {**kept, "read_at": kept["read_at"] - KEPT_ACCOUNTS_SECONDS - 1}
    ExchangeConnection.objects.filter(pk=connection.pk).update(venue_kept=stale)
    _make_due(connection.pk)
    calls = _calls(sandbox, lambda: keycheck.connection_check(connection_id=connection.pk))
    assert calls["accounts"] == 1 and calls["api-key"] == 1, calls
    assert ExchangeConnection.objects.get(pk=connection.pk).venue_kept["read_at"] > stale["read_at"]


@pytest.mark.parametrize(
    "kept",
    [None, {}, {"accounts": [], "read_at": 0}, {"accounts": [["x", "spot", "", ""]], "read_at": 1}, "text"],
)
def test_a_kept_account_list_of_another_shape_is_not_trusted(sandbox, alice, kept):
    connection = _connected(alice, sandbox)
    ExchangeConnection.objects.filter(pk=connection.pk).update(venue_kept=kept)
    _make_due(connection.pk)
    calls = _calls(sandbox, lambda: keycheck.connection_check(connection_id=connection.pk))
    assert calls["accounts"] == 1, calls
    assert ExchangeConnection.objects.get(pk=connection.pk).status == Status.CONNECTED


def test_a_sub_user_key_lists_its_accounts_at_every_check(sandbox, alice):
    # HTX will not describe a sub-user key: the accounts call is the only proof the key works.
    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=SUB_USER[0], secret_key=SUB_USER[1]
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    assert ExchangeConnection.objects.get(pk=connection.pk).venue_kept is None
    _make_due(connection.pk)
    calls = _calls(sandbox, lambda: keycheck.connection_check(connection_id=connection.pk))
    assert calls["accounts"] == 1, calls


def test_the_clock_is_measured_once_per_process_and_again_after_htx_refuses_a_timestamp(sandbox, alice):
    first = _connected(alice, sandbox)
    sandbox.clock_offset_ms = (
        600_000  # beyond HTX's 5 minutes: HTX's clock moves: our cached offset is now wrong
    )
    _make_due(first.pk)
    assert keycheck.connection_check(connection_id=first.pk) == Status.TEMPORARY  # refused once
    _make_due(first.pk)
    assert keycheck.connection_check(connection_id=first.pk) == Status.CONNECTED  # measured again
    first.refresh_from_db()
    assert abs(first.clock_skew_ms - 600_000) < 2_000


def test_a_batch_runs_each_check_once(sandbox, alice):
    pk = _connected(alice, sandbox).pk
    _make_due(pk)
    # The same id twice: the second finds it no longer due (as after a retried batch).
    assert tasks.check_connections.apply(args=[[pk, pk]]).get() == [Status.CONNECTED, None]


def test_the_sweeper_sends_batches_when_asked(alice, settings, monkeypatch):
    sent: list = []
    monkeypatch.setattr(tasks.check_connections, "delay", lambda ids: sent.append(list(ids)))
    monkeypatch.setattr(tasks.check_connection, "delay", lambda pk: sent.append(pk))
    key = iter(range(1000, 2000))
    pks = [
        ExchangeConnection.objects.create(
            owner=alice,
            access_key=f"{next(key)}",
            secret_key="s",
            access_key_fingerprint=f"fp-{n}",
            status=Status.CONNECTED,
            next_check_at=timezone.now(),
        ).pk
        for n in range(5)
    ]
    settings.CHECK_BATCH_SIZE = 2
    assert tasks.queue_due_checks() == 5
    assert sorted(pk for batch in sent for pk in batch) == sorted(pks)
    assert [len(batch) for batch in sent] == [2, 2, 1]
    sent.clear()
    assert tasks.queue_due_checks() == 0  # still waiting in the queue: not sent again
    assert sent == []
    tasks._unmark_queued(pks)  # as the checks do when they start
    settings.CHECK_BATCH_SIZE = 1
    assert tasks.queue_due_checks() == 5
    assert sorted(sent) == sorted(pks)


def test_a_sweep_that_cannot_send_leaves_nothing_marked(alice, monkeypatch):
    from kombu.exceptions import OperationalError

    def broker_down(pk):
        raise OperationalError("down")

    monkeypatch.setattr(tasks.check_connection, "delay", broker_down)
    monkeypatch.setattr(tasks.check_connections, "delay", broker_down)  # batches (the default)
    ExchangeConnection.objects.create(
        owner=alice,
        access_key="k",
        secret_key="s",
        access_key_fingerprint="fp",
        status=Status.CONNECTED,
        next_check_at=timezone.now(),
    )
    with pytest.raises(OperationalError):
        tasks.queue_due_checks()
    monkeypatch.setattr(tasks.check_connection, "delay", lambda pk: None)
    monkeypatch.setattr(tasks.check_connections, "delay", lambda pks: None)
    assert tasks.queue_due_checks() == 1  # sent at the next sweep


def test_without_redis_a_check_lets_go_of_the_row_and_records_nothing(sandbox, alice, monkeypatch):
    connection = _connected(alice, sandbox)
    before = ExchangeConnection.objects.get(pk=connection.pk)
    dead = Gate(redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5), cap=5, lease_seconds=5)
    monkeypatch.setattr(venue_state, "gate_for", lambda venue: dead)
    _make_due(connection.pk)
    assert keycheck.connection_check(connection_id=connection.pk) is None
    after = ExchangeConnection.objects.get(pk=connection.pk)
    assert after.claimed_until is None  # free for the next sweep at once
    assert (after.status, after.last_checked_at, after.total_usdt) == (
        before.status,
        before.last_checked_at,
        before.total_usdt,
    )


def test_a_refresh_asked_by_a_web_server_whose_clock_is_ahead_is_done_once(sandbox, alice):
    """The web's clock 10 minutes ahead of the worker's: its "Refresh now" is served once, not
    again at every sweep for 10 minutes (checks compare the request, not clocks)."""
    connection = _connected(alice, sandbox)
    ahead = timezone.now() + timedelta(minutes=10)
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        refresh_requested_at=ahead, next_check_at=ahead
    )
    _make_due(connection.pk)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.next_check_at > timezone.now() + timedelta(minutes=4)
    assert keycheck.connection_check(connection_id=connection.pk) is None  # not due again


def test_no_free_slot_to_htx_is_not_a_status(sandbox, alice, monkeypatch):
    """Our own cap kept the check from HTX: the key's status and balance stay as they were (it
    is not "HTX is rate-limiting you"), and the row is free for the next sweep."""
    connection = _connected(alice, sandbox)
    client = venue_state.gate_for(HTX).client
    full = Gate(client, cap=0, lease_seconds=5, max_wait_seconds=0.05, prefix="test:full")
    monkeypatch.setattr(venue_state, "gate_for", lambda venue: full)
    _make_due(connection.pk)
    sandbox.stats.reset()
    assert keycheck.connection_check(connection_id=connection.pk) is None
    after = ExchangeConnection.objects.get(pk=connection.pk)
    assert (after.status, after.attempts, after.claimed_until) == (Status.CONNECTED, 0, None)
    assert after.next_check_at <= timezone.now()  # still due: the next sweep sends it
    assert sandbox.stats.snapshot()["requests"] == 0


def test_a_check_leaves_no_slot_held_at_any_venue(sandbox, alice):
    """keycheck settles the gates after a check and after a batch, so a worker thread that goes
    idle holds nothing at a venue."""
    connection = _connected(alice, sandbox)
    gate = venue_state.gate_for(connection.venue)
    _make_due(connection.pk)
    assert keycheck.connection_check(connection_id=connection.pk) is not None
    assert gate.in_flight() == 0
    _make_due(connection.pk)
    assert batches.connections_check(connection_ids=[connection.pk]) == ["connected"]
    assert gate.in_flight() == 0
    assert ExchangeConnection.objects.get(pk=connection.pk).claimed_until is None
