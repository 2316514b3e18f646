"""What a sweeper has queued, marked in Redis, so a message still waiting in the queue (a wave or a
backlog longer than a sweep) is not sent again at every sweep. The mark goes when its task
starts, and lapses after the broker's visibility timeout, by which time the broker has
redelivered or lost the message; a Redis restart loses marks and messages together, so both are
sent again. Used by the checks' sweeper (exchanges.tasks) and the alerts' (alerts.tasks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import redis
from django.conf import settings

from .venue_state import redis_client


def mark(template: str, ids: list[int]) -> list[int]:
    """The ids not already marked (``template`` formats an id into a key), now marked."""
    ttl = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    pipe = redis_client().pipeline(transaction=False)
    for pk in ids:
        pipe.set(template.format(pk), 1, nx=True, ex=ttl)
    return [pk for pk, fresh in zip(ids, pipe.execute(), strict=True) if fresh]


def unmark(template: str, ids: Iterable[int]) -> None:
    keys = [template.format(pk) for pk in ids]
    if keys:
        with contextlib.suppress(redis.RedisError):  # if Redis is gone, the mark lapses by itself
            redis_client().delete(*keys)
