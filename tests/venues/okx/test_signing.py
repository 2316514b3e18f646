"""OKX signing against the worked vectors of shared/okx-api.md §3, ccxt's own ``okx.sign()``
and the sandbox's independent checker. No network."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import random
import string
import time

import pytest

from exchanges.venues.okx import signing
from exchanges.venues.okx.sandbox_auth import parse_timestamp
from exchanges.venues.okx.sandbox_auth import signature as sandbox_signature
from exchanges.venues.okx.signing import Signer, encode_body, encode_query, prehash, request_path

KEY = "6d21f451-5156-4af7-83a1-ef483c4573bc"
SECRET = "10E0F6068FEA5EFBCDD8039150DC6474"
PASSPHRASE = "Vector-Pass-9"
TS = "2024-01-02T03:04:05.678Z"
TS_MS = 1704164645678


def _sign(method: str, path: str, params=None) -> tuple[str, str, str]:
    """(pre-hash, signature, body) the way the client builds them."""
    query = encode_query(params) if method == "GET" else ""
    body = "" if method == "GET" else encode_body(params)
    message = prehash(TS, method, request_path(path, query), body)
    return message, signing.signature(SECRET, message), body


def test_the_timestamp_is_iso_utc_with_milliseconds_and_z():
    assert signing.timestamp(TS_MS) == TS
    assert signing.timestamp(1607418537715) == "2020-12-08T09:08:57.715Z"
    assert signing.timestamp(1704164645000) == "2024-01-02T03:04:05.000Z"  # zeros kept
    assert signing.timestamp(1704164645007) == "2024-01-02T03:04:05.007Z"
    assert parse_timestamp(signing.timestamp(TS_MS)) == TS_MS  # the sandbox reads it back


def test_v0_the_docs_example_request_with_the_docs_secret():
    message = prehash("2020-12-08T09:08:57.715Z", "GET", "/api/v5/account/balance?ccy=BTC")
    assert message == "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC"
    assert signing.signature("22582BD0CFF14C41EDBF1AB98506286D", message) == (
        "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    )


@pytest.mark.parametrize(
    ("name", "method", "path", "params", "expected_prehash", "expected_sign"),
    [
        (
            "V1",
            "GET",
            "/api/v5/account/config",
            None,
            f"{TS}GET/api/v5/account/config",
            "ev0iOaWdz8sTmB6Y1Pe05iM/KuC9mO+L/JnJR0SYHdw=",
        ),
        (
            "V2",
            "GET",
            "/api/v5/account/balance",
            {"ccy": "BTC"},
            f"{TS}GET/api/v5/account/balance?ccy=BTC",
            "9FoP2Lc4Ru57GoczcyBgQPFGqJ2J1VBTAJGAa0Czl/U=",
        ),
        (
            "V3",
            "GET",
            "/api/v5/account/balance",
            {"ccy": "BTC,ETH"},
            f"{TS}GET/api/v5/account/balance?ccy=BTC%2CETH",
            "ceGHzJGoR4D/wm28sT/Vvwt3m+uzswyXlDl9vqYSvIk=",
        ),
        (
            "V4",
            "GET",
            "/api/v5/asset/balances",
            None,
            f"{TS}GET/api/v5/asset/balances",
            "L+7ekr7QNf1oFLTF7YxUAtz2r28QFdLp8r7G+LHMMkA=",
        ),
        (
            "V5",
            "GET",
            "/api/v5/asset/asset-valuation",
            {"ccy": "USDT"},
            f"{TS}GET/api/v5/asset/asset-valuation?ccy=USDT",
            "DR+vJQnp41Orp7kgAW4utapbHjXWBADQqNPgQcz8H2A=",
        ),
        (
            "V6",
            "POST",
            "/api/v5/account/set-leverage",
            {"instId": "BTC-USDT", "lever": "5", "mgnMode": "isolated"},
            f'{TS}POST/api/v5/account/set-leverage{{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}}',
            "tXRUjRFXrWFcuZzlkEHtWUQnQRgFWMo/wgSmb58uka8=",
        ),
        (
            "V7",
            "POST",
            "/api/v5/account/set-auto-loan",
            None,
            f"{TS}POST/api/v5/account/set-auto-loan",
            "ATZ/LZs4N4bzvm2PkEELn3t2kwVZNVW8g59izk2LF5s=",
        ),
        (
            "V8",
            "GET",
            "/api/v5/finance/savings/balance",
            {"ccy": "USDT"},
            f"{TS}GET/api/v5/finance/savings/balance?ccy=USDT",
            "IWaOfDWQLRhyRGplJk7YgEX2a7m5wrhKBNeNoOGdmfw=",
        ),
    ],
    ids=["V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8"],
)
def test_the_worked_vectors(name, method, path, params, expected_prehash, expected_sign):
    message, sign, body = _sign(method, path, params)
    assert message == expected_prehash, name
    assert sign == expected_sign, name
    assert len(sign) == 44 and sign.endswith("=")
    if name == "V6":
        assert body == '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}'  # sent byte for byte
    if name == "V7":
        assert body == ""  # no body sent, none signed


def test_v9_the_demo_header_and_the_host_are_not_signed():
    headers = Signer(KEY, SECRET, PASSPHRASE).headers(TS_MS, "GET", "/api/v5/account/config")
    assert headers == {
        "OK-ACCESS-KEY": KEY,
        "OK-ACCESS-SIGN": "ev0iOaWdz8sTmB6Y1Pe05iM/KuC9mO+L/JnJR0SYHdw=",
        "OK-ACCESS-TIMESTAMP": TS,
        "OK-ACCESS-PASSPHRASE": PASSPHRASE,  # in plain text, not hashed
    }
    assert signing.DEMO_HEADER == "x-simulated-trading" and signing.DEMO_HEADER not in headers


def test_the_sdk_cross_check_signs_what_the_sdk_sends():
    """§3.2: OKX's SDK sends other bytes for V3, V6 and V7, and signs those: so do we."""
    raw_comma = prehash(TS, "GET", "/api/v5/account/balance?ccy=BTC,ETH")
    assert signing.signature(SECRET, raw_comma) == "VVoJxTcTim54Cvno7gaHfa0AY+h8jsERcxFtxHIsvxo="
    spaced = prehash(
        TS,
        "POST",
        "/api/v5/account/set-leverage",
        '{"instId": "BTC-USDT", "lever": "5", "mgnMode": "isolated"}',
    )
    assert signing.signature(SECRET, spaced) == "X3R5IAlqOeJSSQoMBGC5dqhcmPWkf2VpGSsur6AW0DI="
    braces = prehash(TS, "POST", "/api/v5/account/set-auto-loan", "{}")
    assert signing.signature(SECRET, braces) == "YTrWih5wlWPbvEUKvsY1AwvVYLPADubm4xIZ5ZrVGZI="


