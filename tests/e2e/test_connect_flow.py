"""What a user clicks, in Chromium, against a live server, a real worker and the sandbox."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from exchanges.models import ExchangeConnection
from exchanges.templatetags.exchanges_tags import usdt
from tests.conftest import demo_key

pytestmark = [pytest.mark.browser, pytest.mark.worker]

GOOD = demo_key("demo: good key")
WITHDRAW = demo_key("demo: same user, key with withdraw")
PASSWORD = "a-long-Passw0rd-for-tests"


def _sign_up(page, base: str, email: str) -> None:
    page.goto(base + "/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill(email)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="My Exchanges")).to_be_visible()


def _open_htx_form(page) -> None:
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = page.locator("dialog.modal")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("pick-htx").click()
    expect(dialog.get_by_label("Secret Key")).to_be_visible()


def test_a_trader_signs_up_connects_htx_and_sees_connected_with_the_balance(
    page, live_server, celery_worker_process, sandbox, screenshot
):
    base = live_server.url
    _sign_up(page, base, "trader@example.com")

    page.get_by_role("link", name="My Exchanges").click()
    expect(page.get_by_text("Connect your first exchange")).to_be_visible()
    expect(page.get_by_text("can never move money out")).to_be_visible()
    screenshot(page, "1-empty-state")

    _open_htx_form(page)
    dialog = page.locator("dialog.modal")
    dialog.get_by_label("Label").fill("Main account")
    dialog.get_by_label("API Key").fill(f"  {GOOD[0]} ")  # a sloppy paste still works
    dialog.get_by_label("Secret Key").fill(GOOD[1])
    screenshot(page, "2-connect-modal")
    url_before = page.url
    sandbox.faults.update(latency_ms=300)  # slow HTX down so the live indicator can be seen
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog.get_by_test_id("verification")).to_contain_text("Verifying your key with HTX")
    screenshot(page, "3-verifying")
    sandbox.faults.clear()

    # The modal closes by itself once the worker has verified the key.
    expect(dialog).to_have_count(0, timeout=30_000)
    assert page.url == url_before  # no page reload, no navigation
    row = page.get_by_test_id("connection")
    expect(row.get_by_test_id("status")).to_contain_text("Connected")
    connection = ExchangeConnection.objects.get()
    assert connection.total_usdt > 0
    expect(row.get_by_test_id("balance")).to_have_text(f"{usdt(connection.total_usdt)} USDT")
    expect(row).to_contain_text("Main account")
    expect(row).to_contain_text(f"{GOOD[0][:4]}…{GOOD[0][-4:]}")
    assert GOOD[1] not in page.content()
    screenshot(page, "4-connected")

    nav = page.get_by_role("navigation", name="Main")
    nav.locator("details[data-menu] > summary").click()  # the account menu
    nav.get_by_role("button", name="Log out").click()
    expect(nav.get_by_role("link", name="Log in")).to_be_visible()
    assert page.goto(live_server.url + "/exchanges/").url.startswith(live_server.url + "/accounts/login/")
    nav.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill("trader@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text("Connected")


def test_a_withdraw_enabled_key_is_refused_in_the_modal_and_not_kept(
    page, live_server, celery_worker_process, screenshot
):
    _sign_up(page, live_server.url, "careful@example.com")
    _open_htx_form(page)
    dialog = page.locator("dialog.modal")
    dialog.get_by_label("API Key").fill(WITHDRAW[0])
    dialog.get_by_label("Secret Key").fill(WITHDRAW[1])
    dialog.get_by_role("button", name="Connect").click()

    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Withdrawal permission is enabled", timeout=30_000)
    expect(alert).to_contain_text("Nothing was stored")
    expect(dialog).to_be_visible()  # stays open with the reason and a form to try again
    expect(dialog.get_by_label("Secret Key")).to_have_value("")
    screenshot(page, "5-withdraw-refused")
    connection = ExchangeConnection.objects.get()
    assert connection.secret_key is None and connection.access_key is None
    row = page.get_by_test_id("connection")
    expect(row.get_by_test_id("status")).to_contain_text("Withdrawal enabled")
    expect(page.get_by_test_id("status").filter(has_text=re.compile("^.*Connected$"))).to_have_count(0)


def test_the_same_flow_works_without_javascript(browser, live_server, celery_worker_process):
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(20_000)
    page = context.new_page()
    _sign_up(page, live_server.url, "nojs@example.com")
    page.get_by_role("link", name="Add New Exchange").first.click()
    page.get_by_test_id("pick-htx").click()
    page.get_by_label("API Key").fill(GOOD[0])
    page.get_by_label("Secret Key").fill(GOOD[1])
    page.get_by_role("button", name="Connect").click()
    # The verification page refreshes itself, then lands on My Exchanges.
    expect(page.get_by_role("heading", name="My Exchanges")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text("Connected")
    expect(page.get_by_role("status")).to_contain_text("is connected")
    context.close()


def test_the_connect_page_opened_directly_works_with_javascript_on(page, live_server, celery_worker_process):
    # E.g. after a login redirect or in a new tab: a full page, not the pop-up.
    _sign_up(page, live_server.url, "newtab@example.com")
    page.goto(live_server.url + "/exchanges/add/htx/")
    page.get_by_label("API Key").fill(GOOD[0])
    page.get_by_label("Secret Key").fill(GOOD[1])
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", name="My Exchanges")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text("Connected")


def test_with_the_broker_down_the_dialog_says_queued_and_connects_once_it_is_back(
    page, live_server, celery_worker_process, settings, screenshot
):
    """Scenario 7 as the user sees it: Connect while the web cannot reach the broker."""
    from exchanges.tasks import queue_due_checks
    from tests.faults._broker import unused_broker_url, web_broker

    _sign_up(page, live_server.url, "queued@example.com")
    _open_htx_form(page)
    dialog = page.locator("dialog.modal")
    dialog.get_by_label("API Key").fill(GOOD[0])
    dialog.get_by_label("Secret Key").fill(GOOD[1])
    with web_broker(unused_broker_url()):
        dialog.get_by_role("button", name="Connect").click()
        expect(dialog.get_by_test_id("queued")).to_contain_text("Verification is queued")
        screenshot(page, "17-verification-queued")
    settings.VERIFY_STALE_SECONDS = 0
    assert queue_due_checks() == 1  # beat's sweeper, once the broker is back
    expect(dialog).to_have_count(0, timeout=30_000)  # closed by itself on Connected
    expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text("Connected")
