"""Binance's wallets as the kit's neutral wallet lines (binance-api.md §6): spot with its
``LD<asset>`` mirrors of flexible Earn, funding, Simple Earn, cross margin (net of debt), USDⓈ-M
futures, and the wallet overview (E7) that says where the money is."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from exchanges.venues.kit.types import BalanceRead, OtherLine, WalletLine

from .endpoints import ACCOUNT, CROSS_MARGIN, EARN_FLEXIBLE, EARN_LOCKED, FUNDING, FUTURES, OVERVIEW
from .errors import BinanceError, ErrorKind, parsing

ZERO = Decimal(0)

# Codes that mean "this key may not read that wallet" on a wallet endpoint: -2015 (no
# permission, or futures not enabled), -1002 (not authorized), -3003 (no margin account).
_WALLET_REFUSALS = frozenset({"-2015", "-1002", "-3003"})


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


def _wallet_key(name: str) -> str:
    """E7 wallet names compared loosely: case and the circled Ⓢ of "USDⓈ-M Futures"."""
    return name.casefold().replace("ⓢ", "s").strip()


_READ_WALLETS = frozenset({"spot", "funding", "earn", "cross margin", "usds-m futures"})


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _wallet_key(name)).strip("-") or "wallet"


def unlisted_wallets(overview: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Wallets E7 shows with money that this client has no detail endpoint for (Trading Bots,
    Copy Trading, Options, Isolated Margin, COIN-M Futures, any new one), as ``unread``."""
    unread = []
    for key, row in (overview or {}).get("_rows", {}).items():
        if key in _READ_WALLETS or row["balance"] == 0:
            continue
        unread.append(
            {
                "type": _slug(row["name"]),
                "id": row["name"],
                "reason": f"Binance shows {row['shown']} USDT here; this dashboard does not read "
                "this wallet's assets yet",
            }
        )
    return unread


def overview_of(data: Any) -> dict[str, Any]:
    """E7 as {wallet key: balance in USDT}, plus the rows (``_rows``) for what we do not read."""
    with parsing(OVERVIEW):
        result: dict[str, Any] = {}
        rows: dict[str, dict[str, Any]] = {}
        for row in data:
            name = str(row["walletName"])
            balance = _dec(row.get("balance"))
            key = _wallet_key(name)
            result[key] = result.get(key, ZERO) + balance
            rows[key] = {"name": name, "balance": balance, "shown": str(row.get("balance"))}
        result["_rows"] = rows
        return result


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

    def spot(self, account: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
        """E5 balances; returns the ``LD<asset>`` mirrors of flexible Earn instead of adding them
        (rotki's rule: ``LD`` prefix and at least 5 characters, so Lido's LDO stays)."""
        mirrors = []
        with parsing(ACCOUNT):
            self.wallet("spot")
            for row in account.get("balances") or ():
                asset = str(row["asset"])
                free, locked = _dec(row.get("free")), _dec(row.get("locked"))
                if asset.startswith("LD") and len(asset) >= 5:
                    mirrors.append((asset[2:], free, locked))
                else:
                    self.add("spot", asset, free, locked)
        return mirrors

    def mirrors(self, mirrors: list[tuple[str, Decimal, Decimal]]) -> None:
        for asset, free, locked in mirrors:
            self.add("earn-flexible", asset, free + locked)

    def funding(self, data: Any) -> None:
        with parsing(FUNDING):
            self.wallet("funding")
            for row in data:
                held = _dec(row.get("locked")) + _dec(row.get("freeze")) + _dec(row.get("withdrawing"))
                self.add("funding", str(row["asset"]), _dec(row.get("free")), held)

    def earn(self, wallet: str, rows: list[dict[str, Any]], amount_field: str) -> None:
        path = EARN_FLEXIBLE if wallet == "earn-flexible" else EARN_LOCKED
        with parsing(path):
            self.wallet(wallet)
            for row in rows:
                self.add(wallet, str(row["asset"]), _dec(row.get(amount_field)))

    def margin(self, data: Any) -> None:
        """E11: net assets; what is borrowed plus interest is debt (negative)."""
        with parsing(CROSS_MARGIN):
            self.wallet("margin")
            for row in data.get("userAssets") or ():
                owed = _dec(row.get("borrowed")) + _dec(row.get("interest"))
                self.add("margin", str(row["asset"]), _dec(row.get("free")), _dec(row.get("locked")), -owed)

    def futures(self, data: Any) -> None:
        """E13: the wallet balance per asset; unrealised PnL is shown aside, never valued."""
        with parsing(FUTURES):
            self.wallet("futures")
            for row in data:
                asset = str(row["asset"])
                self.add("futures", asset, _dec(row.get("balance")))
                pnl = _dec(row.get("crossUnPnl"))
                if pnl:
                    self.other.append(OtherLine("futures", asset, "unrealized-pnl", pnl))

    def result(self, unread: list[dict[str, Any]]) -> BalanceRead:
        lines = tuple(
            WalletLine(wallet=wallet, asset=asset, available=a, in_orders=o, debt=d)
            for (wallet, asset), (a, o, d) in self.amounts.items()
        )
        return BalanceRead(
            lines=lines, wallets=tuple(self.wallets), unread=tuple(unread), other=tuple(self.other)
        )


def unread_collector(unread: list[dict[str, Any]]):
    @contextmanager
    def wallet(kind: str, name: str, quiet_codes: tuple[str, ...] = ()) -> Iterator[None]:
        try:
            yield
        except BinanceError as error:
            if error.code not in _WALLET_REFUSALS and error.kind not in (
                ErrorKind.KEY_IP_OR_PERMISSION,
                ErrorKind.NO_PERMISSION,
            ):
                raise  # transient or unexpected: the whole read is retried
            if error.code in quiet_codes:
                return
            unread.append(
                {"type": kind, "id": name, "reason": f"Binance refused this key: {error.detail}"[:300]}
            )

    return wallet
