"""HTX request signing, Signature Version 2 (HmacSHA256).

The pre-sign string is ``METHOD\\nhost\\npath\\ncanonical-query`` where the canonical query is
every signed parameter, percent-encoded with upper-case hex (RFC 3986 unreserved characters
stay literal), sorted by key in byte order and joined with ``&``. See shared/htx-api.md §2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

SIGNATURE_METHOD = "HmacSHA256"
SIGNATURE_VERSION = "2"
AUTH_PARAMS = ("AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp")


def htx_timestamp(moment: datetime) -> str:
    """UTC time as HTX wants it: ``YYYY-MM-DDThh:mm:ss``, truncated, no zone suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def encode(value: str) -> str:
    # quote() emits upper-case hex; safe="" also escapes "/" as HTX expects.
    return quote(value, safe="")


def canonical_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    pairs = params.items() if isinstance(params, Mapping) else params
    encoded = sorted((encode(k), encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def presign_string(method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    return "\n".join((method.upper(), host.lower(), path, canonical_query(params)))


def signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


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
    signed = {**(params or {}), **auth_params(access_key, timestamp)}
    query = canonical_query(signed)
    sig = signature(secret, "\n".join((method.upper(), host.lower(), path, query)))
    return f"{query}&Signature={encode(sig)}"
