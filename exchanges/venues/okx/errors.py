"""OKX's answers decoded into the kit's neutral error kinds (okx-api.md §5).

OKX's body ``code`` is the answer and the HTTP status only a hint (as ccxt decodes it): live
texts drift over the years, so nothing here branches on ``msg``, except the word "maintenance".
A body that is not OKX's JSON (a Cloudflare page, an empty or cut-short answer) is a temporary
issue. Anything not recognised is UNKNOWN, which is transient: an answer we do not understand
is never a verdict on a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import InvalidOperation
from typing import Any

from exchanges.venues.kit.errors import TRANSIENT_KINDS, ErrorKind, VenueError

__all__ = ["TRANSIENT_KINDS", "ErrorKind", "OkxError", "classify", "decode", "parsing", "request_ip"]

# OKX's words for its one ambiguous refusal, kept in every 50119 message (§1.2, §5.2).
AMBIGUOUS_50119 = (
    "OKX says this for a key of another OKX site, a mistyped key, a key deleted on OKX, and a key "
    "OKX deleted after 14 days without use"
)


class OkxError(VenueError):
    venue = "OKX"

    def __init__(self, kind: ErrorKind, *, status: int | None = None, **kwargs: Any):
        super().__init__(kind, **kwargs)
        self.status = status  # the HTTP status, when OKX answered
        # The address OKX saw the request come from, when its message names it (50110).
        self.ip = request_ip(self.message)


_CODES: dict[str, ErrorKind] = {
    # The key and its credentials.
    "50103": ErrorKind.INVALID_ACCESS_KEY,  # OK-ACCESS-KEY header empty
    "50111": ErrorKind.INVALID_ACCESS_KEY,  # malformed key
    "50119": ErrorKind.INVALID_ACCESS_KEY,  # unknown here: other site, deleted, expired, mistyped
    "50104": ErrorKind.INVALID_PASSPHRASE,  # OK-ACCESS-PASSPHRASE header empty
    "50105": ErrorKind.INVALID_PASSPHRASE,
    "50106": ErrorKind.INVALID_SIGNATURE,  # OK-ACCESS-SIGN header empty
    "50113": ErrorKind.INVALID_SIGNATURE,  # wrong secret (or the passphrase pasted as secret)
    "50114": ErrorKind.INVALID_SIGNATURE,  # invalid authorization
    "50110": ErrorKind.IP_NOT_ALLOWED,
    "50101": ErrorKind.WRONG_ENVIRONMENT,  # a demo-trading key on live, or the reverse
    "50120": ErrorKind.NO_PERMISSION,
    "50035": ErrorKind.NO_PERMISSION,  # the endpoint needs an IP-bound key
    "50100": ErrorKind.FORBIDDEN,  # API frozen
    "50007": ErrorKind.FORBIDDEN,  # user blocked
    "50009": ErrorKind.FORBIDDEN,  # account frozen by stop-out
    # Our clock, corrected once inside the client before it ever reaches a user.
    "50102": ErrorKind.INVALID_TIMESTAMP,
    "50107": ErrorKind.INVALID_TIMESTAMP,  # OK-ACCESS-TIMESTAMP header empty
    "50112": ErrorKind.INVALID_TIMESTAMP,  # unparsable timestamp
    # OKX in trouble.
    "50011": ErrorKind.RATE_LIMITED,
    "50061": ErrorKind.RATE_LIMITED,  # sub-account rate limit
    "50013": ErrorKind.RATE_LIMITED,  # "Systems are busy"
    "50001": ErrorKind.UNAVAILABLE,  # "Service temporarily unavailable"
    "50004": ErrorKind.UNAVAILABLE,  # endpoint request timeout
    "50005": ErrorKind.UNAVAILABLE,  # endpoint offline
    "50026": ErrorKind.UNAVAILABLE,  # "System error"
}
# Codes that mean "this key may not read that wallet" on a wallet endpoint: no permission, or
# "This feature is unavailable in demo trading" (50038).
WALLET_REFUSALS = frozenset({"50120", "50035", "50038"})

_MESSAGE_IP = re.compile(r"\bIP\s+([0-9A-Fa-f][0-9A-Fa-f.:/]*)", re.IGNORECASE)
_REQUEST_IP = re.compile(r"request ip:\s*([0-9A-Fa-f.:]+)\s*$", re.IGNORECASE)
MAX_MESSAGE = 300


def request_ip(message: str) -> str | None:
    """The caller address at the end of ``…, request ip: 1.2.3.4``, if the message has one."""
    found = _REQUEST_IP.search(message or "")
    return found.group(1).rstrip(".") if found else None


def _named_ip(message: str) -> str | None:
    """The address in OKX's "Your IP 1.2.3.4 is not included in your API key's … whitelist"."""
    for found in _MESSAGE_IP.finditer(message):
        candidate = found.group(1).rstrip(".")
        if "." in candidate or ":" in candidate:
            return candidate
    return None


def classify(status: int, code: str | None, message: str) -> ErrorKind:
    if "maintenance" in (message or "").lower():
        return ErrorKind.MAINTENANCE
    if code is not None and code in _CODES:
        return _CODES[code]
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status >= 500:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.UNKNOWN


def retry_after_seconds(headers: Mapping[str, str] | Any) -> float:
    """``Retry-After`` in seconds if OKX sent one (it documents none for REST), at least 1 s."""
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(raw) if raw is not None else 0.0
    except ValueError:
        seconds = 0.0
    return max(1.0, seconds)


def _message(code: str, msg: str) -> str:
    msg = " ".join(msg.split())[:MAX_MESSAGE]
    if code == "50110":
        ip = _named_ip(msg)
        if ip:
            # The explain layer (and ``request_ip``) find the address at the end of the text.
            return f"{msg.rstrip('.')}, request ip: {ip}"
    if code == "50119":
        return f"{msg.rstrip('.') or 'API key does not exist'} ({AMBIGUOUS_50119})"
    return msg


def decode(status: int, body: bytes, headers: Mapping[str, str] | Any = None, *, path: str = "") -> OkxError:
    """The error for an answer that is not ``code`` "0" (any HTTP status)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and "code" in data:
        code = str(data.get("code"))
        message = _message(code, str(data.get("msg") or ""))
        kind = classify(status, code, message)
        shown = code
    else:
        # Not OKX's API talking: Cloudflare's error page, an empty or cut-short answer, JSON of
        # another shape. Never a verdict on the key, and never the page itself in the message.
        text = body.decode("utf-8", "replace") if body else ""
        if data is not None:
            what = "without an API error"
        elif text.lstrip()[:1] == "<":
            what = "with a web page"
        else:
            what = "with an unreadable answer"
        message = f"OKX answered HTTP {status} {what}"
        if "maintenance" in text.lower():
            message += " (maintenance)"
        kind = classify(status, None, message)
        if kind == ErrorKind.UNKNOWN and data is None:
            kind = ErrorKind.UNAVAILABLE  # unreadable: like no answer at all
        shown = str(status)
    return OkxError(
        kind,
        status=status,
        code=shown,
        message=message,
        path=path,
        retry_after=retry_after_seconds(headers) if kind == ErrorKind.RATE_LIMITED else None,
    )


@contextmanager
def parsing(path: str) -> Iterator[None]:
    """An answer not in the expected shape is an OkxError (retried), not a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, InvalidOperation):
        raise OkxError(ErrorKind.UNKNOWN, message="unexpected OKX answer", path=path) from None
