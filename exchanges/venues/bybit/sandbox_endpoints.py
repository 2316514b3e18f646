"""Bybit's endpoints for the Bybit sandbox (E1–E10 of shared/bybit-api.md §5, what ccxt's
``load_markets`` needs (§11) and one order endpoint).

Part of ``exchanges.venues.bybit.sandbox`` (import from there); split out to keep modules
short. ``BybitEndpoints`` is a mixin of ``BybitSandbox``: each handler gets a ``Call`` (the
request, its parameters and, on signed endpoints, the caller's key) after the sandbox has
checked faults, limits and the signature, and returns the ``result`` object (the sandbox wraps
it in Bybit's envelope) or a finished error answer. § numbers refer to the facts file; where no
source says what Bybit does, the choice is marked ``Choice:``.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from exchanges.venues.bybit.sandbox_auth import (
    CODE_PARAMS,
    CODE_PERMISSION,
    MSG_ACCOUNT_TYPE,
    MSG_EMPTY,
    MSG_ILLEGAL,
    MSG_NOT_SYMBOLS,
    MSG_PERMISSION,
    error,
    http_page,
)
from exchanges.venues.bybit.sandbox_model import (
    OVERVIEW_SITES,
    ZERO,
    PriceBook,
    amount,
    coin_info_row,
    dec,
    instrument_row,
    permissions_of,
    text,
    ticker_row,
)
from exchanges.venues.kit.sandbox import LoadStats, SandboxRequest, SandboxResponse

Entry = dict[str, Any]
Result = dict[str, Any] | SandboxResponse
CATEGORIES = ("spot", "linear", "inverse", "option")
_ORDER_IDS = itertools.count(1_893_456_789_012_345_600)  # Choice: Bybit-like numeric ids


@dataclass(frozen=True)
class Call:
    request: SandboxRequest
    values: Mapping[str, Any]  # query parameters (GET) or the JSON body (POST), decoded
    now: int  # server time, ms
    site: str | None  # the site the Host header names
    api_key: str = ""
    entry: Entry | None = None  # the caller's key entry on signed endpoints
    maintenance: bool = False


def _coins(values: Mapping[str, Any]) -> list[str] | None:
    """``coin=USDT,BTC`` (§5 E4: upper case, comma-separated); None when not sent."""
    raw = str(values.get("coin") or "")
    return [c for c in raw.split(",") if c] or None


class BybitEndpoints:
    """The handlers, mixed into ``BybitSandbox``, whose ``tickers``, ``wallet()``,
    ``expires_at_ms()`` and ``created_at_ms()`` they use."""

    tickers: list[dict[str, Any]]
    stats: LoadStats

    def _spot_rows(self) -> dict[str, dict[str, Any]]:
        return {str(row["symbol"]): row for row in list(self.tickers)}

    def _refused(self, call: Call) -> SandboxResponse:
        return error(CODE_PERMISSION, MSG_PERMISSION, call.now)

    def _bad(self, call: Call, message: str) -> SandboxResponse:
        return error(CODE_PARAMS, message, call.now)

    # -- E1, E9 --

    def _time(self, call: Call) -> Result:
        # §4 E1: strings in result; the envelope's time is the same instant in ms.
        return {"timeSecond": str(call.now // 1000), "timeNano": str(call.now * 1_000_000 + 423_213)}

    def _system_status(self, call: Call) -> Result:
        if not call.maintenance:
            return {"list": []}
        # §5 E9: an ongoing planned maintenance of production. Choice: the last hour to the next.
        item = {
            "id": "4d95b2a0-587f-11f0-bcc9-56f28c94d6ea",
            "title": "System maintenance",
            "state": "ongoing",
            "begin": str(call.now - 3_600_000),
            "end": str(call.now + 3_600_000),
            "href": "https://announcements.bybit.com/",
            "serviceTypes": [1, 2, 3, 4, 5],
            "product": [1, 2, 4, 5],
            "uidSuffix": [],
            "maintainType": 1,
            "env": 1,
        }
        return {"list": [item]}

    # -- E2, E3, E10 --

    def _query_api(self, call: Call) -> Result:
        entry, key = call.entry or {}, call.api_key
        expires = self.expires_at_ms(key, entry)
        if expires is None:  # §5 E2: an IP-bound (permanent) key
            deadline, expired_at = -2, "1970-01-01T00:00:00Z"
        else:  # whole days from now, rounded down
            deadline, expired_at = (expires - call.now) // 86_400_000, iso(expires)
        return {
            "id": str(entry.get("id", 1_000_000 + zlib.crc32(key.encode()) % 9_000_000)),
            "note": entry.get("note", ""),
            "apiKey": key,
            "readOnly": entry.get("readOnly", 0),
            "secret": "",  # "Always """
            "permissions": permissions_of(entry),
            "ips": list(entry.get("ips", ["*"])),
            "type": entry.get("type", 1),
            "deadlineDay": deadline,
            "expiredAt": expired_at,
            "createdAt": iso(self.created_at_ms(key, entry)),
            "unified": 0,  # deprecated
            "uta": entry.get("uta", 1),
            "userID": entry["uid"],
            "inviterID": 0,
            "vipLevel": entry.get("vipLevel", "No VIP"),
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": entry.get("rsaPublicKey", ""),
            "isMaster": entry.get("isMaster", True),
            "parentUid": entry.get("parentUid", "0"),
            "kycLevel": entry.get("kycLevel", "LEVEL_1"),
            "kycRegion": entry.get("kycRegion", ""),
            "userIDInt64": "0",
            "inviterIDInt64": "0",
            "affiliateIDInt64": "0",
        }

    def _account_info(self, call: Call) -> Result:
        entry = call.entry or {}
        status = entry.get("unifiedMarginStatus", 6 if entry.get("uta", 1) else 1)  # §5 E3
        return {
            "unifiedMarginStatus": status,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": str(self.created_at_ms(call.api_key, entry)),
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
        }

    def _member_type(self, call: Call) -> Result:
        entry = call.entry or {}
        kinds = ["UNIFIED", "FUND"] if entry.get("uta", 1) else ["SPOT", "CONTRACT", "FUND"]
        return {"accounts": [{"uid": str(entry["uid"]), "accountType": kinds}]}  # §5 E10

    # -- E4: the unified trading account --

    def _wallet_balance(self, call: Call) -> Result:
        entry = call.entry or {}
        account_type = call.values.get("accountType")
        if not account_type:
            return self._bad(call, MSG_EMPTY.format("accountType"))
        if account_type != "UNIFIED":
            return self._bad(call, MSG_ACCOUNT_TYPE)  # §7
        if not entry.get("uta", 1):
            return http_page(404)  # §7: UNIFIED on a classic account (pybit#173)
        book, wanted = PriceBook(self.tickers), _coins(call.values)
        lines = {str(line["coin"]): line for line in self.wallet(entry, "unified")}
        rows = [coin_row(line, book) for line in lines.values()]
        if wanted is None:  # §5 E4: coins with neither assets nor liabilities are left out
            rows = [r for r in rows if dec(r["walletBalance"]) or dec(r["borrowAmount"]) or dec(r["equity"])]
        else:  # Choice: each coin asked for, zeros when not held
            rows = [coin_row(lines.get(c, {"coin": c}), book) for c in dict.fromkeys(wanted)]
        # Choice: the account totals (USD) always cover every coin; simplified margin maths.
        every = [coin_row(line, book) for line in lines.values()]
        totals = {
            name: sum((dec(r[f"_{name}"]) for r in every), ZERO) for name in ("wb", "upl", "im", "mm", "debt")
        }
        margin = totals["wb"] + totals["upl"]
        account = {
            "accountType": "UNIFIED",
            "totalEquity": amount(sum((dec(r["usdValue"]) for r in every), ZERO)),
            "totalWalletBalance": amount(totals["wb"]),
            "totalMarginBalance": amount(margin),
            "totalAvailableBalance": amount(max(margin - totals["im"], ZERO)),
            "totalPerpUPL": amount(totals["upl"]),
            "totalInitialMargin": amount(totals["im"]),
            "totalMaintenanceMargin": amount(totals["mm"]),
            "accountIMRate": _rate(totals["im"], margin),
            "accountMMRate": _rate(totals["mm"], margin),
            "accountLTV": _rate(totals["debt"], totals["wb"]),
            "coin": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        }
        return {"list": [account]}

    # -- E5: the funding account --

    def _coins_balance(self, call: Call) -> Result:
        entry = call.entry or {}
        if not permissions_of(entry)["Wallet"]:
            return self._refused(call)  # §5 E5: 10005 without a Wallet permission
        account_type, wanted = call.values.get("accountType"), _coins(call.values)
        if not account_type:
            return self._bad(call, MSG_EMPTY.format("accountType"))
        if account_type == "FUND":
            lines = self.wallet(entry, "fund")
            rows = [
                {
                    "coin": line["coin"],
                    "transferBalance": text(line, "transferBalance", text(line, "walletBalance")),
                    "walletBalance": text(line, "walletBalance"),
                    "bonus": text(line, "bonus", ""),
                }
                for line in lines
            ]
        elif account_type == "UNIFIED":  # §5 E5: coin mandatory, at most 10
            if wanted is None:
                return self._bad(call, MSG_EMPTY.format("coin"))
            if len(wanted) > 10:
                return self._bad(call, MSG_ILLEGAL.format("coin"))
            rows = [
                {
                    "coin": line["coin"],
                    "transferBalance": amount(
                        max(dec(text(line, "walletBalance")) - dec(text(line, "locked")), ZERO)
                    ),
                    "walletBalance": text(line, "walletBalance"),
                    "bonus": "",
                }
                for line in self.wallet(entry, "unified")
            ]
        else:
            return self._bad(call, MSG_ILLEGAL.format("accountType"))
        if wanted is not None:  # Choice: each coin asked for, zeros when not held
            held = {row["coin"]: row for row in rows}
            zero = {"transferBalance": "0", "walletBalance": "0", "bonus": ""}
            rows = [held.get(c, {"coin": c, **zero}) for c in dict.fromkeys(wanted)]
        return {"memberId": str(entry["uid"]), "accountType": account_type, "balance": rows}

    # -- E6: every account, valued (Choice: the shape beyond the facts' field names) --

    def _asset_overview(self, call: Call) -> Result:
        entry = call.entry or {}
        if call.site not in OVERVIEW_SITES:  # §5 E6: no regional accounts. Choice: 10001.
            return self._bad(call, "This endpoint does not support regional accounts")
        currency = str(call.values.get("valuationCurrency") or "USD")
        book = PriceBook(self.tickers)
        unit = {"USD": Decimal(1), "USDT": Decimal(1)}.get(currency) or book.usdt(currency)
        if currency not in ("USD", "USDT", "BTC", "ETH") or not unit:
            return self._bad(call, MSG_ILLEGAL.format("valuationCurrency"))

        def detail(lines, field):
            coins = [
                {"coin": line["coin"], "equity": text(line, field)} for line in lines if dec(line.get(field))
            ]
            total = sum((book.usd(c["coin"], c["equity"]) for c in coins), ZERO) / unit
            return coins, amount(total)

        accounts = []
        for name, wallet, field in (
            ("UnifiedTradingAccount", "unified", "equity"),
            ("FundingAccount", "fund", "walletBalance"),
        ):
            lines = [
                {**line, "equity": coin_row(line, book)["equity"]} for line in self.wallet(entry, wallet)
            ]
            coins, total = detail(lines, field)
            accounts.append({"accountType": name, "totalEquity": total, "coinDetail": coins})
        earn = self.wallet(entry, "earn")
        if earn:
            coins, total = detail(earn, "amount")
            category = {"category": "Easy Earn", "equity": total, "coinDetail": coins}
            accounts.append({"accountType": "Earn", "totalEquity": total, "categories": [category]})
        wanted = call.values.get("accountType")
        chosen = [a for a in accounts if not wanted or a["accountType"] == wanted]
        for account in chosen:
            account.update(valuationCurrency=currency, snapshotTime=str(call.now))
        total = sum((dec(a["totalEquity"]) for a in chosen), ZERO)
        return {"totalEquity": amount(total), "valuationCurrency": currency, "list": chosen}

    # -- E7, E8 and ccxt's currencies --

    def _category(self, call: Call) -> str | SandboxResponse:
        category = call.values.get("category")
        if category not in CATEGORIES:  # Choice: missing or unknown, one text
            return self._bad(call, MSG_ILLEGAL.format("category"))
        return category

    def _tickers(self, call: Call) -> Result:
        category = self._category(call)
        if isinstance(category, SandboxResponse):
            return category
        # Choice: spot pairs that trade (a Closed pair has no ticker); the derivative
        # categories list nothing.
        rows = [r for r in self._spot_rows().values() if r.get("status", "Trading") == "Trading"]
        rows = rows if category == "spot" else []
        symbol = call.values.get("symbol")
        if symbol:
            rows = [r for r in rows if r["symbol"] == symbol]
            if not rows:
                return self._bad(call, MSG_NOT_SYMBOLS)  # §5 E7
        book = PriceBook(self.tickers)
        return {"category": category, "list": [ticker_row(r, book) for r in rows]}

    def _instruments(self, call: Call) -> Result:
        category = self._category(call)
        if isinstance(category, SandboxResponse):
            return category
        rows = [instrument_row(r) for r in self._spot_rows().values()] if category == "spot" else []
        for name in ("symbol", "status", "baseCoin"):  # Choice: unknown values list nothing
            if call.values.get(name):
                rows = [r for r in rows if r[name] == call.values[name]]
        limit = str(call.values.get("limit") or "500")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return self._bad(call, MSG_ILLEGAL.format("limit"))
        return {"category": category, "list": rows[: int(limit)], "nextPageCursor": ""}

    def _coin_info(self, call: Call) -> Result:
        coins = {str(r[side]) for r in self.tickers for side in ("baseCoin", "quoteCoin")}
        for wallet in ("unified", "fund"):
            coins |= {str(line["coin"]) for line in self.wallet(call.entry or {}, wallet)}
        wanted = call.values.get("coin")
        chosen = [c for c in sorted(coins) if not wanted or c == wanted]
        return {"rows": [coin_info_row(c) for c in chosen]}

    # -- an order (Choice: validated, never kept or executed) --

    def _order_create(self, call: Call) -> Result:
        entry, values = call.entry or {}, call.values
        category = self._category(call)
        if isinstance(category, SandboxResponse):
            return category
        permissions = permissions_of(entry)
        needed = {
            "spot": "SpotTrade" in permissions["Spot"],
            "linear": "Order" in permissions["ContractTrade"] or bool(permissions["Derivatives"]),
            "inverse": "Order" in permissions["ContractTrade"] or bool(permissions["Derivatives"]),
            "option": "OptionsTrade" in permissions["Options"],
        }
        if entry.get("readOnly") or not needed[category]:
            return self._refused(call)  # Choice: a read-only key's order is 10005
        if category != "spot" or values.get("symbol") not in self._spot_rows():
            return self._bad(call, MSG_NOT_SYMBOLS)
        for name, allowed in (("side", ("Buy", "Sell")), ("orderType", ("Market", "Limit"))):
            if values.get(name) not in allowed:
                return self._bad(call, MSG_ILLEGAL.format(name))
        if dec(values.get("qty")) <= 0:
            return self._bad(call, MSG_ILLEGAL.format("qty"))
        if values["orderType"] == "Limit" and dec(values.get("price")) <= 0:
            return self._bad(call, MSG_ILLEGAL.format("price"))
        self.stats.bump("orders", call.api_key)
        return {"orderId": str(next(_ORDER_IDS)), "orderLinkId": str(values.get("orderLinkId", ""))}


