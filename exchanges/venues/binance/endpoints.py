"""The Binance endpoints this dashboard calls (binance-api.md §4: E-numbers)."""

TIME = "/api/v3/time"  # E1
PRICES = "/api/v3/ticker/price"  # E3
KEY_PERMISSIONS = "/sapi/v1/account/apiRestrictions"  # E4
ACCOUNT = "/api/v3/account"  # E5
FUNDING = "/sapi/v1/asset/get-funding-asset"  # E6
OVERVIEW = "/sapi/v1/asset/wallet/balance"  # E7
EARN_FLEXIBLE = "/sapi/v1/simple-earn/flexible/position"  # E9
EARN_LOCKED = "/sapi/v1/simple-earn/locked/position"  # E9
CROSS_MARGIN = "/sapi/v1/margin/account"  # E11
FUTURES = "/fapi/v2/balance"  # E13
SYSTEM_STATUS = "/sapi/v1/system/status"  # E15
