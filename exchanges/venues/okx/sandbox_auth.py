"""OKX's request security for the OKX sandbox: error texts and envelopes, sites from the Host
header, the timestamp rules and the signature checker.

Part of ``exchanges.venues.okx.sandbox`` (import from there); split out to keep modules short.
Facts and sources are in shared/okx-api.md (§ numbers refer to it); where no source says what
OKX does, the choice is marked ``Choice:``. Standard library only: the sandbox checks
signatures itself, independently of the venue's client.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import time

from exchanges.venues.kit.sandbox import SandboxRequest, SandboxResponse, json_response

# Choice: OKX's answers are read as plain JSON; no source shows the exact Content-Type.
JSON_TYPE = "application/json"

TIMESTAMP_WINDOW_MS = 30_000  # §2 step 2: more than 30 s from the server's clock is 50102

# --- error texts (§5.2; live texts where a live answer is quoted, else the DOCS table) --------
MSG_KEY_EMPTY = "Request header OK-ACCESS-KEY can not be empty."  # 50103 (ccxt#15895, live)
MSG_PASSPHRASE_EMPTY = 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.'  # 50104
MSG_SIGN_EMPTY = 'Request header "OK-ACCESS-SIGN" cannot be empty.'  # 50106
MSG_TIMESTAMP_EMPTY = 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.'  # 50107
MSG_KEY_INVALID = "Invalid OK-ACCESS-KEY"  # 50111
MSG_KEY_UNKNOWN = "API key doesn't exist"  # 50119: unknown, deleted, expired, other site
MSG_PASSPHRASE = "Request header OK-ACCESS-PASSPHRASE incorrect."  # 50105 (ccxt#22265)
MSG_SIGN = "Invalid Sign"  # 50113 (ccxt#11109: 37 bytes with its envelope)
MSG_TIMESTAMP_INVALID = "Invalid OK-ACCESS-TIMESTAMP"  # 50112
MSG_TIMESTAMP_EXPIRED = "Timestamp request expired"  # 50102
MSG_IP = "Your IP {ip} is not included in your API key's IP whitelist."  # 50110 (DOCS)
MSG_ENVIRONMENT = "APIKey does not match current environment."  # 50101
MSG_PERMISSION = "This API key doesn't have permission to use this function"  # 50120
MSG_FROZEN = "API frozen, please contact customer service."  # 50100
MSG_RATE = "Too Many Requests"  # 50011 (c9s/bbgo#1534, live 429 body)
MSG_BUSY = "Systems are busy. Please try again later."  # 50013
MSG_MAINTENANCE = "Service temporarily unavailable. Please try again later."  # 50001
MSG_SYSTEM = "System error. Try again later"  # 50026
MSG_METHOD = "Invalid request method."  # 50115
MSG_EMPTY_PARAM = "Parameter {} can not be empty."  # 50014
# Choice (no text in the facts file): OKX's wording of these codes as the DOCS table gives them.
MSG_CONTENT_TYPE = 'Invalid Content-Type, please use "application/json" format.'  # 50006
MSG_JSON = "JSON syntax error"  # 50002, HTTP 400
MSG_PARAM = "Parameter {} error"  # 51000
MSG_INSTRUMENT = "Instrument ID, Instrument ID code or Spread ID doesn't exist."  # 51001
MSG_NOT_FOUND = "Not Found"  # Choice: an unknown path (no source shows OKX's answer)

# --- sites (§1.1, §1.2) ----------------------------------------------------------------------
SITES = ("global", "eea", "us")
# The REST hosts of each site. my.okx.com answered API calls for two EEA users (§1.1) and
# openapi.okx.com is the July 2026 name of the global host (§13). Choice: any other Host,
# among them the sandbox's own address (a client pointed straight at it), is the Global site.
SITE_HOSTS = {
    "www.okx.com": "global",
    "openapi.okx.com": "global",
    "eea.okx.com": "eea",
    "my.okx.com": "eea",
    "us.okx.com": "us",
}
SITE_HOST = {"global": "www.okx.com", "eea": "eea.okx.com", "us": "us.okx.com"}


def site_of(host_header: str) -> str:
    """The site a request addressed, from its Host header (port and a final dot ignored)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return SITE_HOSTS.get(host.rstrip("."), "global")


