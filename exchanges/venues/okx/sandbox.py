"""OKX sandbox: a local HTTP double of the OKX REST API v5 endpoints the dashboard uses.

It answers with OKX's envelopes, string amounts, error codes and texts, and checks requests the
way OKX does (shared/okx-api.md §12; § numbers below refer to that file): the four
``OK-ACCESS-*`` headers, ``Base64(HMAC-SHA256(secret, timestamp + METHOD + request target as
received + body as received))``, the passphrase exactly, the timestamp within 30 s of the
sandbox's clock, the key's site (from the Host header), demo or live (``x-simulated-trading``),
IP binding (CIDR allowed), the 14-day rule for unbound trade/withdraw keys, and rate limits per
endpoint per User ID (private) or per IP (public). Where no source says what OKX does, the
choice is marked ``Choice:``.

**Sites.** A key works only on its own site's host (§1.2). The sandbox reads the site from the
request's Host header: ``www.okx.com`` (or ``openapi.okx.com``) Global, ``eea.okx.com`` (or
``my.okx.com``) EEA, ``us.okx.com`` US; any other Host, the sandbox's own address among them,
is Global. A client connects to ``sb.url`` and sends ``Host: eea.okx.com`` as it would through a
proxy. A key of another site answers 401 50119, like an unknown key. Ticker rows may name the
``sites`` that list them (default all three).

Built on the venue kit's sandbox (``exchanges.venues.kit.sandbox``: lifecycle, HTTP plumbing,
faults, stats and the test hooks); OKX's texts and the signature are in ``sandbox_auth``, the
data model in ``sandbox_model``, the endpoints in ``sandbox_endpoints``. Standard library; no
Django. Usage::

    sb = OkxSandbox(load_keys(), load_tickers()).start()
    ...  # talk to sb.url over HTTP
    sb.stop()

OKX endpoints served: see ``ENDPOINTS``. Test hooks (never part of OKX's API):

- faults: ``sb.faults`` / ``GET|POST|DELETE /_sandbox/faults`` (see ``Faults``).
- stats: ``sb.stats`` / ``GET|DELETE /_sandbox/stats``: requests, the busiest window per
  endpoint (``busiest_window_per_caller``: a User ID for private endpoints, an IP for public
  ones; instruments per instType) and the 429s it answered (``refused_by_rate_limit``).
- limits: ``sb.limits`` maps a path to ``(requests, window ms)``; raise them for load tests.
- clock: ``sb.clock_offset_ms`` / ``GET|POST /_sandbox/clock``. It moves E1, the timestamp
  check and the 14-day rule together.
- keys: ``sb.accounts`` (also ``sb.keys``) / ``GET|POST /_sandbox/keys/<API key>`` with
  ``KEY_FIELDS``. The entry shown (without secret and passphrase) carries
  ``lastSignedCallDaysAgo`` as of now.

Data. ``keys.json`` is an object keyed by API key (a lower-case UUID); each entry has
``secret`` (32 upper-case hex), ``passphrase``, ``note`` (starts with its scenario, e.g.
``demo: good key``), ``uid`` and ``mainUid`` (digit strings), ``site`` (global, eea, us),
``demo``, ``perm`` (``read_only,trade`` as E2 sends it), ``ip`` (comma list of addresses or
segments, "" = none), ``label``, ``acctLv``, ``type``, ``lastSignedCallDaysAgo`` (default 0),
``frozen``, ``deleted`` and the wallets: ``trading`` [{ccy, availBal, frozenBal, eq, cashBal,
any other E3 field}], ``funding`` [{ccy, availBal, frozenBal, bal}], ``savings`` [{ccy, amt,
earnings, rate, loanAmt, pendingAmt}] and ``otherEarn`` [{ccy, amt}] (Earn products other than
savings: only in E6's ``earn``). A key without a wallet shares that of another key of its uid.
``tickers.json`` is a list of spot pairs ``{instId, last, open24h, vol24h}`` with optional
``sites``, ``lever`` (listed as MARGIN too), ``state`` and any E7 field to send as given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchanges.venues.kit import sandbox as kit
from exchanges.venues.kit.sandbox import (
    BaseSandbox,
    FixedWindows,
    SandboxRequest,
    SandboxResponse,
    ip_allowed,
    json_response,
)
from exchanges.venues.okx.sandbox_auth import (
    JSON_TYPE,
    KEY_RE,
    MSG_ENVIRONMENT,
    MSG_FROZEN,
    MSG_IP,
    MSG_KEY_EMPTY,
    MSG_KEY_INVALID,
    MSG_KEY_UNKNOWN,
    MSG_MAINTENANCE,
    MSG_METHOD,
    MSG_NOT_FOUND,
    MSG_PASSPHRASE,
    MSG_PASSPHRASE_EMPTY,
    MSG_PERMISSION,
    MSG_SIGN,
    MSG_SIGN_EMPTY,
    MSG_SYSTEM,
    MSG_TIMESTAMP_EMPTY,
    MSG_TIMESTAMP_EXPIRED,
    MSG_TIMESTAMP_INVALID,
    SITE_HOST,
    SITES,
    TIMESTAMP_WINDOW_MS,
    failure,
    iso_timestamp,
    ok,
    parse_timestamp,
    passphrase_ok,
    prehash,
    rate_limited,
    refusal,
    request_target,
    signature,
    signature_ok,
    site_of,
)
from exchanges.venues.okx.sandbox_endpoints import OkxEndpoints
from exchanges.venues.okx.sandbox_model import (
    DAY_MS,
    ENDPOINTS,
    IDLE_DAYS,
    KEY_FIELDS,
    SPECS,
    SYSTEM_STATUS,
    Endpoint,
    check_key,
    check_keys,
    check_tickers,
    idle_expires,
    ip_list,
    perm_set,
)

__all__ = [
    "DEFAULT_KEYS_PATH",
    "DEFAULT_TICKERS_PATH",
    "ENDPOINTS",
    "FAULT_NAMES",
    "KEY_FIELDS",
    "SITES",
    "SITE_HOST",
    "Faults",
    "OkxSandbox",
    "check_keys",
    "iso_timestamp",
    "load_keys",
    "load_tickers",
    "parse_timestamp",
    "prehash",
    "signature",
    "signature_ok",
    "site_of",
]

DATA_DIR = Path(__file__).resolve().with_name("sandbox_data")
DEFAULT_KEYS_PATH = DATA_DIR / "keys.json"
DEFAULT_TICKERS_PATH = DATA_DIR / "tickers.json"


def load_keys(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Demo keys, keyed by API key (see sandbox_data/keys.json); refuses malformed data."""
    with open(path or DEFAULT_KEYS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    check_keys(data)
    return data


def load_tickers(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The spot pairs: ``[{"instId": "BTC-USDT", "last", "open24h", "vol24h", "sites"?}]``."""
    with open(path or DEFAULT_TICKERS_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    check_tickers(data)
    return data


# --- faults -----------------------------------------------------------------------------------


class Faults(kit.Faults):
    """The kit's switches (``latency_ms``, ``http_status`` as an HTML gateway page,
    ``malformed_json``, ``paths``) and OKX's (§5.2, §12): ``maintenance`` (503 50001; E9 then
    lists an ongoing event), ``rate_limited`` (429: true or 50011 "Too Many Requests", 50013
    "Systems are busy") and ``system_error`` (500 50026)."""

    __slots__ = ()

    DEFAULTS = {
        "latency_ms": 0,
        "http_status": None,
        "maintenance": False,
        "rate_limited": False,
        "system_error": False,
        "malformed_json": False,
        "paths": None,
    }

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        if name == "rate_limited":
            if isinstance(value, bool):
                return value
            if str(value) in ("50011", "50013"):
                return str(value)
            raise ValueError("rate_limited must be true, false, 50011 or 50013")
        return super().check(name, value)


FAULT_NAMES = Faults.names()


# --- the sandbox ------------------------------------------------------------------------------


class OkxSandbox(OkxEndpoints, BaseSandbox):
    """An OKX REST v5 double served over HTTP on ``host:port`` (port 0 picks a free one)."""

    name = "okx-sandbox"
    key_label = "apiKey"
    key_fields = KEY_FIELDS
    faults_class = Faults
    stats_per = "caller"

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
        self.keys = self.accounts  # the same dict, under OKX's word
        self.tickers = tickers
        self.started_ms = self.now_ms()
        # Server time of each key's last signed call (§6: the 14-day rule counts from it).
        self._last_call_ms: dict[str, int] = {}
        self.limits: dict[str, tuple[int, int]] = {spec.path: (spec.limit, spec.window_ms) for spec in SPECS}
        self._windows = FixedWindows()
        self._specs: dict[tuple[str, str], Endpoint] = {}
        for spec in SPECS:
            self.routes.add(spec.method, spec.path, getattr(self, spec.handler))
            self._specs[(spec.method, spec.path)] = spec

    # -- keys --

    def wallet(self, entry: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        """One wallet of the key's account. Keys of one uid see the same account, so a key may
        leave wallets out and share another key's. Default: []."""
        if name in entry:
            return list(entry[name])
        for other in list(self.accounts.values()):
            if other is not entry and other.get("uid") == entry.get("uid") and name in other:
                return list(other[name])
        return []

    def last_signed_call_ms(self, key: str) -> int:
        """When the key last made a signed call, in server time (call under ``_keys_lock``)."""
        if key not in self._last_call_ms:
            days = self.accounts[key].get("lastSignedCallDaysAgo", 0)
            self._last_call_ms[key] = self.started_ms - round(days * DAY_MS)
        return self._last_call_ms[key]

    def _idle_expired(self, key: str, entry: dict[str, Any]) -> bool:
        """The 14-day rule (§6): past 14 days without a signed call, OKX deletes the key."""
        if not idle_expires(entry):
            return False
        if self.now_ms() - self.last_signed_call_ms(key) <= IDLE_DAYS * DAY_MS:
            return False
        entry["deleted"] = True  # gone for good, even if the clock goes back
        return True

    def prepare_key_update(self, key: str, entry: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        """The kit's type checks, then the whole changed entry checked like loaded data; a new
        ``lastSignedCallDaysAgo`` counts back from the server time of the change."""
        changes = super().prepare_key_update(key, entry, fields)
        check_key(key, {**entry, **changes})
        if "lastSignedCallDaysAgo" in changes:
            self._last_call_ms[key] = self.now_ms() - round(changes["lastSignedCallDaysAgo"] * DAY_MS)
        return changes

    def _shown(self, key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        shown = super()._shown(key, entry)
        shown.pop("passphrase", None)  # a secret like the secret key (§10)
        if key in self.accounts:
            days = (self.now_ms() - self.last_signed_call_ms(key)) / DAY_MS
            shown["lastSignedCallDaysAgo"] = round(days, 6)
        return shown

    # -- limits (§4, §8) --

    def reset_rate_limits(self) -> None:
        self._windows.clear()
        super().reset_rate_limits()

    def _over_limit(self, spec: Endpoint, who: str, values: Mapping[str, str]) -> bool:
        """Count the call in its fixed window; True when it goes past the endpoint's limit."""
        bucket = spec.path + (f":{values.get(spec.by, '')}" if spec.by else "")
        limit, window_ms = self.limits.get(spec.path, (spec.limit, spec.window_ms))
        count, _ = self._windows.add((bucket, who), 1, window_ms)
        refused = count > limit
        self.stats.window_count(bucket, count, refused=refused)
        return refused

    # -- dispatch --

    def internal_error(self) -> SandboxResponse:
        return refusal("50026", MSG_SYSTEM, 500)

    def dispatch(self, request: SandboxRequest, faults: Mapping[str, Any], active: bool) -> SandboxResponse:
        """Answer one OKX request, after the kit's latency and http_status faults."""
        values: dict[str, str] = {}
        for name, value in request.params:
            values.setdefault(name, value)  # Choice: the first of a repeated parameter counts
        if active:
            if faults["maintenance"]:
                if request.path == SYSTEM_STATUS:
                    return ok(self.maintenance_event(values.get("state")))
                return refusal("50001", MSG_MAINTENANCE, 503)
            if faults["system_error"]:
                return refusal("50026", MSG_SYSTEM, 500)
            if faults["rate_limited"]:
                return rate_limited("50011" if faults["rate_limited"] is True else faults["rate_limited"])
        found = self.routes.match(request.method, request.path)
        if found.handler is None:
            if found.allowed:
                return refusal("50115", MSG_METHOD, 405)
            # Choice: no source shows OKX's answer for an unknown path.
            return json_response({"msg": MSG_NOT_FOUND, "code": "404"}, 404, content_type=JSON_TYPE)
        spec = self._specs[(request.method, request.path)]
        entry = None
        if spec.access == "public":
            # Public endpoints ignore auth headers: sending them is not "using" the key (§2 step 5).
            if self._over_limit(spec, request.client_ip, values):
                return rate_limited()
        else:
            auth = self._authenticate(request)
            if isinstance(auth, SandboxResponse):
                return auth
            key, entry = auth
            if spec.access == "trade" and "trade" not in perm_set(str(entry.get("perm", ""))):
                return failure("50120", MSG_PERMISSION)  # DOCS: HTTP 200 (§5.2)
            if self._over_limit(spec, str(entry["uid"]), values):
                return rate_limited()  # private limits are per User ID (§4)
            with self._keys_lock:
                self._last_call_ms[key] = self.now_ms()  # a signed call OKX accepted (§6)
        return found.handler(request, values, entry)

    # -- authentication (§2, §5.2) --

    def _authenticate(self, request: SandboxRequest) -> tuple[str, dict[str, Any]] | SandboxResponse:
        """Check a signed request; returns (API key, entry) or OKX's refusal.

        Order (Choice; §13: OKX's is not documented): headers present, key format, timestamp,
        key known on this site (unknown, deleted, idle 14 days, other site: all 50119), demo
        or live, passphrase, signature, caller IP, frozen.
        """
        headers = request.headers
        api_key = headers.get("OK-ACCESS-KEY", "")
        sent_passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
        sent_sign = headers.get("OK-ACCESS-SIGN", "")
        stamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        for sent, code, msg in (
            (api_key, "50103", MSG_KEY_EMPTY),
            (sent_passphrase, "50104", MSG_PASSPHRASE_EMPTY),
            (sent_sign, "50106", MSG_SIGN_EMPTY),
            (stamp, "50107", MSG_TIMESTAMP_EMPTY),
        ):
            if not sent.strip():
                return refusal(code, msg)
        if not KEY_RE.fullmatch(api_key):
            return refusal("50111", MSG_KEY_INVALID)
        sent_ms = parse_timestamp(stamp)
        if sent_ms is None:
            return refusal("50112", MSG_TIMESTAMP_INVALID)
        if abs(self.now_ms() - sent_ms) > TIMESTAMP_WINDOW_MS:
            return refusal("50102", MSG_TIMESTAMP_EXPIRED)
        with self._keys_lock:
            entry = self.accounts.get(api_key)
            if (
                not isinstance(entry, dict)
                or entry.get("deleted")
                or entry.get("site") != site_of(request.host)
                or self._idle_expired(api_key, entry)
            ):
                return refusal("50119", MSG_KEY_UNKNOWN)
        demo_call = headers.get("x-simulated-trading", "").strip() == "1"
        if bool(entry.get("demo")) != demo_call:
            return refusal("50101", MSG_ENVIRONMENT)
        if not passphrase_ok(str(entry["passphrase"]), sent_passphrase):
            return refusal("50105", MSG_PASSPHRASE)
        message = prehash(stamp, request.method, request_target(request), request.body)
        if not signature_ok(str(entry["secret"]), message, sent_sign):
            return refusal("50113", MSG_SIGN)
        if not ip_allowed(request.client_ip, ip_list(str(entry.get("ip", "")))):
            return refusal("50110", MSG_IP.format(ip=_shown_ip(request.client_ip)))
        if entry.get("frozen"):
            return refusal("50100", MSG_FROZEN, 400)
        return api_key, entry


def _shown_ip(client_ip: str) -> str:
    """The caller's address as OKX would see it (an IPv4-mapped IPv6 peer as IPv4)."""
    return client_ip.removeprefix("::ffff:") if "." in client_ip else client_ip
