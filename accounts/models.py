from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Our own user model from day one. People sign in with their email address
    (django-allauth); ``username`` stays as Django's internal identifier."""

    class Currency(models.TextChoices):
        USDT = "USDT", "USDT"
        BTC = "BTC", "BTC"

    valuation_currency = models.CharField(max_length=4, choices=Currency.choices, default=Currency.USDT)
    # None: the site's default (BALANCE_REFRESH_SECONDS).
    refresh_minutes = models.PositiveSmallIntegerField(null=True, blank=True)

    @property
    def refresh_seconds(self) -> int:
        return self.refresh_minutes * 60 if self.refresh_minutes else settings.BALANCE_REFRESH_SECONDS


class SecurityEvent(models.Model):
    """What the user sees in their security log: sign-ins, 2FA changes, keys added, replaced,
    removed. Never holds a secret."""

    class Kind(models.TextChoices):
        LOGIN = "login", "Signed in"
        LOGIN_FAILED = "login_failed", "Failed sign-in"
        LOGOUT = "logout", "Signed out"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        PASSWORD_RESET = "password_reset", "Password reset"
        EMAIL_CHANGED = "email_changed", "Email changed"
        MFA_ENABLED = "mfa_enabled", "Two-factor authentication turned on"
        MFA_DISABLED = "mfa_disabled", "Two-factor authentication turned off"
        RECOVERY_CODES = "recovery_codes", "Recovery codes regenerated"
        SESSIONS_ENDED = "sessions_ended", "Other sessions signed out"
        KEY_ADDED = "key_added", "API key added"
        KEY_REPLACED = "key_replaced", "API key replaced"
        KEY_REMOVED = "key_removed", "API key removed"
        SETTINGS_CHANGED = "settings_changed", "Settings changed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="security_events"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    detail = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()}"
