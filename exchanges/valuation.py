"""Value HTX balances in USDT (and BTC) from HTX's own tickers. Pure functions, Decimal only.

What each HTX balance line type means here (docs/htx.md has the full table):

- ``trade``: available; ``frozen``: held by open orders. Both are holdings.
- ``loan`` and ``interest`` (margin accounts, negative numbers): debt, subtracted from the
  account's value, so a margin account counts for what the trader owns, not what was borrowed.
- anything else (``transfer-out-available``, ``loan-available``, ``lock``, ...): derived or
  unknown figures. Kept as they are for display, never added to a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from exchanges.venues.htx.types import AccountBalance

ZERO = Decimal(0)
QUOTE = "usdt"
# Tried in order when a coin has no USDT pair: coin -> bridge -> USDT.
BRIDGES = ("btc", "eth")
HOLDING_TYPES = {"trade": "available", "frozen": "in_orders"}
DEBT_TYPES = ("loan", "interest")


@dataclass(frozen=True, slots=True)
class Holding:
    account_type: str
    currency: str
    available: Decimal
    in_orders: Decimal
    debt: Decimal  # zero or negative
    price_usdt: Decimal | None  # None: no route to USDT in HTX's tickers

    @property
    def total(self) -> Decimal:
        """What the trader holds: available + in orders."""
        return self.available + self.in_orders

    @property
    def net(self) -> Decimal:
        return self.total + self.debt

    @property
    def value_usdt(self) -> Decimal | None:
        return None if self.price_usdt is None else self.net * self.price_usdt


@dataclass(frozen=True, slots=True)
class OtherLine:
    account_type: str
    currency: str
    type: str
    balance: Decimal


@dataclass(frozen=True, slots=True)
class Valuation:
    holdings: tuple[Holding, ...]
    total_usdt: Decimal
    total_btc: Decimal | None
    account_types: tuple[str, ...]
    other_lines: tuple[OtherLine, ...] = ()

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(sorted({h.currency for h in self.holdings if h.price_usdt is None}))


def price_in_usdt(currency: str, prices: Mapping[str, Decimal]) -> Decimal | None:
    if currency == QUOTE:
        return Decimal(1)
    direct = prices.get(f"{currency}{QUOTE}")
    if direct is not None:
        return direct
    for bridge in BRIDGES:
        cross, bridge_price = prices.get(f"{currency}{bridge}"), prices.get(f"{bridge}{QUOTE}")
        if cross is not None and bridge_price is not None:
            return cross * bridge_price
    return None


def value_balances(balances: Iterable[AccountBalance], prices: Mapping[str, Decimal]) -> Valuation:
    """Per account type and currency: available, in orders and debt; valued net of debt."""
    amounts: dict[tuple[str, str], dict[str, Decimal]] = {}
    other: list[OtherLine] = []
    account_types: list[str] = []
    for balance in balances:
        kind = balance.account.type
        if kind not in account_types:
            account_types.append(kind)
        for line in balance.lines:
            slot = amounts.setdefault(
                (kind, line.currency), {"available": ZERO, "in_orders": ZERO, "debt": ZERO}
            )
            if line.type in HOLDING_TYPES:
                slot[HOLDING_TYPES[line.type]] += line.balance
            elif line.type in DEBT_TYPES:
                slot["debt"] += line.balance
            elif line.balance:
                other.append(OtherLine(kind, line.currency, line.type, line.balance))
    holdings = [
        Holding(account_type=kind, currency=currency, price_usdt=price_in_usdt(currency, prices), **slot)
        for (kind, currency), slot in sorted(amounts.items())
        if any(slot.values())
    ]
    total = sum((h.value_usdt for h in holdings if h.value_usdt is not None), ZERO)
    btc_price = prices.get(f"btc{QUOTE}")
    return Valuation(
        holdings=tuple(holdings),
        total_usdt=total,
        total_btc=total / btc_price if btc_price else None,
        account_types=tuple(account_types),
        other_lines=tuple(other),
    )
