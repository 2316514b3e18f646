"""Neutral results every venue maps its answers to. Amounts are Decimal, never float."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the user pasted, cleaned. ``extra`` holds venue-specific fields by their form name:
    "passphrase" (a secret like the Secret Key), "site" (the venue's site/region chosen)."""

    api_key: str
    secret: str
    extra: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never the secret, not even in a traceback's locals
        return f"<Credentials {self.api_key[:4]}…>"


@dataclass(frozen=True, slots=True)
class Flag:
    """One permission as the venue names it, for "What <venue> told us about this key"."""

    name: str  # the venue's own words, e.g. "Enable Spot & Margin Trading"
    on: bool
    danger: bool = False  # a money-moving permission we refuse or warn about (Withdraw)
    required: bool = False  # the dashboard needs it on (read, trade)


@dataclass(frozen=True, slots=True)
class Prior:
    """What we already know about a connection's key from earlier checks."""

    account_uid: str | None = None  # a key never changes account: saves a call where it can
    described: bool = False  # the venue described this key before (so "won't describe" is news)
    # The expiry the venue gave while the key still worked: tells "expired" from "unknown key"
    # where the venue answers both with one code.
    key_expires_at: datetime | None = None
    # What the venue's client kept from the last check (``KeyFacts.keep``), as stored.
    kept: Any = None


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What the venue says a key may do. ``known`` False: the venue would not describe the key
    (e.g. HTX sub-user keys); it proved it can read, nothing more."""

    can_read: bool
    can_trade: bool
    can_withdraw: bool
    known: bool = True
    account_uid: str | None = None
    # The venue's own names of the permissions that are on, as it sends them ("readOnly").
    permissions: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()
    # IP binding: the addresses when the venue shows them; ``ip_restricted`` when it only says
    # whether there is a list (None: unknown).
    ip_addresses: tuple[str, ...] = ()
    ip_restricted: bool | None = None
    # The whole key's expiry, and the trading right's where a venue expires only that;
    # None: no expiry known.
    key_expires_at: datetime | None = None
    key_expired: bool = False
    trading_expires_at: datetime | None = None
    trading_expired: bool = False
    skew_ms: int = 0  # the venue's clock minus ours, as measured for this check
    # The venue deletes the key after this many days without a signed call (None: no such rule).
    idle_deletion_days: int | None = None
    # The venue's site (region) the key answered on, when the client found it on another site
    # than the one the user chose (Credentials.extra["site"]); None: the chosen one.
    site: str | None = None
    # The venue's own words about the key, one line, for the "Details from <venue>" of a refusal.
    summary: str = ""
    # Whatever the venue's client needs to read balances afterwards (e.g. HTX's account list).
    context: Any = None
    # What the client asks to be given back at the key's next check (``Prior.kept``) to save
    # calls there: plain JSON, never a secret. None: nothing.
    keep: Any = None


@dataclass(frozen=True, slots=True)
class WalletLine:
    """One asset in one wallet: ``available`` + ``in_orders`` is held; ``debt`` (zero or
    negative) is owed, and subtracted from the value."""

    wallet: str  # spot, funding, earn-flexible, margin, ...
    asset: str  # as the venue writes it; valuation compares upper case
    available: Decimal = ZERO
    in_orders: Decimal = ZERO
    debt: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class OtherLine:
    """A figure that is neither a holding nor debt (e.g. HTX's loan-available): shown as sent,
    never added to a value."""

    wallet: str
    asset: str
    type: str
    balance: Decimal


@dataclass(frozen=True, slots=True)
class BalanceRead:
    lines: tuple[WalletLine, ...]
    wallets: tuple[str, ...]  # the wallets read, in the order read
    # Wallets the key could not read, kept rather than failing the whole read:
    # [{"type": wallet, "id": venue's id or "", "reason": text}]
    unread: tuple[dict[str, Any], ...] = ()
    other: tuple[OtherLine, ...] = ()
