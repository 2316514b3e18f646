"""snapshots_prune in SQL: the retention rules at their edges, lines, latest snapshots, several
connections, prunes that follow each other (SnapshotPruneMark), and a comparison with the
Python walk it replaced on many prunes in a row."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from exchanges import retention
from exchanges.models import BalanceLine, BalanceSnapshot, ExchangeConnection, SnapshotPruneMark, Status

pytestmark = pytest.mark.django_db

# A fixed clock, midday UTC, so no "same day" below straddles midnight.
NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
US = timedelta(microseconds=1)


@pytest.fixture(autouse=True)
def _retention(settings):
    settings.SNAPSHOT_HOURLY_DAYS = 7
    settings.SNAPSHOT_DAILY_DAYS = 365


def _connection(owner, tail: str = "0001") -> ExchangeConnection:
    return ExchangeConnection.objects.create(
        owner=owner, status=Status.CONNECTED, established=True, access_key_head="seed", access_key_tail=tail
    )


def _snap(c: ExchangeConnection, at: datetime, *, lines: int = 0, latest: bool = False) -> int:
    s = BalanceSnapshot.objects.create(connection=c, total_usdt=Decimal(1))
    BalanceSnapshot.objects.filter(pk=s.pk).update(taken_at=at)
    BalanceLine.objects.bulk_create(
        BalanceLine(
            snapshot=s, currency=f"c{i}", available=Decimal(1), in_orders=Decimal(0), total=Decimal(1)
        )
        for i in range(lines)
    )
    if latest:
        ExchangeConnection.objects.filter(pk=c.pk).update(latest_snapshot=s)
    return s.pk


def _kept() -> set[int]:
    return set(BalanceSnapshot.objects.values_list("pk", flat=True))


def _python_walk(now: datetime, hourly_days: int, daily_days: int) -> set[int]:
    """What the Python walk snapshots_prune used to be would delete now (ties: the higher id is
    the newer), without deleting it."""
    keep_all_after, hourly_after, daily_after = (
        now - D,
        now - timedelta(days=hourly_days),
        now - timedelta(days=daily_days),
    )
    latest = set(
        ExchangeConnection.objects.exclude(latest_snapshot=None).values_list("latest_snapshot", flat=True)
    )
    kept, doomed = set(), set()
    rows = BalanceSnapshot.objects.filter(taken_at__lt=keep_all_after).order_by(
        "connection_id", "-taken_at", "-id"
    )
    for pk, connection_id, taken_at in rows.values_list("pk", "connection_id", "taken_at"):
        if pk in latest:
            continue
        if taken_at < daily_after:
            doomed.add(pk)
            continue
        bucket = taken_at.strftime("%Y%m%d%H" if taken_at >= hourly_after else "%Y%m%d")
        if (connection_id, bucket) in kept:
            doomed.add(pk)
        else:
            kept.add((connection_id, bucket))
    return doomed


def test_hour_buckets_keep_their_newest_and_the_last_day_is_kept_whole(alice):
    c = _connection(alice)
    _snap(c, NOW, latest=True)
    day_edge = NOW - D
    at_edge = _snap(c, day_edge)  # exactly a day old: still in the last day
    just_past_a = _snap(c, day_edge - 20 * US)  # 12:29:59.99998 the day before: hour 12
    just_past_b = _snap(c, day_edge - 10 * US)  # newer, same hour: kept
    recent = [_snap(c, NOW - timedelta(minutes=m)) for m in (5, 10, 600, 1435)]  # < 1 day: all kept
    hour = (NOW - 2 * D).replace(minute=0)
    before_hour = _snap(c, hour - US)  # 11:59:59.999999: alone in hour 11
    on_hour = _snap(c, hour)  # 12:00:00 goes: a newer one in hour 12
    newest_of_hour = _snap(c, hour + 10 * US)
    removed = retention.snapshots_prune(now=NOW)
    kept = _kept()
    assert {at_edge, just_past_b, before_hour, newest_of_hour, *recent} <= kept
    assert {just_past_a, on_hour}.isdisjoint(kept)
    assert removed == 2


def test_day_buckets_beyond_the_hourly_days_and_nothing_beyond_the_daily_days(alice):
    c = _connection(alice)
    _snap(c, NOW, latest=True)
    hourly_edge, daily_edge = NOW - 7 * D, NOW - 365 * D
    # At the hourly edge: the same UTC hour, but one side is an hour bucket, the other a day's.
    hour_side = _snap(c, hourly_edge)
    day_side = _snap(c, hourly_edge - US)
    day_side_older = _snap(c, hourly_edge - 5 * H)  # same day as day_side: goes
    midnight = (NOW - 30 * D).replace(hour=0, minute=0)
    late = _snap(c, midnight - US)  # 23:59:59.999999: the day before
    early = _snap(c, midnight)
    early_newer = _snap(c, midnight + 23 * H)  # newest of its day
    at_daily_edge = _snap(c, daily_edge)
    past_daily_edge = _snap(c, daily_edge - US)
    ancient = _snap(c, NOW - 900 * D)
    removed = retention.snapshots_prune(now=NOW)
    kept = _kept()
    assert {hour_side, day_side, late, early_newer, at_daily_edge} <= kept
    assert {day_side_older, early, past_daily_edge, ancient}.isdisjoint(kept)
    assert removed == 4


def test_a_latest_snapshot_is_kept_however_old_and_takes_no_buckets_place(alice):
    c = _connection(alice)
    ancient = _snap(c, NOW - 1000 * D, latest=True)  # the connection stopped refreshing long ago
    _snap(c, NOW - 1000 * D - 5 * US)  # older still: goes
    assert retention.snapshots_prune(now=NOW) == 1
    assert _kept() == {ancient}
    # In an hour bucket: the latest and the newest of the others are both kept.
    c2 = _connection(alice, "0002")
    latest = _snap(c2, NOW - 3 * D, latest=True)
    same_hour = [_snap(c2, NOW - 3 * D - timedelta(minutes=m)) for m in (5, 10, 15)]
    assert retention.snapshots_prune(now=NOW + H) == 2
    assert {latest, same_hour[0]} <= _kept() and same_hour[1] not in _kept()
    # It refreshes again: the old latest is an ordinary snapshot of its bucket and the older goes.
    _snap(c2, NOW + H, latest=True)
    assert retention.snapshots_prune(now=NOW + 2 * H) == 1
    assert latest in _kept() and same_hour[0] not in _kept()
    assert ExchangeConnection.objects.get(pk=c.pk).latest_snapshot_id == ancient


def test_lines_go_with_their_snapshot_and_stay_with_the_kept(alice):
    c = _connection(alice)
    latest = _snap(c, NOW, lines=3, latest=True)
    newest = _snap(c, NOW - 2 * D, lines=4)
    older = _snap(c, NOW - 2 * D - timedelta(minutes=1), lines=5)
    gone = _snap(c, NOW - 400 * D, lines=6)
    assert retention.snapshots_prune(now=NOW) == 2
    assert not BalanceLine.objects.filter(snapshot_id__in=[older, gone]).exists()
    assert BalanceLine.objects.filter(snapshot_id=latest).count() == 3
    assert BalanceLine.objects.filter(snapshot_id=newest).count() == 4
    assert BalanceLine.objects.count() == 7


def test_two_connections_have_buckets_of_their_own(alice, bob):
    a, b = _connection(alice, "000a"), _connection(bob, "000b")
    at = NOW - 2 * D
    a1, a2 = _snap(a, at), _snap(a, at - timedelta(minutes=1))
    b1, b2 = _snap(b, at - timedelta(minutes=2)), _snap(b, at - timedelta(minutes=3))
    a_day, b_day = _snap(a, NOW - 30 * D), _snap(b, NOW - 30 * D + H)  # alone in their day
    assert retention.snapshots_prune(now=NOW) == 2
    assert _kept() == {a1, b1, a_day, b_day}
    assert {a2, b2}.isdisjoint(_kept())


def test_a_second_prune_deletes_nothing_and_reads_only_what_aged_since(alice):
    c = _connection(alice)
    _snap(c, NOW, latest=True)
    for minutes in range(0, 60 * 24 * 10, 5):  # ten days of 5-minute refreshes, 90 s off the hour
        _snap(c, NOW - timedelta(minutes=minutes, seconds=90))
    newest_id = max(_kept())
    expected = _python_walk(NOW, 7, 365)
    assert retention.snapshots_prune(now=NOW) == len(expected) > 2000
    mark = SnapshotPruneMark.objects.get()
    assert mark.pruned_at == NOW and mark.max_snapshot_id == newest_id
    assert retention.snapshots_prune(now=NOW) == 0
    with CaptureQueriesContext(db) as captured:
        assert retention.snapshots_prune(now=NOW + timedelta(seconds=30)) == 0
    ranking = next(q["sql"] for q in captured.captured_queries if "ROW_NUMBER" in q["sql"])
    assert "s.taken_at >= " in ranking.split("WHERE", 1)[1]  # restricted to ranges, not every row
    # An hour later: 12 snapshots aged past a day (11 go: 6 of hour 12, joining the one kept
    # there, and 5 of hour 13) and one hour past 7 days (1 goes: its day keeps its newest).
    expected = _python_walk(NOW + H, 7, 365)
    assert retention.snapshots_prune(now=NOW + H) == len(expected) == 12
    assert expected.isdisjoint(_kept())


def test_a_snapshot_arriving_late_into_a_thinned_bucket_is_thinned_next_time(alice):
    c = _connection(alice)
    _snap(c, NOW, latest=True)
    kept = _snap(c, NOW - 2 * D)
    assert retention.snapshots_prune(now=NOW) == 0
    late_newer = _snap(c, NOW - 2 * D + timedelta(minutes=10))  # same hour, stored afterwards
    late_older_day = _snap(c, NOW - 30 * D)
    day_kept = _snap(c, NOW - 30 * D + H)
    assert retention.snapshots_prune(now=NOW + timedelta(minutes=1)) == 2
    assert {late_newer, day_kept} <= _kept() and {kept, late_older_day}.isdisjoint(_kept())


def test_many_late_arrivals_rank_everything_again(alice, monkeypatch):
    monkeypatch.setattr(retention, "PRUNE_BUCKETS_MAX", 2)
    c = _connection(alice)
    _snap(c, NOW, latest=True)
    assert retention.snapshots_prune(now=NOW) == 0
    late = [_snap(c, NOW - 3 * D - timedelta(minutes=m)) for m in (1, 2, 3, 4)]  # one bucket, 4 rows
    with CaptureQueriesContext(db) as captured:
        assert retention.snapshots_prune(now=NOW) == 3
    ranking = next(q["sql"] for q in captured.captured_queries if "ROW_NUMBER" in q["sql"])
    assert "s.connection_id = " not in ranking  # every snapshot older than a day was ranked
    assert _kept() & set(late) == {late[0]}


def test_changed_settings_or_an_earlier_clock_rank_everything_again(alice, settings):
    c = _connection(alice)
    _snap(c, NOW, latest=True)
    same_day = [_snap(c, NOW - 3 * D - timedelta(hours=h)) for h in (0, 1, 2)]
    assert retention.snapshots_prune(now=NOW) == 0  # three hours of one day, hourly for 7 days
    settings.SNAPSHOT_HOURLY_DAYS = 2
    assert retention.snapshots_prune(now=NOW + timedelta(minutes=1)) == 2
    assert _kept() & set(same_day) == {same_day[0]}
    extra = _snap(c, NOW - 10 * D)
    extra_older = _snap(c, NOW - 10 * D - H)
    assert retention.snapshots_prune(now=NOW - D) == 1  # before the mark's: everything ranked
    assert extra in _kept() and extra_older not in _kept()


def test_many_prunes_in_a_row_delete_what_the_python_walk_would(alice, bob, settings):
    """Three connections refreshed at irregular intervals over 20 days with hourly 3 / daily 12
    days, pruned every 20 minutes to 3 hours, with late arrivals, a connection that stops and
    restarts, and a connection whose latest is cleared: each prune deletes exactly the set the
    Python walk would have."""
    settings.SNAPSHOT_HOURLY_DAYS, settings.SNAPSHOT_DAILY_DAYS = 3, 12
    rng = random.Random(6)
    conns = [_connection(alice, "000a"), _connection(alice, "000b"), _connection(bob, "000c")]
    clock = NOW - 20 * D
    for c in conns:
        _snap(c, clock, lines=1, latest=True)
    end = NOW
    prunes = 0
    while clock < end:
        step = timedelta(minutes=rng.choice([20, 40, 60, 180]))
        # Refreshes in (clock, clock + step]: every few minutes, except the stopped connection.
        t = clock
        while t < clock + step:
            t += timedelta(minutes=rng.randint(3, 9), microseconds=rng.randint(0, 999_999))
            c = rng.choice(conns)
            stopped = c is conns[1] and NOW - 14 * D < t < NOW - 6 * D
            if not stopped:
                _snap(c, t, lines=rng.randint(0, 2), latest=True)
        if rng.random() < 0.1:  # a late arrival, somewhere in the kept history
            _snap(rng.choice(conns), t - timedelta(hours=rng.randint(25, 24 * 15)), lines=1)
        if rng.random() < 0.02:
            ExchangeConnection.objects.filter(pk=conns[2].pk).update(latest_snapshot=None)
        clock += step
        expected = _python_walk(clock, 3, 12)
        before = _kept()
        assert retention.snapshots_prune(now=clock) == len(expected)
        assert before - _kept() == expected
        prunes += 1
    assert prunes > 150
    assert not BalanceLine.objects.exclude(snapshot_id__in=_kept()).exists()
    assert _python_walk(clock, 3, 12) == set()
