from __future__ import annotations

import pytest

from exchanges.forms import ConnectionForm
from exchanges.models import ExchangeConnection
from exchanges.services import access_key_fingerprint
from exchanges.venues.htx.venue import HTX

KEY = "demo1a2b-c3d4e5f6-0a1b2c3d-4e5f6"
SECRET = "5f2e8d1c-9a7b3c4d-11223344-aabbc"


def _form(owner=None, **data):
    data = {"label": "", "access_key": KEY, "secret_key": SECRET, **data}
    return ConnectionForm(data, venue=HTX, owner=owner)


@pytest.mark.django_db
def test_it_trims_whitespace_and_line_breaks_from_pasted_keys():
    form = _form(access_key=f"  {KEY}\n", secret_key=f"\t{SECRET[:10]} {SECRET[10:]} ")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["access_key"] == KEY
    assert form.cleaned_data["secret_key"] == SECRET


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["clé-ключ-1234567890abcdef", "abc\u200b1234567890abcdef"])
def test_it_refuses_non_ascii_keys_with_a_reason(value):
    form = _form(access_key=value)
    assert not form.is_valid()
    assert "characters HTX never uses" in form.errors["access_key"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["short", "x" * 200])
def test_it_refuses_absurd_lengths(value):
    form = _form(secret_key=value)
    assert not form.is_valid()
    assert "characters long" in form.errors["secret_key"][0]


@pytest.mark.django_db
def test_it_refuses_the_same_value_in_both_fields():
    form = _form(secret_key=KEY)
    assert not form.is_valid()
    assert "are the same" in form.non_field_errors()[0]


@pytest.mark.django_db
def test_it_says_when_the_key_is_already_connected_by_the_same_user(alice):
    ExchangeConnection.objects.create(
        owner=alice, access_key=KEY, secret_key=SECRET, access_key_fingerprint=access_key_fingerprint(KEY)
    )
    form = _form(owner=alice)
    assert not form.is_valid()
    assert form.errors["access_key"] == ["This API key is already connected to your account."]


@pytest.mark.django_db
def test_it_says_nothing_of_a_key_another_user_connected(alice, bob):
    # Whether another account uses a key is told only once the exchange accepted the secret
    # (tests/security/test_key_in_use.py): the form takes it like any other key.
    ExchangeConnection.objects.create(
        owner=alice,
        access_key=KEY,
        secret_key=SECRET,
        access_key_fingerprint=access_key_fingerprint(KEY),
        established=True,
    )
    form = _form(owner=bob)
    assert form.is_valid(), form.errors