def iso(ms: int) -> str:
    """ISO 8601 UTC to the second, ``2023-12-22T07:20:25Z`` (§5 E2)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _rate(part: Decimal, whole: Decimal) -> str:
    return str((part / whole).quantize(Decimal("0.0001"))) if whole > 0 else "0"


def coin_row(line: Mapping[str, Any], book: PriceBook) -> dict[str, Any]:
    """One coin of E4 (CCXTFIX fetchBalance shape): stored amounts as given, missing ones 0;
    ``equity`` = walletBalance - spotBorrow + unrealisedPnl and ``usdValue`` derived when not
    stored. The ``_`` fields (USD figures for the totals) are dropped before answering."""
    coin = str(line["coin"])
    wallet, borrow, upl = (dec(text(line, n)) for n in ("walletBalance", "spotBorrow", "unrealisedPnl"))
    equity = text(line, "equity", amount(wallet - borrow + upl))
    im = dec(text(line, "totalOrderIM")) + dec(text(line, "totalPositionIM"))
    return {
        "coin": coin,
        "walletBalance": text(line, "walletBalance"),
        "locked": text(line, "locked"),
        "equity": equity,
        "usdValue": text(line, "usdValue", amount(book.usd(coin, equity))),
        "unrealisedPnl": text(line, "unrealisedPnl"),
        "cumRealisedPnl": text(line, "cumRealisedPnl"),
        "totalOrderIM": text(line, "totalOrderIM"),
        "totalPositionIM": text(line, "totalPositionIM"),
        "totalPositionMM": text(line, "totalPositionMM"),
        "borrowAmount": text(line, "borrowAmount"),
        "spotBorrow": text(line, "spotBorrow"),
        "accruedInterest": text(line, "accruedInterest"),
        "availableToWithdraw": "",  # deprecated, "" for UNIFIED since 2025-01-09
        "availableToBorrow": "",
        "bonus": text(line, "bonus"),
        "spotHedgingQty": "0",
        "collateralSwitch": bool(line.get("collateralSwitch", True)),
        "marginCollateral": bool(line.get("marginCollateral", True)),
        "_wb": book.usd(coin, wallet),
        "_upl": book.usd(coin, upl),
        "_im": book.usd(coin, im),
        "_mm": book.usd(coin, text(line, "totalPositionMM")),
        "_debt": book.usd(coin, text(line, "borrowAmount")),
    }
