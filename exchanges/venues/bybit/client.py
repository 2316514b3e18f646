"""Bybit V5 REST client implementing the kit's ``VenueClient`` protocol.

One client per key and job. Signed calls carry the key, the timestamp (Bybit's clock, measured
by ``sync_clock``), the receive window and the hex HMAC in ``X-BAPI-*`` headers, signed over
exactly the query sent (``signing``). Requests go out over the kit's shared keep-alive pool,
each admitted by the gate when there is one. Secrets stay inside this object: no URL, query,
key or signature ever reaches an exception text, and ``redact`` cleans log lines.

Sites (bybit-api.md §1): a key works only on the host of the Bybit site where it was created.
With the default base URL the client talks to the chosen site's own host; with another one (a
proxy, the sandbox) it talks to that URL and names the site's host in the ``Host`` header. A
key Bybit does not know on the chosen site is looked for on the others once, on its first check
(``KeyFacts.site`` then says where it answered).

Wallets read (§7): the Unified Trading Account (E4) and the Funding Account (E5); a wallet the
key may not read (10005 on funding without a Wallet permission) is reported in ``unread``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

from exchanges.venues.kit.errors import GateBusy
from exchanges.venues.kit.together import send_together
from exchanges.venues.kit.transport import HttpPool, Request, Response, TransportError, shared_pool
from exchanges.venues.kit.types import BalanceRead, Credentials, KeyFacts, Prior

from . import endpoints, signing
from .endpoints import API_KEY, FUNDING, SITES, SYSTEM_STATUS, TICKERS, TIME, WALLET
from .errors import BybitError, ErrorKind, decode, parsing
from .facts import facts_from_api_key
from .wallets import FUNDING_WALLET, UNIFIED, Book, unread_collector

DEFAULT_BASE_URL = "https://api.bybit.com"
# (connect, read) seconds, like pybit's 10 s.
DEFAULT_TIMEOUT = (3.05, 10.0)
PUBLIC_SCOPE = "ip"

_SIGN_HEADER = re.compile(r"(X-BAPI-(?:SIGN|API-KEY)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,;&}\\]+", re.IGNORECASE)
# Bybit API keys are 18 letters and digits, Secret Keys 36; an HMAC signature is 64 hex digits.
_KEY_LIKE = re.compile(
    r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*[0-9])"
    r"(?:[A-Za-z0-9]{18}|[A-Za-z0-9]{36}|[0-9a-f]{64})(?![A-Za-z0-9])"
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL)


def redact_headers(text: str) -> str:
    """``X-BAPI-SIGN`` / ``X-BAPI-API-KEY`` values and PEM keys out of any log line: what the
    dashboard's log filter applies to every record (key-shaped text in general is not blanked
    there: it would also blank task ids and timings)."""
    return _SIGN_HEADER.sub(r"\1[redacted]", _PEM.sub("[redacted private key]", text))


def redact(text: str, api_key: str = "") -> str:
    """Strip ``X-BAPI-SIGN`` and ``X-BAPI-API-KEY`` values, the API key (and anything shaped
    like a Bybit key, secret or signature) and PEM private keys from a log line."""
    if api_key:
        text = text.replace(api_key, "[redacted]")
    text = _PEM.sub("[redacted private key]", text)
    text = _SIGN_HEADER.sub(r"\1[redacted]", text)
    return _KEY_LIKE.sub("[redacted]", text)


class Gate(Protocol):
    """Admission to Bybit before each request (``exchanges.venues.kit.gate.Gate``); a gate may
    also have ``block(seconds)`` for Bybit's per-IP "stop for 10 minutes"."""

    def slot(self, path: str, scope: str) -> AbstractContextManager[object]: ...

    def slots(self, paths: Sequence[str], scope: str) -> AbstractContextManager[int]: ...


def resolve(base_url: str, site: str) -> tuple[str, str | None]:
    """(URL to connect to, Host header to send or None) for ``site``."""
    base = _base(base_url)
    host = (urlsplit(base).hostname or "").lower()
    if base == _base(DEFAULT_BASE_URL):
        return f"https://{endpoints.host_of(site)}", None
    if endpoints.is_bybit_host(host):
        return base, None  # testnet, demo trading, bytick.com: the operator's choice, as it is
    return base, endpoints.host_of(site)


