"""A channel turned off after an alert was raised sends nothing more (an unsubscribe stops mail
still waiting for a retry or for the digest), and the sweeper never queues one delivery twice."""

from __future__ import annotations

import pytest
from django.core import mail

from alerts import conditions, delivery, services, tasks
from alerts.models import Delivery
from tests.alerts.servers import alert_user, expiring_connections


@pytest.fixture
def locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.mark.django_db
def test_an_unsubscribe_stops_an_alert_mail_still_waiting(alice, locmem):
    alert_user(alice)
    expiring_connections(alice, 1)
    assert conditions.scan() == 1
    waiting = Delivery.objects.get()
    services.email_unsubscribe(user=alice)
    assert delivery.deliver(waiting.pk) == Delivery.State.FAILED
    waiting.refresh_from_db()
    assert (waiting.state, waiting.last_error) == (
        Delivery.State.FAILED,
        "Not sent: alert emails were turned off.",
    )
    assert mail.outbox == []
    assert delivery.due_ids() == []  # not retried


@pytest.mark.django_db
def test_a_test_email_is_still_sent_when_asked_after_an_unsubscribe(alice, locmem):
    alert_user(alice, email_on=False)
    test = services.test_send(user=alice, channel=Delivery.Channel.EMAIL)
    assert delivery.deliver(test.pk) == Delivery.State.SENT
    assert [m.subject for m in mail.outbox] == ["[Bitsgap Clone] Test alert"]


@pytest.mark.django_db
def test_a_removed_webhook_gets_nothing_more(alice, locmem):
    prefs = alert_user(alice, email_on=False, webhook_url="http://127.0.0.1:9/hook")
    expiring_connections(alice, 1)
    assert conditions.scan() == 1
    waiting = Delivery.objects.get(channel=Delivery.Channel.WEBHOOK)
    prefs.webhook_mode = prefs.WebhookMode.OFF
    prefs.save()
    assert delivery.deliver(waiting.pk) == Delivery.State.FAILED
    waiting.refresh_from_db()
    assert waiting.last_error == "Not sent: the webhook was turned off."


@pytest.mark.django_db
def test_the_sweeper_queues_a_waiting_delivery_once(alice, locmem, monkeypatch):
    alert_user(alice)
    expiring_connections(alice, 3)
    conditions.scan()
    sent = []
    monkeypatch.setattr(tasks.deliver, "delay", sent.append)  # the broker's side of it
    assert tasks.deliver_due() == 3
    assert tasks.deliver_due() == 0  # still queued: not sent again
    assert sorted(sent) == sorted(Delivery.objects.values_list("pk", flat=True))
    tasks.deliver.run(sent[0])  # the task starts: its mark goes, and the mail is sent
    assert len(mail.outbox) == 1
