"""A worker's hold on a connection while it checks it: one conditional UPDATE takes the row,
and the claim's expiry doubles as a token, so a duplicate or late worker never writes twice."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import ExchangeConnection


def claim(connection_id: int) -> ExchangeConnection | None:
    """Take a connection that needs a check. None when there is nothing to do or another worker
    has it, so a duplicate task message is harmless. Results are only written while it holds."""
    now = timezone.now()
    token = now + timedelta(seconds=settings.CHECK_CLAIM_SECONDS)
    taken = (
        ExchangeConnection.objects.unclaimed(now)
        .needing_check(now)
        .filter(pk=connection_id)
        .update(claimed_until=token)
    )
    if not taken:
        return None
    connection = ExchangeConnection.objects.select_related("owner").get(pk=connection_id)
    connection.claimed_until = token  # exactly as we wrote it, whatever the DB's precision
    # Not a field: the last "Refresh now" this check covers. A later one, seen when the result
    # is written, makes the next check due at once. Comparing values rather than times means the
    # web's and the worker's clocks never need to agree.
    connection.refresh_seen = connection.refresh_requested_at
    return connection


def still_ours(connection: ExchangeConnection) -> bool:
    """Inside a transaction: lock the row and check our claim was not taken over meanwhile.
    Also picks up a "Refresh now" the user asked for during the check."""
    row = (
        ExchangeConnection.objects.select_for_update()
        .filter(pk=connection.pk, claimed_until=connection.claimed_until)
        .values_list("refresh_requested_at")
        .first()
    )
    if row is None:
        return False
    connection.refresh_requested_at = row[0]
    return True


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
