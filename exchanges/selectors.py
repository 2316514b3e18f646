"""Reads. Pages render from the database only; nothing here calls HTX."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from .models import ExchangeConnection


def connection_get_for_user(user, pk: int) -> ExchangeConnection:
    """The one way views reach a connection: anyone else's gives 404."""
    return get_object_or_404(ExchangeConnection, pk=pk, owner=user)


def connections_for_list(user) -> list[ExchangeConnection]:
    # Totals live on the row, so the list is one query whatever the number of connections.
    return list(ExchangeConnection.objects.for_owner(user).order_by("created_at", "id"))
