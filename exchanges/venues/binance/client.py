"""Binance spot REST client implementing the kit's ``VenueClient`` protocol.

One client per key and job. Signed calls carry the key in ``X-MBX-APIKEY`` and
``timestamp``/``recvWindow``/``signature`` in the query (GET) or the form body (POST), signed
over exactly the bytes sent (``signing``). Requests go out over the kit's shared keep-alive
pool, each admitted by the gate when there is one. Secrets stay inside this object: no URL,
query, key or signature ever reaches an exception text, and ``redact`` cleans log lines.

Wallets read (binance-api.md §6): spot (E5) and funding (E6) always; the overview (E7, in
USDT) decides which heavier detail endpoints to call: Simple Earn (E9), Cross Margin (E11),
USDⓈ-M Futures (E13). A wallet the key may not read, or that Binance lists with money but
this client has no detail endpoint for, is reported in ``unread``, never failing the read.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

from exchanges.venues.kit.transport import HttpPool, Response, TransportError, shared_pool
from exchanges.venues.kit.types import BalanceRead, Credentials, Flag, KeyFacts, OtherLine, Prior, WalletLine

from . import signing
from .errors import BinanceError, ErrorKind, decode

DEFAULT_BASE_URL = "https://api.binance.com"
FUTURES_BASE_URL = "https://fapi.binance.com"
# (connect, read) seconds. Binance's own API timeout is 10 s (-1007 after that).
DEFAULT_TIMEOUT = (3.05, 10.0)
PUBLIC_SCOPE = "ip"
ZERO = Decimal(0)

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

# Simple Earn pages: 100 positions each, 150 weight each; a cap keeps a huge account bounded.
EARN_PAGE_SIZE = 100
EARN_MAX_PAGES = 5

# E4's permission fields, as Binance's API Management page labels the checkboxes. ``danger``:
# money can move. Withdrawals take it out of the account (refused); Universal Transfer only
# moves it between the account's own wallets (shown as a warning).
PERMISSION_FLAGS: tuple[tuple[str, str, bool], ...] = (
    ("enableReading", "Enable Reading", False),  # required (see _REQUIRED)
    ("enableSpotAndMarginTrading", "Enable Spot & Margin Trading", False),  # required
    ("enableWithdrawals", "Enable Withdrawals", True),
    ("enableMargin", "Enable Margin Loan, Repay & Transfer", False),
    ("enableFutures", "Enable Futures", False),
    ("permitsUniversalTransfer", "Permits Universal Transfer", True),
    ("enableInternalTransfer", "Enable Internal Transfer", False),
    ("enableVanillaOptions", "Enable Vanilla Options", False),
    ("enablePortfolioMarginTrading", "Enable Portfolio Margin Trading", False),
)

# The permissions this dashboard needs on: reading, and spot trading.
_REQUIRED = frozenset({"enableReading", "enableSpotAndMarginTrading"})

# Codes that mean "this key may not read that wallet" on a wallet endpoint: -2015 (no
# permission, or futures not enabled), -1002 (not authorized), -3003 (no margin account).
_WALLET_REFUSALS = frozenset({"-2015", "-1002", "-3003"})

_SIGNATURE = re.compile(r"(signature=)[^&\s'\"]+", re.IGNORECASE)
_KEY_HEADER = re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^'\"\s,;&}]+", re.IGNORECASE)
# Binance API Keys and Secret Keys are 64 letters and digits; so is a hex HMAC signature.
_KEY_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL)


def redact(text: str, api_key: str = "") -> str:
    """Strip ``signature=`` values, ``X-MBX-APIKEY`` header values, the API key (and anything
    shaped like a Binance key) and PEM private keys from a log line."""
    if api_key:
        text = text.replace(api_key, "[redacted]")
    text = _PEM.sub("[redacted private key]", text)
    text = _SIGNATURE.sub(r"\1[redacted]", text)
    text = _KEY_HEADER.sub(r"\1[redacted]", text)
    return _KEY_LIKE.sub("[redacted]", text)


class Gate(Protocol):
    """Admission to Binance before each request (``exchanges.venues.kit.gate.Gate``); a gate
    may also have ``block(seconds)`` for Binance's "stop until" answers."""

    def slot(self, path: str, scope: str) -> AbstractContextManager[None]: ...


