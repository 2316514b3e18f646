"""The Bybit V5 endpoints this dashboard calls (bybit-api.md §5: E-numbers), and Bybit's sites.

A key works only on the host of the site where it was created (bybit-api.md §1), so the site
is part of the credentials (``Credentials.extra["site"]``). EU (api.bybit.eu) is not offered:
Bybit EU accounts cannot create ordinary API keys ("81007 Bybit Europe is not supported create
API Key").
"""

from __future__ import annotations

TIME = "/v5/market/time"  # E1, public
API_KEY = "/v5/user/query-api"  # E2
ACCOUNT_INFO = "/v5/account/info"  # E3
WALLET = "/v5/account/wallet-balance"  # E4, accountType=UNIFIED
FUNDING = "/v5/asset/transfer/query-account-coins-balance"  # E5, accountType=FUND
TICKERS = "/v5/market/tickers"  # E7, public, category=spot
SYSTEM_STATUS = "/v5/system/status"  # E9, public

PUBLIC_PATHS = frozenset({TIME, TICKERS, SYSTEM_STATUS, "/v5/market/instruments-info"})

DEFAULT_SITE = "global"
# site -> (API host, label in the connect dialog). Global first: the default choice.
SITES: dict[str, tuple[str, str]] = {
    "global": ("api.bybit.com", "Global (bybit.com)"),
    "nl": ("api.bybit.nl", "Netherlands (bybit.nl)"),
    "tr": ("api.bybit.tr", "Turkey (bybit.tr)"),
    "kz": ("api.bybit.kz", "Kazakhstan (bybit.kz)"),
    "ge": ("api.bybitgeorgia.ge", "Georgia (bybitgeorgia.ge)"),
    "ae": ("api.bybit.ae", "United Arab Emirates (bybit.ae)"),
    "id": ("api.bybit.id", "Indonesia (bybit.id)"),
    "jp": ("api.manepa.jp", "Japan (manepa.jp)"),
}
# Hosts that are Bybit itself (not a proxy or a sandbox): another environment the operator
# chose (testnet, demo trading, the bytick.com mirror) is used as it is.
BYBIT_DOMAINS = (
    "bybit.com",
    "bytick.com",
    "bybit.nl",
    "bybit.tr",
    "bybit-tr.com",
    "bybit.kz",
    "bybitgeorgia.ge",
    "bybit.ae",
    "bybit.id",
    "manepa.jp",
    "bybit.eu",
    "bybit.com.hk",
)


def host_of(site: str) -> str:
    return SITES.get(site, SITES[DEFAULT_SITE])[0]


def label_of(site: str) -> str:
    return SITES.get(site, SITES[DEFAULT_SITE])[1]


def is_bybit_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith(f".{domain}") for domain in BYBIT_DOMAINS)
