"""HTX's answers in the kit's neutral words: key facts, wallet lines, prices.

``HtxVenueClient`` is the HTX client plus the three calls the worker makes through the venue
protocol (``exchanges.venues.kit.venue.VenueClient``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from exchanges.venues.kit.types import BalanceRead, Flag, KeyFacts, OtherLine, Prior, WalletLine

from .client import HtxClient
from .errors import ErrorKind, HtxError
from .types import Account, AccountBalance, ApiKeyInfo

# What each HTX balance line type means (docs/htx.md has the full table): ``trade`` is
# available and ``frozen`` is held by open orders; ``loan`` and ``interest`` (margin accounts,
# negative numbers) are debt; anything else (``transfer-out-available``, ``loan-available``,
# ``lock``, ...) is a derived or unknown figure, kept for display and never valued.
_HOLDING_TYPES = {"trade": "available", "frozen": "in_orders"}
_DEBT_TYPES = ("loan", "interest")
# (HTX's name, ours, danger, required)
_FLAGS = (
    ("readOnly", "Read", False, True),
    ("trade", "Trade", False, True),
    ("withdraw", "Withdraw", True, False),
)
# How long a key's account list, kept from an earlier check (KeyFacts.keep), stands in for the
# accounts call: a refresh then makes two calls instead of three. The key-info call, made at
# every check, still proves key, secret and IP binding and reads the permissions; an account the
# user opens later is read within this time.
KEPT_ACCOUNTS_SECONDS = 3600


class HtxVenueClient(HtxClient):
    def inspect_key(self, prior: Prior) -> KeyFacts:
        """What HTX says about the key. ``prior.described``: HTX described this key before, so a
        refusal to describe it now is not taken for a sub-user key (that would fail open).
        ``prior.account_uid``: the key's HTX account, when known (a key never changes account),
        saves a call."""
        # The accounts call proves key, secret and IP binding at once; it works for every key type.
        # A key HTX described before proves them with the key-info call below, so its account
        # list, kept from a recent check, is not asked for again.
        accounts = kept_accounts(prior)
        if accounts is None:
            accounts = self.accounts()
            keep = keep_accounts(accounts)
        else:
            keep = prior.kept
        uid = int(prior.account_uid) if prior.account_uid else None
        try:
            uid = uid or self.uid()
            info = self.api_key_info(uid)
        except HtxError as error:
            # Sub-user keys get "forbidden" (1002), or per the docs a plain 403, right after the
            # accounts call has accepted the same key.
            if prior.described or not (error.kind == ErrorKind.FORBIDDEN or error.code == "403"):
                raise
            # HTX answers "forbidden" to sub-user keys on both calls (htx-api.md §4 E3, not
            # confirmed today). Failing safe: such keys cannot hold Withdraw permission (§7), and
            # the accounts call above proved they can read; the user is told what went unchecked.
            return KeyFacts(
                can_read=True,
                can_trade=True,
                can_withdraw=False,
                known=False,
                skew_ms=self.clock_offset_ms,
                context=accounts,
            )
        facts = facts_from_key_info(info, uid=uid, skew_ms=self.clock_offset_ms, accounts=accounts)
        return replace(facts, keep=keep)

    def read_balances(self, facts: KeyFacts) -> BalanceRead:
        """Every account the key can see. An account HTX refuses (other than spot) is recorded
        as unread instead of failing the whole read; a transient failure fails it all."""
        balances, unread = [], []
        for account in facts.context or ():
            try:
                balances.append(self.balance(account))
            except HtxError as error:
                if account.type == "spot" or not error.permanent:
                    raise
                unread.append({"type": account.type, "id": account.id, "reason": error.detail[:200]})
        return balance_read(balances, unread)

    def prices(self) -> dict[str, Decimal]:
        return {symbol.upper(): price for symbol, price in self.tickers().items()}


def keep_accounts(accounts: list[Account]) -> dict:
    """A key's account list as kept for its next checks (``kept_accounts``)."""
    return {"accounts": [[a.id, a.type, a.state, a.subtype] for a in accounts], "read_at": int(time.time())}


def kept_accounts(prior: Prior) -> list[Account] | None:
    """The account list kept from an earlier check, while it may stand in for the accounts call:
    a key HTX described (never a sub-user key, whose accounts call is its only proof), read
    less than KEPT_ACCOUNTS_SECONDS ago. None: ask HTX."""
    kept: Any = prior.kept
    if not (prior.described and prior.account_uid and isinstance(kept, dict)):
        return None
    try:
        age = time.time() - float(kept["read_at"])
        accounts = [
            Account(id=int(i), type=str(t), state=str(st), subtype=str(sub))
            for i, t, st, sub in kept["accounts"]
        ]
    except (KeyError, TypeError, ValueError):
        return None  # not what keep_accounts writes: ask HTX
    return accounts if accounts and -60 < age < KEPT_ACCOUNTS_SECONDS else None


def facts_from_key_info(
    info: ApiKeyInfo, *, uid: int | None, skew_ms: int, accounts: list[Account] | None = None
) -> KeyFacts:
    permissions = info.permissions
    expired = info.status == "expired" or info.valid_days == 0
    expires = datetime.now(UTC) + timedelta(days=info.valid_days) if info.valid_days > 0 else None
    return KeyFacts(
        can_read="readOnly" in permissions,
        can_trade="trade" in permissions,
        can_withdraw="withdraw" in permissions,
        account_uid=str(uid) if uid is not None else None,
        permissions=tuple(sorted(permissions)),
        flags=tuple(
            Flag(name, code in permissions, danger, required) for code, name, danger, required in _FLAGS
        ),
        ip_addresses=info.ip_addresses,
        ip_restricted=bool(info.ip_addresses),
        key_expires_at=expires,
        key_expired=expired,
        skew_ms=skew_ms,
        summary=f"permission: {','.join(sorted(permissions)) or '(none)'}; status: {info.status}; "
        f"validDays: {info.valid_days}",
        context=accounts,
    )


def balance_read(balances: list[AccountBalance], unread: list[dict]) -> BalanceRead:
    """HTX's balance lines per account as neutral wallet lines (one per account type and
    currency), with the figures that are neither holdings nor debt kept aside."""
    amounts: dict[tuple[str, str], dict[str, Decimal]] = {}
    other: list[OtherLine] = []
    wallets: list[str] = []
    for balance in balances:
        wallet = balance.account.type
        if wallet not in wallets:
            wallets.append(wallet)
        for line in balance.lines:
            slot = amounts.setdefault((wallet, line.currency), {})
            if line.type in _HOLDING_TYPES:
                field = _HOLDING_TYPES[line.type]
                slot[field] = slot.get(field, Decimal(0)) + line.balance
            elif line.type in _DEBT_TYPES:
                slot["debt"] = slot.get("debt", Decimal(0)) + line.balance
            elif line.balance:
                other.append(OtherLine(wallet, line.currency, line.type, line.balance))
    lines = tuple(
        WalletLine(wallet=wallet, asset=currency, **slot) for (wallet, currency), slot in amounts.items()
    )
    return BalanceRead(lines=lines, wallets=tuple(wallets), unread=tuple(unread), other=tuple(other))
