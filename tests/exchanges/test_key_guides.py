"""The API key guides (issue 13, point 10): readable before signing up, for every venue the
registry offers, linked from the home and sign-up pages, and nothing user-specific when logged out."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from exchanges import registry
from exchanges.models import ExchangeConnection, Status

pytestmark = pytest.mark.django_db

VENUES = registry.venues()


def _guide(venue) -> str:
    return reverse("exchanges:help-api-key", args=[venue.id])


def _without_tokens(body: str) -> str:
    return re.sub(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+', r"\1", body)


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.id)
def test_the_guide_is_readable_logged_out_and_says_nothing_of_anyone(venue, alice, settings):
    settings.EGRESS_IPS = ["203.0.113.9"]  # the server's, the same for everyone
    visitor = Client()
    before = visitor.get(_guide(venue))
    assert before.status_code == 200
    body = before.content.decode()
    assert re.search(r"<h1[^>]*>[^<]*" + re.escape(venue.name), body), "the guide itself"
    assert "203.0.113.9" in body
    assert f"Sign up to connect {venue.name}" in body
    login = reverse("account_login") + "?next=" + reverse("exchanges:connection-add-venue", args=[venue.id])
    assert f'href="{login}"' in body
    assert "Log out" not in body and "My Exchanges" not in body

    # Someone's account, keys and balances exist now: the visitor's page is the same.
    ExchangeConnection.objects.create(
        owner=alice, exchange=venue.id, label="Alice's main", status=Status.CONNECTED, total_usdt="1234.5"
    )
    after = _without_tokens(visitor.get(_guide(venue)).content.decode())
    assert after == _without_tokens(body)
    assert "alice" not in after.lower()


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.id)
def test_logged_in_the_guide_leads_to_the_connect_dialog(venue, alice):
    client = Client()
    client.force_login(alice)
    body = client.get(_guide(venue)).content.decode()
    assert f"Connect {venue.name}</a>" in body
    assert reverse("exchanges:connection-add-venue", args=[venue.id]) in body
    assert "Sign up to connect" not in body


@pytest.mark.parametrize("page", ["home", "account_signup"])
def test_home_and_sign_up_link_to_every_guide(page):
    body = Client().get(reverse(page)).content.decode()
    assert "Need an API key first?" in body
    for venue in VENUES:
        assert f'<a href="{_guide(venue)}">{venue.name}</a>' in body
    if page == "account_signup":
        assert 'name="password1"' in body  # allauth's form is still there


def test_an_unknown_exchange_has_no_guide():
    assert Client().get("/exchanges/help/nope-api-key/").status_code == 404
