"""The venues this dashboard offers: ``settings.VENUES``, a list of dotted paths to ``Venue``
instances (as healthchecks lists its transports), read lazily. The picker, URLs, forms, demo
sandboxes and contract tests come from here; adding an exchange is its folder plus one line.

Per-venue settings follow the venue's ``env_prefix``: ``<PREFIX>_API_URL``,
``<PREFIX>_CONNECT_TIMEOUT``, ``<PREFIX>_READ_TIMEOUT``, ``<PREFIX>_MAX_CONCURRENT_REQUESTS``,
``<PREFIX>_GATE_WAIT_SECONDS``, ``<PREFIX>_CLOCK_SYNC_SECONDS``,
``<PREFIX>_INTERACTIVE_RESERVED_REQUESTS``, taken from Django's settings when defined there,
else from the environment, else the defaults below.
"""

from __future__ import annotations

import os
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import Http404
from django.utils.module_loading import import_string

from exchanges.venues.kit.errors import ErrorKind, VenueError
from exchanges.venues.kit.venue import Venue

DEFAULTS = {
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 10.0,
    "MAX_CONCURRENT_REQUESTS": 48,
    "GATE_WAIT_SECONDS": 20.0,
    "CLOCK_SYNC_SECONDS": 60,
    # Of MAX_CONCURRENT_REQUESTS, the slots only user-initiated checks may take (kit.gate).
    "INTERACTIVE_RESERVED_REQUESTS": 8,
}


@cache
def _venues() -> dict[str, Venue]:
    venues = [import_string(path) for path in settings.VENUES]
    return {venue.id: venue for venue in venues}


@receiver(setting_changed)
def _venues_changed(*, setting: str, **kwargs) -> None:
    if setting == "VENUES":
        _venues.cache_clear()


def venues() -> list[Venue]:
    return list(_venues().values())


def get(venue_id: str) -> Venue:
    """The venue with this id; KeyError if it is not offered here."""
    return _venues()[venue_id]


def get_or_404(venue_id: str) -> Venue:
    try:
        return get(venue_id)
    except KeyError:
        raise Http404("No such exchange") from None


def name_of(venue_id: str) -> str:
    """A venue's name for display; an id no longer offered is shown as it is stored."""
    venue = _venues().get(venue_id)
    return venue.name if venue else venue_id.upper()


class RetiredVenue(Venue):
    """A venue removed from settings.VENUES while connections to it remain: its pages still
    render, and its checks fail as transient (the keys are kept until the user removes them)."""

    logo = "img/favicon.svg"
    default_api_url = api_management_url = "https://invalid.example"
    help_template = ""
    env_prefix = "RETIRED"

    def __init__(self, venue_id: str):
        self.id, self.name = venue_id, venue_id.upper()

    def client(self, **kwargs):
        raise VenueError(ErrorKind.UNAVAILABLE, message=f"{self.name} is no longer offered by this dashboard")


def get_or_retired(venue_id: str) -> Venue:
    return _venues().get(venue_id) or RetiredVenue(venue_id)


_UNSET = object()


def setting(venue: Venue, name: str, default=None):
    """``<PREFIX>_<NAME>`` from Django's settings, else the environment, else a default."""
    key = f"{venue.env_prefix}_{name}"
    value = getattr(settings, key, _UNSET)  # one lookup of the lazy settings, not two
    if value is not _UNSET:
        return value
    if key in os.environ:
        raw = os.environ[key]
        fallback = DEFAULTS.get(name, default)
        return type(fallback)(raw) if isinstance(fallback, int | float) else raw
    return DEFAULTS.get(name, default)


def api_url(venue: Venue) -> str:
    return setting(venue, "API_URL") or venue.default_api_url


def timeout(venue: Venue) -> tuple[float, float]:
    custom = setting(venue, "TIMEOUT")
    if custom:
        return tuple(custom)
    return (float(setting(venue, "CONNECT_TIMEOUT")), float(setting(venue, "READ_TIMEOUT")))
