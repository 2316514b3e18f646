"""Reads. Pages render from the database only; nothing here calls HTX."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import ExchangeConnection, Status

# Decrypting is for the HTX client only: pages never load key material.
_KEY_FIELDS = ("access_key", "secret_key")


def connection_get_for_user(user, pk: int) -> ExchangeConnection:
    """The one way views reach a connection: anyone else's gives 404."""
    return get_object_or_404(ExchangeConnection.objects.defer(*_KEY_FIELDS), pk=pk, owner=user)


def connections_for_list(user) -> list[ExchangeConnection]:
    # Totals live on the row, so the list is one query whatever the number of connections.
    return list(ExchangeConnection.objects.for_owner(user).defer(*_KEY_FIELDS).order_by("created_at", "id"))


def connections_due_for_check() -> list[int]:
    """Ids to queue: connections due for their next check, and submissions nobody picked up
    (a lost message, a dead worker, a Redis restarted without persistence)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VERIFY_STALE_SECONDS)
    return list(
        ExchangeConnection.objects.unclaimed(now)
        .needing_check(now)
        .filter(~Q(status=Status.VERIFYING) | Q(updated_at__lt=stale))
        .values_list("pk", flat=True)
    )
