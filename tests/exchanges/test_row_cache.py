"""My Exchanges' kept rows (exchanges.row_cache) and summed allocations (selectors._allocation):
a kept part is the HTML the template renders now, never an older state (issue 12)."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.template import Context
from django.template.loader import get_template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from exchanges import row_cache, selectors, services
from exchanges.models import BalanceLine, BalanceSnapshot, ExchangeConnection, SeenAddress, Status

pytestmark = pytest.mark.django_db

TOKEN = "csrf-token-of-this-request"


@pytest.fixture(autouse=True)
def _empty_store():
    row_cache.store.clear()
    yield
    row_cache.store.clear()


@pytest.fixture
def clock(monkeypatch):
    """timezone.now moved forward on demand (the badge's days, Stale, the queued notice)."""
    real_now = timezone.now
    offset = [timedelta(0)]
    monkeypatch.setattr(timezone, "now", lambda: real_now() + offset[0])

    def advance(**kwargs) -> None:
        offset[0] += timedelta(**kwargs)

    return advance


def _connection(owner, *, usdt: str | None = "100", lines=(("usdt", "100"),), **fields) -> ExchangeConnection:
    """A connection with a latest snapshot of `lines` (none when `usdt` is None)."""
    n = ExchangeConnection.objects.count()
    values = {
        "exchange": "htx",
        "status": Status.CONNECTED,
        "established": True,
        "access_key_fingerprint": f"fp{n}",
        "access_key_head": "ab12",
        "access_key_tail": f"{n:04d}",
        "total_usdt": None if usdt is None else Decimal(usdt),
        "total_btc": None if usdt is None else Decimal("0.001"),
        "last_refreshed_at": timezone.now(),
        "last_verified_at": timezone.now(),
        **fields,
    }
    c = ExchangeConnection.objects.create(owner=owner, **values)
    if usdt is not None:
        _snapshot(c, usdt, lines, refreshed=False)
    return c


def _snapshot(c: ExchangeConnection, usdt: str, lines, *, refreshed: bool = True) -> BalanceSnapshot:
    snapshot = BalanceSnapshot.objects.create(
        connection=c, total_usdt=Decimal(usdt), total_btc=Decimal("0.001")
    )
    for asset, value in lines:
        BalanceLine.objects.create(
            snapshot=snapshot,
            currency=asset,
            available=Decimal(value),
            in_orders=0,
            total=Decimal(value),
            price_usdt=1,
            value_usdt=Decimal(value),
        )
    refresh = {"last_refreshed_at": snapshot.taken_at} if refreshed else {}
    ExchangeConnection.objects.filter(pk=c.pk).update(
        latest_snapshot=snapshot, total_usdt=Decimal(usdt), **refresh
    )
    return snapshot


def _request(user):
    request = RequestFactory().get("/exchanges/")
    request.user = user
    return request


def _rows(user):
    """The connections as the page loads them (with their shares)."""
    return selectors.portfolio_for_user(user).connections


def _stale_after(user) -> timedelta:
    return timedelta(seconds=2 * user.refresh_seconds)


def _kept(user, c, request=None, notice: str = "") -> str:
    return row_cache.render_rows(
        [c],
        request=request or _request(user),
        user=user,
        stale_after=_stale_after(user),
        csrf_token=TOKEN,
        notice=notice,
    )


def _plain(user, c, request=None, notice: str = "") -> str:
    """The row straight through the template, as the list included it before it was kept."""
    context = {
        "c": c,
        "notice": notice,
        "stale_after": _stale_after(user),
        "request": request or _request(user),
        "user": user,
        "csrf_token": TOKEN,
    }
    return get_template(row_cache.ROW_TEMPLATE).template.render(Context(context))


def _kept_again(user, c) -> str:
    """The row rendered a second time: it must come from the store, and be what the template
    renders now."""
    hits = row_cache.store.hits
    html = _kept(user, c)
    assert row_cache.store.hits == hits + 1
    assert html == _plain(user, c)
    return html


def _after_change(user, c, change) -> tuple[str, str]:
    """The row kept, then changed by `change`, then loaded again as the page loads it."""
    c = next(row for row in _rows(user) if row.pk == c.pk)
    before = _kept(user, c)
    _kept_again(user, c)
    change()
    c = next(row for row in _rows(user) if row.pk == c.pk)
    after = _kept(user, c)
    assert after == _plain(user, c)
    return before, after


# --- the kept row is the template's row ---------------------------------------------------------


def test_a_kept_row_is_the_html_the_template_renders_for_every_kind_of_row(alice, settings):
    settings.EGRESS_IPS = []
    now = timezone.now()
    SeenAddress.objects.create(exchange="htx", ip="203.0.113.9", seen_at=now)
    _connection(alice, label="Main", key_expires_at=now + timedelta(days=4, hours=1))
    _connection(alice, trading_expires_at=now + timedelta(days=3), ip_addresses="203.0.113.9,198.51.100.1")
    _connection(
        alice, status=Status.INVALID, error_kind="bad_signature", error_detail="api-signature-not-valid"
    )
    _connection(alice, status=Status.TEMPORARY, error_detail="503")
    _connection(alice, status=Status.EXPIRED, access_key_fingerprint=None)
    _connection(alice, refresh_requested_at=now)
    _connection(alice, pending_fingerprint="pending", replacement_error="The new key is for another account.")
    _connection(alice, last_refreshed_at=now - timedelta(hours=3), usdt="0", lines=())
    verifying = _connection(alice, status=Status.VERIFYING, established=False, usdt=None)
    ExchangeConnection.objects.filter(pk=verifying.pk).update(
        total_usdt=None, updated_at=now - timedelta(minutes=5), last_verified_at=None
    )
    rows = _rows(alice)
    assert len(rows) == 9
    for c in rows:
        assert _kept(alice, c) == _plain(alice, c), c.status
        _kept_again(alice, c)
    alice.valuation_currency = "BTC"
    for c in rows:
        assert _kept(alice, c) == _plain(alice, c), c.status
    assert _kept(alice, rows[0], notice="Refresh again in 20 s.") == _plain(
        alice, rows[0], notice="Refresh again in 20 s."
    )


def test_the_page_shows_the_rows_the_template_renders(client, alice):
    for i in range(3):
        _connection(alice, label=f"Account {i}")
    client.force_login(alice)
    url = reverse("exchanges:connection-list")
    first = client.get(url).content.decode()
    second = client.get(url).content.decode()
    response = client.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', first)[1]
    request = response.wsgi_request
    rows = "".join(
        get_template(row_cache.ROW_TEMPLATE).template.render(
            Context(
                {
                    "c": c,
                    "notice": "",
                    "stale_after": _stale_after(alice),
                    "request": request,
                    "user": alice,
                    "csrf_token": token,
                }
            )
        )
        for c in _rows(alice)
    )
    assert rows in first
    assert row_cache.store.hits >= 3
    # Each response carries its own CSRF token in every form, never one from another response.
    for body in (first, second):
        tokens = set(re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', body))
        assert len(tokens) == 1
    assert "\x00" not in second


# --- a kept row never shows an old state --------------------------------------------------------


def test_a_status_written_without_touching_updated_at_shows_at_once(alice):
    c = _connection(alice)
    before, after = _after_change(
        alice,
        c,
        lambda: ExchangeConnection.objects.filter(pk=c.pk).update(
            status=Status.INVALID, error_kind="bad_signature"
        ),
    )
    assert 'data-status="connected"' in before
    assert 'data-status="invalid"' in after and "Invalid" in after


def test_a_new_snapshot_shows_its_balance_and_time(alice):
    c = _connection(alice, usdt="100")
    before, after = _after_change(alice, c, lambda: _snapshot(c, "250.5", (("btc", "250.5"),)))
    assert "100.00" in before
    assert "250.50" in after


def test_the_relative_time_moves_with_the_clock_in_a_kept_row(alice):
    c = _connection(alice, last_refreshed_at=timezone.now() - timedelta(seconds=5))
    c = _rows(alice)[0]
    first = _kept(alice, c)
    time.sleep(1.1)
    second = _kept_again(alice, c)
    assert first != second
    assert re.search(r"updated <time [^>]+>\d+\xa0seconds ago</time>", second)


def test_a_minute_later_the_row_is_stale(alice, clock):
    c = _connection(alice, last_refreshed_at=timezone.now() - _stale_after(alice) + timedelta(seconds=30))
    c = _rows(alice)[0]
    assert 'data-testid="stale"' not in _kept(alice, c)
    _kept_again(alice, c)
    clock(minutes=1)
    after = _kept(alice, c)
    assert after == _plain(alice, c)
    assert 'data-testid="stale"' in after


def test_the_days_to_expiry_count_down_when_a_day_passes(alice, clock):
    c = _connection(alice, key_expires_at=timezone.now() + timedelta(days=4, hours=1))
    c = _rows(alice)[0]
    assert "Expires in 5 days" in _kept(alice, c)
    _kept_again(alice, c)
    clock(hours=2)
    after = _kept(alice, c)
    assert after == _plain(alice, c)
    assert "Expires in 4 days" in after


def test_the_time_left_in_the_key_facts_moves_with_the_clock(alice):
    c = _connection(alice, key_expires_at=timezone.now() + timedelta(minutes=1, seconds=1))
    c = _rows(alice)[0]
    assert "(1\xa0minute left)" in _kept(alice, c)
    time.sleep(1.5)
    after = _kept(alice, c)
    assert after == _plain(alice, c)
    assert "(0\xa0minutes left)" in after


def test_a_submission_nobody_took_is_shown_queued_once_its_time_passes(alice, clock):
    c = _connection(alice, status=Status.VERIFYING, established=False, usdt=None)
    c = _rows(alice)[0]
    assert 'data-testid="queued"' not in _kept(alice, c)
    clock(minutes=1)
    after = _kept(alice, c)
    assert after == _plain(alice, c)
    assert 'data-testid="queued"' in after


def test_a_row_in_flight_polls_fast_at_first_then_slower(alice, clock):
    """A new key's row asks for its state every 0.5 s while the user watches the check (which
    usually ends within a second), then every 2 s: a kept row never polls at the old pace."""
    c = _connection(alice, status=Status.VERIFYING, established=False, usdt=None)
    c = _rows(alice)[0]
    assert 'hx-trigger="every 500ms"' in _kept(alice, c)
    assert 'hx-trigger="every 500ms"' in _kept_again(alice, c)
    clock(seconds=11)
    after = _kept(alice, c)
    assert after == _plain(alice, c)
    assert 'hx-trigger="every 2s"' in after
    # A settled row does not poll; "Refresh now" (which stamps updated_at) makes it poll fast.
    connected = _connection(alice, last_checked_at=timezone.now())
    row = next(row for row in _rows(alice) if row.pk == connected.pk)
    assert "every 500ms" not in _kept(alice, row) and "every 2s" not in _kept(alice, row)
    ExchangeConnection.objects.filter(pk=connected.pk).update(
        refresh_requested_at=timezone.now() + timedelta(seconds=1), updated_at=timezone.now()
    )
    row = next(row for row in _rows(alice) if row.pk == connected.pk)
    assert 'hx-trigger="every 500ms"' in _kept(alice, row)


def test_a_renamed_connection_shows_its_new_label(alice):
    c = _connection(alice, label="Old name")
    before, after = _after_change(
        alice, c, lambda: services.connection_rename(connection=c, label="New name")
    )
    assert "Old name" in before and "Old name" not in after and "New name" in after


def test_a_claim_by_a_worker_is_part_of_the_key(alice):
    c = _connection(alice, status=Status.VERIFYING, established=False, usdt=None)
    ExchangeConnection.objects.filter(pk=c.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    before, after = _after_change(
        alice,
        c,
        lambda: ExchangeConnection.objects.filter(pk=c.pk).update(
            claimed_until=timezone.now() + timedelta(minutes=1)
        ),
    )
    assert 'data-testid="queued"' in before and 'data-testid="queued"' not in after


def test_the_owners_unit_and_the_portfolio_share_are_part_of_the_key(alice):
    c = _connection(alice, usdt="100")
    before = _kept(alice, _rows(alice)[0])
    _connection(alice, usdt="300")
    assert "100.0% of portfolio" in before
    assert "25.0% of portfolio" in _kept(alice, _rows(alice)[0])
    alice.valuation_currency = "BTC"
    alice.save()
    in_btc = _kept(alice, next(r for r in _rows(alice) if r.pk == c.pk))
    assert 'data-testid="balance-btc"' in in_btc


def test_what_an_exchange_saw_of_our_address_is_part_of_the_key(alice, settings):
    settings.EGRESS_IPS = []
    _connection(alice, ip_addresses="203.0.113.9")
    c = _rows(alice)[0]
    before = _kept(alice, c, request=_request(alice))
    SeenAddress.objects.create(exchange="htx", ip="203.0.113.9", seen_at=timezone.now())
    after = _kept(alice, c, request=_request(alice))
    assert after == _plain(alice, c)
    assert before != after and "203.0.113.9" in after


def test_an_amount_stored_with_other_digits_is_another_key(alice):
    c = _connection(alice, usdt="2")
    _kept(alice, _rows(alice)[0])
    ExchangeConnection.objects.filter(pk=c.pk).update(total_usdt=Decimal("2.000"))
    _kept(alice, _rows(alice)[0])
    assert len(row_cache.store) == 2


def test_a_row_with_a_column_not_loaded_is_rendered_and_not_kept(alice):
    _connection(alice)
    c = ExchangeConnection.objects.defer(*selectors.KEY_FIELDS, "label").get(owner=alice)
    c.share = None
    assert _kept(alice, c) == _plain(alice, c)
    assert len(row_cache.store) == 0


def test_a_settings_change_empties_the_store(alice, settings):
    _connection(alice)
    _kept(alice, _rows(alice)[0])
    assert len(row_cache.store) == 1
    settings.EGRESS_IPS = ["198.51.100.7"]
    assert len(row_cache.store) == 0


def test_the_store_keeps_to_its_size(alice, settings):
    for _ in range(3):
        _connection(alice)
    rows = _rows(alice)
    _kept(alice, rows[0])
    size = row_cache.store._bytes  # as kept, holes included
    row_cache.store.clear()
    settings.ROW_CACHE_BYTES = size * 2 + 10
    for c in rows:
        _kept(alice, c)
    assert len(row_cache.store) == 2


# --- the polled row -----------------------------------------------------------------------------


def test_the_polled_row_is_the_template_row_and_follows_a_status_change(client, alice):
    c = _connection(alice, status=Status.VERIFYING, established=False, usdt=None)
    client.force_login(alice)
    url = reverse("exchanges:connection-row", args=[c.pk])
    first = client.get(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and "every 500ms" in first.content.decode()
    ExchangeConnection.objects.filter(pk=c.pk).update(status=Status.CONNECTED, established=True)
    second = client.get(url, HTTP_HX_REQUEST="true")
    assert second.status_code == 286
    assert 'data-status="connected"' in second.content.decode()


# --- the allocation -----------------------------------------------------------------------------


def test_the_allocation_follows_a_new_snapshot(alice):
    c = _connection(alice, usdt="10", lines=(("btc", "6"), ("eth", "4")))
    assert selectors.portfolio_for_user(alice).allocation == [("BTC", Decimal(6)), ("ETH", Decimal(4))]
    _snapshot(c, "10", (("eth", "7"), ("btc", "3")))
    assert selectors.portfolio_for_user(alice).allocation == [("ETH", Decimal(7)), ("BTC", Decimal(3))]


def test_the_allocation_follows_a_status_change(alice):
    c = _connection(alice, usdt="10", lines=(("btc", "10"),))
    _connection(alice, usdt="5", lines=(("eth", "5"),))
    assert dict(selectors.portfolio_for_user(alice).allocation) == {"BTC": 10, "ETH": 5}
    ExchangeConnection.objects.filter(pk=c.pk).update(status=Status.INVALID)
    assert dict(selectors.portfolio_for_user(alice).allocation) == {"ETH": 5}


def test_a_snapshot_id_used_again_is_another_allocation(alice):
    """SQLite gives a rolled-back row's id to the next one (as between tests): the key holds the
    connection's creation and refresh times too."""
    c = _connection(alice, usdt="10", lines=(("btc", "10"),))
    first = selectors._snapshot_key(_rows(alice)[0])
    ExchangeConnection.objects.filter(pk=c.pk).update(last_refreshed_at=timezone.now())
    assert selectors._snapshot_key(_rows(alice)[0]) != first


def test_the_list_reads_no_lines_for_snapshots_already_summed(client, alice, django_assert_num_queries):
    _connection(alice)
    client.force_login(alice)
    url = reverse("exchanges:connection-list")
    client.get(url)
    with django_assert_num_queries(3):  # session, user, connections
        client.get(url)
    _snapshot(ExchangeConnection.objects.get(owner=alice), "5", (("eth", "5"),))
    with django_assert_num_queries(4):  # and the new snapshot's lines
        assert "ETH" in client.get(url).content.decode()


# --- the list's query, compiled once ------------------------------------------------------------


def test_the_list_query_compiled_once_loads_what_the_orm_loads(alice, bob):
    c = _connection(
        alice, usdt="12.5", key_flags=[["Read", True, False, True]], accounts_unread=[{"type": "x"}]
    )
    old = BalanceSnapshot.objects.create(connection=c, total_usdt=Decimal("7.25"), total_btc=None)
    BalanceSnapshot.objects.filter(pk=old.pk).update(taken_at=timezone.now() - timedelta(hours=25))
    _connection(alice, status=Status.VERIFYING, usdt=None)
    _connection(bob)
    day_ago = timezone.now() - timedelta(hours=24)
    compiled = selectors._connections_with_24h_ago(alice.pk, day_ago)
    orm = list(selectors._list_queryset(alice.pk, day_ago))
    columns = [
        f.attname for f in ExchangeConnection._meta.concrete_fields if f.name not in selectors.KEY_FIELDS
    ]
    assert len(compiled) == len(orm) == 2
    for mine, theirs in zip(compiled, orm, strict=True):
        assert [getattr(mine, a) for a in columns] == [getattr(theirs, a) for a in columns]
        assert mine.get_deferred_fields() == theirs.get_deferred_fields() == set(selectors.KEY_FIELDS)
        assert (mine.total_usdt_24h_ago, mine.total_btc_24h_ago) == (
            theirs.total_usdt_24h_ago,
            theirs.total_btc_24h_ago,
        )
    assert compiled[0].total_usdt_24h_ago == Decimal("7.25") and compiled[0].total_btc_24h_ago is None
