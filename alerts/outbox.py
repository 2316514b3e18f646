"""Recording an alert: the Alert and one Delivery per channel the user chose, written inside the
caller's transaction (the change that causes the alert), so an alert exists if and only if its
cause was committed. Workers deliver them afterwards (alerts.delivery)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Alert, AlertSettings, Delivery

logger = logging.getLogger(__name__)

DELIVER_TASK = "alerts.tasks.deliver"
# Sent at once even to a user who chose the daily digest: a key destroyed, replaced or removed.
SECURITY_KINDS = (Alert.Kind.WITHDRAW, Alert.Kind.REPLACED, Alert.Kind.REMOVED)


def settings_for(user) -> AlertSettings:
    """The user's alert settings; the defaults (unsaved) when they never changed them."""
    found = AlertSettings.objects.filter(user=user).first()
    return found or AlertSettings(user=user)


def alert_address(user) -> str | None:
    """Where alert emails go: the account's primary address once verified, or another verified."""
    verified = EmailAddress.objects.filter(user=user, verified=True).order_by("-primary", "id").first()
    return verified.email if verified else None


def next_digest_at(now: datetime) -> datetime:
    """The next daily digest time (ALERT_DIGEST_HOUR, in the site's zone)."""
    local = timezone.localtime(now)
    at = local.replace(hour=settings.ALERT_DIGEST_HOUR, minute=0, second=0, microsecond=0)
    return at if at > local else at + timedelta(days=1)


def _channels(user, prefs: AlertSettings, kind: str) -> list[tuple[str, bool]]:
    """(channel, waits for the digest) for each channel this alert goes to."""
    channels = []
    if prefs.email_enabled and alert_address(user):
        digest = prefs.email_mode == AlertSettings.EmailMode.DIGEST and kind not in SECURITY_KINDS
        channels.append((Delivery.Channel.EMAIL, digest))
    if prefs.webhook_on:
        channels.append((Delivery.Channel.WEBHOOK, False))
    return channels


def raise_alert(
    *,
    user,
    kind: str,
    dedupe_key: str,
    title: str,
    happened: str,
    fix: str = "",
    link: str = "",
    connection=None,
    connection_name: str = "",
    exchange_name: str = "",
    channels: list[tuple[str, bool]] | None = None,
) -> Alert | None:
    """Record an alert once (None if this dedupe key was already raised) with its deliveries,
    in the surrounding transaction; the workers are told once it commits."""
    if Alert.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    if channels is None:
        channels = _channels(user, settings_for(user), kind)
    now = timezone.now()
    try:
        with transaction.atomic():  # a savepoint: a concurrent duplicate undoes only this
            alert = Alert.objects.create(
                user=user,
                connection=connection,
                kind=kind,
                dedupe_key=dedupe_key,
                title=title[:200],
                happened=happened,
                fix=fix,
                link=link,
                connection_name=connection_name[:100],
                exchange_name=exchange_name[:64],
            )
            deliveries = Delivery.objects.bulk_create(
                Delivery(
                    alert=alert,
                    channel=channel,
                    digest=digest,
                    next_attempt_at=next_digest_at(now) if digest else now,
                )
                for channel, digest in channels
            )
    except IntegrityError:
        return None
    logger.info("alert %s (%s) raised for user %s: %d deliveries", alert.pk, kind, user.pk, len(deliveries))
    for delivery in deliveries:
        if not delivery.digest:
            transaction.on_commit(lambda pk=delivery.pk: _send(pk), robust=True)
    return alert


def _send(delivery_id: int) -> None:
    try:
        current_app.send_task(DELIVER_TASK, args=[delivery_id])
    except Exception:  # the broker is down: the sweeper (alerts.tasks.deliver_due) sends it
        logger.warning("Broker unavailable; delivery %s will be sent by the sweeper", delivery_id)
