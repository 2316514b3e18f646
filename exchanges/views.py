from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache, wraps

from allauth.account.decorators import reauthentication_required

# Internal to allauth (pinned in requirements): the same test its decorator uses.
from allauth.account.internal.flows.reauthentication import is_reauthentication_required
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.context_processors import csrf
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import charts, connect_limit, export, formatting, registry, row_cache, selectors, services
from .explain import explain
from .forms import ConnectionForm, RenameForm, ReplaceKeysForm
from .models import Status

MODAL_BODY = "modal-body"


def _mfa_enabled(request: HttpRequest) -> bool:
    return is_mfa_enabled(request.user)


def sensitive_action(view):
    """With two-factor authentication on, replacing keys or removing a connection needs a fresh
    TOTP code or password (allauth's re-authentication, valid for a few minutes). The form is
    guarded on GET; a POST that arrives after the window is not stashed for replay (it may
    carry a secret) but sent back to the form, which asks again."""
    guarded = reauthentication_required(view, enabled=_mfa_enabled)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if (
            request.method == "POST"
            and _mfa_enabled(request)
            and is_reauthentication_required(request, app="")
        ):
            return redirect(request.path)
        return (
            guarded(request, *args, **kwargs) if request.method == "GET" else view(request, *args, **kwargs)
        )

    return wrapper


def _connect_limit_reached(request: HttpRequest, form) -> bool:
    """Each key submitted (new or a replacement) costs one of the user's and the address's
    attempts (exchanges.connect_limit); a refusal says on the form when the next is allowed."""
    refusal = connect_limit.consume(request)
    if refusal is not None:
        form.add_error(None, refusal.message())
    return refusal is not None


def _holding_columns(unit: str) -> list[tuple[str, str, bool]]:
    """(sort key, heading, numeric) of the holdings table, in the unit shown first; keys are
    selectors.HOLDING_SORTS (a BTC value is the USDT one at one price: same order)."""
    other = formatting.USDT if unit == formatting.BTC else formatting.BTC
    return [
        ("asset", "Asset", False),
        ("account", "Account", False),
        ("available", "Available", True),
        ("in_orders", "In orders", True),
        ("total", "Total", True),
        ("price", f"Price ({unit})", True),
        ("value", f"Value ({unit})", True),
        ("", f"Value ({other})", True),
        ("", "Share", True),
    ]


def _message(text: str, **events) -> str:
    """HX-Trigger events with a message for the page's status region (static/js/app.js); the
    text is shown at once and never queued for the next page (ASCII-escaped JSON)."""
    return json.dumps({"showMessage": {"text": text}, **events})


def _stale_after(request: HttpRequest) -> timedelta:
    """A balance older than twice the user's refresh interval is badged "Stale"."""
    return timedelta(seconds=2 * request.user.refresh_seconds)


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


def _allocation_chart(slices: list[tuple[str, Decimal]]) -> dict:
    """The allocation table and donut, drawn once per set of slices (charts' output is a pure
    function of them). Keyed by each value's exact text, so 2 and 2.0 are two drawings."""
    return _drawn_allocation(tuple((label, str(value)) for label, value in slices))


@lru_cache(maxsize=512)
def _drawn_allocation(slices: tuple[tuple[str, str], ...]) -> dict:
    exact = [(label, Decimal(value)) for label, value in slices]
    return {
        "allocation": tuple(charts.allocation_rows(exact)),
        "allocation_svg": charts.allocation_donut(exact, id_prefix="allocation"),
    }


@login_required
@require_GET
def connection_list(request: HttpRequest) -> HttpResponse:
    portfolio = selectors.portfolio_for_user(request.user)
    statuses = {c.status for c in portfolio.connections}
    by = "exchange" if request.GET.get("by") == "exchange" else "asset"
    slices = portfolio.by_exchange if by == "exchange" else portfolio.allocation
    in_btc = portfolio.by_exchange_btc if by == "exchange" else portfolio.allocation_btc
    unit = formatting.unit_for(request.user, in_btc)
    if unit == formatting.BTC:
        slices = in_btc
    # The list itself polls slowly while a key is being retried; rows in flight poll themselves.
    context = {
        "portfolio": portfolio,
        "connections": portfolio.connections,
        "poll": "10s" if Status.TEMPORARY in statuses else "",
        "allocation_by": by,
        "allocation_unit": unit,
        **_allocation_chart(slices),
        "stale_after": _stale_after(request),
        "venues": registry.venues(),
    }
    template = "exchanges/connection_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#connection-list"
    return render(request, template, context)


@login_required
@require_GET
def connection_row(request: HttpRequest, pk: int) -> HttpResponse:
    return _row_response(request, selectors.connection_get_for_user(request.user, pk))


