"""Scale-out: two workers (a@%h, b@%h) on one Redis split the checks, none done twice."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from tests.faults.conftest import (
    add_sandbox_keys,
    elapsed,
    key_checks,
    published_tasks,
    submit_keys,
    wait_until_done,
)

N = 40


@pytest.mark.worker
def test_two_workers_split_the_verifications_without_duplicates(celery_fleet, sandbox, htx_calls, alice):
    start, since = time.monotonic(), timezone.now()
    sandbox.faults.latency_ms = 200  # a few HTX calls: about 1 s per check
    a, b = celery_fleet.spawn_worker("a"), celery_fleet.spawn_worker("b")
    celery_fleet.ready(a, b)
    keys = add_sandbox_keys(sandbox, N)

    with published_tasks() as published:
        pks = submit_keys(alice, keys)
    task_of = {
        args[0]: task_id for task_id, (name, args) in published.items() if name.endswith("check_connection")
    }
    assert sorted(task_of) == sorted(pks), f"published {len(task_of)} check messages for {N} submissions"

    final = wait_until_done(pks, since=since, timeout=90, fleet=celery_fleet)
    ran = {w.name: {t for t, result in w.succeeded().items() if result == "'connected'"} for w in (a, b)}
    by_a, by_b = ran["a"], ran["b"]
    both = by_a & by_b
    unaccounted = [pk for pk in pks if task_of[pk] not in by_a | by_b]
    htx_twice = [k for k in keys if key_checks(htx_calls, k) != 1]
    counts = (
        f"submitted={N} connected={len(final.done)} lost={len(final.pending)} "
        f"worker a={len(by_a)} worker b={len(by_b)} run by both={len(both)} "
        f"not run by either={len(unaccounted)} results written twice={len(final.written_twice)} "
        f"keys checked at HTX other than once={len(htx_twice)} ({elapsed(start)})"
    )
    print(counts)
    assert len(final.done) == N and not final.pending, counts
    assert by_a and by_b, f"one worker did all the work: {counts}"
    assert len(by_a) + len(by_b) == N and not both and not unaccounted, counts
    assert not final.written_twice, counts
    # One check per key at HTX: nothing was run twice, not even harmlessly.
    assert not htx_twice, counts
