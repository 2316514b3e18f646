"""Delivering recorded alerts in-process (alerts.delivery.deliver), with Django's locmem email
backend, a real SMTP connection to a closed loopback port for a mail server that cannot be
reached, and a stdlib HTTP server on loopback for webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.utils import timezone

from alerts import channels, delivery, services
from alerts.models import Alert, AlertSettings, Delivery
from alerts.outbox import next_digest_at, raise_alert
from exchanges import keycheck
from exchanges import services as exchange_services
from exchanges.models import ExchangeConnection, Status
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _verified(user, email=None) -> EmailAddress:
    return EmailAddress.objects.create(user=user, email=email or user.email, verified=True, primary=True)


def _prefs(user, **fields) -> AlertSettings:
    prefs, _ = AlertSettings.objects.update_or_create(user=user, defaults=fields)
    return prefs


def _alert(user, kind=Alert.Kind.EXPIRING, title="HTX · Main (abcd…wxyz): key expires", **kw) -> Alert:
    alert = raise_alert(
        user=user,
        kind=kind,
        dedupe_key=kw.pop("dedupe_key", f"t:{uuid.uuid4()}"),
        title=title,
        happened=kw.pop("happened", "HTX stops accepting this key soon."),
        fix="Replace the key.",
        link="/exchanges/",
        **kw,
    )
    assert alert is not None
    return alert


def _email_of(alert: Alert) -> Delivery:
    return alert.deliveries.get(channel=Delivery.Channel.EMAIL)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mail_server_down(settings):
    """SMTP to a loopback port nobody listens on: a real 'connection refused'."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = _closed_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


def _connected(owner, key=GOOD, label="Main") -> ExchangeConnection:
    connection = exchange_services.connection_create(
        owner=owner, exchange="htx", label=label, access_key=key[0], secret_key=key[1]
    )
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    return ExchangeConnection.objects.get(pk=connection.pk)


# --- sent once --------------------------------------------------------------------------------


def test_an_alert_is_emailed_once(alice):
    _verified(alice)
    alert = _alert(alice)
    [d] = alert.deliveries.all()
    assert d.channel == Delivery.Channel.EMAIL and not d.digest and d.state == Delivery.State.PENDING
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    assert mail.outbox[0].subject == f"[Bitsgap Clone] {alert.title}"
    d.refresh_from_db()
    assert d.state == Delivery.State.SENT and d.attempts == 1 and d.sent_at is not None
    assert d.claimed_until is None and d.last_error == ""
    # A repeated message (a second worker, the sweeper) sends nothing.
    assert delivery.deliver(d.pk) is None
    assert len(mail.outbox) == 1
    assert d.pk not in delivery.due_ids()


def test_an_unknown_delivery_is_nothing_to_do(alice):
    assert delivery.deliver(987654) is None
    assert mail.outbox == []


def test_a_delivery_held_by_another_worker_is_not_sent_until_the_claim_lapses(alice):
    _verified(alice)
    d = _email_of(_alert(alice))
    Delivery.objects.filter(pk=d.pk).update(
        claim_token=uuid.uuid4(), claimed_until=timezone.now() + timedelta(seconds=60)
    )
    assert d.pk not in delivery.due_ids()
    assert delivery.deliver(d.pk) is None
    assert mail.outbox == []
    assert Delivery.objects.get(pk=d.pk).state == Delivery.State.PENDING
    # That worker died: its claim lapses and the delivery is due again.
    Delivery.objects.filter(pk=d.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert d.pk in delivery.due_ids()
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    assert len(mail.outbox) == 1


def test_a_delivery_not_yet_due_is_not_sent(alice):
    _verified(alice)
    d = _email_of(_alert(alice))
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert delivery.deliver(d.pk) is None
    assert d.pk not in delivery.due_ids()
    assert mail.outbox == []


# --- failures ---------------------------------------------------------------------------------


def test_a_failure_is_retried_with_growing_pauses(alice, settings, mail_server_down):
    settings.ALERT_RETRY_BASE_SECONDS, settings.ALERT_RETRY_MAX_SECONDS = 30, 100
    _verified(alice)
    d = _email_of(_alert(alice))
    pauses = []
    for attempt in range(1, 5):
        before = timezone.now()
        assert delivery.deliver(d.pk) == Delivery.State.PENDING
        d.refresh_from_db()
        assert d.attempts == attempt and d.state == Delivery.State.PENDING
        assert d.claimed_until is None
        assert d.last_error == "The mail server refused or could not be reached (ConnectionRefusedError)."
        pauses.append(round((d.next_attempt_at - before).total_seconds()))
        # Not due again before the pause is over.
        assert delivery.deliver(d.pk) is None
        Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())
    assert pauses == [30, 60, 100, 100]  # base * 2**n, capped
    assert mail.outbox == []


