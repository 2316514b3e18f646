from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import services
from .channels import user_id_from_token
from .forms import AlertSettingsForm
from .models import Delivery
from .outbox import alert_address, settings_for

RECENT_ALERTS = 20


@login_required
@require_http_methods(["GET", "POST"])
def alert_settings(request: HttpRequest) -> HttpResponse:
    prefs = settings_for(request.user)
    form = AlertSettingsForm(request.POST or None, instance=prefs)
    if request.method == "POST" and form.is_valid():
        services.settings_save(form=form, request=request)
        messages.success(request, "Alert settings saved.")
        return redirect("alerts:settings")
    recent = request.user.alerts.prefetch_related("deliveries")[:RECENT_ALERTS]
    return render(
        request,
        "alerts/settings.html",
        {"form": form, "prefs": prefs, "address": alert_address(request.user), "recent": recent},
    )


@login_required
@require_POST
def alert_test(request: HttpRequest, channel: str) -> HttpResponse:
    prefs = settings_for(request.user)
    if channel == Delivery.Channel.EMAIL:
        problem = "" if alert_address(request.user) else "Verify your email address first."
    elif channel == Delivery.Channel.WEBHOOK:
        problem = "" if prefs.webhook_on else "Set up and save a webhook first."
    else:
        raise Http404
    if problem:
        return render(request, "alerts/_test_result.html", {"problem": problem, "channel": channel})
    delivery = services.test_send(user=request.user, channel=channel)
    if not request.htmx:
        messages.success(request, "Test alert queued.")
        return redirect("alerts:settings")
    return render(request, "alerts/_test_result.html", {"delivery": delivery, "channel": channel})


@login_required
@require_GET
def alert_test_result(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk, alert__user=request.user)
    return render(request, "alerts/_test_result.html", {"delivery": delivery, "channel": delivery.channel})


@csrf_exempt  # the signed token is the proof; mail clients POST here (RFC 8058) with no cookie
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    user_id = user_id_from_token(token)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first() if user_id else None
    if user is None:
        return render(request, "alerts/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        services.email_unsubscribe(user=user, request=request)
        return render(request, "alerts/unsubscribe.html", {"done": True, "address": alert_address(user)})
    return render(request, "alerts/unsubscribe.html", {"address": alert_address(user), "token": token})