def _row_response(request: HttpRequest, connection, notice: str = "") -> HttpResponse:
    """One row, polled while it is verifying, refreshing or checking a new key; answers 286
    (htmx: stop polling) once settled, and tells the list to refresh its totals."""
    html = row_cache.render_rows(
        [selectors.with_share(connection)],
        request=request,
        user=request.user,
        stale_after=_stale_after(request),
        csrf_token=csrf(request)["csrf_token"],
        notice=notice,
    )
    response = HttpResponse(html)
    # A notice (e.g. "refresh again in 20 s") must stay on screen: no list reload with it.
    if connection.settled and not notice:
        response.status_code = 286
        response["HX-Trigger"] = "connectionChanged"
    return response


@login_required
@require_GET
def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    sort = request.GET.get("sort", "value")
    descending = request.GET.get("dir", "desc") != "asc"
    unit = formatting.unit_for(request.user, connection.total_btc)
    history = selectors.history_for(connection, unit=unit)
    context = {
        "c": connection,
        "unit": unit,
        "holding_columns": _holding_columns(unit),
        "holdings": selectors.holdings_for(connection, sort=sort, descending=descending),
        "sort": sort,
        "descending": descending,
        "history_svg": charts.history_line(
            history, id_prefix="history", title=f"Total value over time ({unit})", unit=unit
        ),
        "timeline": selectors.timeline_for(connection, page=request.GET.get("page")),
        "stale_after": _stale_after(request),
    }
    return render(request, "exchanges/connection_detail.html", context)


