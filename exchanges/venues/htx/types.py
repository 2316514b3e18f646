"""Typed results of HTX calls. Amounts are Decimal, parsed from HTX's strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    access_key: str
    status: str  # "normal" or "expired"
    note: str
    permissions: frozenset[str]  # subset of {"readOnly", "trade", "withdraw"}
    ip_addresses: tuple[str, ...]  # empty: not bound to any IP
    valid_days: int  # -1: never expires
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    type: str  # spot, otc, point, margin, super-margin, ...
    state: str  # working or lock
    subtype: str = ""


@dataclass(frozen=True, slots=True)
class BalanceLine:
    currency: str  # lower case, as HTX sends it
    type: str  # trade (available), frozen (in orders), or others on margin accounts
    balance: Decimal


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account: Account
    lines: tuple[BalanceLine, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class RateLimit:
    remaining: int | None
    expires_at_ms: int | None
