"""Bybit's answers decoded into the kit's neutral error kinds (bybit-api.md §9).

Bybit's API errors come as HTTP 200 with ``retCode`` != 0 in the usual envelope; real HTTP
errors (403 IP rate limit or a US/China origin, 404, 429, 5xx, a CDN page) carry no envelope.
Order: the envelope's ``retCode`` first, then the HTTP status and the wording of a page.
Anything not recognised is UNKNOWN, which is transient: an answer we do not understand is never
a verdict on a key.

10003 ("API key is invalid.") means an unknown or deleted key, a key of another site or
environment, and (older behaviour) an expired key: it is KEY_EXPIRED when the expiry Bybit gave
while the key still worked is past, INVALID_ACCESS_KEY otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import InvalidOperation
from typing import Any

from exchanges.venues.kit.errors import TRANSIENT_KINDS, ErrorKind, VenueError

__all__ = ["TRANSIENT_KINDS", "BybitError", "ErrorKind", "classify", "decode", "parsing", "request_ip"]

MAX_MESSAGE = 300
# Bybit asks for at least 10 minutes of silence after its per-IP limit (HTTP 403).
IP_BAN_SECONDS = 600.0


class BybitError(VenueError):
    venue = "Bybit"

    def __init__(self, kind: ErrorKind, *, status: int | None = None, **kwargs: Any):
        super().__init__(kind, **kwargs)
        self.status = status  # the HTTP status, when Bybit answered
        # The address Bybit saw the request come from, when its message names it (10010).
        self.ip = request_ip(self.message)


_CODES: dict[int, ErrorKind] = {
    10002: ErrorKind.INVALID_TIMESTAMP,
    10003: ErrorKind.INVALID_ACCESS_KEY,
    10004: ErrorKind.INVALID_SIGNATURE,
    10005: ErrorKind.NO_PERMISSION,
    10010: ErrorKind.IP_NOT_ALLOWED,
    33004: ErrorKind.KEY_EXPIRED,
    -2015: ErrorKind.KEY_EXPIRED,  # "(Spot) Your api key has expired"
    10006: ErrorKind.RATE_LIMITED,  # per UID and endpoint
    10018: ErrorKind.RATE_LIMITED,
    429: ErrorKind.RATE_LIMITED,  # "System level frequency protection"
    10016: ErrorKind.MAINTENANCE,  # server error / restarting
    10000: ErrorKind.UNAVAILABLE,  # server timeout
    10009: ErrorKind.RESTRICTED_LOCATION,  # "Service Restricted: ... unavailable for your region"
    10008: ErrorKind.FORBIDDEN,  # account banned
    10024: ErrorKind.FORBIDDEN,  # compliance rules triggered
    10027: ErrorKind.FORBIDDEN,  # transactions are banned
}
# The wording of an answer without an envelope (a CDN or gateway page), lower case.
_LOCATION_WORDS = ("country", "region", "location", "united states", "mainland china", "geo")
_RATE_WORDS = ("too frequent", "rate limit", "too many", "frequency")

_IP_V4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_IP_V6 = re.compile(r"(?<![0-9A-Fa-f:])([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![0-9A-Fa-f:])")
_REQUEST_IP = re.compile(r"request ip:\s*([0-9A-Fa-f.:]+)\s*$", re.IGNORECASE)
# What Bybit hashed, echoed in a 10004 (it starts with the timestamp and the API key).
_ORIGIN = re.compile(r"origin_string\[[^\]]*\]?", re.IGNORECASE)


def request_ip(message: str) -> str | None:
    """The caller address in ``…, request ip: 1.2.3.4`` at the end of a message."""
    found = _REQUEST_IP.search(message or "")
    return found.group(1).rstrip(".") if found else None


def _named_ip(message: str) -> str | None:
    """An IP address Bybit's message names anywhere (``…[1.2.3.4]``, ``ip: 1.2.3.4``)."""
    for pattern in (_IP_V4, _IP_V6):
        for found in pattern.finditer(message):
            try:
                return str(ipaddress.ip_address(found.group(1)))
            except ValueError:
                continue
    return None


def clean_message(message: str) -> str:
    """Bybit's ``retMsg`` for a details disclosure: no echoed prehash (it holds the API key)."""
    return _ORIGIN.sub("origin_string[redacted]", message or "")[:MAX_MESSAGE]


