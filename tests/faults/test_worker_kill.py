"""Issue #6, scenario 1: a worker killed with SIGKILL in the middle of verifications and
balance refreshes. Another worker and beat's sweeper finish every one of them, with no user
action, and no result is written twice."""

from __future__ import annotations

import os
import time

import pytest
import redis
from django.utils import timezone

from exchanges.tasks import check_connection
from tests.faults.conftest import (
    add_sandbox_keys,
    connected_rows,
    elapsed,
    key_checks,
    kill_when,
    none_results,
    submit_keys,
    swept,
    tally,
    wait_until_done,
)

N = 15  # verifications, and as many refreshes


@pytest.mark.worker
def test_a_worker_killed_mid_check_loses_nothing(celery_fleet, sandbox, htx_calls, alice):
    start, since = time.monotonic(), timezone.now()
    sandbox.faults.latency_ms = 300  # a few HTX calls: 1 to 2 s per check
    first = celery_fleet.spawn_worker("a", concurrency=4)
    beat = celery_fleet.spawn_beat()
    keys = add_sandbox_keys(sandbox, 2 * N)
    verify_keys, refresh_keys = keys[:N], keys[N:]
    # Interleaved in the queue: a refresh (as beat's sweeper queues one), then a submission.
    verifying, refreshing = [], []
    for v, r in zip(verify_keys, refresh_keys, strict=True):
        [pk] = connected_rows(alice, [r], due=timezone.now())
        check_connection.delay(pk)
        refreshing.append(pk)
        verifying += submit_keys(alice, [v])
    pks = verifying + refreshing
    celery_fleet.ready(first, beat)

    by_key = dict(zip(verifying + refreshing, verify_keys + refresh_keys, strict=True))

    # Kill once some checks have finished and both kinds are half-way through their talk with
    # HTX (row claimed, the key's accounts already listed, the check not finished).
    def mid_wave():
        t = tally(pks, since=since)
        talking = {pk for pk in t.claimed - t.done if key_checks(htx_calls, by_key[pk])}
        return t if len(t.done) >= 3 and talking & set(verifying) and talking & set(refreshing) else None

    kill_when(first, sandbox, mid_wave, timeout=60, message=lambda: f"{tally(pks, since=since)}")
    at_kill = tally(pks, since=since)
    interrupted = at_kill.claimed - at_kill.done
    interrupted_v, interrupted_r = interrupted & set(verifying), interrupted & set(refreshing)
    assert interrupted_v and interrupted_r, f"the kill did not land mid-check of both kinds: {at_kill}"

    second = celery_fleet.worker("a2", concurrency=4)
    final = wait_until_done(pks, since=since, timeout=90, fleet=celery_fleet)

    htx_reread = [pk for pk in pks if key_checks(htx_calls, by_key[pk]) > 1]
    duplicates = none_results([first, second])
    # The dead worker's messages: kombu hands them out again only after the visibility timeout
    # (and its restore sweep), long after the sweeper has done the work; then they find nothing.
    unacked = redis.Redis.from_url(os.environ["REDIS_URL"]).hlen("unacked")
    counts = (
        f"submitted={len(pks)} (verify={N} refresh={N}) done at kill={len(at_kill.done)} "
        f"interrupted by the kill={len(interrupted)} (verify={len(interrupted_v)} "
        f"refresh={len(interrupted_r)}) final: connected and refreshed={len(final.done)} "
        f"lost={len(final.pending)} results written twice={len(final.written_twice)} | harmless: "
        f"checks re-read from HTX={len(htx_reread)}, duplicate messages that found nothing to do="
        f"{duplicates}, messages of the dead worker still unacknowledged in Redis={unacked} | "
        f"queued again by beat's sweeper={swept([first, second])} ({elapsed(start)})"
    )
    print(counts)
    assert len(final.done) == 2 * N and not final.pending, counts
    assert not final.written_twice, counts  # exactly one snapshot per connection
    assert all(final.verified_events[pk] == 1 for pk in verifying), counts
    # The interrupted checks are the only ones HTX saw twice (each redone once, from scratch).
    assert len(htx_reread) >= 2 and set(htx_reread) <= interrupted, counts
    assert not final.claimed, f"rows still claimed after the wave: {final}"
