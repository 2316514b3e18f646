"""Celery tasks: thin wrappers that take ids and call services.

Messages carry connection ids only, never keys. Every task is safe to run twice (the service
claims the row first). A lost message is harmless: the database says what is pending, and
``queue_due_checks`` (run by beat) queues it again.

Acknowledgement is late (CELERY_TASK_ACKS_LATE): a task whose worker dies is redelivered by
Redis after the visibility timeout, and the row's claim expires, so the next check takes it.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError

from . import checks, selectors, services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def check_connection(connection_id: int) -> str | None:
    return checks.connection_check(connection_id=connection_id)


@shared_task(ignore_result=True)
def queue_due_checks() -> int:
    ids = selectors.connections_due_for_check()
    for connection_id in ids:
        check_connection.delay(connection_id)
    return len(ids)


@shared_task(ignore_result=True)
def prune_snapshots() -> int:
    return services.snapshots_prune()


def _send_check(connection_id: int) -> None:
    try:
        check_connection.delay(connection_id)
    except OperationalError:
        # The broker is down. The row is saved as Verifying, so queue_due_checks queues it
        # once the broker is back: the user's submission is not lost.
        logger.warning("Broker unavailable; connection %s will be queued by the sweeper", connection_id)


def enqueue_check(connection_id: int) -> None:
    """Queue a check once the surrounding transaction commits, so a worker never looks for a
    row it cannot see yet (Celery's ``delay_on_commit``, plus surviving a broker outage)."""
    transaction.on_commit(lambda: _send_check(connection_id))
