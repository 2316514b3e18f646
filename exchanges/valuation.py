"""Value a venue's wallet lines in USDT (and BTC) from the venue's own prices. Pure functions,
Decimal only.

Prices come keyed by upper-case concatenated symbol (``BTCUSDT``), as every venue's client
gives them (``VenueClient.prices``). An asset is valued through its USDT pair, else through BTC
or ETH (``XYZBTC × BTCUSDT``), else through an inverted pair (``USDTTRY`` for a fiat balance),
else it is listed as unpriced: never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from exchanges.venues.kit.types import BalanceRead, OtherLine

ZERO = Decimal(0)
QUOTE = "USDT"
# Tried in order when a coin has no USDT pair: coin -> bridge -> USDT.
BRIDGES = ("BTC", "ETH")


@dataclass(frozen=True, slots=True)
class Holding:
    account_type: str  # the wallet
    currency: str  # as the venue writes it
    available: Decimal
    in_orders: Decimal
    debt: Decimal  # zero or negative
    price_usdt: Decimal | None  # None: no route to USDT in the venue's prices

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
    asset = currency.upper()
    if asset == QUOTE:
        return Decimal(1)
    direct = prices.get(asset + QUOTE)
    if direct is not None:
        return direct
    for bridge in BRIDGES:
        cross, bridge_price = prices.get(asset + bridge), prices.get(bridge + QUOTE)
        if cross is not None and bridge_price is not None:
            return cross * bridge_price
    inverse = prices.get(QUOTE + asset)
    if inverse:
        return 1 / inverse
    return None


def value_lines(read: BalanceRead, prices: Mapping[str, Decimal]) -> Valuation:
    """Per wallet and asset: available, in orders and debt; valued net of debt."""
    amounts: dict[tuple[str, str], list[Decimal]] = {}
    for line in read.lines:
        slot = amounts.setdefault((line.wallet, line.asset), [ZERO, ZERO, ZERO])
        slot[0] += line.available
        slot[1] += line.in_orders
        slot[2] += line.debt
    holdings = [
        Holding(
            account_type=wallet,
            currency=asset,
            available=available,
            in_orders=in_orders,
            debt=debt,
            price_usdt=price_in_usdt(asset, prices),
        )
        for (wallet, asset), (available, in_orders, debt) in sorted(amounts.items())
        if available or in_orders or debt
    ]
    total = sum((h.value_usdt for h in holdings if h.value_usdt is not None), ZERO)
    btc_price = prices.get("BTC" + QUOTE)
    return Valuation(
        holdings=tuple(holdings),
        total_usdt=total,
        total_btc=total / btc_price if btc_price else None,
        account_types=read.wallets,
        other_lines=read.other,
    )
