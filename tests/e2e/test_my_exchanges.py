"""My Exchanges in Chromium: every action on a connection, every status, the detail page, the
dialog by keyboard, a phone-sized screen, the dark theme and the help guide.

Each test drives a live server, a real Celery worker and the HTX sandbox. State changes on HTX's
side go through the sandbox (key fields, balances, faults); a check is triggered with the row's
Refresh button after moving the per-connection rate limit out of the way in the database.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from exchanges.models import ExchangeConnection
from exchanges.templatetags.exchanges_tags import usdt
from exchanges.venues.htx.venue import HTX
from tests.conftest import demo_key, wait_for
from tests.e2e.conftest import sign_up

pytestmark = [pytest.mark.browser, pytest.mark.worker]

GOOD = demo_key("demo: good key")
OTHER_UID = demo_key("demo: bound to 127.0.0.1")  # works from here, HTX uid 63628524
GOOD_UID, OTHER_UID_NUMBER = 63628520, 63628524
MASKED_GOOD = f"{GOOD[0][:4]}…{GOOD[0][-4:]}"


# --- helpers ------------------------------------------------------------------------------------


def _open_htx_form(page):
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = page.locator("dialog.modal")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("pick-htx").click()
    expect(dialog.get_by_label("Secret Key")).to_be_visible()
    return dialog


def _connect_good_key(page, base: str, email: str = "trader@example.com") -> ExchangeConnection:
    """Sign up, connect the good demo key and wait until My Exchanges shows it Connected."""
    sign_up(page, base, email)
    dialog = _open_htx_form(page)
    dialog.get_by_label("API Key").fill(GOOD[0])
    dialog.get_by_label("Secret Key").fill(GOOD[1])
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog).to_have_count(0, timeout=30_000)
    expect(_row(page).get_by_test_id("status")).to_contain_text("Connected")
    return ExchangeConnection.objects.get()


def _row(page):
    return page.get_by_test_id("connection")


def _allow_refresh(connection: ExchangeConnection) -> None:
    """Move the last check out of the 30 s "Refresh now" window (the test shares the DB)."""
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        refresh_requested_at=None, last_checked_at=timezone.now() - timedelta(minutes=5)
    )


def _refresh(page, connection: ExchangeConnection) -> None:
    _allow_refresh(connection)
    _row(page).get_by_role("button", name="Refresh").click()


# What sticks out on the right, to say what widened the page when it is too wide.
_WIDER_THAN_VIEWPORT = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8)
  .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)"""


def _no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    wide = page.evaluate(_WIDER_THAN_VIEWPORT)
    assert width <= viewport, f"page is {width}px wide in a {viewport}px viewport: {wide}"


# --- 1. Refresh ---------------------------------------------------------------------------------


def test_refresh_shows_progress_then_the_new_balance_without_a_reload_and_is_rate_limited(
    page, live_server, celery_worker_process, sandbox, screenshot
):
    connection = _connect_good_key(page, live_server.url)
    old_total = connection.total_usdt
    page.evaluate("window.__marker = 1")
    url_before = page.url

    # Money arrives on HTX: 10 LTC in the spot account.
    sandbox.accounts[GOOD[0]]["accounts"][0]["list"].append(
        {"currency": "ltc", "type": "trade", "balance": "10", "seq-num": "1"}
    )
    sandbox.faults.update(latency_ms=300)  # slow HTX down so the progress badge can be seen
    _refresh(page, connection)
    expect(_row(page).get_by_test_id("refreshing")).to_contain_text("Refreshing")
    sandbox.faults.clear()

    connection = wait_for(lambda: ExchangeConnection.objects.filter(total_usdt__gt=old_total).first())
    new_balance = f"{usdt(connection.total_usdt)} USDT"
    expect(_row(page).get_by_test_id("balance")).to_have_text(new_balance, timeout=15_000)
    expect(_row(page).get_by_test_id("refreshing")).to_have_count(0)
    expect(page.get_by_test_id("portfolio-total")).to_contain_text(usdt(connection.total_usdt))
    assert page.url == url_before
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    screenshot(page, "10-list")

    # A second click right away is refused by the rate limit, and the user is told so.
    _row(page).get_by_role("button", name="Refresh").click()
    notice = _row(page).get_by_test_id("notice")
    expect(notice).to_contain_text(re.compile(r"refresh again in \d+ s"))
    expect(_row(page).get_by_test_id("refreshing")).to_have_count(0)
    assert ExchangeConnection.objects.get().refresh_requested_at == connection.refresh_requested_at
    page.wait_for_timeout(1500)  # long enough to read it: the notice must not vanish at once
    expect(notice).to_be_visible()


