"""The alert settings page, its test buttons and the signed unsubscribe link, through Django's
test client."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.db import connection as db
from django.test import Client
from django.utils import timezone

from accounts.models import SecurityEvent
from alerts import channels
from alerts.models import Alert, AlertSettings, Delivery

pytestmark = pytest.mark.django_db

URL = "/alerts/"
HTMX = {"HTTP_HX_REQUEST": "true"}
TOKEN = "123456789:AAEhBOweik9ai2o4yTnJ9pS0KxLmNoPqRsT"
DEFAULTS = {
    "on_expiry": "on",
    "expiry_days": "7, 1",
    "on_failing": "on",
    "failing_minutes": "30",
    "on_security": "on",
    "email_enabled": "on",
    "email_mode": "each",
    "webhook_mode": "off",
    "webhook_url": "",
    "telegram_chat_id": "",
    "telegram_bot_token": "",
}


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _verified(user) -> EmailAddress:
    return EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)


def _save(client, **changes):
    return client.post(URL, {**DEFAULTS, **changes})


def _errors(response) -> str:
    return response.content.decode()


# --- the settings page ------------------------------------------------------------------------


def test_the_settings_page_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post(URL, DEFAULTS).status_code == 302
    assert not AlertSettings.objects.exists()


def test_the_page_shows_the_defaults_and_the_nav_names_alerts(alice_client, alice):
    response = alice_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<nav class="settings-nav"' in page
    assert 'href="/alerts/" aria-current="page">Alerts</a>' in page
    assert 'value="7,1"' in page
    assert 'data-testid="email-unverified"' in page  # alice has not verified her address
    assert "No alerts yet." in page
    assert not AlertSettings.objects.exists()  # only looking saves nothing


def test_other_settings_pages_link_to_alerts(alice_client):
    page = alice_client.get("/accounts/email/").content.decode()
    assert '<a href="/alerts/" >Alerts</a>' in page  # there, not the current page


def test_each_field_is_saved(alice_client, alice, settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = False
    response = _save(
        alice_client,
        on_expiry="",
        expiry_days="14, 3,7",
        on_failing="",
        failing_minutes="90",
        on_security="",
        email_enabled="",
        email_mode="digest",
        webhook_mode="json",
        webhook_url="https://hooks.example.com/alerts?k=1",
    )
    assert response.status_code == 302 and response["Location"] == URL
    prefs = AlertSettings.objects.get(user=alice)
    assert (prefs.on_expiry, prefs.on_failing, prefs.on_security, prefs.email_enabled) == (False,) * 4
    assert prefs.expiry_days == "14,7,3" and prefs.expiry_thresholds == [14, 7, 3]
    assert prefs.failing_minutes == 90
    assert prefs.email_mode == "digest"
    assert prefs.webhook_mode == "json" and prefs.webhook_url == "https://hooks.example.com/alerts?k=1"
    assert prefs.webhook_on
    page = alice_client.get(URL).content.decode()
    assert "Alert settings saved." in page
    assert prefs.webhook_secret in page  # shown once saved, to check signatures with
    assert SecurityEvent.objects.filter(
        user=alice, kind=SecurityEvent.Kind.SETTINGS_CHANGED, detail="alerts: json"
    ).exists()

    _save(alice_client)  # and back
    prefs.refresh_from_db()
    assert prefs.on_expiry and prefs.on_failing and prefs.on_security and prefs.email_enabled
    assert prefs.expiry_days == "7,1" and prefs.webhook_mode == "off"


@pytest.mark.parametrize("days", ["0", "31", "abc", "7,-1", "", "1.5"])
def test_expiry_days_out_of_range_are_refused(alice_client, alice, days):
    response = _save(alice_client, expiry_days=days)
    assert response.status_code == 200
    assert "Enter whole days from 1 to 30" in _errors(response) or "This field is required" in _errors(
        response
    )
    assert not AlertSettings.objects.filter(user=alice).exists()


def test_at_most_four_reminders(alice_client, alice):
    response = _save(alice_client, expiry_days="1,2,3,4,5")
    assert "At most four reminders." in _errors(response)
    assert not AlertSettings.objects.exists()


@pytest.mark.parametrize("minutes", ["-1", "10081"])
def test_failing_minutes_out_of_range_are_refused(alice_client, minutes):
    response = _save(alice_client, failing_minutes=minutes)
    assert response.status_code == 200
    page = _errors(response)
    assert "Enter minutes from 0 to 10080" in page or "greater than or equal to 0" in page
    assert not AlertSettings.objects.exists()


def test_an_http_webhook_is_refused_in_production(alice_client, settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = False
    for url in ("http://hooks.example.com/a", "http://127.0.0.1:8080/a"):
        response = _save(alice_client, webhook_mode="json", webhook_url=url)
        assert "The address must start with https://" in _errors(response)
    assert not AlertSettings.objects.exists()


def test_an_http_webhook_to_loopback_is_accepted_in_development(alice_client, alice, settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = True
    response = _save(alice_client, webhook_mode="json", webhook_url="http://127.0.0.1:8080/a")
    assert response.status_code == 302
    assert AlertSettings.objects.get(user=alice).webhook_url == "http://127.0.0.1:8080/a"


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest",
        "https://[fd00::1]/",
    ],
)
def test_a_webhook_to_a_private_address_is_refused(alice_client, settings, url):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = False
    response = _save(alice_client, webhook_mode="json", webhook_url=url)
    assert "a private or internal address" in _errors(response)
    assert not AlertSettings.objects.exists()


def test_a_webhook_with_a_password_in_it_is_refused(alice_client):
    response = _save(alice_client, webhook_mode="json", webhook_url="https://u:p@hooks.example.com/")
    assert "Put no user name or password in the address" in _errors(response)


def test_a_json_webhook_needs_an_address(alice_client):
    response = _save(alice_client, webhook_mode="json", webhook_url="")
    assert "Enter the address that should receive the alerts." in _errors(response)


@pytest.mark.parametrize(
    "token", ["abc", "123456789:short", "12345678:" + "!" * 35, "botname:AAE" + "x" * 32]
)
def test_a_bad_telegram_token_is_refused(alice_client, token):
    response = _save(alice_client, webhook_mode="telegram", telegram_bot_token=token, telegram_chat_id="42")
    assert "A bot token looks like 123456789:AAE" in _errors(response)
    assert token not in _errors(response)  # a password field: never sent back
    assert not AlertSettings.objects.exists()


def test_a_telegram_webhook_needs_a_token(alice_client):
    response = _save(alice_client, webhook_mode="telegram", telegram_chat_id="42")
    assert "Enter the bot&#x27;s token from @BotFather." in _errors(response)


@pytest.mark.parametrize("chat", ["", "hello world", "@abc", "12ab", "-" + "1" * 21])
def test_a_bad_telegram_chat_id_is_refused(alice_client, chat):
    response = _save(alice_client, webhook_mode="telegram", telegram_bot_token=TOKEN, telegram_chat_id=chat)
    assert "Enter the chat&#x27;s numeric id (e.g. 123456789) or @channelname." in _errors(response)
    assert not AlertSettings.objects.exists()


def _raw_token_column(user) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT telegram_bot_token FROM alerts_alertsettings WHERE user_id = %s", [user.pk])
        value = cursor.fetchone()[0]
    return bytes(value).decode("latin-1") if isinstance(value, bytes | memoryview) else str(value)


def test_the_telegram_token_is_stored_encrypted_and_never_shown(alice_client, alice):
    response = _save(
        alice_client, webhook_mode="telegram", telegram_bot_token=TOKEN, telegram_chat_id="-1001234567890"
    )
    assert response.status_code == 302
    prefs = AlertSettings.objects.get(user=alice)
    assert prefs.telegram_bot_token == TOKEN and prefs.telegram_chat_id == "-1001234567890"
    assert prefs.webhook_on
    raw = _raw_token_column(alice)
    assert raw and TOKEN not in raw and "AAEhBOweik9ai2o4yTnJ9pS0KxLmNoPqRsT" not in raw
    page = alice_client.get(URL).content.decode()
    assert TOKEN not in page and "AAEhBOweik9ai2o4" not in page
    assert "(saved)" in page
    # Saved again without typing it: the saved token stays.
    assert _save(alice_client, webhook_mode="telegram", telegram_chat_id="@alerts_channel").status_code == 302
    prefs.refresh_from_db()
    assert prefs.telegram_bot_token == TOKEN and prefs.telegram_chat_id == "@alerts_channel"


# --- test buttons -----------------------------------------------------------------------------


def test_send_test_email_queues_a_test_alert_with_one_delivery(alice_client, alice):
    _verified(alice)
    response = alice_client.post("/alerts/test/email/", **HTMX)
    assert response.status_code == 200
    [alert] = Alert.objects.filter(user=alice)
    assert alert.kind == Alert.Kind.TEST and alert.title == "Test alert"
    [d] = alert.deliveries.all()
    assert d.channel == Delivery.Channel.EMAIL and d.state == Delivery.State.PENDING and not d.digest
    page = response.content.decode()
    assert 'data-testid="test-result-email"' in page and 'data-state="pending"' in page
    assert f'hx-get="/alerts/deliveries/{d.pk}/"' in page and "Sending…" in page


def test_send_test_email_without_htmx_redirects_with_a_message(alice_client, alice):
    _verified(alice)
    response = alice_client.post("/alerts/test/email/")
    assert response.status_code == 302 and response["Location"] == URL
    assert "Test alert queued." in alice_client.get(URL).content.decode()
    assert Delivery.objects.filter(alert__user=alice).count() == 1


def test_send_test_email_without_a_verified_address_says_so(alice_client, alice):
    EmailAddress.objects.create(user=alice, email=alice.email, verified=False, primary=True)
    response = alice_client.post("/alerts/test/email/", **HTMX)
    assert "Verify your email address first." in response.content.decode()
    assert not Alert.objects.exists()


def test_send_test_webhook_without_a_webhook_says_so(alice_client, alice):
    _verified(alice)
    response = alice_client.post("/alerts/test/webhook/", **HTMX)
    assert "Set up and save a webhook first." in response.content.decode()
    assert not Alert.objects.exists()


def test_send_test_webhook_queues_only_a_webhook_delivery(alice_client, alice, settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = False
    _verified(alice)
    AlertSettings.objects.create(user=alice, webhook_mode="json", webhook_url="https://hooks.example.com/")
    response = alice_client.post("/alerts/test/webhook/", **HTMX)
    assert 'data-testid="test-result-webhook"' in response.content.decode()
    [d] = Delivery.objects.filter(alert__user=alice)
    assert d.channel == Delivery.Channel.WEBHOOK and d.alert.kind == Alert.Kind.TEST


def test_an_unknown_test_channel_is_404_and_get_is_refused(alice_client):
    assert alice_client.post("/alerts/test/sms/").status_code == 404
    assert alice_client.get("/alerts/test/email/").status_code == 405
    assert not Alert.objects.exists()


def test_the_result_fragment_tells_each_state_and_only_to_its_owner(alice_client, alice, bob):
    _verified(alice)
    alice_client.post("/alerts/test/email/", **HTMX)
    d = Delivery.objects.get()
    url = f"/alerts/deliveries/{d.pk}/"
    assert 'data-state="pending"' in alice_client.get(url).content.decode()
    Delivery.objects.filter(pk=d.pk).update(state="failed", last_error="The mail server refused it.")
    page = alice_client.get(url).content.decode()
    assert 'data-state="failed"' in page and "Not delivered" in page and "The mail server refused it." in page
    assert "hx-get" not in page  # no more polling
    Delivery.objects.filter(pk=d.pk).update(state="sent", sent_at=timezone.now())
    page = alice_client.get(url).content.decode()
    assert 'data-state="sent"' in page and "check your inbox" in page
    bobs = Client()
    bobs.force_login(bob)
    assert bobs.get(url).status_code == 404


def test_recent_alerts_are_listed_with_their_delivery(alice_client, alice):
    _verified(alice)
    alice_client.post("/alerts/test/email/", **HTMX)
    page = alice_client.get(URL).content.decode()
    assert '<a href="/alerts/">Test alert</a>' in page
    assert 'data-testid="delivery-email"' in page and "sending…" in page
    # Each state renders (the page once failed with a 500 as soon as any alert had a delivery).
    d = Delivery.objects.get()
    states = [
        ({"state": "sent", "sent_at": timezone.now()}, "sent "),
        ({"state": "failed", "last_error": "Refused."}, "not delivered: Refused."),
        ({"state": "pending", "attempts": 2, "last_error": "Busy."}, "retrying "),
        ({"state": "pending", "attempts": 0, "digest": True}, "in the digest of "),
    ]
    for fields, said in states:
        Delivery.objects.filter(pk=d.pk).update(**fields)
        response = alice_client.get(URL)
        assert response.status_code == 200 and said in response.content.decode(), fields


# --- unsubscribe ------------------------------------------------------------------------------


def _unsubscribe_url(user) -> str:
    return f"/alerts/unsubscribe/{channels.unsubscribe_token(user)}/"


def test_the_unsubscribe_link_asks_first_without_a_login(client, alice):
    _verified(alice)
    response = client.get(_unsubscribe_url(alice))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Stop alert emails?" in page and "alice@example.com" in page
    assert 'data-testid="unsubscribe-confirm"' in page
    assert not AlertSettings.objects.exists()  # looking changes nothing (mail scanners GET links)


def test_confirming_turns_alert_emails_off(client, alice):
    AlertSettings.objects.create(user=alice, webhook_mode="off", expiry_days="3")
    response = client.post(_unsubscribe_url(alice))
    assert response.status_code == 200
    assert "Alert emails are off" in response.content.decode()
    prefs = AlertSettings.objects.get(user=alice)
    assert not prefs.email_enabled and prefs.expiry_days == "3"  # nothing else changed
    assert SecurityEvent.objects.filter(user=alice, detail="alerts: email unsubscribed").count() == 1
    client.post(_unsubscribe_url(alice))  # again: nothing more
    assert SecurityEvent.objects.filter(user=alice, detail="alerts: email unsubscribed").count() == 1


def test_a_one_click_unsubscribe_works_without_a_csrf_cookie(alice):
    mail_client = Client(enforce_csrf_checks=True)  # a mail provider: no cookie, no token
    response = mail_client.post(
        _unsubscribe_url(alice),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert not AlertSettings.objects.get(user=alice).email_enabled


def test_the_settings_page_still_needs_csrf(alice):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(URL, DEFAULTS).status_code == 403
    assert strict.post("/alerts/test/email/").status_code == 403


@pytest.mark.parametrize("how", ["tampered", "other_salt", "garbage"])
def test_a_tampered_token_is_404_and_changes_nothing(client, alice, bob, how):
    AlertSettings.objects.create(user=alice)
    token = channels.unsubscribe_token(alice)
    if how == "tampered":
        # Another user's id under alice's signature.
        token = f"{bob.pk}:{token.split(':', 1)[1]}"
    elif how == "other_salt":
        from django.core import signing

        token = signing.Signer().sign(str(alice.pk))
    else:
        token = "nonsense"
    for method in (client.get, client.post):
        response = method(f"/alerts/unsubscribe/{token}/")
        assert response.status_code == 404
        assert "This link is not valid" in response.content.decode()
    assert AlertSettings.objects.get(user=alice).email_enabled
    assert not AlertSettings.objects.filter(user=bob).exists()


def test_an_inactive_users_link_is_404(client, alice):
    alice.is_active = False
    alice.save()
    assert client.post(_unsubscribe_url(alice)).status_code == 404
    assert not AlertSettings.objects.exists()


def test_the_unsubscribe_link_in_a_mail_is_this_one(alice):
    assert channels.unsubscribe_url(alice).endswith(_unsubscribe_url(alice))
    assert channels.user_id_from_token(channels.unsubscribe_token(alice)) == alice.pk
