"""OKX API v5 REST client implementing the kit's ``VenueClient`` protocol.

One client per key and job. Signed calls carry the key, the signature, the timestamp and the
passphrase in four ``OK-ACCESS-*`` headers, signed over exactly the path, query and body sent
(``signing``). Requests go out over the kit's shared keep-alive pool, each admitted by the gate
when there is one. Secrets stay inside this object: no key, secret, passphrase or signature
ever reaches an exception text, and ``redact`` cleans log lines.

Sites (okx-api.md §1): a key works only on the host of the site its account was registered on
(www.okx.com, eea.okx.com, us.okx.com). With OKX's default base URL the client connects to the
chosen site's host; with any other base URL (a proxy, the sandbox) it connects there and names
the site's real host in the ``Host`` header. OKX answers 50119 "API key doesn't exist" for a key
of another site as for an unknown one, so ``inspect_key`` then asks the other two sites once.

Wallets read (§11.6): trading (E3), funding (E4), Simple Earn flexible (E5); OKX's own valuation
(E6) as a cross-check. A wallet the key may not read is reported in ``unread``, never failing
the read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

from exchanges.venues.kit.errors import GateBusy
from exchanges.venues.kit.together import send_together
from exchanges.venues.kit.transport import HttpPool, Request, Response, TransportError, shared_pool
from exchanges.venues.kit.types import BalanceRead, Credentials, KeyFacts, Prior

from . import signing
from .endpoints import (
    ACCOUNT_CONFIG,
    ASSET_VALUATION,
    DEFAULT_BASE_URL,
    DEFAULT_SITE,
    FUNDING_BALANCE,
    SAVINGS_BALANCE,
    SITE_LABELS,
    SITES,
    SYSTEM_STATUS,
    TICKERS,
    TIME,
    TRADING_BALANCE,
)
from .errors import ErrorKind, OkxError, decode, parsing
from .facts import facts_from_config
from .wallets import FUNDING, SAVINGS, TRADING, Book, unread_collector, usdt_price

# (connect, read) seconds.
DEFAULT_TIMEOUT = (3.05, 10.0)
PUBLIC_SCOPE = "ip"
STAND_IN_QUOTE = "USDC"
PRICES_MAX_AGE = 30.0  # seconds

# A value ends at a quote, space, separator or backslash (a raw request's escaped "\r\n").
_HEADER = re.compile(
    r"(OK-ACCESS-(?:SIGN|KEY|PASSPHRASE)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,;&}\\]+", re.IGNORECASE
)
# OKX API keys are UUIDs and Secret Keys 32 hex characters.
_UUID_LIKE = re.compile(
    r"(?<![0-9A-Za-z-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Za-z-])"
)
_HEX32_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{32}(?![0-9A-Za-z])")


MAINTENANCE_MEMO_SECONDS = 10.0
# (base URL, site) -> (valid until, maintenance ongoing)
_maintenance_memo: dict[tuple[str, str], tuple[float, bool]] = {}


def redact_headers(text: str) -> str:
    """Strip ``OK-ACCESS-SIGN``/``-KEY``/``-PASSPHRASE`` header values from any log line. This is
    what the dashboard's log filter applies to every record: key-shaped text in general is not
    blanked there, since Celery's task ids are UUIDs too."""
    return _HEADER.sub(r"\1[redacted]", text)


def redact(text: str, *secrets: str) -> str:
    """Strip the given secrets (key, secret, passphrase), ``OK-ACCESS-SIGN``/``-KEY``/
    ``-PASSPHRASE`` header values and anything shaped like an OKX key or secret from a log line."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _HEADER.sub(r"\1[redacted]", text)
    text = _UUID_LIKE.sub("[redacted]", text)
    return _HEX32_LIKE.sub("[redacted]", text)


class Gate(Protocol):
    """Admission to OKX before each request (``exchanges.venues.kit.gate.Gate``); a gate may
    also have ``block(seconds)`` for OKX's 429 answers."""

    def slot(self, path: str, scope: str) -> AbstractContextManager[object]: ...

    def slots(self, paths: Sequence[str], scope: str) -> AbstractContextManager[int]: ...