def test_a_failure_then_success_sends_once_and_clears_the_error(alice, settings, mail_server_down):
    _verified(alice)
    d = _email_of(_alert(alice))
    assert delivery.deliver(d.pk) == Delivery.State.PENDING
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the server is back
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    d.refresh_from_db()
    assert d.attempts == 2 and d.last_error == "" and len(mail.outbox) == 1


def test_delivery_gives_up_after_the_give_up_hours(alice, settings, mail_server_down):
    settings.ALERT_GIVE_UP_HOURS = 72
    _verified(alice)
    alert = _alert(alice)
    d = _email_of(alert)
    Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - timedelta(hours=71))
    assert delivery.deliver(d.pk) == Delivery.State.PENDING  # still within 72 hours
    Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - timedelta(hours=73))
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())
    assert delivery.deliver(d.pk) == Delivery.State.FAILED
    d.refresh_from_db()
    assert d.state == Delivery.State.FAILED and d.attempts == 2 and "mail server" in d.last_error
    assert d.pk not in delivery.due_ids()
    assert delivery.deliver(d.pk) is None


def test_a_test_alert_fails_at_once(alice, mail_server_down):
    _verified(alice)
    d = services.test_send(user=alice, channel=Delivery.Channel.EMAIL)
    assert d.alert.kind == Alert.Kind.TEST
    assert delivery.deliver(d.pk) == Delivery.State.FAILED
    d.refresh_from_db()
    assert d.state == Delivery.State.FAILED and d.attempts == 1 and d.last_error


def test_a_test_email_goes_even_with_alert_emails_off(alice):
    _verified(alice)
    _prefs(alice, email_enabled=False)
    d = services.test_send(user=alice, channel=Delivery.Channel.EMAIL)
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    assert mail.outbox[0].subject == "[Bitsgap Clone] Test alert"


def test_an_address_unverified_since_the_alert_is_not_mailed(alice):
    address = _verified(alice)
    d = _email_of(_alert(alice))
    address.verified = False
    address.save()
    assert delivery.deliver(d.pk) == Delivery.State.PENDING
    d.refresh_from_db()
    assert d.last_error == "The account has no verified email address." and mail.outbox == []


# --- channels turned off after the alert ------------------------------------------------------


