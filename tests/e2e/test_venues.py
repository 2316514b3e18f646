"""Several exchanges from one interface, in Chromium: HTX and Binance side by side, one
portfolio, and every Binance refusal explained. Live server, a real worker, every venue's sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from exchanges import registry
from exchanges.models import ExchangeConnection, Status
from exchanges.templatetags.exchanges_tags import usdt
from tests.e2e.test_connect_flow import _sign_up

pytestmark = [pytest.mark.browser, pytest.mark.worker]

HTX = registry.get("htx")
BINANCE = registry.get("binance")


def _connect(page, venue, key: tuple[str, str], label: str = ""):
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = page.locator("dialog.modal")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id(f"pick-{venue.id}").locator("img")).to_be_visible()  # its logo
    dialog.get_by_test_id(f"pick-{venue.id}").click()
    expect(dialog.get_by_role("heading", name=f"Connect {venue.name}")).to_be_visible()
    if label:
        dialog.get_by_label("Label").fill(label)
    dialog.get_by_label("API Key").fill(key[0])
    dialog.get_by_label("Secret Key").fill(key[1])
    dialog.get_by_role("button", name="Connect").click()
    return dialog


def _row(page, label: str):
    return page.get_by_test_id("connection").filter(has_text=label)


def test_htx_and_binance_side_by_side_add_up_to_one_portfolio(
    page, live_server, venues_worker_process, sandboxes, screenshot
):
    _sign_up(page, live_server.url, "two-venues@example.com")
    expect(page.get_by_role("link", name=BINANCE.help_title)).to_be_visible()

    dialog = _connect(page, HTX, HTX.demo_key("good"), "HTX main")
    expect(dialog).to_have_count(0, timeout=30_000)
    dialog = _connect(page, BINANCE, BINANCE.demo_key("good"), "Binance main")
    expect(dialog.get_by_test_id("verification")).to_contain_text("Binance", timeout=30_000)
    expect(dialog).to_have_count(0, timeout=30_000)

    htx_row, binance_row = _row(page, "HTX main"), _row(page, "Binance main")
    expect(htx_row.get_by_test_id("status")).to_contain_text("Connected")
    expect(binance_row.get_by_test_id("status")).to_contain_text("Connected")
    expect(binance_row.locator("img.logo")).to_have_attribute("alt", "Binance")
    htx = ExchangeConnection.objects.get(exchange="htx")
    binance = ExchangeConnection.objects.get(exchange="binance")
    assert binance.total_usdt > 0 and htx.total_usdt > 0
    expect(binance_row.get_by_test_id("balance")).to_have_text(f"{usdt(binance.total_usdt)} USDT")
    # The header adds both exchanges.
    expect(page.get_by_test_id("portfolio-total")).to_have_text(
        f"{usdt(Decimal(htx.total_usdt) + Decimal(binance.total_usdt))} USDT"
    )
    # Binance takes trading away from keys without an IP restriction after 30 days: said so.
    expect(binance_row.get_by_test_id("trading-expiry")).to_be_visible()
    binance_row.get_by_text("What Binance told us about this key").click()
    facts = binance_row.get_by_test_id("key-facts")
    expect(facts).to_contain_text("Enable Spot & Margin Trading on")
    expect(facts).to_contain_text("Enable Withdrawals off")
    expect(facts.get_by_test_id("trading-permission")).to_contain_text("reading keeps working")
    expect(facts).to_contain_text(binance.account_uid)
    screenshot(page, "18-htx-and-binance")

    page.get_by_test_id("by-exchange").click()
    table = page.get_by_test_id("allocation-exchange")
    expect(table).to_contain_text("HTX")
    expect(table).to_contain_text("Binance")
    expect(table).to_contain_text(usdt(binance.total_usdt))
    screenshot(page, "19-allocation-by-exchange")

    binance_row.get_by_role("link", name="Details").click()
    expect(page.get_by_role("heading", name="Binance main")).to_be_visible()
    holdings = page.get_by_test_id("holdings")
    expect(holdings).to_contain_text("earn-flexible")  # Simple Earn, counted once
    expect(holdings).to_contain_text("funding")
    expect(page.get_by_test_id("unpriced")).to_be_visible()  # listed, never dropped
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    assert download.value.suggested_filename.startswith(f"binance-{binance.pk}-holdings-")


@pytest.mark.parametrize(
    ("scenario", "status", "reason"),
    [
        ("withdraw", "Withdrawal enabled", "Enable Withdrawals"),
        ("read_only", "Incorrect permissions", "Enable Spot & Margin Trading"),
        ("ip_elsewhere", "Invalid", "127.0.0.1"),
    ],
    ids=["withdraw", "read-only", "ip-elsewhere"],
)
def test_every_binance_refusal_shows_its_reason(
    page, live_server, venues_worker_process, sandboxes, screenshot, scenario, status, reason
):
    _sign_up(page, live_server.url, f"refused-{scenario.replace('_', '-')}@example.com")
    dialog = _connect(page, BINANCE, BINANCE.demo_key(scenario))
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text(reason, timeout=30_000)
    expect(dialog.get_by_label("Secret Key")).to_have_value("")  # a form to try again
    screenshot(page, f"20-binance-{scenario.replace('_', '-')}")
    connection = ExchangeConnection.objects.get()
    assert connection.secret_key is None and connection.access_key is None  # never kept
    expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text(status)


def test_a_binance_key_whose_trading_expired_keeps_its_balance_fresh(
    page, live_server, venues_worker_process, sandboxes, screenshot
):
    _sign_up(page, live_server.url, "expired-trading@example.com")
    dialog = _connect(page, BINANCE, BINANCE.demo_key("expired"))
    expect(dialog.get_by_role("alert")).to_contain_text("Trading permission expired", timeout=30_000)
    connection = ExchangeConnection.objects.get()
    assert connection.status == Status.TRADING_EXPIRED and connection.total_usdt > 0
    assert connection.has_keys  # a reading key is kept
    page.keyboard.press("Escape")
    row = page.get_by_test_id("connection")
    expect(row.get_by_test_id("status")).to_contain_text("Trading expired")
    expect(row.get_by_test_id("balance")).to_have_text(f"{usdt(connection.total_usdt)} USDT")
    expect(page.get_by_test_id("portfolio-total")).to_have_text(f"{usdt(connection.total_usdt)} USDT")
    screenshot(page, "21-binance-trading-expired")


def test_a_binance_key_whose_trading_expires_soon_says_when(
    page, live_server, venues_worker_process, sandboxes
):
    _sign_up(page, live_server.url, "expiring@example.com")
    dialog = _connect(page, BINANCE, BINANCE.demo_key("expires_soon"))
    expect(dialog).to_have_count(0, timeout=30_000)
    expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text(
        "Trading expires in 3 days"
    )


# --- OKX and Bybit: a passphrase, sites ------------------------------------------------------


def _passphrase(venue, api_key: str) -> str:
    return venue.sandbox().accounts[api_key]["passphrase"]


def _connect_with(
    page,
    venue,
    key: tuple[str, str],
    *,
    label: str = "",
    passphrase: str = "",
    site: str = "",
    screenshot=None,
):
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = page.locator("dialog.modal")
    if screenshot:
        expect(dialog.get_by_test_id(f"pick-{venue.id}")).to_be_visible()
        screenshot(page, "24-exchange-picker")
    dialog.get_by_test_id(f"pick-{venue.id}").click()
    expect(dialog.get_by_role("heading", name=f"Connect {venue.name}")).to_be_visible()
    if label:
        dialog.get_by_label("Label").fill(label)
    dialog.get_by_label("API Key").fill(key[0])
    dialog.get_by_label("Secret Key").fill(key[1])
    if passphrase:
        dialog.get_by_label("Passphrase").fill(passphrase)
    if site:
        dialog.get_by_label("Site").select_option(site)
    if screenshot:
        screenshot(page, f"25-connect-{venue.id}")
    dialog.get_by_role("button", name="Connect").click()
    return dialog


def test_four_exchanges_side_by_side_add_up_to_one_portfolio(
    page, live_server, venues_worker_process, sandboxes, screenshot
):
    okx, bybit = registry.get("okx"), registry.get("bybit")
    _sign_up(page, live_server.url, "four-venues@example.com")
    for venue, label in ((HTX, "HTX"), (BINANCE, "Binance"), (okx, "OKX"), (bybit, "Bybit")):
        key = venue.demo_key("good")
        passphrase = _passphrase(venue, key[0]) if venue is okx else ""
        shots = screenshot if venue is okx else None
        dialog = _connect_with(
            page, venue, key, label=f"{label} main", passphrase=passphrase, screenshot=shots
        )
        expect(dialog).to_have_count(0, timeout=30_000)
        expect(_row(page, f"{label} main").get_by_test_id("status")).to_contain_text("Connected")
    total = sum((Decimal(c.total_usdt) for c in ExchangeConnection.objects.all()), Decimal(0))
    assert ExchangeConnection.objects.filter(status=Status.CONNECTED).count() == 4
    expect(page.get_by_test_id("portfolio-total")).to_have_text(f"{usdt(total)} USDT")
    okx_row = _row(page, "OKX main")
    okx_row.get_by_text("What OKX told us about this key").click()
    expect(okx_row.get_by_test_id("idle-deletion")).to_contain_text("14 days")
    bybit_row = _row(page, "Bybit main")
    expect(bybit_row.get_by_test_id("status")).to_contain_text("Connected")
    page.get_by_test_id("by-exchange").click()
    for name in ("HTX", "Binance", "OKX", "Bybit"):
        expect(page.get_by_test_id("allocation-exchange")).to_contain_text(name)
    screenshot(page, "22-four-exchanges")
    okx_secret = okx.demo_key("good")[1]
    assert (
        okx_secret not in page.content() and _passphrase(okx, okx.demo_key("good")[0]) not in page.content()
    )


def test_an_okx_key_of_another_site_is_found_there(page, live_server, venues_worker_process, sandboxes):
    okx = registry.get("okx")
    _sign_up(page, live_server.url, "eea@example.com")
    key = okx.demo_key("other_site")
    dialog = _connect_with(page, okx, key, passphrase=_passphrase(okx, key[0]), site="global")
    expect(dialog).to_have_count(0, timeout=30_000)
    row = page.get_by_test_id("connection")
    expect(row.get_by_test_id("status")).to_contain_text("Connected")
    expect(row).to_contain_text("EEA")
    assert ExchangeConnection.objects.get().site == "eea"


@pytest.mark.parametrize(
    ("venue_id", "scenario", "reason"),
    [
        ("okx", "wrong_passphrase", "passphrase"),
        ("okx", "withdraw", "Withdraw"),
        ("okx", "ip_elsewhere", "127.0.0.1"),
        ("bybit", "withdraw", "Withdraw"),
        ("bybit", "ip_elsewhere", "IP"),
        ("bybit", "read_only", "permissions"),
    ],
    ids=["okx-passphrase", "okx-withdraw", "okx-ip", "bybit-withdraw", "bybit-ip", "bybit-read-only"],
)
def test_every_okx_and_bybit_refusal_shows_its_reason(
    page, live_server, venues_worker_process, sandboxes, screenshot, venue_id, scenario, reason
):
    venue = registry.get(venue_id)
    _sign_up(page, live_server.url, f"{venue_id}-{scenario.replace('_', '-')}@example.com")
    key = venue.demo_key("good" if scenario == "wrong_passphrase" else scenario)
    passphrase = ""
    if venue_id == "okx":
        passphrase = "not-the-passphrase" if scenario == "wrong_passphrase" else _passphrase(venue, key[0])
    dialog = _connect_with(page, venue, key, passphrase=passphrase)
    expect(dialog.get_by_role("alert")).to_contain_text(reason, timeout=30_000)
    screenshot(page, f"23-{venue_id}-{scenario.replace('_', '-')}")
    connection = ExchangeConnection.objects.get()
    assert connection.secret_key is None and connection.passphrase is None  # never kept


def test_a_bybit_key_expiring_soon_and_one_without_wallet_permission(
    page, live_server, venues_worker_process, sandboxes
):
    bybit = registry.get("bybit")
    _sign_up(page, live_server.url, "bybit-facts@example.com")
    dialog = _connect_with(page, bybit, bybit.demo_key("expires_soon"), label="Soon")
    expect(dialog).to_have_count(0, timeout=30_000)
    expect(_row(page, "Soon").get_by_test_id("status")).to_contain_text("Expires in")
    dialog = _connect_with(page, bybit, bybit.demo_key("no_wallet_permission"), label="NoWallet")
    expect(dialog).to_have_count(0, timeout=30_000)
    row = _row(page, "NoWallet")
    expect(row.get_by_test_id("status")).to_contain_text("Connected")
    row.get_by_text("What Bybit told us about this key").click()
    expect(row.get_by_test_id("key-facts")).to_contain_text("not readable: funding")