class OkxClient:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        credentials: Credentials | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        pool: HttpPool | None = None,
        gate: Gate | None = None,
        scope: str = "",
    ):
        self.base_url = _base(base_url)
        extra = credentials.extra if credentials else {}
        site = extra.get("site") or DEFAULT_SITE
        if site not in SITES:
            raise ValueError(f"unknown OKX site {site!r}; one of {', '.join(SITES)}")
        self.site = site  # where the key is used; inspect_key may find it on another
        self._api_key = credentials.api_key if credentials else ""
        self._secret = credentials.secret if credentials else ""
        self._passphrase = extra.get("passphrase", "")
        self._signer = signing.Signer(self._api_key, self._secret, self._passphrase) if credentials else None
        self.timeout = timeout
        self.pool = pool or shared_pool()
        self.gate = gate
        self.scope = scope or f"key:{hashlib.sha256(self._api_key.encode()).hexdigest()[:16]}"
        self.clock_offset_ms = 0  # OKX's clock minus ours, measured by sync_clock()
        self.calls = 0  # HTTP requests sent by this client
        # Set by prices() when the site lists no USDT pairs and USDC stood in for USDT.
        self.quote_stand_in: str | None = None
        # The last prices() of this client and when (monotonic): a refresh that read them for
        # the Earn cross-check does not ask OKX again moments later.
        self._prices: tuple[float, str, dict[str, Decimal]] | None = None

    def __repr__(self) -> str:
        return f"<OkxClient {self.base_url} site={self.site}>"

    def close(self) -> None:
        """Nothing to release: connections go back to the shared pool after each call."""

    def __enter__(self) -> OkxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        return redact(text, self._api_key, self._secret, self._passphrase)

    # The VenueClient protocol -------------------------------------------------------------

    def sync_clock(self) -> int:
        """E1: OKX's clock minus the midpoint of our clock around the call."""
        before = time.time() * 1000
        data = self._call("GET", TIME, signed=False)
        after = time.time() * 1000
        with parsing(TIME):
            server = int(data[0]["ts"])
        self.clock_offset_ms = round(server - (before + after) / 2)
        return self.clock_offset_ms

    def inspect_key(self, prior: Prior) -> KeyFacts:
        """E2 on the chosen site; on 50119 the same request on the other two sites, once each.
        A key found elsewhere comes back with ``site`` set (and this client moves there)."""
        found: str | None = None
        try:
            data = self._call("GET", ACCOUNT_CONFIG)
        except OkxError as error:
            if error.code != "50119":
                raise
            found, data = self._find_site(error, prior)
        with parsing(ACCOUNT_CONFIG):
            return facts_from_config(data, skew_ms=self.clock_offset_ms, site=found)

    def read_balances(self, facts: KeyFacts) -> BalanceRead:
        if facts.site in SITES:
            self.site = facts.site
        book = Book()
        unread: list[dict[str, Any]] = []
        wallet = unread_collector(unread)
        # The four reads do not depend on each other: sent together, one wait for all four.
        trading, funding, savings, valuation = self._call_all(
            [
                (TRADING_BALANCE, None),
                (FUNDING_BALANCE, None),
                (SAVINGS_BALANCE, None),
                (ASSET_VALUATION, {"ccy": "USDT"}),
            ]
        )
        with wallet(TRADING, "Trading account"):
            book.trading(trading())
        with wallet(FUNDING, "Funding account"):
            book.funding(funding())
        with wallet(SAVINGS, "Simple Earn (savings)"):
            book.savings(savings())
        with contextlib.suppress(OkxError, GateBusy):  # a cross-check only: never fails the read
            book.valuation(valuation(), unread, lambda asset: usdt_price(asset, self.prices()))
        return book.result(unread)

    def prices(self) -> dict[str, Decimal]:
        """E7 spot tickers of this client's site: ``{"BTCUSDT": Decimal(...)}`` from
        ``instId`` "BTC-USDT" and ``last``. A site that lists no USDT pair (reported for the
        EEA) gets its USDC pairs as stand-ins, and ``quote_stand_in`` says so. Prices this
        client read less than ``PRICES_MAX_AGE`` seconds ago (on the same site) are reused."""
        if self._prices is not None:
            read_at, site, cached = self._prices
            if site == self.site and time.monotonic() - read_at < PRICES_MAX_AGE:
                return dict(cached)
        data = self._call("GET", TICKERS, {"instType": "SPOT"}, signed=False)
        if not isinstance(data, list):
            raise OkxError(ErrorKind.UNKNOWN, message="unexpected OKX answer", path=TICKERS)
        pairs: dict[tuple[str, str], Decimal] = {}
        for row in data:
            try:
                base, quote = str(row["instId"]).upper().split("-")
                last = Decimal(str(row["last"]))
            except (KeyError, TypeError, ValueError, InvalidOperation):
                continue
            if last > 0:
                pairs[base, quote] = last
        prices = {base + quote: last for (base, quote), last in pairs.items()}
        self.quote_stand_in = None
        if pairs and not any(quote == "USDT" for _, quote in pairs):
            stand_ins = {f"{b}USDT": p for (b, q), p in pairs.items() if q == STAND_IN_QUOTE}
            if stand_ins:
                self.quote_stand_in = STAND_IN_QUOTE
                prices.update({k: v for k, v in stand_ins.items() if k not in prices})
                prices.setdefault(f"{STAND_IN_QUOTE}USDT", Decimal(1))
        self._prices = (time.monotonic(), self.site, prices)
        return dict(prices)

    # Single endpoints ---------------------------------------------------------------------

    def system_maintenance(self) -> bool:
        """E9: whether OKX lists a maintenance going on now."""
        data = self._call("GET", SYSTEM_STATUS, {"state": "ongoing"}, signed=False, check_maintenance=False)
        with parsing(SYSTEM_STATUS):
            return any(str(row.get("state", "ongoing")) == "ongoing" for row in data or ())

    def _find_site(self, first: OkxError, prior: Prior) -> tuple[str, Any]:
        """The other sites, once each. One that knows the key but refuses it for another reason
        (passphrase, IP, ...) gives that refusal; a transient failure leaves it open."""
        transient: OkxError | None = None
        for site in SITES:
            if site == self.site:
                continue
            try:
                data = self._call("GET", ACCOUNT_CONFIG, site=site)
            except OkxError as error:
                if error.code == "50119":
                    continue
                if not error.permanent:
                    transient = transient or error
                    continue
                raise OkxError(
                    error.kind,
                    status=error.status,
                    code=error.code,
                    message=f"On OKX's {SITE_LABELS[site]} site, where this key belongs: {error.message}",
                    path=error.path,
                    retry_after=error.retry_after,
                ) from None
            self.site = site
            return site, data
        if transient is not None:
            raise transient
        if prior.described or prior.account_uid:
            # It worked before: OKX deleted it (14 days unused) or its owner did.
            raise OkxError(
                ErrorKind.KEY_EXPIRED,
                status=first.status,
                code=first.code,
                message="API key doesn't exist on any OKX site any more, though it worked before: it "
                "was deleted on OKX, or OKX deleted it after 14 days without use",
                path=first.path,
            )
        raise OkxError(
            ErrorKind.INVALID_ACCESS_KEY,
            status=first.status,
            code=first.code,
            message="API key doesn't exist on any OKX site (Global, EEA, US): it is mistyped or cut "
            "short, was deleted on OKX, or OKX deleted it after 14 days without use",
            path=first.path,
        )

    # Transport ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        site: str | None = None,
        check_maintenance: bool = True,
    ) -> Any:
        def send() -> Any:
            return self._send(method, path, params, signed=signed, site=site)

        return self._handled(send, send, signed=signed, check_maintenance=check_maintenance)

    def _call_all(self, calls: list[tuple[str, dict[str, Any] | None]]) -> list[Callable[[], Any]]:
        """Signed GETs sent together (``kit.together.send_together``). Each comes back as a function
        that returns its data or raises what ``_call`` would have (a clock drift is measured
        again and that call retried alone), so the caller handles them in its own order."""

        def build(path: str, params: dict[str, Any] | None) -> Callable[[], Request]:
            prepared = self._prepare("GET", path, params, signed=True, site=None)

            def signed() -> Request:
                self.calls += 1
                return self._signed(prepared, self._now_ms())

            return signed

        built = [(path, build(path, params)) for path, params in calls]
        answers = send_together(self.gate, self.pool, self.scope, built, self.timeout)

        def outcome(path: str, params: dict[str, Any] | None, answer: Any) -> Callable[[], Any]:
            def first() -> Any:
                return self._unwrap(self._answered(answer, path), path)

            def again() -> Any:
                return self._send("GET", path, params, signed=True, site=None)

            return lambda: self._handled(first, again, signed=True, check_maintenance=True)

        return [outcome(path, params, answer) for (path, params), answer in zip(calls, answers, strict=True)]

    def _handled(
        self, first: Callable[[], Any], again: Callable[[], Any], *, signed: bool, check_maintenance: bool
    ) -> Any:
        try:
            return first()
        except OkxError as error:
            if error.kind == ErrorKind.INVALID_TIMESTAMP and error.code == "50102" and signed:
                # Our clock drifted from OKX's: measure again and retry once. If it still
                # fails, the (transient) error goes up.
                self.sync_clock()
                return again()
            if (
                check_maintenance
                and error.kind == ErrorKind.UNAVAILABLE
                and (error.code == "50001" or (error.status or 0) >= 500)
            ):
                self._raise_if_maintenance(error)
            raise

    def _raise_if_maintenance(self, error: OkxError) -> None:
        """A 503 during OKX's maintenance: E9 says so (the error bodies do not). E9 allows one
        call per 5 s per IP, so each process asks at most every MAINTENANCE_MEMO_SECONDS and the
        other failing checks reuse the answer instead of queueing for that slot."""
        where = (self.base_url, self.site)
        memo = _maintenance_memo.get(where)
        if memo is not None and time.monotonic() < memo[0]:
            ongoing = memo[1]
        else:
            _maintenance_memo[where] = (time.monotonic() + MAINTENANCE_MEMO_SECONDS, False)
            try:
                ongoing = self.system_maintenance()
            except (OkxError, GateBusy):
                return
            _maintenance_memo[where] = (time.monotonic() + MAINTENANCE_MEMO_SECONDS, ongoing)
        if ongoing:
            raise OkxError(
                ErrorKind.MAINTENANCE,
                status=error.status,
                code=error.code,
                message="OKX system maintenance",
                path=error.path,
            ) from None

    def route(self, site: str) -> tuple[str, dict[str, str]]:
        """Where to connect for ``site``, and the headers that name the site."""
        host = SITES[site]
        hostname = (urlsplit(self.base_url).hostname or "").lower()
        if self.base_url == DEFAULT_BASE_URL or (_is_okx_host(hostname) and site != DEFAULT_SITE):
            return f"https://{host}", {}
        if _is_okx_host(hostname):
            return self.base_url, {}  # another global host the operator chose (openapi.okx.com)
        return self.base_url, {"Host": host}

    def _prepare(
        self, method: str, path: str, params: dict[str, Any] | None, *, signed: bool, site: str | None
    ) -> tuple[Request, str]:
        """The request for a call, not signed yet, and the path and query to sign ("": none)."""
        if signed and self._signer is None:
            raise ValueError("signed OKX call without credentials")
        base, headers = self.route(site or self.site)
        query = signing.encode_query(params) if method == "GET" else ""
        body = "" if method == "GET" else signing.encode_body(params)
        if body:
            headers["Content-Type"] = "application/json"
        url = f"{base}{path}" + (f"?{query}" if query else "")
        # Every call here reads; a read-only POST may be sent again on a fresh connection.
        request = Request(method, url, headers, body.encode() if body else None, idempotent=True)
        return request, signing.request_path(path, query) if signed else ""

    def _signed(self, prepared: tuple[Request, str], now_ms: int) -> Request:
        request, signed_path = prepared
        if signed_path:
            body = request.body.decode() if request.body else ""
            request.headers.update(self._signer.headers(now_ms, request.method, signed_path, body))
        return request

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, *, signed: bool, site: str | None
    ) -> Any:
        prepared = self._prepare(method, path, params, signed=signed, site=site)
        slot = self.gate.slot(path, self.scope if signed else PUBLIC_SCOPE) if self.gate else nullcontext()
        with slot:
            # Signed once admitted, so time spent waiting for a slot does not age the timestamp.
            request = self._signed(prepared, self._now_ms())
            self.calls += 1
            try:
                response = self.pool.send(request, timeout=self.timeout)
            except TransportError as exc:
                response = exc
        return self._unwrap(self._answered(response, path), path)

    @staticmethod
    def _answered(answer: Response | TransportError | GateBusy, path: str) -> Response:
        if isinstance(answer, GateBusy):
            raise answer
        if isinstance(answer, TransportError):
            message = "OKX did not answer in time" if answer.timeout else f"could not reach OKX ({answer})"
            raise OkxError(ErrorKind.UNAVAILABLE, message=message, path=path) from None
        return answer

    def _unwrap(self, response: Response, path: str) -> Any:
        if 200 <= response.status < 300:
            try:
                data = json.loads(response.body)
            except ValueError:
                data = None
            if isinstance(data, dict) and str(data.get("code")) == "0" and "data" in data:
                return data["data"]
        error = decode(response.status, response.body, response.headers, path=path)
        cleaned = self.redact(error.message)
        if cleaned != error.message:
            error = OkxError(
                error.kind,
                status=error.status,
                code=error.code,
                message=cleaned,
                path=path,
                retry_after=error.retry_after,
            )
        if response.status == 429 and error.retry_after and self.gate is not None:
            block: Callable[[float], None] | None = getattr(self.gate, "block", None)
            if block is not None:
                block(error.retry_after)  # every worker of this server waits that long
        raise error

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms


def _is_okx_host(hostname: str) -> bool:
    return hostname == "okx.com" or hostname.endswith(".okx.com")


def _base(url: str) -> str:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("OKX base URL must look like https://www.okx.com")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
