"""The exchange pages as a newcomer finds them (issue 13): long labels never widen a page,
every action says what happened at once, a destroyed key's balance is only "last known", BTC
valuation everywhere, focus in dialogs, a row that does not jump while refreshing.

Most tests write the connection's state straight into the database (what a worker would have
recorded) and look at the pages; the connect test uses a real worker and the HTX sandbox.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from exchanges.models import BalanceLine, BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from exchanges.services import access_key_fingerprint
from tests.conftest import demo_key
from tests.e2e.conftest import sign_up as _sign_up

pytestmark = pytest.mark.browser

GOOD = demo_key("demo: good key")
# A realistic label without spaces, made as long as a label may be (64 characters).
LONG_LABEL = ("HTX_main_spot_grid_bot_BTCUSDT_" * 3)[:64]
LONG_ASSET = "VERYLONGASSETNAMEWITHOUTANYSPACE"
LONG_UID = "9" * 60
LONG_DETAIL = "err-code:api-signature-not-valid;" + "x" * 180
SIZES = {"desktop": (1280, 800), "mobile": (375, 800)}


def _context(browser, size: str = "desktop", **options):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    context.set_default_timeout(20_000)
    return context


def _user(email: str):
    return get_user_model().objects.get(email=email)


def _seed(
    owner,
    *,
    label: str = "",
    status: str = Status.CONNECTED,
    keys: bool = True,
    total_usdt: str = "1500",
    total_btc: str | None = "0.015",
    lines: tuple[tuple[str, str, str], ...] = (("USDT", "1", "1000"), ("BTC", "100000", "500")),
    **fields,
) -> ExchangeConnection:
    """A connection as a worker leaves it after reading balances; lines are (asset, price, value)."""
    key = f"seed{ExchangeConnection.objects.count():04d}-0a1b2c3d-4e5f6a7b-8c9d0"
    fields = {"account_uid": "63628520", **fields}
    connection = ExchangeConnection.objects.create(
        owner=owner,
        exchange="htx",
        label=label,
        access_key=key if keys else None,
        secret_key="seed-secret" if keys else None,
        access_key_fingerprint=access_key_fingerprint(key) if keys else None,
        access_key_head=key[:4],
        access_key_tail=key[-4:],
        status=status,
        established=True,
        key_flags=[
            ["Read", True, False, True],
            ["Trade", True, False, True],
            ["Withdraw", False, True, False],
        ],
        permissions="readOnly,trade",
        accounts_read=["spot"],
        total_usdt=Decimal(total_usdt),
        total_btc=None if total_btc is None else Decimal(total_btc),
        last_verified_at=timezone.now(),
        last_refreshed_at=timezone.now() - timedelta(minutes=3),
        last_checked_at=timezone.now() - timedelta(minutes=3),
        **fields,
    )
    snapshot = BalanceSnapshot.objects.create(
        connection=connection,
        total_usdt=connection.total_usdt,
        total_btc=connection.total_btc,
        account_types=["spot"],
    )
    BalanceLine.objects.bulk_create(
        BalanceLine(
            snapshot=snapshot,
            account_type="spot",
            currency=asset.lower(),
            available=Decimal(value) / Decimal(price),
            in_orders=Decimal(0),
            total=Decimal(value) / Decimal(price),
            price_usdt=Decimal(price),
            value_usdt=Decimal(value),
        )
        for asset, price, value in lines
    )
    connection.latest_snapshot = snapshot
    connection.save(update_fields=["latest_snapshot"])
    ConnectionEvent.objects.create(connection=connection, status=status, message="Key verified with HTX")
    return connection


# What sticks out on the right (even by a fraction of a pixel), to say what widened the page.
_STICKING_OUT = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5).slice(0, 8)
  .map(e => `${e.tagName}.${e.className} ${e.getBoundingClientRect().right}px`)"""


def _no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("document.documentElement.clientWidth")
    assert width <= viewport, (
        f"page is {width}px wide in a {viewport}px viewport: {page.evaluate(_STICKING_OUT)}"
    )


def _row(page):
    return page.get_by_test_id("connection")


def _dialog(page):
    return page.locator("dialog.modal")


