from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services
from .explain import explain
from .forms import HtxConnectionForm
from .models import Exchange, Status

MODAL_BODY = "modal-body"


def _render_modal(request: HttpRequest, template: str, context: dict, **kwargs) -> HttpResponse:
    """One template serves three ways: a whole page without JS, a <dialog> when htmx opens
    it, and just the dialog's content when a step inside the open dialog asks for the next."""
    # in_modal: only then do links and forms carry hx-* attributes aimed at #modal-body; on a
    # full page they stay plain links and posts (JS on or off).
    if request.htmx and request.htmx.target == MODAL_BODY:
        return render(request, f"{template}#content", {**context, "in_modal": True}, **kwargs)
    base = "_modal.html" if request.htmx else "_base.html"
    return render(
        request, template, {**context, "base_template": base, "in_modal": bool(request.htmx)}, **kwargs
    )


@login_required
@require_GET
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = selectors.connections_for_list(request.user)
    statuses = {c.status for c in connections}
    # Poll only while something is pending: quickly while verifying, slowly while retrying.
    poll = "2s" if Status.VERIFYING in statuses else "10s" if Status.TEMPORARY in statuses else ""
    context = {"connections": connections, "poll": poll}
    template = "exchanges/connection_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#connection-list"
    return render(request, template, context)


@login_required
@require_GET
def connection_add(request: HttpRequest) -> HttpResponse:
    return _render_modal(request, "exchanges/connection_add_modal.html", {"exchanges": Exchange})


@sensitive_post_parameters("access_key", "secret_key")
@login_required
@require_http_methods(["GET", "POST"])
def connection_add_htx(request: HttpRequest) -> HttpResponse:
    form = HtxConnectionForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.connection_create(
                owner=request.user, exchange=Exchange.HTX, **form.cleaned_data
            )
        except services.DuplicateKeyError:
            form.add_error("access_key", "This API key was connected a moment ago. Refresh My Exchanges.")
            return _render_modal(request, "exchanges/connection_htx_modal.html", {"form": form})
        if not request.htmx:
            return redirect("exchanges:connection-verification", pk=connection.pk)
        response = _verification_response(request, connection)
        response["HX-Trigger"] = "connectionChanged"
        return response
    return _render_modal(request, "exchanges/connection_htx_modal.html", {"form": form})


@login_required
@require_GET
def connection_verification(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    if connection.status == Status.CONNECTED and not request.htmx:
        messages.success(request, f"{connection.display_name} is connected.")
        return redirect("exchanges:connection-list")
    return _verification_response(request, connection)


@login_required
@require_POST
def connection_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    """Remove a failed attempt, or give up on a first attempt still being retried."""
    connection = selectors.connection_get_for_user(request.user, pk)
    try:
        services.connection_dismiss(connection=connection)
    except services.ConnectionInUseError:
        return HttpResponse("A working connection cannot be dismissed.", status=409)
    if request.htmx:
        return HttpResponse(headers={"HX-Trigger": "connectionChanged"})
    return redirect("exchanges:connection-list")


def _verification_response(request: HttpRequest, connection) -> HttpResponse:
    done = connection.status not in (Status.VERIFYING, Status.TEMPORARY)
    context = {
        "connection": connection,
        "explanation": explain(connection.status, connection.error_kind, connection.error_detail),
        "done": done,
        "form": None
        if not done or connection.status == Status.CONNECTED
        else HtxConnectionForm(initial={"label": connection.label}),
        "poll_url": reverse("exchanges:connection-verification", args=[connection.pk]),
    }
    response = _render_modal(request, "exchanges/connection_verification_modal.html", context)
    if request.htmx and done:
        events = {"connectionChanged": True}
        if connection.status == Status.CONNECTED:
            events["closeModal"] = True
        response["HX-Trigger"] = json.dumps(events)
    return response
