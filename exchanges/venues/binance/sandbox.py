"""Binance sandbox: a local HTTP double of the Binance REST endpoints the dashboard uses.

It answers with Binance's shapes, string amounts, error codes and texts, and it checks requests
the way Binance does (shared/binance-api.md §11; § numbers below refer to that file): the
HMAC-SHA256 hex signature over the query string and body *as received* (only ``signature=``
taken out), the key from ``X-MBX-APIKEY``, the caller's socket address against the key's IP
whitelist, the key's permissions, ``timestamp``/``recvWindow``, and request weights per caller
IP per minute with 429 then 418. Where no source says what Binance does, the choice is marked
``Choice:``. ``/fapi`` (USDⓈ-M futures, a separate host at Binance) is served on the same host.

Built on the venue kit's sandbox (``exchanges.venues.kit.sandbox``: lifecycle, HTTP plumbing,
faults, stats and the test hooks); the request security is in ``sandbox_auth`` and the
endpoints in ``sandbox_endpoints``. Standard library (plus ``cryptography`` for Ed25519 keys);
no Django. Usage::

    sb = BinanceSandbox(load_keys(), load_tickers()).start()
    ...  # talk to sb.url over HTTP
    sb.stop()

Binance endpoints served: see ``ENDPOINTS``. Test hooks (never part of Binance's API):

- faults: ``sb.faults`` / ``GET|POST|DELETE /_sandbox/faults`` (see ``Faults``).
- stats: ``sb.stats`` / ``GET|DELETE /_sandbox/stats``: requests, the busiest weight per IP and
  minute per budget (``busiest_window_per_ip``: ``api``, ``fapi``, or a ``/sapi/...`` path),
  429s (``refused_by_rate_limit``), 418s (``refused_by_ban``) and bans started (``bans``).
- knobs for load tests: ``api_weight_limit`` (6,000), ``sapi_ip_weight_limit`` (12,000),
  ``fapi_weight_limit``, ``weight_window_ms``, ``ban_after_429s``, ``ban_seconds``.
- clock: ``sb.clock_offset_ms`` / ``GET|POST /_sandbox/clock``.
- keys: ``sb.accounts`` (also ``sb.keys``) / ``GET|POST /_sandbox/keys/<API key>`` with
  ``KEY_FIELDS``. "Now" for ``tradingExpiresInDays`` and ``createTimeDaysAgo`` is the sandbox's
  start (or the change of that field), so moving ``clock_offset_ms`` past it expires trading.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchanges.venues.binance.sandbox_auth import (
    MSG_BANNED,
    MSG_DUPLICATE,
    MSG_INTERNAL,
    MSG_KEY_FORMAT,
    MSG_MANDATORY,
    MSG_OVERLOADED,
    MSG_RATE,
    MSG_SIGNATURE,
    MSG_UNKNOWN,
    SIGNED_PARAMS,
    Params,
    api_key_of,
    check_timing,
    ed25519_ok,
    error,
    hmac_ok,
    hmac_signature,
    ok,
    read_params,
    rejected,
    restricted_location,
    signature_ok,
    signed_payload,
    unread,
)
from exchanges.venues.binance.sandbox_endpoints import BinanceEndpoints
from exchanges.venues.binance.sandbox_model import (
    ENDPOINTS,
    KEY_FIELDS,
    SPECS,
    SYSTEM_STATUS,
    Endpoint,
    check_key,
    check_keys,
)
from exchanges.venues.kit import sandbox as kit
from exchanges.venues.kit.sandbox import (
    HTML_CONTENT_TYPE,
    BaseSandbox,
    FixedWindows,
    SandboxRequest,
    SandboxResponse,
    ip_allowed,
    json_response,
)

__all__ = [
    "DEFAULT_KEYS_PATH",
    "DEFAULT_TICKERS_PATH",
    "ENDPOINTS",
    "FAULT_NAMES",
    "KEY_FIELDS",
    "BinanceSandbox",
    "Faults",
    "check_keys",
    "ed25519_ok",
    "hmac_ok",
    "hmac_signature",
    "load_keys",
    "load_tickers",
    "signature_ok",
    "signed_payload",
]

DATA_DIR = Path(__file__).resolve().with_name("sandbox_data")
DEFAULT_KEYS_PATH = DATA_DIR / "keys.json"
DEFAULT_TICKERS_PATH = DATA_DIR / "tickers.json"

DAY_MS = 24 * 3600 * 1000
API_WEIGHT_LIMIT = 6000  # /api: per IP per minute, shared by every key (§8)
SAPI_IP_WEIGHT_LIMIT = 12000  # /sapi: per IP per minute, each endpoint its own budget (§8)
# Choice: /fapi gets a per-IP budget of its own with /api's figure (the facts give none).
FAPI_WEIGHT_LIMIT = 6000
WEIGHT_WINDOW_MS = 60_000
# Choice: the 4th over-limit request in one window (after three 429s) bans the IP for the
# shortest ban Binance names, "from 2 minutes to 3 days" (§8); /sapi never escalates (§8, RL).
BAN_AFTER_429S = 3
BAN_SECONDS = 120


def load_keys(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Demo keys, keyed by API key (see sandbox_data/keys.json); refuses malformed data."""
    with open(path or DEFAULT_KEYS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    check_keys(data)
    return data


def load_tickers(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The price table: ``[{"symbol", "price", "status", "baseAsset", "quoteAsset"}]``."""
    with open(path or DEFAULT_TICKERS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list) or not all(
        isinstance(row, dict) and {"symbol", "price", "baseAsset", "quoteAsset"} <= set(row) for row in data
    ):
        raise ValueError(
            "tickers file must hold a JSON list of {symbol, price, baseAsset, quoteAsset, status}"
        )
    return data


# --- faults -----------------------------------------------------------------------------------

# §7.2 "CDN failure": CloudFront's own page, not JSON. Choice: the WAF's 403 is the same page
# with CloudFront's "Request blocked." wording.
_CLOUDFRONT_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">\n'
    '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n'
    "<TITLE>ERROR: The request could not be satisfied</TITLE>\n</HEAD><BODY>\n"
    '<H1>{status} ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size="1px">\n'
    '{reason}\n<BR clear="all">\n<HR noshade size="1px">\n<PRE>\n'
    "Generated by cloudfront (CloudFront)\nRequest ID: sandbox\n</PRE>\n<ADDRESS>\n</ADDRESS>\n</BODY></HTML>"
)


class Faults(kit.Faults):
    """The kit's switches (``latency_ms``, ``http_status``, ``malformed_json``, ``paths``) and
    Binance's (§7.2, §11): ``maintenance`` (E15 says ``status: 1``, other paths 503 -1001),
    ``rate_limited`` (429 -1003) and ``banned`` (418 -1003), each true or a ``Retry-After`` in
    seconds (true = 60 and 120), ``restricted_location`` (451, §1's exact body),
    ``internal_error`` (500 -1000), ``overloaded`` (503 -1008), ``cdn_error`` (503 CloudFront
    HTML page) and ``waf`` (403 HTML page)."""

    __slots__ = ()

    DEFAULTS = {
        "latency_ms": 0,
        "http_status": None,
        "maintenance": False,
        "rate_limited": False,
        "banned": False,
        "restricted_location": False,
        "internal_error": False,
        "overloaded": False,
        "cdn_error": False,
        "waf": False,
        "malformed_json": False,
        "paths": None,
    }

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        if name in ("rate_limited", "banned") and not isinstance(value, bool):
            if not isinstance(value, int) or not 0 < value <= 3 * 86400:
                raise ValueError(f"{name} must be true, false or a Retry-After in seconds (1-259200)")
            return value
        return super().check(name, value)


FAULT_NAMES = Faults.names()


def _cloudfront(status: int, reason: str) -> SandboxResponse:
    body = _CLOUDFRONT_HTML.replace("{status}", str(status)).replace("{reason}", reason).encode()
    return SandboxResponse(status, body, HTML_CONTENT_TYPE)


def _too_much(status: int, retry_after: int, msg: str, headers: list[tuple[str, str]] | None = None):
    return error(-1003, msg, status, [*(headers or []), ("Retry-After", str(max(1, retry_after)))])


def _spring(status: int, path: str, method: str, now_ms: int) -> SandboxResponse:
    # §7.1: unknown SAPI paths answer Spring's 404. Choice: every unknown path, /api and /fapi
    # too, and a known path called with another method (Spring's 405 wording).
    error_name, message = (
        ("Not Found", "No message available")
        if status == 404
        else ("Method Not Allowed", f"Request method '{method}' not supported")
    )
    payload = {"timestamp": now_ms, "status": status, "error": error_name, "message": message, "path": path}
    return json_response(payload, status)


# --- the sandbox ------------------------------------------------------------------------------


class BinanceSandbox(BinanceEndpoints, BaseSandbox):
    """A Binance REST double served over HTTP on ``host:port`` (port 0 picks a free one)."""

    name = "binance-sandbox"
    key_label = "apiKey"
    key_fields = KEY_FIELDS
    faults_class = Faults
    stats_per = "ip"

    def __init__(
        self,
        keys: dict[str, dict[str, Any]],
        tickers: list[dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        check_keys(keys)
        super().__init__(keys, host, port)
        self.keys = self.accounts  # the same dict, under Binance's word
        self.tickers = tickers
        self.started_ms = self.now_ms()  # "now" for tradingExpiresInDays and createTimeDaysAgo
        self._anchors: dict[tuple[str, str], int] = {}  # (key, field) -> when the field was set
        # Not Binance knobs: raise them for load tests.
        self.api_weight_limit = API_WEIGHT_LIMIT
        self.sapi_ip_weight_limit = SAPI_IP_WEIGHT_LIMIT
        self.fapi_weight_limit = FAPI_WEIGHT_LIMIT
        self.weight_window_ms = WEIGHT_WINDOW_MS
        self.ban_after_429s = BAN_AFTER_429S
        self.ban_seconds = BAN_SECONDS
        self._weights = FixedWindows()
        self._refusals = FixedWindows()
        self._bans: dict[str, int] = {}  # caller IP -> end of its ban, real ms
        self._bans_lock = threading.Lock()
        self._specs: dict[tuple[str, str], Endpoint] = {}
        for spec in SPECS:
            self.routes.add(spec.method, spec.path, getattr(self, spec.handler))
            self._specs[(spec.method, spec.path)] = spec

    # -- keys --

    def wallet(self, entry: Mapping[str, Any], name: str) -> Any:
        """One wallet of the key's account. Keys of one uid see the same account, so a key may
        leave wallets out and share another key's. Default: [] (margin, futures: None)."""
        if name in entry:
            return entry[name]
        for other in list(self.accounts.values()):
            if other is not entry and other.get("uid") == entry.get("uid") and name in other:
                return other[name]
        return None if name in ("margin", "futures") else []

    def _anchor(self, key: str, name: str) -> int:
        return self._anchors.get((key, name), self.started_ms)

    def trading_expiration_ms(self, key: str, entry: Mapping[str, Any]) -> int | None:
        """When trading ends: ``tradingExpiresInDays`` after "now" (§5, ANN21: 30 days for an
        unrestricted key). Choice: an IP-restricted key has none, whatever the field says."""
        days = entry.get("tradingExpiresInDays")
        if days is None or entry.get("ipRestrict"):
            return None
        return self._anchor(key, "tradingExpiresInDays") + round(days * DAY_MS)

    def trading_enabled(self, key: str, entry: Mapping[str, Any]) -> bool:
        """Trade permission now: ticked, and not expired (then Binance unticks it, §5)."""
        expires = self.trading_expiration_ms(key, entry)
        return bool(entry.get("enableSpotAndMarginTrading")) and (expires is None or expires > self.now_ms())

    def create_time_ms(self, key: str, entry: Mapping[str, Any]) -> int:
        return self._anchor(key, "createTimeDaysAgo") - int(entry.get("createTimeDaysAgo", 0)) * DAY_MS

    def prepare_key_update(self, key: str, entry: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        """The kit's type checks, then the whole changed entry checked like loaded data (a
        withdraw key stays IP-restricted); a new ``tradingExpiresInDays`` or
        ``createTimeDaysAgo`` counts from the server time of the change."""
        changes = super().prepare_key_update(key, entry, fields)
        check_key(key, {**entry, **changes})
        for name in ("tradingExpiresInDays", "createTimeDaysAgo"):
            if name in changes:
                self._anchors[(key, name)] = self.now_ms()
        return changes

    # -- weights (§8) --

    def reset_rate_limits(self) -> None:
        self._weights.clear()
        self._refusals.clear()
        with self._bans_lock:
            self._bans.clear()
        super().reset_rate_limits()

    def _budget(self, path: str) -> tuple[str, int, tuple[str, ...], bool]:
        """(bucket, limit, weight headers, escalates to 418) for a path (§8)."""
        if path.startswith("/sapi/"):
            return path, int(self.sapi_ip_weight_limit), ("X-SAPI-USED-IP-WEIGHT-1M",), False
        if path.startswith("/fapi/"):
            return "fapi", int(self.fapi_weight_limit), ("X-MBX-USED-WEIGHT-1M",), True
        return "api", int(self.api_weight_limit), ("X-MBX-USED-WEIGHT-1M", "X-MBX-USED-WEIGHT"), True

    def _banned_for_ms(self, ip: str) -> int:
        now = int(time.time() * 1000)
        with self._bans_lock:
            end = self._bans.get(ip, 0)
        return max(end - now, 0)

    def _ban_answer(self, left_ms: int, headers: list[tuple[str, str]] | None = None) -> SandboxResponse:
        until = self.now_ms() + left_ms  # in server time, like every Binance timestamp
        return _too_much(418, math.ceil(left_ms / 1000), MSG_BANNED.format(until), headers)

    def _weigh(self, ip: str, spec: Endpoint, values: Mapping[str, str]):
        """Count the request's weight for the caller's IP; -> (refusal or None, headers)."""
        weight = spec.weight
        if spec.path == "/api/v3/ticker/price" and "symbol" in values:
            weight = 2  # §4 E3: 2 for one symbol, 4 for all or a list
        if spec.path == "/api/v3/order/test" and values.get("computeCommissionRates", "").lower() == "true":
            weight = 20  # §4 E16
        bucket, limit, names, escalates = self._budget(spec.path)
        used, end = self._weights.add((ip, bucket), weight, int(self.weight_window_ms))
        headers = [(name, str(used)) for name in names]
        self.stats.window_count(bucket, used, refused=used > limit)
        if used <= limit:
            return None, headers
        if escalates:
            refusals, _ = self._refusals.add((ip, bucket), 1, int(self.weight_window_ms))
            if refusals > int(self.ban_after_429s):  # kept going after 429s: banned (§8)
                left = int(self.ban_seconds) * 1000
                with self._bans_lock:
                    self._bans[ip] = int(time.time() * 1000) + left
                self.stats.bump("bans", bucket)
                return self._ban_answer(left, headers), []
        retry = math.ceil((end - time.time() * 1000) / 1000)  # until the window ends
        return _too_much(429, retry, MSG_RATE.format(limit), headers), []

    # -- dispatch --

    def internal_error(self) -> SandboxResponse:
        return error(-1000, MSG_UNKNOWN, 500)

    def _front_faults(self, faults: Mapping[str, Any]) -> SandboxResponse | None:
        """Faults of what sits in front of every path: geo block, WAF, CDN, limiter, servers."""
        if faults["restricted_location"]:
            return restricted_location()
        if faults["waf"]:
            return _cloudfront(
                403, "Request blocked. We can't connect to the server for this app or website."
            )
        if faults["cdn_error"]:
            return _cloudfront(503, "The server is currently unavailable.")
        if faults["banned"]:
            seconds = BAN_SECONDS if faults["banned"] is True else faults["banned"]
            return self._ban_answer(seconds * 1000)
        if faults["rate_limited"]:
            seconds = 60 if faults["rate_limited"] is True else faults["rate_limited"]
            return _too_much(429, seconds, MSG_RATE.format(int(self.api_weight_limit)))
        if faults["internal_error"]:
            return error(-1000, MSG_UNKNOWN, 500)
        if faults["overloaded"]:
            return error(-1008, MSG_OVERLOADED, 503)
        return None

    def dispatch(self, request: SandboxRequest, faults: Mapping[str, Any], active: bool) -> SandboxResponse:
        """Answer one Binance request, after the kit's latency and http_status faults."""
        front = self._front_faults(faults) if active else None
        if front is not None:
            return front
        found = self.routes.match(request.method, request.path)
        if found.handler is None:
            return _spring(405 if found.allowed else 404, request.path, request.method, self.now_ms())
        spec = self._specs[(request.method, request.path)]
        banned = self._banned_for_ms(request.client_ip)
        if banned:
            self.stats.bump("refused_by_ban", self._budget(spec.path)[0])
            return self._ban_answer(banned)
        params = read_params(request)
        values = params.values if isinstance(params, Params) else {}
        refusal, headers = self._weigh(request.client_ip, spec, values)
        if refusal is not None:
            return refusal
        response = self._serve(request, spec, params, active and faults["maintenance"])
        response.headers.extend(headers)
        return response

    def _serve(
        self, request: SandboxRequest, spec: Endpoint, params: Params | SandboxResponse, maintenance: bool
    ) -> SandboxResponse:
        if isinstance(params, SandboxResponse):
            return params  # -1101
        if maintenance:
            # CCXT fetch_status: E15 says status 1; the rest fails with a 5xx whose body no
            # source shows (§7.2). Choice: 503 with -1001.
            if spec.path == SYSTEM_STATUS:
                return ok({"status": 1, "msg": "system maintenance"})
            return error(-1001, MSG_INTERNAL, 503)
        entry = None
        if spec.security != "NONE":
            auth = self._authenticate(request, spec, params)
            if isinstance(auth, SandboxResponse):
                return auth
            entry = auth
        if spec.path.startswith("/api/"):
            # §7.2: -1104 for an unknown parameter is the spot API's. Choice: /sapi and /fapi
            # ignore parameters they do not read.
            accepted = spec.params + (SIGNED_PARAMS if spec.security != "NONE" else ())
            extra = unread(params, accepted)
            if extra is not None:
                return extra
        return getattr(self, spec.handler)(request, params.values, entry)

    # -- authentication (§2, §5, §7.2) --

    def _authenticate(
        self, request: SandboxRequest, spec: Endpoint, params: Params
    ) -> dict | SandboxResponse:
        """Check a signed request; returns the key entry or Binance's error.

        Order (§14: inferred, not documented): key format, key known, caller IP, permission,
        mandatory parameters, timing, signature. So a right key with a wrong secret from an
        allowed IP gets -1022 and from any other IP -2015 (§7.2).
        """
        api_key = api_key_of(request)
        if api_key is None:
            return error(-2014, MSG_KEY_FORMAT, 401)
        # §7.2: futures answers carry the caller's IP on every -2015.
        futures_ip = request.client_ip if spec.path.startswith("/fapi/") else None
        entry = self.accounts.get(api_key)
        if not isinstance(entry, dict):
            return rejected(futures_ip)
        if entry.get("ipRestrict") and not ip_allowed(request.client_ip, entry.get("ips") or ()):
            # Choice: an IP refusal always names the address Binance saw (§7.2, ccxt/ccxt#16844;
            # §14: whether spot does so today is not settled), so the dashboard can show it.
            return rejected(request.client_ip)
        if not self._may(api_key, entry, spec):
            return rejected(futures_ip)
        if not params.values.get("timestamp"):
            return error(-1102, MSG_MANDATORY.format("timestamp"))
        if not params.signatures or not params.signatures[0]:
            return error(-1102, MSG_MANDATORY.format("signature"))
        if len(params.signatures) > 1:
            return error(-1101, MSG_DUPLICATE)
        late = check_timing(params, self.now_ms())
        if late is not None:
            return late
        if not signature_ok(entry, params.payload, params.signatures[0]):
            return error(-1022, MSG_SIGNATURE)
        return entry

    def _may(self, api_key: str, entry: Mapping[str, Any], spec: Endpoint) -> bool:
        """Does the key have the permission the endpoint needs? (-2015 if not, §7.2)"""
        if not entry.get("enableReading", True):
            return False  # Choice: a key without Read is refused everywhere
        if spec.security == "TRADE":
            return self.trading_enabled(api_key, entry)  # a read-only or expired key: -2015
        if spec.path.startswith("/fapi/"):
            # §4 E13: a key without futures access answers 401 -2015.
            return bool(entry.get("enableFutures")) and self.wallet(entry, "futures") is not None
        return True
