"""Bybit V5 request signing: headers, and a signature over exactly the bytes sent.

Bybit verifies ``timestamp + apiKey + recvWindow + payload`` (bybit-api.md §2): plain
concatenation, no separators, no method, host or path; the payload is the query string of a GET
or the JSON body of a POST exactly as sent (nothing sorted or re-encoded on the way). So the
query (or body) is built once here, signed, and that same string goes on the wire.

- HMAC keys ("System-generated"): lower-case hex of HMAC-SHA256(secret, prehash), 64 characters.
- RSA keys ("Self-generated", the secret is a PEM private key) are recognised and refused by name:
  this dashboard takes HMAC keys only.

The key and timestamp travel in headers: ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP`` (epoch ms),
``X-BAPI-RECV-WINDOW`` and ``X-BAPI-SIGN``; never in the query.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

RECV_WINDOW = 5000  # ms, Bybit's default

HMAC = "hmac"
RSA = "rsa"

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]

# A PEM key, also with its spaces and line breaks removed (a one-line form field leaves it so).
_PEM = re.compile(r"-----BEGIN|PRIVATE\s*KEY|PUBLIC\s*KEY")


def is_pem(text: str) -> bool:
    """A pasted PEM key (RSA private key of a "Self-generated" Bybit key, or its public half)."""
    return _PEM.search(text) is not None


def key_type(secret: str) -> str:
    """``hmac`` for a Bybit Secret Key, ``rsa`` for a pasted PEM private key (like ccxt: a secret
    containing ``PRIVATE KEY`` is RSA)."""
    return RSA if is_pem(secret) else HMAC


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_params(params: Params | None) -> str:
    """``key=value`` pairs in the given order joined with ``&``. Bybit's own values (upper-case
    coins, comma lists like ``USDT,BTC``, account types) go out as they are; anything else is
    percent-encoded, and the encoded text is what is signed."""
    if not params:
        return ""
    pairs = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{_encode(text(k), '-_.~')}={_encode(text(v), '-_.~,')}" for k, v in pairs)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _encode(value: str, safe: str) -> str:
    # Most names and values (account types, coins, numbers) need no escaping: skip quote().
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe=safe)


def encode_body(params: Params | None) -> str:
    """A POST body: compact JSON (ccxt's form), ``{}`` when empty (never an empty body)."""
    data = dict(params.items() if isinstance(params, Mapping) else params or ())
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def prehash(timestamp: int, api_key: str, recv_window: int, payload: str = "") -> str:
    return f"{timestamp}{api_key}{recv_window}{payload}"


def hmac_signature(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class Signer:
    """Signs with one key pair; refuses an RSA private key."""

    __slots__ = ("_api_key", "_secret")

    def __init__(self, api_key: str, secret: str):
        if key_type(secret) == RSA:
            raise ValueError("RSA (self-generated) Bybit API keys are not supported; use an HMAC key")
        if not api_key or not secret:
            raise ValueError("a Bybit API Key and Secret Key are required")
        self._api_key = api_key
        self._secret = secret

    def __repr__(self) -> str:
        return "<Signer hmac>"

    def signature(self, timestamp: int, recv_window: int, payload: str = "") -> str:
        return hmac_signature(self._secret, prehash(timestamp, self._api_key, recv_window, payload))

    def headers(self, timestamp: int, recv_window: int = RECV_WINDOW, payload: str = "") -> dict[str, str]:
        """The four authentication headers of one request whose query (GET) or body (POST) is
        ``payload``, exactly as sent."""
        return {
            "X-BAPI-API-KEY": self._api_key,
            "X-BAPI-TIMESTAMP": str(timestamp),
            "X-BAPI-RECV-WINDOW": str(recv_window),
            "X-BAPI-SIGN": self.signature(timestamp, recv_window, payload),
        }


def signed_request(
    api_key: str,
    secret: str,
    method: str,
    params: Params | None = None,
    *,
    timestamp: int,
    recv_window: int = RECV_WINDOW,
) -> tuple[str, str | None, dict[str, str]]:
    """(query, body, headers) of one signed request: the query for a GET, the JSON body for a
    POST, each signed as sent."""
    signer = Signer(api_key, secret)
    if method == "GET":
        query = encode_params(params)
        return query, None, signer.headers(timestamp, recv_window, query)
    body = encode_body(params)
    headers = {"Content-Type": "application/json", **signer.headers(timestamp, recv_window, body)}
    return "", body, headers
