"""Pages cost no database writes on every request (issue 6), yet the idle timeout and the
Sessions list stay true: the session and allauth's record of it are written at most once a
minute, and at once when something they show changes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse, set_script_prefix
from django.utils import timezone

from accounts.middleware import ACTIVE_AT, RESOLUTION_SECONDS, TRACKED
from exchanges.templatetags.exchanges_tags import pk_url

pytestmark = pytest.mark.django_db

LIST = reverse("exchanges:connection-list")


def _writes(captured) -> list[str]:
    return [q["sql"] for q in captured if not q["sql"].lstrip().upper().startswith("SELECT")]


def _age(client, key: str, seconds: float) -> None:
    session = client.session
    value = session[key]
    if isinstance(value, list):
        session[key] = [value[0], value[1] - seconds]
    else:
        session[key] = value - seconds
    session.save()


def test_a_repeated_page_view_writes_nothing(client, alice):
    client.force_login(alice)
    client.get(LIST)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(LIST).status_code == 200
    assert _writes(captured) == []


def test_activity_a_minute_later_moves_the_stamp_and_renews_the_expiry(client, alice):
    client.force_login(alice)
    client.get(LIST)
    _age(client, ACTIVE_AT, RESOLUTION_SECONDS + 1)
    key = client.session.session_key
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() + timedelta(minutes=5))
    client.get(LIST)
    assert time.time() - client.session[ACTIVE_AT] < 5
    assert Session.objects.get(session_key=key).expire_date - timezone.now() > timedelta(minutes=29)


def test_the_sessions_list_is_updated_once_a_minute_and_at_once_for_a_new_address(client, alice):
    client.force_login(alice)
    client.get(LIST)
    record = UserSession.objects.get(user=alice)
    seen = record.last_seen_at
    client.get(LIST)
    assert UserSession.objects.get(pk=record.pk).last_seen_at == seen  # within the minute

    client.get(LIST, REMOTE_ADDR="198.51.100.9")
    assert UserSession.objects.get(pk=record.pk).ip == "198.51.100.9"

    _age(client, TRACKED, RESOLUTION_SECONDS + 1)
    client.get(LIST, REMOTE_ADDR="198.51.100.9")
    assert UserSession.objects.get(pk=record.pk).last_seen_at > seen


@pytest.mark.parametrize(
    "name",
    [
        "exchanges:connection-detail",
        "exchanges:connection-row",
        "exchanges:connection-refresh",
        "exchanges:connection-rename",
        "exchanges:connection-replace",
        "exchanges:connection-remove",
        "exchanges:connection-dismiss",
    ],
)
def test_pk_url_is_the_url_tag(name):
    for pk in (1, 42, 1234567890123):
        assert pk_url(name, pk) == reverse(name, args=[pk])
    set_script_prefix("/mounted/")
    try:
        assert pk_url(name, 7) == reverse(name, args=[7])
        assert pk_url(name, 7).startswith("/mounted/")
    finally:
        set_script_prefix("/")
