"""The account area in Chromium: the top bar's menu on a phone and on a desktop (mouse, keyboard,
no JavaScript), allauth's pages in the product's layout with the settings navigation, form
errors beside their own field, the sessions page on a phone, and 2FA with an unverified email.

No worker or sandbox: these pages never talk to an exchange.
"""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "pw-alice-123"  # alice's, from tests/conftest.py
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
LONG_EMAIL = "someone.with.a.really.long.address.for.testing@accounts.subsidiary.example-holdings.com"
LONG_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0 "
    + "ExtraToken/1.0 " * 40
)

# The account pages a logged-in user reaches, by path and heading.
ACCOUNT_PAGES = [
    ("/settings/", "Settings"),
    ("/accounts/password/change/", "Change Password"),
    ("/accounts/email/", "Email Addresses"),
    ("/accounts/2fa/", "Two-factor authentication"),
    ("/accounts/sessions/", "Sessions"),
    ("/settings/security-log/", "Security log"),
]
# What the settings navigation marks as current on each of them.
CURRENT_IN_NAV = ["Settings", "Password", "Email", "Two-factor authentication", "Sessions", "Security log"]


@pytest.fixture
def context_for(browser):
    """New browser contexts of a given size and colour scheme, closed after the test."""
    contexts = []

    def make(viewport=DESKTOP, **options):
        context = browser.new_context(viewport=viewport, **options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def _log_in(page, base: str, email: str = "alice@example.com", password: str = PASSWORD) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="My Exchanges")).to_be_visible()


def _menu(page):
    return page.get_by_role("navigation", name="Main").locator("details[data-menu]")


def _menu_button(page):
    return _menu(page).locator("summary")


def _confirm_access_if_asked(page, password: str = PASSWORD) -> None:
    """allauth asks for the password again before some pages (2FA setup, account deletion)."""
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_be_visible()
    if heading.inner_text() == "Confirm Access":
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Confirm").click()


def _no_sideways_scroll(page, what: str) -> None:
    widths = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{what} scrolls sideways: {widths[0]} px wide in {widths[1]} px"


# --- the top bar ------------------------------------------------------------------------------


def test_on_a_phone_the_menu_reaches_every_account_page_and_log_out(
    context_for, live_server, alice, screenshot
):
    page = context_for(PHONE)
    _log_in(page, live_server.url)
    main_nav = page.get_by_role("navigation", name="Main")
    # The email is not squeezed into the bar: one "Menu" button replaces it and My Exchanges.
    expect(_menu_button(page)).to_have_accessible_name("Menu")
    expect(main_nav.get_by_role("link", name="My Exchanges")).to_be_hidden()

    for link, heading in [
        ("Settings", "Settings"),
        ("Two-factor authentication", "Two-factor authentication"),
        ("Sessions", "Sessions"),
        ("Security log", "Security log"),
        ("My Exchanges", "My Exchanges"),
    ]:
        _menu_button(page).click()
        panel = _menu(page).locator(".menu-panel")
        expect(panel).to_be_visible()
        expect(panel).to_contain_text("alice@example.com")
        if link == "Settings":
            _no_sideways_scroll(page, "the open menu")
            screenshot(page, "26-mobile-menu")
        panel.get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        expect(panel).to_be_hidden()  # a new page starts with the menu closed

    _menu_button(page).click()
    _menu(page).get_by_role("button", name="Log out").click()
    expect(main_nav.get_by_role("link", name="Log in")).to_be_visible()
    expect(main_nav.get_by_role("link", name="Sign up")).to_be_visible()
    assert page.goto(live_server.url + "/settings/").url.startswith(live_server.url + "/accounts/login/")


