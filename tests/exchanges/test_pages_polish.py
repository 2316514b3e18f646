"""Issue 13 on the exchange pages: the formatting rules (time, price, a connection's title), an
honest portfolio (last known balances not counted), BTC valuation, and the feedback views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from exchanges import charts, formatting, keycheck, selectors, services
from exchanges.models import BalanceLine, BalanceSnapshot, ExchangeConnection, Status
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")
HTMX = {"HTTP_HX_REQUEST": "true"}


def _connection(owner, *, label="", status=Status.CONNECTED, keys=True, usdt="100", btc="0.001", lines=()):
    key = f"test{ExchangeConnection.objects.count():04d}-aaaa-bbbb-cccc"
    c = ExchangeConnection.objects.create(
        owner=owner,
        exchange="htx",
        label=label,
        status=status,
        established=True,
        access_key=key if keys else None,
        secret_key="s" if keys else None,
        access_key_fingerprint=services.access_key_fingerprint(key) if keys else None,
        access_key_head=key[:4],
        access_key_tail=key[-4:],
        total_usdt=Decimal(usdt),
        total_btc=None if btc is None else Decimal(btc),
        last_refreshed_at=timezone.now(),
        last_verified_at=timezone.now(),
    )
    snapshot = BalanceSnapshot.objects.create(connection=c, total_usdt=c.total_usdt, total_btc=c.total_btc)
    for asset, value in lines or (("usdt", usdt),):
        BalanceLine.objects.create(
            snapshot=snapshot,
            currency=asset,
            available=Decimal(value),
            in_orders=0,
            total=Decimal(value),
            price_usdt=1,
            value_usdt=Decimal(value),
        )
    c.latest_snapshot = snapshot
    c.save()
    return c


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


# --- Formatting rules ---------------------------------------------------------------------------


def test_a_moment_reads_day_month_year_time_and_zone():
    at = datetime(2026, 12, 1, 23, 41, 7, tzinfo=UTC)
    assert formatting.moment(at) == "1 Dec 2026, 23:41 UTC"
    assert formatting.day(at) == "1 Dec 2026"
    assert formatting.moment(None) == ""


def test_a_relative_time_carries_the_absolute_one():
    at = timezone.now() - timedelta(minutes=5)
    html = Template("{% load exchanges_tags %}{% ago at %}").render(Context({"at": at}))
    assert html.startswith(f'<time datetime="{at.isoformat()}" title="{formatting.moment(at)}"')
    assert "5\xa0minutes ago" in html or "5 minutes ago" in html
    assert formatting.moment(at).endswith(" UTC")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("97123.456", "97,123.46"),
        ("1", "1.00"),
        ("12.3", "12.30"),
        ("0.5", "0.5000"),
        ("0.123456", "0.1235"),
        ("0.00123456", "0.001235"),
        ("0.0000123456", "0.00001235"),
        ("0.00000000123456", "0.000000001235"),
        ("0", "0.00"),
        ("-0.5", "-0.5000"),
    ],
)
def test_prices_follow_one_rule_by_magnitude(value, text):
    assert formatting.price(Decimal(value)) == text


def test_amounts_of_money_have_the_precision_of_their_unit():
    assert formatting.usdt(Decimal("1234.5")) == "1,234.50"
    assert formatting.btc(Decimal("0.0123")) == "0.01230000"
    assert formatting.money(Decimal("10"), Decimal("0.0001"), "BTC") == "0.00010000 BTC"
    assert formatting.money(Decimal("10"), None, "BTC") == "10.00 USDT"  # no BTC price known
    assert formatting.money(Decimal("10"), Decimal("0.0001"), "USDT") == "10.00 USDT"


def test_a_title_names_the_venue_once(alice):
    unlabelled = _connection(alice)
    assert formatting.connection_title(unlabelled) == "HTX · API key test…cccc"
    assert formatting.connection_subtitle_parts(unlabelled) == []  # its name is already "HTX"
    labelled = _connection(alice, label="Grid bot")
    assert formatting.connection_title(labelled) == "HTX · Grid bot"
    assert formatting.connection_subtitle_parts(labelled) == ["HTX"]


def test_the_row_of_an_unlabelled_connection_does_not_repeat_the_venue(alice_client, alice):
    _connection(alice)
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "HTX · HTX" not in body
    assert 'title="HTX · API key test…cccc"' in body


# --- An honest portfolio ------------------------------------------------------------------------


def test_a_destroyed_key_is_not_counted_and_the_live_total_stays(alice):
    live = _connection(alice, usdt="100", lines=(("usdt", "60"), ("eth", "40")))
    gone = _connection(alice, status=Status.WITHDRAW_ENABLED, keys=False, usdt="50", lines=(("btc", "50"),))
    portfolio = selectors.portfolio_for_user(alice)
    assert portfolio.total_usdt == Decimal(100)
    assert portfolio.total_btc == Decimal("0.001")
    assert [c.pk for c in portfolio.not_counted] == [gone.pk]
    assert dict(portfolio.allocation) == {"USDT": Decimal(60), "ETH": Decimal(40)}
    assert dict(portfolio.by_exchange) == {"HTX": Decimal(100)}
    shares = {c.pk: c.share for c in portfolio.connections}
    assert shares == {live.pk: Decimal(100), gone.pk: None}
    assert selectors.last_known_only(gone) and not selectors.balance_counts(gone)


def test_with_no_live_connection_the_total_is_zero_not_hidden(alice_client, alice):
    _connection(alice, status=Status.INVALID, usdt="50")
    portfolio = selectors.portfolio_for_user(alice)
    assert portfolio.total_usdt == Decimal(0) and len(portfolio.not_counted) == 1
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert 'data-testid="portfolio-total"' in body and 'data-testid="not-counted"' in body
    assert 'data-testid="last-known"' in body and "Last known ·" in body


def test_without_any_balance_there_is_no_total(alice):
    ExchangeConnection.objects.create(owner=alice, status=Status.VERIFYING)
    assert selectors.portfolio_for_user(alice).total_usdt is None


def test_btc_allocation_uses_each_venues_btc_price(alice):
    _connection(alice, usdt="100", btc="0.001", lines=(("usdt", "60"), ("eth", "40")))
    _connection(alice, usdt="200", btc="0.004", lines=(("usdt", "200"),))
    portfolio = selectors.portfolio_for_user(alice)
    assert dict(portfolio.allocation_btc) == {"USDT": Decimal("0.0046"), "ETH": Decimal("0.0004")}
    assert dict(portfolio.by_exchange_btc) == {"HTX": Decimal("0.005")}


def test_btc_allocation_falls_back_to_usdt_without_a_btc_price(alice):
    _connection(alice, btc=None)
    portfolio = selectors.portfolio_for_user(alice)
    assert portfolio.allocation_btc is None and portfolio.by_exchange_btc is None


def test_the_list_and_detail_page_show_values_in_btc_when_chosen(alice_client, alice):
    alice.valuation_currency = "BTC"
    alice.save()
    c = _connection(alice, usdt="100", btc="0.001")
    body = alice_client.get(reverse("exchanges:connection-list")).content.decode()
    assert "Value (BTC)" in body and "0.00100000" in body
    detail = alice_client.get(reverse("exchanges:connection-detail", args=[c.pk])).content.decode()
    assert "Price (BTC)" in detail and "Total value over time (BTC)" in detail
    assert "Balance read: 0.00100000 BTC" in detail
    assert selectors.history_for(c, unit="BTC")[0][1] == Decimal("0.001")


def test_the_history_chart_names_its_unit_with_its_precision():
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    svg = charts.history_line(
        [(at, Decimal("0.0123")), (at + timedelta(hours=1), Decimal("0.0124"))], unit="BTC"
    )
    assert "0.01230000 BTC → 0.01240000 BTC" in svg


# --- Feedback -----------------------------------------------------------------------------------


def test_remove_with_htmx_says_so_at_once_and_queues_nothing_for_the_next_page(alice_client, alice):
    c = _connection(alice, label="Old")
    response = alice_client.post(reverse("exchanges:connection-remove", args=[c.pk]), **HTMX)
    events = json.loads(response["HX-Trigger"])
    assert events["closeModal"] and events["connectionChanged"]
    assert events["showMessage"]["text"].startswith("Old (test…cccc) was removed, with its key.")
    assert "was removed" not in alice_client.get(reverse("exchanges:connection-list")).content.decode()


def test_remove_without_js_shows_the_message_on_the_list(alice_client, alice):
    c = _connection(alice, label="Old")
    response = alice_client.post(reverse("exchanges:connection-remove", args=[c.pk]), follow=True)
    assert "Old (test…cccc) was removed" in response.content.decode()


def test_a_refused_replacement_notice_can_be_dismissed(alice_client, alice, bob, client):
    c = _connection(alice)
    ExchangeConnection.objects.filter(pk=c.pk).update(replacement_error="Refused.")
    url = reverse("exchanges:connection-replacement-dismiss", args=[c.pk])
    assert alice_client.get(url).status_code == 405
    row = alice_client.post(url, **HTMX)
    assert row.status_code == 286 and 'data-testid="connection"' in row.content.decode()
    assert 'data-testid="replacement-refused"' not in row.content.decode()
    assert ExchangeConnection.objects.get(pk=c.pk).replacement_error == ""
    ExchangeConnection.objects.filter(pk=c.pk).update(replacement_error="Refused.")
    assert alice_client.post(url)["Location"] == reverse("exchanges:connection-list")
    assert ExchangeConnection.objects.get(pk=c.pk).replacement_error == ""
    client.force_login(bob)
    assert client.post(url).status_code == 404


def test_dismissing_leaves_a_replacement_in_progress_alone(alice):
    c = _connection(alice)
    ExchangeConnection.objects.filter(pk=c.pk).update(replacement_error="Old.", pending_fingerprint="f" * 64)
    services.connection_replacement_notice_dismiss(connection=c)
    assert ExchangeConnection.objects.get(pk=c.pk).replacement_error == "Old."


def test_a_withdraw_enabled_replacement_says_what_to_do(alice, sandbox):
    c = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=GOOD[0], secret_key=GOOD[1]
    )
    assert keycheck.connection_check(connection_id=c.pk) == Status.CONNECTED
    key = demo_key("demo: same user, key with withdraw")
    services.connection_replace_keys(
        connection=ExchangeConnection.objects.get(pk=c.pk), access_key=key[0], secret_key=key[1]
    )
    keycheck.connection_check(connection_id=c.pk)
    refused = ExchangeConnection.objects.get(pk=c.pk).replacement_error
    assert refused.startswith("Withdrawal permission is enabled: key refused.")
    assert "What to do: On HTX, create a key" in refused

    # The notice goes once a later check of the current key succeeds.
    ExchangeConnection.objects.filter(pk=c.pk).update(next_check_at=timezone.now())
    assert keycheck.connection_check(connection_id=c.pk) == Status.CONNECTED
    assert ExchangeConnection.objects.get(pk=c.pk).replacement_error == ""


def test_a_polled_row_keeps_its_share_of_the_portfolio(alice_client, alice):
    a = _connection(alice, usdt="300")
    _connection(alice, usdt="100")
    row = alice_client.get(reverse("exchanges:connection-row", args=[a.pk]), **HTMX).content.decode()
    assert "75.0% of portfolio" in row


def test_dismissing_a_refused_replacement_needs_login_and_a_csrf_token(client, alice):
    from django.test import Client

    c = _connection(alice)
    ExchangeConnection.objects.filter(pk=c.pk).update(replacement_error="Refused.")
    url = reverse("exchanges:connection-replacement-dismiss", args=[c.pk])
    response = client.post(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(url).status_code == 403
    assert ExchangeConnection.objects.get(pk=c.pk).replacement_error == "Refused."
