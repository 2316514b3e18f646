"""HTX sandbox: a local HTTP double of the HTX spot REST endpoints the dashboard uses.

It answers with HTX's envelopes, field names, string decimals, error codes and messages, and it
checks Signature Version 2 the way HTX does: from the parameters it *received*, the Host header
as sent and the caller's socket address. Facts and sources are in shared/htx-api.md (§ numbers
below refer to it). Where no source says what HTX does, the choice is marked ``Choice:``.

Built on the venue kit's sandbox (``exchanges.venues.kit.sandbox``: lifecycle, HTTP plumbing,
faults, stats and the test hooks); HTX's texts and endpoint handlers are in
``sandbox_endpoints``. Standard library plus ``exchanges.venues.htx.signing``; no Django. Usage::

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
import hmac
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchanges.venues.htx import signing
from exchanges.venues.htx.sandbox_endpoints import (
    FIAT_PER_USD,
    MSG_ACCESS_KEY,
    MSG_EXPIRED,
    MSG_IP,
    MSG_LOGIN_REQUIRED,
    MSG_MAINTENANCE,
    MSG_PERMISSION,
    MSG_RATE_LIMIT,
    MSG_TIME,
    MSG_VERIFY,
    SIG_INVALID,
    HtxEndpoints,
    key_permissions,
    rate_headers,
    v1_error,
    v2_error,
)
from exchanges.venues.kit import sandbox as kit
from exchanges.venues.kit.sandbox import (
    BaseSandbox,
    FixedWindows,
    SandboxRequest,
    SandboxResponse,
    html_page,
    ip_allowed,
)

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

DATA_DIR = Path(__file__).resolve().with_name("sandbox_data")
DEFAULT_ACCOUNTS_PATH = DATA_DIR / "accounts.json"
DEFAULT_TICKERS_PATH = DATA_DIR / "tickers.json"

TIMESTAMP_WINDOW_MS = 5 * 60 * 1000  # DOCS21: "valid within 5 minutes" (§2 step 2)
RATE_LIMIT = 100  # E4, E5: 100 per 2 s per UID, "NEW" rule (§6)
RATE_LIMIT_WINDOW_MS = 2000

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

AUTH_PARAMS = (*signing.AUTH_PARAMS, "Signature")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


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


class Faults(kit.Faults):
    """The kit's switches (``latency_ms``, ``http_status``, ``malformed_json``, ``paths``) plus
    HTX's: ``maintenance`` answers system-maintenance, ``rate_limited`` HTX's rate-limit error
    and headers. Read and set as attributes or items::

        sb.faults.latency_ms = 300
        sb.faults["maintenance"] = True
        sb.faults.update(http_status=502, paths=["/v1/account"])
        sb.faults.clear()
    """

    __slots__ = ()

    DEFAULTS = {
        "latency_ms": 0,  # sleep before answering
        "http_status": None,  # e.g. 502: answer that status with a gateway-style HTML page
        "maintenance": False,  # answer system-maintenance
        "rate_limited": False,  # answer base-request-exceed-frequency-limit
        "malformed_json": False,  # HTTP 200 with the JSON answer cut in half (Content-Length matches)
        "paths": None,  # list of path prefixes the faults apply to; None or [] = every HTX path
    }


FAULT_NAMES = Faults.names()


# --- the sandbox ------------------------------------------------------------------------------


class HtxSandbox(HtxEndpoints, BaseSandbox):
    """An HTX spot REST double served over HTTP on ``host:port`` (port 0 picks a free one)."""

    name = "htx-sandbox"
    key_label = "accessKey"
    key_fields = KEY_FIELDS
    faults_class = Faults

    def __init__(
        self,
        accounts: dict[str, dict[str, Any]],
        tickers: list[dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(accounts, host, port)
        self.tickers = tickers
        # Not HTX knobs: raise them for load tests (100 per 2 s is HTX's figure for E4/E5).
        self.rate_limit = RATE_LIMIT
        self.rate_limit_window_ms = RATE_LIMIT_WINDOW_MS
        self._windows = FixedWindows()
        # E7 fiat conversion (see FIAT_PER_USD); replace or edit for a test.
        self.fiat_per_usd = dict(FIAT_PER_USD)
        for path, handler in (
            ("/v1/common/timestamp", self._timestamp),
            ("/market/tickers", self._tickers),
            ("/v2/user/uid", self._uid),
            ("/v2/user/api-key", self._api_key),
            ("/v1/account/accounts", self._accounts),
            ("/v1/account/accounts/{account-id}/balance", self._balance),
            ("/v2/account/asset-valuation", self._asset_valuation),
        ):
            self.routes.add("GET", path, handler)
        self.routes.add("POST", "/v1/order/orders/{order-id}/submitcancel", self._submitcancel)

    # -- rate windows and keys --

    def reset_rate_limits(self) -> None:
        self._windows.clear()
        super().reset_rate_limits()

    def _take(self, uid: int, endpoint: str) -> tuple[bool, int, int]:
        """Count one call in the fixed window of (uid, endpoint); -> allowed, remain, expire."""
        # Windows run on real time, so moving clock_offset_ms does not stretch or cut them;
        # the expiry is reported in server time like every other timestamp.
        limit = int(self.rate_limit)
        count, end = self._windows.add((uid, endpoint), 1, int(self.rate_limit_window_ms))
        self.stats.window_count(endpoint, count, refused=count > limit)
        return count <= limit, max(limit - count, 0), end + int(self.clock_offset_ms)

    def _count(self, uid: int, endpoint: str) -> None:
        """Count a call of an endpoint whose limit the sandbox does not enforce (E2, E3), so
        load tests can still compare the busiest window with HTX's limit (``stats``)."""
        count, _ = self._windows.add((uid, endpoint), 1, int(self.rate_limit_window_ms))
        self.stats.window_count(endpoint, count, refused=False)

    def prepare_key_update(self, key: str, entry: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        """The kit's type checks, accounts that each have an id, and ``updateTime`` set to the
        server time, as HTX does when a key is edited."""
        changes = super().prepare_key_update(key, entry, fields)
        accounts = changes.get("accounts")
        if accounts is not None and not all(isinstance(a, dict) and "id" in a for a in accounts):
            raise ValueError("accounts must be a list of objects, each with an id")
        return {**changes, "updateTime": self.now_ms()}

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

    def internal_error(self) -> SandboxResponse:
        response = v1_error("base-system-error", "System internal error")
        response.status = 500
        return response

    def dispatch(self, request: SandboxRequest, faults: Mapping[str, Any], active: bool) -> SandboxResponse:
        """Answer one HTX request, after the kit's latency and http_status faults."""
        # "GET request: all parameters are included in URL, and do not carry body
        # (content-length>0), otherwise will return 403" (DOCS, quoted in huobi-php#10). It comes
        # from the gateway in front of the API, so the page is HTML, not an HTX envelope.
        if request.method == "GET" and request.has_body:
            return html_page(403)

        found = self.routes.match(request.method, request.path)
        if found.handler is None:
            # DOCS21 FAQ Q10: a wrong path answers HTTP 405 method-not-allowed. Choice: the same
            # answer for a known path called with another method; no source gives the err-msg,
            # so it is Spring's wording (HTX's API is a Java service).
            response = v1_error("method-not-allowed", f"Request method '{request.method}' not supported")
            response.status = 405
            if found.allowed:
                response.headers.append(("Allow", ", ".join(found.allowed)))
            return response

        v2 = request.path.startswith("/v2/")
        if active and faults["maintenance"]:
            # Choice: v2 paths answer v2 code 500 ("error / System error" in DOCS' v2 status
            # table) with the v1 maintenance text; v1 and market paths answer CCXT's sample.
            if v2:
                return v2_error(500, MSG_MAINTENANCE)
            return v1_error("system-maintenance", MSG_MAINTENANCE)
        if active and faults["rate_limited"]:
            # The limiter sits in front of the endpoints, so every path answers the v1 code.
            expire = self.now_ms() + int(self.rate_limit_window_ms)
            return v1_error(
                "base-request-exceed-frequency-limit",
                MSG_RATE_LIMIT,
                headers=rate_headers(0, expire),
            )
        return found.handler(request, *found.args)

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
            return v1_error("login-required", MSG_LOGIN_REQUIRED)

        access_key = first["AccessKeyId"]
        entry = self.accounts.get(access_key)
        if not isinstance(entry, dict):
            return v1_error(SIG_INVALID, MSG_ACCESS_KEY)

        stamp = first["Timestamp"]
        if not _TIMESTAMP_RE.fullmatch(stamp):
            return v1_error(SIG_INVALID, MSG_TIME)
        try:
            sent_ms = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) * 1000
        except ValueError:
            return v1_error(SIG_INVALID, MSG_TIME)
        if abs(self.now_ms() - sent_ms) > TIMESTAMP_WINDOW_MS:
            return v1_error(SIG_INVALID, MSG_TIME)

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
            return v1_error(SIG_INVALID, MSG_VERIFY)

        if entry.get("status") == "expired" or entry.get("validDays") == 0:
            return v1_error(SIG_INVALID, MSG_EXPIRED)
        if not ip_allowed(request.client_ip, str(entry.get("ipAddresses") or "").split(",")):
            return v1_error(SIG_INVALID, MSG_IP.format(ip=request.client_ip))
        # Every endpoint served here needs Read; readOnly is mandatory on real keys (§7).
        if "readOnly" not in key_permissions(entry):
            return v1_error(SIG_INVALID, MSG_PERMISSION)
        return access_key, entry
