"""A real Celery worker process, real Redis and the HTX sandbox over real HTTP."""

from __future__ import annotations

import base64
import json
import os

import pytest
import redis

from exchanges import services
from exchanges.dispatch import INTERACTIVE_QUEUE
from exchanges.models import ExchangeConnection, Status
from tests.conftest import demo_key, wait_for

GOOD = demo_key("demo: good key")


def _status(pk: int) -> str | None:
    status = ExchangeConnection.objects.filter(pk=pk).values_list("status", flat=True).first()
    return None if status == Status.VERIFYING else status


@pytest.mark.worker
def test_a_worker_takes_a_submitted_key_to_connected(celery_worker_process, alice):
    connection = services.connection_create(
        owner=alice, exchange="htx", label="Main", access_key=GOOD[0], secret_key=GOOD[1]
    )
    assert wait_for(lambda: _status(connection.pk), timeout=30) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.total_usdt > 0
    log = celery_worker_process.log_path.read_text()
    assert "succeeded" in log
    assert GOOD[1] not in log and GOOD[0] not in log


@pytest.mark.worker
def test_a_worker_refuses_a_withdraw_enabled_key_and_destroys_it(celery_worker_process, alice):
    key = demo_key("demo: same user, key with withdraw")
    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=key[0], secret_key=key[1]
    )
    assert wait_for(lambda: _status(connection.pk), timeout=30) == Status.WITHDRAW_ENABLED
    connection.refresh_from_db()
    assert connection.secret_key is None and connection.access_key is None


@pytest.mark.worker
def test_the_sweeper_recovers_a_verification_whose_message_was_lost(celery_worker_process, alice, settings):
    from exchanges.tasks import queue_due_checks

    # As if Redis restarted without persistence right after the user clicked Connect.
    connection = ExchangeConnection.objects.create(
        owner=alice,
        access_key=GOOD[0],
        secret_key=GOOD[1],
        access_key_fingerprint=services.access_key_fingerprint(GOOD[0]),
        status=Status.VERIFYING,
    )
    settings.VERIFY_STALE_SECONDS = 0
    assert queue_due_checks() == 1  # queued by beat's sweeper, run by the worker
    assert wait_for(lambda: _status(connection.pk), timeout=30) == Status.CONNECTED


@pytest.mark.django_db(transaction=True)
def test_task_messages_carry_only_the_connection_id(alice):
    from bitsgap_clone.celery import app

    app.control.purge()
    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=GOOD[0], secret_key=GOOD[1]
    )
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    raw = broker.lrange(INTERACTIVE_QUEUE, 0, -1)  # a check the user waits for has its own queue
    assert len(raw) == 1
    message = json.loads(raw[0])
    body = base64.b64decode(message["body"]).decode()
    assert json.loads(body)[0] == [connection.pk]
    everything = raw[0].decode() + body
    assert GOOD[0] not in everything and GOOD[1] not in everything
    app.control.purge()
