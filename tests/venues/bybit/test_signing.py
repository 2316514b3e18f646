"""Bybit signing against the worked vectors of shared/bybit-api.md §3 (computed by ccxt 4.5.90's
own ``bybit.sign()``, cross-checked with pybit's ``generate_signature``).

Shared inputs: API key ``Tq7Wm2Hx9KpL4sRv8N`` (18), secret ``c3Fj8Qz1Lw6Yp0Rt5Mv2Nb7Xk4Hd9Gs1Ae6U``
(36), timestamp 1767225600000 (2026-01-01T00:00:00Z), recvWindow 5000 unless stated. Our query
order is the caller's (ccxt's insertion order); V5's pybit variant shows that a sorted query
signs differently, and both are right because each signs what it sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from exchanges.venues.bybit import signing
from exchanges.venues.bybit.signing import Signer, encode_body, encode_params, prehash, signed_request

KEY = "Tq7Wm2Hx9KpL4sRv8N"
SECRET = "c3Fj8Qz1Lw6Yp0Rt5Mv2Nb7Xk4Hd9Gs1Ae6U"
TS = 1767225600000


def _get(params=None, recv_window=5000):
    return signed_request(KEY, SECRET, "GET", params, timestamp=TS, recv_window=recv_window)


def test_v1_query_api_without_parameters_signs_timestamp_key_and_window_only():
    query, body, headers = _get()
    assert prehash(TS, KEY, 5000) == "1767225600000Tq7Wm2Hx9KpL4sRv8N5000"
    assert (query, body) == ("", None)
    assert headers == {
        "X-BAPI-API-KEY": KEY,
        "X-BAPI-TIMESTAMP": "1767225600000",
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": "f7680854b5eb109ea3db51baddff09f26c2cdda30fbcedfd582ec12a1b6f0a17",
    }


def test_v2_wallet_balance_unified():
    query, body, headers = _get({"accountType": "UNIFIED"})
    assert query == "accountType=UNIFIED" and body is None
    assert headers["X-BAPI-SIGN"] == "134ddacb8a3faac1eb111150c1bb1b64f5f5bf9cdc7cb689d8de81df208d4620"


def test_v3_funding_balance():
    query, _, headers = _get({"accountType": "FUND"})
    assert query == "accountType=FUND"
    assert headers["X-BAPI-SIGN"] == "2e5c144ee207269ae661f75e59e91b3841eda4768d9ca5890a2ab012db93c328"


def test_v4_two_parameters_and_a_raw_comma():
    query, _, headers = _get({"accountType": "UNIFIED", "coin": "USDT,BTC"})
    assert query == "accountType=UNIFIED&coin=USDT,BTC"  # the comma is sent (and signed) raw
    assert headers["X-BAPI-SIGN"] == "3dc54c57a48509a216c34d074080fe7ac31e8c791531aa87d5782d2c88574166"


def test_v5_another_order_signs_another_string_and_pybits_sorted_one_too():
    query, _, headers = _get({"coin": "BTC", "accountType": "UNIFIED"})
    assert query == "coin=BTC&accountType=UNIFIED"
    assert headers["X-BAPI-SIGN"] == "50b993208d4e185e1bb03ded882a636545bdf0922e2a0bf186169c961a4dbd75"
    # pybit sorts the same dict before sending: another string, another (equally valid) signature.
    query, _, headers = _get(sorted({"coin": "BTC", "accountType": "UNIFIED"}.items()))
    assert query == "accountType=UNIFIED&coin=BTC"
    assert headers["X-BAPI-SIGN"] == "6a0e2dae5247eb45a4443ac7433c53ad89fc15e174487f8ae52a3f44638ea826"


ORDER = {
    "category": "spot",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "orderType": "Limit",
    "qty": "0.001",
    "price": "20000",
}


def test_v6_post_signs_the_compact_json_body_as_sent():
    query, body, headers = signed_request(KEY, SECRET, "POST", ORDER, timestamp=TS)
    assert query == ""
    assert body == (
        '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001","price":"20000"}'
    )
    assert headers["X-BAPI-SIGN"] == "4653b2322b044dbd7651ec8b58722b0ed0a4ad75575d98370a82807d615e77c8"
    assert headers["Content-Type"] == "application/json"
    # pybit's json.dumps body (spaces after ":" and ","): other bytes, its own valid signature.
    spaced = json.dumps(ORDER)
    assert Signer(KEY, SECRET).signature(TS, 5000, spaced) == (
        "160fb031e4803a3d7fe5498889ec8ade65d07677867534a156eb6fd97b5bda2b"
    )


def test_v7_post_without_parameters_sends_and_signs_an_empty_object():
    _, body, headers = signed_request(KEY, SECRET, "POST", {}, timestamp=TS)
    assert body == "{}" and encode_body(None) == "{}"
    assert headers["X-BAPI-SIGN"] == "ca4fd8af83cc5977ac6b5856e747f19f04ae32406c6e38791fd0ecf9c29a1df7"


def test_v8_the_receive_window_is_part_of_the_prehash():
    _, _, headers = _get(recv_window=20000)
    assert headers["X-BAPI-RECV-WINDOW"] == "20000"
    assert headers["X-BAPI-SIGN"] == "c9a65bfee5aea83647e332f6c98e11c3014bfd8aca69d749bdfd02267fee7722"
    assert signing.RECV_WINDOW == 5000  # our default


def test_signature_is_lower_case_hex_hmac_sha256_of_the_prehash():
    message = prehash(TS, KEY, 5000, "accountType=UNIFIED")
    sig = Signer(KEY, SECRET).signature(TS, 5000, "accountType=UNIFIED")
    assert sig == hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert sig == sig.lower() and len(sig) == 64


def test_other_values_are_percent_encoded_and_signed_as_encoded():
    assert encode_params({"note": "a b&c", "flag": True}) == "note=a%20b%26c&flag=true"
    assert encode_params(None) == "" and encode_params([]) == ""
    query, _, headers = _get({"note": "a b"})
    assert query == "note=a%20b" and " " not in query
    assert headers["X-BAPI-SIGN"] == signing.hmac_signature(SECRET, prehash(TS, KEY, 5000, query))


def _rsa_pem() -> str:
    return (
        generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def test_an_rsa_private_key_is_recognised_and_refused_by_name():
    pem = _rsa_pem()
    assert signing.key_type(pem) == signing.RSA
    assert signing.key_type("".join(pem.split())) == signing.RSA  # as a one-line field leaves it
    assert signing.key_type("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----") == "rsa"
    assert signing.key_type(SECRET) == signing.HMAC
    with pytest.raises(ValueError, match="RSA") as refused:
        Signer(KEY, pem)
    assert pem[40:80] not in str(refused.value)


def test_a_signer_needs_both_halves_and_never_shows_them():
    with pytest.raises(ValueError):
        Signer("", SECRET)
    signer = Signer(KEY, SECRET)
    assert SECRET not in repr(signer) and KEY not in repr(signer)
