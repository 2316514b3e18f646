"""alerts.delivery in this process against the real receivers of tests.alerts.servers: the SMTP
server and the HTTP server, on loopback, each misbehaving as told. (The same with worker
processes: tests/integration/test_alerts_worker.py and tests/faults/test_alert_faults.py.)"""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from django.utils import timezone

from alerts import conditions, delivery
from alerts.models import Alert, Delivery
from tests.alerts.servers import alert_user, expiring_connections

BOT_TOKEN = "123456789:AAEsecretBotTokenNeverLogged_0123456789"


@pytest.fixture
def real_channels(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_server.port
    settings.ALERT_SMTP_TIMEOUT = 5
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = True
    settings.ALERT_WEBHOOK_TIMEOUT = (1.0, 1.0)
    settings.ALERT_RETRY_BASE_SECONDS = 30
    return settings


def _raise_one(user) -> Alert:
    [connection] = expiring_connections(user, 1)
    assert conditions.scan() == 1
    return Alert.objects.get(connection=connection)


def _delivery(alert: Alert, channel: str) -> Delivery:
    return alert.deliveries.get(channel=channel)


def _due_now(d: Delivery) -> None:
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
def test_an_email_arrives_with_its_key_as_message_id_and_one_click_unsubscribe(
    real_channels, smtp_server, alice
):
    alert_user(alice)
    alert = _raise_one(alice)
    email = _delivery(alert, Delivery.Channel.EMAIL)
    assert delivery.deliver(email.pk) == Delivery.State.SENT
    [mail] = smtp_server.received()
    assert mail.delivery_key == str(email.key)
    assert mail.message_id == f"<alert-{email.key}@localhost>"
    assert mail.to == "alice@example.com" and mail.rcpt_tos == ("alice@example.com",)
    assert "key expires" in mail.subject
    assert mail.list_unsubscribe.startswith("<http://127.0.0.1:8000/alerts/unsubscribe/")
    assert mail.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    assert alert.connection.masked_access_key in mail.body and alert.connection.secret_key not in mail.body
    # Sent: never again.
    _due_now(email)
    assert delivery.deliver(email.pk) is None
    assert len(smtp_server.received()) == 1


@pytest.mark.django_db
def test_smtp_down_then_up_on_the_same_port(real_channels, smtp_server, alice):
    alert_user(alice)
    email = _delivery(_raise_one(alice), Delivery.Channel.EMAIL)
    smtp_server.stop()
    assert delivery.deliver(email.pk) == Delivery.State.PENDING
    email.refresh_from_db()
    assert email.attempts == 1 and "could not be reached" in email.last_error
    assert delivery.deliver(email.pk) is None  # not due before its pause (30 s)
    smtp_server.refuse_next(0)
    smtp_server.start()
    smtp_server.refuse_next(1)  # up again, but says "try later" once
    _due_now(email)
    assert delivery.deliver(email.pk) == Delivery.State.PENDING
    _due_now(email)
    assert delivery.deliver(email.pk) == Delivery.State.SENT
    assert smtp_server.by_key() == {str(email.key): 1}
    email.refresh_from_db()
    assert email.attempts == 3 and email.last_error == ""


@pytest.mark.django_db
def test_a_mail_accepted_before_the_server_hangs_at_quit_counts_as_sent(real_channels, smtp_server, alice):
    real_channels.ALERT_SMTP_TIMEOUT = 1
    smtp_server.quit_delay = 2.5  # the mail is accepted; the goodbye never comes in time
    alert_user(alice)
    email = _delivery(_raise_one(alice), Delivery.Channel.EMAIL)
    assert delivery.deliver(email.pk) == Delivery.State.SENT
    _due_now(email)
    assert delivery.deliver(email.pk) is None
    assert smtp_server.by_key() == {str(email.key): 1}


@pytest.mark.django_db
def test_a_failing_webhook_is_retried_with_the_same_key_and_a_valid_signature(
    real_channels, webhook_server, alice
):
    prefs = alert_user(alice, email_on=False, webhook_url=webhook_server.url())
    hook = _delivery(_raise_one(alice), Delivery.Channel.WEBHOOK)
    webhook_server.fail_next(2)
    assert delivery.deliver(hook.pk) == Delivery.State.PENDING
    _due_now(hook)
    assert delivery.deliver(hook.pk) == Delivery.State.PENDING
    _due_now(hook)
    assert delivery.deliver(hook.pk) == Delivery.State.SENT
    got = webhook_server.received()
    assert [r.status for r in got] == [500, 500, 200]
    assert {r.idempotency_key for r in got} == {str(hook.key)}
    for r in got:
        expected = "sha256=" + hmac.new(prefs.webhook_secret.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.signature == expected
        assert r.json["id"] == str(hook.key) and r.json["type"] == "expiring"
    assert webhook_server.by_key() == {str(hook.key): 1}


@pytest.mark.django_db
def test_a_redirect_is_not_followed(real_channels, webhook_server, alice):
    alert_user(alice, email_on=False, webhook_url=webhook_server.url())
    hook = _delivery(_raise_one(alice), Delivery.Channel.WEBHOOK)
    webhook_server.redirect_next(1, location=webhook_server.url("/elsewhere"))
    assert delivery.deliver(hook.pk) == Delivery.State.PENDING
    hook.refresh_from_db()
    assert "redirect" in hook.last_error
    assert [r.path for r in webhook_server.received()] == ["/hook"]  # nothing went to /elsewhere


@pytest.mark.django_db
def test_a_huge_answer_is_cut_short(real_channels, webhook_server, alice, settings):
    settings.ALERT_WEBHOOK_MAX_BYTES = 4096
    alert_user(alice, email_on=False, webhook_url=webhook_server.url())
    hook = _delivery(_raise_one(alice), Delivery.Channel.WEBHOOK)
    webhook_server.huge_next(1, size=32 * 1024 * 1024)
    started = timezone.now()
    assert delivery.deliver(hook.pk) == Delivery.State.SENT  # a 200 is a 200, however long
    assert (timezone.now() - started).total_seconds() < 2  # 32 MB were not read


@pytest.mark.django_db
def test_a_slow_webhook_times_out_and_the_retry_carries_the_same_key(real_channels, webhook_server, alice):
    alert_user(alice, email_on=False, webhook_url=webhook_server.url())
    hook = _delivery(_raise_one(alice), Delivery.Channel.WEBHOOK)
    webhook_server.slow_next(1, seconds=2.5)  # more than the 1 s read timeout set above
    assert delivery.deliver(hook.pk) == Delivery.State.PENDING
    hook.refresh_from_db()
    assert "did not answer" in hook.last_error
    _due_now(hook)
    assert delivery.deliver(hook.pk) == Delivery.State.SENT
    # The slow receiver did get the first one: a repeat it can recognise by its key.
    assert [r.idempotency_key for r in webhook_server.received()] == [str(hook.key)] * 2


@pytest.mark.django_db
def test_telegram_errors_and_logs_never_carry_the_bot_token(
    real_channels, webhook_server, alice, caplog, settings
):
    settings.TELEGRAM_API_URL = webhook_server.base_url
    alert_user(alice, email_on=False, telegram=(BOT_TOKEN, "424242"))
    hook = _delivery(_raise_one(alice), Delivery.Channel.WEBHOOK)
    webhook_server.fail_next(1, status=502)
    webhook_server.huge_next(1)
    webhook_server.slow_next(1, seconds=2.5)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            assert delivery.deliver(hook.pk) == Delivery.State.PENDING
            hook.refresh_from_db()
            assert BOT_TOKEN not in hook.last_error and "424242" not in hook.last_error
            _due_now(hook)
        assert delivery.deliver(hook.pk) == Delivery.State.SENT
    got = webhook_server.received()
    assert {r.path for r in got} == {f"/bot{BOT_TOKEN}/sendMessage"}
    assert got[-1].json["chat_id"] == "424242" and "key expires" in got[-1].json["text"]
    assert BOT_TOKEN not in caplog.text and BOT_TOKEN.split(":")[1] not in caplog.text
