"""My Exchanges: portfolio, row polling, actions, detail page, retention (issue 4)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from exchanges import keycheck, retention, selectors, services
from exchanges.models import BalanceLine, BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from exchanges.venues.htx.venue import HTX
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")
OTHER_UID = demo_key("demo: bound to 127.0.0.1")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _connected(sandbox, owner, key=GOOD) -> ExchangeConnection:
    connection = services.connection_create(
        owner=owner, exchange="htx", label="", access_key=key[0], secret_key=key[1]
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    return ExchangeConnection.objects.get(pk=connection.pk)


def _seed(owner, n_connections: int, n_assets: int) -> None:
    start = ExchangeConnection.objects.filter(owner=owner).count()
    for i in range(start, start + n_connections):
        c = ExchangeConnection.objects.create(
            owner=owner,
            status=Status.CONNECTED,
            established=True,
            total_usdt=Decimal(n_assets),
            total_btc=Decimal("0.001"),
            access_key_head="seed",
            access_key_tail=f"{i:04d}",
            last_refreshed_at=timezone.now(),
            last_verified_at=timezone.now(),
        )
        snapshot = BalanceSnapshot.objects.create(connection=c, total_usdt=Decimal(n_assets))
        BalanceLine.objects.bulk_create(
            BalanceLine(
                snapshot=snapshot,
                currency=f"c{a}",
                available=Decimal(1),
                in_orders=Decimal(0),
                total=Decimal(1),
                price_usdt=Decimal(1),
                value_usdt=Decimal(1),
            )
            for a in range(n_assets)
        )
        c.latest_snapshot = snapshot
        c.save()


def test_the_list_runs_a_fixed_number_of_queries_whatever_the_number_of_connections(alice_client, alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("exchanges:connection-list")
    alice_client.get(url)  # warm the session
    first, again = {}, {}
    for total in (0, 1, 25):
        _seed(alice, total - ExchangeConnection.objects.filter(owner=alice).count(), 40)
        for counts in (first, again):
            with CaptureQueriesContext(connection) as captured:
                response = alice_client.get(url)
            assert response.content.decode().count('data-testid="connection"') == total
            counts[total] = len(captured)
    # Session, user, connections with 24h-ago totals, and the lines of their latest snapshots,
    # which are not read again for snapshots already summed (nor when there are none). No
    # writes: the session and allauth's record of it are saved at most once a minute
    # (accounts.middleware).
    assert first == {0: 3, 1: 4, 25: 4}, first
    assert again == {0: 3, 1: 3, 25: 3}, again


def test_the_portfolio_shows_totals_24h_change_and_allocation(alice):
    _seed(alice, 2, 3)
    c = ExchangeConnection.objects.filter(owner=alice).first()
    old = BalanceSnapshot.objects.create(connection=c, total_usdt=Decimal("1.5"))
    BalanceSnapshot.objects.filter(pk=old.pk).update(taken_at=timezone.now() - timedelta(hours=25))
    portfolio = selectors.portfolio_for_user(alice)
    assert portfolio.total_usdt == Decimal(6)
    assert portfolio.change_24h == Decimal("1.5")  # 3 now against 1.5 a day ago, for the one with history
    assert portfolio.change_24h_pct == Decimal(100)
    assert dict(portfolio.allocation) == {"C0": Decimal(2), "C1": Decimal(2), "C2": Decimal(2)}
    assert [c.share for c in portfolio.connections] == [Decimal(50), Decimal(50)]


def test_the_list_page_renders_the_allocation_chart_and_its_table(alice_client, alice):
    _seed(alice, 1, 2)
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "<svg" in body and 'role="img"' in body
    assert "Allocation by asset" in body and "C0" in body and "50.0%" in body


def test_a_settled_row_stops_polling_with_286_and_refreshes_the_list(alice_client, alice):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    response = alice_client.get(reverse("exchanges:connection-row", args=[c.pk]), **HTMX)
    assert response.status_code == 286
    assert response["HX-Trigger"] == "connectionChanged"
    assert "every 500ms" not in response.content.decode() and "every 2s" not in response.content.decode()


def test_a_row_in_flight_polls_itself(alice_client, alice):
    c = ExchangeConnection.objects.create(owner=alice, status=Status.VERIFYING)
    response = alice_client.get(reverse("exchanges:connection-row", args=[c.pk]), **HTMX)
    assert response.status_code == 200
    assert 'hx-trigger="every 500ms"' in response.content.decode()  # just submitted: fast


def test_a_stale_balance_is_badged(alice_client, alice, settings):
    _seed(alice, 1, 1)
    ExchangeConnection.objects.filter(owner=alice).update(
        last_refreshed_at=timezone.now() - timedelta(seconds=3 * settings.BALANCE_REFRESH_SECONDS)
    )
    assert 'data-testid="stale"' in alice_client.get(reverse("exchanges:connection-list")).content.decode()


def test_refresh_now_queues_a_check_and_is_rate_limited(
    alice_client, alice, sandbox, django_capture_on_commit_callbacks
):
    c = _connected(sandbox, alice)
    ExchangeConnection.objects.filter(pk=c.pk).update(last_checked_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks() as callbacks:
        response = alice_client.post(
            reverse("exchanges:connection-refresh", args=[c.pk]), HTTP_HX_TARGET=f"connection-{c.pk}", **HTMX
        )
    assert len(callbacks) == 1
    assert 'data-testid="refreshing"' in response.content.decode()
    c.refresh_from_db()
    assert c.refreshing and c.next_check_at <= timezone.now()
    again = alice_client.post(reverse("exchanges:connection-refresh", args=[c.pk]), **HTMX).content.decode()
    assert "refresh again in" in again
    assert keycheck.connection_check(connection_id=c.pk) == Status.CONNECTED
    c.refresh_from_db()
    assert not c.refreshing


def test_rename_changes_the_label_and_closes_the_dialog(alice_client, alice):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    response = alice_client.post(
        reverse("exchanges:connection-rename", args=[c.pk]), {"label": "Main"}, **HTMX
    )
    assert json.loads(response["HX-Trigger"]) == {"connectionChanged": True, "closeModal": True}
    c.refresh_from_db()
    assert c.label == "Main"


def test_replacing_with_a_key_of_the_same_account_installs_it_and_destroys_the_old_secret(
    alice_client, alice, sandbox
):
    c = _connected(sandbox, alice)
    new_key, new_secret = "demoAAAA-11112222-33334444-55555", "ffff0000-11112222-33334444-aaaaa"
    sandbox.accounts[new_key] = {k: v for k, v in sandbox.accounts[GOOD[0]].items() if k != "accounts"}
    sandbox.accounts[new_key]["secret"] = new_secret
    response = alice_client.post(
        reverse("exchanges:connection-replace", args=[c.pk]),
        {"access_key": new_key, "secret_key": new_secret},
    )
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.replacing and c.secret_key == GOOD[1]  # the current key stays in use meanwhile
    snapshots_before = BalanceSnapshot.objects.filter(connection=c).count()
    assert keycheck.connection_check(connection_id=c.pk) == Status.CONNECTED
    c = ExchangeConnection.objects.get(pk=c.pk)
    assert (c.access_key, c.secret_key, c.masked_access_key) == (new_key, new_secret, "demo…5555")
    assert not c.replacing and c.pending_secret_key is None
    assert BalanceSnapshot.objects.filter(connection=c).count() == snapshots_before + 1  # history kept
    assert ConnectionEvent.objects.filter(connection=c, message__startswith="Key replaced").exists()


def test_replacing_with_a_key_of_another_htx_account_is_refused_and_the_old_key_kept(
    alice_client, alice, sandbox
):
    c = _connected(sandbox, alice)
    alice_client.post(
        reverse("exchanges:connection-replace", args=[c.pk]),
        {"access_key": OTHER_UID[0], "secret_key": OTHER_UID[1]},
    )
    keycheck.connection_check(connection_id=c.pk)
    c = ExchangeConnection.objects.get(pk=c.pk)
    assert c.access_key == GOOD[0] and c.secret_key == GOOD[1]
    assert "63628524" in c.replacement_error and "63628520" in c.replacement_error
    assert c.pending_secret_key is None and not c.replacing
    body = alice_client.get(reverse("exchanges:connection-replacement", args=[c.pk])).content.decode()
    assert "The new key was not used" in body


def test_replacing_with_a_withdraw_enabled_key_is_refused(alice_client, alice, sandbox):
    c = _connected(sandbox, alice)
    key = demo_key("demo: same user, key with withdraw")
    services.connection_replace_keys(connection=c, access_key=key[0], secret_key=key[1])
    keycheck.connection_check(connection_id=c.pk)
    c = ExchangeConnection.objects.get(pk=c.pk)
    assert c.access_key == GOOD[0] and "Withdrawal" in c.replacement_error


def test_replacing_with_the_current_key_is_refused_before_any_call(alice_client, alice, sandbox):
    c = _connected(sandbox, alice)
    body = alice_client.post(
        reverse("exchanges:connection-replace", args=[c.pk]), {"access_key": GOOD[0], "secret_key": GOOD[1]}
    ).content.decode()
    assert "This is the key this connection already uses." in body
    assert not ExchangeConnection.objects.get(pk=c.pk).replacing


def test_remove_asks_first_naming_the_connection_then_deletes_key_and_history(
    alice_client, alice, sandbox, settings
):
    c = _connected(sandbox, alice)
    page = alice_client.get(reverse("exchanges:connection-remove", args=[c.pk])).content.decode()
    assert f"Remove HTX ({c.masked_access_key})?" in page
    assert HTX.api_management_url in page
    assert ExchangeConnection.objects.filter(pk=c.pk).exists()
    alice_client.post(reverse("exchanges:connection-remove", args=[c.pk]))
    assert not ExchangeConnection.objects.filter(pk=c.pk).exists()
    assert not BalanceSnapshot.objects.filter(connection_id=c.pk).exists()


def test_the_detail_page_shows_holdings_coverage_facts_history_and_timeline(alice_client, alice, sandbox):
    c = _connected(sandbox, alice)
    body = alice_client.get(reverse("exchanges:connection-detail", args=[c.pk])).content.decode()
    assert 'data-testid="holdings"' in body and "XYZ" in body
    assert "small balance" in body  # the demo account holds dust, folded, not hidden
    assert "Coverage" in body and "otc" in body
    assert "Key facts" in body and "63628520" in body
    assert "Balance read" in body and "Key verified with HTX" in body
    assert 'class="chart chart-history"' in body or "chart-history" in body


def test_holdings_sort_by_any_column(alice, sandbox):
    c = _connected(sandbox, alice)
    assets = [h.asset for h in selectors.holdings_for(c, sort="asset", descending=False).main]
    assert assets == sorted(assets)
    values = [h.value_usdt for h in selectors.holdings_for(c, sort="value").main]
    assert values == sorted(values, reverse=True)
    totals = [h.total for h in selectors.holdings_for(c, sort="total", descending=False).main]
    assert totals == sorted(totals)


def test_holdings_export_as_csv(alice_client, alice, sandbox):
    c = _connected(sandbox, alice)
    response = alice_client.get(reverse("exchanges:connection-holdings-csv", args=[c.pk]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "label",
        "exchange",
        "read_at_utc",
        "account",
        "asset",
        "available",
        "in_orders",
        "debt",
        "total",
        "price_usdt",
        "value_usdt",
        "value_btc",
    ]
    assert {("spot", "USDT"), ("otc", "USDT")} <= {(r[3], r[4]) for r in rows}
    assert len(rows) - 1 == len(selectors.holdings_for(c).all)


def test_the_timeline_is_paginated_newest_first(alice_client, alice):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    for i in range(30):
        ConnectionEvent.objects.create(connection=c, status=Status.CONNECTED, message=f"event {i}")
    page = selectors.timeline_for(c, page=1)
    assert page.paginator.count == 31 and len(page) == 20
    assert page[0][0] >= page[1][0]
    body = alice_client.get(reverse("exchanges:connection-detail", args=[c.pk]) + "?page=2").content.decode()
    assert "Page 2 of 2" in body


def test_snapshot_retention_keeps_hourly_then_daily_then_nothing(alice, settings):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    # Midday, so "same day" below never straddles midnight whatever the hour the test runs.
    now = (timezone.now() - timedelta(days=1)).replace(hour=12, minute=30, second=0, microsecond=0)
    ages = [
        timedelta(hours=2),
        timedelta(days=2, minutes=1),
        timedelta(days=2, minutes=2),
        timedelta(days=30, hours=1),
        timedelta(days=30, hours=2),
        timedelta(days=400),
    ]
    for age in ages:
        s = BalanceSnapshot.objects.create(connection=c, total_usdt=Decimal(1))
        BalanceSnapshot.objects.filter(pk=s.pk).update(taken_at=now - age)
    before = BalanceSnapshot.objects.filter(connection=c).count()
    removed = retention.snapshots_prune(now=now)
    # same hour on day 2: one goes; same day on day 30: one goes; day 400: goes
    assert removed == 3
    assert BalanceSnapshot.objects.filter(connection=c).count() == before - 3
    assert BalanceSnapshot.objects.filter(pk=c.latest_snapshot_id).exists()


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("post", "connection-refresh"),
        ("get", "connection-rename"),
        ("post", "connection-rename"),
        ("get", "connection-replace"),
        ("post", "connection-replace"),
        ("get", "connection-replacement"),
        ("get", "connection-remove"),
        ("post", "connection-remove"),
        ("get", "connection-detail"),
        ("get", "connection-row"),
        ("get", "connection-holdings-csv"),
    ],
)
def test_every_action_on_someone_elses_connection_is_not_found(client, alice, bob, method, name):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    client.force_login(bob)
    response = getattr(client, method)(reverse(f"exchanges:{name}", args=[c.pk]), {"label": "x"})
    assert response.status_code == 404
    c.refresh_from_db()
    assert c.label == "" and ExchangeConnection.objects.filter(pk=c.pk).exists()


@pytest.mark.parametrize(
    "name", ["connection-refresh", "connection-rename", "connection-replace", "connection-remove"]
)
def test_every_action_needs_a_csrf_token(alice, name):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse(f"exchanges:{name}", args=[c.pk]), {"label": "x"}, **HTMX).status_code == 403
    assert ExchangeConnection.objects.filter(pk=c.pk, label="").exists()


@pytest.mark.parametrize(
    "name", ["connection-detail", "connection-row", "connection-holdings-csv", "connection-replacement"]
)
def test_read_only_views_refuse_post(alice_client, alice, name):
    _seed(alice, 1, 1)
    c = ExchangeConnection.objects.get(owner=alice)
    assert alice_client.post(reverse(f"exchanges:{name}", args=[c.pk])).status_code == 405


def test_the_help_guide_lists_this_dashboards_ip_addresses(alice_client, settings):
    settings.EGRESS_IPS = ["198.51.100.7", "198.51.100.8"]
    body = alice_client.get(reverse("exchanges:help-api-key", args=["htx"])).content.decode()
    assert "198.51.100.7" in body and 'id="permissions"' in body and 'id="ip-binding"' in body


def test_each_status_explanation_links_to_its_help_section(alice_client, alice):
    ExchangeConnection.objects.create(
        owner=alice, status=Status.IP_NOT_ALLOWED, error_kind="ip_not_allowed", established=True
    )
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert reverse("exchanges:help-api-key", args=["htx"]) + "#status-ip-not-allowed" in body
