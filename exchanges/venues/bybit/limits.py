"""Bybit's request limits as data for the gate (bybit-api.md §10).

- **Per UID, per endpoint**, rolling one second: every key of one Bybit account shares them, so
  signed calls count against the worker's scope (``uid:<uid>`` once known). Over it: 10006.
- **Per IP**, 600 requests per 5 s for all HTTP traffic to the API hosts, shared by every user
  of this server (``shared``). Over it: HTTP 403 and at least 10 minutes without access.

``limit_for`` gives each request its own ``Limit``: signed endpoints their per-UID limit, public
market endpoints the per-IP budget. The per-IP budget also counts signed calls on Bybit's side,
so it is also a traffic limit (``TRAFFIC_LIMITS``): the gate admits every request against it
too. Should a 403 come anyway, it blocks every worker for the 10 minutes (see ``client``).
"""

from __future__ import annotations

from exchanges.venues.kit.venue import Limit

from .endpoints import ACCOUNT_INFO, API_KEY, FUNDING, PUBLIC_PATHS, SYSTEM_STATUS, TICKERS, TIME, WALLET

SECOND_MS = 1_000
IP_WINDOW_MS = 5_000
IP_LIMIT = 600
IP_GROUP = "ip"

# Requests per second per UID (DOCS rate-limit/rate-limit).
PER_UID: dict[str, int] = {
    API_KEY: 10,  # E2
    ACCOUNT_INFO: 50,  # E3
    WALLET: 50,  # E4
    FUNDING: 5,  # E5 (ccxt budgets 2/s)
    "/v5/asset/transfer/query-account-coin-balance": 450,
    "/v5/asset/asset-overview": 50,  # E6
    "/v5/user/get-member-type": 10,  # E10
    "/v5/asset/coin/query-info": 5,
}
# A signed endpoint the table does not name: a cautious 5 per second.
DEFAULT_PER_UID = 5

PER_IP = Limit(IP_GROUP, IP_LIMIT, IP_WINDOW_MS, shared=True)

LIMITS: dict[str, Limit] = {path: Limit(path, limit, SECOND_MS) for path, limit in PER_UID.items()}
LIMITS.update(dict.fromkeys((TIME, TICKERS, SYSTEM_STATUS, *PUBLIC_PATHS), PER_IP))
LIMITS[IP_GROUP] = PER_IP
LIMITS["signed"] = Limit("signed", DEFAULT_PER_UID, SECOND_MS)


def limit_for(path: str) -> Limit:
    """The limit one request to ``path`` (a Bybit path, no query) counts against."""
    if path in LIMITS:
        return LIMITS[path]
    if path.startswith("/v5/market/") or path in PUBLIC_PATHS:
        return PER_IP
    return LIMITS["signed"]


# A scheduled refresh: E2 (the key), E4 (Unified Trading Account), E5 (Funding Account).
REFRESH_PATHS: tuple[str, ...] = (API_KEY, WALLET, FUNDING)
# Bybit's per-IP budget counts every request, signed ones too.
TRAFFIC_LIMITS: tuple[Limit, ...] = (PER_IP,)
