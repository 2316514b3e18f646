"""Writes a user asks for: saving alert settings, a test alert, unsubscribing from a mail."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.urls import reverse

from accounts.models import SecurityEvent
from accounts.services import security_log

from .models import Alert, AlertSettings, Delivery
from .outbox import raise_alert, settings_for


def settings_save(*, form, request=None) -> AlertSettings:
    with transaction.atomic():
        prefs = form.save()
        channels = ["email" if prefs.email_enabled else "", prefs.webhook_mode if prefs.webhook_on else ""]
        security_log(
            user=prefs.user,
            kind=SecurityEvent.Kind.SETTINGS_CHANGED,
            request=request,
            detail="alerts: " + (", ".join(c for c in channels if c) or "no channel"),
        )
    return prefs


def test_send(*, user, channel: str) -> Delivery:
    """A test alert on one channel, sent by the workers like any other (one attempt only)."""
    with transaction.atomic():
        alert = raise_alert(
            user=user,
            kind=Alert.Kind.TEST,
            dedupe_key=f"test:{uuid.uuid4()}",
            title="Test alert",
            happened="This is a test of your alert settings. Real alerts name the exchange, the "
            "connection and its API Key's masked ends, say what happened and what to do.",
            fix="Nothing to do.",
            link=reverse("alerts:settings"),
            channels=[(channel, False)],
        )
    return alert.deliveries.get()


def email_unsubscribe(*, user, request=None) -> None:
    """From a mail's link or List-Unsubscribe: stop alert emails (no login needed)."""
    prefs = settings_for(user)
    if prefs.pk is not None and not prefs.email_enabled:
        return
    with transaction.atomic():
        prefs.email_enabled = False
        prefs.save()
        security_log(
            user=user,
            kind=SecurityEvent.Kind.SETTINGS_CHANGED,
            request=request,
            detail="alerts: email unsubscribed",
        )
