"""Bybit sandbox: a local HTTP double of the Bybit V5 REST endpoints the dashboard uses.

It answers with Bybit's envelopes (``retCode``/``retMsg``/``result``/``retExtInfo``/``time``,
HTTP 200 even for errors), string amounts, error codes and texts, and it checks requests the
way Bybit does (shared/bybit-api.md; § numbers below refer to it): the ``X-BAPI-*`` headers, the
hex HMAC-SHA256 (or RSA) signature over timestamp + API key + recvWindow + the raw query (GET)
or raw body (POST) *as received*, the timestamp window, the key's site (from the request's Host
header: a key answers only on its own site's hosts, §1), its IP binding, expiry and
permissions, per-UID per-endpoint limits with the ``X-Bapi-Limit-*`` headers, and the per-IP
limit (HTTP 403). Where no source says what Bybit does, the choice is marked ``Choice:``.

Built on the venue kit's sandbox (``exchanges.venues.kit.sandbox``: lifecycle, HTTP plumbing,
faults, stats and the test hooks); the request security is in ``sandbox_auth``, the data model
in ``sandbox_model`` and the endpoints in ``sandbox_endpoints``. Standard library (plus
``cryptography`` for RSA keys); no Django. Usage::

    sb = BybitSandbox(load_keys(), load_tickers()).start()
    ...  # talk to sb.url over HTTP; send e.g. "Host: api.bybit.nl" to be on another site
    sb.stop()

Bybit endpoints served: see ``ENDPOINTS``. Sites and their hosts: ``SITE_HOSTS`` (the sandbox's
own address, any IP literal and ``localhost`` count as the global site). Test hooks (never part
of Bybit's API):

- faults: ``sb.faults`` / ``GET|POST|DELETE /_sandbox/faults`` (see ``Faults``).
- stats: ``sb.stats`` / ``GET|DELETE /_sandbox/stats``: requests, per endpoint path the busiest
  one-second window of one UID (``busiest_window_per_uid``; its ``"ip"`` entry is the busiest
  five-second window of one caller IP), refusals (``refused_by_rate_limit``, same buckets),
  ``ip_bans`` per IP and ``orders`` per key.
- knobs for load tests: ``uid_limits`` (path -> calls per window, §10), ``uid_window_ms``
  (1,000), ``ip_limit`` (600), ``ip_window_ms`` (5,000), ``ip_ban_seconds`` (600).
- clock: ``sb.clock_offset_ms`` / ``GET|POST /_sandbox/clock``.
- keys: ``sb.accounts`` (also ``sb.keys``) / ``GET|POST /_sandbox/keys/<API key>`` with
  ``KEY_FIELDS``. "Now" for ``expiresInDays`` and ``createdDaysAgo`` is the sandbox's start (or
  the change of that field), so moving ``clock_offset_ms`` past it expires the key (33004).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchanges.venues.bybit.sandbox_auth import (
    CODE_EXPIRED,
    CODE_IP,
    CODE_KEY,
    CODE_PARAMS,
    CODE_RATE,
    CODE_SERVER,
    CODE_SIGN,
    CODE_TIMEOUT,
    MSG_BODY,
    MSG_EXPIRED,
    MSG_INTERNAL,
    MSG_IP,
    MSG_IP_LIMIT,
    MSG_KEY,
    MSG_NO_AUTH,
    MSG_RATE,
    MSG_SERVER,
    MSG_SIGN,
    MSG_TIMEOUT,
    auth_headers,
    envelope,
    error,
    hmac_ok,
    hmac_signature,
    http_page,
    prehash,
    rsa_ok,
    signature_ok,
    timing_error,
)
from exchanges.venues.bybit.sandbox_endpoints import BybitEndpoints, Call
from exchanges.venues.bybit.sandbox_model import (
    ENDPOINTS,
    KEY_FIELDS,
    SITE_HOSTS,
    SPECS,
    SYSTEM_STATUS,
    Endpoint,
    check_key,
    check_keys,
    check_tickers,
    ip_bound,
    site_of,
)
from exchanges.venues.kit import sandbox as kit
from exchanges.venues.kit.sandbox import (
    BaseSandbox,
    FixedWindows,
    SandboxRequest,
    SandboxResponse,
    ip_allowed,
)

__all__ = [
    "DEFAULT_KEYS_PATH",
    "DEFAULT_TICKERS_PATH",
    "ENDPOINTS",
    "FAULT_NAMES",
    "KEY_FIELDS",
    "SITE_HOSTS",
    "BybitSandbox",
    "Faults",
    "check_keys",
    "hmac_ok",
    "hmac_signature",
    "load_keys",
    "load_tickers",
    "prehash",
    "rsa_ok",
    "signature_ok",
    "site_of",
]

DATA_DIR = Path(__file__).resolve().with_name("sandbox_data")
DEFAULT_KEYS_PATH = DATA_DIR / "keys.json"
DEFAULT_TICKERS_PATH = DATA_DIR / "tickers.json"

DAY_MS = 24 * 3600 * 1000
IP_LIMIT = 600  # §10: 600 requests per 5 s per IP, then HTTP 403 for at least 10 minutes
IP_WINDOW_MS = 5000
IP_BAN_SECONDS = 600
UID_WINDOW_MS = 1000  # §10: per UID per endpoint per second. Choice: fixed, not rolling, windows.
# Choice: a key without createdDaysAgo was created 90 days before it expires (§6), or 30 days ago.
UNBOUND_LIFETIME_DAYS = 90


def load_keys(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Demo keys, keyed by API key (see sandbox_data/keys.json); refuses malformed data."""
    with open(path or DEFAULT_KEYS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    check_keys(data)
    return data


def load_tickers(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The spot pairs: ``[{"symbol", "baseCoin", "quoteCoin", "lastPrice", "status"?, ...}]``
    (ticker fields of E7 and instrument fields of E8 in one row; missing ones are derived)."""
    with open(path or DEFAULT_TICKERS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    check_tickers(data)
    return data


# --- faults -----------------------------------------------------------------------------------


class Faults(kit.Faults):
    """The kit's switches (``latency_ms``, ``http_status``, ``malformed_json``, ``paths``) and
    Bybit's: ``maintenance`` (10016 everywhere, E9 lists an ongoing maintenance),
    ``rate_limited`` (true or ``"uid"``: 10006 with the limit headers; ``"ip"``: the HTTP 403
    IP-limit page, §10), ``server_timeout`` (10000) and ``restricted_location`` (HTTP 403, the
    US / Mainland China block of §1; Choice: the gateway's page)."""

    __slots__ = ()

    DEFAULTS = {
        "latency_ms": 0,
        "http_status": None,
        "maintenance": False,
        "rate_limited": False,
        "server_timeout": False,
        "restricted_location": False,
        "malformed_json": False,
        "paths": None,
    }

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        if name == "rate_limited" and not isinstance(value, bool):
            if value not in ("uid", "ip"):
                raise ValueError('rate_limited must be true, false, "uid" or "ip"')
            return value
        return super().check(name, value)


FAULT_NAMES = Faults.names()


# --- the sandbox ------------------------------------------------------------------------------


class BybitSandbox(BybitEndpoints, BaseSandbox):
    """A Bybit V5 REST double served over HTTP on ``host:port`` (port 0 picks a free one)."""

    name = "bybit-sandbox"
    key_label = "apiKey"
    key_fields = KEY_FIELDS
    faults_class = Faults
    stats_per = "uid"

    def __init__(
        self,
        keys: dict[str, dict[str, Any]],
        tickers: list[dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        check_keys(keys)
        check_tickers(tickers)
        super().__init__(keys, host, port)
        self.keys = self.accounts  # the same dict
        self.tickers = tickers
        self.started_ms = self.now_ms()  # "now" for expiresInDays and createdDaysAgo
        self._anchors: dict[tuple[str, str], int] = {}  # (key, field) -> when the field was set
        # Not Bybit knobs: raise them for load tests.
        self.uid_limits: dict[str, int] = {s.path: s.limit for s in SPECS if s.limit is not None}
        self.uid_window_ms = UID_WINDOW_MS
        self.ip_limit = IP_LIMIT
        self.ip_window_ms = IP_WINDOW_MS
        self.ip_ban_seconds = IP_BAN_SECONDS
        self._uid_windows = FixedWindows()
        self._ip_windows = FixedWindows()
        self._bans: dict[str, int] = {}  # caller IP -> end of its ban, real ms
        self._bans_lock = threading.Lock()
        self._specs: dict[tuple[str, str], Endpoint] = {}
        for spec in SPECS:
            self.routes.add(spec.method, spec.path, getattr(self, spec.handler))
            self._specs[(spec.method, spec.path)] = spec

    # -- keys --

    def wallet(self, entry: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        """One account of the key's UID (``unified``, ``fund``, ``earn``). Keys of one UID see
        the same accounts, so a key may leave them out and share another key's. Default: []."""
        if name in entry:
            return list(entry[name])
        for other in list(self.accounts.values()):
            if other is not entry and other.get("uid") == entry.get("uid") and name in other:
                return list(other[name])
        return []

    def _anchor(self, key: str, name: str) -> int:
        return self._anchors.get((key, name), self.started_ms)

    def expires_at_ms(self, key: str, entry: Mapping[str, Any]) -> int | None:
        """``expiresInDays`` after "now"; None: never (IP-bound keys, §6)."""
        days = entry.get("expiresInDays")
        if days is None:
            return None
        return self._anchor(key, "expiresInDays") + round(days * DAY_MS)

    def created_at_ms(self, key: str, entry: Mapping[str, Any]) -> int:
        days = entry.get("createdDaysAgo")
        if days is None:
            left = entry.get("expiresInDays")
            days = 30 if left is None else max(UNBOUND_LIFETIME_DAYS - left, 0)
            return self._anchor(key, "expiresInDays") - round(days * DAY_MS)
        return self._anchor(key, "createdDaysAgo") - round(days * DAY_MS)

    def expired(self, key: str, entry: Mapping[str, Any]) -> bool:
        expires = self.expires_at_ms(key, entry)
        return expires is not None and expires <= self.now_ms()

    def prepare_key_update(self, key: str, entry: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        """The kit's type checks, then the whole changed entry checked like loaded data; a new
        ``expiresInDays`` or ``createdDaysAgo`` counts from the server time of the change."""
        changes = super().prepare_key_update(key, entry, fields)
        check_key(key, {**entry, **changes})
        for name in ("expiresInDays", "createdDaysAgo"):
            if name in changes:
                self._anchors[(key, name)] = self.now_ms()
        return changes

    # -- limits (§10) --

    def reset_rate_limits(self) -> None:
        self._uid_windows.clear()
        self._ip_windows.clear()
        with self._bans_lock:
            self._bans.clear()
        super().reset_rate_limits()

    def _ip_refusal(self, ip: str) -> SandboxResponse | None:
        """The per-IP limit over every request: HTTP 403, then a ban of ``ip_ban_seconds``."""
        now = int(time.time() * 1000)
        with self._bans_lock:
            banned = self._bans.get(ip, 0) > now
        if banned:
            self.stats.window_count("ip", 0, refused=True)
            return http_page(403, MSG_IP_LIMIT)
        count, _ = self._ip_windows.add(ip, 1, int(self.ip_window_ms))
        self.stats.window_count("ip", count, refused=count > int(self.ip_limit))
        if count <= int(self.ip_limit):
            return None
        if self.ip_ban_seconds:
            with self._bans_lock:
                self._bans[ip] = now + int(self.ip_ban_seconds) * 1000
            self.stats.bump("ip_bans", ip)
        return http_page(403, MSG_IP_LIMIT)

    def _limit_headers(self, limit: int, count: int, reset_ms: int) -> list[tuple[str, str]]:
        return [
            ("X-Bapi-Limit", str(limit)),
            ("X-Bapi-Limit-Status", str(max(limit - count, 0))),
            ("X-Bapi-Limit-Reset-Timestamp", str(reset_ms)),
        ]

    def _count(self, uid: Any, spec: Endpoint, now: int):
        """Count a signed call for the UID and endpoint; -> (10006 or None, limit headers)."""
        limit = self.uid_limits.get(spec.path)
        if limit is None:
            return None, []
        count, end = self._uid_windows.add((uid, spec.path), 1, int(self.uid_window_ms))
        refused = count > limit
        self.stats.window_count(spec.path, count, refused=refused)
        # §10: the reset is when the window ends if exceeded, otherwise about now.
        headers = self._limit_headers(limit, count, end + int(self.clock_offset_ms) if refused else now)
        return (error(CODE_RATE, MSG_RATE, now, headers) if refused else None), headers

    # -- dispatch --

    def internal_error(self) -> SandboxResponse:
        return error(CODE_SERVER, MSG_INTERNAL, self.now_ms())

    def _front_faults(self, faults: Mapping[str, Any], spec: Endpoint, now: int) -> SandboxResponse | None:
        if faults["restricted_location"]:
            return http_page(
                403, "The request could not be satisfied: access from your region is restricted."
            )
        if faults["rate_limited"] == "ip":
            return http_page(403, MSG_IP_LIMIT)
        if faults["rate_limited"]:
            limit = self.uid_limits.get(spec.path, 10)
            return error(CODE_RATE, MSG_RATE, now, self._limit_headers(limit, limit + 1, now + 1000))
        if faults["server_timeout"]:
            return error(CODE_TIMEOUT, MSG_TIMEOUT, now)
        if faults["maintenance"] and spec.path != SYSTEM_STATUS:
            return error(CODE_SERVER, MSG_SERVER, now)  # E9 itself tells the maintenance
        return None

    def dispatch(self, request: SandboxRequest, faults: Mapping[str, Any], active: bool) -> SandboxResponse:
        """Answer one Bybit request, after the kit's latency and http_status faults."""
        refused = self._ip_refusal(request.client_ip)
        if refused is not None:
            return refused
        # DOCS error "HTTP Code": 400 for a method other than GET/POST, 403 for a GET with a body.
        if request.method not in ("GET", "POST"):
            return http_page(400)
        if request.method == "GET" and request.has_body:
            return http_page(403)
        found = self.routes.match(request.method, request.path)
        if found.handler is None:
            return http_page(404)  # DOCS error: 404 for a wrong path (Choice: and method)
        spec = self._specs[(request.method, request.path)]
        now = self.now_ms()
        front = self._front_faults(faults, spec, now) if active else None
        if front is not None:
            return front
        site = site_of(request.host, self.host)
        api_key, entry, headers = "", None, []
        if spec.private:
            auth = self._authenticate(request, site, now)
            if isinstance(auth, SandboxResponse):
                return auth
            api_key, entry = auth
            refusal, headers = self._count(entry.get("uid"), spec, now)
            if refusal is not None:
                return refusal
        values = self._values(request)
        if values is None:
            response = error(CODE_PARAMS, MSG_BODY, now)
        else:
            maintenance = bool(active and faults["maintenance"])
            call = Call(request, values, now, site, api_key, entry, maintenance)
            result = getattr(self, spec.handler)(call)
            response = (
                result if isinstance(result, SandboxResponse) else envelope(0, spec.ret_msg, result, now)
            )
        response.headers.extend(headers)
        return response

    @staticmethod
    def _values(request: SandboxRequest) -> dict[str, Any] | None:
        """GET: the query, decoded (Choice: the first of repeated names). POST: the JSON body
        (Choice: an empty body is ``{}``); None when the body is not a JSON object."""
        if request.method == "GET":
            values: dict[str, Any] = {}
            for name, value in request.params:
                values.setdefault(name, value)
            return values
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # -- authentication (§2, §4, §6, §9.2) --

    def _authenticate(
        self, request: SandboxRequest, site: str | None, now: int
    ) -> tuple[str, dict[str, Any]] | SandboxResponse:
        """Check a signed request; returns (API key, entry) or Bybit's answer.

        Order (§9.2: not documented): headers present (HTTP 401), key known on this site
        (10003), timestamp (10002), signature (10004), caller IP (10010), expiry (33004). The
        endpoint's own permission (10005) is the handler's.
        """
        auth = auth_headers(request)
        if auth is None:
            return http_page(401, MSG_NO_AUTH)
        entry = self.accounts.get(auth.api_key)
        if not isinstance(entry, dict) or entry.get("site", "global") != site:
            return error(CODE_KEY, MSG_KEY, now)  # §1: another site's key looks unknown
        late = timing_error(auth, now)
        if late is not None:
            return error(*late, now)
        # §2 step 2/3: the raw query (GET) or the raw body (POST), as received. Choice: a
        # POST's query string is not signed (Bybit signs the body only).
        payload = request.body if request.method == "POST" else request.query.encode("latin-1")
        message = prehash(auth.timestamp, auth.api_key, auth.recv_window, payload)
        if not signature_ok(entry, message, auth.signature):
            return error(CODE_SIGN, MSG_SIGN.format(payload.decode("utf-8", "replace")), now)
        if ip_bound(entry) and not ip_allowed(request.client_ip, entry.get("ips", [])):
            return error(CODE_IP, MSG_IP, now)
        if self.expired(auth.api_key, entry):
            return error(CODE_EXPIRED, MSG_EXPIRED, now)
        return auth.api_key, entry
