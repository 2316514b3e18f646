"""OKX API v5 request signing: sign exactly the bytes that go on the wire (okx-api.md §2).

``OK-ACCESS-SIGN`` = Base64(HMAC-SHA256(secret key as UTF-8 text,
timestamp + METHOD + requestPath + body)), where ``requestPath`` starts at ``/api/v5/`` and
includes the query of a GET (no scheme, no host: changing the host never changes the
signature), and ``body`` is the JSON text of a POST as sent. OKX has no canonical order or
encoding to rebuild, so this module builds the final query and body first and signs that text;
the client sends it unchanged. The timestamp is ISO 8601 UTC with milliseconds and ``Z``; OKX
refuses one more than 30 s from its clock (50102). The passphrase travels in plain text in
``OK-ACCESS-PASSPHRASE``; it is not part of the signature, and neither is the demo-trading
header ``x-simulated-trading``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from exchanges.venues.kit.clock import utc_second

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]

KEY_HEADER = "OK-ACCESS-KEY"
SIGN_HEADER = "OK-ACCESS-SIGN"
TIMESTAMP_HEADER = "OK-ACCESS-TIMESTAMP"
PASSPHRASE_HEADER = "OK-ACCESS-PASSPHRASE"
DEMO_HEADER = "x-simulated-trading"


def timestamp(epoch_ms: int) -> str:
    """``2024-01-02T03:04:05.678Z``: UTC, milliseconds, ``Z``."""
    seconds, ms = divmod(epoch_ms, 1000)
    return f"{utc_second(seconds)}.{ms:03d}Z"


def encode_query(params: Params | None) -> str:
    """``k=v&k=v`` in the given order, form-encoded like ccxt (``,`` becomes ``%2C``)."""
    if not params:
        return ""
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    return urlencode([(str(k), _text(v)) for k, v in pairs])


def encode_body(params: Params | None) -> str:
    """The JSON text of a POST, compact (no spaces); empty for no parameters (nothing is sent
    and nothing signed, as ccxt does)."""
    if not params:
        return ""
    pairs = dict(params.items() if isinstance(params, Mapping) else params)
    return json.dumps(pairs, separators=(",", ":"))


def request_path(path: str, query: str = "") -> str:
    """The ``requestPath`` of the pre-hash: the path and, for a GET, ``?`` + the query sent."""
    return f"{path}?{query}" if query else path


def prehash(ts: str, method: str, path_and_query: str, body: str = "") -> str:
    return f"{ts}{method.upper()}{path_and_query}{body}"


def signature(secret: str, message: str) -> str:
    """Standard Base64 (``+ / =``) of HMAC-SHA256 keyed with the secret key *as text*: OKX's
    32 hex characters are neither decoded nor re-cased."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Signer:
    """Signs requests with one key. The secret and passphrase never appear in its repr."""

    __slots__ = ("_passphrase", "_secret", "api_key")

    def __init__(self, api_key: str, secret: str, passphrase: str):
        self.api_key = api_key
        self._secret = secret
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return "<OKX Signer>"

    def headers(self, epoch_ms: int, method: str, path_and_query: str, body: str = "") -> dict[str, str]:
        """The four auth headers of one request (``Content-Type`` is the caller's, for a body)."""
        ts = timestamp(epoch_ms)
        return {
            KEY_HEADER: self.api_key,
            SIGN_HEADER: signature(self._secret, prehash(ts, method, path_and_query, body)),
            TIMESTAMP_HEADER: ts,
            PASSPHRASE_HEADER: self._passphrase,
        }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
