"""The Bybit sandbox's data model: the endpoint table, the sites and their hosts, the demo key
format and its checks, amounts as Bybit writes them, prices and their routes to USDT, and the
rows of Bybit's market answers.

Part of ``exchanges.venues.bybit.sandbox`` (import from there); split out to keep modules
short. § numbers refer to shared/bybit-api.md; where no source says what Bybit does, the choice
is marked ``Choice:``. Standard library only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from exchanges.venues.kit.sandbox import check_key_fields

# --- endpoints (§5, §10, §11) -------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    private: bool  # signed with the X-BAPI-* headers (§2)
    limit: int | None  # per UID per second (§10); None: the IP limit only
    handler: str
    ret_msg: str  # retMsg on success: "OK", "success" or "" depending on the endpoint (§5)


FUND_BALANCE = "/v5/asset/transfer/query-account-coins-balance"
SPECS = (
    Endpoint("GET", "/v5/market/time", False, None, "_time", "OK"),  # E1
    Endpoint("GET", "/v5/user/query-api", True, 10, "_query_api", ""),  # E2
    Endpoint("GET", "/v5/account/info", True, 50, "_account_info", "OK"),  # E3
    Endpoint("GET", "/v5/account/wallet-balance", True, 50, "_wallet_balance", "OK"),  # E4
    Endpoint("GET", FUND_BALANCE, True, 5, "_coins_balance", "success"),  # E5
    Endpoint("GET", "/v5/asset/asset-overview", True, 50, "_asset_overview", "OK"),  # E6
    Endpoint("GET", "/v5/market/tickers", False, None, "_tickers", "OK"),  # E7
    Endpoint("GET", "/v5/market/instruments-info", False, None, "_instruments", "OK"),  # E8
    Endpoint("GET", "/v5/system/status", False, None, "_system_status", "OK"),  # E9
    Endpoint("GET", "/v5/user/get-member-type", True, 10, "_member_type", ""),  # E10
    Endpoint("GET", "/v5/asset/coin/query-info", True, 5, "_coin_info", ""),  # §11 (ccxt load_markets)
    # Choice: the one write endpoint, so POST signing and readOnly can be tested; it validates
    # and answers an order id, and nothing is kept or executed. Limit: Choice, 10/s.
    Endpoint("POST", "/v5/order/create", True, 10, "_order_create", "OK"),
)  # fmt: skip
ENDPOINTS = tuple(f"{spec.method} {spec.path}" for spec in SPECS)
SYSTEM_STATUS = "/v5/system/status"

# --- sites (§1) -----------------------------------------------------------------------------------

# Site id -> its API hosts. A key answers only on the hosts of its own site (§1, 10003 text).
# The ids a key entry uses are the short ones of the product's site choice; testnet and the
# demo environments are "sites" too, since their keys do not cross over either.
SITE_HOSTS: dict[str, tuple[str, ...]] = {
    "global": ("api.bybit.com", "api.bytick.com"),
    "nl": ("api.bybit.nl",),
    "tr": ("api.bybit.tr", "api.bybit-tr.com"),  # the second until 2026-03 (PYBIT still uses it)
    "kz": ("api.bybit.kz",),
    "ge": ("api.bybitgeorgia.ge",),
    "ae": ("api.bybit.ae",),
    "id": ("api.bybit.id",),
    "jp": ("api.manepa.jp",),
    "eu": ("api.bybit.eu",),  # EEA: broker keys only (§1)
    "hk": ("api.bybit.com.hk",),  # PYBIT and CCXT know it
    "testnet": ("api-testnet.bybit.com",),
    "jp-testnet": ("api-testnet.manepa.jp",),
    "demo": ("api-demo.bybit.com",),
    "demo-testnet": ("api-demo-testnet.bybit.com",),
}
HOST_SITES = {host: site for site, hosts in SITE_HOSTS.items() for host in hosts}
# §5 E6: asset-overview "does not support any regional account". Choice: served on the global
# site (and its testnet) only.
OVERVIEW_SITES = ("global", "testnet")


def host_name(host_header: str) -> str:
    """The Host header without its port, lower case, without a trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def site_of(host_header: str, own_host: str = "127.0.0.1") -> str | None:
    """The site a request's Host header names; None for a host of no Bybit site. Choice: the
    sandbox's own address, any IP literal, ``localhost`` or no Host at all count as global
    (a client pointed straight at the sandbox, not through a proxy)."""
    host = host_name(host_header)
    if host in HOST_SITES:
        return HOST_SITES[host]
    if not host or host in ("localhost", own_host.lower()):
        return "global"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return "global"


# --- key entries ------------------------------------------------------------------------------