@login_required
@require_GET
def connection_holdings_csv(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    holdings = selectors.holdings_for(connection, sort="asset", descending=False)
    response = HttpResponse(export.holdings_csv(connection, holdings), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export.filename(connection, holdings)}"'
    return response


@login_required
@require_POST
def connection_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    notice = ""
    try:
        services.connection_refresh_now(connection=connection)
    except services.RefreshTooSoonError as error:
        notice = f"Balances were read moments ago; refresh again in {error.seconds_left} s."
    except services.NoKeyError:
        notice = "There is no key to refresh with: replace the key."
    if request.htmx:
        return _row_response(request, selectors.connection_get_for_user(request.user, pk), notice)
    if notice:
        messages.info(request, f"{connection.display_name}: {notice}")
    return redirect("exchanges:connection-list")


def _close_and_refresh() -> HttpResponse:
    return HttpResponse(headers={"HX-Trigger": json.dumps({"connectionChanged": True, "closeModal": True})})


@login_required
@require_http_methods(["GET", "POST"])
def connection_rename(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    form = RenameForm(request.POST or None, initial={"label": connection.label})
    if request.method == "POST" and form.is_valid():
        services.connection_rename(connection=connection, label=form.cleaned_data["label"])
        return _close_and_refresh() if request.htmx else redirect("exchanges:connection-list")
    return _render_modal(request, "exchanges/connection_rename_modal.html", {"c": connection, "form": form})


@sensitive_post_parameters("access_key", "secret_key", "passphrase")
@login_required
@require_http_methods(["GET", "POST"])
@sensitive_action
def connection_replace(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    form = ReplaceKeysForm(
        request.POST or None, venue=connection.venue, owner=request.user, replacing=connection
    )
    if request.method == "POST" and form.is_valid() and not _connect_limit_reached(request, form):
        services.connection_replace_keys(connection=connection, **form.credentials)
        if not request.htmx:
            return redirect("exchanges:connection-replacement", pk=pk)
        return _replacement_response(request, selectors.connection_get_for_user(request.user, pk))
    return _render_modal(request, "exchanges/connection_replace_modal.html", {"c": connection, "form": form})


@login_required
@require_GET
def connection_replacement(request: HttpRequest, pk: int) -> HttpResponse:
    """Progress of a key replacement: polled in the dialog, self-refreshing page without JS."""
    connection = selectors.connection_get_for_user(request.user, pk)
    if not connection.replacing and not connection.replacement_error and not request.htmx:
        messages.success(request, f"The key of {connection.display_name} was replaced.")
        return redirect("exchanges:connection-list")
    return _replacement_response(request, connection)


def _replacement_response(request: HttpRequest, connection) -> HttpResponse:
    done = not connection.replacing
    context = {
        "c": connection,
        "done": done,
        "form": ReplaceKeysForm(venue=connection.venue, replacing=connection)
        if done and connection.replacement_error
        else None,
        "poll_url": reverse("exchanges:connection-replacement", args=[connection.pk]),
    }
    response = _render_modal(request, "exchanges/connection_replacement_modal.html", context)
    if request.htmx and done and connection.replacement_error:
        response["HX-Trigger"] = json.dumps({"connectionChanged": True})
    elif request.htmx and done:
        text = (
            f"{formatting.connection_title(connection)}: the new key was accepted and is in use "
            f"(API key {connection.masked_access_key}). The old secret was destroyed."
        )
        response["HX-Trigger"] = _message(text, connectionChanged=True, closeModal=True)
    return response


@login_required
@require_POST
def connection_replacement_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    """Put away the notice of a refused replacement key (the current key never changed)."""
    connection = selectors.connection_get_for_user(request.user, pk)
    services.connection_replacement_notice_dismiss(connection=connection)
    if request.htmx:
        return _row_response(request, selectors.connection_get_for_user(request.user, pk))
    return redirect("exchanges:connection-list")


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_action
def connection_remove(request: HttpRequest, pk: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(request.user, pk)
    if request.method == "POST":
        name = f"{connection.display_name} ({connection.masked_access_key})"
        services.connection_remove(connection=connection)
        text = (
            f"{name} was removed, with its key. You can also delete the key on "
            f"{connection.venue.name}'s API Management page."
        )
        if request.htmx:
            events = _message(text, connectionChanged=True, closeModal=True)
            return HttpResponse(headers={"HX-Trigger": events})
        messages.success(request, text)
        return redirect("exchanges:connection-list")
    return _render_modal(request, "exchanges/connection_remove_modal.html", {"c": connection})


@require_GET
def help_api_key(request: HttpRequest, venue_id: str) -> HttpResponse:
    """Readable before signing up: nothing in it depends on who asks (the egress IPs are the
    server's, the same for everyone); only its closing links differ for a visitor."""
    venue = registry.get_or_404(venue_id)
    server = selectors.server_addresses(venue.id)
    # egress_ips: the addresses to bind a key to, configured or seen by exchanges.
    context = {"venue": venue, "egress_ips": server.addresses, "server_ips": server}
    return render(request, venue.help_template, context)


@login_required
@require_GET
def connection_add(request: HttpRequest) -> HttpResponse:
    return _render_modal(request, "exchanges/connection_add_modal.html", {"venues": registry.venues()})


@sensitive_post_parameters("access_key", "secret_key", "passphrase")
@login_required
@require_http_methods(["GET", "POST"])
def connection_add_venue(request: HttpRequest, venue_id: str) -> HttpResponse:
    venue = registry.get_or_404(venue_id)
    form = ConnectionForm(request.POST or None, venue=venue, owner=request.user)
    context = {"form": form, "venue": venue}
    if request.method == "POST" and form.is_valid() and not _connect_limit_reached(request, form):
        connection = services.connection_create(
            owner=request.user, exchange=venue.id, label=form.cleaned_data["label"], **form.credentials
        )
        if not request.htmx:
            return redirect("exchanges:connection-verification", pk=connection.pk)
        # Read again: sending the check (after commit) marks it queued when the broker is down.
        response = _verification_response(
            request, selectors.connection_get_for_user(request.user, connection.pk)
        )
        response["HX-Trigger"] = "connectionChanged"
        return response
    return _render_modal(request, "exchanges/connection_venue_modal.html", context)


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
        # The key connected meanwhile (a stale row): nothing to dismiss; show the list as it is.
        if not request.htmx:
            messages.info(request, f"{connection.display_name} is connected now; use Remove to delete it.")
    if request.htmx:
        return HttpResponse(headers={"HX-Trigger": "connectionChanged"})
    return redirect("exchanges:connection-list")


def _verification_poll_delay(connection) -> str:
    """A worker usually checks a key in well under a second: look again soon at first, then
    every second, and every 5 s while the exchange is being retried or no worker has the key yet."""
    if connection.status == Status.TEMPORARY or connection.awaiting_worker:
        return "5s"
    if timezone.now() - connection.updated_at < timedelta(seconds=3):
        return "250ms"
    return "1s"


def _verification_response(request: HttpRequest, connection) -> HttpResponse:
    done = connection.status not in (Status.VERIFYING, Status.TEMPORARY)
    context = {
        "connection": connection,
        "explanation": explain(
            connection.status, connection.error_kind, connection.error_detail, venue=connection.venue
        ),
        "done": done,
        "venue": connection.venue,
        # A key that works (trading expired still reads) needs no second try.
        "form": None
        if not done or connection.status in (Status.CONNECTED, Status.TRADING_EXPIRED)
        else ConnectionForm(
            venue=connection.venue, initial={"label": connection.label, "site": connection.site}
        ),
        "poll_url": reverse("exchanges:connection-verification", args=[connection.pk]),
        "poll_delay": _verification_poll_delay(connection),
    }
    response = _render_modal(request, "exchanges/connection_verification_modal.html", context)
    if request.htmx and done and connection.status == Status.CONNECTED:
        text = f"{formatting.connection_title(connection)} connected."
        if connection.total_usdt is not None:
            unit = formatting.unit_for(request.user, connection.total_btc)
            balance = formatting.money(connection.total_usdt, connection.total_btc, unit)
            text += f" Trading balance {balance}."
        response["HX-Trigger"] = _message(text, connectionChanged=True, closeModal=True)
    elif request.htmx and done:
        response["HX-Trigger"] = json.dumps({"connectionChanged": True})
    return response
