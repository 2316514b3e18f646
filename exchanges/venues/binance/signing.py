"""Binance request signing: sign exactly the bytes that go on the wire.

Binance verifies the signature over the query string concatenated *without separator* with the
request body, as received: no method, no host, no path, no sorting. Since 2026-01-15 the
payload must be percent-encoded before it is signed. So this module builds the final query and
body strings first (``urllib.parse.quote`` with the RFC 3986 unreserved characters left alone:
space is ``%20``, never ``+``), then signs that exact text (binance-api.md §2).

- HMAC keys ("System generated"): lowercase hex of HMAC-SHA256(secret, payload).
- Ed25519 keys (the secret is a PKCS#8 PEM private key): base64 of the Ed25519 signature,
  percent-encoded in the request. RSA keys are recognised and refused (not worth supporting:
  binance-api.md §2.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

RECV_WINDOW = 5000  # ms, Binance's default and recommended maximum

HMAC = "hmac"
ED25519 = "ed25519"
RSA = "rsa"

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


# A PEM private key, also with its spaces and line breaks removed (as a one-line form field
# leaves it): "-----BEGINPRIVATEKEY-----MC4C...-----ENDPRIVATEKEY-----".
_PEM = re.compile(r"-----BEGIN\s*([A-Z ]*?)\s*PRIVATE\s*KEY-----(.*?)-----END", re.DOTALL)


def is_private_key(text: str) -> bool:
    return re.search(r"PRIVATE\s*KEY|-----BEGIN", text) is not None


def key_type(secret: str) -> str:
    """``hmac`` for a Binance Secret Key, ``ed25519`` or ``rsa`` for a pasted PEM private key.

    Like ccxt: a secret containing ``PRIVATE KEY`` is a PEM; RSA keys are the long ones (an
    Ed25519 PKCS#8 PEM holds 64 base64 characters, an RSA one well over a thousand)."""
    if not is_private_key(secret):
        return HMAC
    found = _PEM.search(secret)
    body = "".join(found.group(2).split()) if found else secret
    if (found and "RSA" in found.group(1)) or len(body) > 200:
        return RSA  # "RSA PRIVATE KEY" (PKCS#1), or a PKCS#8 key far too long for Ed25519
    return ED25519


def text(value: Any) -> str:
    """A parameter value as Binance expects it: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def encode(value: Any) -> str:
    value = text(value)
    if _UNRESERVED.fullmatch(value):  # most names and values (numbers, hex): nothing to escape
        return value
    return quote(value, safe="-_.~")


def encode_params(params: Params | None) -> str:
    """``key=value`` pairs in the given order, percent-encoded, joined with ``&``."""
    if not params:
        return ""
    pairs = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)


def hmac_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ed25519_signature(private_key: Any, payload: str) -> str:
    """Base64 (standard alphabet, padded) of the Ed25519 signature of ``payload``.
    ``private_key``: a PEM string or an already loaded ``Ed25519PrivateKey``."""
    if isinstance(private_key, str):
        private_key = load_ed25519_key(private_key)
    return base64.b64encode(private_key.sign(payload.encode())).decode()


def load_ed25519_key(pem: str) -> Any:
    """The ``Ed25519PrivateKey`` of an unencrypted PKCS#8 PEM; ValueError otherwise."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    found = _PEM.search(pem)
    if found is None:
        raise ValueError("not a PEM private key")
    # Rebuilt from its base64 body, so a key whose line breaks were lost still loads.
    body = "".join(found.group(2).split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    try:
        key = load_pem_private_key(
            f"-----BEGIN PRIVATE KEY-----\n{lines}\n-----END PRIVATE KEY-----\n".encode(), password=None
        )
    except (TypeError, ValueError):
        raise ValueError("not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


class Signer:
    """Signs payloads with one secret; loads a PEM key once."""

    __slots__ = ("_key", "_secret", "kind")

    def __init__(self, secret: str):
        self.kind = key_type(secret)
        if self.kind == RSA:
            raise ValueError("RSA API keys are not supported; use an HMAC or Ed25519 key")
        self._secret = secret
        self._key = load_ed25519_key(secret) if self.kind == ED25519 else None

    def __repr__(self) -> str:
        return f"<Signer {self.kind}>"

    def signature(self, payload: str) -> str:
        """The signature as Binance documents it (hex for HMAC, base64 for Ed25519)."""
        if self._key is not None:
            return ed25519_signature(self._key, payload)
        return hmac_signature(self._secret, payload)

    def wire_signature(self, payload: str) -> str:
        """The ``signature`` parameter's value as sent: percent-encoded (``/``, ``+``, ``=``
        of base64); hex needs none."""
        return encode(self.signature(payload))


def sign_parts(signer: Signer | str, query: str, body: str = "") -> tuple[str, str]:
    """Sign ``query`` + ``body`` (already encoded, as sent) and append ``signature=`` to the
    body when there is one, else to the query. Returns the (query, body) to send."""
    if isinstance(signer, str):
        signer = Signer(signer)
    sig = signer.wire_signature(query + body)
    if body:
        return query, f"{body}&signature={sig}"
    return (f"{query}&signature={sig}" if query else f"signature={sig}"), body


def signed_params(
    signer: Signer | str,
    params: Params | None = None,
    *,
    timestamp: int,
    recv_window: int | None = RECV_WINDOW,
) -> str:
    """``timestamp=…&<params>&recvWindow=…&signature=…``: one signed string, for the query of a
    GET or the body of a POST (Binance reads either). ``recv_window`` None leaves it out."""
    pairs: list[tuple[str, Any]] = [("timestamp", timestamp)]
    if params:
        pairs += params.items() if isinstance(params, Mapping) else params
    if recv_window is not None:
        pairs.append(("recvWindow", recv_window))
    query, _ = sign_parts(signer, encode_params(pairs))
    return query