# --- 2. Rename ----------------------------------------------------------------------------------


def test_rename_changes_the_label_on_the_row(page, live_server, celery_worker_process):
    _connect_good_key(page, live_server.url)
    _row(page).get_by_role("link", name="Rename").click()
    dialog = page.locator("dialog.modal")
    expect(dialog.get_by_role("heading", name="Rename HTX")).to_be_visible()
    dialog.get_by_label("Label").fill("Long-term savings")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(_row(page)).to_contain_text("Long-term savings")
    assert ExchangeConnection.objects.get().label == "Long-term savings"


# --- 3. Replace keys ----------------------------------------------------------------------------


def test_replace_keys_with_a_key_of_the_same_htx_account(page, live_server, celery_worker_process, sandbox):
    new_key, new_secret = "demoNEW1-0a0b0c0d-1e1f2a2b-9c8d7", "newsecr1-2b3c4d5e-6f7a8b9c-0d1e2"
    entry = copy.deepcopy(sandbox.accounts[GOOD[0]])
    entry.pop("accounts")  # keys of one uid share its accounts
    entry.update(secret=new_secret, note="rotated key")
    sandbox.accounts[new_key] = entry
    connection = _connect_good_key(page, live_server.url)

    _row(page).get_by_role("link", name="Replace keys").click()
    dialog = page.locator("dialog.modal")
    expect(dialog.get_by_role("heading", name="Replace keys")).to_be_visible()
    expect(dialog).to_contain_text(MASKED_GOOD)
    expect(dialog).to_contain_text(f"UID {GOOD_UID}")
    dialog.get_by_label("API Key").fill(new_key)
    dialog.get_by_label("Secret Key").fill(new_secret)
    sandbox.faults.update(latency_ms=300)
    dialog.get_by_role("button", name="Check and replace").click()
    expect(dialog.get_by_test_id("replacement")).to_contain_text("Checking the new key with HTX")
    sandbox.faults.clear()

    expect(dialog).to_have_count(0, timeout=20_000)
    expect(_row(page)).to_contain_text(f"{new_key[:4]}…{new_key[-4:]}")
    expect(_row(page)).not_to_contain_text(MASKED_GOOD)
    expect(_row(page).get_by_test_id("status")).to_contain_text("Connected")
    replaced = ExchangeConnection.objects.get()
    assert replaced.pk == connection.pk  # same connection, history kept
    assert replaced.access_key == new_key and replaced.secret_key == new_secret
    assert replaced.pending_access_key is None and replaced.pending_secret_key is None
    assert GOOD[1] not in (replaced.secret_key, replaced.pending_secret_key)
    assert replaced.events.filter(message__startswith="Key replaced").exists()


def test_replace_keys_refuses_a_key_of_another_htx_account(
    page, live_server, celery_worker_process, screenshot
):
    _connect_good_key(page, live_server.url)
    _row(page).get_by_role("link", name="Replace keys").click()
    dialog = page.locator("dialog.modal")
    dialog.get_by_label("API Key").fill(OTHER_UID[0])
    dialog.get_by_label("Secret Key").fill(OTHER_UID[1])
    dialog.get_by_role("button", name="Check and replace").click()

    refusal = dialog.get_by_test_id("replacement").get_by_role("alert")
    expect(refusal).to_contain_text("The new key was not used", timeout=20_000)
    expect(refusal).to_contain_text(str(OTHER_UID_NUMBER))
    expect(refusal).to_contain_text(str(GOOD_UID))
    expect(refusal).to_contain_text(MASKED_GOOD)  # the current key is still in use
    expect(dialog).to_be_visible()
    screenshot(page, "13-replace-keys")

    kept = ExchangeConnection.objects.get()
    assert kept.access_key == GOOD[0] and kept.secret_key == GOOD[1]
    assert kept.pending_access_key is None and kept.pending_secret_key is None
    dialog.get_by_role("link", name="Close").click()
    expect(dialog).to_have_count(0)
    expect(_row(page)).to_contain_text(MASKED_GOOD)
    expect(_row(page).get_by_test_id("status")).to_contain_text("Connected")