# Every permission group query-api shows, in its order; every group is always present (§5 E2).
PERMISSION_GROUPS = (
    "ContractTrade", "Spot", "Wallet", "Options", "Derivatives", "CopyTrading", "BlockTrade",
    "Exchange", "NFT", "Affiliate", "Earn", "FiatP2P", "FiatConvertBroker", "FiatGlobalPay",
    "FiatBitPay", "BitCard", "ByXPost",
)  # fmt: skip
# Fields of a key entry that POST /_sandbox/keys/<API key> may change, with their JSON types.
KEY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "note": str,
    "site": str,
    "readOnly": int,
    "permissions": dict,
    "ips": list,
    "expiresInDays": (int, float, type(None)),
    "createdDaysAgo": (int, float),
    "isMaster": bool,
    "parentUid": str,
    "uta": int,
    "unifiedMarginStatus": int,
    "type": int,
    "vipLevel": str,
    "kycLevel": str,
    "kycRegion": str,
    "unified": list,
    "fund": list,
    "earn": list,
}
WALLETS = ("unified", "fund", "earn")
_KEY_RE = re.compile(r"[A-Za-z0-9]{18}")  # §2 "Key formats"
_SECRET_RE = re.compile(r"[A-Za-z0-9]{36}")


def check_key(api_key: str, entry: Mapping[str, Any]) -> None:
    """ValueError unless the entry is a well-formed demo key (format: sandbox_data/keys.json)."""
    name = f"{api_key[:6]}…"
    if not _KEY_RE.fullmatch(api_key):
        raise ValueError(f"API key {name}: must be 18 letters and digits")
    if entry.get("rsaPublicKey"):
        if "BEGIN PUBLIC KEY" not in str(entry["rsaPublicKey"]):
            raise ValueError(f"{name}: rsaPublicKey must be a PEM public key")
    elif not _SECRET_RE.fullmatch(str(entry.get("secret", ""))):
        raise ValueError(f"{name}: secret must be 36 letters and digits")
    if isinstance(entry.get("uid"), bool) or not isinstance(entry.get("uid"), int):
        raise ValueError(f"{name}: uid must be an integer")
    check_key_fields({k: v for k, v in entry.items() if k in KEY_FIELDS}, KEY_FIELDS)
    if entry.get("site", "global") not in SITE_HOSTS:
        raise ValueError(f"{name}: site must be one of {', '.join(SITE_HOSTS)}")
    if entry.get("readOnly", 0) not in (0, 1) or entry.get("uta", 1) not in (0, 1):
        raise ValueError(f"{name}: readOnly and uta are 0 or 1")
    permissions = entry.get("permissions", {})
    for group, values in permissions.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{name}: permissions.{group} must be a list of names")
    ips = entry.get("ips", ["*"])
    for ip in ips:
        if ip != "*":
            ipaddress.ip_network(str(ip), strict=False)  # ValueError for a bad address
    if not ip_bound(entry) and entry.get("expiresInDays") is None:
        # §6: "No ip bound api key will be invalid after 90 days"; Bybit has no such key.
        raise ValueError(f"{name}: a key without IP binding needs expiresInDays (§6)")
    if "Withdraw" in permissions.get("Wallet", []) and not entry.get("isMaster", True):
        raise ValueError(f"{name}: Withdraw is for master keys only (§6)")
    for wallet in WALLETS:
        lines = entry.get(wallet, [])
        if not all(isinstance(line, dict) and isinstance(line.get("coin"), str) for line in lines):
            raise ValueError(f"{name}: {wallet} lines must be objects with a coin")


def check_keys(keys: Mapping[str, Any]) -> None:
    if not isinstance(keys, Mapping):
        raise ValueError("keys must be a JSON object keyed by API key")
    for api_key, entry in keys.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"{api_key[:6]}…: entry must be an object")
        check_key(api_key, entry)


def ip_bound(entry: Mapping[str, Any]) -> bool:
    """Bound ⇔ the list has anything but ``"*"`` (§5 E2 ``ips``)."""
    return any(ip != "*" for ip in entry.get("ips", ["*"]))


