"""exchanges.rows on the refresh path: what its shortcuts write is what Django's save writes,
and its queries are Django's own (logged, counted, in the caller's transaction)."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchanges import rows
from exchanges.models import BalanceSnapshot, ExchangeConnection
from exchanges.recording import REFRESH_FIELDS

pytestmark = pytest.mark.django_db

FIELDS = ["latest_snapshot", "next_check_at", "key_expires_at", "key_flags", "accounts_unread", "total_usdt"]


def _connection(owner, label: str) -> ExchangeConnection:
    return ExchangeConnection.objects.create(owner=owner, exchange="htx", label=label, total_usdt=Decimal(0))


def _snapshot(connection_: ExchangeConnection) -> BalanceSnapshot:
    return BalanceSnapshot.objects.create(connection=connection_, total_usdt=Decimal("1.5"))


def _stored(pk: int) -> dict:
    return (
        ExchangeConnection.objects.filter(pk=pk)
        .values(*[f"{name}_id" if name == "latest_snapshot" else name for name in FIELDS])
        .get()
    )


@pytest.mark.parametrize("snapshot_as", ["model", "id", "none"])
def test_update_each_writes_what_django_save_writes(alice, snapshot_as):
    ours, djangos = _connection(alice, "ours"), _connection(alice, "django's")
    snapshot = _snapshot(ours)
    moment = timezone.now().replace(microsecond=123456) + timedelta(days=3)
    for row in (ours, djangos):
        row.latest_snapshot_id = {"model": snapshot.pk, "id": snapshot.pk, "none": None}[snapshot_as]
        row.next_check_at = moment
        row.key_expires_at = None
        row.key_flags = [["Trade", True, False, True], ["Withdraw", False, True, False]]
        row.accounts_unread = [{"type": "margin", "id": 7, "reason": "HTX said \"no\"; 'quoted'"}]
        row.total_usdt = Decimal("12345.000000000000000001")
    if snapshot_as == "model":
        ours.latest_snapshot = snapshot  # a related object stands for its key
    rows.update_each([ours], FIELDS)
    djangos.save(update_fields=FIELDS)
    written, saved = _stored(ours.pk), _stored(djangos.pk)
    assert written == saved
    assert written["next_check_at"] == moment and written["total_usdt"] == Decimal("12345.000000000000000001")


def test_a_naive_datetime_takes_djangos_own_path(alice):
    ours, djangos = _connection(alice, "ours"), _connection(alice, "django's")
    naive = datetime(2026, 12, 3, 12, 0, 0)
    ours.next_check_at = djangos.next_check_at = naive
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows.update_each([ours], ["next_check_at"])
        djangos.save(update_fields=["next_check_at"])
    # Django warns about a naive datetime and stores it in the current time zone; so do we.
    assert sum("naive datetime" in str(w.message) for w in caught) == 2
    stored = dict(
        ExchangeConnection.objects.filter(pk__in=[ours.pk, djangos.pk]).values_list("pk", "next_check_at")
    )
    assert stored[ours.pk] == stored[djangos.pk] == timezone.make_aware(naive)


def test_a_batch_is_one_logged_query_in_the_callers_transaction(alice):
    connections_ = [_connection(alice, f"row {n}") for n in range(5)]
    now = timezone.now()
    for n, row in enumerate(connections_):
        row.total_usdt = Decimal(n)
        row.updated_at = row.last_refreshed_at = now
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        rows.update_each(connections_, REFRESH_FIELDS)
        transaction.set_rollback(True)
    updates = [q["sql"] for q in captured.captured_queries if "UPDATE" in q["sql"]]
    assert len(updates) == 1 and updates[0].startswith("5 times: UPDATE")
    # Rolled back with the caller's transaction.
    assert set(ExchangeConnection.objects.values_list("total_usdt", flat=True)) == {Decimal(0)}


def test_the_bound_cursor_binds_on_the_server_on_postgresql_and_leaves_the_connection_as_it_was():
    connection.ensure_connection()
    factory = getattr(connection.connection, "cursor_factory", None)
    with rows._bound_cursor(connection) as cursor:
        cursor.execute("SELECT %s", ["it's"])
        assert cursor.fetchone() == ("it's",)
        inner = type(cursor.cursor).__name__
    if connection.vendor == "postgresql":
        assert inner == "ServerBindingCursor"
    else:
        with connection.cursor() as plain:
            assert inner == type(plain.cursor).__name__
    assert getattr(connection.connection, "cursor_factory", None) is factory
    # Django's own cursors are as before: client-side binding on PostgreSQL.
    with connection.cursor() as plain:
        assert type(plain.cursor).__name__ != "ServerBindingCursor"
