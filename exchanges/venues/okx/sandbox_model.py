"""The OKX sandbox's data model: the endpoints it serves with their limits, the demo key format
and its checks, numbers as OKX writes them, prices and their routes to USDT, and the rows of
OKX's answers (instruments, tickers, currencies, balance details, account configuration).

Part of ``exchanges.venues.okx.sandbox`` (import from there); split out to keep modules short.
§ numbers refer to shared/okx-api.md; choices are marked ``Choice:``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from exchanges.venues.kit.sandbox import check_key_fields
from exchanges.venues.okx.sandbox_auth import KEY_RE, SECRET_RE, SITES


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    access: str  # "public", "read" or "trade": what the key needs (§4)
    limit: int  # requests per window (§4)
    window_ms: int
    handler: str
    by: str = ""  # a parameter whose value has its own window (instruments: instType, §4)


# §4's table: E1-E9 and what CCXT's load_markets needs, with their documented limits. Private
# limits are per User ID, public ones per IP (§4, §8).
SPECS = (
    Endpoint("GET", "/api/v5/public/time", "public", 10, 2000, "_time"),  # E1
    Endpoint("GET", "/api/v5/account/config", "read", 5, 2000, "_config"),  # E2
    Endpoint("GET", "/api/v5/account/balance", "read", 10, 2000, "_trading"),  # E3
    Endpoint("GET", "/api/v5/asset/balances", "read", 6, 1000, "_funding"),  # E4
    Endpoint("GET", "/api/v5/finance/savings/balance", "read", 6, 1000, "_savings"),  # E5
    Endpoint("GET", "/api/v5/asset/asset-valuation", "read", 1, 1000, "_valuation"),  # E6
    Endpoint("GET", "/api/v5/market/tickers", "public", 20, 2000, "_tickers"),  # E7
    Endpoint("GET", "/api/v5/market/ticker", "public", 20, 2000, "_ticker"),  # E8
    Endpoint("GET", "/api/v5/system/status", "public", 1, 5000, "_system_status"),  # E9
    Endpoint("GET", "/api/v5/public/instruments", "public", 20, 2000, "_instruments", by="instType"),
    Endpoint("GET", "/api/v5/asset/currencies", "read", 6, 1000, "_currencies"),
    # V6's endpoint (§3): the one signed POST served, to check body signing and the Trade
    # permission. Choice: its limit, 20 / 2 s per User ID, is OKX's for set-leverage.
    Endpoint("POST", "/api/v5/account/set-leverage", "trade", 20, 2000, "_set_leverage"),
)
ENDPOINTS = tuple(f"{spec.method} {spec.path}" for spec in SPECS)
SYSTEM_STATUS = "/api/v5/system/status"

PERMISSIONS = ("read_only", "trade", "withdraw")  # E2 perm (§4, §6)
ACCOUNT_LEVELS = ("1", "2", "3", "4")  # E2 acctLv: Spot, Futures, Multi-currency, Portfolio
DAY_MS = 86_400_000
IDLE_DAYS = 14  # §6: unbound trade/withdraw keys expire after 14 days without a signed call

# Fields of a key entry that POST /_sandbox/keys/<API key> may change, with their JSON types.
KEY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "note": str,
    "label": str,
    "site": str,
    "demo": bool,
    "perm": str,
    "ip": str,
    "acctLv": str,
    "type": str,
    "lastSignedCallDaysAgo": (int, float),
    "frozen": bool,
    "deleted": bool,
    "trading": list,
    "funding": list,
    "savings": list,
    "otherEarn": list,
}
WALLETS = ("trading", "funding", "savings", "otherEarn")
_DIGITS = re.compile(r"[0-9]{6,20}")

ZERO = Decimal(0)


# --- data files -------------------------------------------------------------------------------


def perm_set(perm: str) -> set[str]:
    """E2's ``perm`` as a set (its order is not fixed, §4 E2)."""
    return {part.strip() for part in perm.split(",") if part.strip()}


def ip_list(ip: str) -> list[str]:
    return [part.strip() for part in ip.split(",") if part.strip()]


