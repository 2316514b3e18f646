from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.utils import timezone

from alerts import conditions, delivery
from alerts.models import Alert, Delivery
from exchanges.models import ExchangeConnection, Status


@pytest.mark.django_db
def test_smoke(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    c = ExchangeConnection.objects.create(
        owner=alice, exchange="htx", label="Main", access_key="k" * 20, secret_key="s" * 20,
        access_key_fingerprint="f", access_key_head="kkkk", access_key_tail="kkkk",
        status=Status.CONNECTED, established=True, key_expires_at=timezone.now() + timedelta(days=5),
        last_verified_at=timezone.now(),
    )
    assert conditions.scan() == 1
    assert conditions.scan() == 0
    d = Delivery.objects.get()
    assert delivery.deliver(d.pk) == "sent"
    assert delivery.deliver(d.pk) is None
    print(mail.outbox[0].subject, mail.outbox[0].extra_headers)
    print(mail.outbox[0].body)
    assert Alert.objects.count() == 1
