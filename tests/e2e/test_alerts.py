"""Alerts as a user meets them, in Chromium, against a live server, a real worker, a real beat,
the HTX sandbox and a real SMTP server on loopback (aiosmtpd): a user turns alerts on, a sandbox
key is set to expire in 5 days, the mail arrives naming the right connection, its link opens it,
and its unsubscribe link works without logging in."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import Alert, AlertSettings, Delivery
from exchanges.models import ExchangeConnection
from tests.conftest import demo_key, start_celery, stop_process, wait_for, worker_args
from tests.e2e.conftest import sign_up

pytestmark = [pytest.mark.browser, pytest.mark.worker]

GOOD = demo_key("demo: good key")
EMAIL = "alerted@example.com"
LABEL = "Main account"
MASKED = f"{GOOD[0][:4]}…{GOOD[0][-4:]}"
BEAT_READY = b"beat: Starting..."
# Beat runs the expiry scan (and the delivery sweeper) this often in this test.
SCAN_SECONDS = 2


# --- The mails, as a real SMTP server on loopback received them ---------------------------------
# (the `smtp_server` fixture of tests/conftest.py: tests/alerts/servers.py's SmtpServer)


def _mails(smtp_server, count: int, timeout: float = 30.0) -> list[EmailMessage]:
    """Block until `count` mails have arrived; return them all, parsed, in arrival order."""
    received = smtp_server.wait_for(count, timeout=timeout)
    return [message_from_bytes(mail.raw, policy=policy.default) for mail in received]


def _part(message: EmailMessage, subtype: str) -> str:
    # Django encodes the body with its CRLF line ends (base64), so they survive decoding.
    return message.get_body(preferencelist=(subtype,)).get_content().replace("\r\n", "\n")


def _text(message: EmailMessage) -> str:
    return _part(message, "plain")


def _html(message: EmailMessage) -> str:
    return _part(message, "html")


def _everything(message: EmailMessage) -> str:
    """Every header and every part decoded (a base64 body would hide a secret from a search)."""
    headers = "\n".join(f"{name}: {value}" for name, value in message.items())
    parts = [part.get_content() for part in message.walk() if not part.is_multipart()]
    return "\n".join([headers, *parts])


# --- The test --------------------------------------------------------------------------------


def _tall(page, width: int = 1100, height: int = 1500) -> None:
    """A taller window, so a screenshot shows the whole settings page."""
    page.set_viewport_size({"width": width, "height": height})


def _no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert width <= 0, f"the page scrolls sideways by {width} px"


def test_a_key_about_to_expire_is_mailed_with_its_connection_and_unsubscribe_needs_no_login(
    browser, page, live_server, sandbox, smtp_server, settings, tmp_path, screenshot
):
    from bitsgap_clone.celery import app

    base = live_server.url
    # The live server (allauth's confirmation mail) and the worker (alerts) both send by SMTP
    # to the server above; the worker's links point at the live server.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.REFRESH_NOW_MIN_SECONDS = 0  # Refresh right after connecting is not "too soon"
    mail_env = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "SITE_URL": base,
        "HTX_API_URL": sandbox.url,
    }
    app.control.purge()
    worker = start_celery(
        worker_args(hostname=f"alerts-{os.getpid()}@%h"),
        log_path=tmp_path / "worker.log",
        env=mail_env,
        ready=b" ready.",
    )
    beat = start_celery(
        ["beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule")],
        log_path=tmp_path / "beat.log",
        env={**mail_env, "ALERT_SCAN_SECONDS": str(SCAN_SECONDS), "ALERT_SWEEP_SECONDS": str(SCAN_SECONDS)},
        ready=BEAT_READY,
    )
    try:
        _scenario(browser, page, base, sandbox, smtp_server, tmp_path, screenshot)
    finally:
        stop_process(beat)
        stop_process(worker)


def _scenario(browser, page, base, sandbox, smtp_server, tmp_path, screenshot) -> None:
    # 1. Sign up, then confirm the address with the link from the mail the SMTP server received.
    sign_up(page, base, EMAIL)
    [confirmation] = _mails(smtp_server, 1)
    assert confirmation["To"] == EMAIL
    confirm_url = re.search(r"https?://\S+/accounts/confirm-email/\S+/", _text(confirmation)).group(0)
    assert confirm_url.startswith(base + "/")
    page.goto(confirm_url)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text(f"You have confirmed {EMAIL}")).to_be_visible()
    assert EmailAddress.objects.get(email=EMAIL).verified

    # 2. Settings → Alerts: email is on (check it if not), save.
    nav = page.get_by_role("navigation", name="Main")
    nav.locator("details[data-menu] > summary").click()
    nav.get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    email_channel = page.get_by_test_id("email-channel")
    expect(email_channel).to_contain_text(f"Sent to {EMAIL} (verified)")
    expect(email_channel.get_by_test_id("email-unverified")).to_have_count(0)
    email_box = email_channel.get_by_label("Email alerts")
    email_box.check()
    expect(email_box).to_be_checked()
    expect(email_channel.get_by_label("One email per alert")).to_be_checked()
    days = page.get_by_label("Days before")
    expect(days).to_have_value("7,1")
    expect(days).to_have_accessible_description("Comma-separated, e.g. 7, 1.")
    days.fill("0")  # refused beside its field, nothing saved
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter whole days from 1 to 30")
    assert not AlertSettings.objects.exists()
    page.get_by_label("Days before").fill("1, 7")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Alert settings saved.")).to_be_visible()
    prefs = AlertSettings.objects.get(user__email=EMAIL)
    assert prefs.email_enabled and prefs.expiry_thresholds == [7, 1]
    _tall(page)
    screenshot(page, "48-alert-settings")
    page.set_viewport_size({"width": 375, "height": 2400})
    _no_horizontal_overflow(page)
    screenshot(page, "48-alert-settings-mobile")
    page.set_viewport_size({"width": 1100, "height": 800})

    # 3. Connect the HTX demo key through the UI and wait for Connected.
    page.get_by_role("link", name="My Exchanges").first.click()
    page.get_by_role("link", name="Add New Exchange").first.click()
    dialog = page.locator("dialog.modal")
    dialog.get_by_test_id("pick-htx").click()
    dialog.get_by_label("Label").fill(LABEL)
    dialog.get_by_label("API Key").fill(GOOD[0])
    dialog.get_by_label("Secret Key").fill(GOOD[1])
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog).to_have_count(0, timeout=30_000)
    row = page.get_by_test_id("connection")
    expect(row.get_by_test_id("status")).to_contain_text("Connected")
    connection = ExchangeConnection.objects.get()
    assert connection.masked_access_key == MASKED
    assert connection.key_expires_at is not None  # 83 days: no alert yet
    assert not Alert.objects.filter(kind=Alert.Kind.EXPIRING).exists()

    # 4. On HTX the key now expires in 5 days; Refresh makes the worker look again.
    sandbox.update_key(GOOD[0], {"validDays": 5})
    row.get_by_role("button", name="Refresh").click()
    expect(row).not_to_contain_text("refresh again in")
    # The row updates itself once the worker has looked: still working, now with a warning.
    expect(row.get_by_test_id("status")).to_contain_text("Expires in 5 days", timeout=30_000)
    wait_for(
        lambda: (
            (at := ExchangeConnection.objects.get().key_expires_at)
            and timedelta(days=4) < at - timezone.now() <= timedelta(days=5)
        ),
        timeout=30,
        message=lambda: f"key_expires_at={ExchangeConnection.objects.get().key_expires_at}",
    )

    # 5. Beat's scan raises the alert, the worker mails it.
    confirmation, alert_mail = _mails(smtp_server, 2, timeout=45)
    subject = str(alert_mail["Subject"])
    text, html = _text(alert_mail), _html(alert_mail)
    assert alert_mail["To"] == EMAIL
    for words in ("HTX", LABEL, MASKED, "in 5 days"):
        assert words in subject, (words, subject)
        assert words in text, (words, text)
    assert "HTX stops accepting this key on" in text
    everything = _everything(alert_mail)
    assert everything.count(MASKED) >= 3  # subject, text and HTML parts, all searched decoded
    for secret in (GOOD[1], GOOD[0]):  # neither the secret nor the whole API Key
        assert secret not in everything
    assert GOOD[1] not in _everything(confirmation)
    open_url = re.search(r"^Open the connection: (\S+)$", text, re.M).group(1)
    assert open_url == f"{base}/exchanges/{connection.pk}/"
    assert f'href="{open_url}"' in html
    unsubscribe = str(alert_mail["List-Unsubscribe"]).strip()  # folded onto its own line
    assert unsubscribe.startswith(f"<{base}/alerts/unsubscribe/") and unsubscribe.endswith("/>")
    unsubscribe_url = unsubscribe[1:-1]
    assert alert_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe from alert emails: {unsubscribe_url}" in text
    alert = Alert.objects.get(kind=Alert.Kind.EXPIRING)
    assert alert.connection_id == connection.pk
    assert alert.deliveries.get().state == Delivery.State.SENT

    # 6. The mail's link opens that connection (logged in).
    page.goto(open_url)
    expect(page.get_by_role("heading", name=LABEL)).to_be_visible()
    expect(page.get_by_text(f"API key {MASKED}")).to_be_visible()
    expect(page.get_by_test_id("status")).to_contain_text("Expires in 5 days")
    assert page.url == open_url

    # 7. The Alerts page lists it as sent; a test email says Sent once the worker delivered it.
    page.goto(base + "/alerts/")
    recent = page.get_by_test_id("recent-alerts")
    expect(recent).to_contain_text(f"HTX · {LABEL} ({MASKED}): key expires on")
    expect(recent.get_by_test_id("delivery-email")).to_contain_text("Email: sent")
    page.get_by_test_id("test-email").click()
    result = page.get_by_test_id("test-result-email")
    expect(result).to_have_attribute("data-state", "sent", timeout=30_000)
    expect(result).to_contain_text("Sent")
    expect(result).to_contain_text("check your inbox")
    mails = _mails(smtp_server, 3)
    test_mail = mails[2]
    assert str(test_mail["Subject"]).endswith("Test alert") and test_mail["To"] == EMAIL
    _tall(page)
    screenshot(page, "49-alert-test-sent")
    page.set_viewport_size({"width": 1100, "height": 800})

    # Beat scans every SCAN_SECONDS: after at least three scans since the key was connected
    # (the flow above may take less time than that), still one expiry alert, one mail of it.
    beat_log = tmp_path / "beat.log"
    wait_for(
        lambda: beat_log.read_text().count("alerts.tasks.scan") >= 3,
        timeout=6 * SCAN_SECONDS,
        message=lambda: beat_log.read_text(),
    )
    assert Alert.objects.filter(kind=Alert.Kind.EXPIRING).count() == 1
    assert [str(m["Subject"]).count("key expires") for m in _mails(smtp_server, 3)] == [0, 1, 0]

    # 8. Unsubscribe from the List-Unsubscribe address, in a new (logged-out) browser.
    context = browser.new_context(viewport={"width": 375, "height": 700})
    context.set_default_timeout(20_000)
    try:
        stranger = context.new_page()
        stranger.goto(unsubscribe_url)
        card = stranger.get_by_test_id("unsubscribe")
        expect(card.get_by_role("heading", name="Stop alert emails?")).to_be_visible()
        expect(card).to_contain_text(EMAIL)
        expect(
            stranger.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")
        ).to_be_visible()
        _no_horizontal_overflow(stranger)
        card.get_by_role("button", name="Unsubscribe").click()
        expect(card.get_by_role("heading", name="Alert emails are off")).to_be_visible()
        expect(card).to_contain_text(f"{EMAIL} will no longer get alert emails")
        _no_horizontal_overflow(stranger)
        screenshot(stranger, "50-unsubscribe")
        # Still logged out: the settings page asks for a login.
        assert stranger.goto(base + "/alerts/").url.startswith(base + "/accounts/login/")
    finally:
        context.close()
    prefs.refresh_from_db()
    assert prefs.email_enabled is False

    # The user's own page shows email off now.
    page.goto(base + "/alerts/")
    expect(page.get_by_test_id("email-channel").get_by_label("Email alerts")).not_to_be_checked()
