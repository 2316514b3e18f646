"""HTX sandbox: a local HTTP double of the HTX spot REST endpoints the dashboard uses.

It answers with HTX's envelopes, field names, string decimals, error codes and messages, and it
checks Signature Version 2 the way HTX does: from the parameters it *received*, the Host header
as sent and the caller's socket address. Facts and sources are in shared/htx-api.md (§ numbers
below refer to it). Where no source says what HTX does, the choice is marked ``Choice:``.

Standard library only, plus ``exchanges.venues.htx.signing``; no Django. Usage::

    sb = HtxSandbox(load_accounts(), load_tickers()).start()
    ...  # talk to sb.url over HTTP
    sb.stop()

HTX endpoints served: see ``ENDPOINTS``. Test hooks (never part of HTX's API), usable while it
runs, from Python or over HTTP:

- faults: ``sb.faults`` / ``GET|POST|DELETE /_sandbox/faults`` (see ``Faults``). A client
  *timeout* is ``latency_ms`` set above the client's read timeout; there is no separate knob.
- stats: ``sb.stats`` / ``GET|DELETE /_sandbox/stats`` (see ``LoadStats``), for load tests.
- clock: ``sb.clock_offset_ms`` / ``GET|POST /_sandbox/clock`` ``{"clock_offset_ms": <int>}``.
- keys: mutate ``sb.accounts[<access key>]`` / ``GET|POST /_sandbox/keys/<access key>``, which
  shows the entry without its secret, or merges a JSON object of ``KEY_FIELDS`` into it (a key
  expiring or losing a permission while a client is connected).
"""

from __future__ import annotations

import calendar
import contextlib
import copy
import hmac
import ipaddress
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from exchanges.venues.htx import signing

__all__ = [
    "DEFAULT_ACCOUNTS_PATH",
    "DEFAULT_TICKERS_PATH",
    "ENDPOINTS",
    "FAULT_NAMES",
    "FIAT_PER_USD",
    "KEY_FIELDS",
    "Faults",
    "HtxSandbox",
    "load_accounts",
    "load_tickers",
]

logger = logging.getLogger("htx.sandbox")

DATA_DIR = Path(__file__).resolve().with_name("sandbox_data")
DEFAULT_ACCOUNTS_PATH = DATA_DIR / "accounts.json"
DEFAULT_TICKERS_PATH = DATA_DIR / "tickers.json"

JSON_CONTENT_TYPE = "application/json;charset=utf-8"
HTML_CONTENT_TYPE = "text/html"

TIMESTAMP_WINDOW_MS = 5 * 60 * 1000  # DOCS21: "valid within 5 minutes" (§2 step 2)
RATE_LIMIT = 100  # E4, E5: 100 per 2 s per UID, "NEW" rule (§6)
RATE_LIMIT_WINDOW_MS = 2000
MAX_BODY_BYTES = 1 << 20

ENDPOINTS = (
    "GET /v1/common/timestamp",
    "GET /market/tickers",
    "GET /v2/user/uid",
    "GET /v2/user/api-key",
    "GET /v1/account/accounts",
    "GET /v1/account/accounts/{account-id}/balance",
    "GET /v2/account/asset-valuation",
    "POST /v1/order/orders/{order-id}/submitcancel",
)

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

# Fields of a key entry that POST /_sandbox/keys/<access key> may change, with their JSON types.
KEY_FIELDS: dict[str, type] = {
    "permission": str,
    "ipAddresses": str,
    "validDays": int,
    "status": str,
    "note": str,
    "subUser": bool,
    "accounts": list,
}

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

AUTH_PARAMS = (*signing.AUTH_PARAMS, "Signature")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_BALANCE_RE = re.compile(r"/v1/account/accounts/([^/]+)/balance")
_SUBMITCANCEL_RE = re.compile(r"/v1/order/orders/([^/]+)/submitcancel")

_GATEWAY_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)


# --- data files -------------------------------------------------------------------------------


