"""Someone holding only an API Key learns nothing about whether it is connected here (issue 13,
point 11). The form tells a user only about their own connections. A key another account uses
is submitted, stored encrypted and checked like any other: with a wrong secret the venue refuses
it exactly as it refuses any wrong secret (same text, status, redirects, SQL query counts at the
view and at the worker); with the right secret, the worker's verdict says it is already connected
to another account, and the key is not stored twice. Every check runs against the venue's
sandbox over real HTTP."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import SecurityEvent
from exchanges import keycheck, registry, services
from exchanges.explain import KEY_IN_ANOTHER_ACCOUNT
from exchanges.models import ExchangeConnection, Status
from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials

pytestmark = pytest.mark.django_db

VENUES = registry.venues()
MODAL = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "modal-body"}
IN_USE = "This API key is already connected to another account here"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters live in Redis, shared by the whole run: every test here starts from
    zero and leaves none of its hits to the tests after it."""
    cache.clear()
    yield
    cache.clear()


def _form(venue, key: Credentials, *, replacing: bool = False) -> dict[str, str]:
    values = {"access_key": key.api_key, "secret_key": key.secret, **key.extra}
    data = {} if replacing else {"label": ""}
    for spec in venue.credential_fields:
        if spec.choices and replacing:
            continue  # a replacement keeps the connection's site
        data[spec.name] = values.get(spec.name, spec.choices[0][0] if spec.choices else "")
    return data


def _wrong_secret(key: Credentials) -> Credentials:
    """The same secret with its last character changed (still in the venue's format)."""
    other = next(c for c in reversed(key.secret) if c.isalnum() and c != key.secret[-1])
    return replace(key, secret=key.secret[:-1] + other)


def _user(django_user_model, name: str):
    return django_user_model.objects.create_user(username=name, email=f"{name}@example.com", password="x")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _connected(owner, venue, key: Credentials) -> ExchangeConnection:
    connection = services.connection_create(
        owner=owner,
        exchange=venue.id,
        label="",
        access_key=key.api_key,
        secret_key=key.secret,
        passphrase=key.extra.get("passphrase", ""),
        site=key.extra.get("site", ""),
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    return ExchangeConnection.objects.get(pk=connection.pk)


def _neutral(text: str, connection: ExchangeConnection, key: Credentials) -> str:
    """A page or answer without what differs by construction: the user's email, the row's id,
    the key as typed (and its masked ends), CSRF tokens, and the venue's timestamps."""
    text = text.replace(connection.owner.email, "EMAIL").replace(key.api_key, "KEY")
    text = text.replace(connection.masked_access_key, "MASKED")
    text = re.sub(rf"\b(exchanges/|connection-){connection.pk}\b", r"\1N", text)
    text = re.sub(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+', r"\1", text)
    return re.sub(r"\d{10,}", "T", text)


def _submit_and_check(venue, user, key: Credentials, headers: dict) -> tuple:
    """Everything the submitter can observe, at the view and from the worker's verdict."""
    client = _client(user)
    url = reverse("exchanges:connection-add-venue", args=[venue.id])
    with CaptureQueriesContext(db) as view_queries:
        response = client.post(url, _form(venue, key), **headers)
    row = ExchangeConnection.objects.get(owner=user)
    with CaptureQueriesContext(db) as worker_queries:
        status = keycheck.connection_check(connection_id=row.pk)
    row.refresh_from_db()
    verification = reverse("exchanges:connection-verification", args=[row.pk])
    return (
        response.status_code,
        _neutral(response.get("Location", ""), row, key),
        _neutral(response.content.decode(), row, key),
        {k: v for k, v in response.items() if k.lower().startswith("hx-")},
        len(view_queries),
        status,
        row.error_kind,
        _neutral(row.error_detail, row, key),
        row.has_keys,
        len(worker_queries),
        _neutral(client.get(verification).content.decode(), row, key),
        _neutral(client.get(verification, **MODAL).content.decode(), row, key),
        _neutral(client.get(reverse("exchanges:connection-list")).content.decode(), row, key),
    )


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.id)
def test_a_wrong_secret_for_a_key_connected_elsewhere_is_answered_as_any_wrong_secret(
    venue, sandboxes, alice, django_user_model, settings
):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "connect_key": "100/h/user,100/h/ip"}
    connected = venue.demo_credentials("good")
    _connected(alice, venue, connected)
    elsewhere = venue.demo_credentials("read_only")  # a key the venue knows, connected nowhere here
    for n, headers in enumerate(({}, MODAL)):  # without JavaScript, and from the dialog
        seen_connected = _submit_and_check(
            venue, _user(django_user_model, f"mallory{n}"), _wrong_secret(connected), headers
        )
        seen_elsewhere = _submit_and_check(
            venue, _user(django_user_model, f"carol{n}"), _wrong_secret(elsewhere), headers
        )
        assert seen_connected == seen_elsewhere
        status, kind, has_keys = seen_connected[5], seen_connected[6], seen_connected[8]
        assert (status, kind, has_keys) == (Status.INVALID, ErrorKind.INVALID_SIGNATURE, False)
        assert "already connected" not in "".join(map(str, seen_connected))
    assert ExchangeConnection.objects.get(owner=alice).status == Status.CONNECTED


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.id)
def test_the_right_secret_is_told_the_key_is_connected_to_another_account(
    venue, sandboxes, alice, bob, settings
):
    key = venue.demo_credentials("good")
    alices = _connected(alice, venue, key)
    client = _client(bob)
    response = client.post(reverse("exchanges:connection-add-venue", args=[venue.id]), _form(venue, key))
    assert response.status_code == 302  # the form said nothing: only the venue's answer tells
    row = ExchangeConnection.objects.get(owner=bob)
    assert keycheck.connection_check(connection_id=row.pk) == Status.INVALID
    row.refresh_from_db()
    assert row.error_kind == KEY_IN_ANOTHER_ACCOUNT and row.error_detail == ""
    assert not row.has_keys and row.secret_key is None and row.access_key is None
    page = client.get(reverse("exchanges:connection-verification", args=[row.pk])).content.decode()
    assert IN_USE in page and f"Create a separate key on {venue.name} for this account" in page
    assert not SecurityEvent.objects.filter(user=bob, kind=SecurityEvent.Kind.KEY_ADDED).exists()
    # Alice's connection is untouched, key and all.
    alices.refresh_from_db()
    assert alices.status == Status.CONNECTED and alices.secret_key == key.secret


