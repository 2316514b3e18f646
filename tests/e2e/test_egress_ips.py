"""This server's addresses in Chromium: Copy puts them on the clipboard (or selects them when the
browser has no clipboard for us), they stay plain selectable text without JavaScript, and the key
facts say whether a key's IP list includes them. Keys are checked in-process against the
sandboxes over real HTTP (keycheck), the pages come from a live server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from exchanges import keycheck, registry, services
from exchanges.models import ExchangeConnection, SeenAddress, Status
from tests.e2e.conftest import sign_up

pytestmark = [pytest.mark.browser]


CLIPBOARD = ["clipboard-read", "clipboard-write"]


def _context(browser, **kwargs):
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **kwargs})
    context.set_default_timeout(20_000)
    return context


def _open_form(page, venue_id: str):
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = page.locator("dialog.modal")
    dialog.get_by_test_id(f"pick-{venue_id}").click()
    expect(dialog.get_by_label("Secret Key")).to_be_visible()
    return dialog


def _no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert width <= 0, f"the page scrolls sideways by {width} px"


def test_copy_in_the_connect_dialog_puts_the_addresses_on_the_clipboard(
    browser, live_server, settings, screenshot
):
    settings.EGRESS_IPS = ["198.51.100.7", "2001:db8::7"]
    context = _context(browser, permissions=CLIPBOARD)
    page = context.new_page()
    try:
        sign_up(page, live_server.url, "copier@example.com")
        dialog = _open_form(page, "htx")
        ips = dialog.get_by_test_id("server-ips")
        expect(ips).to_contain_text("This dashboard talks to HTX from these addresses:")
        expect(ips).to_contain_text("Without an IP binding, HTX deactivates a key after 90 days")
        ips.get_by_role("button", name="Copy").click()
        expect(ips.get_by_role("status")).to_have_text("Copied.")
        assert page.evaluate("navigator.clipboard.readText()") == "198.51.100.7,2001:db8::7"
        screenshot(page, "44-connect-dialog-ips")
    finally:
        context.close()


def test_the_guide_copies_with_the_venues_separator_and_fits_a_dark_phone(
    browser, live_server, settings, screenshot
):
    settings.EGRESS_IPS = ["198.51.100.7", "2001:db8::7"]
    context = _context(
        browser, permissions=CLIPBOARD, viewport={"width": 375, "height": 800}, color_scheme="dark"
    )
    page = context.new_page()
    try:
        sign_up(page, live_server.url, "phone-copier@example.com")
        dialog = _open_form(page, "okx")
        expect(dialog.get_by_test_id("server-ips-text")).to_have_text("198.51.100.7 2001:db8::7")
        dialog.get_by_test_id("server-ips").scroll_into_view_if_needed()
        screenshot(page, "45-connect-dialog-ips-phone-dark")
        page.goto(live_server.url + "/exchanges/help/okx-api-key/")
        section = page.locator("#ip-binding")
        section.get_by_role("button", name="Copy").click()
        expect(section.get_by_role("status")).to_have_text("Copied.")
        assert page.evaluate("navigator.clipboard.readText()") == "198.51.100.7 2001:db8::7"
        _no_horizontal_overflow(page)
    finally:
        context.close()


def test_without_a_clipboard_copy_selects_the_addresses_and_says_how_to_copy(browser, live_server, settings):
    settings.EGRESS_IPS = ["198.51.100.7"]
    context = _context(browser)
    context.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page = context.new_page()
    try:
        sign_up(page, live_server.url, "no-clipboard@example.com")
        page.goto(live_server.url + "/exchanges/help/htx-api-key/")
        section = page.locator("#ip-binding")
        section.get_by_role("button", name="Copy").click()
        expect(section.get_by_role("status")).to_contain_text("Selected: press Ctrl+C")
        assert page.evaluate("window.getSelection().toString()") == "198.51.100.7"
    finally:
        context.close()


def test_without_javascript_the_addresses_are_plain_text_and_no_dead_button_shows(
    browser, live_server, settings
):
    settings.EGRESS_IPS = ["198.51.100.7", "2001:db8::7"]
    context = _context(browser, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_up(page, live_server.url, "no-js@example.com")
        page.goto(live_server.url + "/exchanges/add/htx/")
        ips = page.get_by_test_id("server-ips")
        expect(ips.get_by_test_id("server-ips-text")).to_have_text("198.51.100.7,2001:db8::7")
        expect(ips.get_by_role("button", name="Copy")).to_be_hidden()
    finally:
        context.close()


def _checked(owner, venue_id: str, scenario: str) -> ExchangeConnection:
    credentials = registry.get(venue_id).demo_credentials(scenario)
    connection = services.connection_create(
        owner=owner,
        exchange=venue_id,
        label="",
        access_key=credentials.api_key,
        secret_key=credentials.secret,
        **credentials.extra,
    )
    keycheck.connection_check(connection_id=connection.pk)
    connection.refresh_from_db()
    return connection


def test_key_facts_show_a_binding_that_includes_this_server_and_warn_about_one_that_does_not(
    browser, live_server, settings, sandboxes, django_user_model, screenshot
):
    settings.EGRESS_IPS = ["127.0.0.1"]
    context = _context(browser)
    page = context.new_page()
    try:
        sign_up(page, live_server.url, "bound@example.com")
        owner = django_user_model.objects.get(email="bound@example.com")
        here = _checked(owner, "okx", "ip_bound_here")  # bound to 127.0.0.1 and ::1 by OKX
        assert here.status == Status.CONNECTED and "127.0.0.1" in here.ip_addresses
        # A key HTX refused after it had worked: its list as HTX last described it.
        ExchangeConnection.objects.create(
            owner=owner,
            exchange="htx",
            label="Old HTX key",
            status=Status.IP_NOT_ALLOWED,
            error_kind="ip_not_allowed",
            established=True,
            ip_addresses="203.0.113.1",
            last_verified_at=here.last_verified_at,
        )
        page.reload()
        rows = page.get_by_test_id("connection")
        expect(rows).to_have_count(2)

        okx_row = rows.filter(has_text="OKX")
        okx_row.get_by_text("What OKX told us about this key").click()
        included = okx_row.get_by_test_id("ip-binding")
        expect(included).to_have_attribute("data-tone", "ok")
        expect(included).to_have_text("✓ Bound to 2 IPs, including this server's (127.0.0.1).")

        htx_row = rows.filter(has_text="Old HTX key")
        htx_row.get_by_text("What HTX told us about this key").click()
        excluded = htx_row.get_by_test_id("ip-binding")
        expect(excluded).to_have_attribute("data-tone", "warn")
        expect(excluded).to_have_text(
            "! Bound to 203.0.113.1 — not this server's address (127.0.0.1): checks will fail. "
            "On HTX, edit the key and add 127.0.0.1 to its IP list."
        )
        excluded.scroll_into_view_if_needed()
        screenshot(page, "46-key-facts-ip-check")
    finally:
        context.close()


def test_the_guide_says_when_what_an_exchange_saw_is_not_egress_ips(
    browser, live_server, settings, sandboxes, django_user_model, screenshot
):
    settings.EGRESS_IPS = ["198.51.100.7"]
    context = _context(browser)
    page = context.new_page()
    try:
        sign_up(page, live_server.url, "moved@example.com")
        owner = django_user_model.objects.get(email="moved@example.com")
        refused = _checked(owner, "okx", "ip_elsewhere")  # OKX names the address it saw: 127.0.0.1
        assert refused.status == Status.IP_NOT_ALLOWED
        assert SeenAddress.objects.filter(exchange="okx", ip="127.0.0.1").exists()

        page.reload()
        explanation = page.get_by_test_id("explanation")
        expect(explanation).to_contain_text(
            "OKX saw 127.0.0.1, which is not among EGRESS_IPS (198.51.100.7): this server's outgoing "
            "address may have changed."
        )
        page.goto(live_server.url + "/exchanges/help/okx-api-key/")
        warning = page.locator("#ip-binding").get_by_test_id("ip-mismatch")
        expect(warning).to_contain_text("OKX Global (www.okx.com) saw 127.0.0.1 on")
        expect(warning).to_contain_text("which is not among EGRESS_IPS (198.51.100.7)")
        page.locator("#ip-binding").scroll_into_view_if_needed()
        screenshot(page, "47-guide-ip-mismatch")
    finally:
        context.close()
