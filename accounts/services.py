"""Writes for accounts. Other apps record security events through ``security_log``."""

from __future__ import annotations

from allauth.account.adapter import get_adapter
from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest

from .models import SecurityEvent, User


def security_log(*, user, kind: str, detail: str = "", request: HttpRequest | None = None) -> SecurityEvent:
    ip = user_agent = None
    if request is not None:
        # The client's address as allauth sees it (through TRUSTED_PROXY_COUNT), not the proxy's.
        ip = get_adapter().get_client_ip(request) or None
        user_agent = request.META.get("HTTP_USER_AGENT", "")[:200]
    return SecurityEvent.objects.create(
        user=user, kind=kind, detail=detail[:200], ip=ip, user_agent=user_agent or ""
    )


def user_update_settings(
    *, user: User, valuation_currency: str, refresh_minutes: int | None, request=None
) -> None:
    user.valuation_currency = valuation_currency
    user.refresh_minutes = refresh_minutes
    user.save(update_fields=["valuation_currency", "refresh_minutes"])
    security_log(
        user=user,
        kind=SecurityEvent.Kind.SETTINGS_CHANGED,
        request=request,
        detail=f"{valuation_currency}, refresh every {refresh_minutes or 'default'} min",
    )


def other_sessions_end(*, user: User, request: HttpRequest) -> int:
    """Sign out every session of this user but the current one."""
    from allauth.usersessions.models import UserSession

    ended = 0
    for session in UserSession.objects.purge_and_list(user):
        if not session.is_current():
            session.end()
            ended += 1
    if ended:
        security_log(
            user=user, kind=SecurityEvent.Kind.SESSIONS_ENDED, detail=f"{ended} ended", request=request
        )
    return ended


@transaction.atomic
def user_delete(*, user: User, request: HttpRequest) -> None:
    """Delete the account and, by cascade in the same transaction, every stored API key and
    secret, balance and log; then end the session."""
    logout(request)  # first: its security-log entry must not outlive the user
    user.delete()
