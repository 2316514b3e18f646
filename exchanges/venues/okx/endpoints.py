"""The OKX endpoints this dashboard calls (okx-api.md §4: E-numbers) and OKX's sites (§1.1)."""

from __future__ import annotations

TIME = "/api/v5/public/time"  # E1
ACCOUNT_CONFIG = "/api/v5/account/config"  # E2: the key's permissions, IP binding, uid
TRADING_BALANCE = "/api/v5/account/balance"  # E3
FUNDING_BALANCE = "/api/v5/asset/balances"  # E4
SAVINGS_BALANCE = "/api/v5/finance/savings/balance"  # E5: Simple Earn flexible
ASSET_VALUATION = "/api/v5/asset/asset-valuation"  # E6: OKX's own totals, a cross-check only
TICKERS = "/api/v5/market/tickers"  # E7
TICKER = "/api/v5/market/ticker"  # E8
SYSTEM_STATUS = "/api/v5/system/status"  # E9
INSTRUMENTS = "/api/v5/public/instruments"
CURRENCIES = "/api/v5/asset/currencies"

DEFAULT_BASE_URL = "https://www.okx.com"

# A key works only on the REST host of the site where its account was registered; OKX answers
# 50119 "API key doesn't exist" on the others (§1.2). The first is the default.
SITES: dict[str, str] = {
    "global": "www.okx.com",
    "eea": "eea.okx.com",
    "us": "us.okx.com",
}
SITE_LABELS: dict[str, str] = {
    "global": "Global (www.okx.com)",
    "eea": "EEA (my.okx.com)",
    "us": "US and Australia (app.okx.com)",
}
DEFAULT_SITE = "global"