def check_key(api_key: str, entry: Mapping[str, Any]) -> None:
    """ValueError unless the entry is a well-formed demo key (format: sandbox_data/keys.json)."""
    name = f"{api_key[:8]}…"
    if not KEY_RE.fullmatch(api_key):
        raise ValueError(f"API key {name}: must be a lower-case UUID (§6)")
    if not SECRET_RE.fullmatch(str(entry.get("secret", ""))):
        raise ValueError(f"{name}: secret must be 32 upper-case hex characters (§6)")
    passphrase = entry.get("passphrase")
    if (
        not isinstance(passphrase, str)
        or not passphrase
        or not passphrase.isascii()
        or not passphrase.isprintable()
    ):
        raise ValueError(f"{name}: passphrase must be printable ASCII text")
    for field in ("uid", "mainUid"):
        if not isinstance(entry.get(field), str) or not _DIGITS.fullmatch(entry[field]):
            raise ValueError(f"{name}: {field} must be a string of digits")
    check_key_fields({k: v for k, v in entry.items() if k in KEY_FIELDS}, KEY_FIELDS)
    if entry.get("site") not in SITES:
        raise ValueError(f"{name}: site must be one of {', '.join(SITES)}")
    perms = perm_set(str(entry.get("perm", "")))
    if "read_only" not in perms or not perms <= set(PERMISSIONS):
        raise ValueError(f"{name}: perm must list read_only and optionally trade, withdraw (§4 E2)")
    ips = ip_list(str(entry.get("ip", "")))
    if len(ips) > 20:
        raise ValueError(f"{name}: at most 20 IP addresses per key (§6)")
    for ip in ips:
        ipaddress.ip_network(ip, strict=False)  # ValueError for a bad address or segment
    if str(entry.get("acctLv", "1")) not in ACCOUNT_LEVELS:
        raise ValueError(f"{name}: acctLv must be 1, 2, 3 or 4")
    if entry.get("lastSignedCallDaysAgo", 0) < 0:
        raise ValueError(f"{name}: lastSignedCallDaysAgo must not be negative")
    if "withdraw" in perms and entry.get("demo"):
        raise ValueError(f"{name}: demo trading has no withdrawals (§1.3)")
    if "withdraw" in perms and entry.get("uid") != entry.get("mainUid"):
        raise ValueError(f"{name}: sub-account keys cannot withdraw (§6)")
    for wallet in WALLETS:
        lines = entry.get(wallet)
        if lines is not None and not all(
            isinstance(line, dict) and isinstance(line.get("ccy"), str) and line["ccy"] for line in lines
        ):
            raise ValueError(f"{name}: {wallet} lines must be objects with a ccy")


def check_keys(keys: Mapping[str, Any]) -> None:
    if not isinstance(keys, Mapping):
        raise ValueError("keys must be a JSON object keyed by API key")
    for api_key, entry in keys.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"{api_key[:8]}…: entry must be an object")
        check_key(api_key, entry)


_INST_ID = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}")


def check_tickers(rows: Any) -> None:
    if not isinstance(rows, list):
        raise ValueError("tickers must be a JSON list of {instId, last, ...}")
    for row in rows:
        if not isinstance(row, dict) or not _INST_ID.fullmatch(str(row.get("instId", ""))):
            raise ValueError(f"ticker {row!r}: instId must be BASE-QUOTE in upper case (§4 E7)")
        if dec(row.get("last")) <= 0:
            raise ValueError(f"ticker {row['instId']}: last must be a positive number string")
        if not set(row.get("sites", SITES)) <= set(SITES):
            raise ValueError(f"ticker {row['instId']}: sites must be among {', '.join(SITES)}")


def idle_expires(entry: Mapping[str, Any]) -> bool:
    """Does the 14-day rule apply to this key (§6 "Expiry")? Trade or withdraw, no IP binding,
    not demo ("The API key of demo trading will not expire")."""
    perms = perm_set(str(entry.get("perm", "")))
    return (
        bool(perms & {"trade", "withdraw"})
        and not ip_list(str(entry.get("ip", "")))
        and not entry.get("demo")
    )


# --- numbers (§1.4: strings everywhere, "" when inapplicable) --------------------------------


