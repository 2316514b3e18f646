"""Binance's request security for the Binance sandbox: error texts and envelopes, the signature
checker, and the parameter and timing rules.

Part of ``exchanges.venues.binance.sandbox`` (import from there); split out to keep modules
short. Facts and sources are in shared/binance-api.md (§ numbers refer to it); where no source
says what Binance does, the choice is marked ``Choice:``. Standard library, plus
``cryptography`` only for Ed25519 keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import unquote_plus

from exchanges.venues.kit.sandbox import SandboxRequest, SandboxResponse, json_response, parse_query

# Binance's Content-Type for JSON answers (seen in captured responses, e.g. ccxt/ccxt#18653).
JSON_TYPE = "application/json;charset=UTF-8"

RECV_WINDOW_DEFAULT_MS = 5000  # §2 step 2
RECV_WINDOW_MAX_MS = 60000
AHEAD_LIMIT_MS = 1000  # §2 step 8: timestamp < serverTime + 1000
# Choice: a timestamp of 10^14 or more is in microseconds (§2 step 2 allows µs; ms timestamps
# stay below 10^14 until the year 5138, µs ones are above it since 1973).
MICROSECONDS_FROM = 10**14

# --- error texts (§7.2; errors.md) ------------------------------------------------------------
MSG_KEY_FORMAT = "API-key format invalid."  # -2014
MSG_REJECTED = "Invalid API-key, IP, or permissions for action."  # -2015
# -2015 with the caller's address (§7.2, ccxt/ccxt#16844): the final "." becomes the suffix.
MSG_REJECTED_IP = "Invalid API-key, IP, or permissions for action, request ip: {ip}"
MSG_SIGNATURE = "Signature for this request is not valid."  # -1022
MSG_OUTSIDE_WINDOW = "Timestamp for this request is outside of the recvWindow."  # -1021
MSG_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."  # -1021
MSG_MANDATORY = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."  # -1102
MSG_TOO_GREAT = "'{}' contains unexpected value. Cannot be greater than {}."  # -1102 (2025-01-15)
MSG_ILLEGAL = "Illegal characters found in parameter '{}'; legal range is '{}'."  # -1100
MSG_DUPLICATE = "Duplicate values for a parameter detected."  # -1101
MSG_NOT_READ = "Not all sent parameters were read; read '{}' parameter(s) but was sent '{}'."  # -1104
MSG_NOT_VALID = "Data sent for parameter '{}' is not valid."  # -1130
MSG_SYMBOL = "Invalid symbol."  # -1121
MSG_NO_MARGIN = "Margin account does not exist."  # -3003
# -1003 (§7.2). Choice: the interval is written "1 MINUTE", as in the texts ccxt quotes.
MSG_RATE = (
    "Too much request weight used; current limit is {} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
MSG_BANNED = (
    "Way too much request weight used; IP banned until {}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)
MSG_UNKNOWN = "An unknown error occurred while processing the request."  # -1000
MSG_INTERNAL = "Internal error; unable to process your request. Please try again."  # -1001
MSG_OVERLOADED = (  # -1008
    "Server is currently overloaded with other requests. Please try again in a few minutes."
)
MSG_RESTRICTED = (  # code 0, HTTP 451 (§1)
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)
# Choice (not in the facts file): errors.md's texts for these codes.
MSG_STATUS_MISMATCH = "The symbol's status does not match the requested symbolStatus."  # -1220
MSG_COMBINATION = "Combination of optional parameters invalid."  # -1128

_DIGITS = "^[0-9]{1,20}$"
_DIGITS_RE = re.compile(r"[0-9]{1,20}")
_RECV_WINDOW_RE = re.compile(r"[0-9]{1,20}(\.[0-9]{1,3})?")  # up to three decimals (§2 step 2)
_KEY_RE = re.compile(r"[A-Za-z0-9]{64}")  # §7.2: "not 64 alphanumerics" is -2014
SIGNED_PARAMS = ("timestamp", "recvWindow", "signature")


# --- envelopes --------------------------------------------------------------------------------


def error(code: int, msg: str, status: int = 400, headers: list[tuple[str, str]] | None = None):
    """Binance's error envelope ``{"code":<int>,"msg":"<text>"}`` (§7.1)."""
    return json_response({"code": code, "msg": msg}, status, headers, content_type=JSON_TYPE)


def ok(payload: object, headers: list[tuple[str, str]] | None = None) -> SandboxResponse:
    return json_response(payload, 200, headers, content_type=JSON_TYPE)


def restricted_location() -> SandboxResponse:
    # §1: HTTP 451, code 0, pretty-printed. Choice: two-space indentation.
    body = json.dumps({"code": 0, "msg": MSG_RESTRICTED}, indent=2).encode()
    return SandboxResponse(451, body, JSON_TYPE)


def rejected(ip: str | None = None) -> SandboxResponse:
    """-2015, HTTP 401 (§7.2); with the caller's address when ``ip`` is given."""
    return error(-2015, MSG_REJECTED_IP.format(ip=ip) if ip else MSG_REJECTED, 401)


# --- the signature checker (§2) ---------------------------------------------------------------


