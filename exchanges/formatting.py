"""How the exchange pages write times, prices, amounts of money and a connection's name: one
rule each, used by the templates (exchanges_tags) and by the messages the views send."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from django.template.defaultfilters import floatformat
from django.utils import dateformat, timezone

# "1 Dec 2026, 23:41 UTC": day, month, year, 24-hour time and the zone, everywhere.
MOMENT_FORMAT = "j M Y, H:i T"
DAY_FORMAT = "j M Y"
USDT, BTC = "USDT", "BTC"
# A price below 1 keeps this many significant digits: 0.1235, 0.00001235.
PRICE_SIGNIFICANT = 4
PRICE_MAX_DECIMALS = 12


def moment(value: datetime | None) -> str:
    """An absolute time in the site's zone, with the zone said."""
    if value is None:
        return ""
    return dateformat.format(timezone.localtime(value) if timezone.is_aware(value) else value, MOMENT_FORMAT)


def day(value: datetime | None) -> str:
    if value is None:
        return ""
    return dateformat.format(timezone.localtime(value) if timezone.is_aware(value) else value, DAY_FORMAT)


def days_left(moment: datetime, now: datetime | None = None) -> int:
    """Whole days left until ``moment``, counting a started day: a key valid for 4.2 more days
    has 5 left. The status badge ("Expires in 5 days") and the alerts count alike."""
    return max(math.ceil((moment - (now or timezone.now())).total_seconds() / 86400), 0)


def usdt(value: Decimal | None) -> str:
    """A USDT amount: thousands separators, 2 decimals."""
    return "—" if value is None else floatformat(value, "2g")


def btc(value: Decimal | None) -> str:
    """A BTC amount: thousands separators, 8 decimals (a satoshi)."""
    return "—" if value is None else floatformat(value, "8g")


def price(value: Decimal | None) -> str:
    """A price, by one rule of magnitude: 2 decimals from 1 up, else 4 significant digits."""
    if value is None:
        return "—"
    size = abs(Decimal(value))
    small = 0 < size < 1
    places = min(PRICE_SIGNIFICANT - 1 - size.adjusted(), PRICE_MAX_DECIMALS) if small else 2
    return floatformat(value, f"{places}g")


def unit_for(user, total_btc: Decimal | None = Decimal(0)) -> str:
    """The unit values are shown in: the user's choice, or USDT where no BTC value is known."""
    chosen = getattr(user, "valuation_currency", USDT)
    return BTC if chosen == BTC and total_btc is not None else USDT


def money(value_usdt: Decimal | None, value_btc: Decimal | None, unit: str) -> str:
    """ "0.01234567 BTC" or "1,234.56 USDT" (USDT when the BTC value is not known)."""
    if unit == BTC and value_btc is not None:
        return f"{btc(value_btc)} BTC"
    return f"{usdt(value_usdt)} USDT"


def connection_title(connection) -> str:
    """ "HTX · Main account", or without a label "HTX · API key 1a2b…9f8e": the venue once."""
    name = connection.exchange_name
    if connection.label:
        return f"{name} · {connection.label}"
    return f"{name} · API key {connection.masked_access_key}"


def connection_subtitle_parts(connection) -> list[str]:
    """What the line under a connection's name says, the venue only when the name is a label
    (an unlabelled connection is already called by its venue's name)."""
    parts = [connection.exchange_name] if connection.label else []
    if connection.site_label:
        parts.append(connection.site_label)
    return parts
