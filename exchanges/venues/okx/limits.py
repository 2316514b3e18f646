"""OKX's request limits as data for the gate (okx-api.md §4 and §8).

OKX limits each endpoint on its own: private endpoints per User ID (a sub-account has its own;
the gate counts them per the worker's scope, ``uid:<uid>`` once known), public ones per IP
address, so every user of this server shares them (``shared=True``). Each endpoint is its own
group: one request costs 1 against its endpoint's window. No rate-limit headers are documented.
"""

from __future__ import annotations

from exchanges.venues.kit.venue import Limit

from .endpoints import (
    ACCOUNT_CONFIG,
    ASSET_VALUATION,
    CURRENCIES,
    FUNDING_BALANCE,
    INSTRUMENTS,
    SAVINGS_BALANCE,
    SYSTEM_STATUS,
    TICKER,
    TICKERS,
    TIME,
    TRADING_BALANCE,
)

# (path, requests, window in ms, per IP)
_TABLE: tuple[tuple[str, int, int, bool], ...] = (
    (TIME, 10, 2_000, True),  # E1
    (ACCOUNT_CONFIG, 5, 2_000, False),  # E2
    (TRADING_BALANCE, 10, 2_000, False),  # E3
    (FUNDING_BALANCE, 6, 1_000, False),  # E4
    (SAVINGS_BALANCE, 6, 1_000, False),  # E5
    (ASSET_VALUATION, 1, 1_000, False),  # E6
    (TICKERS, 20, 2_000, True),  # E7
    (TICKER, 20, 2_000, True),  # E8
    (SYSTEM_STATUS, 1, 5_000, True),  # E9
    (INSTRUMENTS, 20, 2_000, True),
    (CURRENCIES, 6, 1_000, False),
)

LIMITS: dict[str, Limit] = {
    path: Limit(path, limit, window_ms, shared=shared) for path, limit, window_ms, shared in _TABLE
}
# Paths the table does not name, at the most cautious limit of their kind: the public market
# and data endpoints per IP, everything else (signed) per User ID.
LIMITS["public"] = Limit("public", 10, 2_000, shared=True)
LIMITS["private"] = Limit("private", 5, 2_000)

_PUBLIC_PREFIXES = ("/api/v5/public/", "/api/v5/market/", "/api/v5/system/")


def is_public(path: str) -> bool:
    return path.startswith(_PUBLIC_PREFIXES)


def limit_for(path: str) -> Limit:
    """The limit one request to ``path`` (an OKX path, no query) counts against."""
    path = path.split("?", 1)[0]
    return LIMITS.get(path) or LIMITS["public" if is_public(path) else "private"]


# A scheduled refresh: E2 (the key), E3 (trading), E4 (funding), E5 (Simple Earn), E6 (OKX's
# valuation). All per User ID: none counts against this server's per-IP limits.
REFRESH_PATHS: tuple[str, ...] = (
    ACCOUNT_CONFIG,
    TRADING_BALANCE,
    FUNDING_BALANCE,
    SAVINGS_BALANCE,
    ASSET_VALUATION,
)
