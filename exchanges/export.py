"""The holdings CSV of one connection: what the venue reported, exactly, beside the values we
computed from it, rounded as a person reads them.

- Reported amounts (available, in orders, debt, and their sum, total) are the stored Decimals
  without trailing zeros and never in exponent form: ``0.017300000000000000`` is ``0.0173``,
  nothing is rounded.
- Computed values: USDT value to 2 decimals, BTC value to 8 (a satoshi), price to 8
  significant digits (never fewer than the digits before the point).
- Every row names the connection (its label, as its owner typed it), the exchange and when the
  balance was read (ISO 8601, UTC, said in the header), so several exports can be pasted into
  one sheet.
- RFC 4180: every field quoted, CRLF line ends, UTF-8. A text field that a spreadsheet would
  take for a formula (starting with = + - @, a tab or a carriage return) gets a leading
  apostrophe (OWASP's advice against CSV injection); amounts are always plain numbers.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from .models import ExchangeConnection
from .selectors import Holdings

HEADER = [
    "label",
    "exchange",
    "read_at_utc",
    "account",
    "asset",
    "available",
    "in_orders",
    "debt",
    "total",
    "price_usdt",
    "value_usdt",
    "value_btc",
]
CENT = Decimal("0.01")
SATOSHI = Decimal("0.00000001")
PRICE_DIGITS = 8
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def reported(amount: Decimal) -> str:
    """An amount as the venue sent it, minus trailing zeros: exact, never rounded."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


def _fixed(value: Decimal | None, step: Decimal) -> str:
    if value is None:
        return ""
    rounded = value.quantize(step, rounding=ROUND_HALF_UP)
    return format(abs(rounded) if rounded == 0 else rounded, "f")  # no "-0.00"


def usdt(value: Decimal | None) -> str:
    return _fixed(value, CENT)


def btc(value: Decimal | None) -> str:
    return _fixed(value, SATOSHI)


def price(value: Decimal | None) -> str:
    """8 significant digits (0.000012345678 stays, 97123.456789 becomes 97123.457), without
    trailing zeros; a price of 1 USDT or more keeps at least 2 decimals ("1.00")."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    decimals = max(PRICE_DIGITS - value.adjusted() - 1, 0)
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    whole, _, fraction = reported(rounded).partition(".")
    return f"{whole}.{fraction:0<2}" if abs(rounded) >= 1 else reported(rounded)


def text(value: str) -> str:
    """A text field a spreadsheet cannot run: a formula-like start is escaped with "'"."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def holdings_csv(connection: ExchangeConnection, holdings: Holdings) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(HEADER)
    if holdings.snapshot is None:
        return out.getvalue()
    who = [text(connection.label), text(connection.exchange_name), iso_utc(holdings.snapshot.taken_at)]
    for h in holdings.all:
        writer.writerow(
            [
                *who,
                text(h.account_type),
                text(h.asset),
                reported(h.available),
                reported(h.in_orders),
                reported(h.debt),
                reported(h.total),
                price(h.price_usdt),
                usdt(h.value_usdt),
                btc(h.value_btc),
            ]
        )
    return out.getvalue()


def filename(connection: ExchangeConnection, holdings: Holdings) -> str:
    taken = (
        holdings.snapshot.taken_at.astimezone(UTC).strftime("%Y%m%d-%H%MZ") if holdings.snapshot else "empty"
    )
    return f"{connection.exchange}-{connection.pk}-holdings-{taken}.csv"
