"""Celery tasks of alerts: thin wrappers with ids only. They run on the ``alerts`` queue, so an
alert is not stuck behind a wave of balance refreshes. A lost message is harmless: the database
says what is due, and ``deliver_due`` (run by beat) sends it again."""

from __future__ import annotations

from celery import shared_task
from django import db

from . import conditions, delivery

TASK_OPTIONS = {
    "ignore_result": True,
    "autoretry_for": (db.OperationalError, db.InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


@shared_task(**TASK_OPTIONS)
def deliver(delivery_id: int) -> str | None:
    return delivery.deliver(delivery_id)


@shared_task(ignore_result=True)
def deliver_due() -> int:
    """Send every delivery that is due and not held (retries, digests, lost messages)."""
    ids = delivery.due_ids()
    for delivery_id in ids:
        deliver.delay(delivery_id)
    return len(ids)


@shared_task(**TASK_OPTIONS)
def scan() -> int:
    """Raise the alerts time has brought (keys about to die, connections failing too long)."""
    return conditions.scan()
