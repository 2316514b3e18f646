"""HTX request signing, Signature Version 2 (HmacSHA256).

The pre-sign string is ``METHOD\\nhost\\npath\\ncanonical-query`` where the canonical query is
every signed parameter, percent-encoded with upper-case hex (RFC 3986 unreserved characters
stay literal), sorted by key in byte order and joined with ``&``. See shared/htx-api.md §2.
"""

from __future__ import annotations

import binascii
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from exchanges.venues.kit.clock import utc_second

SIGNATURE_METHOD = "HmacSHA256"
SIGNATURE_VERSION = "2"
AUTH_PARAMS = ("AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp")
_SIGNATURE_METHOD_PAIR = ("SignatureMethod", SIGNATURE_METHOD)
_SIGNATURE_VERSION_PAIR = ("SignatureVersion", SIGNATURE_VERSION)


def htx_timestamp(moment: datetime) -> str:
    """UTC time as HTX wants it: ``YYYY-MM-DDThh:mm:ss``, truncated, no zone suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def htx_timestamp_at(epoch_seconds: float) -> str:
    """``htx_timestamp`` of a Unix time, formatted once per second."""
    return utc_second(epoch_seconds)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def encode(value: str) -> str:
    if _UNRESERVED.fullmatch(value):  # most keys and values: nothing to escape
        return value
    # quote() emits upper-case hex; safe="" also escapes "/" as HTX expects.
    return quote(value, safe="")


def canonical_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    pairs = params.items() if isinstance(params, Mapping) else params
    encoded = sorted((encode(k), encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def presign_string(method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    return "\n".join((method.upper(), host.lower(), path, canonical_query(params)))


def signature(secret: str, payload: str) -> str:
    digest = hmac.digest(secret.encode(), payload.encode(), "sha256")
    return binascii.b2a_base64(digest, newline=False).decode()


def auth_params(access_key: str, timestamp: str) -> dict[str, str]:
    return {
        "AccessKeyId": access_key,
        "SignatureMethod": SIGNATURE_METHOD,
        "SignatureVersion": SIGNATURE_VERSION,
        "Timestamp": timestamp,
    }


def signed_query(
    *,
    method: str,
    host: str,
    path: str,
    access_key: str,
    secret: str,
    timestamp: str,
    params: Mapping[str, str] | None = None,
) -> str:
    """The query string to send: the canonical query plus ``&Signature=...``.

    For POST only the auth parameters are signed (the JSON body is not), so pass no params.
    """
    pairs = [(encode(k), encode(v)) for k, v in params.items() if k not in AUTH_PARAMS] if params else []
    pairs += (
        ("AccessKeyId", encode(access_key)),
        _SIGNATURE_METHOD_PAIR,
        _SIGNATURE_VERSION_PAIR,
        ("Timestamp", encode(timestamp)),
    )
    pairs.sort()
    query = "&".join([f"{k}={v}" for k, v in pairs])
    sig = signature(secret, f"{method.upper()}\n{host.lower()}\n{path}\n{query}")
    return f"{query}&Signature={encode(sig)}"
