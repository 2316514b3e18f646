"""Issue #6, scenario 8: a rolling restart (SIGTERM, one worker after the other, each replaced
by a new one) in the middle of a balance refresh wave. Nothing is lost, even without beat's
sweeper to fall back on: a stopping worker finishes the checks it is running and gives the
messages it has not started back to Redis."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from exchanges.tasks import queue_due_checks
from tests.conftest import wait_for
from tests.faults.conftest import (
    add_sandbox_keys,
    connected_rows,
    elapsed,
    key_checks,
    none_results,
    tally,
    wait_until_done,
)

N = 30


def _running(worker) -> int:
    """Check messages (one check, or the sweeper's batches) the worker has taken and not finished."""
    return len(set(worker.received()) - set(worker.succeeded()))


@pytest.mark.worker
def test_a_rolling_restart_during_a_refresh_wave_loses_nothing(
    celery_fleet, sandbox, htx_calls, alice, settings
):
    start, since = time.monotonic(), timezone.now()
    # The sweeper's batches, smaller than the default 20 so that 30 keys make a wave of 15 messages
    # that lasts long enough for both workers to be stopped in the middle of it (a batch's checks
    # run side by side: a message takes as long as its slowest check).
    settings.CHECK_BATCH_SIZE = 2
    sandbox.faults.latency_ms = 600  # a few HTX calls: 2 to 4 s per check
    keys = add_sandbox_keys(sandbox, N)
    pks = connected_rows(alice, keys, due=timezone.now())
    old = [celery_fleet.spawn_worker("a"), celery_fleet.spawn_worker("b")]
    celery_fleet.ready(*old)
    assert queue_due_checks() == N  # the wave, as beat's sweeper sends it (no beat runs here)

    restarts = []
    for worker in old:
        # Stop it while it is in the middle of checks, as a deploy would, and start its successor.
        wait_for(lambda w=worker: _running(w) >= 1, timeout=60, interval=0.05, message=worker.log)
        running, done = _running(worker), len(tally(pks, since=since).done)
        worker.terminate()
        successor = celery_fleet.spawn_worker(f"{worker.name}2")
        celery_fleet.ready(successor)
        restarts.append((worker, running, done, worker.wait(60)))

    final = wait_until_done(pks, since=since, timeout=90, fleet=celery_fleet)
    workers = celery_fleet.workers()
    ran = {w.name: sum(1 for r in w.check_results() if r == "'connected'") for w in workers}
    unfinished = {w.name: _running(w) for w, *_ in restarts}
    htx_reread = [k for k in keys if key_checks(htx_calls, k) > 1]
    counts = (
        f"refreshes queued={N} refreshed={len(final.done)} lost={len(final.pending)} "
        f"refreshed twice={len(final.written_twice)} | SIGTERM landed with "
        f"{[(w.name, running) for w, running, _, _ in restarts]} check messages running, "
        f"{[done for _, _, done, _ in restarts]} of {N} done; exit codes="
        f"{[code for *_, code in restarts]} checks left unfinished by the stopped workers="
        f"{unfinished} | checks run per worker={ran} | HTX checks repeated={len(htx_reread)}, "
        f"duplicate messages={none_results(workers)} ({elapsed(start)})"
    )
    print(counts)
    assert len(final.done) == N and not final.pending, counts
    assert not final.written_twice, counts
    assert sum(ran.values()) == N, counts  # every check ran exactly once
    assert all(code == 0 for *_, code in restarts), counts  # a warm shutdown, not a crash
    assert not any(unfinished.values()), counts  # the stopped workers finished what they ran
    assert not htx_reread, counts  # so nothing had to be checked again