def dec(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return ZERO
    return number if number.is_finite() else ZERO


def text(value: Decimal, places: int = 16) -> str:
    """A plain decimal string, cut (not rounded up) to ``places`` decimals: ``"4991.5420132976"``."""
    number = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    return "0" if number == 0 else format(number.normalize(), "f")


def _tick(price: Any) -> Decimal:
    # Choice: a pair's tick is its price's own last decimal (at most 8 decimals).
    exponent = dec(price).normalize().as_tuple().exponent
    places = min(max(-int(exponent), 0), 8) if isinstance(exponent, int) else 8
    return Decimal(1).scaleb(-places)


class PriceBook:
    """Last prices of one site's spot pairs and a route to USDT per currency (§7): USDT = 1,
    else CCY-USDT, else CCY-BTC x BTC-USDT, else CCY-ETH x ETH-USDT, else 1 / USDT-CCY (fiat)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.prices = {str(row["instId"]): dec(row.get("last")) for row in rows if dec(row.get("last")) > 0}

    def usdt(self, ccy: str) -> Decimal | None:
        if ccy == "USDT":
            return Decimal(1)
        direct = self.prices.get(f"{ccy}-USDT")
        if direct is not None:
            return direct
        for via in ("BTC", "ETH"):
            cross, leg = self.prices.get(f"{ccy}-{via}"), self.prices.get(f"{via}-USDT")
            if cross is not None and leg is not None:
                return cross * leg
        inverse = self.prices.get(f"USDT-{ccy}")
        return 1 / inverse if inverse else None

    def value(self, ccy: str, amount: Any) -> Decimal:
        """Amount in USDT. Choice: a currency without a route counts 0 in OKX's own sums."""
        price = self.usdt(ccy)
        return dec(amount) * price if price is not None else ZERO


# --- rows of OKX's answers --------------------------------------------------------------------

LIST_TIME = "1611907686000"
_SPOT_EMPTY = (
    "alias", "auctionEndTime", "ctMult", "ctType", "ctVal", "ctValCcy", "contTdSwTime", "expTime",
    "instFamily", "optType", "openType", "settleCcy", "stk", "uly", "maxMktSz",
)  # fmt: skip


def instrument_row(row: Mapping[str, Any], number: int) -> dict[str, Any]:
    """One SPOT instrument of ``GET /api/v5/public/instruments`` (what CCXT's parse_market
    reads: instId, instType, baseCcy, quoteCcy, state, lotSz, minSz, tickSz, lever)."""
    base, quote = str(row["instId"]).split("-")
    price = dec(row.get("last"))
    min_size = "0.00001" if price >= 1000 else "0.001" if price >= 1 else "1"
    return {
        **dict.fromkeys(_SPOT_EMPTY, ""),
        "baseCcy": base,
        "category": "1",
        "futureSettlement": False,
        "groupId": "1",
        "instId": row["instId"],
        "instIdCode": 10_000 + number,
        "instType": "SPOT",
        "lever": str(row.get("lever", "")),
        "listTime": str(row.get("listTime", LIST_TIME)),
        "lotSz": str(row.get("lotSz", "0.00000001")),
        "maxIcebergSz": "9999999999.0000000000000000",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "9999999999",
        "maxMktAmt": "1000000",
        "maxStopSz": "1000000",
        "maxTriggerSz": "9999999999.0000000000000000",
        "maxTwapSz": "9999999999.0000000000000000",
        "minSz": str(row.get("minSz", min_size)),
        "quoteCcy": quote,
        "ruleType": "normal",
        "state": str(row.get("state", "live")),
        "tickSz": str(row.get("tickSz", text(_tick(price)))),
        "tradeQuoteCcyList": [quote],
    }


def ticker_row(row: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """One spot ticker (§4 E7): the data's ``last``, ``open24h`` and ``vol24h``, the rest
    derived from them (best bid and ask one tick around last)."""
    last = dec(row["last"])
    tick = _tick(row["last"])
    opened = dec(row.get("open24h", row["last"]))
    volume = dec(row.get("vol24h", "0"))
    derived = {
        "instType": "SPOT",
        "instId": row["instId"],
        "last": str(row["last"]),
        "lastSz": "0.01",
        "askPx": text(last + tick),
        "askSz": "1.2",
        "bidPx": text(last - tick),
        "bidSz": "0.8",
        "open24h": text(opened),
        "high24h": text(max(last, opened) * Decimal("1.012")),
        "low24h": text(min(last, opened) * Decimal("0.988")),
        "volCcy24h": text(volume * last, 8),
        "vol24h": text(volume),
        "ts": str(now_ms),
        "sodUtc0": text(opened),
        "sodUtc8": text(opened),
    }
    # Any ticker field the data gives is sent as given.
    derived.update({name: str(row[name]) for name in derived if name in row and name != "instType"})
    return derived


CURRENCY_NAMES = {
    "BTC": "Bitcoin", "ETH": "Ethereum", "USDT": "Tether", "USDC": "USD Coin", "OKB": "OKB",
    "SOL": "Solana", "LTC": "Litecoin", "TON": "Toncoin", "DOGE": "Dogecoin", "EUR": "Euro",
    "USD": "US Dollar",
}  # fmt: skip
# Choice: one chain per currency (two for USDT), named as OKX names chains ("USDT-TRC20").
CHAINS = {
    "BTC": ["Bitcoin"], "ETH": ["ERC20"], "USDT": ["TRC20", "ERC20"], "USDC": ["ERC20"],
    "OKB": ["X Layer"], "SOL": ["Solana"], "LTC": ["Litecoin"], "TON": ["TON"], "DOGE": ["Dogecoin"],
}  # fmt: skip
FIAT = ("EUR", "USD")


def currency_rows(ccy: str) -> list[dict[str, Any]]:
    """``GET /api/v5/asset/currencies`` rows of one currency, one per chain; fiat has one row
    with an empty chain (CCXT parse_currency: "only happens for fiat")."""
    chains = [""] if ccy in FIAT else [f"{ccy}-{chain}" for chain in CHAINS.get(ccy, ["ERC20"])]
    crypto = ccy not in FIAT
    return [
        {
            "burningFeeRate": "",
            "canDep": crypto,
            "canInternal": crypto,
            "canWd": crypto,
            "ccy": ccy,
            "chain": chain,
            "ctAddr": "",
            "depEstOpenTime": "",
            "depQuotaFixed": "",
            "depQuoteDailyLayer2": "",
            "fee": "0.0001" if crypto else "",
            "logoLink": f"https://static.okx.com/cdn/oksupport/asset/currency/icon/{ccy.lower()}.png",
            "mainNet": index == 0 and crypto,
            "maxFee": "0.0001" if crypto else "",
            "maxFeeForCtAddr": "",
            "maxWd": "1000000" if crypto else "",
            "minDep": "0.00005" if crypto else "",
            "minDepArrivalConfirm": "1" if crypto else "",
            "minFee": "0.0001" if crypto else "",
            "minFeeForCtAddr": "",
            "minInternal": "0.0001" if crypto else "",
            "minWd": "0.0005" if crypto else "",
            "minWdUnlockConfirm": "2" if crypto else "",
            "name": CURRENCY_NAMES.get(ccy, ccy),
            "needTag": False,
            "usedDepQuotaFixed": "",
            "usedWdQuota": "0",
            "wdEstOpenTime": "",
            "wdQuota": "10000000",
            "wdTickSz": "8",
        }
        for index, chain in enumerate(chains)
    ]


# E3 detail fields by account mode (§4 E3: which are filled depends on acctLv; in Spot mode
# availEq, isoEq, upl, liab are ""). Choice: the other modes fill the margin fields with "0".
_MARGIN_FIELDS = ("availEq", "borrowFroz", "crossLiab", "imr", "interest", "isoEq", "isoLiab", "isoUpl",
                  "liab", "maxLoan", "mgnRatio", "mmr", "notionalLever", "upl", "uplLiab")  # fmt: skip
_FUTURES_FILLED = ("isoEq", "isoUpl", "notionalLever", "upl")


def trading_detail(line: Mapping[str, Any], acct_lv: str, eq_usd: Decimal, u_time: str) -> dict[str, Any]:
    """One ``details[]`` entry of E3 from a data line ``{ccy, availBal, frozenBal, eq, cashBal}``
    (cashBal defaults to availBal + frozenBal, eq to cashBal); any other E3 field in the line is
    sent as given."""
    avail, frozen = dec(line.get("availBal")), dec(line.get("frozenBal"))
    cash = str(line.get("cashBal", text(avail + frozen)))
    margin = dict.fromkeys(_MARGIN_FIELDS, "")
    if acct_lv == "2":
        margin.update(dict.fromkeys(_FUTURES_FILLED, "0"), availEq=str(line.get("availBal", "0")))
    elif acct_lv in ("3", "4"):
        margin.update(dict.fromkeys(_MARGIN_FIELDS, "0"), availEq=str(line.get("availBal", "0")), mgnRatio="")
    detail = {
        "accAvgPx": "",
        "autoLendAmt": "",
        "autoLendMtAmt": "",
        "autoLendStatus": "unsupported",
        "availBal": str(line.get("availBal", "0")),
        "cashBal": cash,
        "ccy": line["ccy"],
        "clSpotInUseAmt": "",
        "colBorrAutoConversion": "0",
        "colRes": "0",
        "collateralEnabled": False,
        "disEq": text(eq_usd),
        "eq": str(line.get("eq", cash)),
        "eqUsd": text(eq_usd),
        "fixedBal": "0",
        "frozenBal": str(line.get("frozenBal", "0")),
        "maxSpotInUse": "",
        "openAvgPx": "",
        "ordFrozen": str(line.get("frozenBal", "0")),
        "rewardBal": "0",
        "smtSyncEq": "0",
        "spotBal": "",
        "spotCopyTradingEq": "0",
        "spotInUseAmt": "",
        "spotIsoBal": "0",
        "spotUpl": "",
        "spotUplRatio": "",
        "stgyEq": "0",
        "totalPnl": "",
        "totalPnlRatio": "",
        "twap": "0",
        "uTime": str(line.get("uTime", u_time)),
        **margin,
    }
    detail.update({k: v for k, v in line.items() if k not in ("ccy", "cashBal", "eq")})
    return dict(sorted(detail.items()))


def funding_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """One E4 row from ``{ccy, availBal, frozenBal, bal}`` (bal defaults to their sum)."""
    avail, frozen = dec(line.get("availBal")), dec(line.get("frozenBal"))
    return {
        "availBal": str(line.get("availBal", "0")),
        "bal": str(line.get("bal", text(avail + frozen))),
        "ccy": line["ccy"],
        "frozenBal": str(line.get("frozenBal", "0")),
    }


def savings_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """One E5 row from ``{ccy, amt, ...}``: ``amt`` = ``loanAmt`` lent + ``pendingAmt``."""
    amount = str(line.get("amt", "0"))
    pending = str(line.get("pendingAmt", "0"))
    return {
        "earnings": str(line.get("earnings", "0")),
        "redemptAmt": "",
        "rate": str(line.get("rate", "0.0100000000000000")),
        "ccy": line["ccy"],
        "amt": amount,
        "loanAmt": str(line.get("loanAmt", text(dec(amount) - dec(pending)))),
        "pendingAmt": pending,
    }


def config_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """E2 (§4): the key's own perm, ip and label, its account's uid, mainUid, type and acctLv;
    the rest as in the DOCS example."""
    return {
        "acctLv": str(entry.get("acctLv", "1")),
        "acctStpMode": "cancel_maker",
        "autoLoan": False,
        "ctIsoMode": "automatic",
        "enableSpotBorrow": False,
        "greeksType": "PA",
        "feeType": "0",
        "ip": str(entry.get("ip", "")),
        "type": str(entry.get("type", "0")),
        "kycLv": str(entry.get("kycLv", "2")),
        "label": str(entry.get("label", "")),
        "level": "Lv1",
        "levelTmp": "",
        "liquidationGear": "-1",
        "mainUid": str(entry["mainUid"]),
        "mgnIsoMode": "automatic",
        "opAuth": "0",
        "perm": str(entry["perm"]),
        "posMode": "net_mode",
        "roleType": "0",
        "spotBorrowAutoRepay": False,
        "spotOffsetType": "",
        "spotRoleType": "0",
        "spotTraderInsts": [],
        "stgyType": "0",
        "traderInsts": [],
        "uid": str(entry["uid"]),
        "settleCcy": "USDT",
        "settleCcyList": ["USD", "USDC", "USDT"],
    }
