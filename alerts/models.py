"""Alerts: what the user asked to be told (AlertSettings), what happened (Alert, written in the
same transaction as the change that caused it: an outbox) and each channel's delivery of it
(Delivery, one per alert and channel, with its own key so it is sent once)."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from fernet_fields import EncryptedTextField

DEFAULT_EXPIRY_DAYS = "7,1"
DEFAULT_FAILING_MINUTES = 30


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class AlertSettings(models.Model):
    """A user's choices. A user without a row has the defaults: every alert on, by email."""

    class EmailMode(models.TextChoices):
        EACH = "each", "One email per alert"
        DIGEST = "digest", "A daily digest"

    class WebhookMode(models.TextChoices):
        OFF = "off", "Off"
        JSON = "json", "JSON webhook"
        TELEGRAM = "telegram", "Telegram bot"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_settings"
    )
    on_expiry = models.BooleanField(default=True)
    expiry_days = models.CharField(max_length=32, default=DEFAULT_EXPIRY_DAYS)  # "7,1"
    on_failing = models.BooleanField(default=True)
    failing_minutes = models.PositiveIntegerField(default=DEFAULT_FAILING_MINUTES)
    on_security = models.BooleanField(default=True)

    email_enabled = models.BooleanField(default=True)
    email_mode = models.CharField(max_length=8, choices=EmailMode.choices, default=EmailMode.EACH)

    webhook_mode = models.CharField(max_length=8, choices=WebhookMode.choices, default=WebhookMode.OFF)
    webhook_url = models.CharField(max_length=500, blank=True)
    # Signs each JSON webhook body (X-Alert-Signature) so the receiver knows it came from us.
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret, editable=False)
    telegram_bot_token = EncryptedTextField(null=True, blank=True, editable=False)
    telegram_chat_id = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"alert settings of {self.user_id}"

    @property
    def expiry_thresholds(self) -> list[int]:
        """Days before a key dies at which to warn, largest first."""
        days = {int(part) for part in self.expiry_days.split(",") if part.strip().isdigit()}
        return sorted((d for d in days if d > 0), reverse=True)

    @property
    def webhook_on(self) -> bool:
        if self.webhook_mode == self.WebhookMode.JSON:
            return bool(self.webhook_url)
        if self.webhook_mode == self.WebhookMode.TELEGRAM:
            return bool(self.telegram_bot_token and self.telegram_chat_id)
        return False


class Alert(models.Model):
    class Kind(models.TextChoices):
        EXPIRING = "expiring", "Key about to die"
        FAILING = "failing", "Connection failing"
        RECOVERED = "recovered", "Connection working again"
        WITHDRAW = "withdraw", "Key refused: it can withdraw"
        REPLACED = "replaced", "Key replaced"
        REMOVED = "removed", "Connection removed"
        TEST = "test", "Test alert"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    # Kept when the connection is removed: the alert names it by its words below.
    connection = models.ForeignKey(
        "exchanges.ExchangeConnection",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # One alert per connection and condition (and episode or day): the outbox's idempotency.
    dedupe_key = models.CharField(max_length=160, unique=True)
    exchange_name = models.CharField(max_length=64, blank=True)
    connection_name = models.CharField(max_length=100, blank=True)  # "HTX “Main” (abcd…wxyz)"
    title = models.CharField(max_length=200)
    happened = models.TextField()  # what happened, in the product's plain words
    fix = models.TextField(blank=True)  # the one step to take
    link = models.CharField(max_length=200, blank=True)  # a path on this site
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.kind}: {self.title}"


class Delivery(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENT = "sent", "Sent"
        FAILED = "failed", "Not delivered"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Sent with it (Message-ID, Idempotency-Key) so a receiver can tell a repeat.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    digest = models.BooleanField(default=False)  # waits for the user's daily digest
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A worker's hold while it sends: the token says whose, the time when it lapses.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="one_delivery_per_channel")]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.channel} of alert {self.alert_id}: {self.state}"
