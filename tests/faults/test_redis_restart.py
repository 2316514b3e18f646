"""Issue #6, scenario 2: Redis killed with SIGKILL and restarted empty (no persistence) while
connections are Verifying. Every queued message is gone; beat's sweeper brings every
connection to its final status with no user action."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.utils import timezone

from tests.conftest import wait_for
from tests.faults.conftest import (
    add_sandbox_keys,
    elapsed,
    key_checks,
    publishing_to,
    queued_messages,
    submit_keys,
    swept,
    tally,
    wait_until_done,
)

N = 30
BROKER_LOST = "Connection to broker lost"


@pytest.mark.worker
def test_redis_restarted_empty_while_verifying_loses_no_submission(
    own_redis, celery_fleet, sandbox, htx_calls, alice
):
    start, since = time.monotonic(), timezone.now()
    sandbox.faults.latency_ms = 300  # a few HTX calls: 1 to 2 s per check
    celery_fleet.broker_url = own_redis.url  # broker and cache of the worker and beat
    worker = celery_fleet.spawn_worker("a", concurrency=4)
    beat = celery_fleet.spawn_beat()
    celery_fleet.ready(worker, beat)
    keys = add_sandbox_keys(sandbox, N)
    with publishing_to(own_redis.url):
        pks = submit_keys(alice, keys)
    by_key = dict(zip(pks, keys, strict=True))
    broker = own_redis.client()

    # Kill Redis once some checks are done, some are half-way through with HTX, and most
    # submissions are still only messages in Redis.
    def mid_wave():
        t = tally(pks, since=since)
        talking = {pk for pk in t.claimed - t.done if key_checks(htx_calls, by_key[pk])}
        return t if len(t.done) >= 3 and talking and len(t.pending) >= N // 2 else None

    wait_for(mid_wave, timeout=60, interval=0.05, message=lambda: f"{tally(pks, since=since)}")
    in_redis = queued_messages(broker)
    own_redis.kill()
    running = worker.busy()  # check messages the worker had taken and not finished
    at_kill = tally(pks, since=since)
    interrupted = at_kill.claimed - at_kill.done
    assert in_redis >= N // 2 - len(interrupted), f"messages in Redis at the kill={in_redis}: {at_kill}"

    # Redis stays down until the worker has noticed and the checks it was running have ended
    # (they cannot go on without Redis: HTX admission and the tickers cache live there); then
    # it comes back on the same port with nothing in it.
    wait_for(
        lambda: BROKER_LOST in worker.log() and not worker.busy(),
        timeout=40,
        message=lambda: worker.log()[-3000:],
    )
    results, raised = worker.succeeded(), worker.failed()
    # How the checks running at the kill ended: a result, nothing (they let go of the row), or
    # an exception (the row's claim then runs out).
    ended = Counter("raised" if t in raised else results[t] for t in running)
    own_redis.start()
    left_in_redis = queued_messages(broker)
    assert left_in_redis == 0, f"Redis kept {left_in_redis} messages across the restart"

    final = wait_until_done(pks, since=since, timeout=90, fleet=celery_fleet)
    results = worker.succeeded()
    duplicates = sum(1 for t, r in results.items() if r == "None" and t not in running)
    htx_reread = [pk for pk in pks if key_checks(htx_calls, by_key[pk]) > 1]
    counts = (
        f"submitted={N} done before the kill={len(at_kill.done)} Verifying at the kill="
        f"{len(at_kill.pending)} (mid-check={len(interrupted)}, which ended {dict(ended)}; "
        f"messages lost with Redis={in_redis}) "
        f"final: connected={len(final.done)} lost={len(final.pending)} results written twice="
        f"{len(final.written_twice)} | harmless: checks re-read from HTX={len(htx_reread)}, "
        f"duplicate messages that found nothing to do={duplicates} "
        f"| recovered: queued again by beat's sweeper={swept([worker])} ({elapsed(start)})"
    )
    print(counts)
    assert len(final.done) == N and not final.pending, counts
    assert not final.written_twice, counts
    assert all(final.verified_events[pk] == 1 for pk in pks), counts
    assert set(htx_reread) <= interrupted, counts
    assert worker.alive and beat.alive, "a process died with Redis instead of reconnecting"
