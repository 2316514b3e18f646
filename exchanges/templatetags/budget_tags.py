"""The refresh interval a venue's budget stretches (exchanges.budget), for a connection's row and page."""

from __future__ import annotations

from django import template

from exchanges import budget, registry, selectors
from exchanges.models import ExchangeConnection

register = template.Library()


@register.simple_tag(takes_context=True)
def refresh_interval_note(context, connection: ExchangeConnection) -> budget.IntervalNote | None:
    """The note for a working connection whose venue's budget stretches its refresh interval.
    Reads the sweeper's figures from Redis once per request (every venue in one round trip), so a
    list page asks no more however many rows it has; none, or stale ones, give no note."""
    if connection.status not in selectors.WORKING or not connection.established:
        return None
    request = context.get("request")
    found = getattr(request, "_refresh_stretches", None) if request is not None else None
    if found is None:
        found = budget.stretches([venue.id for venue in registry.venues()])
        if request is not None:
            request._refresh_stretches = found
    stretch = found.get(connection.exchange)
    if stretch is None:
        return None
    user = getattr(request, "user", None)
    owner = user if user is not None and user.pk == connection.owner_id else connection.owner
    return budget.interval_note(stretch, owner.refresh_seconds, registry.name_of(connection.exchange))