def test_no_mail_after_unsubscribing_even_for_an_alert_raised_before(alice, client):
    """One-click unsubscribe (RFC 8058) must stop alert mail, including a digest already queued."""
    _verified(alice)
    _prefs(alice, email_mode=AlertSettings.EmailMode.DIGEST)
    d = _email_of(_alert(alice))
    assert d.digest
    token = channels.unsubscribe_token(alice)
    response = client.post(f"/alerts/unsubscribe/{token}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())  # the digest hour
    assert delivery.deliver(d.pk) == Delivery.State.FAILED
    assert mail.outbox == []
    d.refresh_from_db()
    assert d.state == Delivery.State.FAILED and "turned off" in d.last_error


def test_a_webhook_turned_off_since_the_alert_is_not_retried_for_days(alice, settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = True
    _prefs(alice, webhook_mode=AlertSettings.WebhookMode.JSON, webhook_url="http://127.0.0.1:9/hook")
    alert = _alert(alice)
    d = alert.deliveries.get(channel=Delivery.Channel.WEBHOOK)
    _prefs(alice, webhook_mode=AlertSettings.WebhookMode.OFF)
    assert delivery.deliver(d.pk) == Delivery.State.FAILED
    assert Delivery.objects.get(pk=d.pk).attempts == 1


# --- which channels ---------------------------------------------------------------------------


def test_no_email_delivery_without_a_verified_address(alice, bob):
    EmailAddress.objects.create(user=bob, email=bob.email, verified=False, primary=True)
    assert not _alert(alice).deliveries.exists()  # no EmailAddress at all
    assert not _alert(bob).deliveries.exists()  # one, not verified
    EmailAddress.objects.create(user=bob, email="bob-other@example.com", verified=True, primary=False)
    d = _email_of(_alert(bob))  # another address of bob's is verified: that one
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    assert mail.outbox[0].to == ["bob-other@example.com"]


def test_email_off_means_no_email_delivery(alice):
    _verified(alice)
    _prefs(alice, email_enabled=False)
    assert not _alert(alice).deliveries.exists()


def test_deliveries_go_to_email_and_webhook(alice, settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = True
    _verified(alice)
    _prefs(alice, webhook_mode=AlertSettings.WebhookMode.JSON, webhook_url="http://127.0.0.1:9/")
    channels_of = set(_alert(alice).deliveries.values_list("channel", flat=True))
    assert channels_of == {Delivery.Channel.EMAIL, Delivery.Channel.WEBHOOK}


# --- digest -----------------------------------------------------------------------------------


def test_digest_mode_groups_due_alerts_into_one_mail_and_security_alerts_go_at_once(alice, bob, settings):
    _verified(alice)
    _verified(bob)
    _prefs(alice, email_mode=AlertSettings.EmailMode.DIGEST)
    _prefs(bob, email_mode=AlertSettings.EmailMode.DIGEST)
    first = _alert(alice, title="HTX · Main (aaaa…1111): key expires")
    second = _alert(alice, kind=Alert.Kind.FAILING, title="HTX · Spare (bbbb…2222): IP not allowed")
    removed = _alert(alice, kind=Alert.Kind.REMOVED, title="HTX · Old (cccc…3333): connection removed")
    bobs = _alert(bob, title="HTX · Bob (dddd…4444): key expires")
    d1, d2, d3, d_bob = (_email_of(a) for a in (first, second, removed, bobs))
    assert d1.digest and d2.digest and d_bob.digest and not d3.digest
    assert timezone.now() < d1.next_attempt_at <= timezone.now() + timedelta(days=1)
    assert timezone.localtime(d1.next_attempt_at).hour == settings.ALERT_DIGEST_HOUR

    # The security alert goes at once, alone.
    assert delivery.deliver(d3.pk) == Delivery.State.SENT
    assert len(mail.outbox) == 1 and "connection removed" in mail.outbox[0].subject
    # The digests wait for their hour.
    assert delivery.deliver(d1.pk) is None
    assert set(delivery.due_ids()) == set()

    # The hour comes: one mail with both of alice's alerts, none of bob's.
    Delivery.objects.filter(digest=True).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert delivery.deliver(d2.pk) == Delivery.State.SENT
    assert len(mail.outbox) == 2
    digest = mail.outbox[1]
    assert digest.subject == "[Bitsgap Clone] 2 alerts about your exchange keys"
    assert digest.to == ["alice@example.com"]
    assert first.title in digest.body and second.title in digest.body
    assert bobs.title not in digest.body and removed.title not in digest.body
    html = digest.alternatives[0][0]
    assert first.title in html and second.title in html
    for d in (d1, d2):
        d.refresh_from_db()
        assert d.state == Delivery.State.SENT
    # The other of alice's digest deliveries was part of that mail: nothing more.
    assert delivery.deliver(d1.pk) is None
    assert len(mail.outbox) == 2
    # Bob's digest is his own mail.
    assert delivery.deliver(d_bob.pk) == Delivery.State.SENT
    assert mail.outbox[2].to == ["bob@example.com"] and bobs.title in mail.outbox[2].body


def test_the_digest_hour_is_the_next_one(settings):
    settings.ALERT_DIGEST_HOUR = 8
    before = timezone.now().replace(hour=7, minute=59)
    after = timezone.now().replace(hour=8, minute=0, second=1)
    assert next_digest_at(before) == before.replace(hour=8, minute=0, second=0, microsecond=0)
    assert next_digest_at(after) == after.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )


# --- what the mail says -----------------------------------------------------------------------


def test_the_email_has_unsubscribe_headers_and_a_message_id(alice):
    _verified(alice)
    d = _email_of(_alert(alice))
    delivery.deliver(d.pk)
    message = mail.outbox[0]
    headers = message.extra_headers
    url = channels.unsubscribe_url(alice)
    assert url.startswith("http://127.0.0.1:8000/alerts/unsubscribe/")
    assert headers["List-Unsubscribe"] == f"<{url}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"] == f"<alert-{d.key}@localhost>"
    assert headers["Auto-Submitted"] == "auto-generated"
    rendered = message.message()
    assert rendered["Message-ID"] == f"<alert-{d.key}@localhost>"
    assert rendered["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in message.body and url in message.alternatives[0][0]


def test_the_email_names_the_exchange_label_and_masked_key_and_no_secret(sandbox, alice):
    _verified(alice)
    connection = _connected(alice, label="Main account")
    masked = connection.masked_access_key
    sandbox.accounts[GOOD[0]]["permission"] = "readOnly,trade,withdraw"
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())
    assert keycheck.connection_check(connection_id=connection.pk) == Status.WITHDRAW_ENABLED
    alert = Alert.objects.get(kind=Alert.Kind.WITHDRAW)
    assert delivery.deliver(_email_of(alert).pk) == Delivery.State.SENT
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    for text in (message.subject, message.body, html):
        assert "HTX" in text and "Main account" in text and masked in text
    for text in (message.subject, message.body, html, str(message.message())):
        assert GOOD[0] not in text  # the full API key
        assert GOOD[1] not in text  # the secret
    assert f"http://127.0.0.1:8000/exchanges/{connection.pk}/" in message.body


# --- webhooks ---------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    status = 200
    received: list

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        self.received.append((self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook(settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = True
    handler = type("Hook", (_Hook,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.handler = handler
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    yield server
    server.shutdown()
    server.server_close()


def test_a_json_webhook_is_signed_and_carries_its_idempotency_key(alice, hook):
    prefs = _prefs(alice, webhook_mode=AlertSettings.WebhookMode.JSON, webhook_url=hook.url)
    d = _alert(
        alice, kind=Alert.Kind.REMOVED, exchange_name="HTX", connection_name="HTX · Old (a…b)"
    ).deliveries.get()
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    [(path, headers, body)] = hook.handler.received
    assert path == "/hooks/alerts"
    assert headers["Idempotency-Key"] == str(d.key)
    expected = "sha256=" + hmac.new(prefs.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Alert-Signature"] == expected
    said = json.loads(body)
    assert said["id"] == str(d.key) and said["type"] == "removed"
    assert said["connection"] == {"id": None, "exchange_name": "HTX", "name": "HTX · Old (a…b)"}
    assert delivery.deliver(d.pk) is None and len(hook.handler.received) == 1


def test_a_webhook_answering_an_error_is_retried(alice, hook):
    hook.handler.status = 500
    _prefs(alice, webhook_mode=AlertSettings.WebhookMode.JSON, webhook_url=hook.url)
    d = _alert(alice).deliveries.get()
    assert delivery.deliver(d.pk) == Delivery.State.PENDING
    d.refresh_from_db()
    assert d.last_error == "The webhook answered HTTP 500." and d.attempts == 1
    hook.handler.status = 200
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())
    assert delivery.deliver(d.pk) == Delivery.State.SENT
    assert len(hook.handler.received) == 2
    # The same key on the retry, so the receiver can tell a repeat.
    assert hook.handler.received[0][1]["Idempotency-Key"] == hook.handler.received[1][1]["Idempotency-Key"]
