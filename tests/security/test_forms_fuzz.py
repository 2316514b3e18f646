"""Bad input (issue 5): arbitrary text, huge inputs and odd unicode thrown at every form.

Each example posts through Django's test client with a fresh client, inside a savepoint that
is rolled back afterwards, with the Redis cache (rate limits) emptied. Properties: never a
server error (status < 500), and a row is created or changed only when the input is valid,
exactly as the form cleans it.
"""

from __future__ import annotations

import string
import time
from contextlib import contextmanager

import pytest
from allauth.account.internal.flows.login import (
    _AUTHENTICATION_METHODS_USER_SESSION_KEY,
    AUTHENTICATION_METHODS_SESSION_KEY,
)
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.validators import validate_email
from django.db import transaction
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exchanges import services
from exchanges.models import ExchangeConnection, Status

pytestmark = pytest.mark.django_db

User = get_user_model()

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# RTL/LTR marks and overrides, zero-width characters, BOM, NUL and other control characters,
# emoji (with a ZWJ sequence), combining marks, non-Latin letters and look-alikes.
ODD = [
    "\u200f", "\u200e", "\u202e", "\u2066", "\u2069", "\u200b", "\u200c", "\u200d", "\u2060",
    "\ufeff", "\x00", "\x01", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\u2028", "\u2029",
    "\r", "\n", "\t", "\x0b", "\x0c", " ", "\u00a0", "\u3000", "🔑", "👩\u200d💻", "🏳️\u200d🌈",
    "e\u0301", "\u0338", "ß", "İ", "ﬁ", "Ａ", "а", "ο", "漢", "ﷺ", "𝔘", "<", ">", "\"", "'", "&",
    "%00", "\\", "{{", "}}", "{%", "<script>", "hx-get=", "javascript:", "'; DROP TABLE x;--",
]  # fmt: skip

_pieces = st.one_of(st.sampled_from(ODD), st.characters(codec="utf-8"))
odd_text = st.lists(_pieces, max_size=40).map("".join)
huge_text = st.builds(
    lambda piece, n: (piece * n)[:100_000],
    st.lists(_pieces, min_size=1, max_size=4).map("".join),
    st.integers(min_value=2_000, max_value=100_000),
)
# Near-keys: mostly printable ASCII of key-like length, so valid input is generated too.
key_like = st.text(
    alphabet=st.sampled_from(string.printable + "\u200b\u00a0\x00\u202e"), min_size=10, max_size=140
)
anything = st.one_of(st.text(), odd_text, huge_text, key_like, st.sampled_from(ODD))


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Speed only: hashing cost is not what these tests are about.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@contextmanager
def _example():
    """One hypothesis example: empty rate limits, and every write rolled back afterwards."""
    cache.clear()
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        cache.clear()


def _client(user=None, *, recently_authenticated: bool = False) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    if recently_authenticated:
        session = client.session
        session[AUTHENTICATION_METHODS_SESSION_KEY] = [
            {"method": "password", "at": time.time(), "reauthenticated": True}
        ]
        session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = str(user.pk)
        session.save()
    return client


def _no_server_error(response) -> None:
    exc = getattr(response, "exc_info", None)
    assert response.status_code < 500, f"{response.status_code}: {exc[1]!r}" if exc else response.status_code


def _clean_key(value: str) -> str:
    return "".join(value.strip().split())


def _connection(owner) -> ExchangeConnection:
    access = "cur0-1111-2222-3333-44445555"
    return ExchangeConnection.objects.create(
        owner=owner,
        status=Status.CONNECTED,
        established=True,
        label="Before",
        access_key=access,
        secret_key="current-secret-0000-1111-2222",
        access_key_fingerprint=services.access_key_fingerprint(access),
        access_key_head=access[:4],
        access_key_tail=access[-4:],
    )


# --- exchanges ---------------------------------------------------------------------------------


GOOD_ACCESS, GOOD_SECRET = "e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx", "5f2e8d1c-9a7b3c4d-6e5f4a3b-2c1d0"


@FUZZ
@given(label=anything, access_key=anything, secret_key=anything)
@example(label=" Main ", access_key=f" {GOOD_ACCESS}\n", secret_key=f"{GOOD_SECRET[:10]} {GOOD_SECRET[10:]}")
@example(label="a\x00b", access_key=GOOD_ACCESS, secret_key=GOOD_SECRET)
@example(label="", access_key=GOOD_ACCESS + "\x00", secret_key=GOOD_SECRET)
@example(label="", access_key=GOOD_ACCESS, secret_key="\u202e" + GOOD_SECRET)
@example(label="🔑" * 64, access_key=GOOD_ACCESS, secret_key="x" * 100_000)
def test_connect_form(alice, label, access_key, secret_key):
    with _example():
        before = ExchangeConnection.objects.count()
        response = _client(alice).post(
            reverse("exchanges:connection-add-venue", args=["htx"]),
            {"label": label, "access_key": access_key, "secret_key": secret_key},
        )
        _no_server_error(response)
        rows = ExchangeConnection.objects.count()
        if response.status_code == 302:
            assert rows == before + 1
            c = ExchangeConnection.objects.get(owner=alice)
            assert c.access_key == _clean_key(access_key) and c.secret_key == _clean_key(secret_key)
            assert c.access_key.isascii() and c.access_key.isprintable() and 16 <= len(c.access_key) <= 128
            assert c.label == label.strip() and len(c.label) <= 64
        else:
            assert response.status_code == 200
            assert rows == before


