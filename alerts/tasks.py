"""Celery tasks of alerts: thin wrappers with ids only. They run on the ``alerts`` queue, so an
alert is not stuck behind a wave of balance refreshes. A lost message is harmless: the database
says what is due, and ``deliver_due`` (run by beat) sends it again."""

from __future__ import annotations

import contextlib

import redis
from celery import shared_task
from django import db
from django.conf import settings

from exchanges import venue_state

from . import conditions, delivery

TASK_OPTIONS = {
    "ignore_result": True,
    "autoretry_for": (db.OperationalError, db.InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


# The sweeper marks what it sends, so a delivery whose message still waits in the queue (a
# backlog longer than a sweep) is not sent again at every sweep; the mark goes when the task
# starts, and lapses after the visibility timeout (exchanges.tasks does the same for checks).
QUEUED_MARK = "alerts:queued:{}"


def _mark_queued(ids: list[int]) -> list[int]:
    ttl = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    pipe = venue_state.redis_client().pipeline(transaction=False)
    for delivery_id in ids:
        pipe.set(QUEUED_MARK.format(delivery_id), 1, nx=True, ex=ttl)
    return [delivery_id for delivery_id, fresh in zip(ids, pipe.execute(), strict=True) if fresh]


@shared_task(**TASK_OPTIONS)
def deliver(delivery_id: int) -> str | None:
    with contextlib.suppress(redis.RedisError):  # if Redis is gone, the mark lapses by itself
        venue_state.redis_client().delete(QUEUED_MARK.format(delivery_id))
    return delivery.deliver(delivery_id)


@shared_task(ignore_result=True)
def deliver_due() -> int:
    """Send every delivery that is due and not held (retries, digests, lost messages) and not
    already waiting in the queue."""
    ids = _mark_queued(delivery.due_ids())
    for delivery_id in ids:
        deliver.delay(delivery_id)
    return len(ids)


@shared_task(**TASK_OPTIONS)
def scan() -> int:
    """Raise the alerts time has brought (keys about to die, connections failing too long)."""
    return conditions.scan()
