"""My Exchanges' rows, rendered once per state.

Through the template engine a row costs ~0.5 ms (some sixty variables, filters and tags), most
of the page. A row's HTML is therefore kept, in this process, under a key made of everything the
row shows: every column of the connection as loaded (key material excepted: it is never loaded),
the owner's settings, the time zone and language, the list's share and notice, what the row says
about time ("Stale", "Expires in N days", "3 days, 4 hours left", "Verification queued"), what
exchanges saw of our addresses where the row compares them, and the row template itself (a
reloaded template is a new object). Any change makes a new key, so a kept row is never an old
state; nothing needs invalidating, and unused keys fall out of a size-bounded LRU.

Two parts change between requests with the same state, and are left as holes filled on every
request: the relative time of the last balance read ("updated 3 minutes ago", which changes
every second at first) and the CSRF token (one per browser). The holes carry a random mark made
at start-up, so no text from a user or an exchange can pose as one.

Per process, not Redis: no network round trip, nothing shared between versions of the code, and
a test's settings change (setting_changed) empties it.
"""

from __future__ import annotations

import re
import secrets
import sys
import threading
from collections import OrderedDict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.core.signals import setting_changed
from django.db.models import JSONField
from django.dispatch import receiver
from django.template import Context
from django.template.defaultfilters import timeuntil_filter
from django.template.defaulttags import CsrfTokenNode
from django.template.loader import get_template
from django.urls import get_script_prefix
from django.utils import timezone, translation
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from exchanges.templatetags.budget_tags import refresh_interval_note

from . import formatting, selectors
from .fields import ExactDecimalField
from .models import ExchangeConnection

ROW_TEMPLATE = "exchanges/_connection_row.html"
# Context key telling {% ago %} to leave its relative time as a hole (exchanges_tags.ago).
HOLES = "_row_cache_holes"
# Bytes of HTML kept per process (ROW_CACHE_BYTES): a row is ~4 kB (its key ~2 kB more), so
# 32 MiB keeps ~8,000 rows, the 25 rows of 320 users.
DEFAULT_BYTES = 32 * 1024 * 1024

_MARK = f"\x00{secrets.token_hex(8)}"
_AGO_HOLE = re.compile(re.escape(_MARK) + r"ago:([^\x00]+)\x00")
_CSRF_MARK = f"{_MARK}csrf\x00"
_CSRF_INPUT = str(CsrfTokenNode().render(Context({"csrf_token": _CSRF_MARK})))

# User columns a row could show (the unit, the refresh interval, …); never the password hash.
_USER_SKIPPED = {"password", "last_login"}


def ago_hole(value: datetime) -> SafeString:
    """Where {% ago %} puts naturaltime(value) in a kept row: filled per request."""
    return mark_safe(f"{_MARK}ago:{value.isoformat()}\x00")


def _fill_ago(match: re.Match) -> str:
    return conditional_escape(naturaltime(datetime.fromisoformat(match[1])))


class _Store:
    """An LRU of HTML strings bounded by their total size in memory, safe across threads."""

    def __init__(self) -> None:
        self._rows: OrderedDict[tuple, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> str | None:
        with self._lock:
            html = self._rows.get(key)
            if html is None:
                self.misses += 1
            else:
                self.hits += 1
                self._rows.move_to_end(key)
            return html

    def put(self, key: tuple, html: str) -> None:
        limit = getattr(settings, "ROW_CACHE_BYTES", DEFAULT_BYTES)
        size = sys.getsizeof(html)
        with self._lock:
            old = self._rows.pop(key, None)
            if old is not None:
                self._bytes -= sys.getsizeof(old)
            if size > limit:
                return
            self._rows[key] = html
            self._bytes += size
            while self._bytes > limit:
                _, evicted = self._rows.popitem(last=False)
                self._bytes -= sys.getsizeof(evicted)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)


store = _Store()


@receiver(setting_changed)
def _settings_changed(**kwargs) -> None:
    # Venues, EGRESS_IPS, static files, URLs: any setting may be in a row.
    store.clear()


