"""HTX's request limits as data for the gate (htx-api.md §6, DOCS21 and HTX's newer guards).

Per UID for the account endpoints, per key for the others, per IP for public ones: the worker
passes ``uid:<uid>`` (or the key's own scope) for signed calls and ``ip`` for public ones.
"""

from __future__ import annotations

import re

from exchanges.venues.kit.venue import Limit

LIMITS: dict[str, Limit] = {
    "accounts": Limit("accounts", 100, 2000),  # E4, per UID
    "balance": Limit("balance", 100, 2000),  # E5, per UID (every account's balance shares it)
    "asset-valuation": Limit("asset-valuation", 100, 2000),  # E7, per UID
    "uid": Limit("uid", 20, 2000),  # E2
    "api-key": Limit("api-key", 20, 2000),  # E3
    "timestamp": Limit("timestamp", 100, 2000),  # E1, public: per IP
    "tickers": Limit("tickers", 10, 1000),  # E6, public: per IP
    "other": Limit("other", 10, 1000),  # HTX's default: 10 per second per key
}
_GROUP_BY_PATH = {
    "/v1/account/accounts": "accounts",
    "/v2/account/asset-valuation": "asset-valuation",
    "/v2/user/uid": "uid",
    "/v2/user/api-key": "api-key",
    "/v1/common/timestamp": "timestamp",
    "/market/tickers": "tickers",
}
_BALANCE = re.compile(r"/v1/account/accounts/\d+/balance")


def group_of(path: str) -> str:
    group = _GROUP_BY_PATH.get(path)
    if group is None:
        group = "balance" if _BALANCE.fullmatch(path) else "other"
    return group


def limit_for(path: str) -> Limit:
    return LIMITS[group_of(path)]


# A scheduled refresh (the uid already known): E3 (the key), E4 (accounts), E5 once per account
# (its id in the path). All per UID or per key: none counts against this server's per-IP limits.
REFRESH_PATHS: tuple[str, ...] = (
    "/v2/user/api-key",
    "/v1/account/accounts",
    "/v1/account/accounts/1/balance",
)
