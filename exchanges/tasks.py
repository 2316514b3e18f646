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

from celery import shared_task
from django import db
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from . import checks, selectors, services

logger = logging.getLogger(__name__)


# The database unreachable (a restart, a failover): the check is tried again after 1, 2, 4 ...
# seconds (with jitter), at most a minute apart. A check still failing after that is queued
# again by the sweeper, as is one whose claim was taken just before the database went away.
@shared_task(
    ignore_result=True,
    autoretry_for=(db.OperationalError, db.InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def check_connection(connection_id: int) -> str | None:
    return checks.connection_check(connection_id=connection_id)


@shared_task(
    ignore_result=True,
    autoretry_for=(db.OperationalError, db.InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def check_connections(connection_ids: list[int]) -> list[str | None]:
    """Several checks in one message, one after the other (see CHECK_BATCH_SIZE). Retried as a
    whole: the checks already done are no longer due, so they are not repeated."""
    return [checks.connection_check(connection_id=connection_id) for connection_id in connection_ids]


@shared_task(ignore_result=True)
def queue_due_checks() -> int:
    ids = selectors.connections_due_for_check()
    size = settings.CHECK_BATCH_SIZE
    if size <= 1:
        for connection_id in ids:
            check_connection.delay(connection_id)
    else:
        for start in range(0, len(ids), size):
            check_connections.delay(ids[start : start + size])
    return len(ids)


@shared_task(ignore_result=True)
def prune_snapshots() -> int:
    return services.snapshots_prune()


def _send_check(connection_id: int) -> None:
    try:
        check_connection.delay(connection_id)
    except OperationalError:
        # The broker is down. The row is saved as Verifying, so queue_due_checks queues it
        # once the broker is back: the user's submission is not lost, and is shown as queued.
        logger.warning("Broker unavailable; connection %s will be queued by the sweeper", connection_id)
        services.connection_check_not_sent(connection_id)


def enqueue_check(connection_id: int) -> None:
    """Queue a check once the surrounding transaction commits, so a worker never looks for a
    row it cannot see yet (Celery's ``delay_on_commit``, plus surviving a broker outage)."""
    transaction.on_commit(lambda: _send_check(connection_id))
