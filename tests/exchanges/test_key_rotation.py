from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import InvalidToken
from django.core.management import call_command
from django.db import connection as db

from exchanges.models import ExchangeConnection

pytestmark = pytest.mark.django_db

FIELDS = [
    ExchangeConnection._meta.get_field(name)
    for name in ("access_key", "secret_key", "pending_access_key", "pending_secret_key")
]


def _use_keys(settings, keys: list[str]) -> None:
    settings.FERNET_KEYS = keys
    for field in FIELDS:  # the field caches its Fernet instance
        for attr in ("keys", "fernet_keys", "fernet"):
            field.__dict__.pop(attr, None)


def _raw_secret(pk: int) -> bytes:
    with db.cursor() as cursor:
        cursor.execute("SELECT secret_key FROM exchanges_exchangeconnection WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


@pytest.fixture
def restore_keys(settings):
    original = list(settings.FERNET_KEYS)
    yield
    _use_keys(settings, original)


def test_a_new_key_can_be_rolled_in_with_no_downtime_and_the_old_one_dropped(alice, settings, restore_keys):
    _use_keys(settings, ["old-key"])
    row = ExchangeConnection.objects.create(
        owner=alice, access_key="ak-0123456789abcdef", secret_key="sk-secret-value"
    )
    before = _raw_secret(row.pk)

    _use_keys(settings, ["new-key", "old-key"])  # step 1: new key first; old rows still readable
    assert ExchangeConnection.objects.get(pk=row.pk).secret_key == "sk-secret-value"

    out = StringIO()
    call_command("rotate_fernet_keys", stdout=out)  # step 2: re-encrypt everything
    assert "Re-encrypted 1 connection" in out.getvalue()
    assert _raw_secret(row.pk) != before

    _use_keys(settings, ["new-key"])  # step 3: drop the old key
    assert ExchangeConnection.objects.get(pk=row.pk).secret_key == "sk-secret-value"


def test_without_rotation_dropping_the_old_key_would_lose_the_secrets(alice, settings, restore_keys):
    _use_keys(settings, ["old-key"])
    row = ExchangeConnection.objects.create(
        owner=alice, access_key="ak-0123456789abcdef", secret_key="sk-secret-value"
    )
    _use_keys(settings, ["new-key"])
    with pytest.raises(InvalidToken):
        ExchangeConnection.objects.get(pk=row.pk)