class BinanceClient:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        credentials: Credentials | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        pool: HttpPool | None = None,
        gate: Gate | None = None,
        scope: str = "",
        recv_window: int = signing.RECV_WINDOW,
        futures_url: str | None = None,
    ):
        self.base_url = _base(base_url)
        host = (urlsplit(self.base_url).hostname or "").lower()
        # Binance serves USDⓈ-M futures from another host; a sandbox or proxy serves it all.
        if futures_url:
            self.futures_url = _base(futures_url)
        elif host == "binance.com" or host.endswith(".binance.com"):
            self.futures_url = FUTURES_BASE_URL
        else:
            self.futures_url = self.base_url
        self._api_key = credentials.api_key if credentials else ""
        self._secret = credentials.secret if credentials else ""
        self._signer: signing.Signer | None = None
        self.timeout = timeout
        self.pool = pool or shared_pool()
        self.gate = gate
        self.scope = scope or f"key:{hashlib.sha256(self._api_key.encode()).hexdigest()[:16]}"
        self.recv_window = recv_window
        self.clock_offset_ms = 0  # Binance's clock minus ours, measured by sync_clock()
        self.calls = 0  # HTTP requests sent by this client
        # Binance's own count of the weight used in the current minute, per family.
        self.used_weight: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<BinanceClient {self.base_url}>"

    def close(self) -> None:
        """Nothing to release: connections go back to the shared pool after each call."""

    def __enter__(self) -> BinanceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        return redact(text, self._api_key)

    # The VenueClient protocol -------------------------------------------------------------

    def sync_clock(self) -> int:
        """E1: Binance's clock minus the midpoint of our clock around the call."""
        before = time.time() * 1000
        data = self._call("GET", TIME, signed=False)
        after = time.time() * 1000
        with _parsing(TIME):
            server = int(data["serverTime"])
        self.clock_offset_ms = round(server - (before + after) / 2)
        return self.clock_offset_ms

    def inspect_key(self, prior: Prior) -> KeyFacts:
        """E4 (permissions, IP restriction, trading expiry), then E5 for the account uid. E5 is
        the spot wallet too, so its answer rides along in ``context`` for ``read_balances``.
        E5 is skipped for a key that cannot read or that can withdraw (refused anyway)."""
        restrictions = self._call("GET", KEY_PERMISSIONS)
        with _parsing(KEY_PERMISSIONS):
            facts = facts_from_restrictions(restrictions, skew_ms=self.clock_offset_ms)
        account = None
        if facts.can_read and not facts.can_withdraw:
            account = self.account()
        uid = prior.account_uid
        if account is not None and account.get("uid") is not None:
            uid = str(account["uid"])
        return replace(facts, account_uid=uid, context={"account": account} if account else None)

    def read_balances(self, facts: KeyFacts) -> BalanceRead:
        context = facts.context if isinstance(facts.context, dict) else {}
        account = context.get("account") or self.account()
        book = _Book()
        unread: list[dict[str, Any]] = []

        mirrors = book.spot(account)  # LD<asset> lines: flexible Earn seen from spot
        unread_wallet = _unread_collector(unread)

        with unread_wallet("funding", "Funding"):
            book.funding(self._call("POST", FUNDING))

        overview = None
        with unread_wallet("overview", "Wallet overview"):
            overview = overview_of(self._call("GET", OVERVIEW, {"quoteAsset": "USDT"}))

        flexible_read = False
        if overview is None:
            # Without the overview we do not know where money is: read the cheap wallets,
            # leave Earn (150 weight a page) to the spot mirror.
            unread.append(
                {
                    "type": "earn-locked",
                    "id": "Earn",
                    "reason": "Binance did not show this key its wallet overview, so locked Earn "
                    "was not read; flexible Earn is shown from the spot wallet",
                }
            )
        elif overview.get("earn", ZERO) > 0:
            with unread_wallet("earn-flexible", "Earn"):
                book.earn("earn-flexible", self._earn(EARN_FLEXIBLE), "totalAmount")
                flexible_read = True
            with unread_wallet("earn-locked", "Earn"):
                book.earn("earn-locked", self._earn(EARN_LOCKED), "amount")
        if not flexible_read:
            book.mirrors(mirrors)

        if overview is None or overview.get("cross margin", ZERO) != 0:
            with unread_wallet("margin", "Cross Margin", quiet_codes=() if overview else ("-3003",)):
                book.margin(self._call("GET", CROSS_MARGIN))
        if overview is None or overview.get("usds-m futures", ZERO) != 0:
            with unread_wallet("futures", "USDⓈ-M Futures"):
                book.futures(self._call("GET", FUTURES, futures=True))

        unread += unlisted_wallets(overview)
        return book.result(unread)

    def prices(self) -> dict[str, Decimal]:
        """E3, tradable pairs only: ``{"BTCUSDT": Decimal(...)}``."""
        data = self._call("GET", PRICES, {"symbolStatus": "TRADING"}, signed=False)
        if not isinstance(data, list):
            raise BinanceError(ErrorKind.UNKNOWN, message="unexpected Binance answer", path=PRICES)
        prices: dict[str, Decimal] = {}
        for row in data:
            try:
                prices[str(row["symbol"]).upper()] = Decimal(str(row["price"]))
            except (KeyError, TypeError, InvalidOperation):
                continue
        return prices

    # Single endpoints ---------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        """E5, assets held only."""
        data = self._call("GET", ACCOUNT, {"omitZeroBalances": True})
        if not isinstance(data, dict):
            raise BinanceError(ErrorKind.UNKNOWN, message="unexpected Binance answer", path=ACCOUNT)
        return data

    def system_status(self) -> int:
        """E15: 0 normal, 1 maintenance."""
        data = self._call("GET", SYSTEM_STATUS, signed=False, check_maintenance=False)
        with _parsing(SYSTEM_STATUS):
            return int(data["status"])

    def _earn(self, path: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(1, EARN_MAX_PAGES + 1):
            data = self._call("GET", path, {"current": page, "size": EARN_PAGE_SIZE})
            with _parsing(path):
                batch = list(data.get("rows") or ())
                total = int(data.get("total") or 0)
            rows += batch
            if not batch or len(rows) >= total:
                break
        return rows

    # Transport ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        futures: bool = False,
        check_maintenance: bool = True,
    ) -> Any:
        try:
            return self._send(method, path, params, signed=signed, futures=futures)
        except BinanceError as error:
            if error.kind == ErrorKind.INVALID_TIMESTAMP and signed:
                # Our clock drifted from Binance's: measure again and retry once. If it still
                # fails, the (transient) error goes up.
                self.sync_clock()
                return self._send(method, path, params, signed=signed, futures=futures)
            if check_maintenance and error.kind == ErrorKind.UNAVAILABLE and (error.status or 0) >= 500:
                self._raise_if_maintenance(error)
            raise

    def _raise_if_maintenance(self, error: BinanceError) -> None:
        """A 5xx during Binance's maintenance: E15 says so (its 5xx bodies do not)."""
        try:
            status = self.system_status()
        except BinanceError:
            return
        if status == 1:
            raise BinanceError(
                ErrorKind.MAINTENANCE,
                status=error.status,
                code=error.code,
                message="Binance system maintenance",
                path=error.path,
            ) from None

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, *, signed: bool, futures: bool
    ) -> Any:
        base = self.futures_url if futures else self.base_url
        headers: dict[str, str] = {}
        body: bytes | None = None
        slot = self.gate.slot(path, self.scope if signed else PUBLIC_SCOPE) if self.gate else nullcontext()
        with slot:
            # Signed once admitted, so time spent waiting for a slot does not age the timestamp.
            if signed:
                signed_text = signing.signed_params(
                    self._signing_key(path), params, timestamp=self._now_ms(), recv_window=self.recv_window
                )
                headers["X-MBX-APIKEY"] = self._api_key
                if method == "GET":
                    query = signed_text
                else:
                    query = ""
                    body = signed_text.encode()
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                query = signing.encode_params(params)
            url = f"{base}{path}" + (f"?{query}" if query else "")
            self.calls += 1
            try:
                # Every call here reads; a read-only POST may be sent again on a fresh connection.
                response = self.pool.request(
                    method, url, timeout=self.timeout, headers=headers, body=body, idempotent=True
                )
            except TransportError as exc:
                # Never the URL in the message: it holds the signature.
                message = (
                    "Binance did not answer in time" if exc.timeout else f"could not reach Binance ({exc})"
                )
                raise BinanceError(ErrorKind.UNAVAILABLE, message=message, path=path) from None
        self._note_weight(response)
        return self._unwrap(response, path)

    def _unwrap(self, response: Response, path: str) -> Any:
        if 200 <= response.status < 300:
            try:
                data = json.loads(response.body)
            except ValueError:
                data = None
            else:
                if not _is_error(data):
                    return data
        error = decode(response.status, response.body, response.headers, path=path)
        if self._api_key and self._api_key in error.message:
            error = BinanceError(
                error.kind,
                status=error.status,
                code=error.code,
                message=self.redact(error.message),
                path=path,
                retry_after=error.retry_after,
            )
        if response.status in (418, 429) and error.retry_after and self.gate is not None:
            block: Callable[[float], None] | None = getattr(self.gate, "block", None)
            if block is not None:
                block(error.retry_after)  # every worker of this server stops until then
        raise error

    def _signing_key(self, path: str) -> signing.Signer:
        if not self._api_key or not self._secret:
            raise ValueError("signed Binance call without credentials")
        if self._signer is None:
            try:
                self._signer = signing.Signer(self._secret)
            except ValueError as exc:
                raise BinanceError(ErrorKind.INVALID_SIGNATURE, message=str(exc), path=path) from None
        return self._signer

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def _note_weight(self, response: Response) -> None:
        for header, family in (
            ("X-MBX-USED-WEIGHT-1M", "api"),
            ("X-SAPI-USED-IP-WEIGHT-1M", "sapi"),
            ("X-SAPI-USED-UID-WEIGHT-1M", "sapi-uid"),
        ):
            value = response.headers.get(header)
            if value is not None and value.isdigit():
                self.used_weight[family] = int(value)