def test_the_secret_is_used_as_text_never_decoded_or_recased():
    message = f"{TS}GET/api/v5/account/config"
    plain = base64.b64encode(hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).digest()).decode()
    assert signing.signature(SECRET, message) == plain
    assert signing.signature(SECRET.lower(), message) != plain
    assert signing.signature(bytes.fromhex(SECRET).decode("latin-1"), message) != plain


def test_queries_keep_their_order_and_are_form_encoded():
    assert encode_query({"instType": "SPOT"}) == "instType=SPOT"
    assert encode_query([("b", "2"), ("a", "1")]) == "b=2&a=1"  # never sorted
    assert encode_query({"ccy": "BTC,ETH", "flag": True}) == "ccy=BTC%2CETH&flag=true"
    assert encode_query(None) == encode_query({}) == ""
    assert request_path("/api/v5/account/config") == "/api/v5/account/config"
    assert encode_body({"a": "1", "b": 2}) == '{"a":"1","b":2}'


def test_the_signer_never_shows_its_secret_or_passphrase():
    signer = Signer(KEY, SECRET, PASSPHRASE)
    assert SECRET not in repr(signer) and PASSPHRASE not in repr(signer) and KEY not in repr(signer)
    with pytest.raises(AttributeError):
        signer.extra = 1  # slots: nothing else is kept on it


def test_ccxt_signs_the_same_bytes_the_same_way():
    """ccxt 4.5.90's ``okx.sign()`` with a frozen clock, as the facts file made V1–V10."""
    import ccxt

    assert ccxt.__version__ == "4.5.90"
    exchange = ccxt.okx({"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE})
    base, frac = TS[:-1].split(".")
    exchange.milliseconds = lambda: (
        calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)
    )
    signer = Signer(KEY, SECRET, PASSPHRASE)
    for path, params in (
        ("account/config", {}),
        ("account/balance", {"ccy": "BTC,ETH"}),
        ("asset/asset-valuation", {"ccy": "USDT"}),
        ("asset/balances", {"ccy": "BTC"}),
    ):
        theirs = exchange.sign(path, ["private"], "GET", dict(params))
        query = encode_query(params)
        ours = signer.headers(TS_MS, "GET", request_path(f"/api/v5/{path}", query))
        assert theirs["url"] == f"https://www.okx.com/api/v5/{path}" + (f"?{query}" if query else "")
        for header in ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE"):
            assert theirs["headers"][header] == ours[header], (path, header)
    public = exchange.sign("market/tickers", "public", "GET", {"instType": "SPOT"})  # V10
    assert not any(name.startswith("OK-ACCESS") for name in public["headers"] or {})


def test_random_requests_verify_with_the_sandbox_checker():
    """The sandbox checks signatures with its own code: they agree on any bytes."""
    rng = random.Random(20240102)
    alphabet = string.ascii_letters + string.digits + "-_.,:~ "
    for _ in range(200):
        secret = "".join(rng.choice("0123456789ABCDEF") for _ in range(32))
        params = {
            "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 8))): "".join(
                rng.choice(alphabet) for _ in range(rng.randint(0, 12))
            )
            for _ in range(rng.randint(0, 4))
        }
        method = rng.choice(["GET", "POST"])
        query = encode_query(params) if method == "GET" else ""
        body = "" if method == "GET" else encode_body(params)
        ms = rng.randint(1_600_000_000_000, 1_900_000_000_000)
        headers = Signer(KEY, secret, PASSPHRASE).headers(
            ms, method, request_path("/api/v5/x/y", query), body
        )
        message = prehash(headers["OK-ACCESS-TIMESTAMP"], method, request_path("/api/v5/x/y", query), body)
        assert headers["OK-ACCESS-SIGN"] == sandbox_signature(secret, message.encode())
        assert parse_timestamp(headers["OK-ACCESS-TIMESTAMP"]) == ms