# --- 2. Long labels -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
def test_a_64_character_label_widens_no_page(size, browser, live_server, screenshot):
    context = _context(browser, size)
    page = context.new_page()
    try:
        email = f"long-{size}@example.com"
        _sign_up(page, live_server.url, email)
        connection = _seed(
            _user(email),
            label=LONG_LABEL,
            lines=(("USDT", "1", "1000"), (LONG_ASSET, "2", "500")),
            account_uid=LONG_UID,
            ip_addresses=",".join(f"2001:db8:85a3:0:0:8a2e:370:{i:04x}" for i in range(6)),
            replacement_error=f"The new key was refused ({LONG_DETAIL}).",
        )
        page.reload()
        row = _row(page)
        expect(row).to_contain_text(LONG_LABEL)
        expect(row.get_by_role("link", name=LONG_LABEL)).to_have_attribute("title", f"HTX · {LONG_LABEL}")
        row.get_by_test_id("key-facts").locator("summary").click()
        _no_horizontal_overflow(page)
        screenshot(page, f"32-long-label-list-{size}")

        # Every dialog of the row.
        for action in ("Rename", "Replace keys", "Remove"):
            row.get_by_role("link", name=action).click()
            expect(_dialog(page)).to_be_visible()
            _no_horizontal_overflow(page)
            box = _dialog(page).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= SIZES[size][0], (action, box)
            page.keyboard.press("Escape")
            expect(_dialog(page)).to_have_count(0)

        page.goto(f"{live_server.url}/exchanges/{connection.pk}/")
        title = page.get_by_role("heading", level=1)
        expect(title).to_contain_text(LONG_LABEL)
        _no_horizontal_overflow(page)
        # The whole title is on screen: wrapped, not cut off or clipped.
        box = title.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= SIZES[size][0], box
        on_screen = "e => [...e.getClientRects()].every(r => r.left >= 0 && r.right <= innerWidth + 1)"
        assert title.locator(".title-text").evaluate(on_screen), "the title is cut off"
        assert title.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the title overflows its heading"
        expect(page.get_by_test_id("holdings")).to_contain_text(LONG_ASSET)
        screenshot(page, f"33-long-label-detail-{size}")
    finally:
        context.close()


# --- 5. Feedback --------------------------------------------------------------------------------


def test_connecting_with_js_says_so_at_once(page, live_server, celery_worker_process, screenshot):
    _sign_up(page, live_server.url, "hello@example.com")
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = _dialog(page)
    dialog.get_by_test_id("pick-htx").click()
    dialog.get_by_label("Label").fill("Main")
    dialog.get_by_label("API Key").fill(GOOD[0])
    dialog.get_by_label("Secret Key").fill(GOOD[1])
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog).to_have_count(0, timeout=30_000)
    message = page.get_by_role("status").filter(has=page.get_by_test_id("live-message"))
    expect(message).to_contain_text("HTX · Main connected. Trading balance")
    expect(message).to_contain_text("USDT")
    expect(_row(page).get_by_test_id("status")).to_contain_text("Connected")
    screenshot(page, "34-connected-message")


def test_remove_says_so_at_once_and_not_again_on_the_next_page(page, live_server):
    _sign_up(page, live_server.url, "remover@example.com")
    _seed(_user("remover@example.com"), label="Old bot")
    page.reload()
    _row(page).get_by_role("link", name="Remove").click()
    _dialog(page).get_by_role("button", name="Remove Old bot").click()
    expect(_dialog(page)).to_have_count(0)
    expect(page.get_by_test_id("live-message")).to_contain_text("Old bot (seed…c9d0)")
    expect(page.get_by_test_id("live-message")).to_contain_text("was removed, with its key")
    expect(_row(page)).to_have_count(0)
    page.reload()
    expect(page.get_by_text("Connect your first exchange")).to_be_visible()
    expect(page.get_by_text("was removed")).to_have_count(0)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_refused_replacement_alert_can_be_dismissed_and_stays_away(
    javascript, browser, live_server, screenshot
):
    context = _context(browser, java_script_enabled=javascript)
    page = context.new_page()
    try:
        email = f"dismiss-{str(javascript).lower()}@example.com"
        _sign_up(page, live_server.url, email)
        reason = "Withdrawal permission is enabled: key refused. What to do: make a key with withdrawals off."
        connection = _seed(_user(email), replacement_error=reason)
        page.reload()
        alert = _row(page).get_by_test_id("replacement-refused")
        expect(alert).to_contain_text("What to do:")
        expect(_row(page).get_by_test_id("status")).to_contain_text("Connected")
        if javascript:
            screenshot(page, "37-replacement-refused-dismissible")
        alert.get_by_role("button", name="Dismiss this notice").click()
        expect(_row(page).get_by_test_id("replacement-refused")).to_have_count(0)
        if javascript:  # focus stays in the row, on its first action
            expect(_row(page).get_by_role("button", name="Refresh")).to_be_focused()
        expect(_row(page).get_by_test_id("status")).to_contain_text("Connected")
        page.reload()
        expect(_row(page)).to_be_visible()
        expect(_row(page).get_by_test_id("replacement-refused")).to_have_count(0)
        assert ExchangeConnection.objects.get(pk=connection.pk).replacement_error == ""
    finally:
        context.close()