# Answers -> neutral types ------------------------------------------------------------------


def facts_from_restrictions(
    data: dict[str, Any], *, skew_ms: int = 0, now: datetime | None = None
) -> KeyFacts:
    """E4 as ``KeyFacts``. ``tradingAuthorityExpirationTime`` is present only when the trading
    right expires (keys without an IP restriction: 30 days). A date in the past means Binance
    has turned trading off (or is about to untick the box), so the key cannot trade; unless the
    box is ticked on a key that is now IP-restricted, whose trading never expires (a stale date)."""
    if not isinstance(data, dict):
        raise TypeError("apiRestrictions answer is not an object")
    # "In the past" by Binance's clock: ours corrected by the measured skew.
    now = now or datetime.now(UTC) + timedelta(milliseconds=skew_ms)
    expires_ms = data.get("tradingAuthorityExpirationTime")
    expires_at = datetime.fromtimestamp(int(expires_ms) / 1000, UTC) if expires_ms else None
    trading_on = data.get("enableSpotAndMarginTrading") is True
    restricted = data.get("ipRestrict") is True
    trading_expired = expires_at is not None and expires_at <= now and not (trading_on and restricted)
    flags = tuple(
        Flag(label, data.get(field) is True, danger, required=field in _REQUIRED)
        for field, label, danger in PERMISSION_FLAGS
    )
    return KeyFacts(
        can_read=data.get("enableReading") is True,
        can_trade=trading_on and not trading_expired,
        can_withdraw=data.get("enableWithdrawals") is True,
        permissions=tuple(k for k, v in data.items() if v is True and k.startswith(("enable", "permits"))),
        flags=flags,
        ip_restricted=bool(data.get("ipRestrict")) if "ipRestrict" in data else None,
        trading_expires_at=expires_at,
        trading_expired=trading_expired,
        skew_ms=skew_ms,
        summary=_summary(data, expires_at),
    )