def classify(status: int, code: int | None, message: str) -> ErrorKind:
    lowered = (message or "").lower()
    if code is not None and code in _CODES:
        return _CODES[code]
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 403:
        # Bybit refuses US and Mainland China origins with 403, and answers 403 to an IP over
        # its 600 requests / 5 s. A page that speaks of a country or region is the former.
        if any(word in lowered for word in _LOCATION_WORDS):
            return ErrorKind.RESTRICTED_LOCATION
        return ErrorKind.RATE_LIMITED
    if "maintenance" in lowered:
        return ErrorKind.MAINTENANCE
    if status >= 500:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.UNKNOWN


def retry_after_seconds(
    headers: Mapping[str, str] | Any, *, status: int = 200, clock_offset_ms: int = 0
) -> float:
    """When to try again, at least 1 s: ``X-Bapi-Limit-Reset-Timestamp`` (ms on Bybit's clock)
    or ``Retry-After`` (s); a 403 IP limit without either: Bybit's 10 minutes."""
    get = headers.get if headers is not None else (lambda name: None)
    reset = get("X-Bapi-Limit-Reset-Timestamp")
    if reset:
        try:
            bybit_now_ms = time.time() * 1000 + clock_offset_ms
            return max(1.0, (float(reset) - bybit_now_ms) / 1000)
        except ValueError:
            pass
    raw = get("Retry-After")
    if raw:
        try:
            return max(1.0, float(raw))
        except ValueError:
            pass
    return IP_BAN_SECONDS if status == 403 else 1.0


def _is_past(moment: datetime | None, now_ms: float | None) -> bool:
    if moment is None:
        return False
    now = (now_ms if now_ms is not None else time.time() * 1000) / 1000
    return moment.timestamp() <= now


def decode(
    status: int,
    body: bytes,
    headers: Mapping[str, str] | Any = None,
    *,
    path: str = "",
    key_expires_at: datetime | None = None,
    clock_offset_ms: int = 0,
) -> BybitError:
    """The error for an answer that is not ``retCode 0`` (or not a 2xx). ``key_expires_at``:
    the expiry stored while the key worked, which turns a 10003 into KEY_EXPIRED once past."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and "retCode" in data:
        try:
            code: int | None = int(data.get("retCode"))
        except (TypeError, ValueError):
            code = None
        message = clean_message(str(data.get("retMsg") or ""))
        shown_code = str(code) if code is not None else str(status)
        kind = classify(status, code, message)
        if kind == ErrorKind.INVALID_ACCESS_KEY and _is_past(
            key_expires_at, time.time() * 1000 + clock_offset_ms
        ):
            kind = ErrorKind.KEY_EXPIRED
            message = f"{message} (the key's expiry, {key_expires_at:%Y-%m-%d %H:%M} UTC, has passed)"
        if kind == ErrorKind.IP_NOT_ALLOWED and request_ip(message) is None:
            ip = _named_ip(message)
            if ip:  # kept at the end, where the dashboard looks for it
                message = f"{message.rstrip()}, request ip: {ip}"
    else:
        # Not Bybit's API talking: a gateway or CDN page (403 from a US origin, 5xx), an empty
        # or cut-short answer, or JSON of another shape. Never a verdict on the key.
        text = body.decode("utf-8", "replace") if body else ""
        lowered = text.lower()
        if data is not None:
            what = "without an API error"
        elif text.lstrip()[:1] == "<":
            what = "with a web page"
        else:
            what = "with an unreadable answer"
        message = f"Bybit answered HTTP {status} {what}"
        kind = classify(status, None, lowered if status in (403, 429) else "")
        if kind == ErrorKind.RESTRICTED_LOCATION:
            message += " (access from this server's country or region is restricted)"
        elif kind == ErrorKind.RATE_LIMITED and status == 403:
            message += " (IP rate limit)"
        elif "maintenance" in lowered:
            kind = ErrorKind.MAINTENANCE
            message += " (maintenance)"
        if kind == ErrorKind.UNKNOWN and (data is None or 200 <= status < 300):
            kind = ErrorKind.UNAVAILABLE  # unreadable: like no answer at all
        code, shown_code = None, str(status)
    retry_after = None
    if kind == ErrorKind.RATE_LIMITED:
        retry_after = retry_after_seconds(headers, status=status, clock_offset_ms=clock_offset_ms)
    return BybitError(
        kind, status=status, code=shown_code, message=message, path=path, retry_after=retry_after
    )


@contextmanager
def parsing(path: str) -> Iterator[None]:
    """An answer not in the expected shape is a BybitError (retried), not a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, InvalidOperation):
        raise BybitError(ErrorKind.UNKNOWN, message="unexpected Bybit answer", path=path) from None
