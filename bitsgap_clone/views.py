from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views import defaults
from redis import RedisError

# Seconds a visitor is asked to wait while the database or Redis is unreachable (Retry-After).
DATABASE_RETRY_AFTER = 30


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("exchanges:connection-list")
    return render(request, "home.html")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. A database or Redis that cannot be reached (restarting, failing over) is not
    a bug of ours: the visitor gets a calm 503 page with Retry-After instead of "Server Error (500)".

    Rendered without the request, so no context processor, session or user lookup touches the
    database that just failed; it also serves failures raised inside the session and
    authentication middlewares. Every other error keeps Django's 500 page.
    """
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError | RedisError):
        body = render_to_string("503.html", {"retry_after": DATABASE_RETRY_AFTER})
        response = HttpResponse(body, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        response["Cache-Control"] = "no-store"
        return response
    return defaults.server_error(request)
