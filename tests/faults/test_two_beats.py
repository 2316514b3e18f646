"""Issue #6, scenario 5: two beat processes started by mistake. Each sweep queues every due
connection twice, yet each connection is refreshed once per interval: never two balance
snapshots closer together than the shortest interval (BALANCE_REFRESH_SECONDS x 0.9 jitter)."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from django.utils import timezone

from exchanges.models import BalanceSnapshot, ExchangeConnection
from tests.conftest import wait_for
from tests.faults.conftest import add_sandbox_keys, connected_rows, elapsed, none_results, swept

N = 10
INTERVAL = 5  # BALANCE_REFRESH_SECONDS for this test
REFRESHES = 3  # observed per connection: the first one and two intervals


@pytest.mark.worker
def test_two_beats_still_refresh_each_connection_once_per_interval(celery_fleet, sandbox, alice):
    start, since = time.monotonic(), timezone.now()
    sandbox.faults.latency_ms = 100  # a few HTX calls: about 0.5 s per check
    celery_fleet.env.update(BALANCE_REFRESH_SECONDS=str(INTERVAL), SWEEP_SECONDS="1")
    pks = connected_rows(alice, add_sandbox_keys(sandbox, N), due=timezone.now())
    worker = celery_fleet.spawn_worker("a", concurrency=4)
    beats = [celery_fleet.spawn_beat("one"), celery_fleet.spawn_beat("two")]
    celery_fleet.ready(worker, *beats)

    def taken() -> dict[int, list]:
        times = defaultdict(list)
        rows = BalanceSnapshot.objects.filter(connection_id__in=pks, taken_at__gte=since)
        for pk, at in rows.order_by("taken_at").values_list("connection_id", "taken_at"):
            times[pk].append(at)
        return times

    wait_for(
        lambda: all(len(taken()[pk]) >= REFRESHES for pk in pks),
        timeout=90,
        interval=0.25,
        message=lambda: f"snapshots per connection={[len(taken()[pk]) for pk in pks]}\n{celery_fleet.logs()}",
    )
    for beat in beats:
        beat.terminate()
    for beat in beats:
        beat.wait(30)
    # Let checks already queued finish, so every refresh that will happen is counted.
    wait_for(
        lambda: not ExchangeConnection.objects.filter(pk__in=pks, claimed_until__gt=timezone.now()).exists(),
        timeout=30,
    )

    times = taken()
    gaps = [(b - a).total_seconds() for pk in pks for a, b in zip(times[pk], times[pk][1:], strict=False)]
    sent = [beat.count("Sending due task queue-due-checks") for beat in beats]
    ran = len(worker.succeeded("exchanges.tasks.queue_due_checks"))
    counts = (
        f"connections={N} interval={INTERVAL}s sweeps sent by each beat={sent}, run={ran}; check "
        f"messages queued by the sweeps={swept([worker])} refreshes={sum(len(t) for t in times.values())} "
        f"per connection={sorted(len(times[pk]) for pk in pks)} shortest gap between two refreshes of "
        f"one connection={min(gaps):.2f}s | harmless: duplicate messages that found the refresh done or "
        f"running={none_results([worker])} ({elapsed(start)})"
    )
    print(counts)
    assert all(n >= 3 for n in sent), f"both beats must have been sweeping: {counts}"
    assert min(gaps) >= INTERVAL * 0.9, f"a connection was refreshed twice in one interval: {counts}"
    # The worker ran the sweeps of both beats (more than one beat sent), not just one beat's.
    assert ran > max(sent), counts