def test_the_users_own_key_is_said_at_once(sandbox, alice):
    key = registry.get("htx").demo_credentials("good")
    _connected(alice, registry.get("htx"), key)
    response = _client(alice).post(
        reverse("exchanges:connection-add-venue", args=["htx"]), _form(registry.get("htx"), key)
    )
    assert response.status_code == 200
    assert "This API key is already connected to your account." in response.content.decode()
    assert ExchangeConnection.objects.filter(owner=alice).count() == 1


def test_of_two_submissions_of_one_key_the_first_accepted_keeps_it(sandbox, alice, bob, monkeypatch):
    htx = registry.get("htx")
    key = htx.demo_credentials("good")
    rows = [
        services.connection_create(
            owner=owner, exchange="htx", label="", access_key=key.api_key, secret_key=key.secret
        )
        for owner in (alice, bob, alice)
    ]
    assert keycheck.connection_check(connection_id=rows[1].pk) == Status.CONNECTED  # bob's first
    assert keycheck.connection_check(connection_id=rows[0].pk) == Status.INVALID
    assert ExchangeConnection.objects.get(pk=rows[0].pk).error_kind == KEY_IN_ANOTHER_ACCOUNT
    # The other one accepted between our look-up and our write: the constraint settles it.
    real = keycheck.held_elsewhere
    calls = []

    def blind_once(connection, fingerprint):
        calls.append(connection.pk)
        return "" if len(calls) == 1 else real(connection, fingerprint)

    monkeypatch.setattr(keycheck, "held_elsewhere", blind_once)
    assert keycheck.connection_check(connection_id=rows[2].pk) == Status.INVALID
    third = ExchangeConnection.objects.get(pk=rows[2].pk)
    assert third.error_kind == KEY_IN_ANOTHER_ACCOUNT and not third.has_keys and len(calls) == 2
    assert ExchangeConnection.objects.filter(established=True).count() == 1


def test_a_replacement_key_connected_elsewhere_is_told_only_with_its_secret(sandbox, alice, bob, settings):
    htx = registry.get("htx")
    alices_key = htx.demo_credentials("good")
    _connected(alice, htx, alices_key)
    bobs = _connected(bob, htx, htx.demo_credentials("ip_bound_here"))
    client = _client(bob)
    url = reverse("exchanges:connection-replace", args=[bobs.pk])

    def replaced_with(key: Credentials) -> str:
        assert client.post(url, _form(htx, key, replacing=True)).status_code == 302
        keycheck.connection_check(connection_id=bobs.pk)
        bobs.refresh_from_db()
        assert not bobs.replacing and bobs.secret_key == htx.demo_credentials("ip_bound_here").secret
        return bobs.replacement_error

    wrong_for_connected = replaced_with(_wrong_secret(alices_key))
    wrong_for_unknown = replaced_with(_wrong_secret(htx.demo_credentials("read_only")))
    assert wrong_for_connected == wrong_for_unknown
    assert wrong_for_connected.startswith("The Secret Key does not match this API Key")
    told = replaced_with(alices_key)
    # Said as a refused new key says it: the title, the cause and what to do.
    assert told.startswith(f"{IN_USE}. HTX accepted the key, but another account")
    assert "What to do: Create a separate key on HTX" in told