def signed_payload(query: str | bytes, body: str | bytes = b"") -> tuple[bytes, list[str]]:
    """(payload, signatures): the raw query string concatenated without separator to the raw
    body, each with its ``signature=`` parameters taken out and nothing else changed (§2 step
    4: no sorting, no decoding, no method/host/path), and the signature values as sent.

    ``str`` arguments are taken as UTF-8; the sandbox passes the exact bytes it received.
    """
    signatures: list[str] = []

    def strip(raw: str | bytes) -> bytes:
        data = raw.encode() if isinstance(raw, str) else raw
        if not data:
            return b""
        kept = []
        for part in data.split(b"&"):
            name, _, value = part.partition(b"=")
            if name == b"signature":
                signatures.append(value.decode("latin-1"))
            else:
                kept.append(part)
        return b"&".join(kept)

    return strip(query) + strip(body), signatures


def hmac_signature(secret: str, payload: bytes | str) -> str:
    """Lower-case hex HMAC-SHA256 of the payload with the secret as UTF-8 (§2 step 5)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def hmac_ok(secret: str, payload: bytes | str, signature: str) -> bool:
    """Does the signature (as sent: hex, either case, §2 step 5) sign the payload?"""
    sent = unquote_plus(signature).lower()
    return hmac.compare_digest(hmac_signature(secret, payload).encode(), sent.encode("utf-8", "replace"))


def ed25519_ok(public_key_pem: str, payload: bytes | str, signature: str) -> bool:
    """Ed25519 keys (§2.1): ``base64(Ed25519-sign(payload))``, percent-encoded on the wire."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = payload.encode() if isinstance(payload, str) else payload
    try:
        raw = base64.b64decode(unquote_plus(signature), validate=True)
        key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            return False
        key.verify(raw, data)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def signature_ok(entry: Mapping[str, object], payload: bytes, signature: str) -> bool:
    """Check a signature with the key entry's scheme: HMAC with ``secret``, or Ed25519 with
    ``publicKeyPem`` when ``keyType`` is ``ED25519``."""
    if str(entry.get("keyType", "HMAC")).upper() == "ED25519":
        return ed25519_ok(str(entry.get("publicKeyPem", "")), payload, signature)
    return hmac_ok(str(entry.get("secret", "")), payload, signature)


# --- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    values: dict[str, str]  # decoded; a name sent in both places has the query's value (§1)
    names: tuple[str, ...]  # every distinct name received, query first
    payload: bytes  # what the signature must sign
    signatures: tuple[str, ...]


def body_params(request: SandboxRequest) -> bool:
    """Is the body a form? (§1: POST parameters may be an x-www-form-urlencoded body.)
    Choice: a body without a Content-Type is read as a form too."""
    media = request.content_type.split(";", 1)[0].strip().lower()
    return request.has_body and media in ("", "application/x-www-form-urlencoded")


def read_params(request: SandboxRequest) -> Params | SandboxResponse:
    """The request's parameters from the query string and a form body, or -1101."""
    query = parse_query(request.query)
    body = parse_query(request.body.decode("utf-8", "replace")) if body_params(request) else []
    # Choice: a name repeated within the query or within the body is -1101; a name in both
    # places is not (§1: the query's value wins).
    for pairs in (query, body):
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)):
            return error(-1101, MSG_DUPLICATE)
    values = dict(body)
    values.update(query)
    names = tuple(dict.fromkeys([n for n, _ in query] + [n for n, _ in body]))
    payload, signatures = signed_payload(request.query.encode("latin-1"), request.body)
    return Params(values, names, payload, tuple(signatures))


def unread(params: Params, accepted: tuple[str, ...]) -> SandboxResponse | None:
    """-1104 when a parameter is not one the endpoint reads (§7.2)."""
    read = [name for name in params.names if name in accepted]
    if len(read) == len(params.names):
        return None
    return error(-1104, MSG_NOT_READ.format(len(read), len(params.names)))


def check_timing(params: Params, now_ms: int) -> SandboxResponse | None:
    """``timestamp``/``recvWindow`` (§2 steps 2 and 8, §9): None when the request is on time."""
    values = params.values
    window_text = values.get("recvWindow")
    window = Decimal(RECV_WINDOW_DEFAULT_MS)
    if window_text is not None:
        if not _RECV_WINDOW_RE.fullmatch(window_text):
            return error(-1100, MSG_ILLEGAL.format("recvWindow", "^[0-9]{1,20}(\\.[0-9]{1,3})?$"))
        window = Decimal(window_text)  # the pattern admits decimals only
        if window > RECV_WINDOW_MAX_MS:
            return error(-1102, MSG_TOO_GREAT.format("recvWindow", RECV_WINDOW_MAX_MS))
    stamp = values.get("timestamp", "")
    if not _DIGITS_RE.fullmatch(stamp):
        return error(-1100, MSG_ILLEGAL.format("timestamp", _DIGITS))
    sent_us = int(stamp) if int(stamp) >= MICROSECONDS_FROM else int(stamp) * 1000
    now_us = now_ms * 1000
    if sent_us >= now_us + AHEAD_LIMIT_MS * 1000:
        return error(-1021, MSG_AHEAD)
    if now_us - sent_us > window * 1000:
        return error(-1021, MSG_OUTSIDE_WINDOW)
    return None


def api_key_of(request: SandboxRequest) -> str | None:
    """The ``X-MBX-APIKEY`` header (§1) when it is 64 alphanumerics, else None (-2014)."""
    key = request.headers.get("X-MBX-APIKEY", "").strip()
    return key if _KEY_RE.fullmatch(key) else None


def mandatory(params: Params, *names: str) -> SandboxResponse | None:
    """-1102 for the first of ``names`` not sent or empty."""
    for name in names:
        if not params.values.get(name):
            return error(-1102, MSG_MANDATORY.format(name))
    return None