def permissions_of(entry: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every group, in Bybit's order, empty when not granted; unknown groups kept after."""
    given = entry.get("permissions", {})
    shown = {group: list(given.get(group, [])) for group in PERMISSION_GROUPS}
    shown.update({group: list(values) for group, values in given.items() if group not in shown})
    return shown


def check_tickers(rows: Any) -> None:
    if not isinstance(rows, list) or not all(
        isinstance(row, dict) and {"symbol", "baseCoin", "quoteCoin", "lastPrice"} <= set(row) for row in rows
    ):
        raise ValueError("tickers must be a JSON list of {symbol, baseCoin, quoteCoin, lastPrice, ...}")


# --- numbers ----------------------------------------------------------------------------------

ZERO = Decimal(0)
_PLACES = Decimal("0.00000001")


def dec(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return ZERO
    return number if number.is_finite() else ZERO


def amount(value: Any) -> str:
    """A computed amount as Bybit writes it: a string, at most 8 decimals, no exponent."""
    number = dec(value).quantize(_PLACES, rounding=ROUND_DOWN)
    return "0" if number == 0 else format(number.normalize(), "f")


def text(line: Mapping[str, Any], name: str, default: str = "0") -> str:
    """A stored amount as given in the data (Bybit's own strings), or the default."""
    value = line.get(name)
    return default if value is None else str(value)


class PriceBook:
    """Last prices of the Trading spot pairs and a route to USDT per coin (§8): USDT = 1, else
    <coin>USDT, else via USDC, BTC or ETH, else 1 / USDT<coin>; None when there is none."""

    def __init__(self, tickers: list[dict[str, Any]]) -> None:
        self.prices: dict[str, Decimal] = {}
        for row in list(tickers):
            price = dec(row.get("lastPrice"))
            if row.get("status", "Trading") == "Trading" and price > 0:
                self.prices[str(row["symbol"])] = price

    def usdt(self, coin: str) -> Decimal | None:
        if coin == "USDT":
            return Decimal(1)
        direct = self.prices.get(f"{coin}USDT")
        if direct is not None:
            return direct
        for via in ("USDC", "BTC", "ETH"):
            cross, leg = self.prices.get(f"{coin}{via}"), self.prices.get(f"{via}USDT")
            if cross is not None and leg is not None:
                return cross * leg
        inverse = self.prices.get(f"USDT{coin}")
        return 1 / inverse if inverse else None

    def usd(self, coin: str, quantity: Any) -> Decimal:
        """Bybit's USD value of a quantity. Choice: USD = USDT at last prices (Bybit uses index
        prices); a coin without a route counts 0."""
        price = self.usdt(coin)
        return dec(quantity) * price if price is not None else ZERO


# --- market rows (§5 E7, E8) --------------------------------------------------------------------


def _tick(price: Any) -> str:
    # Choice: the price's own last decimal is the tick (at most 8 decimals).
    exponent = dec(price).normalize().as_tuple().exponent
    places = min(max(-int(exponent), 0), 8) if isinstance(exponent, int) else 8
    return format(Decimal(1).scaleb(-places), "f")


def ticker_row(row: Mapping[str, Any], book: PriceBook) -> dict[str, Any]:
    """One spot ticker (DOCS ``market/tickers`` spot tab); missing fields derived from lastPrice."""
    last = str(row["lastPrice"])
    prev = text(row, "prevPrice24h", last)
    change = (dec(last) - dec(prev)) / dec(prev) if dec(prev) else ZERO
    answer = {
        "symbol": row["symbol"],
        "bid1Price": text(row, "bid1Price", last),
        "bid1Size": text(row, "bid1Size", "1"),
        "ask1Price": text(row, "ask1Price", last),
        "ask1Size": text(row, "ask1Size", "1"),
        "lastPrice": last,
        "prevPrice24h": prev,
        "price24hPcnt": text(row, "price24hPcnt", str(change.quantize(Decimal("0.0001")))),
        "highPrice24h": text(row, "highPrice24h", last),
        "lowPrice24h": text(row, "lowPrice24h", last),
        "turnover24h": text(row, "turnover24h"),
        "volume24h": text(row, "volume24h"),
    }
    # §5 E7: only XXX/USDT and XXX/USDC pairs carry usdIndexPrice ("" for non-collateral coins).
    if row["quoteCoin"] in ("USDT", "USDC"):
        index = book.usdt(str(row["baseCoin"]))
        answer["usdIndexPrice"] = text(row, "usdIndexPrice", amount(index) if index else "")
    return answer


def instrument_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One spot instrument (DOCS ``market/instrument`` spot example, what ccxt parses)."""
    quote = str(row["quoteCoin"])
    return {
        "symbol": row["symbol"],
        "baseCoin": row["baseCoin"],
        "quoteCoin": quote,
        "innovation": text(row, "innovation"),
        "status": text(row, "status", "Trading"),
        "marginTrading": text(row, "marginTrading", "utaOnly" if quote == "USDT" else "none"),
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": text(row, "basePrecision", "0.000001"),
            "quotePrecision": text(row, "quotePrecision", "0.00000001"),
            "minOrderQty": text(row, "minOrderQty", "0.000011"),
            "maxOrderQty": text(row, "maxOrderQty", "83"),
            "minOrderAmt": text(row, "minOrderAmt", "1" if quote in ("USDT", "USDC") else "0.00001"),
            "maxOrderAmt": text(row, "maxOrderAmt", "8000000"),
        },
        "priceFilter": {"tickSize": text(row, "tickSize", _tick(row["lastPrice"]))},
        "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
    }


def coin_info_row(coin: str) -> dict[str, Any]:
    """One ``coin/query-info`` row (CCXT's example shape). Choice: one chain named after the coin."""
    return {
        "name": coin,
        "coin": coin,
        "remainAmount": "1500000",
        "chains": [
            {
                "chainType": coin,
                "confirmation": "12",
                "withdrawFee": "0.0005" if coin == "BTC" else "1",
                "depositMin": "0",
                "withdrawMin": "0.001" if coin == "BTC" else "2",
                "chain": coin,
                "chainDeposit": "1",
                "chainWithdraw": "1",
                "minAccuracy": "8",
                "withdrawPercentageFee": "0",
                "contractAddress": "",
            }
        ],
    }