def test_on_a_phone_the_menu_works_by_keyboard(context_for, live_server, alice):
    page = context_for(PHONE)
    _log_in(page, live_server.url)
    page.locator("body").focus()
    page.keyboard.press("Tab")  # the brand
    page.keyboard.press("Tab")
    expect(_menu_button(page)).to_be_focused()
    page.keyboard.press("Enter")
    panel = _menu(page).locator(".menu-panel")
    expect(panel).to_be_visible()
    page.keyboard.press("Tab")
    expect(panel.get_by_role("link", name="My Exchanges")).to_be_focused()
    page.keyboard.press("Tab")
    expect(panel.get_by_role("link", name="Settings")).to_be_focused()
    # Escape closes the menu and gives focus back to its button.
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(_menu_button(page)).to_be_focused()

    for link, heading in [
        ("Two-factor authentication", "Two-factor authentication"),
        ("Sessions", "Sessions"),
        ("Security log", "Security log"),
        ("Settings", "Settings"),
    ]:
        _menu_button(page).focus()
        page.keyboard.press("Space")
        expect(panel).to_be_visible()
        link_locator = panel.get_by_role("link", name=link)
        while not link_locator.evaluate("el => el === document.activeElement"):
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()

    _menu_button(page).focus()
    page.keyboard.press("Enter")
    log_out = _menu(page).get_by_role("button", name="Log out")
    while not log_out.evaluate("el => el === document.activeElement"):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()


def test_on_a_desktop_the_email_is_the_account_menu(context_for, live_server, alice, screenshot):
    page = context_for(DESKTOP)
    _log_in(page, live_server.url)
    main_nav = page.get_by_role("navigation", name="Main")
    expect(main_nav.get_by_role("link", name="My Exchanges")).to_be_visible()
    button = _menu_button(page)
    expect(button).to_have_accessible_name("Account menu for alice@example.com")
    panel = _menu(page).locator(".menu-panel")
    expect(panel).to_be_hidden()

    button.click()
    expect(panel).to_be_visible()
    for name in ["Settings", "Two-factor authentication", "Sessions", "Security log"]:
        expect(panel.get_by_role("link", name=name)).to_be_visible()
    expect(panel.get_by_role("button", name="Log out")).to_be_visible()
    screenshot(page, "27-account-menu-desktop")
    # A click elsewhere closes it; so does Escape.
    page.get_by_role("heading", name="My Exchanges").click()
    expect(panel).to_be_hidden()
    button.click()
    expect(panel).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    button.click()
    panel.get_by_role("link", name="Sessions").click()
    expect(page.get_by_role("heading", name="Sessions", level=1)).to_be_visible()
    button.click()
    panel.get_by_role("button", name="Log out").click()
    expect(main_nav.get_by_role("link", name="Log in")).to_be_visible()


def test_without_javascript_the_menu_still_opens_and_logs_out(context_for, live_server, alice):
    page = context_for(PHONE, java_script_enabled=False)
    _log_in(page, live_server.url)
    _menu_button(page).click()
    panel = _menu(page).locator(".menu-panel")
    expect(panel).to_be_visible()
    panel.get_by_role("link", name="Two-factor authentication").click()
    expect(page.get_by_role("heading", name="Two-factor authentication", level=1)).to_be_visible()
    _menu_button(page).click()
    panel.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()


def test_a_long_email_does_not_widen_the_top_bar(context_for, live_server, django_user_model):
    django_user_model.objects.create_user(username="long", email=LONG_EMAIL, password=PASSWORD)
    page = context_for(DESKTOP)
    _log_in(page, live_server.url, email=LONG_EMAIL)
    bar = page.locator(".topbar").bounding_box()
    assert bar["height"] < 80, bar  # one line, not wrapped
    button = _menu_button(page).bounding_box()
    assert button["x"] + button["width"] <= 1280 and button["width"] < 360, button
    expect(_menu_button(page)).to_have_attribute("title", LONG_EMAIL)  # the whole address on hover
    _no_sideways_scroll(page, "My Exchanges with a long email")


# --- the account area's layout --------------------------------------------------------------


def test_every_account_page_has_the_settings_navigation_marking_the_current_page(
    context_for, live_server, alice
):
    page = context_for(DESKTOP)
    _log_in(page, live_server.url)
    for (path, heading), current in zip(ACCOUNT_PAGES, CURRENT_IN_NAV, strict=True):
        page.goto(live_server.url + path)
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        nav = page.get_by_role("navigation", name="Account")
        expect(nav.locator("[aria-current=page]")).to_have_count(1)
        expect(nav.locator("[aria-current=page]")).to_have_text(current)
        # The page sits in the product's card beside the navigation, not in allauth's bare markup.
        expect(page.locator(".account-layout .account-page h1")).to_have_text(heading)


