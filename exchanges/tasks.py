"""Celery tasks: thin wrappers that take ids and call services.

Messages carry connection ids only, never keys. Every task is safe to run twice (the service
claims the row first). A lost message is harmless: the database says what is pending, and
``queue_due_checks`` (run by beat) queues it again.

Acknowledgement is late (CELERY_TASK_ACKS_LATE): a task whose worker dies is redelivered by
kombu once the visibility timeout has passed (kombu looks for such messages when a worker
starts and then every ~100 s). Sooner than that, the row's claim expires
(CHECK_CLAIM_SECONDS) and the sweeper queues it again; the redelivered copy then finds
nothing to do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from celery import shared_task
from django import db
from django.conf import settings

from . import batches, budget, keycheck, queue_marks, retention, selectors

logger = logging.getLogger(__name__)


# The database unreachable (a restart, a failover): the check is tried again after 1, 2, 4 ...
# seconds (with jitter), at most a minute apart. A check still failing after that is queued
# again by the sweeper, as is one whose claim was taken just before the database went away.
CHECK_TASK_OPTIONS = {
    "ignore_result": True,
    "autoretry_for": (db.OperationalError, db.InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


@shared_task(**CHECK_TASK_OPTIONS)
def check_connection(connection_id: int) -> str | None:
    _unmark_queued([connection_id])
    return keycheck.connection_check(connection_id=connection_id)


@shared_task(**CHECK_TASK_OPTIONS)
def check_connections(connection_ids: list[int], timed: bool = False) -> list[str | None]:
    """Several checks in one message, side by side (exchanges.batches, CHECK_BATCH_SIZE). Retried
    as a whole: the checks already done are no longer due, so they are not repeated. ``timed``:
    paced by the sweeper, due at their turn (they go before a wave's other checks)."""
    _unmark_queued(connection_ids)
    return batches.connections_check(connection_ids=connection_ids, timed=timed)


# Where the paced refreshes go (settings.CELERY_TASK_QUEUES): every worker consumes it.
PACED_QUEUE = "paced"
# The paced checks due within this many seconds of each other go in one message.
PACED_SLOT_SECONDS = 1.0

# What the sweeper sent is marked until its check starts (exchanges.queue_marks).
QUEUED_MARK = "exchanges:queued:{}"


def _mark_queued(ids: list[int]) -> list[int]:
    return queue_marks.mark(QUEUED_MARK, ids)


def _unmark_queued(ids: list[int]) -> None:
    queue_marks.unmark(QUEUED_MARK, ids)


@shared_task(ignore_result=True)
def queue_due_checks() -> int:
    """Send what is due (see selectors.connections_due_for_check) and not already queued.

    A venue whose refreshes count against a per-IP limit (exchanges.budget) gets at most what its
    budget allows until the next sweep, the longest overdue first, each check due to start at its
    turn (so a limit counted over a few seconds is not spent in one burst); the rest stay unsent
    and unmarked for later sweeps. Checks a user is waiting for do not come through here
    (exchanges.dispatch), so nothing holds them back."""
    limited = budget.budgets()
    sent = _send(_mark_queued(selectors.connections_due_except(list(limited))))
    intervals = selectors.refresh_intervals(list(limited))
    for venue_id, venue_budget in limited.items():
        paced, behind = _send_paced(venue_budget)
        sent += paced
        budget.publish(venue_budget, intervals.get(venue_id, {}), behind=behind)
    return sent


def _send_paced(venue_budget: budget.Budget) -> tuple[int, bool]:
    """Send what the venue's budget allows now; -> (how many, whether the workers are behind)."""
    pace = budget.pace(venue_budget)
    if pace.allowance <= 0:
        return 0, False
    due = selectors.connections_due_oldest(venue_budget.venue_id, pace.allowance)
    # Rows of the allowance still waiting in the queue count against it: sent, not yet started.
    ids = _mark_queued(due)
    # A worker holds a message with a countdown until its time, and takes one more message from
    # the queues for each it holds (Celery's prefetch grows by one per waiting task): so the
    # checks of about a second go in one message (run side by side), not one message each, and
    # no more, so the budget is spent evenly rather than in bursts of CHECK_BATCH_SIZE.
    size = max(math.ceil(pace.per_second * PACED_SLOT_SECONDS), 1)
    try:
        sent = _send(ids, countdown=pace.countdown, queue=PACED_QUEUE, size=size)
    finally:
        pace.sent(len(ids))
    return sent, budget.behind(waiting=len(due) - len(ids), allowance=pace.allowance)


def _send(
    ids: list[int], countdown: Callable[[int], float] | None = None, queue: str = "", size: int = 0
) -> int:
    size = size or max(settings.CHECK_BATCH_SIZE, 1)
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        try:
            if countdown is None:
                if size == 1:
                    check_connection.delay(batch[0])
                else:
                    check_connections.delay(batch)
            else:
                later = {"countdown": max(countdown(start), 0.0), "queue": queue}
                # Even one check goes as a batch here: it is timed (exchanges.batches).
                check_connections.apply_async((batch,), {"timed": True}, **later)
        except Exception:
            _unmark_queued(ids[start:])  # not sent: the next sweep sends them
            raise
    return len(ids)


@shared_task(ignore_result=True)
def prune_snapshots() -> int:
    return retention.snapshots_prune()
