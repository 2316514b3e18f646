"""handler500: a database outage answers a friendly 503 page, other errors stay a 500."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


def _assert_friendly_503(response):
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = response.content.decode()
    assert "cannot reach its database" in body and "try again in about 30 seconds" in body
    assert "Traceback" not in body and "Server Error" not in body


def _fail(error):
    def raiser(*args, **kwargs):
        raise error("connection to server at 127.0.0.1 failed: Connection refused")

    return raiser


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_the_session_store_failing_gives_the_503_page(alice_client, monkeypatch, error):
    monkeypatch.setattr(SessionStore, "load", _fail(error))
    _assert_friendly_503(alice_client.get(reverse("exchanges:connection-list")))


def test_the_user_lookup_failing_gives_the_503_page(alice_client, monkeypatch):
    monkeypatch.setattr("django.contrib.auth.get_user", _fail(OperationalError))
    _assert_friendly_503(alice_client.get(reverse("exchanges:connection-list")))


def test_a_query_failing_in_a_view_gives_the_503_page(alice_client, monkeypatch):
    monkeypatch.setattr("exchanges.selectors.portfolio_for_user", _fail(OperationalError))
    _assert_friendly_503(alice_client.get(reverse("exchanges:connection-list")))


def test_any_other_error_stays_a_plain_500(alice_client, monkeypatch):
    monkeypatch.setattr("exchanges.selectors.portfolio_for_user", _fail(ValueError))
    response = alice_client.get(reverse("exchanges:connection-list"))
    assert response.status_code == 500
    assert "Retry-After" not in response


def test_redis_unreachable_gives_the_503_page_too(alice_client, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from exchanges import views

    monkeypatch.setattr(views.selectors, "portfolio_for_user", _fail(RedisConnectionError))
    _assert_friendly_503(alice_client.get(reverse("exchanges:connection-list")))