@FUZZ
@given(access_key=anything, secret_key=anything)
@example(access_key=GOOD_ACCESS, secret_key=GOOD_SECRET)
@example(access_key=GOOD_ACCESS, secret_key=GOOD_SECRET + "\x00")
@example(access_key="\x00" * 100_000, secret_key=GOOD_SECRET)
def test_replace_keys_form(alice, access_key, secret_key):
    with _example():
        c = _connection(alice)
        before = ExchangeConnection.objects.values().get(pk=c.pk)
        response = _client(alice).post(
            reverse("exchanges:connection-replace", args=[c.pk]),
            {"access_key": access_key, "secret_key": secret_key},
        )
        _no_server_error(response)
        c.refresh_from_db()
        assert ExchangeConnection.objects.count() == 1
        assert (c.access_key, c.secret_key) == (before["access_key"], before["secret_key"])
        if response.status_code == 302:
            assert c.pending_access_key == _clean_key(access_key)
            assert c.pending_secret_key == _clean_key(secret_key)
            assert c.pending_fingerprint == services.access_key_fingerprint(c.pending_access_key)
        else:
            assert response.status_code == 200
            assert ExchangeConnection.objects.values().get(pk=c.pk) == before


@FUZZ
@given(label=anything)
@example(label=" Main ")
@example(label="\x00")
@example(label="x" * 65)
@example(label="\u202egnp.exe")
def test_rename_form(alice, label):
    with _example():
        c = _connection(alice)
        response = _client(alice).post(reverse("exchanges:connection-rename", args=[c.pk]), {"label": label})
        _no_server_error(response)
        c.refresh_from_db()
        if response.status_code == 302:
            assert c.label == label.strip() and len(c.label) <= 64 and "\x00" not in c.label
        else:
            assert response.status_code == 200
            assert c.label == "Before"


# --- accounts ----------------------------------------------------------------------------------

CURRENCIES = ["USDT", "BTC"]
REFRESH = ["", "5", "15", "30", "60"]


@FUZZ
@given(
    currency=st.one_of(st.sampled_from([*CURRENCIES, "usdt", "EUR", "BTC\x00", " BTC"]), anything),
    refresh=st.one_of(
        st.sampled_from([*REFRESH, "1", "0", "-5", "15.0", "1e3", "٥", "99999999999"]), anything
    ),
)
def test_settings_form(alice, currency, refresh):
    with _example():
        response = _client(alice).post(
            reverse("accounts:settings"), {"valuation_currency": currency, "refresh_minutes": refresh}
        )
        _no_server_error(response)
        user = User.objects.get(pk=alice.pk)
        valid = currency in CURRENCIES and refresh in REFRESH
        assert (response.status_code == 302) == valid, (response.status_code, currency, refresh)
        if valid:
            assert user.valuation_currency == currency
            assert user.refresh_minutes == (int(refresh) if refresh else None)
        else:
            assert (user.valuation_currency, user.refresh_minutes) == ("USDT", None)


@FUZZ
@given(
    confirm=st.one_of(
        st.sampled_from(["DELETE", " DELETE\n", "delete", "DELETE\x00", "DEL\u200bETE"]), anything
    )
)
def test_delete_account_form(alice, confirm):
    with _example():
        users = User.objects.count()
        response = _client(alice, recently_authenticated=True).post(
            reverse("accounts:delete"), {"confirm": confirm}
        )
        _no_server_error(response)
        if confirm.strip() == "DELETE":
            assert response.status_code == 302
            assert not User.objects.filter(pk=alice.pk).exists()
        else:
            assert response.status_code == 200
            assert User.objects.filter(pk=alice.pk).exists() and User.objects.count() == users


@FUZZ
@given(login=st.one_of(st.just("alice@example.com"), st.emails(), anything), password=anything)
@example(login="alice@example.com", password="pw-alice-123\x00")
@example(login="alice@example.com\x00", password="pw-alice-123")
@example(login="\x00" * 100_000, password="\x00")
def test_login_form(alice, login, password):
    with _example():
        users = User.objects.count()
        client = _client()
        response = client.post(reverse("account_login"), {"login": login, "password": password})
        _no_server_error(response)
        assert User.objects.count() == users
        assert "_auth_user_id" not in client.session
        assert response.status_code in (200, 429)


@FUZZ
@given(email=st.one_of(st.emails(), anything), password=anything, other=anything, same=st.booleans())
@example(email="erin@example.com", password="a-Long-enough-pass-4711", other="", same=True)
@example(email="erin\x00@example.com", password="a-Long-enough-pass-4711", other="", same=True)
@example(email="erin@example.com", password="a-Long-enough-pass-4711\x00", other="", same=True)
def test_signup_form(email, password, other, same):
    with _example():
        users = User.objects.count()
        client = _client()
        response = client.post(
            reverse("account_signup"),
            {"email": email, "password1": password, "password2": password if same else other},
        )
        _no_server_error(response)
        created = User.objects.count() - users
        if created:
            assert created == 1 and response.status_code == 302
            user = User.objects.get(email__iexact=email.strip())
            validate_email(user.email)
            assert user.check_password(password) and (same or password == other)
        else:
            assert response.status_code in (200, 429)
