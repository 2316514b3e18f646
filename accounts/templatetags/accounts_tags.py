from __future__ import annotations

from django import template

from accounts import user_agents

register = template.Library()


@register.filter
def device_name(user_agent: str | None) -> str:
    """ "Chrome 131 on Linux" from a User-Agent header."""
    return user_agents.describe(user_agent)


@register.simple_tag
def unverified_email(user):
    """The user's first email address still waiting for verification, or None. Two-factor
    authentication cannot be turned on until every address is verified."""
    from allauth.account.models import EmailAddress
    from allauth.mfa import app_settings

    if app_settings.ALLOW_UNVERIFIED_EMAIL or not getattr(user, "is_authenticated", False):
        return None
    return EmailAddress.objects.filter(user=user, verified=False).order_by("-primary", "email").first()


@register.filter
def current_first(sessions):
    """allauth's sessions with this browser's own first."""
    return sorted(sessions, key=lambda session: not session.is_current())
