"""The Binance sandbox's data model: the demo key format and its checks, amounts as Binance
writes them, prices and their routes to USDT, and the rows of Binance's answers.

Part of ``exchanges.venues.binance.sandbox`` (import from there); split out to keep modules
short. § numbers refer to shared/binance-api.md; choices are marked ``Choice:``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from exchanges.venues.kit.sandbox import check_key_fields


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    security: str  # NONE, USER_DATA or TRADE (§2 step 1)
    weight: int  # §4
    params: tuple[str, ...]  # what it reads (signed ones also timestamp, recvWindow, signature)
    handler: str


_ORDER_PARAMS = (
    "symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price", "newClientOrderId",
    "strategyId", "strategyType", "stopPrice", "trailingDelta", "icebergQty", "newOrderRespType",
    "selfTradePreventionMode", "pegPriceType", "pegOffsetValue", "pegOffsetType", "computeCommissionRates",
)  # fmt: skip
_SYMBOLS = ("symbol", "symbols", "symbolStatus")
_EARN = ("asset", "current", "size")
# E1–E16 of §4 that the sandbox serves: method, path, security, weight, parameters, handler.
SPECS = (
    Endpoint("GET", "/api/v3/time", "NONE", 1, (), "_time"),  # E1
    Endpoint("GET", "/api/v3/exchangeInfo", "NONE", 20, (*_SYMBOLS, "permissions", "showPermissionSets"),
             "_exchange_info"),  # E2
    Endpoint("GET", "/api/v3/ticker/price", "NONE", 4, _SYMBOLS, "_ticker_price"),  # E3 (2 for one symbol)
    Endpoint("GET", "/sapi/v1/account/apiRestrictions", "USER_DATA", 1, (), "_api_restrictions"),  # E4
    Endpoint("GET", "/api/v3/account", "USER_DATA", 20, ("omitZeroBalances",), "_account"),  # E5
    Endpoint("POST", "/sapi/v1/asset/get-funding-asset", "USER_DATA", 1, ("asset", "needBtcValuation"),
             "_funding"),  # E6
    Endpoint("GET", "/sapi/v1/asset/wallet/balance", "USER_DATA", 60, ("quoteAsset", "needBalanceDetail"),
             "_wallet_balance"),  # E7
    Endpoint("GET", "/sapi/v1/simple-earn/flexible/position", "USER_DATA", 150, (*_EARN, "productId"),
             "_earn_flexible"),  # E9
    Endpoint("GET", "/sapi/v1/simple-earn/locked/position", "USER_DATA", 150,
             (*_EARN, "positionId", "projectId"), "_earn_locked"),  # E9
    Endpoint("GET", "/sapi/v1/margin/account", "USER_DATA", 10, (), "_margin"),  # E11
    Endpoint("GET", "/fapi/v2/balance", "USER_DATA", 5, (), "_futures"),  # E13
    Endpoint("GET", "/sapi/v1/system/status", "NONE", 1, (), "_system_status"),  # E15
    Endpoint("POST", "/api/v3/order/test", "TRADE", 1, _ORDER_PARAMS, "_order_test"),  # E16 (20 with rates)
)  # fmt: skip
ENDPOINTS = tuple(f"{spec.method} {spec.path}" for spec in SPECS)
SYSTEM_STATUS = "/sapi/v1/system/status"


# E4's flags (§4), all booleans; a key entry may leave one out (False, enableReading True).
FLAGS = (
    "enableReading", "enableSpotAndMarginTrading", "enableWithdrawals", "enableInternalTransfer",
    "enableMargin", "enableFutures", "permitsUniversalTransfer", "enableVanillaOptions",
    "enableFixApiTrade", "enableFixReadOnly", "enablePortfolioMarginTrading",
)  # fmt: skip
# Fields of a key entry that POST /_sandbox/keys/<API key> may change, with their JSON types.
KEY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "note": str,
    "ipRestrict": bool,
    "ips": list,
    **dict.fromkeys(FLAGS, bool),
    "createTimeDaysAgo": int,
    "tradingExpiresInDays": (int, float, type(None)),
    "spot": list,
    "funding": list,
    "earnFlexible": list,
    "earnLocked": list,
    "margin": (dict, type(None)),
    "futures": (list, type(None)),
}
# The wallets of a key entry; margin is {"userAssets": [...]} or null, futures a list or null.
WALLETS = ("spot", "funding", "earnFlexible", "earnLocked", "margin", "futures")
_ALNUM64 = re.compile(r"[A-Za-z0-9]{64}")

SYMBOL_STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")  # §4 E3 (enums.md)
# Errors.md's legal range for ``symbols`` (Choice: the text of the spot API's -1100 for it).
SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
# §4 E7: the wallets, named exactly as Binance does (U+24C8 in "USDⓈ-M Futures").
WALLET_NAMES = (
    "Spot", "Funding", "Cross Margin", "Isolated Margin", "USDⓈ-M Futures", "COIN-M Futures",
    "Earn", "Options", "Trading Bots", "Copy Trading",
)  # fmt: skip
_PLACES = Decimal("0.00000001")
ZERO = Decimal(0)
ORDER_SIDES = ("BUY", "SELL")
ORDER_TYPES = (
    "LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER",
)  # fmt: skip


# --- data files -------------------------------------------------------------------------------


def check_key(api_key: str, entry: Mapping[str, Any]) -> None:
    """ValueError unless the entry is a well-formed demo key (format: sandbox_data/keys.json)."""
    if not _ALNUM64.fullmatch(api_key):
        raise ValueError(f"API key {api_key[:8]}…: must be 64 letters and digits")
    if str(entry.get("keyType", "HMAC")).upper() == "ED25519":
        if not isinstance(entry.get("publicKeyPem"), str):
            raise ValueError(f"{api_key[:8]}…: an ED25519 key needs publicKeyPem")
    elif not _ALNUM64.fullmatch(str(entry.get("secret", ""))):
        raise ValueError(f"{api_key[:8]}…: secret must be 64 letters and digits")
    if isinstance(entry.get("uid"), bool) or not isinstance(entry.get("uid"), int):
        raise ValueError(f"{api_key[:8]}…: uid must be an integer")
    check_key_fields({k: v for k, v in entry.items() if k in KEY_FIELDS}, KEY_FIELDS)
    ips = entry.get("ips") or []
    for ip in ips:
        ipaddress.ip_network(str(ip), strict=False)  # ValueError for a bad address
    if entry.get("ipRestrict") and not ips:
        raise ValueError(f"{api_key[:8]}…: ipRestrict needs at least one IP in ips")
    for name in WALLETS:
        value = entry.get(name)
        lines = value.get("userAssets") if name == "margin" and isinstance(value, dict) else value
        if value is not None and not (
            isinstance(lines, list)
            and all(isinstance(x, dict) and isinstance(x.get("asset"), str) for x in lines)
        ):
            raise ValueError(f"{api_key[:8]}…: {name} lines must be objects with an asset")
    if entry.get("enableWithdrawals") and not entry.get("ipRestrict"):
        # §4 E4 / §5: "You must apply the IP Access Restriction filter in order to enable
        # withdrawals", so Binance has no such key; refuse data that makes one.
        raise ValueError(f"{api_key[:8]}…: enableWithdrawals needs ipRestrict (§5)")


def check_keys(keys: Mapping[str, Any]) -> None:
    if not isinstance(keys, Mapping):
        raise ValueError("keys must be a JSON object keyed by API key")
    for api_key, entry in keys.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"{api_key[:8]}…: entry must be an object")
        check_key(api_key, entry)


# --- numbers ----------------------------------------------------------------------------------


def dec(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return ZERO
    return number if number.is_finite() else ZERO


def fmt8(value: Any) -> str:
    """Spot style: 8 decimals, e.g. ``"0.50000000"`` (§4: "8 decimals on spot")."""
    return format(dec(value).quantize(_PLACES, rounding=ROUND_DOWN), "f")


def short(value: Any) -> str:
    """SAPI style, shortened: ``"1"``, ``"0.9"`` (§4). Choice: cut to 8 decimals, rounded down."""
    number = dec(value).quantize(_PLACES, rounding=ROUND_DOWN)
    return "0" if number == 0 else format(number.normalize(), "f")


FUNDING_PARTS = ("free", "locked", "freeze", "withdrawing")  # §4 E6: all of them are the user's


def spot_total(line: Mapping[str, Any]) -> Decimal:
    return dec(line.get("free")) + dec(line.get("locked"))  # §4 E5: free + locked


def funding_total(line: Mapping[str, Any]) -> Decimal:
    return sum((dec(line.get(part)) for part in FUNDING_PARTS), ZERO)


def btc_value(book: PriceBook, line: Mapping[str, Any], amount: Decimal) -> Decimal:
    btc = book.usdt("BTC")
    return book.value(str(line["asset"]), amount) / btc if btc else ZERO


class PriceBook:
    """Last prices from the ticker table and a route to USDT per asset (§6 "Valuation"):
    USDT = 1, else <asset>USDT, else via BTC, ETH or BNB, else 1 / USDT<asset> (fiat)."""

    def __init__(self, tickers: list[dict[str, Any]], trading_only: bool = True) -> None:
        self.prices: dict[str, Decimal] = {}
        for row in list(tickers):
            if trading_only and row.get("status", "TRADING") != "TRADING":
                continue  # a BREAK pair's last price means nothing any more (§4 E3)
            price = dec(row.get("price"))
            if price > 0:
                self.prices[str(row.get("symbol"))] = price

    def usdt(self, asset: str) -> Decimal | None:
        if asset == "USDT":
            return Decimal(1)
        direct = self.prices.get(f"{asset}USDT")
        if direct is not None:
            return direct
        for via in ("BTC", "ETH", "BNB"):
            cross, leg = self.prices.get(f"{asset}{via}"), self.prices.get(f"{via}USDT")
            if cross is not None and leg is not None:
                return cross * leg
        inverse = self.prices.get(f"USDT{asset}")
        return 1 / inverse if inverse else None

    def value(self, asset: str, amount: Any) -> Decimal:
        """Amount x USDT price; Choice: an asset with no route counts 0 in Binance's totals."""
        price = self.usdt(asset)
        return dec(amount) * price if price is not None else ZERO


