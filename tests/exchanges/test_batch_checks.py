"""Checks in batches (the sweeper's messages, CHECK_BATCH_SIZE; issue #12, target 1): claimed in
one UPDATE, run side by side on the check threads (a slow key delays no other), the plain
refreshes written together in one transaction, and every rule of a check alone still holding: the
claim as a token, "Refresh now" seen at write time, a failure or a new status written at once, a
batch never outliving its claim. Real HTX sandbox, real database. Most tests run the checks in the
test's thread (tests/conftest.py); the last ones use the threads, outside a test transaction."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchanges import batches, claims, keycheck, recording, services
from exchanges.models import BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")
# What a refresh changes by its nature; everything else must come out of a batch as it comes out
# of a check alone.
MOVING = {"latest_snapshot", "next_check_at", "last_verified_at", "last_refreshed_at", "last_checked_at",
          "updated_at", "clock_skew_ms"}  # fmt: skip


def _keys(sandbox, count: int) -> list[tuple[str, str]]:
    """``count`` working keys, each its own HTX account holding what the demo good key holds."""
    keys = []
    for n in range(count):
        access_key, secret = f"batch{n:03d}-0000aaaa-1111bbbb-2222c", f"secret{n:03d}-3333dddd-4444eeee-5555f"
        entry = copy.deepcopy(sandbox.accounts[GOOD[0]])
        entry.update(secret=secret, uid=71_000_000 + n)
        for number, account in enumerate(entry["accounts"]):
            account["id"] = 91_000_000 + n * 10 + number
        sandbox.accounts[access_key] = entry
        keys.append((access_key, secret))
    return keys


def _connected(owner, sandbox, count: int) -> list[ExchangeConnection]:
    rows = []
    for access_key, secret in _keys(sandbox, count):
        row = services.connection_create(
            owner=owner, exchange="htx", label="", access_key=access_key, secret_key=secret
        )
        assert keycheck.connection_check(connection_id=row.pk) == Status.CONNECTED
        rows.append(row)
    return rows


def _make_due(rows) -> list[int]:
    pks = [row.pk for row in rows]
    ExchangeConnection.objects.filter(pk__in=pks).update(next_check_at=timezone.now())
    return pks


def _state(pk: int) -> dict:
    row = ExchangeConnection.objects.get(pk=pk)
    fields = {name: getattr(row, name) for name in recording.CHECK_FIELDS if name not in MOVING}
    lines = sorted(
        (line.account_type, line.currency, line.available, line.in_orders, line.total, line.value_usdt)
        for line in row.latest_snapshot.lines.all()
    )
    return {**fields, "lines": lines, "events": ConnectionEvent.objects.filter(connection=row).count()}


def test_a_batch_writes_what_checks_one_at_a_time_write(sandbox, alice):
    rows = _connected(alice, sandbox, 4)
    pks = _make_due(rows)
    for pk in pks:  # one at a time, as before
        assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
    alone = {pk: _state(pk) for pk in pks}
    snapshots = BalanceSnapshot.objects.count()
    before = timezone.now()
    _make_due(rows)
    assert batches.connections_check(connection_ids=pks) == [Status.CONNECTED] * 4
    for pk in pks:
        batched = _state(pk)
        # The sandbox, like HTX, says how many days a key has left: its end moves with the clock.
        assert abs(batched.pop("key_expires_at") - alone[pk].pop("key_expires_at")) < timedelta(minutes=1)
        assert [(name, batched[name]) for name in alone[pk] if batched[name] != alone[pk][name]] == []
    assert BalanceSnapshot.objects.count() == snapshots + 4
    for row in ExchangeConnection.objects.filter(pk__in=pks).select_related("latest_snapshot"):
        assert row.last_refreshed_at == row.latest_snapshot.taken_at >= before
        assert row.last_checked_at >= before and row.claimed_until is None
        # Next refresh after the user's interval (with its jitter), as a check alone sets it.
        assert timedelta(seconds=250) < row.next_check_at - timezone.now() < timedelta(seconds=340)


def test_a_batch_costs_the_same_queries_whatever_its_size(sandbox, alice):
    rows = _connected(alice, sandbox, 6)
    counts = []
    for size in (2, 6):
        pks = _make_due(rows[:size])
        with CaptureQueriesContext(db) as captured:
            assert batches.connections_check(connection_ids=pks) == [Status.CONNECTED] * size
        counts.append(len(captured))
    # Claim 2; write 5: lock, the snapshots' keys, COPY the snapshots, COPY their lines, update the
    # rows (on SQLite 4: no keys query, INSERTs); and the transaction's own 2.
    assert counts[0] == counts[1] <= 9, counts


def test_a_row_another_worker_holds_is_left_to_it_and_an_id_sent_twice_is_checked_once(sandbox, alice):
    rows = _connected(alice, sandbox, 3)
    pks = _make_due(rows)
    held = timezone.now() + timedelta(seconds=60)
    ExchangeConnection.objects.filter(pk=pks[1]).update(claimed_until=held)
    before = ExchangeConnection.objects.get(pk=pks[1]).latest_snapshot_id
    statuses = batches.connections_check(connection_ids=[pks[0], pks[1], pks[2], pks[0]])
    assert statuses == [Status.CONNECTED, None, Status.CONNECTED, None]
    other = ExchangeConnection.objects.get(pk=pks[1])
    assert (other.claimed_until, other.latest_snapshot_id) == (held, before)  # untouched


def _checked(pks: list[int]) -> list[keycheck.PlainRefresh]:
    """A batch's checks done and not yet written, as connections_check has them before its write."""
    plain: list[keycheck.PlainRefresh] = []
    for row in claims.claim_many(pks):
        assert keycheck.check_claimed(row, plain) is None
    assert len(plain) == len(pks)
    return plain