# --- envelopes (§5.1) -------------------------------------------------------------------------


def refusal(code: str, msg: str, status: int = 401) -> SandboxResponse:
    """A gateway / authentication error as OKX sends it live: ``{"msg","code"}``, no ``data``
    (``{"msg":"API key doesn't exist","code":"50119"}`` is exactly 46 bytes, ccxt#24601)."""
    return json_response({"msg": msg, "code": code}, status, content_type=JSON_TYPE)


def failure(code: str, msg: str, status: int = 200) -> SandboxResponse:
    """A business error: ``{"code","data":[],"msg"}`` (§5.1)."""
    return json_response({"code": code, "data": [], "msg": msg}, status, content_type=JSON_TYPE)


def ok(data: list) -> SandboxResponse:
    """Success: ``{"code":"0","msg":"","data":[...]}``; ``data`` is always a list (§4)."""
    return json_response({"code": "0", "msg": "", "data": data}, 200, content_type=JSON_TYPE)


def rate_limited(code: str = "50011") -> SandboxResponse:
    return refusal(code, MSG_RATE if code == "50011" else MSG_BUSY, 429)


# --- timestamps (§2 step 2) -------------------------------------------------------------------

# ISO 8601 in UTC with a trailing Z. The fraction is not checked digit by digit (OKXNET sends
# two digits, §2 step 2), so any 1-9 digits pass. Choice: no fraction passes too; an offset
# (+00:00), a missing Z, a space for T or epoch milliseconds are unparsable (§13: unverified).
_TIMESTAMP_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")


def parse_timestamp(text: str) -> int | None:
    """Epoch milliseconds of an ``OK-ACCESS-TIMESTAMP``, or None when OKX could not parse it."""
    found = _TIMESTAMP_RE.fullmatch(text.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in found.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        return None
    if day > calendar.monthrange(year, month)[1]:
        return None
    fraction = found.group(7) or "0"
    millis = int((fraction + "00")[:3])
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) * 1000 + millis


def iso_timestamp(ms: int) -> str:
    """Epoch ms as OKX's timestamp format, ``2024-01-02T03:04:05.678Z``."""
    seconds, millis = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


# --- the signature (§2 steps 3-4) -------------------------------------------------------------


def request_target(request: SandboxRequest) -> str:
    """The path and raw query exactly as received (never decoded, sorted or rebuilt)."""
    return request.path + (f"?{request.query}" if request.query else "")


def prehash(timestamp: str, method: str, target: str, body: bytes = b"") -> bytes:
    """``timestamp + METHOD + requestPath + body`` as bytes: the request line's own bytes
    (http.server reads it as latin-1) and the body exactly as sent."""
    return timestamp.encode() + method.upper().encode() + target.encode("latin-1", "replace") + body


def signature(secret: str, message: bytes | str) -> str:
    """``Base64(HMAC-SHA256(secret as UTF-8 text, message))`` (§2 step 4)."""
    data = message.encode() if isinstance(message, str) else message
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def signature_ok(secret: str, message: bytes | str, sent: str) -> bool:
    return hmac.compare_digest(signature(secret, message).encode(), sent.encode("utf-8", "replace"))


def passphrase_ok(expected: str, sent: str) -> bool:
    """Exactly as chosen: no trimming, no case folding (§6 "Passphrase")."""
    return hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace"))


# Live keys are lower-case UUIDs (§6 "Formats"). Choice: anything else is 50111 (§13).
KEY_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SECRET_RE = re.compile(r"[0-9A-F]{32}")
