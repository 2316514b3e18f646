"""Alerts end to end: a real Celery worker process (with its embedded beat running the scan and
the sweeper), real Redis, the HTX sandbox over HTTP, and real receivers on loopback (an SMTP
server and an HTTP server, tests.alerts.servers). An alert raised by its actual cause arrives
once by email and once by webhook (or Telegram), carrying its delivery key."""

from __future__ import annotations

import hashlib
import hmac
import os
import time

import pytest
import redis

from alerts.models import Alert, Delivery
from exchanges import services
from exchanges.models import ExchangeConnection, Status
from tests.alerts.servers import (
    alert_user,
    expiring_connections,
    worker_env,
)
from tests.conftest import demo_key, start_celery, stop_process, wait_for, worker_args

EXPIRES_IN_5_DAYS = demo_key("demo: expires in 5 days")
BOT_TOKEN = "987654321:AAHtelegramBotTokenMustNeverBeLogged_xyz"


def _forget_messages() -> None:
    from bitsgap_clone.celery import app

    app.control.purge()
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("unacked", "unacked_index")


@pytest.fixture
def alert_worker(transactional_db, sandbox, smtp_server, webhook_server, tmp_path):
    """A worker consuming every queue (alerts included) with an embedded beat: the alert scan
    every second and the delivery sweeper every second; SMTP and Telegram point at the local
    servers."""
    _forget_messages()
    args = worker_args(hostname=f"alerts-{os.getpid()}@%h") + ["--beat", "--schedule", str(tmp_path / "beat")]
    env = {**worker_env(smtp_server, webhook_server, ALERT_SCAN_SECONDS=1), "HTX_API_URL": sandbox.url}
    process = start_celery(args, log_path=tmp_path / "worker.log", env=env, ready=b" ready.", timeout=60)
    yield process
    stop_process(process)
    _forget_messages()


def _log(process) -> str:
    return process.log_path.read_text(errors="replace")


@pytest.mark.worker
def test_an_expiring_key_is_told_once_by_email_and_once_by_webhook(
    alert_worker, smtp_server, webhook_server, alice
):
    prefs = alert_user(alice, webhook_url=webhook_server.url("/hook"))
    # The cause: the user connects a key HTX says dies in 5 days; the worker verifies it, then
    # beat's scan (alerts.tasks.scan, in the worker) finds it within the 7-day warning.
    connection = services.connection_create(
        owner=alice,
        exchange="htx",
        label="Main",
        access_key=EXPIRES_IN_5_DAYS[0],
        secret_key=EXPIRES_IN_5_DAYS[1],
    )
    [mail] = smtp_server.wait_for(1, timeout=45)
    [hook] = webhook_server.wait_for(1, timeout=15)
    connection.refresh_from_db()
    assert connection.status == Status.CONNECTED and connection.key_expires_at is not None

    alert = Alert.objects.get()
    email = alert.deliveries.get(channel=Delivery.Channel.EMAIL)
    webhook = alert.deliveries.get(channel=Delivery.Channel.WEBHOOK)
    # A few more scans and sweeps: nothing is raised or sent again.
    time.sleep(3)
    assert Alert.objects.count() == 1
    assert smtp_server.by_key() == {str(email.key): 1}
    assert webhook_server.by_key() == {str(webhook.key): 1}
    assert len(webhook_server.received()) == 1
    email.refresh_from_db()
    webhook.refresh_from_db()
    assert (email.state, email.attempts, webhook.state, webhook.attempts) == ("sent", 1, "sent", 1)

    assert alert.kind == Alert.Kind.EXPIRING and "key expires" in alert.title
    assert mail.message_id == f"<alert-{email.key}@localhost>"
    assert mail.to == "alice@example.com" and mail.subject == f"[Bitsgap Clone] {alert.title}"
    assert mail.list_unsubscribe.startswith("<http://127.0.0.1:8000/alerts/unsubscribe/")
    assert mail.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    assert mail.auto_submitted == "auto-generated"
    assert connection.masked_access_key in mail.body and "in 5 days" in mail.body

    assert hook.path == "/hook" and hook.idempotency_key == str(webhook.key)
    expected = "sha256=" + hmac.new(prefs.webhook_secret.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.signature == expected
    assert hook.json["id"] == str(webhook.key) and hook.json["type"] == "expiring"
    assert hook.json["connection"]["api_key"] == connection.masked_access_key
    assert hook.json["connection"]["id"] == connection.pk

    log = _log(alert_worker)
    assert "alerts.tasks.scan" in log and "alerts.tasks.deliver" in log
    for secret in (*EXPIRES_IN_5_DAYS, prefs.webhook_secret):
        assert secret not in log and secret not in mail.raw.decode() and secret.encode() not in hook.body


@pytest.mark.worker
def test_telegram_mode_sends_once_and_never_logs_the_bot_token(
    alert_worker, smtp_server, webhook_server, alice
):
    alert_user(alice, telegram=(BOT_TOKEN, "-100123456"))
    [connection] = expiring_connections(alice, 1, days=60)  # nothing to warn about
    webhook_server.fail_next(1, status=500)  # Telegram has a bad moment: one retry, logged
    # The cause: the user removes the connection (a security alert, in that transaction).
    services.connection_remove(connection=connection)
    assert not ExchangeConnection.objects.filter(pk=connection.pk).exists()

    [mail] = smtp_server.wait_for(1, timeout=30)
    [sent] = webhook_server.wait_for(1, timeout=30)
    alert = Alert.objects.get()
    telegram = alert.deliveries.get(channel=Delivery.Channel.WEBHOOK)
    time.sleep(2)  # more sweeps: nothing sent again
    wait_for(lambda: Delivery.objects.filter(pk=telegram.pk, state="sent").exists(), timeout=5)
    got = webhook_server.received()
    assert [r.status for r in got] == [500, 200]
    assert {r.path for r in got} == {f"/bot{BOT_TOKEN}/sendMessage"}
    assert sent.json["chat_id"] == "-100123456" and sent.json["text"].startswith(alert.title)
    assert "connection removed" in alert.title and len(smtp_server.received()) == 1
    assert mail.message_id == f"<alert-{alert.deliveries.get(channel='email').key}@localhost>"
    telegram.refresh_from_db()
    assert telegram.attempts == 2

    log = _log(alert_worker)
    assert "Telegram answered HTTP 500" in log  # the failure was logged...
    assert BOT_TOKEN not in log and BOT_TOKEN.split(":")[1] not in log  # ...without the token
