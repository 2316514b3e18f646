"""Binance signing against the worked vectors of shared/binance-api.md §3.

V1–V9 were produced by ccxt 4.5.90, which sends ``recvWindow=10000``; our client's default is
5000, so these tests pass ``recv_window=10000`` to reproduce them byte for byte. Our order is
ccxt's: ``timestamp`` first, then the call's parameters, then ``recvWindow``.

V7 is deliberately NOT reproduced: it is ccxt's raw branch for ``simple-earn`` paths, which
signs ``note=a b`` with the space unencoded while the space goes on the wire as ``%20``.
Binance verifies the bytes it received, so that signature is wrong (-1022). A correct signer
signs what it sends; ``test_v7_the_raw_branch_is_not_what_we_sign`` checks we differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from exchanges.venues.binance import signing
from exchanges.venues.binance.signing import Signer, encode_params, sign_parts, signed_params

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TS = 1767225600000
V1_SIGNATURE = "145a2e794fb1e41426a0b66ac3bbd4623af4014549b9af44afa3c8015894fb05"


def _split(signed: str) -> tuple[str, str]:
    payload, _, sig = signed.rpartition("&signature=")
    return payload, sig


def test_v0_binance_documented_example_all_in_one_string():
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert signing.hmac_signature(SECRET, payload) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )
    # Built from parameters, in the documented order, the same string comes out.
    params = [
        ("symbol", "LTCBTC"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", 1),
        ("price", "0.1"),
        ("recvWindow", 5000),
        ("timestamp", 1499827319559),
    ]
    assert encode_params(params) == payload


def test_v0_mixed_query_and_body_are_concatenated_without_separator():
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    sent_query, sent_body = sign_parts(SECRET, query, body)
    assert sent_query == query  # the signature goes at the end of the body
    assert sent_body == body + "&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    # ... which is the HMAC of "…GTCquantity=1…": no "&" between query and body.
    assert _split(sent_body)[1] == signing.hmac_signature(SECRET, query + body)
    assert _split(sent_body)[1] != signing.hmac_signature(SECRET, f"{query}&{body}")


def test_v1_account_without_parameters():
    signed = signed_params(SECRET, timestamp=TS, recv_window=10000)
    assert signed == f"timestamp={TS}&recvWindow=10000&signature={V1_SIGNATURE}"


def test_v2_boolean_parameter_is_written_true():
    signed = signed_params(SECRET, {"omitZeroBalances": True}, timestamp=TS, recv_window=10000)
    assert _split(signed) == (
        f"timestamp={TS}&omitZeroBalances=true&recvWindow=10000",
        "60f040573e0f594e616235329b6b184de0979ad58279cca21c3dd21dab688028",
    )


def test_v3_the_path_is_not_signed():
    # apiRestrictions with no parameters: the same string as V1, so the same signature.
    assert _split(signed_params(SECRET, timestamp=TS, recv_window=10000))[1] == V1_SIGNATURE


def test_v4_funding_post_body():
    body = signed_params(SECRET, {"needBtcValuation": "true"}, timestamp=TS, recv_window=10000)
    assert body == (
        f"timestamp={TS}&needBtcValuation=true&recvWindow=10000"
        "&signature=e5f696eb5488e5afe595a4513250d5560df5e806fb761241fe2f930a9b2a0fe4"
    )


def test_v5_wallet_balance_in_usdt():
    signed = signed_params(SECRET, {"quoteAsset": "USDT"}, timestamp=TS, recv_window=10000)
    assert _split(signed) == (
        f"timestamp={TS}&quoteAsset=USDT&recvWindow=10000",
        "3709b314b0e85b6efad11287e6e3a17abb4794477162477e67c3151c4e2b4011",
    )


def test_v6_percent_encoding_before_signing():
    signed = signed_params(SECRET, {"note": "a b,c/d:é+~*"}, timestamp=TS, recv_window=10000)
    assert _split(signed) == (
        f"timestamp={TS}&note=a%20b%2Cc%2Fd%3A%C3%A9%2B~%2A&recvWindow=10000",
        "a4747998d78c06ebdf4c7a483f33fb3836d9cb92089bb6d9c8000ec314aa1353",
    )


def test_v7_the_raw_branch_is_not_what_we_sign():
    ccxt_raw = "82be7d56748da8bfebf82c57df62923db876f929fcb24799ad7cf5676b98d389"
    signed = signed_params(SECRET, {"asset": "USDT", "note": "a b"}, timestamp=TS, recv_window=10000)
    payload, sig = _split(signed)
    assert payload == f"timestamp={TS}&asset=USDT&note=a%20b&recvWindow=10000"  # as sent
    assert " " not in signed
    assert sig == signing.hmac_signature(SECRET, payload)
    assert sig != ccxt_raw


def test_v8_our_default_recv_window_is_5000():
    signed = signed_params(SECRET, timestamp=TS)
    assert signed == (
        f"timestamp={TS}&recvWindow=5000&signature=a9713075d96840d9262429e5ac4d0b0915b1f45f007964a5e9b7de3753d78267"
    )


def test_v9_post_without_parameters_carries_v1_signature_in_the_body():
    body = signed_params(SECRET, timestamp=TS, recv_window=10000)
    assert body == f"timestamp={TS}&recvWindow=10000&signature={V1_SIGNATURE}"


def test_signature_is_lowercase_hex_hmac_sha256():
    payload = f"timestamp={TS}&recvWindow=5000"
    sig = Signer(SECRET).signature(payload)
    assert sig == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert sig == sig.lower() and len(sig) == 64


RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def _rfc8032_pem() -> str:
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SEED)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_v11_ed25519_signature_is_base64_and_percent_encoded():
    pem = _rfc8032_pem()
    assert signing.key_type(pem) == signing.ED25519
    signer = Signer(pem)
    public = signing.load_ed25519_key(pem).public_key().public_bytes_raw().hex()
    assert public == RFC8032_PUBLIC
    signed = signed_params(signer, timestamp=TS, recv_window=10000)
    expected = "YRgl4y3a5F/KgUaKD/Vr4FQlXH+M0qAXKNWgcBRyLbDlT2BIlPhAK9CeVES896ATQPnLBypWN4IMiRrN4w1kDw=="
    assert signed == (
        f"timestamp={TS}&recvWindow=10000&signature="
        "YRgl4y3a5F%2FKgUaKD%2FVr4FQlXH%2BM0qAXKNWgcBRyLbDlT2BIlPhAK9CeVES896ATQPnLBypWN4IMiRrN4w1kDw%3D%3D"
    )
    assert signer.signature(f"timestamp={TS}&recvWindow=10000") == expected
    # And it verifies with the public key.
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(RFC8032_PUBLIC)).verify(
        base64.b64decode(expected), f"timestamp={TS}&recvWindow=10000".encode()
    )


def test_an_ed25519_pem_that_lost_its_line_breaks_still_signs():
    # A one-line form field removes every space and line break from what was pasted.
    flattened = "".join(_rfc8032_pem().split())
    assert flattened.startswith("-----BEGINPRIVATEKEY-----")
    assert signing.key_type(flattened) == signing.ED25519
    payload = f"timestamp={TS}&recvWindow=10000"
    assert Signer(flattened).signature(payload) == Signer(_rfc8032_pem()).signature(payload)


def test_rsa_private_keys_are_recognised_and_refused():
    pem = (
        generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    assert signing.key_type(pem) == signing.RSA
    assert signing.key_type("".join(pem.split())) == signing.RSA
    assert (
        signing.key_type("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----")
        == signing.RSA
    )
    assert signing.key_type(SECRET) == signing.HMAC
    with pytest.raises(ValueError, match="RSA"):
        Signer(pem)


def test_a_broken_pem_is_a_value_error_without_its_text():
    broken = "-----BEGIN PRIVATE KEY-----\nnotbase64\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError) as refused:
        Signer(broken)
    assert "notbase64" not in str(refused.value)


def test_signer_repr_has_no_secret():
    assert SECRET not in repr(Signer(SECRET))
    assert KEY not in repr(Signer(SECRET))
