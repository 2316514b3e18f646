"""A page left open that polls (a pending status) must not keep an idle session alive."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from accounts.middleware import ACTIVE_AT
from exchanges.models import ExchangeConnection, Status

pytestmark = pytest.mark.django_db


def _age_activity(client, seconds: float) -> None:
    session = client.session
    session[ACTIVE_AT] = time.time() - seconds
    session.save()


def test_polling_is_not_activity_so_an_idle_session_still_ends(client, alice, settings):
    client.force_login(alice)
    connection = ExchangeConnection.objects.create(owner=alice, status=Status.VERIFYING)
    row = reverse("exchanges:connection-row", args=[connection.pk])
    poll = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TRIGGER": f"connection-{connection.pk}"}
    client.get(row, **poll)
    _age_activity(client, settings.SESSION_COOKIE_AGE - 60)
    assert client.get(row, **poll).status_code == 200  # still within the idle limit
    _age_activity(client, settings.SESSION_COOKIE_AGE + 1)
    assert client.get(row, **poll).status_code != 200  # the poll did not renew activity
    assert "_auth_user_id" not in client.session


def test_a_click_is_activity(client, alice, settings):
    client.force_login(alice)
    client.get(reverse("exchanges:connection-list"))
    _age_activity(client, settings.SESSION_COOKIE_AGE - 60)
    client.get(reverse("exchanges:connection-list"))  # a real request renews it
    assert time.time() - client.session[ACTIVE_AT] < 5
