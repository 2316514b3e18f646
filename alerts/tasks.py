"""Celery tasks of alerts: thin wrappers with ids only. They run on the ``alerts`` queue, so an
alert is not stuck behind a wave of balance refreshes. A lost message is harmless: the database
says what is due, and ``deliver_due`` (run by beat) sends it again."""

from __future__ import annotations

from celery import shared_task
from django import db

from exchanges import queue_marks

from . import conditions, delivery

TASK_OPTIONS = {
    "ignore_result": True,
    "autoretry_for": (db.OperationalError, db.InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


# What the sweeper sent is marked until its task starts (exchanges.queue_marks), so a backlog
# longer than a sweep is not queued again at every sweep.
QUEUED_MARK = "alerts:queued:{}"


@shared_task(**TASK_OPTIONS)
def deliver(delivery_id: int) -> str | None:
    queue_marks.unmark(QUEUED_MARK, [delivery_id])
    return delivery.deliver(delivery_id)


@shared_task(ignore_result=True)
def deliver_due() -> int:
    """Send every delivery that is due and not held (retries, digests, lost messages) and not
    already waiting in the queue."""
    ids = queue_marks.mark(QUEUED_MARK, delivery.due_ids())
    for delivery_id in ids:
        deliver.delay(delivery_id)
    return len(ids)


@shared_task(**TASK_OPTIONS)
def scan() -> int:
    """Raise the alerts time has brought (keys about to die, connections failing too long)."""
    return conditions.scan()
