"""Bybit's wallets as the kit's neutral wallet lines (bybit-api.md §5 E4/E5, §7, §8).

- ``unified``: the Unified Trading Account (E4). ``walletBalance`` includes borrowed coins, so
  what is held is ``walletBalance`` (``locked`` by open spot orders in ``in_orders``, the rest
  ``available``) and what is borrowed (``spotBorrow``, else ``borrowAmount``) plus accrued
  interest is debt (negative): the net is ``walletBalance - spotBorrow``. A negative
  ``walletBalance`` (a derivatives loss) is itself debt. ``equity`` (adds unrealised P&L and
  option value) and ``unrealisedPnl`` are shown aside (``OtherLine``), never valued.
- ``funding``: the Funding Account (E5): ``walletBalance`` held, of which ``transferBalance``
  can move now (``available``) and the rest is held (e.g. by P2P orders).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from exchanges.venues.kit.types import BalanceRead, OtherLine, WalletLine

from .endpoints import FUNDING, WALLET
from .errors import BybitError, ErrorKind, parsing

ZERO = Decimal(0)
UNIFIED = "unified"
FUNDING_WALLET = "funding"

# retCodes that mean "this key (or account) cannot read that wallet": no permission, and the
# account-mode answers of a classic (non-unified) account.
_WALLET_REFUSALS = frozenset({"10005", "10001", "10028", "100028"})


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


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

    def unified(self, data: Any) -> None:
        """E4 ``result``: every account of ``list`` (one, UNIFIED), every coin."""
        with parsing(WALLET):
            self.wallet(UNIFIED)
            for account in data.get("list") or ():
                for row in account.get("coin") or ():
                    self._unified_coin(str(row["coin"]), row)

    def _unified_coin(self, asset: str, row: dict[str, Any]) -> None:
        balance = _dec(row.get("walletBalance"))
        locked = _dec(row.get("locked"))
        borrowed = _dec(row.get("spotBorrow")) if "spotBorrow" in row else _dec(row.get("borrowAmount"))
        owed = borrowed + _dec(row.get("accruedInterest"))
        if balance < 0:
            # A negative balance is owed as it is; only manual (spot) borrowing is on top.
            spot_borrow = _dec(row.get("spotBorrow"))
            self.add(UNIFIED, asset, debt=balance - spot_borrow - _dec(row.get("accruedInterest")))
        else:
            in_orders = min(max(locked, ZERO), balance)
            self.add(UNIFIED, asset, balance - in_orders, in_orders, -owed)
        equity = row.get("equity")
        if equity not in (None, ""):
            value = _dec(equity)
            if value != balance - _dec(row.get("spotBorrow")) + _dec(row.get("unrealisedPnl")):
                self.other.append(OtherLine(UNIFIED, asset, "equity", value))
        pnl = _dec(row.get("unrealisedPnl"))
        if pnl:
            self.other.append(OtherLine(UNIFIED, asset, "unrealized-pnl", pnl))

    def funding(self, data: Any) -> None:
        """E5 ``result``: ``balance`` per coin."""
        with parsing(FUNDING):
            self.wallet(FUNDING_WALLET)
            for row in data.get("balance") or ():
                held = _dec(row.get("walletBalance"))
                movable = row.get("transferBalance")
                available = held if movable in (None, "") else min(max(_dec(movable), ZERO), held)
                self.add(FUNDING_WALLET, str(row["coin"]), available, (held - available) or ZERO)

    def result(self, unread: list[dict[str, Any]]) -> BalanceRead:
        lines = tuple(
            WalletLine(wallet=wallet, asset=asset, available=a, in_orders=o, debt=d)
            for (wallet, asset), (a, o, d) in self.amounts.items()
        )
        return BalanceRead(
            lines=lines, wallets=tuple(self.wallets), unread=tuple(unread), other=tuple(self.other)
        )


# Why a wallet could not be read, by wallet, after Bybit's own answer.
_HINTS = {
    FUNDING_WALLET: "Bybit lets a key read the Funding Account only with a Wallet permission "
    "(such as Account Transfer); the rest of the account was read",
    UNIFIED: "The Unified Trading Account could not be read with this key; a classic (non-unified) "
    "Bybit account must be upgraded to the Unified Trading Account on Bybit",
}


def unread_collector(unread: list[dict[str, Any]]):
    """``with wallet("funding", "Funding Account"):`` keeps a refusal of that wallet in
    ``unread`` and goes on; anything else (transient, or the key itself refused) goes up.
    ``statuses``: HTTP statuses that also mean "not this account's wallet" (a classic account's
    404 on the unified wallet)."""

    @contextmanager
    def wallet(kind: str, name: str, statuses: tuple[int, ...] = ()) -> Iterator[None]:
        try:
            yield
        except BybitError as error:
            refused = error.code in _WALLET_REFUSALS or error.kind == ErrorKind.NO_PERMISSION
            if not refused and error.status not in statuses:
                raise
            reason = f"Bybit refused this key: {error.detail}. {_HINTS.get(kind, '')}".strip()
            unread.append({"type": kind, "id": name, "reason": reason[:300]})

    return wallet
