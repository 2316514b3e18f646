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
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

from exchanges.venues.kit.transport import HttpPool, Response, TransportError, shared_pool
from exchanges.venues.kit.types import BalanceRead, Credentials, KeyFacts, Prior

from . import signing
from .endpoints import (
    ACCOUNT,
    CROSS_MARGIN,
    EARN_FLEXIBLE,
    EARN_LOCKED,
    FUNDING,
    FUTURES,
    KEY_PERMISSIONS,
    OVERVIEW,
    PRICES,
    SYSTEM_STATUS,
    TIME,
)
from .errors import BinanceError, ErrorKind, decode, parsing
from .facts import facts_from_restrictions
from .wallets import Book, overview_of, unlisted_wallets, unread_collector

DEFAULT_BASE_URL = "https://api.binance.com"
FUTURES_BASE_URL = "https://fapi.binance.com"
# (connect, read) seconds. Binance's own API timeout is 10 s (-1007 after that).
DEFAULT_TIMEOUT = (3.05, 10.0)
PUBLIC_SCOPE = "ip"
ZERO = Decimal(0)

# Simple Earn pages: 100 positions each, 150 weight each; a cap keeps a huge account bounded.
EARN_PAGE_SIZE = 100
EARN_MAX_PAGES = 5

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

    def slot(self, path: str, scope: str) -> AbstractContextManager[object]: ...


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
        with parsing(TIME):
            server = int(data["serverTime"])
        self.clock_offset_ms = round(server - (before + after) / 2)
        return self.clock_offset_ms

    def inspect_key(self, prior: Prior) -> KeyFacts:
        """E4 (permissions, IP restriction, trading expiry), then E5 for the account uid. E5 is
        the spot wallet too, so its answer rides along in ``context`` for ``read_balances``.
        E5 is skipped for a key that cannot read or that can withdraw (refused anyway)."""
        restrictions = self._call("GET", KEY_PERMISSIONS)
        with parsing(KEY_PERMISSIONS):
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
        book = Book()
        unread: list[dict[str, Any]] = []

        mirrors = book.spot(account)  # LD<asset> lines: flexible Earn seen from spot
        unread_wallet = unread_collector(unread)

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
        with parsing(SYSTEM_STATUS):
            return int(data["status"])

    def _earn(self, path: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(1, EARN_MAX_PAGES + 1):
            data = self._call("GET", path, {"current": page, "size": EARN_PAGE_SIZE})
            with parsing(path):
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


def _is_error(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    if data.get("success") is False:
        return True
    code = data.get("code")
    return isinstance(code, int) and code < 0 and "msg" in data


def _base(url: str) -> str:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Binance base URL must look like https://api.binance.com")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