class BybitClient:
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
        site: str | None = None,
    ):
        self.configured_url = _base(base_url)
        chosen = site or (credentials.extra.get("site") if credentials else "") or endpoints.DEFAULT_SITE
        self.chosen_site = chosen if chosen in SITES else endpoints.DEFAULT_SITE
        self._set_site(self.chosen_site)
        self._api_key = credentials.api_key if credentials else ""
        self._secret = credentials.secret if credentials else ""
        self.timeout = timeout
        self.pool = pool or shared_pool()
        self.gate = gate
        self.scope = scope or f"key:{hashlib.sha256(self._api_key.encode()).hexdigest()[:16]}"
        self.recv_window = recv_window
        self.clock_offset_ms = 0  # Bybit's clock minus ours, measured by sync_clock()
        self.calls = 0  # HTTP requests sent by this client
        # Bybit's own count of requests left in the current window, by path (X-Bapi-Limit-Status).
        self.limit_status: dict[str, int] = {}
        self._key_expires_at: datetime | None = None

    def _set_site(self, site: str) -> None:
        self.site = site
        self.base_url, self.host_header = resolve(self.configured_url, site)

    def __repr__(self) -> str:
        return f"<BybitClient {self.site} {self.base_url}>"

    def close(self) -> None:
        """Nothing to release: connections go back to the shared pool after each call."""

    def __enter__(self) -> BybitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        return redact(text, self._api_key)

    # The VenueClient protocol -------------------------------------------------------------

    def sync_clock(self) -> int:
        """E1: Bybit's clock minus the midpoint of our clock around the call."""
        before = time.time() * 1000
        data, envelope = self._call("GET", TIME, signed=False, envelope=True)
        after = time.time() * 1000
        with parsing(TIME):
            nano = data.get("timeNano") if isinstance(data, dict) else None
            server = int(nano) / 1_000_000 if nano else float(envelope["time"])
        self.clock_offset_ms = round(server - (before + after) / 2)
        return self.clock_offset_ms

    def inspect_key(self, prior: Prior) -> KeyFacts:
        """E2: permissions, IP binding, expiry and uid in one call without side effects. A key
        unknown on the chosen site is looked for on the other sites on its first check."""
        self._key_expires_at = prior.key_expires_at
        try:
            data = self._call("GET", API_KEY)
        except BybitError as error:
            if error.kind != ErrorKind.INVALID_ACCESS_KEY or prior.described or not self._can_probe():
                raise
            data = self._find_site(error)
        with parsing(API_KEY):
            facts = facts_from_api_key(
                data,
                skew_ms=self.clock_offset_ms,
                site=self.site if self.site != self.chosen_site else None,
            )
        self._key_expires_at = facts.key_expires_at
        return replace(facts, account_uid=facts.account_uid or prior.account_uid)

    def read_balances(self, facts: KeyFacts) -> BalanceRead:
        if facts.site and facts.site in SITES and facts.site != self.site:
            self._set_site(facts.site)
        if facts.key_expires_at is not None:
            self._key_expires_at = facts.key_expires_at
        book = Book()
        unread: list[dict[str, Any]] = []
        unread_wallet = unread_collector(unread)
        context = facts.context if isinstance(facts.context, dict) else {}
        classic = str(context.get("uta", "1")) == "0"  # Bybit answers 404 for UNIFIED there
        # The two wallets do not depend on each other: sent together, one wait for both.
        unified, funding = self._call_all(
            [(WALLET, {"accountType": "UNIFIED"}), (FUNDING, {"accountType": "FUND"})]
        )
        with unread_wallet(UNIFIED, "Unified Trading Account", statuses=(404,) if classic else ()):
            book.unified(unified())
        with unread_wallet(FUNDING_WALLET, "Funding Account"):
            book.funding(funding())
        return book.result(unread)

    def prices(self) -> dict[str, Decimal]:
        """E7, every spot pair of this site: ``{"BTCUSDT": Decimal(...)}``."""
        data = self._call("GET", TICKERS, {"category": "spot"}, signed=False)
        prices: dict[str, Decimal] = {}
        with parsing(TICKERS):
            rows = data.get("list") or ()
        for row in rows:
            try:
                price = Decimal(str(row["lastPrice"]))
            except (KeyError, TypeError, InvalidOperation):
                continue
            if price.is_finite() and price > 0:
                prices[str(row["symbol"]).upper()] = price
        return prices

    # Single endpoints ---------------------------------------------------------------------

    def maintenance_ongoing(self) -> bool:
        """E9: an ongoing announced maintenance of production."""
        data = self._call("GET", SYSTEM_STATUS, {"state": "ongoing"}, signed=False, check_maintenance=False)
        with parsing(SYSTEM_STATUS):
            return any(str(row.get("env", "1")) == "1" for row in data.get("list") or ())

    # Sites --------------------------------------------------------------------------------

    def _can_probe(self) -> bool:
        """Other sites are reachable: Bybit's own hosts (default URL) or a proxy that takes the
        site from the Host header; not a single environment the operator chose (testnet)."""
        return self.configured_url == _base(DEFAULT_BASE_URL) or self.host_header is not None

    def _find_site(self, unknown: BybitError) -> Any:
        """E2 on every other site. The first that knows the key wins (its answer is returned and
        the client stays there); one that knows it but refuses it (secret, IP) says so."""
        for site in SITES:
            if site == self.chosen_site:
                continue
            self._set_site(site)
            try:
                return self._call("GET", API_KEY)
            except BybitError as error:
                if error.kind == ErrorKind.INVALID_ACCESS_KEY:
                    continue
                if error.permanent:
                    raise BybitError(
                        error.kind,
                        status=error.status,
                        code=error.code,
                        message=f"{error.message} (on Bybit {endpoints.label_of(site)}: the key is "
                        f"of that site, not {endpoints.label_of(self.chosen_site)})",
                        path=error.path,
                    ) from None
                self._set_site(self.chosen_site)
                raise  # transient: nothing known, the check is tried again later
        self._set_site(self.chosen_site)
        raise unknown

    # Transport ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        envelope: bool = False,
        check_maintenance: bool = True,
    ) -> Any:
        def send() -> Any:
            return self._send(method, path, params, signed=signed, envelope=envelope)

        return self._handled(send, send, signed=signed, check_maintenance=check_maintenance)

    def _handled(
        self, first: Callable[[], Any], again: Callable[[], Any], *, signed: bool, check_maintenance: bool
    ) -> Any:
        try:
            return first()
        except BybitError as error:
            if error.kind == ErrorKind.INVALID_TIMESTAMP and signed:
                # Our clock drifted from Bybit's: measure again and retry once. If it still
                # fails, the (transient) error goes up.
                self.sync_clock()
                return again()
            if check_maintenance and error.kind == ErrorKind.UNAVAILABLE and (error.status or 0) >= 500:
                self._raise_if_maintenance(error)
            raise

    def _raise_if_maintenance(self, error: BybitError) -> None:
        """A 5xx during Bybit's announced maintenance: E9 says so (its error pages do not)."""
        try:
            ongoing = self.maintenance_ongoing()
        except BybitError:
            return
        if ongoing:
            raise BybitError(
                ErrorKind.MAINTENANCE,
                status=error.status,
                code=error.code,
                message="Bybit system maintenance (system status: ongoing)",
                path=error.path,
            ) from None

    def _request(self, method: str, path: str, params: dict[str, Any] | None, *, signed: bool) -> Request:
        """The request for a call, signed now when ``signed``."""
        headers: dict[str, str] = {}
        if self.host_header:
            headers["Host"] = self.host_header
        body: bytes | None = None
        if signed:
            query, text, auth = signing.signed_request(
                *self._credentials(path),
                method,
                params,
                timestamp=self._now_ms(),
                recv_window=self.recv_window,
            )
            headers.update(auth)
            body = text.encode() if text is not None else None
        else:
            query = signing.encode_params(params)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        self.calls += 1
        # Every call here reads; a read-only POST may be sent again on a fresh connection.
        return Request(method, url, headers, body, idempotent=True)

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, *, signed: bool, envelope: bool
    ) -> Any:
        slot = self.gate.slot(path, self.scope if signed else PUBLIC_SCOPE) if self.gate else nullcontext()
        with slot:
            # Signed once admitted, so time spent waiting for a slot does not age the timestamp.
            request = self._request(method, path, params, signed=signed)
            try:
                response = self.pool.send(request, timeout=self.timeout)
            except TransportError as exc:
                response = exc
        return self._answered(response, path, envelope=envelope)

    def _call_all(self, calls: list[tuple[str, dict[str, Any] | None]]) -> list[Callable[[], Any]]:
        """Signed GETs sent together (``kit.together.send_together``). Each comes back as a
        function that returns its data or raises what ``_call`` would have (a clock drift is
        measured again and that call retried alone), so the caller handles them in its order."""
        built = [
            (path, functools.partial(self._request, "GET", path, params, signed=True))
            for path, params in calls
        ]
        answers = send_together(self.gate, self.pool, self.scope, built, self.timeout)

        def outcome(path: str, params: dict[str, Any] | None, answer: Any) -> Callable[[], Any]:
            def first() -> Any:
                return self._answered(answer, path, envelope=False)

            def again() -> Any:
                return self._send("GET", path, params, signed=True, envelope=False)

            return lambda: self._handled(first, again, signed=True, check_maintenance=True)

        return [outcome(path, params, answer) for (path, params), answer in zip(calls, answers, strict=True)]

    def _answered(self, answer: Response | TransportError | GateBusy, path: str, *, envelope: bool) -> Any:
        if isinstance(answer, GateBusy):
            raise answer
        if isinstance(answer, TransportError):
            # Never the URL in the message: it may hold parameters; the headers the key.
            message = (
                "Bybit did not answer in time" if answer.timeout else f"could not reach Bybit ({answer})"
            )
            raise BybitError(ErrorKind.UNAVAILABLE, message=message, path=path) from None
        self._note_limit(path, answer)
        return self._unwrap(answer, path, envelope=envelope)

    def _unwrap(self, response: Response, path: str, *, envelope: bool = False) -> Any:
        if 200 <= response.status < 300:
            try:
                data = json.loads(response.body)
            except ValueError:
                data = None
            if isinstance(data, dict) and _ret_code(data) == 0:
                result = data.get("result")
                return (result, data) if envelope else result
        error = decode(
            response.status,
            response.body,
            response.headers,
            path=path,
            key_expires_at=self._key_expires_at,
            clock_offset_ms=self.clock_offset_ms,
        )
        if self._api_key and self._api_key in error.message:
            error = BybitError(
                error.kind,
                status=error.status,
                code=error.code,
                message=self.redact(error.message),
                path=path,
                retry_after=error.retry_after,
            )
        if error.kind == ErrorKind.RATE_LIMITED and response.status in (403, 429) and self.gate is not None:
            # Per-IP limits (every user of this server): every worker stops until then. A
            # 10006 is one account's per-endpoint limit and stops only this check.
            block: Callable[[float], None] | None = getattr(self.gate, "block", None)
            if block is not None and error.retry_after:
                block(error.retry_after)
        raise error

    def _credentials(self, path: str) -> tuple[str, str]:
        if not self._api_key or not self._secret:
            raise ValueError("signed Bybit call without credentials")
        if signing.key_type(self._secret) == signing.RSA:
            raise BybitError(
                ErrorKind.INVALID_SIGNATURE,
                message="RSA (self-generated) Bybit API keys are not supported; use an HMAC key",
                path=path,
            )
        return self._api_key, self._secret

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def _note_limit(self, path: str, response: Response) -> None:
        value = response.headers.get("X-Bapi-Limit-Status")
        if value is not None and value.strip().isdigit():
            self.limit_status[path] = int(value)


def _ret_code(data: dict[str, Any]) -> int | None:
    try:
        return int(data.get("retCode"))
    except (TypeError, ValueError):
        return None


def _base(url: str) -> str:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Bybit base URL must look like https://api.bybit.com")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
