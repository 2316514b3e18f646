from __future__ import annotations

import re

from django import forms
from django.conf import settings

from . import safe_http
from .models import AlertSettings

TELEGRAM_TOKEN = re.compile(r"^\d{3,12}:[A-Za-z0-9_-]{30,50}$")
TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")


class AlertSettingsForm(forms.ModelForm):
    telegram_bot_token = forms.CharField(
        label="Bot token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="From @BotFather, like 123456789:AA… Stored encrypted; leave empty to keep the saved one.",
    )

    class Meta:
        model = AlertSettings
        fields = [
            "on_expiry",
            "expiry_days",
            "on_failing",
            "failing_minutes",
            "on_security",
            "email_enabled",
            "email_mode",
            "webhook_mode",
            "webhook_url",
            "telegram_chat_id",
        ]
        labels = {
            "on_expiry": "A key is about to expire or be deleted by the exchange",
            "expiry_days": "Days before",
            "on_failing": "A connection has been refused for a while, and when it works again",
            "failing_minutes": "After (minutes)",
            "on_security": "Security: a key refused because it can withdraw, a key replaced, "
            "a connection removed",
            "email_enabled": "Email alerts",
            "email_mode": "Send",
            "webhook_mode": "Webhook",
            "webhook_url": "Webhook address",
            "telegram_chat_id": "Chat id",
        }
        help_texts = {
            "expiry_days": "Comma-separated, e.g. 7, 1.",
            "failing_minutes": "Invalid, IP not allowed, Incorrect permissions, Expired or Trading expired "
            "for this long. 0: at once.",
            "webhook_url": "https:// only. Receives a JSON POST signed with the secret below.",
            "telegram_chat_id": "Your chat's numeric id, or @channelname for a channel the bot posts in.",
        }
        widgets = {
            "email_mode": forms.RadioSelect,
            "webhook_url": forms.URLInput(attrs={"placeholder": "https://example.com/hooks/alerts"}),
            "failing_minutes": forms.NumberInput(attrs={"min": 0, "max": 10080}),
        }

    field_order = ["webhook_mode", "webhook_url", "telegram_bot_token", "telegram_chat_id"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email_mode"].choices = [
            (AlertSettings.EmailMode.EACH, "One email per alert"),
            (
                AlertSettings.EmailMode.DIGEST,
                f"A daily digest at {settings.ALERT_DIGEST_HOUR:02d}:00 UTC "
                "(security alerts are always sent at once)",
            ),
        ]

    def clean_expiry_days(self) -> str:
        raw = self.cleaned_data["expiry_days"]
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        most = settings.ALERT_EXPIRY_MAX_DAYS
        if not parts or any(not p.isdigit() or not 1 <= int(p) <= most for p in parts):
            raise forms.ValidationError(f"Enter whole days from 1 to {most}, separated by commas, e.g. 7, 1.")
        if len(parts) > 4:
            raise forms.ValidationError("At most four reminders.")
        return ",".join(str(d) for d in sorted({int(p) for p in parts}, reverse=True))

    def clean_failing_minutes(self) -> int:
        minutes = self.cleaned_data["failing_minutes"]
        if minutes is None or not 0 <= minutes <= 10080:
            raise forms.ValidationError("Enter minutes from 0 to 10080 (a week).")
        return minutes

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"].strip()
        if url:
            try:
                safe_http.check(url)
            except (safe_http.UnsafeUrlError, safe_http.WebhookError) as error:
                raise forms.ValidationError(str(error)) from None
        return url

    def clean(self):
        data = super().clean()
        mode = data.get("webhook_mode")
        if (
            mode == AlertSettings.WebhookMode.JSON
            and not data.get("webhook_url")
            and "webhook_url" not in self.errors
        ):
            self.add_error("webhook_url", "Enter the address that should receive the alerts.")
        if mode == AlertSettings.WebhookMode.TELEGRAM:
            token = data.get("telegram_bot_token", "")
            if token and not TELEGRAM_TOKEN.match(token):
                self.add_error(
                    "telegram_bot_token",
                    "A bot token looks like 123456789:AAE… (digits, a colon, then letters).",
                )
            elif not token and not self.instance.telegram_bot_token:
                self.add_error("telegram_bot_token", "Enter the bot's token from @BotFather.")
            chat = data.get("telegram_chat_id", "").strip()
            if not TELEGRAM_CHAT.match(chat):
                self.add_error(
                    "telegram_chat_id", "Enter the chat's numeric id (e.g. 123456789) or @channelname."
                )
        return data

    def save(self, commit: bool = True) -> AlertSettings:
        prefs = super().save(commit=False)
        token = self.cleaned_data.get("telegram_bot_token")
        if token:
            prefs.telegram_bot_token = token
        if commit:
            prefs.save()
        return prefs
