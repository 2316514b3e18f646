"""Security log entries for what allauth and Django do on the user's behalf."""

from __future__ import annotations

import time

from allauth.account.signals import (
    email_changed,
    password_changed,
    password_reset,
    user_logged_in,
    user_logged_out,
)
from allauth.mfa.signals import authenticator_added, authenticator_removed, authenticator_reset
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from .middleware import ACTIVE_AT, LOGIN_AT
from .models import SecurityEvent
from .services import other_sessions_end, security_log

Kind = SecurityEvent.Kind


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    request.session[LOGIN_AT] = request.session[ACTIVE_AT] = time.time()
    security_log(user=user, kind=Kind.LOGIN, request=request)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        security_log(user=user, kind=Kind.LOGOUT, request=request)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    from .models import User

    email = (credentials or {}).get("email") or (credentials or {}).get("username") or ""
    user = User.objects.filter(email__iexact=email).first() if email else None
    if user is not None:
        security_log(user=user, kind=Kind.LOGIN_FAILED, request=request)


@receiver(password_changed)
def _password_changed(sender, request, user, **kwargs):
    # Django has already invalidated other sessions (the session hash covers the password).
    security_log(user=user, kind=Kind.PASSWORD_CHANGED, request=request)


@receiver(password_reset)
def _password_reset(sender, request, user, **kwargs):
    security_log(user=user, kind=Kind.PASSWORD_RESET, request=request)


@receiver(email_changed)
def _email_changed(sender, request, user, from_email_address, to_email_address, **kwargs):
    security_log(user=user, kind=Kind.EMAIL_CHANGED, request=request, detail=f"now {to_email_address.email}")


@receiver(authenticator_added)
def _mfa_added(sender, request, user, authenticator, **kwargs):
    kind = Kind.RECOVERY_CODES if authenticator.type == "recovery_codes" else Kind.MFA_ENABLED
    security_log(user=user, kind=kind, request=request, detail=authenticator.type)
    other_sessions_end(user=user, request=request)


@receiver(authenticator_removed)
def _mfa_removed(sender, request, user, authenticator, **kwargs):
    security_log(user=user, kind=Kind.MFA_DISABLED, request=request, detail=authenticator.type)
    other_sessions_end(user=user, request=request)


@receiver(authenticator_reset)
def _mfa_reset(sender, request, user, authenticator, **kwargs):
    security_log(user=user, kind=Kind.RECOVERY_CODES, request=request, detail=authenticator.type)
