"""Binance's answers decoded into the kit's neutral error kinds (binance-api.md §7).

Order: the HTTP status first (429/418 rate limit, 451 location, 403 WAF, 5xx), then Binance's
``code``, then the wording of ``msg``. Anything not recognised is UNKNOWN, which is transient:
an answer we do not understand is never a verdict on a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import InvalidOperation
from typing import Any

from exchanges.venues.kit.errors import TRANSIENT_KINDS, ErrorKind, VenueError

__all__ = ["TRANSIENT_KINDS", "BinanceError", "ErrorKind", "classify", "decode", "request_ip"]


class BinanceError(VenueError):
    venue = "Binance"

    def __init__(self, kind: ErrorKind, *, status: int | None = None, **kwargs: Any):
        super().__init__(kind, **kwargs)
        self.status = status  # the HTTP status, when Binance answered
        # The address Binance saw the request come from, when its message names it (-2015).
        self.ip = request_ip(self.message)


# Binance's codes (errors.md). -2015 covers an unknown or deleted key, a caller IP outside the
# key's whitelist, a missing permission and temporary bans: one code, three causes.
_CODES: dict[int, ErrorKind] = {
    -2014: ErrorKind.INVALID_ACCESS_KEY,
    -2015: ErrorKind.KEY_IP_OR_PERMISSION,
    -1022: ErrorKind.INVALID_SIGNATURE,
    -1021: ErrorKind.INVALID_TIMESTAMP,
    -1002: ErrorKind.NO_PERMISSION,
    -1003: ErrorKind.RATE_LIMITED,
    -1000: ErrorKind.UNAVAILABLE,
    -1001: ErrorKind.UNAVAILABLE,
    -1007: ErrorKind.UNAVAILABLE,
    -1008: ErrorKind.UNAVAILABLE,
}
# When there is no usable code (``{"success": false, "msg": ...}``, code 0, an odd body): the
# wording, lower case, first match wins.
_MESSAGES: tuple[tuple[str, ErrorKind], ...] = (
    ("maintenance", ErrorKind.MAINTENANCE),
    ("restricted location", ErrorKind.RESTRICTED_LOCATION),
    ("api-key format invalid", ErrorKind.INVALID_ACCESS_KEY),
    ("invalid api-key, ip, or permissions", ErrorKind.KEY_IP_OR_PERMISSION),
    ("signature for this request is not valid", ErrorKind.INVALID_SIGNATURE),
    ("timestamp for this request", ErrorKind.INVALID_TIMESTAMP),
    ("too much request weight", ErrorKind.RATE_LIMITED),
    ("not authorized to execute this request", ErrorKind.NO_PERMISSION),
    ("don't have permission", ErrorKind.NO_PERMISSION),
)
_REQUEST_IP = re.compile(r"request ip:\s*([0-9A-Fa-f.:]+)", re.IGNORECASE)
MAX_MESSAGE = 300


def request_ip(message: str) -> str | None:
    """The caller address in ``…, request ip: 1.2.3.4``, if the message names one."""
    found = _REQUEST_IP.search(message or "")
    return found.group(1).rstrip(".") if found else None


def classify(status: int, code: int | None, message: str) -> ErrorKind:
    lowered = (message or "").lower()
    if status in (418, 429):
        return ErrorKind.RATE_LIMITED
    if status == 451:
        return ErrorKind.RESTRICTED_LOCATION
    if "maintenance" in lowered:
        return ErrorKind.MAINTENANCE
    if status == 403:  # the WAF ("avoid SQL keywords"), never a verdict on the key
        return ErrorKind.UNAVAILABLE
    if status >= 500:
        return ErrorKind.UNAVAILABLE
    if code is not None and code in _CODES:
        return _CODES[code]
    for needle, kind in _MESSAGES:
        if needle in lowered:
            return kind
    return ErrorKind.UNKNOWN


def retry_after_seconds(headers: Mapping[str, str] | Any) -> float:
    """Binance's ``Retry-After`` (seconds), at least 1 s (it is sometimes 0 or missing)."""
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(raw) if raw is not None else 0.0
    except ValueError:
        seconds = 0.0
    return max(1.0, seconds)


def decode(
    status: int, body: bytes, headers: Mapping[str, str] | Any = None, *, path: str = ""
) -> BinanceError:
    """The error for a non-2xx answer (or a 2xx one carrying an error envelope)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    code: int | None = None
    if isinstance(data, dict) and ("code" in data or "msg" in data or data.get("success") is False):
        raw_code = data.get("code")
        try:
            code = int(raw_code) if raw_code is not None else None
        except (TypeError, ValueError):
            code = None
        message = str(data.get("msg") or data.get("message") or "")
        shown_code = str(code) if code is not None else str(status)
    else:
        # Not Binance's API talking: a CDN or proxy page (CloudFront "The request could not be
        # satisfied"), an empty or cut-short answer, or JSON of another shape (Spring's 404).
        # Never a verdict on the key.
        text = body.decode("utf-8", "replace") if body else ""
        looks_html = text.lstrip()[:1] == "<"
        if data is not None:
            what = "without an API error"
        elif looks_html:
            what = "with a web page"
        else:
            what = "with an unreadable answer"
        message = f"Binance answered HTTP {status} {what}"
        if "maintenance" in text.lower():
            message += " (maintenance)"
        shown_code = str(status)
        kind = classify(status, None, message)
        if kind == ErrorKind.UNKNOWN and data is None:
            kind = ErrorKind.UNAVAILABLE  # unreadable: like no answer at all
        return BinanceError(
            kind,
            status=status,
            code=shown_code,
            message=message,
            path=path,
            retry_after=retry_after_seconds(headers) if kind == ErrorKind.RATE_LIMITED else None,
        )
    kind = classify(status, code, message)
    return BinanceError(
        kind,
        status=status,
        code=shown_code,
        message=message[:MAX_MESSAGE],
        path=path,
        retry_after=retry_after_seconds(headers) if kind == ErrorKind.RATE_LIMITED else None,
    )


@contextmanager
def parsing(path: str) -> Iterator[None]:
    """An answer not in the expected shape is a BinanceError (retried), not a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation):
        raise BinanceError(ErrorKind.UNKNOWN, message="unexpected Binance answer", path=path) from None