def test_replacing_keys_says_the_new_key_was_accepted(page, live_server, celery_worker_process, sandbox):
    import copy

    new_key, new_secret = "demoNEW1-0a0b0c0d-1e1f2a2b-9c8d7", "newsecr1-2b3c4d5e-6f7a8b9c-0d1e2"
    entry = copy.deepcopy(sandbox.accounts[GOOD[0]])
    entry.pop("accounts")
    entry.update(secret=new_secret, note="rotated key")
    sandbox.accounts[new_key] = entry
    _sign_up(page, live_server.url, "rotate@example.com")
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = _dialog(page)
    dialog.get_by_test_id("pick-htx").click()
    dialog.get_by_label("API Key").fill(GOOD[0])
    dialog.get_by_label("Secret Key").fill(GOOD[1])
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog).to_have_count(0, timeout=30_000)

    _row(page).get_by_role("link", name="Replace keys").click()
    dialog.get_by_label("API Key").fill(new_key)
    dialog.get_by_label("Secret Key").fill(new_secret)
    dialog.get_by_role("button", name="Check and replace").click()
    expect(dialog).to_have_count(0, timeout=20_000)
    message = page.get_by_test_id("live-message")
    expect(message).to_contain_text("the new key was accepted and is in use")
    expect(message).to_contain_text(f"{new_key[:4]}…{new_key[-4:]}")


# --- 6. A destroyed key -------------------------------------------------------------------------


def test_a_destroyed_key_shows_a_last_known_balance_and_the_live_total_stays(
    browser, live_server, screenshot
):
    context = _context(browser, color_scheme="dark")
    page = context.new_page()
    try:
        _sign_up(page, live_server.url, "honest@example.com")
        owner = _user("honest@example.com")
        _seed(owner, label="Live", total_usdt="1500")
        _seed(
            owner,
            label="Withdraw bot",
            status=Status.WITHDRAW_ENABLED,
            keys=False,
            total_usdt="700",
            lines=(("USDT", "1", "700"),),
        )
        page.reload()
        expect(page.get_by_test_id("portfolio-total")).to_contain_text("1,500.00")
        note = page.get_by_test_id("not-counted")
        expect(note).to_contain_text("Not counted: 1 connection whose key no longer works")
        expect(note).to_contain_text("Withdraw bot")
        destroyed = _row(page).filter(has_text="Withdraw bot")
        last_known = destroyed.get_by_test_id("last-known")
        expect(last_known).to_contain_text("Last known ·")
        expect(last_known.locator("time")).to_have_attribute("title", re.compile(r"\d{4}, \d\d:\d\d UTC$"))
        expect(destroyed).to_contain_text("700.00 USDT")
        expect(destroyed).to_contain_text("not counted in the portfolio")
        expect(destroyed.locator(".balance strong")).to_have_count(0)  # nothing bold, as if live
        expect(destroyed.get_by_test_id("share")).to_have_count(0)
        expect(_row(page).filter(has_text="Live").first.get_by_test_id("share")).to_contain_text("100.0%")
        screenshot(page, "35-last-known-dark")
    finally:
        context.close()


# --- 7. BTC valuation ---------------------------------------------------------------------------


