from __future__ import annotations

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from . import services
from .forms import DeleteAccountForm, SettingsForm


@login_required
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = SettingsForm(
        request.POST or None,
        initial={
            "valuation_currency": user.valuation_currency,
            "refresh_minutes": user.refresh_minutes or "",
        },
    )
    if request.method == "POST" and form.is_valid():
        services.user_update_settings(user=user, request=request, **form.cleaned_data)
        messages.success(request, "Settings saved.")
        return redirect("accounts:settings")
    return render(request, "accounts/settings.html", {"form": form})


@login_required
@require_GET
def security_log(request: HttpRequest) -> HttpResponse:
    page = Paginator(request.user.security_events.all(), 25).get_page(request.GET.get("page"))
    return render(request, "accounts/security_log.html", {"page": page})


@login_required
@reauthentication_required
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    form = DeleteAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.user_delete(user=request.user, request=request)
        messages.success(request, "Your account and every stored API key were deleted.")
        return redirect("home")
    return render(request, "accounts/delete.html", {"form": form})
