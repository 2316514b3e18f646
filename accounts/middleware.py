from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LOGIN_AT = "accounts.login_at"


class SessionLimitsMiddleware:
    """Ends a session 12 hours (SESSION_ABSOLUTE_SECONDS) after login, however active it is.
    The idle limit is the session cookie's age, renewed by each request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            started = request.session.get(LOGIN_AT)
            if started is None:
                request.session[LOGIN_AT] = time.time()
            elif time.time() - started > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
        return self.get_response(request)