def test_no_account_page_scrolls_sideways_on_a_phone(context_for, live_server, django_user_model, screenshot):
    user = django_user_model.objects.create_user(username="long", email=LONG_EMAIL, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=LONG_EMAIL, primary=True, verified=True)
    # A second device with a long user agent, seen ten minutes ago.
    other = context_for(PHONE, user_agent=LONG_USER_AGENT)
    _log_in(other, live_server.url, email=LONG_EMAIL)
    UserSession.objects.filter(user=user).update(
        created_at=timezone.now() - timezone.timedelta(hours=2),
        last_seen_at=timezone.now() - timezone.timedelta(minutes=10),
    )

    for scheme in ["light", "dark"]:
        page = context_for(PHONE, color_scheme=scheme)
        _log_in(page, live_server.url, email=LONG_EMAIL)
        _no_sideways_scroll(page, f"My Exchanges ({scheme})")
        for path, heading in ACCOUNT_PAGES:
            page.goto(live_server.url + path)
            expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
            _no_sideways_scroll(page, f"{path} ({scheme})")
        # Pages behind a fresh password, and the page that asks for it.
        page.goto(live_server.url + "/accounts/reauthenticate/")
        expect(page.get_by_role("heading", name="Confirm Access", level=1)).to_be_visible()
        _no_sideways_scroll(page, f"Confirm Access ({scheme})")
        for path, heading in [
            ("/accounts/2fa/totp/activate/", "Activate Authenticator App"),
            ("/settings/delete/", "Delete your account"),
        ]:
            page.goto(live_server.url + path)
            _confirm_access_if_asked(page)
            expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
            _no_sideways_scroll(page, f"{path} ({scheme})")

    # The sessions page stacks each session as a card, with a readable device name.
    page.goto(live_server.url + "/accounts/sessions/")
    rows = page.get_by_test_id("session")
    expect(rows).to_have_count(3)  # the long user agent's, and the light and dark pages
    this = rows.filter(has_text="This session")
    expect(this).to_have_count(1)
    other_row = rows.filter(has_text="Firefox 140 on Windows")
    expect(other_row).to_have_count(1)
    expect(other_row).to_contain_text("127.0.0.1")
    expect(other_row).to_contain_text("10 minutes ago")
    assert "ExtraToken" not in page.locator("main").inner_text()  # the raw header stays out of sight
    expect(rows.first).to_contain_text("This session")  # this browser's own comes first
    boxes = [rows.nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"] and boxes[0]["width"] <= 375
    other_row.scroll_into_view_if_needed()
    screenshot(page, "28-sessions-mobile-dark")

    for path in ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
        anonymous = context_for(PHONE)
        anonymous.goto(live_server.url + path)
        _no_sideways_scroll(anonymous, path)


def test_sessions_on_a_desktop_are_a_table_that_fits_its_card(context_for, live_server, alice):
    other = context_for(DESKTOP, user_agent=LONG_USER_AGENT)
    _log_in(other, live_server.url)
    page = context_for(DESKTOP)
    _log_in(page, live_server.url)
    page.goto(live_server.url + "/accounts/sessions/")
    table = page.get_by_test_id("sessions")
    expect(table.get_by_role("columnheader")).to_have_text(["Device", "IP address", "Last seen", "Signed in"])
    card = page.locator(".account-page").bounding_box()
    box = table.bounding_box()
    assert box["x"] + box["width"] <= card["x"] + card["width"], (box, card)
    expect(page.get_by_role("button", name="Sign out every other session")).to_be_visible()


# --- form errors ------------------------------------------------------------------------------


def _expect_field_error(page, field_name: str, text: str) -> None:
    field = page.locator(f".field:has([name={field_name}])")
    error = field.get_by_role("alert")
    expect(error).to_contain_text(text)
    control = field.locator(f"[name={field_name}]")
    expect(control).to_have_attribute("aria-invalid", "true")
    described_by = control.get_attribute("aria-describedby").split()
    assert error.get_attribute("id") in described_by
    # Red, like every error on the site, not the grey of help text.
    error_colour = error.evaluate("el => getComputedStyle(el).color")
    help_colour = page.evaluate(
        "() => getComputedStyle(document.documentElement).getPropertyValue('--muted').trim()"
    )
    expected = page.evaluate(
        "() => { const p = document.createElement('p'); p.style.color = 'var(--error)';"
        " document.body.append(p); const c = getComputedStyle(p).color; p.remove(); return c; }"
    )
    assert error_colour == expected and error_colour != help_colour, (error_colour, expected)
    # The message sits under its own field's input, above the next field.
    control_box, error_box = control.bounding_box(), error.bounding_box()
    assert error_box["y"] >= control_box["y"] + control_box["height"] - 1


def test_a_wrong_current_password_is_shown_beside_its_field(context_for, live_server, alice, screenshot):
    page = context_for(DESKTOP)
    _log_in(page, live_server.url)
    page.goto(live_server.url + "/accounts/password/change/")
    page.locator("[name=oldpassword]").fill("not-my-password")
    page.locator("[name=password1]").fill("a-New-password-4711")
    page.locator("[name=password2]").fill("a-New-password-4711")
    page.get_by_role("button", name="Change Password").click()
    _expect_field_error(page, "oldpassword", "Please type your current password")
    expect(page.locator("[name=password1]")).not_to_have_attribute("aria-invalid", "true")
    screenshot(page, "29-form-error-password")


def test_signing_up_with_a_taken_email_says_so_beside_the_email(context_for, live_server, alice, screenshot):
    page = context_for(PHONE, color_scheme="dark")
    page.goto(live_server.url + "/accounts/signup/")
    page.get_by_label("Email").fill("alice@example.com")
    page.locator("input[name=password1]").fill("a-New-password-4711")
    page.locator("input[name=password2]").fill("a-New-password-4711")
    page.get_by_role("button", name="Sign Up").click()
    _expect_field_error(page, "email", "already registered")
    _no_sideways_scroll(page, "signup with an error")
    screenshot(page, "31-signup-error-mobile-dark")


def test_a_wrong_login_is_an_alert_at_the_top_of_the_form(context_for, live_server, alice):
    page = context_for(DESKTOP)
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign In").click()
    alert = page.locator("form.allauth-form > .alert.error[role=alert]")
    expect(alert).to_contain_text("not correct")
    first_field = page.locator("form.allauth-form .field").first.bounding_box()
    assert alert.bounding_box()["y"] < first_field["y"]


# --- 2FA with an unverified email ---------------------------------------------------------------


def test_2fa_with_an_unverified_email_says_verify_first_and_resends_the_mail(
    context_for, live_server, alice, screenshot
):
    EmailAddress.objects.create(user=alice, email=alice.email, primary=True, verified=False)
    page = context_for(PHONE, color_scheme="dark")
    _log_in(page, live_server.url)
    page.goto(live_server.url + "/accounts/2fa/")
    notice = page.get_by_test_id("verify-email-first")
    expect(notice).to_contain_text("Verify your email first")
    expect(notice).to_contain_text("alice@example.com")
    # No way into a setup that would be refused after asking for the password.
    expect(page.get_by_role("link", name="Set up an authenticator app")).to_have_count(0)
    _no_sideways_scroll(page, "2FA with the notice")
    screenshot(page, "30-2fa-verify-email-first")

    mail.outbox.clear()
    notice.get_by_role("button", name="Resend the verification mail").click()
    expect(page.get_by_role("heading", name="Email Addresses", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("alice@example.com")
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "/accounts/confirm-email/" in mail.outbox[0].body

    # Going to the setup page anyway lands on the 2FA page, without a password prompt.
    page.goto(live_server.url + "/accounts/2fa/totp/activate/")
    assert page.url == live_server.url + "/accounts/2fa/"
    expect(page.get_by_role("heading", name="Confirm Access")).to_have_count(0)
    expect(page.get_by_test_id("verify-email-first")).to_be_visible()

    # Once verified, the notice goes and setup is offered.
    EmailAddress.objects.filter(user=alice).update(verified=True)
    page.reload()
    expect(page.get_by_test_id("verify-email-first")).to_have_count(0)
    page.get_by_role("link", name="Set up an authenticator app").click()
    _confirm_access_if_asked(page)
    expect(page.get_by_role("heading", name="Activate Authenticator App")).to_be_visible()
    expect(page.locator("img.totp-qr")).to_be_visible()
    _no_sideways_scroll(page, "the TOTP setup page")
