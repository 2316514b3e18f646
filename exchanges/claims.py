"""A worker's hold on a connection while it checks it: one conditional UPDATE takes the row,
and the claim's expiry doubles as a token, so a duplicate or late worker never writes twice."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import rows
from .models import ExchangeConnection


def claim(connection_id: int) -> ExchangeConnection | None:
    """Take a connection that needs a check. None when there is nothing to do or another worker
    has it, so a duplicate task message is harmless. Results are only written while it holds."""
    claimed = claim_many([connection_id])
    return claimed[0] if claimed else None


def claim_many(connection_ids: list[int]) -> list[ExchangeConnection]:
    """``claim`` for a batch, in two queries whatever its size: one conditional UPDATE that
    returns the ids it took, one SELECT of those rows. Every row taken carries the same token;
    a row another worker holds (a duplicate message) is left to it."""
    if not connection_ids:
        return []
    now = timezone.now()
    token = now + timedelta(seconds=settings.CHECK_CLAIM_SECONDS)
    due = ExchangeConnection.objects.unclaimed(now).needing_check(now).filter(pk__in=connection_ids)
    taken = rows.update_returning_pks(due, claimed_until=token)
    if not taken:
        return []
    claimed = list(ExchangeConnection.objects.select_related("owner").filter(pk__in=taken).order_by("pk"))
    for connection in claimed:
        connection.claimed_until = token  # exactly as we wrote it, whatever the DB's precision
        # Not a field: the last "Refresh now" this check covers. A later one, seen when the
        # result is written, makes the next check due at once. Comparing values rather than
        # times means the web's and the worker's clocks never need to agree.
        connection.refresh_seen = connection.refresh_requested_at
    return claimed


def still_ours(connection: ExchangeConnection) -> bool:
    """Inside a transaction: lock the row and check our claim was not taken over meanwhile.
    Also picks up a "Refresh now" the user asked for during the check."""
    return bool(still_ours_many([connection]))


def still_ours_many(connections_: list[ExchangeConnection]) -> list[ExchangeConnection]:
    """``still_ours`` for rows claimed together, in one query: the rows whose claim holds,
    locked, each with the "Refresh now" it has now."""
    if not connections_:
        return []
    by_pk = {connection.pk: connection for connection in connections_}
    tokens = {connection.claimed_until for connection in connections_}
    locked = (
        ExchangeConnection.objects.select_for_update()
        .filter(pk__in=by_pk, claimed_until__in=tokens)
        .order_by("pk")
        .values_list("pk", "claimed_until", "refresh_requested_at")
    )
    ours = []
    for pk, token, requested in locked:
        connection = by_pk[pk]
        if token == connection.claimed_until:
            connection.refresh_requested_at = requested
            ours.append(connection)
    return ours


def release(connection: ExchangeConnection) -> None:
    """Give up our claim without writing a result, so the next check can take the row."""
    ExchangeConnection.objects.filter(pk=connection.pk, claimed_until=connection.claimed_until).update(
        claimed_until=None
    )


def later(seconds: float) -> datetime:
    # Jitter so keys connected together do not all hit the venue in the same second.
    return timezone.now() + timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def next_check(connection: ExchangeConnection, seconds: float) -> datetime:
    """When to check again; at once if the user asked for a refresh while this check ran."""
    seen = getattr(connection, "refresh_seen", connection.refresh_requested_at)
    if connection.refresh_requested_at != seen:
        return timezone.now()
    return later(seconds)
