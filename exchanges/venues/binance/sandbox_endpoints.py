"""Binance's endpoints for the Binance sandbox (E1–E16 of shared/binance-api.md §4).

Part of ``exchanges.venues.binance.sandbox`` (import from there); split out to keep modules
short. ``BinanceEndpoints`` is a mixin of ``BinanceSandbox``: each handler gets the request,
its decoded parameters and (signed endpoints) the caller's key entry, after the sandbox has
checked faults, weights and the signature. § numbers refer to the facts file; where no source
says what Binance does, the choice is marked ``Choice:``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from exchanges.venues.binance.sandbox_auth import (
    MSG_COMBINATION,
    MSG_ILLEGAL,
    MSG_MANDATORY,
    MSG_NO_MARGIN,
    MSG_NOT_VALID,
    MSG_STATUS_MISMATCH,
    MSG_SYMBOL,
    MSG_TOO_GREAT,
    error,
    ok,
)
from exchanges.venues.binance.sandbox_model import (
    FUNDING_PARTS,
    ORDER_SIDES,
    ORDER_TYPES,
    SYMBOL_STATUSES,
    SYMBOLS_RANGE,
    WALLET_NAMES,
    ZERO,
    PriceBook,
    btc_value,
    dec,
    flexible_row,
    fmt8,
    funding_total,
    locked_row,
    short,
    spot_total,
    symbol_info,
)
from exchanges.venues.kit.sandbox import SandboxRequest, SandboxResponse

Entry = dict[str, Any]
Values = Mapping[str, str]


def _bool_param(values: Values, name: str, default: bool = False) -> bool | SandboxResponse:
    # Choice: "true"/"false" in any case, as ccxt (true/false) and the SDK send them; else -1130.
    text = values.get(name)
    if text is None:
        return default
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return error(-1130, MSG_NOT_VALID.format(name))


def _int_param(values: Values, name: str, default: int, low: int, high: int) -> int | SandboxResponse:
    text = values.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < low:
        return error(-1100, MSG_ILLEGAL.format(name, "^[0-9]{1,20}$"))
    if int(text) > high:
        return error(-1102, MSG_TOO_GREAT.format(name, high))
    return int(text)


# --- endpoints ----------------------------------------------------------------------------------


class BinanceEndpoints:
    """E1–E16, mixed into ``BinanceSandbox``, whose ``tickers``, ``now_ms()``, ``wallet()``,
    ``trading_expiration_ms()``, ``create_time_ms()``, ``api_weight_limit`` they use."""

    def _rows(self) -> dict[str, dict[str, Any]]:
        return {str(row["symbol"]): row for row in list(self.tickers)}

    def _time(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        return ok({"serverTime": self.now_ms()})  # E1

    def _system_status(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        return ok({"status": 0, "msg": "normal"})  # E15 (maintenance: see dispatch)

    def _pick_symbols(self, values: Values) -> list[dict[str, Any]] | SandboxResponse:
        """``symbol`` or ``symbols=["A","B"]`` (§4 E2/E3), filtered by ``symbolStatus``."""
        rows = self._rows()
        status = values.get("symbolStatus")
        if status is not None and status not in SYMBOL_STATUSES:
            return error(-1130, MSG_NOT_VALID.format("symbolStatus"))
        if "symbol" in values and "symbols" in values:
            return error(-1128, MSG_COMBINATION)  # Choice: errors.md's code for the pair
        if "symbol" in values:
            row = rows.get(values["symbol"])
            if row is None:
                return error(-1121, MSG_SYMBOL)
            if status is not None and row.get("status", "TRADING") != status:
                return error(-1220, MSG_STATUS_MISMATCH)  # §4 E3: one symbol, other status
            return [row]
        if "symbols" in values:
            try:
                wanted = json.loads(values["symbols"])
                if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
                    raise ValueError
            except ValueError:
                return error(-1100, MSG_ILLEGAL.format("symbols", SYMBOLS_RANGE))
            if any(s not in rows for s in wanted):
                return error(-1121, MSG_SYMBOL)
            chosen = [rows[s] for s in dict.fromkeys(wanted)]
        else:
            chosen = list(rows.values())
        return [r for r in chosen if status is None or r.get("status", "TRADING") == status]

    def _exchange_info(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        chosen = self._pick_symbols(values)  # E2
        if isinstance(chosen, SandboxResponse):
            return chosen
        limits = [
            ("REQUEST_WEIGHT", "MINUTE", 1, int(self.api_weight_limit)),  # §8
            ("ORDERS", "SECOND", 10, 100),
            ("ORDERS", "DAY", 1, 200000),
            ("RAW_REQUESTS", "MINUTE", 5, 61000),  # §8: 61,000 per 5 minutes
        ]
        return ok(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms(),
                "rateLimits": [
                    {"rateLimitType": kind, "interval": unit, "intervalNum": num, "limit": limit}
                    for kind, unit, num, limit in limits
                ],
                "exchangeFilters": [],
                "symbols": [symbol_info(row) for row in chosen],
            }
        )

    def _ticker_price(self, request: SandboxRequest, values: Values, entry: Entry | None) -> SandboxResponse:
        chosen = self._pick_symbols(values)  # E3
        if isinstance(chosen, SandboxResponse):
            return chosen
        prices = [{"symbol": row["symbol"], "price": fmt8(row.get("price"))} for row in chosen]
        return ok(prices[0] if "symbol" in values else prices)

    def _api_restrictions(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        key = request.headers["X-MBX-APIKEY"].strip()  # E4, field order as WALLET's example
        answer: dict[str, Any] = {
            "ipRestrict": bool(entry.get("ipRestrict")),
            "createTime": self.create_time_ms(key, entry),
        }
        for flag in (
            "enableReading", "enableWithdrawals", "enableInternalTransfer", "enableMargin",
            "enableFutures", "permitsUniversalTransfer", "enableVanillaOptions",
            "enableFixApiTrade", "enableFixReadOnly", "enableSpotAndMarginTrading",
            "enablePortfolioMarginTrading",
        ):  # fmt: skip
            answer[flag] = bool(entry.get(flag, flag == "enableReading"))
        # Trading unchecked by Binance once its 30 days are over (§5, ANN21); the expiration
        # stays, in the past (Choice: §14 says its value after expiry is not documented).
        answer["enableSpotAndMarginTrading"] = self.trading_enabled(key, entry)
        expires = self.trading_expiration_ms(key, entry)
        if expires is not None:  # absent when there is none (§4 E4)
            answer["tradingAuthorityExpirationTime"] = expires
        return ok(answer)

    def _account(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        omit = _bool_param(values, "omitZeroBalances")  # E5
        if isinstance(omit, SandboxResponse):
            return omit
        balances = [
            {"asset": str(line["asset"]), "free": fmt8(line.get("free")), "locked": fmt8(line.get("locked"))}
            for line in self.wallet(entry, "spot")
        ]
        if omit:
            balances = [b for b in balances if dec(b["free"]) + dec(b["locked"]) > 0]
        else:
            # Choice: "every asset with zeros" (§4 E5) = every asset of the ticker table.
            held = {b["asset"] for b in balances}
            assets = {str(r.get(side)) for r in self._rows().values() for side in ("baseAsset", "quoteAsset")}
            zero = fmt8(0)
            balances += [{"asset": a, "free": zero, "locked": zero} for a in sorted(assets - held)]
        rate, nil = "0.00100000", "0.00000000"
        return ok(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": nil, "seller": nil},
                # Choice: account-level flags, always true (§4 E5: not key permissions; use E4).
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self.started_ms,
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": entry.get("uid"),
            }
        )

    def _funding(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        need_btc = _bool_param(values, "needBtcValuation")  # E6
        if isinstance(need_btc, SandboxResponse):
            return need_btc
        book, asset = PriceBook(self.tickers), values.get("asset")
        rows = []
        for line in self.wallet(entry, "funding"):
            if funding_total(line) <= 0 or (asset and line["asset"] != asset):
                continue  # §4 E6: only assets held
            row = {"asset": str(line["asset"]), **{part: short(line.get(part)) for part in FUNDING_PARTS}}
            # Choice: btcValuation is "0" unless needBtcValuation=true.
            row["btcValuation"] = short(btc_value(book, line, funding_total(line)) if need_btc else 0)
            rows.append(row)
        return ok(rows)

    def _wallet_totals(self, entry: Entry, book: PriceBook) -> dict[str, Decimal]:
        """Each E7 wallet's worth in USDT (TRADING pairs only; unpriced assets count 0)."""
        totals = dict.fromkeys(WALLET_NAMES, ZERO)
        totals["Spot"] = sum(
            (book.value(line["asset"], spot_total(line)) for line in self._spot_lines(entry)), ZERO
        )
        totals["Funding"] = sum(
            (book.value(line["asset"], funding_total(line)) for line in self.wallet(entry, "funding")), ZERO
        )
        flexible = self.wallet(entry, "earnFlexible")
        locked = self.wallet(entry, "earnLocked")
        totals["Earn"] = sum((book.value(line["asset"], line.get("totalAmount")) for line in flexible), ZERO)
        totals["Earn"] += sum((book.value(line["asset"], line.get("amount")) for line in locked), ZERO)
        margin = self.wallet(entry, "margin")
        if margin is not None:  # §4 E11: value the net asset
            assets = margin.get("userAssets", [])
            totals["Cross Margin"] = sum((book.value(a["asset"], a.get("netAsset")) for a in assets), ZERO)
        futures = self.wallet(entry, "futures")
        if futures is not None:  # Choice: wallet balance plus unrealised PnL
            totals["USDⓈ-M Futures"] = sum(
                (book.value(f["asset"], dec(f.get("balance")) + dec(f.get("crossUnPnl"))) for f in futures),
                ZERO,
            )
        return totals

    def _spot_lines(self, entry: Entry) -> list[dict[str, Any]]:
        """Spot lines without the LD<asset> mirrors of flexible Earn (§6 "LD assets"), which
        E7 counts under Earn only (Choice: so the wallets' sum counts them once)."""
        mirrors = {f"LD{line['asset']}" for line in self.wallet(entry, "earnFlexible")}
        return [line for line in self.wallet(entry, "spot") if line["asset"] not in mirrors]

    def _wallet_balance(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        """E7: one row per wallet, valued in ``quoteAsset`` (default BTC)."""
        book = PriceBook(self.tickers)
        quote_price = book.usdt(values.get("quoteAsset", "BTC"))
        if not quote_price:
            return error(-1130, MSG_NOT_VALID.format("quoteAsset"))  # Choice: an unpriced quote
        detail = _bool_param(values, "needBalanceDetail")
        if isinstance(detail, SandboxResponse):
            return detail
        totals = self._wallet_totals(entry, book)
        # Choice: every wallet is active but Options, and margin/futures only when they exist.
        inactive = {"Options"}
        if self.wallet(entry, "margin") is None:
            inactive.add("Cross Margin")
        if self.wallet(entry, "futures") is None:
            inactive |= {"USDⓈ-M Futures", "COIN-M Futures"}
        rows = []
        for name in WALLET_NAMES:
            row: dict[str, Any] = {
                "activate": name not in inactive,
                "balance": short(totals[name] / quote_price),
                "walletName": name,
            }
            if detail:  # needBalanceDetail (CONN, 2026). Choice: lines of Spot and Funding only.
                lines = {"Spot": self._spot_lines(entry), "Funding": self.wallet(entry, "funding")}
                row["assetBalances"] = [
                    {
                        "asset": line["asset"],
                        "assetName": line["asset"],
                        **{part: short(line.get(part)) for part in FUNDING_PARTS},
                        "btcValuation": short(btc_value(book, line, funding_total(line))),
                    }
                    for line in lines.get(name, [])
                ]
            rows.append(row)
        return ok(rows)

    def _earn_page(self, values: Values, lines: list[dict[str, Any]], make) -> SandboxResponse:
        current = _int_param(values, "current", 1, 1, 10**9)  # E9: paginated by current/size
        if isinstance(current, SandboxResponse):
            return current
        size = _int_param(values, "size", 10, 1, 100)
        if isinstance(size, SandboxResponse):
            return size
        asset = values.get("asset")
        rows = [make(line, n) for n, line in enumerate(lines) if not asset or line["asset"] == asset]
        start = (current - 1) * size
        return ok({"rows": rows[start : start + size], "total": len(rows)})

    def _earn_flexible(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        return self._earn_page(values, self.wallet(entry, "earnFlexible"), lambda line, n: flexible_row(line))

    def _earn_locked(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        return self._earn_page(values, self.wallet(entry, "earnLocked"), locked_row)

    def _margin(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        margin = self.wallet(entry, "margin")  # E11
        if margin is None:
            return error(-3003, MSG_NO_MARGIN, 400)  # HTTP 400 assumed (§7.2)
        book = PriceBook(self.tickers)
        btc = book.usdt("BTC") or Decimal(1)
        assets = list(margin.get("userAssets", []))
        held = sum(book.value(a["asset"], dec(a.get("free")) + dec(a.get("locked"))) for a in assets) / btc
        owed = (
            sum(book.value(a["asset"], dec(a.get("borrowed")) + dec(a.get("interest"))) for a in assets) / btc
        )
        names = ("asset", "borrowed", "free", "interest", "locked", "netAsset")
        return ok(
            {
                "created": True,
                "borrowEnabled": True,
                # Choice: assets / liabilities, and 999 without debt (Binance's cap, CONN example)
                "marginLevel": fmt8(held / owed) if owed else "999.00000000",
                "collateralMarginLevel": fmt8(held / owed) if owed else "999.00000000",
                "totalAssetOfBtc": fmt8(held),
                "totalLiabilityOfBtc": fmt8(owed),
                "totalNetAssetOfBtc": fmt8(held - owed),
                "totalCollateralValueInUSDT": fmt8(held * btc),
                "tradeEnabled": True,
                "transferInEnabled": True,
                "transferOutEnabled": True,
                "accountType": "MARGIN_1",
                "userAssets": [
                    {n: a["asset"] if n == "asset" else fmt8(a.get(n)) for n in names} for a in assets
                ],
            }
        )

    def _futures(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        rows = []  # E13 (access already checked: no futures is -2015)
        for line in self.wallet(entry, "futures") or []:
            balance = fmt8(line.get("balance"))
            available = fmt8(line.get("availableBalance", balance))
            rows.append(
                {
                    "accountAlias": str(line.get("accountAlias", "SgsR")),
                    "asset": line["asset"],
                    "balance": balance,
                    "crossWalletBalance": balance,
                    "crossUnPnl": fmt8(line.get("crossUnPnl")),
                    "availableBalance": available,
                    "maxWithdrawAmount": available,
                    "marginAvailable": True,
                    "updateTime": self.started_ms,
                }
            )
        return ok(rows)

    def _order_test(self, request: SandboxRequest, values: Values, entry: Entry) -> SandboxResponse:
        """E16: validates, sends nothing to the matching engine, answers ``{}`` (SPOT)."""
        for name in ("symbol", "side", "type"):
            if not values.get(name):
                return error(-1102, MSG_MANDATORY.format(name))
        if values["symbol"] not in self._rows():
            return error(-1121, MSG_SYMBOL)
        for name, allowed in (("side", ORDER_SIDES), ("type", ORDER_TYPES)):
            if values[name] not in allowed:
                return error(-1130, MSG_NOT_VALID.format(name))
        rates = _bool_param(values, "computeCommissionRates")
        if isinstance(rates, SandboxResponse):
            return rates
        if not rates:
            return ok({})
        rate, nil = {"maker": "0.00100000", "taker": "0.00100000"}, {"maker": "0", "taker": "0"}
        discount = {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB"}
        return ok(
            {
                "standardCommissionForOrder": rate,
                "taxCommissionForOrder": nil,
                "discount": {**discount, "discount": "0.25000000"},
            }
        )
