"""Bybit's request security for the Bybit sandbox: error texts and envelopes, the signature
checker (HMAC and RSA keys) and the timestamp window.

Part of ``exchanges.venues.bybit.sandbox`` (import from there); split out to keep modules
short. Facts and sources are in shared/bybit-api.md (§ numbers refer to it); where no source
says what Bybit does, the choice is marked ``Choice:``. Standard library, plus
``cryptography`` only for RSA keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from exchanges.venues.kit.sandbox import HTML_CONTENT_TYPE, SandboxRequest, SandboxResponse, json_response

# §9.1: ``Content-Type: application/json; charset=utf-8`` in a captured answer (ccxt#15609).
JSON_TYPE = "application/json; charset=utf-8"

RECV_WINDOW_DEFAULT_MS = 5000  # §2 step 1
AHEAD_LIMIT_MS = 1000  # §4: server_time - recv_window <= timestamp < server_time + 1000

# --- retCodes and texts (§9.2) ----------------------------------------------------------------
MSG_KEY = "API key is invalid."  # 10003 (live text; the docs add the 4 environments)
# 10004 (2026 text; Bybit masks the timestamp + key + window prefix of what it hashed)
MSG_SIGN = "Error sign, please check your signature generation algorithm: origin_string[***{}]"
MSG_TIMESTAMP = (  # 10002
    "invalid request, please check your server timestamp or recv_window param. "
    "req_timestamp[{}],server_timestamp[{}],recv_window[{}]"
)
MSG_IP = "Unmatched IP, please check your API key's bound IP addresses."  # 10010
MSG_PERMISSION = "Permission denied, please check your API key permissions."  # 10005
MSG_EXPIRED = "Your api key has expired."  # 33004
MSG_RATE = "Too many visits!"  # 10006
MSG_SERVER = "System error. Please try again later."  # 10016
MSG_INTERNAL = "Server error."  # 10016
MSG_TIMEOUT = "Server Timeout"  # 10000
MSG_NO_AUTH = "Need to put authentication params in the request header"  # HTTP 401 (DOCS error)
MSG_IP_LIMIT = "access too frequent"  # HTTP 403 (§10)
MSG_NOT_SYMBOLS = "Not supported symbols"  # 10001 (CCXT broad comment)
MSG_ACCOUNT_TYPE = "accountType only support UNIFIED"  # 10001 (hummingbot#7278)
# Choice (not in the facts file): the texts of these 10001s.
MSG_ILLEGAL = "Illegal {}"
MSG_EMPTY = "params error: {} can not be empty"
MSG_BODY = "request body is not a JSON object"

CODE_PARAMS = 10001
CODE_TIMESTAMP = 10002
CODE_KEY = 10003
CODE_SIGN = 10004
CODE_PERMISSION = 10005
CODE_RATE = 10006
CODE_IP = 10010
CODE_SERVER = 10016
CODE_TIMEOUT = 10000
CODE_EXPIRED = 33004


# --- envelopes (§5, §9.1) ---------------------------------------------------------------------


def envelope(code: int, msg: str, result: object, now_ms: int, headers=None) -> SandboxResponse:
    """``{"retCode","retMsg","result","retExtInfo":{},"time"}``, HTTP 200 even for errors (§9.1)."""
    payload = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now_ms}
    return json_response(payload, 200, headers, content_type=JSON_TYPE)


def error(code: int, msg: str, now_ms: int, headers=None) -> SandboxResponse:
    return envelope(code, msg, {}, now_ms, headers)  # result {} (§9.1)


# Choice: real HTTP errors (§9.1: no Bybit envelope) come as the gateway's page, Openresty's.
_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n{text}<hr><center>openresty</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def http_page(status: int, message: str = "") -> SandboxResponse:
    reason = BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
    body = _PAGE.format(status=status, reason=reason, text=f"<p>{message}</p>\r\n" if message else "")
    return SandboxResponse(status, body.encode(), HTML_CONTENT_TYPE)


# --- the signature checker (§2) ---------------------------------------------------------------


def prehash(timestamp: str, api_key: str, recv_window: str, payload: bytes | str = b"") -> bytes:
    """``timestamp + apiKey + recvWindow + payload``: plain concatenation (§2 step 2); the
    payload is the raw query (GET) or the raw body (POST), exactly as received (§2 step 3)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return f"{timestamp}{api_key}{recv_window}".encode() + data


def hmac_signature(secret: str, message: bytes | str) -> str:
    """Lower-case hex HMAC-SHA256, the secret as UTF-8 the key (§2 step 4)."""
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def hmac_ok(secret: str, message: bytes | str, signature: str) -> bool:
    """Choice: only the lower-case hex Bybit's docs and every SDK send (§15: upper case
    untested), so a client's upper-case hex is caught here."""
    expected = hmac_signature(secret, message)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def rsa_ok(public_key_pem: str, message: bytes | str, signature: str) -> bool:
    """RSA keys (§2): base64 of RSA-SHA256 with PKCS#1 v1.5 padding, checked with the public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = message.encode() if isinstance(message, str) else message
    try:
        raw = base64.b64decode(signature, validate=True)
        key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, RSAPublicKey):
            return False
        key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def signature_ok(entry: Mapping[str, object], message: bytes, signature: str) -> bool:
    """With the entry's scheme: RSA when it has an ``rsaPublicKey``, else HMAC with ``secret``."""
    if entry.get("rsaPublicKey"):
        return rsa_ok(str(entry["rsaPublicKey"]), message, signature)
    return hmac_ok(str(entry.get("secret", "")), message, signature)


# --- headers and timing -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuthHeaders:
    api_key: str
    signature: str
    timestamp: str
    recv_window: str  # as sent; "" when the header is absent


def auth_headers(request: SandboxRequest) -> AuthHeaders | None:
    """The X-BAPI-* headers (§2 step 1); None when the key, signature or timestamp is missing
    (HTTP 401, DOCS error). Choice: ``X-BAPI-RECV-WINDOW`` may be left out (§15: undocumented);
    the window is then 5000 ms and the prehash holds nothing in its place (what was sent)."""
    values = [
        request.headers.get(name, "").strip()
        for name in ("X-BAPI-API-KEY", "X-BAPI-SIGN", "X-BAPI-TIMESTAMP")
    ]
    if not all(values):
        return None
    return AuthHeaders(*values, request.headers.get("X-BAPI-RECV-WINDOW", "").strip())


_DIGITS = re.compile(r"[0-9]{1,16}")


def timing_error(auth: AuthHeaders, now_ms: int) -> tuple[int, str] | None:
    """(retCode, retMsg) when the timestamp is outside ``[server - window, server + 1 s)`` (§4);
    None when it is on time. Choice: a timestamp or window that is not digits is the same 10002
    (a window of 0 refuses everything)."""
    window = int(auth.recv_window) if _DIGITS.fullmatch(auth.recv_window) else None
    if auth.recv_window == "":
        window = RECV_WINDOW_DEFAULT_MS
    stamp = int(auth.timestamp) if _DIGITS.fullmatch(auth.timestamp) else None
    if window is None or stamp is None or not now_ms - window <= stamp < now_ms + AHEAD_LIMIT_MS:
        shown_window = auth.recv_window or str(RECV_WINDOW_DEFAULT_MS)
        return CODE_TIMESTAMP, MSG_TIMESTAMP.format(auth.timestamp, now_ms, shown_window)
    return None
