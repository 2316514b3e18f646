"""The limit on API keys tried (ACCOUNT_RATE_LIMITS["connect_key"], env CONNECT_RATE_LIMIT,
10 an hour per account and 30 per IP address by default): every key submitted, new or a
replacement, costs one, so this site cannot be used to test a stolen list of keys against an
exchange. A refusal says exactly when the next key may be tried.

The counts are allauth's rate limits, kept in the cache (Redis): per rate, a list of the hit
times (``time.time()``), newest first, under allauth's cache key (``allauth.core.internal.
ratelimit``, pinned in requirements). A rate of N per period refuses while N hits are younger
than the period, so the next key is allowed once the N-th newest hit is a period old. While
Redis is down the per-account part is counted in the database instead (the keys this account
submitted in the period), and the time is told from those rows the same way.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Internal to allauth (pinned): the rates and cache keys its own consume() uses.
from allauth.core import ratelimit
from allauth.core.internal.ratelimit import Rate, get_cache_key, get_rates
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from redis import RedisError

from .models import ExchangeConnection

logger = logging.getLogger(__name__)

ACTION = "connect_key"
APP = "allauth.account"
# Every refusal says this; the rest of the message says whose limit and until when.
REACHED = "the most we allow, so that nobody can test a stolen list of keys through this site"


@dataclass(frozen=True, slots=True)
class Refusal:
    rate: Rate
    retry_at: datetime | None  # None: the counter was busy (a burst of submissions at once)

    def message(self, now: datetime | None = None) -> str:
        period = _period(self.rate.duration)
        if self.rate.per == "ip":
            who = f"{self.rate.amount} keys were tried from your network address in the last {period}"
        else:
            who = f"You have tried {self.rate.amount} keys from this account in the last {period}"
        return f"{who}, {REACHED}. {self.when(now)}"

    def when(self, now: datetime | None = None) -> str:
        if self.retry_at is None:
            return "Try again in a few seconds."
        now = now or datetime.fromtimestamp(time.time(), UTC)  # the clock the counters use
        seconds = max((self.retry_at - now).total_seconds(), 1)
        # Rounded up, both: told "in 23 minutes, at 00:41", the next key is never refused.
        at = _ceil_minute(self.retry_at)
        day = "" if at.date() == now.astimezone(UTC).date() else f" on {at:%d %B %Y}".replace(" 0", " ")
        return f"You can try another key {_in(seconds)}, at {at:%H:%M} UTC{day}."


def consume(request: HttpRequest) -> Refusal | None:
    """Count one key tried by this user from this address; a Refusal if either limit is reached
    (then nothing is counted)."""
    try:
        # A dry run first, so a refusal by the address's limit does not spend one of the account's.
        if ratelimit.consume(request, action=ACTION, user=request.user, dry_run=True) and ratelimit.consume(
            request, action=ACTION, user=request.user
        ):
            return None
        return _refusal_from_cache(request)
    except RedisError:
        logger.warning("Rate-limit store unavailable; connect limited by the database count")
        return _refusal_from_database(request.user)


def per_user() -> Rate | None:
    """The per-account part of the limit (production always has one: settings)."""
    return next((rate for rate in get_rates(app=APP, action=ACTION) if rate.per == "user"), None)


def retry_at(hits: list[float], rate: Rate, now: float) -> float | None:
    """When a rate allows the next hit, given its hit times; None if it allows one now."""
    live = sorted((hit for hit in hits if hit > now - rate.duration), reverse=True)
    if len(live) < rate.amount:
        return None
    return live[rate.amount - 1] + rate.duration


def _refusal_from_cache(request: HttpRequest) -> Refusal:
    now = time.time()
    latest: tuple[float, Rate] | None = None
    first = None
    for rate in get_rates(app=APP, action=ACTION):
        first = first or rate
        key = get_cache_key(request, app=APP, action=ACTION, rate=rate, user=request.user)
        at = retry_at(cache.get(key, []), rate, now)
        if at is not None and (latest is None or at > latest[0]):
            latest = (at, rate)
    if latest is None:  # allauth could not take its lock on the counter in time
        return Refusal(first, None)
    return Refusal(latest[1], datetime.fromtimestamp(latest[0], UTC))


def _refusal_from_database(user) -> Refusal | None:
    rate = per_user()
    if rate is None:
        return None
    since = timezone.now() - timedelta(seconds=rate.duration)
    times = ExchangeConnection.objects.filter(owner=user, created_at__gte=since).values_list(
        "created_at", flat=True
    )
    at = retry_at([t.timestamp() for t in times], rate, time.time())
    return None if at is None else Refusal(rate, datetime.fromtimestamp(at, UTC))


def _ceil_minute(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _in(seconds: float) -> str:
    if seconds < 60:
        n = math.ceil(seconds)
        return f"in {n} second{'s' if n != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return "in " + " ".join(parts)


def _period(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} seconds"
