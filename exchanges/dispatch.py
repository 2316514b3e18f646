"""Sending a check to the workers, from what a user did (connect, replace, refresh now).

Sent by task name, so the services that call it need not import the tasks (which import the
services): no import circle. Messages carry connection ids only, never keys.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from .models import ExchangeConnection, Status

logger = logging.getLogger(__name__)

CHECK_TASK = "exchanges.tasks.check_connection"
# Checks a user waits for have a queue of their own, which every worker also consumes: a new
# key's check is not stuck behind a wave of thousands of refreshes on the default queue.
INTERACTIVE_QUEUE = "interactive"


def connection_check_not_sent(connection_id: int) -> None:
    """The broker refused a submission's check: mark it due now, so its pages say verification
    is queued (ExchangeConnection.awaiting_worker) until the sweeper has sent it."""
    ExchangeConnection.objects.filter(pk=connection_id, status=Status.VERIFYING).update(
        next_check_at=timezone.now()
    )


def _send_check(connection_id: int) -> None:
    try:
        current_app.send_task(CHECK_TASK, args=[connection_id], queue=INTERACTIVE_QUEUE)
    except OperationalError:
        # The broker is down. The row is saved as Verifying, so queue_due_checks queues it
        # once the broker is back: the user's submission is not lost, and is shown as queued.
        logger.warning("Broker unavailable; connection %s will be queued by the sweeper", connection_id)
        connection_check_not_sent(connection_id)


def enqueue_check(connection_id: int) -> None:
    """Queue a check once the surrounding transaction commits, so a worker never looks for a
    row it cannot see yet (Celery's ``delay_on_commit``, plus surviving a broker outage)."""
    transaction.on_commit(lambda: _send_check(connection_id))
