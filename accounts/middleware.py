from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LOGIN_AT = "accounts.login_at"
ACTIVE_AT = "accounts.active_at"
TRACKED = "accounts.tracked"  # [digest of session key, IP and browser, when] (UserSessionsMiddleware)
# Session writes happen when something changes, not on every request (SESSION_SAVE_EVERY_REQUEST
# is off): a write per request cost more than the page. The activity stamp, and with it the
# cookie and the server-side expiry, moves at most once a minute, so an idle session ends 29 to
# 30 minutes after the last activity, never later. allauth's record of the session (IP,
# browser, last seen) is likewise written at most once a minute, at once when one changes.
RESOLUTION_SECONDS = 60
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
            elif not _is_poll(request) and (
                now - request.session.get(ACTIVE_AT, started) >= RESOLUTION_SECONDS
                or _expiry_lags(request.session)
            ):
                request.session[ACTIVE_AT] = now  # modified: the session is saved, its expiry renewed
        return self.get_response(request)


def _expiry_lags(session) -> bool:
    """The server-side expiry (accounts.sessions.SessionStore) is more than a minute short of
    where saving now would put it, e.g. after SESSION_COOKIE_AGE was raised."""
    stored = getattr(session, "stored_expiry", None)
    return stored is not None and stored < session.get_expiry_date() - timedelta(seconds=RESOLUTION_SECONDS)


class UserSessionsMiddleware:
    """allauth's UserSessionsMiddleware (USERSESSIONS_TRACK_ACTIVITY: the IP, browser and last
    seen time listed under Settings → Sessions), writing the record at most once a minute per
    session, and at once for a new session key, IP or browser. allauth's own writes it on every
    request: a transaction of two reads and an update, most of the cost of a polled fragment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from allauth.account.adapter import get_adapter
        from allauth.usersessions import app_settings
        from allauth.usersessions.models import UserSession

        session = getattr(request, "session", None)
        if (
            app_settings.TRACK_ACTIVITY
            and session is not None
            and session.session_key
            and hasattr(request, "user")
            and request.user.is_authenticated
        ):
            client = f"{session.session_key}\0{get_adapter().get_client_ip(request)}\0"
            client += request.META.get("HTTP_USER_AGENT", "")
            mark = hashlib.blake2b(client.encode(), digest_size=12).hexdigest()
            now = time.time()
            tracked = session.get(TRACKED)
            if not tracked or tracked[0] != mark or not 0 <= now - tracked[1] < RESOLUTION_SECONDS:
                UserSession.objects.create_from_request(request)
                session[TRACKED] = [mark, now]
        return self.get_response(request)