# --- 4. Remove ----------------------------------------------------------------------------------


def test_remove_names_the_connection_links_to_htx_and_deletes_it(
    page, live_server, celery_worker_process, settings, screenshot
):
    _connect_good_key(page, live_server.url)
    _row(page).get_by_role("link", name="Remove").click()
    dialog = page.locator("dialog.modal")
    expect(dialog.get_by_role("heading")).to_have_text(f"Remove HTX ({MASKED_GOOD})?")
    htx_link = dialog.get_by_role("link", name="HTX API Management")
    expect(htx_link).to_have_attribute("href", HTX.api_management_url)
    screenshot(page, "14-remove-confirm")

    dialog.get_by_role("button", name="Remove HTX").click()
    expect(dialog).to_have_count(0)
    expect(_row(page)).to_have_count(0)
    expect(page.get_by_text("Connect your first exchange")).to_be_visible()
    assert not ExchangeConnection.objects.exists()


# --- 5. Statuses --------------------------------------------------------------------------------

# (sandbox key fields, badge, explanation title, help anchor, raw HTX text in the details)
REFUSED = {
    "ip-not-allowed": (
        {"ipAddresses": "203.0.113.7"},
        "IP not allowed",
        "This key only works from other IP addresses",
        "status-ip-not-allowed",
        "Incorrect IP address",
    ),
    "expired": (
        {"status": "expired"},
        "Expired",
        "This key has expired",
        "status-expired",
        "APIkey has expired",
    ),
    "incorrect-permissions": (
        {"permission": "readOnly"},
        "Incorrect permissions",
        "Incorrect permissions",
        "status-incorrect-permissions",
        "readOnly",
    ),
    "withdraw-enabled": (
        {"permission": "readOnly,trade,withdraw"},
        "Withdrawal enabled",
        "Withdrawal permission is enabled",
        "status-withdraw-enabled",
        "withdraw",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_key_changed_on_htx_shows_its_status_and_explanation(
    case, page, live_server, celery_worker_process, sandbox, screenshot
):
    fields, badge, title, anchor, raw = REFUSED[case]
    connection = _connect_good_key(page, live_server.url)
    sandbox.update_key(GOOD[0], fields)
    _refresh(page, connection)

    row = _row(page)
    expect(row.get_by_test_id("status")).to_contain_text(badge, timeout=15_000)
    explanation = row.get_by_test_id("explanation")
    expect(explanation).to_contain_text(title)
    expect(explanation).to_contain_text("What to do:")
    fix_link = explanation.get_by_role("link", name="How to fix this")
    expect(fix_link).to_have_attribute("href", re.compile(rf"/exchanges/help/htx-api-key/#{anchor}$"))
    refused = ExchangeConnection.objects.get()
    if case == "withdraw-enabled":
        # A key that can withdraw is destroyed at once and never used again.
        assert refused.access_key is None and refused.secret_key is None
        expect(explanation).to_contain_text("The key was deleted from this dashboard")
        expect(row.get_by_role("button", name="Refresh")).to_have_count(0)
    else:
        assert refused.secret_key == GOOD[1]  # kept, so a fix on HTX brings it back

    # The raw answer from HTX, behind a disclosure.
    details = explanation.locator("details")
    expect(details.get_by_text("Details from HTX")).to_be_visible()
    details.get_by_text("Details from HTX").click()
    expect(details.locator("code")).to_be_visible()
    expect(details.locator("code")).to_contain_text(raw)
    if case == "ip-not-allowed":
        screenshot(page, "12-status-ip-not-allowed")

    fix_link.click()
    expect(page.locator(f"#{anchor}")).to_be_in_viewport()


def test_a_temporary_issue_keeps_the_last_balance_and_clears_when_htx_is_back(
    page, live_server, celery_worker_process, sandbox
):
    connection = _connect_good_key(page, live_server.url)
    balance = f"{usdt(connection.total_usdt)} USDT"
    sandbox.faults.update(http_status=503)
    _refresh(page, connection)

    row = _row(page)
    expect(row.get_by_test_id("status")).to_contain_text("Temporary issue", timeout=15_000)
    expect(row.get_by_test_id("balance")).to_have_text(balance)  # last good balance still shown
    explanation = row.get_by_test_id("explanation")
    expect(explanation).to_contain_text("HTX could not be reached")
    expect(explanation).to_contain_text("What to do:")
    expect(explanation.get_by_role("link", name="How to fix this")).to_have_attribute(
        "href", re.compile(r"#status-temporary$")
    )
    explanation.get_by_text("Details from HTX").click()
    expect(explanation.locator("details code")).to_contain_text("503")

    sandbox.faults.clear()
    _refresh(page, ExchangeConnection.objects.get())
    expect(row.get_by_test_id("status")).to_contain_text("Connected", timeout=15_000)
    expect(row.get_by_test_id("explanation")).to_have_count(0)
    expect(row.get_by_test_id("balance")).to_have_text(balance)


def test_a_key_expiring_soon_shows_expires_in_days(page, live_server, celery_worker_process, sandbox):
    connection = _connect_good_key(page, live_server.url)
    expect(_row(page).get_by_test_id("status")).not_to_contain_text("Expires in")  # 83 days left
    sandbox.update_key(GOOD[0], {"validDays": 5})
    _refresh(page, connection)
    expect(_row(page).get_by_test_id("status")).to_contain_text(
        re.compile(r"Expires in [45] days"), timeout=15_000
    )


# --- 6. Detail page -----------------------------------------------------------------------------


def _first_column(table) -> list[str]:
    return [t.strip() for t in table.locator("tbody tr th").all_inner_texts()]


def test_the_detail_page_shows_holdings_coverage_key_facts_timeline_and_exports_csv(
    page, live_server, celery_worker_process, sandbox, screenshot
):
    # An asset with no price on HTX, to see it listed rather than dropped.
    sandbox.accounts[GOOD[0]]["accounts"][0]["list"].append(
        {"currency": "zzz", "type": "trade", "balance": "42", "seq-num": "1"}
    )
    connection = _connect_good_key(page, live_server.url)
    _row(page).get_by_role("link", name="Details").click()
    expect(page.get_by_role("heading", name="HTX", level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/exchanges/{connection.pk}/$"))

    holdings = page.get_by_test_id("holdings")
    by_value = _first_column(holdings)
    assert {"USDT", "BTC", "ETH"} <= set(by_value)
    expect(holdings).to_contain_text("1,020.5")  # thousands separators
    screenshot(page, "11-detail")

    holdings.get_by_role("link", name=re.compile("^Asset")).click()
    expect(page).to_have_url(re.compile(r"[?&]sort=asset"))
    by_asset = _first_column(page.get_by_test_id("holdings"))
    assert by_asset != by_value
    assert sorted(by_asset) == sorted(by_value)
    assert by_asset in (sorted(by_asset), sorted(by_asset, reverse=True))
    expect(page.get_by_role("columnheader", name=re.compile("^Asset"))).to_have_attribute(
        "aria-sort", re.compile("ascending|descending")
    )

    small = page.get_by_test_id("small-balances")
    expect(small).not_to_have_attribute("open", "")
    expect(small.locator("tbody tr").first).to_be_hidden()
    small.locator("summary").click()
    expect(small.locator("tbody tr").first).to_be_visible()
    expect(small).to_contain_text("HT")  # 0.8 HT in the point account is about 0.45 USDT

    expect(page.get_by_test_id("unpriced")).to_contain_text("ZZZ")

    coverage = page.locator("section", has=page.get_by_role("heading", name="Coverage"))
    for account_type in ("spot", "otc", "point"):
        expect(coverage).to_contain_text(account_type)

    facts = page.get_by_test_id("key-facts")
    expect(facts).to_contain_text("Read on")
    expect(facts).to_contain_text("Trade on")
    expect(facts).to_contain_text("Withdraw off")
    expect(facts).to_contain_text(str(GOOD_UID))
    expect(facts).to_contain_text("HTX deactivates such keys after 90 days")

    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("Balance read")
    expect(timeline).to_contain_text("Connected")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8") as fh:
        rows = list(csv.reader(io.StringIO(fh.read())))
    assert rows[0][:5] == ["label", "exchange", "read_at_utc", "account", "asset"] and "value_usdt" in rows[0]
    assert ["spot", "USDT"] in [r[3:5] for r in rows[1:]]


# --- 7. Dialog by keyboard ----------------------------------------------------------------------


def test_the_add_exchange_dialog_works_from_the_keyboard(page, live_server):
    sign_up(page, live_server.url, "keyboard@example.com")
    page.get_by_role("link", name="Add New Exchange").first.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog.modal")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("pick-htx")).to_be_visible()

    # Tab and Shift+Tab wrap around inside the dialog: focus never lands outside it.
    focused = "() => document.activeElement ? document.activeElement.outerHTML.slice(0, 60) : null"
    inside = "() => !!document.activeElement && !!document.activeElement.closest('dialog.modal')"
    escapes = []
    for key in ["Tab"] * 12 + ["Shift+Tab"] * 6:
        page.keyboard.press(key)
        if not page.evaluate(inside):
            escapes.append((key, page.evaluate(focused)))

    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert not escapes, f"focus left the dialog {len(escapes)} times out of 18, e.g. {escapes[0]}"


# --- 8. A phone-sized screen --------------------------------------------------------------------


def test_the_list_and_detail_page_fit_a_375px_screen(browser, live_server, celery_worker_process, screenshot):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        _connect_good_key(page, live_server.url, "phone@example.com")
        _no_horizontal_overflow(page)
        screenshot(page, "15-mobile-list")
        _row(page).get_by_role("link", name="Details").click()
        expect(page.get_by_test_id("holdings")).to_be_visible()
        _no_horizontal_overflow(page)  # wide tables scroll inside their .table-wrap
    finally:
        context.close()


# --- Dark theme ---------------------------------------------------------------------------------


def test_the_list_follows_a_dark_system_theme(browser, live_server, celery_worker_process, screenshot):
    context = browser.new_context(color_scheme="dark", viewport={"width": 1100, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        _connect_good_key(page, live_server.url, "night@example.com")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 3 * 100, f"body background {background} is not dark"
        screenshot(page, "16-dark-list")
    finally:
        context.close()


# --- 9. Help guide ------------------------------------------------------------------------------


def test_the_help_guide_opens_from_the_connect_dialog(page, live_server, settings):
    settings.EGRESS_IPS = ["198.51.100.10", "198.51.100.11"]
    sign_up(page, live_server.url, "reader@example.com")
    dialog = _open_htx_form(page)
    with page.context.expect_page() as new_page_info:
        dialog.get_by_role("link", name="How to create an HTX API key for this dashboard").click()
    guide = new_page_info.value
    expect(
        guide.get_by_role("heading", name="How to create an HTX API key for this dashboard")
    ).to_be_visible()

    permissions = guide.locator("#permissions")
    expect(permissions).to_contain_text("Read-Only")
    expect(permissions.locator("li", has_text="Read-Only")).to_contain_text("ON")
    expect(permissions.locator("li", has_text="Trade")).to_contain_text("ON")
    expect(permissions.locator("li", has_text="Withdraw")).to_contain_text("OFF")

    ip = guide.locator("#ip-binding")
    expect(ip).to_contain_text("90 days")
    expect(ip).to_contain_text("198.51.100.10,198.51.100.11")
    guide.close()