def load_accounts(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Demo keys, keyed by access key, in HTX's own field names (see sandbox_data/)."""
    with open(path or DEFAULT_ACCOUNTS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("accounts file must hold a JSON object keyed by access key")
    return data


def load_tickers(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The ``/market/tickers`` table: a list of HTX ticker objects (prices are JSON numbers)."""
    with open(path or DEFAULT_TICKERS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError("tickers file must hold a JSON list")
    return data


# --- faults -----------------------------------------------------------------------------------

_FAULT_DEFAULTS: dict[str, Any] = {
    "latency_ms": 0,  # sleep before answering
    "http_status": None,  # e.g. 502: answer that status with a gateway-style HTML page
    "maintenance": False,  # answer system-maintenance
    "rate_limited": False,  # answer base-request-exceed-frequency-limit
    "malformed_json": False,  # HTTP 200 with the JSON answer cut in half (Content-Length matches)
    "paths": None,  # list of path prefixes the faults apply to; None or [] = every HTX path
}


def _check_fault(name: str, value: Any) -> Any:
    if name not in _FAULT_DEFAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(_FAULT_DEFAULTS)}")
    if name == "latency_ms":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 <= value <= 600_000:
            raise ValueError("latency_ms must be a number of milliseconds between 0 and 600000")
        return value
    if name == "http_status":
        if value in (None, 0):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError("http_status must be null or an HTTP status code (100-599)")
        return value
    if name in ("maintenance", "rate_limited", "malformed_json"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    # paths
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(p, str) and p.startswith("/") for p in value
    ):
        raise ValueError("paths must be null or a list of path prefixes starting with '/'")
    return list(value)


FAULT_NAMES = tuple(_FAULT_DEFAULTS)


class Faults:
    """Thread-safe fault switches. Read and set as attributes or items::

    sb.faults.latency_ms = 300
    sb.faults["maintenance"] = True
    sb.faults.update(http_status=502, paths=["/v1/account"])
    sb.faults.clear()

    ``latency_ms`` sleeps before answering; a client *timeout* is simply a latency above the
    client's read timeout (there is no separate hang switch). ``http_status`` answers a gateway
    HTML page, ``maintenance`` system-maintenance, ``rate_limited`` HTX's rate-limit error and
    headers, ``malformed_json`` HTTP 200 with the JSON answer truncated (e.g.
    ``{"status":"ok","data":[``) and a Content-Length that matches it. ``paths`` limits all of
    them to the given path prefixes.
    """

    __slots__ = ("_lock", "_values")

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_values", dict(_FAULT_DEFAULTS))
        if values:
            self.update(**values)

    def __getattr__(self, name: str) -> Any:
        if name in _FAULT_DEFAULTS:
            with self._lock:
                return self._values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FAULT_DEFAULTS:
            raise AttributeError(f"unknown fault {name!r}")
        self.update(**{name: value})

    def __getitem__(self, name: str) -> Any:
        if name not in _FAULT_DEFAULTS:
            raise KeyError(name)
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in _FAULT_DEFAULTS:
            raise KeyError(name)
        self.update(**{name: value})

    def update(self, **values: Any) -> None:
        checked = {name: _check_fault(name, value) for name, value in values.items()}
        with self._lock:
            self._values.update(checked)

    def replace(self, values: Mapping[str, Any]) -> None:
        """Set exactly these faults; every field not given goes back to its default."""
        checked = {name: _check_fault(name, value) for name, value in values.items()}
        with self._lock:
            object.__setattr__(self, "_values", {**_FAULT_DEFAULTS, **checked})

    def clear(self) -> None:
        self.replace({})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            values = dict(self._values)
        if values["paths"] is not None:
            values["paths"] = list(values["paths"])
        return values

    def __repr__(self) -> str:
        return f"Faults({self.snapshot()!r})"


def _fault_applies(faults: Mapping[str, Any], path: str) -> bool:
    prefixes = faults["paths"]
    return not prefixes or any(path.startswith(p) for p in prefixes)


# --- request / response -----------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxRequest:
    method: str
    path: str  # as received, without the query string
    params: list[tuple[str, str]]  # query parameters, decoded, in the order received
    host: str  # the Host header as sent
    client_ip: str  # socket peer address
    has_body: bool
    body: bytes = b""
    content_type: str = ""  # the Content-Type header as sent


@dataclass
class SandboxResponse:
    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


def _json(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None):
    # Compact, with the Chinese parts of HTX's messages as UTF-8 like HTX sends them.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return SandboxResponse(status, body, headers=headers or [])


def _v1_error(code: str, message: str, headers: list[tuple[str, str]] | None = None):
    payload = {"status": "error", "err-code": code, "err-msg": message, "data": None}
    return _json(payload, 200, headers)


def _v2_error(code: int, message: str, headers: list[tuple[str, str]] | None = None):
    return _json({"code": code, "message": message}, 200, headers)


def _truncated(response: SandboxResponse) -> SandboxResponse:
    # Any strict prefix of a compact JSON object or array is invalid JSON.
    body = response.body[: max(1, len(response.body) // 2)]
    return SandboxResponse(response.status, body, response.content_type, response.headers, response.close)


def _html(status: int) -> SandboxResponse:
    reason = BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
    body = _GATEWAY_HTML.format(status=status, reason=reason).encode()
    return SandboxResponse(status, body, content_type=HTML_CONTENT_TYPE)


def _parse_query(query: str) -> list[tuple[str, str]]:
    # parse_qsl decodes both %20 and "+" as a space: the official SDK sends quote_plus-encoded,
    # unsorted parameters (§10), while ccxt sends the canonical string itself (§2 step 9).
    return parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")


def _ip_allowed(client_ip: str, bindings: str) -> bool:
    """``ipAddresses`` is a comma list of IPv4/IPv6 hosts and CIDRs; empty means any (§7)."""
    entries = [e.strip() for e in (bindings or "").split(",") if e.strip()]
    if not entries:
        return True
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if ip.version == network.version and ip in network:
            return True
    return False


def _thousands(value: str) -> str:
    return f"{int(value):,}" if value.isdigit() else value


def _permissions(entry: Mapping[str, Any]) -> set[str]:
    return {p.strip() for p in str(entry.get("permission") or "").split(",")}


def _price(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        price = Decimal(str(value))  # str() of a float is its shortest repr: 0.1 -> "0.1"
    except InvalidOperation:
        return None
    return price if price.is_finite() and price > 0 else None


def _shown(access_key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"accessKey": access_key, **copy.deepcopy({k: v for k, v in entry.items() if k != "secret"})}


def _check_key_fields(fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        kind = KEY_FIELDS.get(name)
        if kind is None:
            raise ValueError(f"unknown field {name!r}; allowed: {', '.join(KEY_FIELDS)}")
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ValueError(f"{name} must be a JSON {kind.__name__}")
        if name == "accounts" and not all(isinstance(a, dict) and "id" in a for a in value):
            raise ValueError("accounts must be a list of objects, each with an id")


# --- the sandbox ------------------------------------------------------------------------------


class LoadStats:
    """What load tests read back (``GET /_sandbox/stats``): requests served, the most in flight
    at once, and per endpoint the busiest per-UID window and how many calls the limit refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = self.in_flight = self.peak_in_flight = 0
            self.busiest_window: dict[str, int] = {}
            self.refused: dict[str, int] = {}

    def enter(self) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def window_count(self, endpoint: str, count: int, *, refused: bool) -> None:
        with self._lock:
            self.busiest_window[endpoint] = max(self.busiest_window.get(endpoint, 0), count)
            if refused:
                self.refused[endpoint] = self.refused.get(endpoint, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "busiest_window_per_uid": dict(self.busiest_window),
                "refused_by_rate_limit": dict(self.refused),
            }


class HtxSandbox:
    """An HTX spot REST double served over HTTP on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        accounts: dict[str, dict[str, Any]],
        tickers: list[dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.accounts = accounts
        self.tickers = tickers
        self.host = host
        self.port = port
        self.clock_offset_ms = 0
        # Not HTX knobs: raise them for load tests (100 per 2 s is HTX's figure for E4/E5).
        self.rate_limit = RATE_LIMIT
        self.rate_limit_window_ms = RATE_LIMIT_WINDOW_MS
        self._faults = Faults()
        self._windows: dict[tuple[int, str], list[int]] = {}
        self._windows_lock = threading.Lock()
        self._keys_lock = threading.Lock()
        self.stats = LoadStats()
        # E7 fiat conversion (see FIAT_PER_USD); replace or edit for a test.
        self.fiat_per_usd = dict(FIAT_PER_USD)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving = False
        self._routes: dict[str, Callable[[SandboxRequest], SandboxResponse]] = {
            "/v1/common/timestamp": self._timestamp,
            "/market/tickers": self._tickers,
            "/v2/user/uid": self._uid,
            "/v2/user/api-key": self._api_key,
            "/v1/account/accounts": self._accounts,
            "/v2/account/asset-valuation": self._asset_valuation,
        }

    # -- lifecycle --

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults | Mapping[str, Any]) -> None:
        if isinstance(value, Faults):
            self._faults = value
        else:
            self._faults.replace(value)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def bind(self) -> HtxSandbox:
        """Open the listening socket now, so ``url`` has the real port; serving starts later."""
        self._bind()
        return self

    def _bind(self) -> _Server:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler, self)
            self.port = self._server.server_address[1]
        return self._server

    def start(self) -> HtxSandbox:
        """Serve in a daemon thread; returns self."""
        server = self._bind()
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"htx-sandbox:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() or KeyboardInterrupt."""
        server = self._bind()
        self._serving = True
        server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and close the listening socket."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._serving:
            server.shutdown()
            self._serving = False
        server.close_connections()
        server.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> HtxSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HtxSandbox {self.url} keys={len(self.accounts)}>"

    # -- helpers --

    def now_ms(self) -> int:
        """Server time: real time plus ``clock_offset_ms``."""
        return int(time.time() * 1000) + int(self.clock_offset_ms)

    def reset_rate_limits(self) -> None:
        with self._windows_lock:
            self._windows.clear()
        self.stats.reset()

    def _take(self, uid: int, endpoint: str) -> tuple[bool, int, int]:
        """Count one call in the fixed window of (uid, endpoint); -> allowed, remain, expire."""
        # Windows run on real time, so moving clock_offset_ms does not stretch or cut them;
        # the expiry is reported in server time like every other timestamp.
        now = int(time.time() * 1000)
        limit = int(self.rate_limit)
        with self._windows_lock:
            window = self._windows.get((uid, endpoint))
            if window is None or now >= window[0]:
                window = [now + int(self.rate_limit_window_ms), 0]
                self._windows[(uid, endpoint)] = window
            window[1] += 1
            end, count = window
        self.stats.window_count(endpoint, count, refused=count > limit)
        return count <= limit, max(limit - count, 0), end + int(self.clock_offset_ms)

    def _count(self, uid: int, endpoint: str) -> None:
        """Count a call of an endpoint whose limit the sandbox does not enforce (E2, E3), so
        load tests can still compare the busiest window with HTX's limit (``stats``)."""
        now = int(time.time() * 1000)
        with self._windows_lock:
            window = self._windows.get((uid, endpoint))
            if window is None or now >= window[0]:
                window = self._windows[(uid, endpoint)] = [now + int(self.rate_limit_window_ms), 0]
            window[1] += 1
            count = window[1]
        self.stats.window_count(endpoint, count, refused=False)

    def key_entry(self, access_key: str) -> dict[str, Any] | None:
        """A copy of the key's entry without its secret, with ``accessKey``; None if unknown."""
        with self._keys_lock:
            entry = self.accounts.get(access_key)
            return _shown(access_key, entry) if isinstance(entry, dict) else None

    def update_key(self, access_key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``fields`` (names from KEY_FIELDS) into the key's entry while serving.

        Raises KeyError for an unknown key and ValueError for an unknown field or a wrong type.
        The entry is updated in place (one dict.update under a lock), so references to it stay
        valid, and ``updateTime`` becomes the server time, as HTX does when a key is edited.
        """
        with self._keys_lock:
            entry = self.accounts.get(access_key)
            if not isinstance(entry, dict):
                raise KeyError(access_key)
            _check_key_fields(fields)
            entry.update({**copy.deepcopy(dict(fields)), "updateTime": self.now_ms()})
            return _shown(access_key, entry)

    def _account_list(self, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
        # Every key of one uid sees the same accounts, so a key may leave "accounts" out and
        # share those of another key with the same uid.
        if "accounts" in entry:
            return entry["accounts"]
        for other in list(self.accounts.values()):
            if other.get("uid") == entry.get("uid") and "accounts" in other:
                return other["accounts"]
        return []

    # -- dispatch --

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        self.stats.enter()
        try:
            return self._handle_counted(request)
        finally:
            self.stats.leave()

    def _handle_counted(self, request: SandboxRequest) -> SandboxResponse:
        """Answer one HTX request (the HTTP plumbing lives in _Handler)."""
        faults = self._faults.snapshot()
        active = _fault_applies(faults, request.path)
        response = self._handle(request, faults, active)
        if active and faults["malformed_json"] and response.content_type == JSON_CONTENT_TYPE:
            # The real answer (headers included) with its body cut short, as a broken proxy or
            # a dropped connection would deliver it; Content-Length is written for the cut body.
            return _truncated(response)
        return response

    def _handle(self, request: SandboxRequest, faults: Mapping[str, Any], active: bool) -> SandboxResponse:
        if active and faults["latency_ms"]:
            time.sleep(faults["latency_ms"] / 1000)
        if active and faults["http_status"]:
            return _html(faults["http_status"])

        # "GET request: all parameters are included in URL, and do not carry body
        # (content-length>0), otherwise will return 403" (DOCS, quoted in huobi-php#10). It comes
        # from the gateway in front of the API, so the page is HTML, not an HTX envelope.
        if request.method == "GET" and request.has_body:
            return _html(403)

        route = self._routes.get(request.path)
        balance = _BALANCE_RE.fullmatch(request.path)
        if route is None and balance is not None:
            account_id = balance.group(1)
            route = lambda req: self._balance(req, account_id)  # noqa: E731
        allow = "GET"
        cancel = _SUBMITCANCEL_RE.fullmatch(request.path)
        if route is None and cancel is not None:
            order_id = cancel.group(1)
            route = lambda req: self._submitcancel(req, order_id)  # noqa: E731
            allow = "POST"

        if route is None or request.method != allow:
            # DOCS21 FAQ Q10: a wrong path answers HTTP 405 method-not-allowed. Choice: the same
            # answer for a known path called with another method; no source gives the err-msg,
            # so it is Spring's wording (HTX's API is a Java service).
            response = _v1_error("method-not-allowed", f"Request method '{request.method}' not supported")
            response.status = 405
            if route is not None:
                response.headers.append(("Allow", allow))
            return response

        v2 = request.path.startswith("/v2/")
        if active and faults["maintenance"]:
            # Choice: v2 paths answer v2 code 500 ("error / System error" in DOCS' v2 status
            # table) with the v1 maintenance text; v1 and market paths answer CCXT's sample.
            if v2:
                return _v2_error(500, MSG_MAINTENANCE)
            return _v1_error("system-maintenance", MSG_MAINTENANCE)
        if active and faults["rate_limited"]:
            # The limiter sits in front of the endpoints, so every path answers the v1 code.
            expire = self.now_ms() + int(self.rate_limit_window_ms)
            return _v1_error(
                "base-request-exceed-frequency-limit",
                MSG_RATE_LIMIT,
                headers=_rate_headers(0, expire),
            )
        return route(request)

    # -- authentication (§2, §5.2) --

    def _authenticate(self, request: SandboxRequest) -> tuple[str, dict[str, Any]] | SandboxResponse:
        """Check a signed request; returns (access key, key entry) or the HTX error to send.

        Order: parameters present, key lookup (the secret is needed to verify anything),
        timestamp window, signature, then what the key is allowed to do: expiry, IP binding,
        permission. Checking the signature before the key's state means only the holder of the
        secret learns whether the key is expired, IP-bound or lacks permissions.
        """
        first: dict[str, str] = {}
        for name, value in request.params:
            first.setdefault(name, value)
        if any(not first.get(name) for name in AUTH_PARAMS):
            # DOCS error tables: login-required = "Signature is missing" (also FAQ Q9).
            return _v1_error("login-required", MSG_LOGIN_REQUIRED)

        access_key = first["AccessKeyId"]
        entry = self.accounts.get(access_key)
        if not isinstance(entry, dict):
            return _v1_error(SIG_INVALID, MSG_ACCESS_KEY)

        stamp = first["Timestamp"]
        if not _TIMESTAMP_RE.fullmatch(stamp):
            return _v1_error(SIG_INVALID, MSG_TIME)
        try:
            sent_ms = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) * 1000
        except ValueError:
            return _v1_error(SIG_INVALID, MSG_TIME)
        if abs(self.now_ms() - sent_ms) > TIMESTAMP_WINDOW_MS:
            return _v1_error(SIG_INVALID, MSG_TIME)

        # Choice: a SignatureMethod other than HmacSHA256 (e.g. Ed25519, which we do not
        # support) or a SignatureVersion other than 2 cannot verify, so it is a verification
        # failure; no source shows a dedicated error.
        signed = [(k, v) for k, v in request.params if k != "Signature"]
        query = signing.canonical_query(signed)
        payload = "\n".join((request.method.upper(), request.host.lower(), request.path, query))
        expected = signing.signature(str(entry.get("secret", "")), payload)
        ok_scheme = (
            first["SignatureMethod"] == signing.SIGNATURE_METHOD
            and first["SignatureVersion"] == signing.SIGNATURE_VERSION
        )
        if not hmac.compare_digest(expected.encode(), first["Signature"].encode()) or not ok_scheme:
            return _v1_error(SIG_INVALID, MSG_VERIFY)

        if entry.get("status") == "expired" or entry.get("validDays") == 0:
            return _v1_error(SIG_INVALID, MSG_EXPIRED)
        if not _ip_allowed(request.client_ip, str(entry.get("ipAddresses") or "")):
            return _v1_error(SIG_INVALID, MSG_IP.format(ip=request.client_ip))
        # Every endpoint served here needs Read; readOnly is mandatory on real keys (§7).
        if "readOnly" not in _permissions(entry):
            return _v1_error(SIG_INVALID, MSG_PERMISSION)
        return access_key, entry

    # -- endpoints (§4) --

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
            return _v2_error(1002, "forbidden")
        return _json({"code": 200, "data": entry.get("uid")})

    def _api_key(self, request: SandboxRequest) -> SandboxResponse:
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        self._count(int(entry.get("uid") or 0), "api-key")
        if entry.get("subUser"):
            return _v2_error(1002, "forbidden")  # see _uid
        params = dict(reversed(request.params))  # first occurrence wins
        uid_text = params.get("uid", "")
        if not uid_text:
            # DOCS21 marks uid required. Choice: DOCS' v2 code for a missing field.
            return _v2_error(2003, 'missing mandatory field "uid"')
        if not uid_text.isdigit():
            return _v2_error(2002, 'invalid field value in "uid"')
        if int(uid_text) != entry.get("uid"):
            # Only a parent may query its own keys (and its sub-users', not modelled here).
            # Choice: DOCS' sub-account code 1002 "forbidden" (operation not allowed for the
            # current user), as for a sub-user calling a parent-only endpoint.
            return _v2_error(1002, "forbidden")
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
        headers = _rate_headers(remain, expire)
        if not allowed:
            return _v1_error("base-request-exceed-frequency-limit", MSG_RATE_LIMIT, headers)
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
        headers = _rate_headers(remain, expire)
        if not allowed:
            return _v1_error("base-request-exceed-frequency-limit", MSG_RATE_LIMIT, headers)
        account = next((a for a in self._account_list(entry) if str(a.get("id")) == account_id), None)
        if account is None:
            message = MSG_ACCOUNT_INEXISTENT.format(
                uid=_thousands(str(uid)), account_id=_thousands(account_id)
            )
            return _v1_error("account-get-balance-account-inexistent-error", message, headers)
        refusal = account.get("refuse")
        if refusal:
            # Sandbox-only hook (not an HTX field): make HTX refuse this one account's balance,
            # e.g. {"err-code": "forbidden", "err-msg": "..."}, to test partial reads.
            return _v1_error(str(refusal["err-code"]), str(refusal.get("err-msg", "")), headers)
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
            return _v2_error(1002, "forbidden")  # not open to sub-users (§4 E3), see _uid
        allowed, remain, expire = self._take(int(entry.get("uid") or 0), "asset-valuation")
        headers = _rate_headers(remain, expire)  # E7 is a NEW-rule endpoint, 100/2s (§6)
        if not allowed:
            return _v1_error("base-request-exceed-frequency-limit", MSG_RATE_LIMIT, headers)

        # Choice: DOCS' v2 codes for a missing (2003) or invalid (2002) field, as for E3's uid.
        params = dict(reversed(request.params))  # first occurrence wins
        account_type = params.get("accountType")
        if not account_type:
            return _v2_error(2003, 'missing mandatory field "accountType"', headers)
        if account_type not in VALUATION_ACCOUNT_TYPES:
            return _v2_error(2002, 'invalid field value in "accountType"', headers)
        # Absent means BTC (DOCS21 default); any other value, "" and "usdt"/"USDT" included,
        # is outside the documented case-sensitive list.
        currency = params.get("valuationCurrency", "BTC")
        if currency not in VALUATION_CURRENCIES or (currency != "BTC" and currency not in self.fiat_per_usd):
            return _v2_error(2002, 'invalid field value in "valuationCurrency"', headers)
        if "subUid" in params:
            # Choice (fails safe): the sandbox models no parent/sub-user links, so no uid is a
            # sub-user of the caller: a malformed subUid is an invalid field, any other is
            # refused with DOCS' "forbidden", never answered with the caller's own valuation.
            if not params["subUid"].isdigit():
                return _v2_error(2002, 'invalid field value in "subUid"', headers)
            return _v2_error(1002, "forbidden", headers)

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
                return _v2_error(500, "System error", headers)
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
            return _v1_error("gateway-internal-error", MSG_GATEWAY)

        # Only the query (the 4 auth params and Signature) is verified; the body is not signed.
        auth = self._authenticate(request)
        if isinstance(auth, SandboxResponse):
            return auth
        _, entry = auth
        if "trade" not in _permissions(entry):  # DOCS21: "API Key Permission: Trade"
            return _v1_error(SIG_INVALID, MSG_PERMISSION)
        if not order_id.isdigit():
            return _v1_error("validation-format-error", MSG_ORDER_ID_FORMAT)
        return _json(
            {
                "status": "error",
                "err-code": "order-orderstate-error",
                "err-msg": MSG_ORDER_STATE,
                "order-state": -1,
                "data": None,
            }
        )


def _rate_headers(remain: int, expire_ms: int) -> list[tuple[str, str]]:
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


# --- HTTP plumbing ----------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, sandbox: HtxSandbox) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def close_connections(self) -> None:
        with self.connections_lock:
            sockets = list(self.connections)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "htx-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True  # StreamRequestHandler sets TCP_NODELAY on the socket
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def __getattr__(self, name: str) -> Any:
        # Every method (GET, POST, PUT, HEAD, ...) goes through one dispatcher, so unknown
        # methods get HTX's 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._write(_json({"error": str(exc)}, 400))
            return
        try:
            if path.startswith("/_sandbox/"):
                response = self._control(path, body)
            else:
                request = SandboxRequest(
                    method=self.command,
                    path=path,
                    params=_parse_query(query),
                    host=self.headers.get("Host", ""),
                    client_ip=self.client_address[0],
                    has_body=body is not None and len(body) > 0,
                    body=body or b"",
                    content_type=self.headers.get("Content-Type", ""),
                )
                response = self.server.sandbox.handle(request)
        except Exception:
            logger.exception("sandbox failed on %s %s", self.command, path)
            response = _v1_error("base-system-error", "System internal error")
            response.status = 500
        self._write(response)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return None
        try:
            length = int(length_text)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadRequest("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _control(self, path: str, body: bytes | None) -> SandboxResponse:
        """Test hooks: /_sandbox/faults, /_sandbox/clock and /_sandbox/keys/<access key>.
        Never part of HTX's API."""
        sandbox = self.server.sandbox
        if path.startswith("/_sandbox/keys/"):
            access_key = unquote(path[len("/_sandbox/keys/") :])
            if self.command == "POST":
                try:
                    values = json.loads(body or b"{}")
                    if not isinstance(values, dict):
                        raise ValueError("the body must be a JSON object")
                    return _json(sandbox.update_key(access_key, values))
                except KeyError:
                    return _json({"error": f"unknown access key {access_key!r}"}, 404)
                except ValueError as exc:
                    return _json({"error": str(exc)}, 400)
            if self.command != "GET":
                return _json({"error": "use GET or POST"}, 405)
            shown = sandbox.key_entry(access_key)
            if shown is None:
                return _json({"error": f"unknown access key {access_key!r}"}, 404)
            return _json(shown)
        if path == "/_sandbox/faults":
            if self.command == "POST":
                try:
                    values = json.loads(body or b"{}")
                    if not isinstance(values, dict):
                        raise ValueError("the body must be a JSON object")
                    sandbox.faults.replace(values)
                except ValueError as exc:
                    return _json({"error": str(exc)}, 400)
            elif self.command == "DELETE":
                sandbox.faults.clear()
            elif self.command != "GET":
                return _json({"error": "use GET, POST or DELETE"}, 405)
            return _json(sandbox.faults.snapshot())
        if path == "/_sandbox/stats":
            if self.command == "DELETE":
                sandbox.reset_rate_limits()
            elif self.command != "GET":
                return _json({"error": "use GET or DELETE"}, 405)
            return _json(sandbox.stats.snapshot())
        if path == "/_sandbox/clock":
            if self.command == "POST":
                try:
                    values = json.loads(body or b"{}")
                    offset = values["clock_offset_ms"]
                    if isinstance(offset, bool) or not isinstance(offset, int):
                        raise ValueError
                except (ValueError, KeyError, TypeError):
                    return _json({"error": 'send {"clock_offset_ms": <int>}'}, 400)
                sandbox.clock_offset_ms = offset
            elif self.command != "GET":
                return _json({"error": "use GET or POST"}, 405)
            return _json({"clock_offset_ms": sandbox.clock_offset_ms, "now_ms": sandbox.now_ms()})
        return _json({"error": "not found"}, 404)

    def _write(self, response: SandboxResponse) -> None:
        # One sendall per response (wbufsize is 0, so wfile.write is socket.sendall): with
        # TCP_NODELAY this avoids the Nagle + delayed-ACK stall of separate header/body writes.
        reason = self.responses.get(response.status, ("",))[0]
        close = self.close_connection or response.close
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            *(f"{name}: {value}" for name, value in response.headers),
            "Connection: close" if close else "Connection: keep-alive",
        ]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += response.body
        try:
            self.wfile.write(data)
        except OSError:
            close = True
        self.close_connection = close
        logger.debug(
            "%s %s %s -> %s",
            self.client_address[0],
            self.command,
            self.path.partition("?")[0],
            response.status,
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _write logs without the query string (it holds AccessKeyId and Signature)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        message = format % args
        logger.debug("%s %s", self.client_address[0], re.sub(r"\?\S*", "?…", message))