def _summary(data: dict[str, Any], expires_at: datetime | None) -> str:
    parts = [f"{k}={'true' if v else 'false'}" for k, v in data.items() if isinstance(v, bool)]
    if expires_at is not None:
        parts.append(f"tradingAuthorityExpirationTime={expires_at:%Y-%m-%dT%H:%M:%SZ}")
    return ", ".join(parts)


def _is_error(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    if data.get("success") is False:
        return True
    code = data.get("code")
    return isinstance(code, int) and code < 0 and "msg" in data


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


def _wallet_key(name: str) -> str:
    """E7 wallet names compared loosely: case and the circled Ⓢ of "USDⓈ-M Futures"."""
    return name.casefold().replace("ⓢ", "s").strip()


_READ_WALLETS = frozenset({"spot", "funding", "earn", "cross margin", "usds-m futures"})


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _wallet_key(name)).strip("-") or "wallet"


def unlisted_wallets(overview: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Wallets E7 shows with money that this client has no detail endpoint for (Trading Bots,
    Copy Trading, Options, Isolated Margin, COIN-M Futures, any new one), as ``unread``."""
    unread = []
    for key, row in (overview or {}).get("_rows", {}).items():
        if key in _READ_WALLETS or row["balance"] == 0:
            continue
        unread.append(
            {
                "type": _slug(row["name"]),
                "id": row["name"],
                "reason": f"Binance shows {row['shown']} USDT here; this dashboard does not read "
                "this wallet's assets yet",
            }
        )
    return unread


def overview_of(data: Any) -> dict[str, Any]:
    """E7 as {wallet key: balance in USDT}, plus the rows (``_rows``) for what we do not read."""
    with _parsing(OVERVIEW):
        result: dict[str, Any] = {}
        rows: dict[str, dict[str, Any]] = {}
        for row in data:
            name = str(row["walletName"])
            balance = _dec(row.get("balance"))
            key = _wallet_key(name)
            result[key] = result.get(key, ZERO) + balance
            rows[key] = {"name": name, "balance": balance, "shown": str(row.get("balance"))}
        result["_rows"] = rows
        return result


class _Book:
    """Wallet lines in the order read, one per (wallet, asset)."""

    def __init__(self) -> None:
        self.amounts: dict[tuple[str, str], list[Decimal]] = {}
        self.wallets: list[str] = []
        self.other: list[OtherLine] = []

    def wallet(self, wallet: str) -> None:
        if wallet not in self.wallets:
            self.wallets.append(wallet)

    def add(self, wallet: str, asset: str, available=ZERO, in_orders=ZERO, debt=ZERO) -> None:
        self.wallet(wallet)
        if not (available or in_orders or debt):
            return
        slot = self.amounts.setdefault((wallet, asset), [ZERO, ZERO, ZERO])
        slot[0] += available
        slot[1] += in_orders
        slot[2] += debt

    def spot(self, account: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
        """E5 balances; returns the ``LD<asset>`` mirrors of flexible Earn instead of adding them
        (rotki's rule: ``LD`` prefix and at least 5 characters, so Lido's LDO stays)."""
        mirrors = []
        with _parsing(ACCOUNT):
            self.wallet("spot")
            for row in account.get("balances") or ():
                asset = str(row["asset"])
                free, locked = _dec(row.get("free")), _dec(row.get("locked"))
                if asset.startswith("LD") and len(asset) >= 5:
                    mirrors.append((asset[2:], free, locked))
                else:
                    self.add("spot", asset, free, locked)
        return mirrors

    def mirrors(self, mirrors: list[tuple[str, Decimal, Decimal]]) -> None:
        for asset, free, locked in mirrors:
            self.add("earn-flexible", asset, free + locked)

    def funding(self, data: Any) -> None:
        with _parsing(FUNDING):
            self.wallet("funding")
            for row in data:
                held = _dec(row.get("locked")) + _dec(row.get("freeze")) + _dec(row.get("withdrawing"))
                self.add("funding", str(row["asset"]), _dec(row.get("free")), held)

    def earn(self, wallet: str, rows: list[dict[str, Any]], amount_field: str) -> None:
        path = EARN_FLEXIBLE if wallet == "earn-flexible" else EARN_LOCKED
        with _parsing(path):
            self.wallet(wallet)
            for row in rows:
                self.add(wallet, str(row["asset"]), _dec(row.get(amount_field)))

    def margin(self, data: Any) -> None:
        """E11: net assets; what is borrowed plus interest is debt (negative)."""
        with _parsing(CROSS_MARGIN):
            self.wallet("margin")
            for row in data.get("userAssets") or ():
                owed = _dec(row.get("borrowed")) + _dec(row.get("interest"))
                self.add("margin", str(row["asset"]), _dec(row.get("free")), _dec(row.get("locked")), -owed)

    def futures(self, data: Any) -> None:
        """E13: the wallet balance per asset; unrealised PnL is shown aside, never valued."""
        with _parsing(FUTURES):
            self.wallet("futures")
            for row in data:
                asset = str(row["asset"])
                self.add("futures", asset, _dec(row.get("balance")))
                pnl = _dec(row.get("crossUnPnl"))
                if pnl:
                    self.other.append(OtherLine("futures", asset, "unrealized-pnl", pnl))

    def result(self, unread: list[dict[str, Any]]) -> BalanceRead:
        lines = tuple(
            WalletLine(wallet=wallet, asset=asset, available=a, in_orders=o, debt=d)
            for (wallet, asset), (a, o, d) in self.amounts.items()
        )
        return BalanceRead(
            lines=lines, wallets=tuple(self.wallets), unread=tuple(unread), other=tuple(self.other)
        )


def _unread_collector(unread: list[dict[str, Any]]):
    @contextmanager
    def wallet(kind: str, name: str, quiet_codes: tuple[str, ...] = ()) -> Iterator[None]:
        try:
            yield
        except BinanceError as error:
            if error.code not in _WALLET_REFUSALS and error.kind not in (
                ErrorKind.KEY_IP_OR_PERMISSION,
                ErrorKind.NO_PERMISSION,
            ):
                raise  # transient or unexpected: the whole read is retried
            if error.code in quiet_codes:
                return
            unread.append(
                {"type": kind, "id": name, "reason": f"Binance refused this key: {error.detail}"[:300]}
            )

    return wallet


@contextmanager
def _parsing(path: str) -> Iterator[None]:
    """An answer not in the expected shape is a BinanceError (retried), not a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation):
        raise BinanceError(ErrorKind.UNKNOWN, message="unexpected Binance answer", path=path) from None


def _base(url: str) -> str:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Binance base URL must look like https://api.binance.com")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
