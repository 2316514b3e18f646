"""HTX's answers for the HTX sandbox: error texts, envelopes and the endpoint handlers.

Part of ``exchanges.venues.htx.sandbox`` (import from there); split out to keep modules short.
``HtxEndpoints`` is a mixin of ``HtxSandbox``: its handlers use the sandbox's authentication,
rate windows and data. Facts and sources are in shared/htx-api.md (§ numbers refer to it);
where no source says what HTX does, the choice is marked ``Choice:``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from exchanges.venues.kit.sandbox import SandboxRequest, SandboxResponse, json_response

# E7 (§4): the account types and valuation currencies DOCS21 lists, both case-sensitive.
VALUATION_ACCOUNT_TYPES = ("spot", "margin", "otc", "super-margin")
VALUATION_CURRENCIES = (
    "BTC", "CNY", "USD", "JPY", "KRW", "GBP", "TRY", "EUR",
    "RUB", "VND", "HKD", "TWD", "MYR", "SGD", "AED", "SAR",
)  # fmt: skip
# Choice: HTX does not say how it turns a USDT value into fiat. The sandbox uses this fixed,
# round table (units of fiat per 1 USD; USDT counts as USD), so every currency E7 accepts has an
# answer and tests can compute it. These are illustrative rates, not market data.
FIAT_PER_USD = {
    "USD": Decimal("1"),
    "CNY": Decimal("7.2"),
    "JPY": Decimal("150"),
    "KRW": Decimal("1350"),
    "GBP": Decimal("0.79"),
    "TRY": Decimal("32"),
    "EUR": Decimal("0.92"),
    "RUB": Decimal("90"),
    "VND": Decimal("25000"),
    "HKD": Decimal("7.8"),
    "TWD": Decimal("32"),
    "MYR": Decimal("4.7"),
    "SGD": Decimal("1.35"),
    "AED": Decimal("3.6725"),
    "SAR": Decimal("3.75"),
}
# Choice: BTC values to 8 decimals (as E8's "0.06276321"), fiat to 2 (as E7's "34.75"), rounded
# down so a valuation never overstates what the account holds.
_BTC_PLACES = Decimal("0.00000001")
_FIAT_PLACES = Decimal("0.01")


# --- HTX error texts (§5.2) -------------------------------------------------------------------
SIG_INVALID = "api-signature-not-valid"
MSG_ACCESS_KEY = "Signature not valid: Incorrect Access key [Access key错误]"
MSG_TIME = (
    "Signature not valid: Invalid submission time or incorrect time format [无效的提交时间，或时间格式错误]"
)
MSG_VERIFY = "Signature not valid: Verification failure [校验失败]"
MSG_IP = "Signature not valid: Incorrect IP address [IP地址错误]:{ip}"
MSG_PERMISSION = "Signature not valid: API key has no permission [API Key没有权限]"
# Per HTX.Net's HTXErrors.cs (it matches this exact text); not confirmed in docs or issues.
MSG_EXPIRED = "APIkey has expired"
# login-required is documented ("Signature is missing", DOCS error tables; FAQ Q9) but only as
# a description. Choice: the err-msg HTX sends with this code in a captured response fixture.
MSG_LOGIN_REQUIRED = "The account is not logged in, please log in and try again."
MSG_RATE_LIMIT = "Frequency of requests has exceeded the limit, please try again later"  # CCXT
MSG_MAINTENANCE = "System is in maintenance!"  # CCXT comment for system-maintenance
# Seen in a captured HTX response (krijnsent/crypto_vba): the labels are swapped (the caller's
# uid is called "id", the account id "user id") and numbers carry Java's thousands separators.
MSG_ACCOUNT_INEXISTENT = "account for id `{uid}` and user id `{account_id}` does not exist"
# gateway-internal-error (DOCS21 FAQ Q8: wrong POST Content-Type or bad JSON); the err-msg is
# the one in CCXT's comment for that code.
MSG_GATEWAY = "Failed to load data. Try again later."
# DOCS21 "Submit Cancel for an Order" error example; order-state -1 is "order was already
# closed in the long past", the only answer the docs show for an order that cannot be cancelled.
MSG_ORDER_STATE = "Incorrect order state"
# CCXT's comment for validation-format-error quotes exactly this text for a bad order-id.
MSG_ORDER_ID_FORMAT = "Format Error: order-id."


# --- envelopes ------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None):
    # Compact, with the Chinese parts of HTX's messages as UTF-8 like HTX sends them.
    return json_response(payload, status, headers)


def v1_error(code: str, message: str, headers: list[tuple[str, str]] | None = None):
    payload = {"status": "error", "err-code": code, "err-msg": message, "data": None}
    return _json(payload, 200, headers)


def v2_error(code: int, message: str, headers: list[tuple[str, str]] | None = None):
    return _json({"code": code, "message": message}, 200, headers)


def _thousands(value: str) -> str:
    return f"{int(value):,}" if value.isdigit() else value


def key_permissions(entry: Mapping[str, Any]) -> set[str]:
    return {p.strip() for p in str(entry.get("permission") or "").split(",")}


def _price(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        price = Decimal(str(value))  # str() of a float is its shortest repr: 0.1 -> "0.1"
    except InvalidOperation:
        return None
    return price if price.is_finite() and price > 0 else None


# --- endpoints ------------------------------------------------------------------------------


class HtxEndpoints:
    """HTX's endpoints (§4), mixed into ``HtxSandbox``, whose attributes they use:
    ``accounts``, ``tickers``, ``fiat_per_usd``, ``now_ms()``, ``_authenticate()`` (the
    signature check), ``_take()``/``_count()`` (rate windows) and ``_account_list()``."""

    def _timestamp(self, request: SandboxRequest) -> SandboxResponse:
        return _json({"status": "ok", "data": self.now_ms()})

    def _tickers(self, request: SandboxRequest) -> SandboxResponse:
        return _json({"status": "ok", "ts": self.now_ms(), "data": self.tickers})

    def _uid(self, request: SandboxRequest) -> SandboxResponse:
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        self._count(int(entry.get("uid") or 0), "uid")
        if entry.get("subUser"):
            # DOCS21 lists E4/E5 but not E2/E3 among the endpoints open to sub-users; others
            # are refused. Reading chosen: v2 1002 "forbidden" with HTTP 200 (§5.2), not HTTP 403.
            return v2_error(1002, "forbidden")
        return _json({"code": 200, "data": entry.get("uid")})

    def _api_key(self, request: SandboxRequest) -> SandboxResponse:
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        self._count(int(entry.get("uid") or 0), "api-key")
        if entry.get("subUser"):
            return v2_error(1002, "forbidden")  # see _uid
        params = dict(reversed(request.params))  # first occurrence wins
        uid_text = params.get("uid", "")
        if not uid_text:
            # DOCS21 marks uid required. Choice: DOCS' v2 code for a missing field.
            return v2_error(2003, 'missing mandatory field "uid"')
        if not uid_text.isdigit():
            return v2_error(2002, 'invalid field value in "uid"')
        if int(uid_text) != entry.get("uid"):
            # Only a parent may query its own keys (and its sub-users', not modelled here).
            # Choice: DOCS' sub-account code 1002 "forbidden" (operation not allowed for the
            # current user), as for a sub-user calling a parent-only endpoint.
            return v2_error(1002, "forbidden")
        wanted = params.get("accessKey")
        if wanted:  # one key asked for (what our client does): no scan of every key
            candidates = [(wanted, self.accounts[wanted])] if wanted in self.accounts else []
        else:
            candidates = list(self.accounts.items())
        # Keys of this uid only; an unknown key, or another uid's, lists nothing.
        keys = [
            (key, other)
            for key, other in candidates
            if other.get("uid") == entry.get("uid") and not other.get("subUser")
        ]
        data = [_key_info(key, other) for key, other in keys]
        return _json({"code": 200, "message": "success", "data": data, "ok": True})

    def _accounts(self, request: SandboxRequest) -> SandboxResponse:
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        allowed, remain, expire = self._take(int(entry.get("uid") or 0), "accounts")
        headers = rate_headers(remain, expire)
        if not allowed:
            return v1_error("base-request-exceed-frequency-limit", MSG_RATE_LIMIT, headers)
        data = [
            {
                "id": account["id"],
                "type": account.get("type", "spot"),
                "subtype": account.get("subtype", ""),
                "state": account.get("state", "working"),
            }
            for account in self._account_list(entry)
        ]
        return _json({"status": "ok", "data": data}, headers=headers)

    def _balance(self, request: SandboxRequest, account_id: str) -> SandboxResponse:
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        uid = int(entry.get("uid") or 0)
        allowed, remain, expire = self._take(uid, "balance")
        headers = rate_headers(remain, expire)
        if not allowed:
            return v1_error("base-request-exceed-frequency-limit", MSG_RATE_LIMIT, headers)
        account = next((a for a in self._account_list(entry) if str(a.get("id")) == account_id), None)
        if account is None:
            message = MSG_ACCOUNT_INEXISTENT.format(
                uid=_thousands(str(uid)), account_id=_thousands(account_id)
            )
            return v1_error("account-get-balance-account-inexistent-error", message, headers)
        refusal = account.get("refuse")
        if refusal:
            # Sandbox-only hook (not an HTX field): make HTX refuse this one account's balance,
            # e.g. {"err-code": "forbidden", "err-msg": "..."}, to test partial reads.
            return v1_error(str(refusal["err-code"]), str(refusal.get("err-msg", "")), headers)
        lines = [
            {
                "currency": line["currency"],
                "type": line["type"],
                "balance": line["balance"],  # string decimal, exactly as stored
                "seq-num": str(line.get("seq-num", "0")),
            }
            for line in account.get("list", [])
        ]
        data = {
            "id": account["id"],
            "type": account.get("type", "spot"),
            "state": account.get("state", "working"),
            "list": lines,
        }
        return _json({"status": "ok", "data": data}, headers=headers)

    def _asset_valuation(self, request: SandboxRequest) -> SandboxResponse:
        """E7: the value of the key's accounts of one type, in BTC or a fiat currency."""
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        if entry.get("subUser"):
            return v2_error(1002, "forbidden")  # not open to sub-users (§4 E3), see _uid
        allowed, remain, expire = self._take(int(entry.get("uid") or 0), "asset-valuation")
        headers = rate_headers(remain, expire)  # E7 is a NEW-rule endpoint, 100/2s (§6)
        if not allowed:
            return v1_error("base-request-exceed-frequency-limit", MSG_RATE_LIMIT, headers)

        # Choice: DOCS' v2 codes for a missing (2003) or invalid (2002) field, as for E3's uid.
        params = dict(reversed(request.params))  # first occurrence wins
        account_type = params.get("accountType")
        if not account_type:
            return v2_error(2003, 'missing mandatory field "accountType"', headers)
        if account_type not in VALUATION_ACCOUNT_TYPES:
            return v2_error(2002, 'invalid field value in "accountType"', headers)
        # Absent means BTC (DOCS21 default); any other value, "" and "usdt"/"USDT" included,
        # is outside the documented case-sensitive list.
        currency = params.get("valuationCurrency", "BTC")
        if currency not in VALUATION_CURRENCIES or (currency != "BTC" and currency not in self.fiat_per_usd):
            return v2_error(2002, 'invalid field value in "valuationCurrency"', headers)
        if "subUid" in params:
            # Choice (fails safe): the sandbox models no parent/sub-user links, so no uid is a
            # sub-user of the caller: a malformed subUid is an invalid field, any other is
            # refused with DOCS' "forbidden", never answered with the caller's own valuation.
            if not params["subUid"].isdigit():
                return v2_error(2002, 'invalid field value in "subUid"', headers)
            return v2_error(1002, "forbidden", headers)

        prices = self._usdt_prices()
        total_usdt = Decimal(0)
        for account in self._account_list(entry):
            if account.get("type", "spot") != account_type:
                continue  # margin: every isolated-margin account (one per subtype) is summed
            for line in account.get("list", []):
                # Choice: trade + frozen only. Margin loan/interest lines are left out, as are
                # coins with no route to USDT (HTX does not say what it does with them).
                if line.get("type") not in ("trade", "frozen"):
                    continue
                price = prices(str(line.get("currency", "")))
                if price is not None:
                    total_usdt += Decimal(str(line.get("balance", "0"))) * price
        if currency == "BTC":
            btc = prices("btc")
            if btc is None:
                # Choice: without btcusdt nothing can be said in BTC: DOCS' v2 "System error".
                return v2_error(500, "System error", headers)
            value = (total_usdt / btc).quantize(_BTC_PLACES, rounding=ROUND_DOWN)
        else:
            value = (total_usdt * self.fiat_per_usd[currency]).quantize(_FIAT_PLACES, rounding=ROUND_DOWN)
        data = {"balance": format(value, "f"), "timestamp": self.now_ms()}
        return _json({"code": 200, "data": data, "ok": True}, headers=headers)

    def _usdt_prices(self) -> Callable[[str], Decimal | None]:
        """currency -> USDT price from the ticker table: usdt is 1, then <ccy>usdt, else
        <ccy>btc x btcusdt, else <ccy>eth x ethusdt (the routes issue 3 asks for); else None."""
        closes: dict[str, Decimal] = {}
        for ticker in list(self.tickers):
            price = _price(ticker.get("close")) if isinstance(ticker, dict) else None
            if price is not None:
                closes[str(ticker.get("symbol", ""))] = price

        def price_of(ccy: str) -> Decimal | None:
            if ccy == "usdt":
                return Decimal(1)
            direct = closes.get(f"{ccy}usdt")
            if direct is not None:
                return direct
            for via in ("btc", "eth"):
                cross, leg = closes.get(f"{ccy}{via}"), closes.get(f"{via}usdt")
                if cross is not None and leg is not None:
                    return cross * leg
            return None

        return price_of

    def _submitcancel(self, request: SandboxRequest, order_id: str) -> SandboxResponse:
        """POST /v1/order/orders/{order-id}/submitcancel: proves POST signing (body unsigned).

        The sandbox holds no orders, so every well-formed, authorised call gets DOCS21's error
        for an order that cannot be cancelled (which CCXT maps to OrderNotFound).
        """
        # The gateway reads the body before the API sees the call (DOCS21 FAQ Q8). Choice: an
        # empty body or JSON that is not an object (the endpoint binds an object) is bad JSON.
        media_type = request.content_type.split(";", 1)[0].strip().lower()
        try:
            if media_type != "application/json":
                raise ValueError(media_type)
            if not isinstance(json.loads(request.body.decode("utf-8")), dict):
                raise ValueError("not an object")
        except ValueError:  # JSONDecodeError and UnicodeDecodeError included
            return v1_error("gateway-internal-error", MSG_GATEWAY)

        # Only the query (the 4 auth params and Signature) is verified; the body is not signed.
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        if "trade" not in key_permissions(entry):  # DOCS21: "API Key Permission: Trade"
            return v1_error(SIG_INVALID, MSG_PERMISSION)
        if not order_id.isdigit():
            return v1_error("validation-format-error", MSG_ORDER_ID_FORMAT)
        return _json(
            {
                "status": "error",
                "err-code": "order-orderstate-error",
                "err-msg": MSG_ORDER_STATE,
                "order-state": -1,
                "data": None,
            }
        )


def rate_headers(remain: int, expire_ms: int) -> list[tuple[str, str]]:
    # DOCS: "the remaining count of request and the expire time for current rate limit time
    # window". Choice: the expiry is sent as epoch milliseconds (server clock).
    return [
        ("X-HB-RateLimit-Requests-Remain", str(remain)),
        ("X-HB-RateLimit-Requests-Expire", str(expire_ms)),
    ]


def _key_info(access_key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "accessKey": access_key,
        "status": entry.get("status", "normal"),
        "note": entry.get("note", ""),
        "permission": entry.get("permission", ""),
        "ipAddresses": entry.get("ipAddresses", ""),
        "validDays": entry.get("validDays", -1),
        "createTime": entry.get("createTime", 0),
        "updateTime": entry.get("updateTime", 0),
    }