def test_a_claim_taken_over_meanwhile_is_not_written_and_the_rest_are(sandbox, alice):
    rows = _connected(alice, sandbox, 3)
    pks = _make_due(rows)
    plain = _checked(pks)
    # The claim on the second row lapsed and another worker took it while this batch ran.
    theirs = timezone.now() + timedelta(seconds=120)
    ExchangeConnection.objects.filter(pk=pks[1]).update(claimed_until=theirs)
    before = ExchangeConnection.objects.get(pk=pks[1]).latest_snapshot_id
    written = recording.record_refreshes(plain)
    assert [row.pk for row in written] == [pks[0], pks[2]]
    other = ExchangeConnection.objects.get(pk=pks[1])
    assert (other.claimed_until, other.latest_snapshot_id) == (theirs, before)


def test_a_refresh_now_asked_during_the_batch_makes_that_row_due_again_at_once(sandbox, alice):
    rows = _connected(alice, sandbox, 2)
    pks = _make_due(rows)
    plain = _checked(pks)
    ExchangeConnection.objects.filter(pk=pks[0]).update(refresh_requested_at=timezone.now())
    recording.record_refreshes(plain)
    asked, other = (ExchangeConnection.objects.get(pk=pk) for pk in pks)
    assert asked.next_check_at <= timezone.now() < other.next_check_at


def test_a_refusal_in_a_batch_is_written_at_once_with_its_event_and_the_others_as_refreshes(sandbox, alice):
    rows = _connected(alice, sandbox, 3)
    pks = _make_due(rows)
    sandbox.accounts[rows[1].access_key]["ipAddresses"] = "203.0.113.7"  # HTX now refuses it
    assert batches.connections_check(connection_ids=pks) == [Status.CONNECTED, Status.IP_NOT_ALLOWED,
                                                              Status.CONNECTED]  # fmt: skip
    refused = ExchangeConnection.objects.get(pk=pks[1])
    assert refused.status == Status.IP_NOT_ALLOWED and refused.claimed_until is None
    assert ConnectionEvent.objects.filter(connection=refused, status=Status.IP_NOT_ALLOWED).exists()
    assert refused.failing_since is not None  # the alerts' episode starts, as for a check alone


