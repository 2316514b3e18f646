"""Checks a user is waiting for (a new key, Refresh now, a replacement) have their own queue and
the gate's reserved slots, so a refresh wave never makes them wait behind it (issue #12, 4)."""

from __future__ import annotations

import base64
import json
import os

import pytest
import redis
from django.utils import timezone

from exchanges import keycheck, services
from exchanges.dispatch import INTERACTIVE_QUEUE
from exchanges.models import ExchangeConnection, Status
from exchanges.tasks import queue_due_checks
from tests.conftest import demo_key

GOOD = demo_key("demo: good key")


def _queued(broker, queue: str) -> list[list]:
    """The arguments of each task message waiting in ``queue``."""
    bodies = (json.loads(raw)["body"] for raw in broker.lrange(queue, 0, -1))
    return [json.loads(base64.b64decode(body))[0] for body in bodies]


@pytest.fixture
def broker():
    from bitsgap_clone.celery import app

    app.control.purge()
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    app.control.purge()


@pytest.mark.django_db(transaction=True)
def test_a_new_key_and_refresh_now_go_to_the_interactive_queue_and_refreshes_do_not(alice, broker, settings):
    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=GOOD[0], secret_key=GOOD[1]
    )
    assert _queued(broker, INTERACTIVE_QUEUE) == [[connection.pk]]
    assert broker.llen("celery") == 0
    broker.delete(INTERACTIVE_QUEUE)

    ExchangeConnection.objects.filter(pk=connection.pk).update(
        status=Status.CONNECTED, established=True, next_check_at=timezone.now()
    )
    assert queue_due_checks() == 1  # a scheduled refresh: the default queue, in a batch
    assert _queued(broker, "celery") == [[[connection.pk]]]
    assert broker.llen(INTERACTIVE_QUEUE) == 0

    connection.refresh_from_db()
    services.connection_refresh_now(connection=connection)
    assert _queued(broker, INTERACTIVE_QUEUE) == [[connection.pk]]


@pytest.mark.django_db
def test_who_is_waiting_is_told_from_the_row(alice):
    connection = ExchangeConnection(owner=alice, status=Status.VERIFYING, established=False)
    assert keycheck.user_waiting(connection)  # a new key: its dialog polls
    connection.status, connection.established = Status.CONNECTED, True
    connection.last_checked_at = timezone.now()
    assert not keycheck.user_waiting(connection)  # a scheduled refresh
    connection.refresh_requested_at = timezone.now()
    assert keycheck.user_waiting(connection)  # Refresh now, not yet done
    connection.refresh_requested_at = None
    connection.pending_fingerprint = "f"
    assert keycheck.user_waiting(connection)  # a replacement key