def _columns() -> tuple[tuple[str, ...], frozenset[str]]:
    """The connection's columns in a key, and those keyed by their repr: JSON (lists are not
    hashable) and exact decimals (Decimal("2") == Decimal("2.0"), but their text differs)."""
    fields = [f for f in ExchangeConnection._meta.concrete_fields if f.name not in selectors.KEY_FIELDS]
    by_repr = frozenset(f.attname for f in fields if isinstance(f, JSONField | ExactDecimalField))
    return tuple(f.attname for f in fields), by_repr


_COLUMNS, _REPR_COLUMNS = _columns()


def _time_facts(c: ExchangeConnection, stale_after: timedelta | None, now: datetime) -> tuple:
    """What the row says that depends on the clock, not only on the row (exchanges_tags and
    _key_facts.html): when one of these changes, so does the key."""
    key_days = formatting.days_left(c.key_expires_at, now) if c.key_expires_at else None
    trading_days = formatting.days_left(c.trading_expires_at, now) if c.trading_expires_at else None
    facts = (selectors.is_stale(c, stale_after, now), key_days, trading_days, c.awaiting_worker)
    if not c.settled:
        facts += (c.poll_every,)
    if c.last_verified_at and (c.key_expires_at or c.trading_expires_at):
        facts += (timeuntil_filter(c.key_expires_at), timeuntil_filter(c.trading_expires_at))
    return facts


def _user_key(user) -> tuple:
    if user is None or not getattr(user, "is_authenticated", False):
        return (None,)
    meta = user._meta
    return tuple(getattr(user, f.attname) for f in meta.concrete_fields if f.name not in _USER_SKIPPED)


def _shared_key(template, user, stale_after, notice: str) -> tuple:
    """What every row of one response shares."""
    return (
        template,  # by identity: a reloaded (edited) template is a new object
        _user_key(user),
        stale_after,
        notice,
        timezone.get_current_timezone_name(),
        translation.get_language(),
        get_script_prefix(),
        tuple(settings.EGRESS_IPS),
    )


def row_key(c: ExchangeConnection, shared: tuple, request, now: datetime) -> tuple | None:
    """Everything one row shows; None when a column was not loaded (the row is then rendered
    as it is, uncached: a value missing from the key could hide a change)."""
    loaded = c.__dict__
    try:
        values = tuple(repr(loaded[name]) if name in _REPR_COLUMNS else loaded[name] for name in _COLUMNS)
    except KeyError:
        return None
    seen: tuple = ()
    if c.ip_addresses and c.last_verified_at and c.key_info_known and not settings.EGRESS_IPS:
        # The key facts compare the key's IP list with what exchanges saw (the same one query
        # per request that {% ip_binding %} makes).
        seen = tuple(selectors.seen_addresses_once(request))
    # The note of a venue's budget stretching the interval comes from Redis, not the row.
    interval = repr(refresh_interval_note({"request": request}, c))
    return (shared, values, repr(getattr(c, "share", None)), _time_facts(c, shared[2], now), seen, interval)


def _render(template, c, *, request, user, stale_after, notice) -> str:
    context = Context(
        {
            "c": c,
            "notice": notice,
            "stale_after": stale_after,
            "request": request,
            "user": user,
            "csrf_token": _CSRF_MARK,
            HOLES: True,
        }
    )
    return str(template.render(context))


def render_rows(
    connections,
    *,
    request,
    user,
    stale_after: timedelta | None,
    csrf_token,
    notice: str = "",
) -> SafeString:
    """The rows of My Exchanges (or one polled row), as _connection_row.html renders them."""
    template = get_template(ROW_TEMPLATE).template
    shared = _shared_key(template, user, stale_after, notice)
    now = timezone.now()
    parts = []
    for c in connections:
        key = row_key(c, shared, request, now)
        html = None if key is None else store.get(key)
        if html is None:
            html = _render(template, c, request=request, user=user, stale_after=stale_after, notice=notice)
            if key is not None:
                store.put(key, html)
        parts.append(html)
    html = "".join(parts)
    if _MARK in html:
        html = _AGO_HOLE.sub(_fill_ago, html)
        if _CSRF_INPUT in html:
            # As {% csrf_token %} renders it; the token is only made when a form needs one.
            html = html.replace(_CSRF_INPUT, CsrfTokenNode().render(Context({"csrf_token": csrf_token})))
    return mark_safe(html)
