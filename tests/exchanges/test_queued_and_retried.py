"""A check the broker cannot take is shown as queued; a check the database interrupts is retried."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from exchanges import tasks
from exchanges.models import ExchangeConnection, Status
from exchanges.services import access_key_fingerprint
from tests.faults._broker import unused_broker_url, web_broker

KEY = "demo1a2b-c3d4e5f6-0a1b2c3d-4e5f6"
SECRET = "5f2e8d1c-9a7b3c4d-11223344-aabbc"
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "modal-body"}
QUEUED = "Verification is queued."


def _connection(owner, **fields):
    return ExchangeConnection.objects.create(
        owner=owner,
        access_key=KEY,
        secret_key=SECRET,
        access_key_fingerprint=access_key_fingerprint(KEY),
        access_key_head=KEY[:4],
        access_key_tail=KEY[-4:],
        **fields,
    )


@pytest.mark.django_db(transaction=True)
def test_connect_with_the_broker_down_says_verification_is_queued(client, alice):
    client.force_login(alice)
    with web_broker(unused_broker_url()):
        response = client.post(
            reverse("exchanges:connection-add-venue", args=["htx"]),
            {"label": "", "access_key": KEY, "secret_key": SECRET},
            **HTMX,
        )
    body = response.content.decode()
    assert response.status_code == 200
    assert QUEUED in body and "start automatically once the service is back" in body
    connection = ExchangeConnection.objects.get(owner=alice)
    assert connection.status == Status.VERIFYING and connection.has_keys  # kept for the sweeper
    assert connection.next_check_at is not None and connection.awaiting_worker
    row = client.get(reverse("exchanges:connection-row", args=[connection.pk])).content.decode()
    assert "Verification queued: it starts automatically once our background service is back" in row


@pytest.mark.django_db(transaction=True)
def test_connect_with_all_of_redis_down_takes_the_key_within_a_database_counted_limit(
    client, alice, settings
):
    """Broker and cache down together: the connect limit cannot be counted in Redis, so the
    submission is taken (and shown as queued) up to the per-user limit counted in the database."""
    from exchanges import connect_limit

    down = unused_broker_url()
    client.force_login(alice)  # the session lives in the database
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": down,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    rate = connect_limit.per_user()
    limit, seconds = rate.amount, rate.duration
    assert (limit, seconds) == (10, 3600)  # "10/h/user"
    bodies = []
    with web_broker(down):
        for n in range(limit + 1):
            key = f"{KEY[:-5]}{n:05d}"
            response = client.post(
                reverse("exchanges:connection-add-venue", args=["htx"]),
                {"label": "", "access_key": key, "secret_key": SECRET},
                **HTMX,
            )
            assert response.status_code == 200
            bodies.append(response.content.decode())
    assert all(QUEUED in body for body in bodies[:-1])
    assert connect_limit.REACHED in bodies[-1] and "You can try another key in " in bodies[-1]
    assert ExchangeConnection.objects.filter(owner=alice).count() == limit


@pytest.mark.django_db
def test_a_submission_being_checked_is_not_shown_as_queued(client, alice):
    now = timezone.now()
    fresh = _connection(alice, status=Status.VERIFYING)
    assert not fresh.awaiting_worker  # just submitted: a worker is about to take it
    claimed = ExchangeConnection(
        status=Status.VERIFYING, next_check_at=now, claimed_until=now + timedelta(60)
    )
    assert not claimed.awaiting_worker
    ExchangeConnection.objects.filter(pk=fresh.pk).update(updated_at=now - timedelta(seconds=11))
    fresh.refresh_from_db()
    assert fresh.awaiting_worker  # nobody took it for a while: say it is queued
    client.force_login(alice)
    body = client.get(reverse("exchanges:connection-verification", args=[fresh.pk])).content.decode()
    assert QUEUED in body
    # Sent, but waiting behind other checks: busy workers, not a service that is down.
    assert "Our workers are busy with other checks" in body and "not available" not in body
    assert not ExchangeConnection(status=Status.CONNECTED, next_check_at=now).awaiting_worker


def test_a_check_the_database_interrupts_is_retried(monkeypatch):
    calls = []

    def flaky(*, connection_id):
        calls.append(connection_id)
        if len(calls) < 3:
            raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
        return Status.CONNECTED

    monkeypatch.setattr(tasks.keycheck, "connection_check", flaky)
    assert tasks.check_connection.apply(args=[7]).get() == Status.CONNECTED
    assert calls == [7, 7, 7]
    assert tasks.check_connection.retry_backoff and tasks.check_connection.retry_backoff_max == 60
