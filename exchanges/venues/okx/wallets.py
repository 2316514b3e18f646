"""OKX's account families as the kit's neutral wallet lines (okx-api.md §4 E3–E6, §11.6).

- ``trading`` (E3): available = ``availBal``, in orders = ``frozenBal`` (open orders and other
  holds: ``availBal + frozenBal = cashBal``), a borrowing (``liab``) as debt. ``eq`` adds
  unrealised PnL in the margin modes; that part is shown aside (``upl``), never valued, and so
  is ``stgyEq`` (equity allocated to trading bots, whose place in ``eq`` is not documented).
- ``funding`` (E4): available = ``availBal``, held = ``frozenBal`` (``bal`` is their sum).
- ``savings`` (E5, Simple Earn flexible): all of ``amt`` (lent out plus pending).
- E6 (OKX's own valuation in USDT) is a cross-check only: its total is shown aside, and money it
  sees in Earn products beyond Simple Earn flexible is reported as not read.
Numbers are strings; ``""`` means absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from exchanges.venues.kit.types import BalanceRead, OtherLine, WalletLine

from .endpoints import ASSET_VALUATION, FUNDING_BALANCE, SAVINGS_BALANCE, TRADING_BALANCE
from .errors import WALLET_REFUSALS, ErrorKind, OkxError, parsing

ZERO = Decimal(0)
TRADING, FUNDING, SAVINGS = "trading", "funding", "savings"
# OKX's valuation differs from ours by prices moving between calls; below this share of it
# (or one USDT) there is nothing to say.
VALUATION_TOLERANCE = Decimal("0.02")


def dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


def _present(row: dict[str, Any], name: str) -> bool:
    return row.get(name) not in (None, "")


class Book:
    """Wallet lines in the order read, one per (wallet, asset)."""

    def __init__(self) -> None:
        self.amounts: dict[tuple[str, str], list[Decimal]] = {}
        self.wallets: list[str] = []
        self.other: list[OtherLine] = []

    def wallet(self, wallet: str) -> None:
        if wallet not in self.wallets:
            self.wallets.append(wallet)

    def add(self, wallet: str, asset: str, available=ZERO, in_orders=ZERO, debt=ZERO) -> None:
        self.wallet(wallet)
        if not (available or in_orders or debt):
            return
        slot = self.amounts.setdefault((wallet, asset), [ZERO, ZERO, ZERO])
        slot[0] += available
        slot[1] += in_orders
        slot[2] += debt

    def trading(self, data: Any) -> None:
        with parsing(TRADING_BALANCE):
            self.wallet(TRADING)
            for account in data or ():
                for row in account.get("details") or ():
                    asset = str(row["ccy"])
                    frozen = dec(row.get("frozenBal"))
                    if _present(row, "availBal"):
                        available = dec(row["availBal"])
                    else:  # not filled in this account mode: what is cash and not held
                        available = dec(row.get("cashBal")) - frozen
                    owed = abs(dec(row.get("liab")))
                    self.add(TRADING, asset, available, frozen, -owed)
                    for field, kind in (("upl", "unrealized-pnl"), ("stgyEq", "trading-bots")):
                        amount = dec(row.get(field))
                        if amount:
                            self.other.append(OtherLine(TRADING, asset, kind, amount))

    def funding(self, data: Any) -> None:
        with parsing(FUNDING_BALANCE):
            self.wallet(FUNDING)
            for row in data or ():
                frozen = dec(row.get("frozenBal"))
                if _present(row, "availBal"):
                    available = dec(row["availBal"])
                else:
                    available = dec(row.get("bal")) - frozen
                self.add(FUNDING, str(row["ccy"]), available, frozen)

    def savings(self, data: Any) -> None:
        with parsing(SAVINGS_BALANCE):
            self.wallet(SAVINGS)
            for row in data or ():
                self.add(SAVINGS, str(row["ccy"]), dec(row.get("amt")))

    def valuation(
        self, data: Any, unread: list[dict[str, Any]], price: Callable[[str], Decimal | None]
    ) -> None:
        """E6 in USDT: OKX's total, shown aside. Its ``earn`` counts every Earn product; what it
        holds beyond the Simple Earn read here (valued with ``price``, USDT per unit, asked only
        when needed) is reported as not read, rather than silently left out."""
        with parsing(ASSET_VALUATION):
            row = data[0]
            total = dec(row.get("totalBal"))
            earn = dec((row.get("details") or {}).get("earn"))
        if total:
            self.other.append(OtherLine("all accounts", "USDT", "OKX valuation", total))
        tolerance = max(Decimal(1), earn * VALUATION_TOLERANCE)
        if earn <= tolerance or any(entry.get("type") == SAVINGS for entry in unread):
            return
        read = ZERO
        for (wallet, asset), (available, in_orders, _) in self.amounts.items():
            if wallet != SAVINGS:
                continue
            unit = price(asset)
            if unit is None:
                return  # part of what we read has no price: no comparison to make
            read += (available + in_orders) * unit
        beyond = earn - read
        if beyond > tolerance:
            unread.append(
                {
                    "type": "earn",
                    "id": "Earn",
                    "reason": f"OKX values your Earn products at {earn:f} USDT, about "
                    f"{beyond.quantize(Decimal('0.01')):f} USDT more than the Simple Earn (savings) "
                    "read here: staking or other Earn products this dashboard does not read yet",
                }
            )

    def result(self, unread: list[dict[str, Any]]) -> BalanceRead:
        lines = tuple(
            WalletLine(wallet=wallet, asset=asset, available=a, in_orders=o, debt=d)
            for (wallet, asset), (a, o, d) in self.amounts.items()
        )
        return BalanceRead(
            lines=lines, wallets=tuple(self.wallets), unread=tuple(unread), other=tuple(self.other)
        )


def unread_collector(unread: list[dict[str, Any]]):
    """``with wallet("savings", "Simple Earn"):`` around one wallet's read: a refusal of that
    wallet is noted in ``unread``; anything else (transient, or the key itself refused) goes up
    and the whole read is retried."""

    @contextmanager
    def wallet(kind: str, name: str) -> Iterator[None]:
        try:
            yield
        except OkxError as error:
            if error.code not in WALLET_REFUSALS and error.kind != ErrorKind.NO_PERMISSION:
                raise
            unread.append({"type": kind, "id": name, "reason": f"OKX refused this key: {error.detail}"[:300]})

    return wallet


def usdt_price(asset: str, prices: Mapping[str, Decimal]) -> Decimal | None:
    """USDT per unit of ``asset`` from OKX's tickers: its USDT pair, else through BTC or ETH,
    else an inverse pair (``USDT-EUR``); None when there is no route."""
    asset = asset.upper()
    if asset == "USDT":
        return Decimal(1)
    if f"{asset}USDT" in prices:
        return prices[f"{asset}USDT"]
    for bridge in ("BTC", "ETH"):
        if f"{asset}{bridge}" in prices and f"{bridge}USDT" in prices:
            return prices[f"{asset}{bridge}"] * prices[f"{bridge}USDT"]
    inverse = prices.get(f"USDT{asset}")
    return 1 / inverse if inverse else None