def test_btc_valuation_applies_to_allocation_details_and_chart(page, live_server, screenshot):
    _sign_up(page, live_server.url, "sats@example.com")
    owner = _user("sats@example.com")
    owner.valuation_currency = "BTC"
    owner.save(update_fields=["valuation_currency"])
    connection = _seed(owner, label="Stack")
    page.reload()
    expect(page.get_by_test_id("portfolio-total-btc")).to_contain_text("0.01500000")
    allocation = page.get_by_test_id("allocation-asset")
    expect(allocation.get_by_role("columnheader", name="Value (BTC)")).to_be_visible()
    expect(allocation).to_contain_text("0.01000000")  # 1,000 USDT of USDT at 100,000 USDT per BTC
    expect(allocation).to_contain_text("0.00500000")
    page.get_by_test_id("by-exchange").click()
    by_exchange = page.get_by_test_id("allocation-exchange")
    expect(by_exchange.get_by_role("columnheader", name="Value (BTC)")).to_be_visible()
    expect(by_exchange).to_contain_text("0.01500000")

    page.goto(f"{live_server.url}/exchanges/{connection.pk}/")
    expect(page.get_by_test_id("detail-total")).to_contain_text("0.01500000 BTC")
    holdings = page.get_by_test_id("holdings")
    headers = [h.strip() for h in holdings.locator("thead th").all_inner_texts()]
    assert headers[5:8] == ["Price (BTC)", "Value (BTC) ↓", "Value (USDT)"], headers
    usdt_row = holdings.locator("tbody tr").filter(has=page.get_by_role("rowheader", name="USDT", exact=True))
    expect(usdt_row).to_contain_text("0.00001000")  # the price of 1 USDT in BTC
    chart = page.locator("svg.chart-history")
    expect(chart.locator("title")).to_have_text("Total value over time (BTC)")
    expect(chart.locator("desc")).to_contain_text("0.01500000 BTC")
    expect(page.get_by_test_id("timeline")).to_contain_text("Balance read: 0.01500000 BTC")
    screenshot(page, "36-btc-detail")


# --- 9. Focus in dialogs ------------------------------------------------------------------------

_FOCUS = "() => document.activeElement && document.activeElement.textContent.trim()"


def test_focus_lands_on_the_first_field_of_every_dialog(page, live_server):
    _sign_up(page, live_server.url, "keys@example.com")
    _seed(_user("keys@example.com"), label="Main")
    page.reload()
    page.get_by_role("link", name="Add New Exchange").first.focus()
    page.keyboard.press("Enter")
    dialog = _dialog(page)
    expect(dialog.get_by_test_id("pick-htx")).to_be_focused()  # no field yet: the first choice
    page.keyboard.press("Enter")  # choose HTX from the keyboard
    expect(dialog.get_by_label("Secret Key")).to_be_visible()
    first_input = dialog.locator("input:not([type=hidden])").first
    expect(first_input).to_be_focused()
    # A refused submission puts focus on the field to correct.
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog.locator(".has-error").first).to_be_visible()
    expect(dialog.locator(".has-error input").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    row = _row(page)
    for action, expected in (("Rename", "#id_label"), ("Replace keys", "input:not([type=hidden])")):
        row.get_by_role("link", name=action).click()
        expect(dialog.locator(expected).first).to_be_focused()
        assert page.evaluate(_FOCUS) != "×"
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
    # A destructive confirmation opens on its safe choice, not on ×.
    row.get_by_role("link", name="Remove").click()
    expect(dialog.get_by_role("link", name="Cancel")).to_be_focused()
    # The focus trap still holds.
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate("() => !!document.activeElement.closest('dialog.modal')")


# --- 13. A row that does not jump ---------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
def test_a_row_keeps_its_height_while_refreshing(size, browser, live_server, screenshot):
    from bitsgap_clone.celery import app

    context = _context(browser, size)
    page = context.new_page()
    try:
        email = f"steady-{size}@example.com"
        _sign_up(page, live_server.url, email)
        _seed(_user(email), label="Steady")
        page.reload()
        row = _row(page)
        before = row.bounding_box()
        # No worker runs: the check stays queued, so the row stays "refreshing" to be measured.
        row.get_by_role("button", name="Refresh").focus()
        page.keyboard.press("Enter")
        expect(row.get_by_test_id("refreshing")).to_contain_text("Refreshing")
        during = row.bounding_box()
        assert during["height"] == before["height"], (before, during)
        # The swapped row keeps the keyboard focus (on its "Refreshing" status), not <body>.
        expect(row.get_by_test_id("refreshing")).to_be_focused()
        if size == "desktop":
            screenshot(page, "39-refreshing-row")
    finally:
        context.close()
        app.control.purge()


def test_exchange_logos_sit_on_a_light_plate_in_the_dark_theme(browser, live_server, screenshot):
    context = _context(browser, color_scheme="dark")
    page = context.new_page()
    try:
        _sign_up(page, live_server.url, "logos@example.com")
        page.get_by_role("link", name="Add New Exchange").first.click()
        logo = _dialog(page).get_by_test_id("pick-htx").locator("img")
        background = logo.evaluate("e => getComputedStyle(e).backgroundColor")
        red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
        assert red + green + blue > 3 * 180, f"logo plate {background} is not light"
        screenshot(page, "38-dark-picker-logos")
    finally:
        context.close()
