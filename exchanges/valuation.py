"""Value HTX balances in USDT (and BTC) from HTX's own tickers. Pure functions, Decimal only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from exchanges.htx.types import AccountBalance

ZERO = Decimal(0)
QUOTE = "usdt"
# Accounts that make up the trading balance (as rotki counts HTX). Margin accounts hold
# borrowed funds whose "trade" lines would overstate what the trader owns.
TRADING_ACCOUNT_TYPES = ("spot", "otc", "point")
# Tried in order when a coin has no USDT pair: coin -> bridge -> USDT.
BRIDGES = ("btc", "eth")


@dataclass(frozen=True, slots=True)
class Holding:
    currency: str
    available: Decimal
    in_orders: Decimal
    price_usdt: Decimal | None  # None: no route to USDT in HTX's tickers

    @property
    def total(self) -> Decimal:
        return self.available + self.in_orders

    @property
    def value_usdt(self) -> Decimal | None:
        return None if self.price_usdt is None else self.total * self.price_usdt


@dataclass(frozen=True, slots=True)
class Valuation:
    holdings: tuple[Holding, ...]
    total_usdt: Decimal
    total_btc: Decimal | None
    account_types: tuple[str, ...]

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(h.currency for h in self.holdings if h.price_usdt is None)


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
    """Sum available (``trade``) and in-orders (``frozen``) per currency over all accounts.

    Other line types (margin loans, interest, ...) are not assets the trader can trade with,
    so they are not added to the trading balance.
    """
    available: dict[str, Decimal] = {}
    in_orders: dict[str, Decimal] = {}
    account_types: list[str] = []
    for balance in balances:
        if balance.account.type not in account_types:
            account_types.append(balance.account.type)
        for line in balance.lines:
            if line.type == "trade":
                available[line.currency] = available.get(line.currency, ZERO) + line.balance
            elif line.type == "frozen":
                in_orders[line.currency] = in_orders.get(line.currency, ZERO) + line.balance
    holdings = []
    for currency in sorted(set(available) | set(in_orders)):
        holding = Holding(
            currency=currency,
            available=available.get(currency, ZERO),
            in_orders=in_orders.get(currency, ZERO),
            price_usdt=price_in_usdt(currency, prices),
        )
        if holding.total != ZERO:
            holdings.append(holding)
    total = sum((h.value_usdt for h in holdings if h.value_usdt is not None), ZERO)
    btc_price = prices.get(f"btc{QUOTE}")
    return Valuation(
        holdings=tuple(holdings),
        total_usdt=total,
        total_btc=total / btc_price if btc_price else None,
        account_types=tuple(account_types),
    )
