"""Binance's request limits as data for the gate (binance-api.md §4 and §8).

Binance counts request *weight* per IP address, so every user of this server shares it
(``shared=True``): ``/api/*`` one budget of 6,000 per minute for all endpoints; ``/sapi/*``
IP-limited endpoints a separate 12,000 per minute; USDⓈ-M futures (``/fapi/*``, another
host) its own 2,400 per minute. Each endpoint costs its own weight against its family's
budget: the ``Limit`` objects of one family share ``group``, so the gate counts them in one
window.
"""

from __future__ import annotations

from exchanges.venues.kit.venue import Limit

from .endpoints import ACCOUNT, FUNDING, KEY_PERMISSIONS, OVERVIEW

MINUTE_MS = 60_000
API_LIMIT = 6_000
SAPI_IP_LIMIT = 12_000
FAPI_LIMIT = 2_400

_FAMILIES = {"api": API_LIMIT, "sapi": SAPI_IP_LIMIT, "fapi": FAPI_LIMIT}

# Weight per request of each endpoint the client calls.
WEIGHTS: dict[str, int] = {
    "/api/v3/time": 1,  # E1
    "/api/v3/exchangeInfo": 20,  # E2
    "/api/v3/ticker/price": 4,  # E3, every symbol
    "/api/v3/account": 20,  # E5
    "/api/v3/order/test": 1,  # E16
    "/sapi/v1/account/apiRestrictions": 1,  # E4
    "/sapi/v1/asset/get-funding-asset": 1,  # E6
    "/sapi/v1/asset/wallet/balance": 60,  # E7
    "/sapi/v3/asset/getUserAsset": 5,  # E8
    "/sapi/v1/simple-earn/flexible/position": 150,  # E9
    "/sapi/v1/simple-earn/locked/position": 150,  # E9
    "/sapi/v1/simple-earn/account": 150,  # E10
    "/sapi/v1/margin/account": 10,  # E11
    "/sapi/v1/margin/isolated/account": 10,  # E12
    "/sapi/v1/system/status": 1,  # E15
    "/fapi/v2/balance": 5,  # E13
}
# An endpoint not in the table is counted at a cautious weight of its family.
DEFAULT_WEIGHTS = {"api": 20, "sapi": 10, "fapi": 5}


def family_of(path: str) -> str:
    head = path.lstrip("/").split("/", 1)[0]
    return head if head in _FAMILIES else "api"


def _limit(family: str, weight: int) -> Limit:
    return Limit(family, _FAMILIES[family], MINUTE_MS, shared=True, weight=weight)


LIMITS: dict[str, Limit] = {path: _limit(family_of(path), weight) for path, weight in WEIGHTS.items()}
# One entry per family for paths the table does not name.
LIMITS.update({family: _limit(family, DEFAULT_WEIGHTS[family]) for family in _FAMILIES})


def limit_for(path: str) -> Limit:
    """The budget and weight of one request to ``path`` (a Binance path, no query)."""
    return LIMITS.get(path) or LIMITS[family_of(path)]


# A scheduled refresh: E4 (the key's permissions), E5 (spot, and the uid), E6 (funding), E7 (the
# wallet overview). Earn, margin and futures are read only when E7 shows money there.
REFRESH_PATHS: tuple[str, ...] = (KEY_PERMISSIONS, ACCOUNT, FUNDING, OVERVIEW)