def _tick_size(price: Any) -> str:
    # Choice: the price's own last decimal is the tick (at most 8 decimals).
    exponent = dec(price).normalize().as_tuple().exponent
    places = min(max(-int(exponent), 0), 8) if isinstance(exponent, int) else 8
    return fmt8(Decimal(1).scaleb(-places))


def symbol_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``exchangeInfo`` symbol (SPOT "Exchange information"), with what ccxt's
    ``parse_market`` reads: status, assets, precisions, filters, permissions."""
    tick = _tick_size(row.get("price"))
    return {
        "symbol": row["symbol"],
        "status": row.get("status", "TRADING"),
        "baseAsset": row["baseAsset"],
        "baseAssetPrecision": 8,
        "quoteAsset": row["quoteAsset"],
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00000000",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def flexible_row(line: Mapping[str, Any]) -> dict[str, Any]:
    asset = str(line["asset"])
    return {  # CONN test example of E9 (flexible), amounts in 8 decimals
        "totalAmount": fmt8(line.get("totalAmount")),
        "tierAnnualPercentageRate": {},
        "latestAnnualPercentageRate": str(line.get("apr", "0.02000000")),
        "asset": asset,
        "canRedeem": True,
        "collateralAmount": "0",
        "productId": str(line.get("productId", f"{asset}001")),
        "yesterdayRealTimeRewards": "0",
        "cumulativeBonusRewards": "0",
        "cumulativeRealTimeRewards": "0",
        "cumulativeTotalRewards": "0",
        "autoSubscribe": True,
    }


def locked_row(line: Mapping[str, Any], number: int) -> dict[str, Any]:
    asset, duration = str(line["asset"]), str(line.get("duration", 90))
    return {  # CONN test example of E9 (locked)
        "positionId": int(line.get("positionId", 100000 + number)),
        "projectId": str(line.get("projectId", f"{asset}*{duration}")),
        "asset": asset,
        "amount": fmt8(line.get("amount")),
        "purchaseTime": str(line.get("purchaseTime", "1700000000000")),
        "duration": duration,
        "accrualDays": "4",
        "rewardAsset": asset,
        "APY": str(line.get("apy", "0.05")),
        "isRenewable": True,
        "isAutoRenew": True,
        "redeemDate": str(line.get("redeemDate", "1800000000000")),
        "status": "HOLDING",
    }
