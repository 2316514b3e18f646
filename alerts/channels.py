"""How an alert is sent on each channel: an email (one alert, or a digest of several), a JSON
webhook or a Telegram message. Each send either returns or raises ``SendError`` with a reason a
user can read; none of them puts a secret (a bot token, a webhook secret) into a message or an
error."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from collections.abc import Sequence
from urllib.parse import urljoin

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse

from . import safe_http
from .models import Alert, AlertSettings, Delivery

UNSUBSCRIBE_SALT = "alerts.unsubscribe"


class SendError(Exception):
    """Not delivered this time; the message is shown to the user and kept on the delivery."""


def absolute(path: str) -> str:
    return urljoin(settings.SITE_URL.rstrip("/") + "/", path.lstrip("/"))


def unsubscribe_token(user) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(user.pk))


def user_id_from_token(token: str) -> int | None:
    try:
        return int(signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None


def unsubscribe_url(user) -> str:
    return absolute(reverse("alerts:unsubscribe", args=[unsubscribe_token(user)]))


# --- Email ----------------------------------------------------------------------------------


def _message_id(key: str) -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
    return f"<alert-{key}@{domain}>"


def email(user, address: str, alerts: Sequence[Alert], key: str) -> None:
    """One alert, or a digest of several, to ``address``; ``key`` is its Message-ID."""
    context = {
        "alerts": [(alert, absolute(alert.link) if alert.link else "") for alert in alerts],
        "digest": len(alerts) > 1,
        "site_name": settings.SITE_NAME,
        "settings_url": absolute(reverse("alerts:settings")),
        "unsubscribe_url": unsubscribe_url(user),
    }
    if len(alerts) == 1:
        subject = f"[{settings.SITE_NAME}] {alerts[0].title}"
    else:
        subject = f"[{settings.SITE_NAME}] {len(alerts)} alerts about your exchange keys"
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # a label is the user's text: never a header break
        body=render_to_string("alerts/email/alert.txt", context),
        to=[address],
        headers={
            "Message-ID": _message_id(key),
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(render_to_string("alerts/email/alert.html", context), "text/html")
    try:
        connection = get_connection(timeout=settings.ALERT_SMTP_TIMEOUT)
        connection.send_messages([message])
    except (smtplib.SMTPException, OSError) as error:
        raise SendError(
            f"The mail server refused or could not be reached ({type(error).__name__})."
        ) from None


# --- Webhooks -------------------------------------------------------------------------------


def webhook_body(alert: Alert, delivery_key: str) -> dict:
    connection = alert.connection
    return {
        "id": delivery_key,
        "type": alert.kind,
        "created_at": alert.created_at.isoformat(),
        "title": alert.title,
        "message": alert.happened,
        "fix": alert.fix,
        "url": absolute(alert.link) if alert.link else None,
        "connection": {
            "id": connection.pk,
            "exchange": connection.exchange,
            "exchange_name": connection.exchange_name,
            "label": connection.label,
            "api_key": connection.masked_access_key,
            "status": connection.status,
        }
        if connection
        else {"id": None, "exchange_name": alert.exchange_name, "name": alert.connection_name},
    }


def _raise_for(answer: safe_http.Answer, what: str) -> None:
    if 300 <= answer.status < 400:
        raise SendError(f"{what} answered with a redirect ({answer.status}); redirects are not followed.")
    if answer.status >= 400:
        raise SendError(f"{what} answered HTTP {answer.status}.")


def _post(
    url: str, body: bytes, headers: dict[str, str], what: str, *, trusted: bool = False
) -> safe_http.Answer:
    try:
        return safe_http.post(url, body, headers, trusted=trusted)
    except (safe_http.UnsafeUrlError, safe_http.WebhookError) as error:
        raise SendError(str(error)) from None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def json_webhook(prefs: AlertSettings, alert: Alert, delivery_key: str) -> None:
    body = json.dumps(webhook_body(alert, delivery_key), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"{settings.SITE_NAME} alerts",
        "Idempotency-Key": delivery_key,
        "X-Alert-Signature": signature(prefs.webhook_secret, body),
    }
    _raise_for(_post(prefs.webhook_url, body, headers, "The webhook"), "The webhook")


def telegram_text(alert: Alert) -> str:
    lines = [alert.title, "", alert.happened]
    if alert.fix:
        lines += ["", f"What to do: {alert.fix}"]
    if alert.link:
        lines += ["", absolute(alert.link)]
    return "\n".join(lines)


def telegram(prefs: AlertSettings, alert: Alert) -> None:
    """The Bot API's sendMessage. Its base URL is the operator's (TELEGRAM_API_URL); the bot
    token sits in the path, so no error below ever carries the address."""
    url = f"{settings.TELEGRAM_API_URL.rstrip('/')}/bot{prefs.telegram_bot_token}/sendMessage"
    body = json.dumps(
        {"chat_id": prefs.telegram_chat_id, "text": telegram_text(alert), "disable_web_page_preview": True}
    ).encode()
    try:
        answer = _post(url, body, {"Content-Type": "application/json"}, "Telegram", trusted=True)
    except SendError:
        raise
    except Exception as error:  # whatever it is, its text may hold the address, hence the token
        raise SendError(f"Telegram could not be reached ({type(error).__name__}).") from None
    try:
        said = json.loads(answer.body)
    except ValueError:
        said = {}
    if answer.status == 200 and said.get("ok") is True:
        return
    description = str(said.get("description", ""))[:120] if isinstance(said, dict) else ""
    raise SendError(f"Telegram answered HTTP {answer.status}" + (f": {description}" if description else "."))


def webhook(prefs: AlertSettings, alert: Alert, delivery: Delivery) -> None:
    if prefs.webhook_mode == AlertSettings.WebhookMode.TELEGRAM:
        telegram(prefs, alert)
    elif prefs.webhook_mode == AlertSettings.WebhookMode.JSON and prefs.webhook_url:
        json_webhook(prefs, alert, str(delivery.key))
    else:
        raise SendError("No webhook is set up any more.")
