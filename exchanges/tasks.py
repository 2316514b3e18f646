"""Celery tasks: thin wrappers that take ids and call services.

Messages carry connection ids only, never keys. Every task is safe to run twice (services claim
the row first). Lost messages are harmless: the database says what is pending and
``sweep_connections`` queues it again.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError

from . import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def verify_connection(connection_id: int) -> str | None:
    return services.connection_verify(connection_id=connection_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def refresh_connection(connection_id: int) -> str | None:
    return services.connection_refresh(connection_id=connection_id)


@shared_task(ignore_result=True)
def sweep_connections() -> int:
    ids = services.connections_to_verify()
    for connection_id in ids:
        verify_connection.delay(connection_id)
    return len(ids)


@shared_task(ignore_result=True)
def refresh_due_connections() -> int:
    ids = services.connections_due_for_refresh()
    for connection_id in ids:
        refresh_connection.delay(connection_id)
    return len(ids)


def _send_verification(connection_id: int) -> None:
    try:
        verify_connection.delay(connection_id)
    except OperationalError:
        # The broker is down. The row is saved as Verifying, so the sweeper queues it once
        # the broker is back; the user's submission is not lost.
        logger.warning("Broker unavailable; connection %s will be queued by the sweeper", connection_id)


def enqueue_verification(connection_id: int) -> None:
    """Queue a verification once the surrounding transaction has committed, so the worker
    never looks for a row it cannot see yet (what ``delay_on_commit`` does, plus surviving a
    broker outage)."""
    transaction.on_commit(lambda: _send_verification(connection_id))