def test_a_batch_that_runs_out_of_claim_time_lets_go_of_the_rest_for_the_sweeper(sandbox, alice, settings):
    """In the test's thread (CHECK_THREADS=0), the checks run one after the other: those not
    started by half the claim's lifetime are let go. (With check threads, the same rule holds for
    checks still waiting for a thread.)"""
    rows = _connected(alice, sandbox, 3)
    pks = _make_due(rows)
    sandbox.faults.latency_ms = 150  # three requests: ~0.45 s a check
    settings.CHECK_CLAIM_SECONDS = 0.5  # the batch starts no check after 0.25 s
    statuses = batches.connections_check(connection_ids=pks)
    assert statuses[0] == Status.CONNECTED and statuses[1:] == [None, None]
    for row in ExchangeConnection.objects.filter(pk__in=pks[1:]):
        assert row.claimed_until is None and row.next_check_at <= timezone.now()  # the sweeper sends it


@pytest.mark.django_db(transaction=True)
def test_on_the_check_threads_a_slow_key_delays_no_other_key_of_its_batch(sandbox, alice, settings):
    from tests.faults._procs import spot_balance_path

    settings.CHECK_THREADS = 4
    rows = _connected(alice, sandbox, 4)
    pks = _make_due(rows)
    slow = rows[0]
    sandbox.faults.replace({"latency_ms": 1500, "paths": [spot_balance_path(sandbox, slow.access_key)]})
    started = timezone.now()
    assert batches.connections_check(connection_ids=pks) == [Status.CONNECTED] * 4
    took = {row.pk: row.last_refreshed_at - started for row in ExchangeConnection.objects.filter(pk__in=pks)}
    assert took[slow.pk] >= timedelta(seconds=1.5)
    # The others were checked beside it and written as soon as they were in, not after it.
    assert all(took[pk] < timedelta(seconds=1) for pk in pks[1:]), took
    assert all(row.claimed_until is None for row in ExchangeConnection.objects.filter(pk__in=pks))


@pytest.mark.django_db(transaction=True)
def test_on_the_check_threads_a_check_that_raises_leaves_the_others_written_and_the_task_retries(
    sandbox, alice, settings, monkeypatch
):
    """A check raising (the database gone in the middle, say) is raised to the task, whose retry
    finds the checks already written no longer due; the others of the batch are written first."""
    settings.CHECK_THREADS = 4
    rows = _connected(alice, sandbox, 3)
    pks = _make_due(rows)
    real = keycheck.check_claimed

    def flaky(connection, plain=None):
        if connection.pk == pks[1]:
            raise RuntimeError("the database went away")
        return real(connection, plain)

    monkeypatch.setattr(batches, "check_claimed", flaky)
    with pytest.raises(RuntimeError):
        batches.connections_check(connection_ids=pks)
    after = {row.pk: row for row in ExchangeConnection.objects.filter(pk__in=pks)}
    assert after[pks[0]].last_refreshed_at > after[pks[1]].last_refreshed_at < after[pks[2]].last_refreshed_at
    assert after[pks[0]].next_check_at > timezone.now() and after[pks[2]].next_check_at > timezone.now()


def test_the_check_threads_take_timed_checks_before_the_others_waiting():
    """A paced (timed) check sent behind a wave's batches starts as soon as a thread is free,
    not after every check queued before it; within each kind, first come first served."""
    threads = batches._CheckThreads(1)
    busy, order = threading.Event(), []
    threads.submit(busy.wait, 5)
    waiting = [threads.submit(order.append, f"wave {n}") for n in range(3)]
    timed = [threads.submit(order.append, f"timed {n}", timed=True) for n in range(2)]
    busy.set()
    for future in waiting + timed:
        future.result(timeout=5)
    assert order == ["timed 0", "timed 1", "wave 0", "wave 1", "wave 2"]
    failing = threads.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
