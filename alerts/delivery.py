"""Delivering recorded alerts: a worker claims a delivery (one conditional UPDATE with a token),
sends it, and marks it sent only while its claim holds. A failure is retried with growing pauses
until ALERT_GIVE_UP_HOURS have passed; a worker that dies mid-send leaves a claim that lapses,
and the sweeper sends the delivery again.

Sent once: a delivery is marked sent in the same moment its send returned, and never sent again
after that; its key goes with it (Message-ID, Idempotency-Key) so the one case no sender can
close, a worker killed between the server's acceptance and our write, is a repeat the receiver
can recognise, never a loss.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import channels
from .models import Alert, AlertSettings, Delivery
from .outbox import alert_address, settings_for

logger = logging.getLogger(__name__)


def _claimable(now):
    return Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


def _claim(queryset, now) -> uuid.UUID | None:
    token = uuid.uuid4()
    taken = queryset.update(
        claim_token=token, claimed_until=now + timedelta(seconds=settings.ALERT_CLAIM_SECONDS)
    )
    return token if taken else None


def due_ids(limit: int = 500) -> list[int]:
    """Deliveries due and not held by a worker (digests included: one of them stands for its user)."""
    return list(_claimable(timezone.now()).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def deliver(delivery_id: int) -> str | None:
    """Send one delivery (or, for a digest, every due digest delivery of its user in one mail).
    Returns the state it reached, or None when there was nothing to do (sent, held, not due)."""
    now = timezone.now()
    first = Delivery.objects.select_related("alert__user").filter(pk=delivery_id).first()
    if first is None:
        return None
    user = first.alert.user
    if first.digest:
        group = _claimable(now).filter(alert__user=user, digest=True, channel=Delivery.Channel.EMAIL)
    else:
        group = _claimable(now).filter(pk=delivery_id)
    token = _claim(group, now)
    if token is None:
        return None
    held = list(
        Delivery.objects.select_related("alert__connection").filter(claim_token=token).order_by("alert_id")
    )
    prefs = settings_for(user)
    switched_off = _switched_off(prefs, held)
    if switched_off:
        # The user turned this channel off since the alert was raised (an unsubscribe, a webhook
        # removed): not sent, and said so, rather than retried for days.
        return _failed(held, token, switched_off, give_up=True)
    try:
        _send(user, prefs, held)
    except channels.SendError as error:
        return _failed(held, token, str(error))
    except Exception:
        logger.exception("delivery %s failed unexpectedly", delivery_id)
        return _failed(held, token, "An internal error stopped the delivery; it will be tried again.")
    done = Delivery.objects.filter(claim_token=token, state=Delivery.State.PENDING).update(
        state=Delivery.State.SENT,
        sent_at=timezone.now(),
        claimed_until=None,
        attempts=held[0].attempts + 1,
        last_error="",
    )
    if not done:  # our claim lapsed mid-send and another worker took it over
        logger.warning("delivery %s was sent after its claim lapsed", delivery_id)
        return None
    logger.info("delivery %s sent by %s (%d alerts)", delivery_id, first.channel, done)
    return Delivery.State.SENT


def _send(user, prefs: AlertSettings, held: list[Delivery]) -> None:
    channel = held[0].channel
    if channel == Delivery.Channel.EMAIL:
        address = alert_address(user)
        if not address:
            raise channels.SendError("The account has no verified email address.")
        channels.email(user, address, [d.alert for d in held], str(held[0].key))
    else:
        channels.webhook(prefs, held[0].alert, held[0])


def _switched_off(prefs: AlertSettings, held: list[Delivery]) -> str:
    """Why these deliveries' channel is no longer wanted, or "" (a test is sent when asked)."""
    if all(d.alert.kind == Alert.Kind.TEST for d in held):
        return ""
    if held[0].channel == Delivery.Channel.EMAIL and not prefs.email_enabled:
        return "Not sent: alert emails were turned off."
    if held[0].channel == Delivery.Channel.WEBHOOK and not prefs.webhook_on:
        return "Not sent: the webhook was turned off."
    return ""


def _failed(held: list[Delivery], token: uuid.UUID, reason: str, *, give_up: bool = False) -> str:
    now = timezone.now()
    attempts = max(d.attempts for d in held) + 1
    oldest = min(d.alert.created_at for d in held)
    test = all(d.alert.kind == Alert.Kind.TEST for d in held)
    give_up = give_up or test or now - oldest > timedelta(hours=settings.ALERT_GIVE_UP_HOURS)
    pause = min(settings.ALERT_RETRY_BASE_SECONDS * 2 ** (attempts - 1), settings.ALERT_RETRY_MAX_SECONDS)
    Delivery.objects.filter(claim_token=token, state=Delivery.State.PENDING).update(
        state=Delivery.State.FAILED if give_up else Delivery.State.PENDING,
        attempts=attempts,
        next_attempt_at=now + timedelta(seconds=pause),
        claimed_until=None,
        last_error=reason[:300],
    )
    logger.warning(
        "delivery of alerts %s failed (attempt %d): %s", [d.alert_id for d in held], attempts, reason
    )
    return Delivery.State.FAILED if give_up else Delivery.State.PENDING
