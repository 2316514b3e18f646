from __future__ import annotations

import re
import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LOGIN_AT = "accounts.login_at"
ACTIVE_AT = "accounts.active_at"
# Elements that poll on their own (htmx sends their id as HX-Trigger): not user activity.
_POLLERS = re.compile(r"^(connection-list|connection-\d+|verification-poll|replacement-poll)$")


def _is_poll(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and bool(_POLLERS.match(htmx.trigger or ""))


class SessionLimitsMiddleware:
    """Ends a session 12 hours (SESSION_ABSOLUTE_SECONDS) after login however active it is, and
    after SESSION_COOKIE_AGE (30 minutes) without user activity. A page left open that polls
    for a pending status keeps its cookie fresh but is not activity, so it does not keep the
    session alive."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            started = request.session.get(LOGIN_AT)
            if started is None:
                request.session[LOGIN_AT] = request.session[ACTIVE_AT] = now
            elif (
                now - started > settings.SESSION_ABSOLUTE_SECONDS
                or now - request.session.get(ACTIVE_AT, started) > settings.SESSION_COOKIE_AGE
            ):
                logout(request)
            elif not _is_poll(request):
                request.session[ACTIVE_AT] = now
        return self.get_response(request)
