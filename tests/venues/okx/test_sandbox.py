"""The OKX sandbox, tested over real HTTP on 127.0.0.1 with requests and plain hmac/base64.

No database and no Django settings are needed. Facts: shared/okx-api.md (§ numbers, vectors
V0-V10). Cast: the demo keys of sandbox_data/keys.json, found by the start of their note.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from exchanges.venues.okx.sandbox import (
    DEFAULT_KEYS_PATH,
    DEFAULT_TICKERS_PATH,
    ENDPOINTS,
    FAULT_NAMES,
    KEY_FIELDS,
    OkxSandbox,
    iso_timestamp,
    load_keys,
    load_tickers,
    parse_timestamp,
    prehash,
    signature,
    signature_ok,
    site_of,
)

DAY_MS = 86_400_000
KEYS = load_keys()
SCENARIOS = (
    "demo: good key",
    "demo: ip-bound good key",
    "demo: eea key",
    "demo: withdraw enabled",
    "demo: read-only",
    "demo: ip-bound elsewhere",
    "demo: demo-trading key",
    "demo: idle 15 days",
)


class Key(NamedTuple):
    key: str
    secret: str
    passphrase: str


def demo(prefix: str) -> Key:
    for api_key, entry in KEYS.items():
        if entry["note"].startswith(prefix):
            return Key(api_key, entry["secret"], entry["passphrase"])
    raise LookupError(prefix)


GOOD = demo("demo: good key")
IP_BOUND = demo("demo: ip-bound good key")
EEA = demo("demo: eea key")
WITHDRAW = demo("demo: withdraw enabled")
READ_ONLY = demo("demo: read-only")
ELSEWHERE = demo("demo: ip-bound elsewhere")
DEMO = demo("demo: demo-trading key")
IDLE = demo("demo: idle 15 days")
UNKNOWN = Key("0b7f4c1e-93aa-4d2b-8e61-5f0c2d9a7e13", "0123456789ABCDEF0123456789ABCDEF", "Nobody-1")

# §3: the vectors' shared inputs.
VECTOR = Key("6d21f451-5156-4af7-83a1-ef483c4573bc", "10E0F6068FEA5EFBCDD8039150DC6474", "Vector-Pass-9")
VECTOR_TS = "2024-01-02T03:04:05.678Z"
VECTOR_MS = 1704164645678
V1 = "ev0iOaWdz8sTmB6Y1Pe05iM/KuC9mO+L/JnJR0SYHdw="
V2 = "9FoP2Lc4Ru57GoczcyBgQPFGqJ2J1VBTAJGAa0Czl/U="
V3_CCXT = "ceGHzJGoR4D/wm28sT/Vvwt3m+uzswyXlDl9vqYSvIk="
V3_SDK = "VVoJxTcTim54Cvno7gaHfa0AY+h8jsERcxFtxHIsvxo="
V4 = "L+7ekr7QNf1oFLTF7YxUAtz2r28QFdLp8r7G+LHMMkA="
V5 = "DR+vJQnp41Orp7kgAW4utapbHjXWBADQqNPgQcz8H2A="
V6_BODY = '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}'
V6 = "tXRUjRFXrWFcuZzlkEHtWUQnQRgFWMo/wgSmb58uka8="
V6_SDK_BODY = '{"instId": "BTC-USDT", "lever": "5", "mgnMode": "isolated"}'
V6_SDK = "X3R5IAlqOeJSSQoMBGC5dqhcmPWkf2VpGSsur6AW0DI="
V7 = "ATZ/LZs4N4bzvm2PkEELn3t2kwVZNVW8g59izk2LF5s="
V7_SDK = "YTrWih5wlWPbvEUKvsY1AwvVYLPADubm4xIZ5ZrVGZI="
V8 = "IWaOfDWQLRhyRGplJk7YgEX2a7m5wrhKBNeNoOGdmfw="

BALANCE = "/api/v5/account/balance"
CONFIG = "/api/v5/account/config"
FUNDING = "/api/v5/asset/balances"
SAVINGS = "/api/v5/finance/savings/balance"
VALUATION = "/api/v5/asset/asset-valuation"
CURRENCIES = "/api/v5/asset/currencies"
LEVERAGE = "/api/v5/account/set-leverage"
TIME = "/api/v5/public/time"
TICKERS = "/api/v5/market/tickers"
TICKER = "/api/v5/market/ticker"
INSTRUMENTS = "/api/v5/public/instruments"
STATUS = "/api/v5/system/status"

UNKNOWN_BODY = b'{"msg":"API key doesn\'t exist","code":"50119"}'


@pytest.fixture
def sandbox():
    sb = OkxSandbox(load_keys(), load_tickers()).start()
    yield sb
    sb.stop()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def sign(secret: str, message: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


def call(
    http,
    sb,
    method: str,
    path: str,
    query: str = "",
    key: Key = GOOD,
    *,
    body: str | None = None,
    host: str | None = None,
    simulated: str | None = None,
    ts: int | str | None = None,
    secret: str | None = None,
    passphrase: str | None = None,
    signed_text: str | None = None,
    headers: dict[str, Any] | None = None,
) -> requests.Response:
    """A signed call: ``timestamp + METHOD + path?query + body`` exactly as sent (§2)."""
    stamp = ts if isinstance(ts, str) else iso_timestamp(sb.now_ms() if ts is None else ts)
    target = path + (f"?{query}" if query else "")
    message = signed_text if signed_text is not None else stamp + method + target + (body or "")
    sent: dict[str, Any] = {
        "OK-ACCESS-KEY": key.key,
        "OK-ACCESS-SIGN": sign(secret or key.secret, message),
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-PASSPHRASE": key.passphrase if passphrase is None else passphrase,
    }
    if body is not None:
        sent["Content-Type"] = "application/json"
    if host is not None:
        sent["Host"] = host
    if simulated is not None:
        sent["x-simulated-trading"] = simulated
    sent.update(headers or {})
    data = body.encode() if body is not None else None
    return http.request(method, sb.url + target, data=data, headers=sent)


def data_of(response: requests.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["code"] == "0" and payload["msg"] == "", payload
    assert isinstance(payload["data"], list)
    return payload["data"]


def assert_refused(response: requests.Response, status: int, code: str, msg: str | None = None) -> dict:
    """A gateway / auth refusal: ``{"msg","code"}`` without ``data`` (§5.1)."""
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code, payload
    assert list(payload) == ["msg", "code"], payload
    if msg is not None:
        assert payload["msg"] == msg
    return payload


def assert_failed(response: requests.Response, status: int, code: str, msg: str | None = None) -> dict:
    """A business error: ``{"code","data":[],"msg"}`` (§5.1)."""
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code and payload["data"] == [], payload
    if msg is not None:
        assert payload["msg"] == msg
    return payload


# --- the signature checker (vectors V0-V9) ----------------------------------------------------


def test_v0_the_documented_example_verifies():
    message = prehash("2020-12-08T09:08:57.715Z", "GET", "/api/v5/account/balance?ccy=BTC")
    assert message == b"2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC"
    expected = "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    assert signature("22582BD0CFF14C41EDBF1AB98506286D", message) == expected
    assert signature_ok("22582BD0CFF14C41EDBF1AB98506286D", message, expected)
    # the secret is text: its lower-case form is another key (§2 step 4)
    assert not signature_ok("22582bd0cff14c41edbf1ab98506286d", message, expected)


@pytest.mark.parametrize(
    ("method", "target", "body", "expected"),
    [
        ("GET", "/api/v5/account/config", "", V1),
        ("GET", "/api/v5/account/balance?ccy=BTC", "", V2),
        ("GET", "/api/v5/account/balance?ccy=BTC%2CETH", "", V3_CCXT),
        ("GET", "/api/v5/account/balance?ccy=BTC,ETH", "", V3_SDK),
        ("GET", "/api/v5/asset/balances", "", V4),
        ("GET", "/api/v5/asset/asset-valuation?ccy=USDT", "", V5),
        ("POST", "/api/v5/account/set-leverage", V6_BODY, V6),
        ("POST", "/api/v5/account/set-leverage", V6_SDK_BODY, V6_SDK),
        ("POST", "/api/v5/account/set-auto-loan", "", V7),
        ("POST", "/api/v5/account/set-auto-loan", "{}", V7_SDK),
        ("GET", "/api/v5/finance/savings/balance?ccy=USDT", "", V8),
    ],
    ids=["V1", "V2", "V3-ccxt", "V3-sdk", "V4", "V5", "V6", "V6-sdk", "V7", "V7-sdk", "V8"],
)
def test_the_vectors_verify_in_the_checker(method, target, body, expected):
    message = prehash(VECTOR_TS, method, target, body.encode())
    assert signature(VECTOR.secret, message) == expected
    assert signature_ok(VECTOR.secret, message, expected)
    assert not signature_ok(VECTOR.secret, message + b" ", expected)


@pytest.fixture
def vector_sandbox():
    """A sandbox knowing the vectors' key, its clock at the vectors' timestamp."""
    entry = {**KEYS[GOOD.key], "secret": VECTOR.secret, "passphrase": VECTOR.passphrase, "note": "vector"}
    sb = OkxSandbox({VECTOR.key: entry}, load_tickers()).start()
    sb.clock_offset_ms = VECTOR_MS - int(time.time() * 1000)
    yield sb
    sb.stop()


def _vector(http, sb, method: str, target: str, sign_value: str, body: str | None = None, **headers):
    sent = {
        "OK-ACCESS-KEY": VECTOR.key,
        "OK-ACCESS-SIGN": sign_value,
        "OK-ACCESS-TIMESTAMP": VECTOR_TS,
        "OK-ACCESS-PASSPHRASE": VECTOR.passphrase,
        "Host": "www.okx.com",
        **headers,
    }
    if body is not None:
        sent["Content-Type"] = "application/json"
    return http.request(
        method, sb.url + target, data=body.encode() if body is not None else None, headers=sent
    )


def test_the_vectors_are_accepted_over_http_exactly_as_each_client_sends_them(vector_sandbox, http):
    sb = vector_sandbox
    assert data_of(_vector(http, sb, "GET", "/api/v5/account/config", V1))[0]["uid"]
    assert data_of(_vector(http, sb, "GET", "/api/v5/account/balance?ccy=BTC", V2))[0]["details"]
    # V3 both ways: the query is signed as received, never decoded or rebuilt (§3.2)
    for target, value in (("?ccy=BTC%2CETH", V3_CCXT), ("?ccy=BTC,ETH", V3_SDK)):
        details = data_of(_vector(http, sb, "GET", BALANCE + target, value))[0]["details"]
        assert {d["ccy"] for d in details} == {"BTC", "ETH"}
    assert_refused(_vector(http, sb, "GET", BALANCE + "?ccy=BTC%2CETH", V3_SDK), 401, "50113")
    assert data_of(_vector(http, sb, "GET", FUNDING, V4))
    assert data_of(_vector(http, sb, "GET", VALUATION + "?ccy=USDT", V5))[0]["totalBal"]
    assert data_of(_vector(http, sb, "GET", SAVINGS + "?ccy=USDT", V8))[0]["ccy"] == "USDT"
    # V6: the body is signed byte for byte, with or without the SDK's spaces
    for body, value in ((V6_BODY, V6), (V6_SDK_BODY, V6_SDK)):
        answer = data_of(_vector(http, sb, "POST", LEVERAGE, value, body))[0]
        assert answer == {"lever": "5", "mgnMode": "isolated", "instId": "BTC-USDT", "posSide": ""}
    assert_refused(_vector(http, sb, "POST", LEVERAGE, V6, V6_SDK_BODY), 401, "50113")


def test_v9_the_demo_header_is_not_signed(vector_sandbox, http):
    sb = vector_sandbox
    sb.update_key(VECTOR.key, {"demo": True})
    assert data_of(_vector(http, sb, "GET", CONFIG, V1, **{"x-simulated-trading": "1"}))
    assert_refused(_vector(http, sb, "GET", CONFIG, V1), 401, "50101")


def test_the_host_is_not_signed_and_v10_public_calls_need_no_headers(vector_sandbox, http):
    sb = vector_sandbox
    assert data_of(_vector(http, sb, "GET", CONFIG, V1, Host="openapi.okx.com"))
    assert data_of(_vector(http, sb, "GET", CONFIG, V1, Host=f"127.0.0.1:{sb.port}"))
    assert data_of(http.get(f"{sb.url}{TICKERS}?instType=SPOT"))


# --- headers, key, passphrase, secret (§2, §5.2) ----------------------------------------------


@pytest.mark.parametrize(
    ("header", "code", "msg"),
    [
        ("OK-ACCESS-KEY", "50103", "Request header OK-ACCESS-KEY can not be empty."),
        ("OK-ACCESS-PASSPHRASE", "50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.'),
        ("OK-ACCESS-SIGN", "50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.'),
        ("OK-ACCESS-TIMESTAMP", "50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.'),
    ],
)
def test_a_missing_or_empty_header_is_named(sandbox, http, header, code, msg):
    assert_refused(call(http, sandbox, "GET", CONFIG, headers={header: None}), 401, code, msg)
    assert_refused(call(http, sandbox, "GET", CONFIG, headers={header: ""}), 401, code, msg)


def test_a_malformed_key_is_50111_and_an_unknown_one_50119_in_46_bytes(sandbox, http):
    for bad in (GOOD.key.upper(), GOOD.key[:-1], GOOD.key.replace("-", ""), "key " + GOOD.key):
        malformed = call(http, sandbox, "GET", CONFIG, key=Key(bad, GOOD.secret, GOOD.passphrase))
        assert_refused(malformed, 401, "50111", "Invalid OK-ACCESS-KEY")
    unknown = call(http, sandbox, "GET", CONFIG, key=UNKNOWN)
    assert_refused(unknown, 401, "50119", "API key doesn't exist")
    assert unknown.content == UNKNOWN_BODY and len(unknown.content) == 46  # ccxt#24601


def test_the_passphrase_is_checked_exactly(sandbox, http):
    for wrong in ("wrong", GOOD.passphrase.lower(), GOOD.passphrase + " ", GOOD.secret):
        answer = call(http, sandbox, "GET", CONFIG, passphrase=wrong)
        assert_refused(answer, 401, "50105", "Request header OK-ACCESS-PASSPHRASE incorrect.")
    assert data_of(call(http, sandbox, "GET", CONFIG))


def test_a_wrong_secret_is_invalid_sign_in_37_bytes(sandbox, http):
    answer = call(http, sandbox, "GET", CONFIG, secret=READ_ONLY.secret)
    assert_refused(answer, 401, "50113", "Invalid Sign")
    assert answer.content == b'{"msg":"Invalid Sign","code":"50113"}'  # ccxt#11109
    # the passphrase pasted as the secret (sieblyio/okx-api#22)
    assert_refused(call(http, sandbox, "GET", CONFIG, secret=GOOD.passphrase), 401, "50113")


def test_the_signature_covers_method_path_raw_query_and_body_as_sent(sandbox, http):
    stamp = iso_timestamp(sandbox.now_ms())
    cases = [
        ("GET", BALANCE, "ccy=BTC%2CETH", stamp + "GET" + BALANCE + "?ccy=BTC,ETH"),  # decoded
        ("GET", BALANCE, "ccy=BTC&ccy=ETH", stamp + "GET" + BALANCE + "?ccy=ETH&ccy=BTC"),  # sorted
        ("GET", BALANCE, "ccy=BTC", stamp + "get" + BALANCE + "?ccy=BTC"),  # method case
        ("GET", BALANCE, "ccy=BTC", stamp + "GET" + BALANCE),  # query left out
        ("GET", BALANCE, "", stamp + "GET" + f"{sandbox.url}{BALANCE}"),  # host included
        ("GET", BALANCE, "", stamp + "GET" + "/account/balance"),  # path cut
    ]
    for method, path, query, signed_text in cases:
        answer = call(http, sandbox, method, path, query, ts=stamp, signed_text=signed_text)
        assert_refused(answer, 401, "50113")
    tampered = stamp + "POST" + LEVERAGE + V6_BODY.replace('"5"', '"50"')
    assert_refused(
        call(http, sandbox, "POST", LEVERAGE, body=V6_BODY, ts=stamp, signed_text=tampered), 401, "50113"
    )
    assert data_of(call(http, sandbox, "GET", BALANCE, "ccy=BTC%2CETH"))
    assert data_of(call(http, sandbox, "POST", LEVERAGE, body=V6_BODY))
    # no body, none signed (V7): signed in, then refused for the missing parameter
    assert_failed(call(http, sandbox, "POST", LEVERAGE), 400, "50014", "Parameter lever can not be empty.")


# --- timestamps (§2 step 2) -------------------------------------------------------------------


def test_timestamps_more_than_30_seconds_off_are_expired(sandbox, http):
    now = sandbox.now_ms()
    for off in (-31_000, 31_000, -3_600_000):
        assert_refused(
            call(http, sandbox, "GET", CONFIG, ts=now + off), 401, "50102", "Timestamp request expired"
        )
    for off in (-25_000, 25_000):
        assert data_of(call(http, sandbox, "GET", CONFIG, ts=sandbox.now_ms() + off))


def test_unparsable_timestamps_are_50112_and_short_fractions_pass(sandbox, http):
    now = sandbox.now_ms()
    iso = iso_timestamp(now)
    for bad in (str(now), iso.replace("T", " "), iso[:-1], iso[:-1] + "+00:00", iso.lower(), "yesterday"):
        answer = call(http, sandbox, "GET", CONFIG, ts=bad)
        assert_refused(answer, 401, "50112", "Invalid OK-ACCESS-TIMESTAMP")
    # OKXNET's "sss" sends two digits of seconds as the fraction (§2 step 2); no fraction too
    seconds = iso[:19]
    for good in (seconds + "." + seconds[-2:] + "Z", seconds + "Z"):
        assert data_of(call(http, sandbox, "GET", CONFIG, ts=good))


def test_parse_timestamp_reads_iso_utc_milliseconds():
    assert parse_timestamp(VECTOR_TS) == VECTOR_MS
    assert parse_timestamp("2024-01-02T03:04:05Z") == VECTOR_MS - 678
    assert parse_timestamp("2024-01-02T03:04:05.6Z") == VECTOR_MS - 78
    assert parse_timestamp("2024-02-30T03:04:05.678Z") is None
    assert iso_timestamp(VECTOR_MS) == VECTOR_TS


def test_the_clock_offset_moves_e1_and_the_timestamp_check(sandbox, http):
    sandbox.clock_offset_ms = 600_000
    served = int(data_of(http.get(f"{sandbox.url}{TIME}"))[0]["ts"])
    assert abs(served - (time.time() * 1000 + 600_000)) < 5_000
    local = int(time.time() * 1000)
    assert_refused(call(http, sandbox, "GET", CONFIG, ts=local), 401, "50102")
    assert data_of(call(http, sandbox, "GET", CONFIG, ts=local + 600_000))
    assert (
        http.post(f"{sandbox.url}/_sandbox/clock", json={"clock_offset_ms": 0}).json()["clock_offset_ms"] == 0
    )


# --- sites (§1.2) -----------------------------------------------------------------------------


def test_site_of_reads_the_host_header():
    assert site_of("www.okx.com") == site_of("openapi.okx.com") == site_of("127.0.0.1:8080") == "global"
    assert site_of("EEA.okx.com:443") == site_of("my.okx.com") == site_of("eea.okx.com.") == "eea"
    assert site_of("us.okx.com") == "us"
    assert site_of("[::1]:9000") == site_of("") == site_of("example.org") == "global"


def test_a_key_works_only_on_its_own_sites_host(sandbox, http):
    assert data_of(call(http, sandbox, "GET", CONFIG, key=EEA, host="eea.okx.com"))
    assert data_of(call(http, sandbox, "GET", CONFIG, key=EEA, host="my.okx.com"))
    for host in (None, "www.okx.com", "us.okx.com"):
        answer = call(http, sandbox, "GET", CONFIG, key=EEA, host=host)
        assert_refused(answer, 401, "50119")
        assert answer.content == UNKNOWN_BODY  # exactly like an unknown key (python-okx#118)
    for host in ("eea.okx.com", "us.okx.com"):
        assert_refused(call(http, sandbox, "GET", CONFIG, key=GOOD, host=host), 401, "50119")
    for host in (None, "www.okx.com", "openapi.okx.com"):
        assert data_of(call(http, sandbox, "GET", CONFIG, key=GOOD, host=host))
    sandbox.update_key(GOOD.key, {"site": "us"})
    assert data_of(call(http, sandbox, "GET", CONFIG, key=GOOD, host="us.okx.com"))


def test_public_market_data_is_the_sites_own(sandbox, http):
    def listed(host):
        rows = data_of(http.get(f"{sandbox.url}{TICKERS}?instType=SPOT", headers={"Host": host}))
        return {row["instId"] for row in rows}

    global_, eea, us = listed("www.okx.com"), listed("eea.okx.com"), listed("us.okx.com")
    assert {"BTC-USDT", "BTC-USDC"} <= global_ and not {"BTC-EUR", "BTC-USD"} & global_
    assert {"BTC-EUR", "USDT-EUR", "BTC-USDT"} <= eea and "BTC-USD" not in eea
    assert {"BTC-USD", "USDT-USD"} <= us and "BTC-EUR" not in us
    spot = data_of(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=SPOT", headers={"Host": "eea.okx.com"}))
    assert {row["instId"] for row in spot} == eea


# --- environment, IP, frozen (§1.3, §5.2, §6) -------------------------------------------------


def test_demo_keys_need_the_demo_header_and_live_keys_refuse_it(sandbox, http):
    msg = "APIKey does not match current environment."
    assert_refused(call(http, sandbox, "GET", CONFIG, key=DEMO), 401, "50101", msg)
    assert_refused(call(http, sandbox, "GET", CONFIG, key=DEMO, simulated="0"), 401, "50101")
    assert data_of(call(http, sandbox, "GET", CONFIG, key=DEMO, simulated="1"))
    assert_refused(call(http, sandbox, "GET", CONFIG, key=GOOD, simulated="1"), 401, "50101", msg)
    assert data_of(call(http, sandbox, "GET", CONFIG, key=GOOD, simulated="0"))  # the SDK's live flag


def test_a_key_bound_elsewhere_is_50110_naming_the_callers_ip(sandbox, http):
    answer = call(http, sandbox, "GET", CONFIG, key=ELSEWHERE)
    assert_refused(answer, 401, "50110", "Your IP 127.0.0.1 is not included in your API key's IP whitelist.")
    for key in (IP_BOUND, WITHDRAW):
        assert data_of(call(http, sandbox, "GET", CONFIG, key=key))


def test_ip_lists_accept_network_segments_and_v6_entries_do_not_match_v4_callers(sandbox, http):
    for ip, allowed in (
        ("127.0.0.0/8", True),
        ("10.0.0.0/8,127.0.0.1/32", True),
        ("10.0.0.0/8", False),
        ("::1", False),
        ("2001:db8::/32,203.0.113.7", False),
    ):
        sandbox.update_key(ELSEWHERE.key, {"ip": ip})
        answer = call(http, sandbox, "GET", CONFIG, key=ELSEWHERE)
        if allowed:
            assert data_of(answer)[0]["ip"] == ip
        else:
            assert_refused(answer, 401, "50110")


def test_a_frozen_key_is_50100(sandbox, http):
    sandbox.update_key(GOOD.key, {"frozen": True})
    answer = call(http, sandbox, "GET", CONFIG)
    assert_refused(answer, 400, "50100", "API frozen, please contact customer service.")
    http.post(f"{sandbox.url}/_sandbox/keys/{GOOD.key}", json={"frozen": False})
    assert data_of(call(http, sandbox, "GET", CONFIG))


def test_a_read_only_key_reads_but_may_not_trade(sandbox, http):
    assert data_of(call(http, sandbox, "GET", BALANCE, key=READ_ONLY))
    refused = call(http, sandbox, "POST", LEVERAGE, key=READ_ONLY, body=V6_BODY)
    assert_failed(refused, 200, "50120", "This API key doesn't have permission to use this function")


# --- the 14-day rule (§6 "Expiry") ------------------------------------------------------------


def test_an_idle_key_is_deleted_and_answers_like_an_unknown_one(sandbox, http):
    answer = call(http, sandbox, "GET", CONFIG, key=IDLE)
    assert_refused(answer, 401, "50119")
    assert answer.content == UNKNOWN_BODY
    assert sandbox.key_entry(IDLE.key)["deleted"] is True


def test_moving_the_clock_15_days_deletes_an_unbound_trade_key_for_good(sandbox, http):
    assert data_of(call(http, sandbox, "GET", CONFIG))  # resets its last signed call to now
    sandbox.clock_offset_ms = 15 * DAY_MS
    assert_refused(call(http, sandbox, "GET", CONFIG), 401, "50119")
    sandbox.clock_offset_ms = 0
    assert_refused(call(http, sandbox, "GET", CONFIG), 401, "50119")  # deleted, not paused
    # Not covered by the rule: IP-bound keys, read-only keys, demo keys (all idle for longer).
    sandbox.clock_offset_ms = 15 * DAY_MS
    for key, simulated in ((IP_BOUND, None), (WITHDRAW, None), (READ_ONLY, None), (DEMO, "1")):
        assert data_of(call(http, sandbox, "GET", CONFIG, key=key, simulated=simulated)), key


def test_every_signed_call_resets_the_14_days_and_public_calls_do_not(sandbox, http):
    sandbox.clock_offset_ms = 10 * DAY_MS
    assert data_of(call(http, sandbox, "GET", BALANCE))
    sandbox.clock_offset_ms = 20 * DAY_MS  # 10 days after that call
    headers = {"OK-ACCESS-KEY": GOOD.key, "OK-ACCESS-PASSPHRASE": GOOD.passphrase}
    assert data_of(http.get(f"{sandbox.url}{TIME}", headers=headers))  # not a use of the key
    assert sandbox.key_entry(GOOD.key)["lastSignedCallDaysAgo"] == pytest.approx(10, abs=0.01)
    assert data_of(call(http, sandbox, "GET", FUNDING))
    assert sandbox.key_entry(GOOD.key)["lastSignedCallDaysAgo"] == pytest.approx(0, abs=0.01)
    sandbox.clock_offset_ms = 34 * DAY_MS - 60_000  # a minute short of 14 days: still there
    assert data_of(call(http, sandbox, "GET", CONFIG))
    sandbox.clock_offset_ms = 48 * DAY_MS  # 14 days after that call, and the test's milliseconds
    assert_refused(call(http, sandbox, "GET", CONFIG), 401, "50119")


def test_refused_calls_do_not_count_as_use(sandbox, http):
    sandbox.update_key(GOOD.key, {"lastSignedCallDaysAgo": 13.9})
    assert_refused(call(http, sandbox, "GET", CONFIG, passphrase="wrong"), 401, "50105")
    assert sandbox.key_entry(GOOD.key)["lastSignedCallDaysAgo"] == pytest.approx(13.9, abs=0.01)
    sandbox.clock_offset_ms = DAY_MS // 5  # 14.1 days
    assert_refused(call(http, sandbox, "GET", CONFIG), 401, "50119")


def test_the_keys_hook_brings_a_deleted_key_back_and_shows_no_secret(sandbox, http):
    shown = http.get(f"{sandbox.url}/_sandbox/keys/{IDLE.key}").json()
    assert shown["apiKey"] == IDLE.key and "secret" not in shown and "passphrase" not in shown
    assert shown["lastSignedCallDaysAgo"] == pytest.approx(15, abs=0.01)
    assert_refused(call(http, sandbox, "GET", CONFIG, key=IDLE), 401, "50119")
    back = http.post(
        f"{sandbox.url}/_sandbox/keys/{IDLE.key}", json={"deleted": False, "lastSignedCallDaysAgo": 1}
    )
    assert back.status_code == 200 and back.json()["deleted"] is False
    assert data_of(call(http, sandbox, "GET", CONFIG, key=IDLE))


def test_the_keys_hook_refuses_what_okx_has_no_such_key_for(sandbox, http):
    url = f"{sandbox.url}/_sandbox/keys"
    for key, bad in (
        (GOOD.key, {"site": "asia"}),
        (GOOD.key, {"perm": "trade"}),  # read_only is always there
        (GOOD.key, {"perm": "read_only,admin"}),
        (GOOD.key, {"ip": "not-an-ip"}),
        (GOOD.key, {"acctLv": "9"}),
        (GOOD.key, {"frozen": "yes"}),
        (GOOD.key, {"secret": "ABC"}),
        (DEMO.key, {"perm": "read_only,trade,withdraw"}),  # demo trading cannot withdraw
        (GOOD.key, {"lastSignedCallDaysAgo": -1}),
    ):
        assert http.post(f"{url}/{key}", json=bad).status_code == 400, bad
    assert http.get(f"{url}/{UNKNOWN.key}").status_code == 404
    assert set(KEY_FIELDS) >= {"site", "demo", "perm", "ip", "frozen", "lastSignedCallDaysAgo", "trading"}


# --- endpoints (§4) ---------------------------------------------------------------------------


def test_e1_time_and_envelopes_and_unknown_paths(sandbox, http):
    answer = http.get(f"{sandbox.url}{TIME}")
    assert list(answer.json()) == ["code", "msg", "data"]
    (row,) = data_of(answer)
    assert isinstance(row["ts"], str) and abs(int(row["ts"]) - sandbox.now_ms()) < 5_000
    assert_refused(http.post(f"{sandbox.url}{TIME}"), 405, "50115", "Invalid request method.")
    assert_refused(http.get(f"{sandbox.url}/api/v5/account/nothing"), 404, "404")
    assert set(ENDPOINTS) >= {f"GET {path}" for path in (TIME, CONFIG, BALANCE, FUNDING, SAVINGS, VALUATION)}


def test_e2_account_config_names_the_key_and_its_account(sandbox, http):
    (good,) = data_of(call(http, sandbox, "GET", CONFIG))
    entry = KEYS[GOOD.key]
    assert (good["uid"], good["mainUid"], good["perm"], good["ip"]) == (
        entry["uid"],
        entry["mainUid"],
        "read_only,trade",
        "",
    )
    assert good["label"] == entry["label"] and good["acctLv"] == "1" and good["type"] == "0"
    assert {"kycLv", "level", "posMode", "settleCcy", "greeksType"} <= set(good)
    (withdraw,) = data_of(call(http, sandbox, "GET", CONFIG, key=WITHDRAW))
    assert withdraw["perm"] == "read_only,withdraw,trade" and withdraw["ip"] == "127.0.0.1,::1"
    (read_only,) = data_of(call(http, sandbox, "GET", CONFIG, key=READ_ONLY))
    assert read_only["perm"] == "read_only"
    (bound,) = data_of(call(http, sandbox, "GET", CONFIG, key=IP_BOUND))
    assert bound["uid"] == good["uid"]  # two keys of one account


def test_e3_trading_balance_in_spot_mode(sandbox, http):
    (account,) = data_of(call(http, sandbox, "GET", BALANCE))
    details = {d["ccy"]: d for d in account["details"]}
    assert "LTC" not in details  # cashBal and eq both 0
    btc = details["BTC"]
    assert (btc["availBal"], btc["frozenBal"], btc["cashBal"], btc["eq"]) == (
        "0.41235",
        "0.05",
        "0.46235",
        "0.46235",
    )
    assert btc["availEq"] == "" and btc["upl"] == "" and btc["liab"] == ""  # Spot mode (§4 E3)
    assert Decimal(btc["eqUsd"]) == Decimal("0.46235") * Decimal("97250.1")
    assert Decimal(details["CVC"]["eqUsd"]) == 850 * Decimal("0.00000131") * Decimal("97250.1")  # via BTC
    assert Decimal(details["GHST"]["eqUsd"]) == Decimal("160.2") * Decimal("0.000291") * Decimal("3420.55")
    assert details["DORA"]["eqUsd"] == "0"  # no route
    assert Decimal(details["USDT"]["frozenBal"]) > 0 and details["USDT"]["eqUsd"] == "3430.42718"
    total = sum(Decimal(d["eqUsd"]) for d in details.values())
    assert abs(Decimal(account["totalEq"]) - total) < Decimal("0.000001")
    assert account["adjEq"] == "" and isinstance(account["uTime"], str)
    assert all(isinstance(v, str) for d in details.values() for k, v in d.items() if k != "collateralEnabled")


def test_e3_ccy_filter_shared_account_and_other_modes(sandbox, http):
    for query in ("ccy=BTC,ETH", "ccy=BTC%2CETH"):
        (account,) = data_of(call(http, sandbox, "GET", BALANCE, query))
        assert [d["ccy"] for d in account["details"]] == ["BTC", "ETH"]
    (bound,) = data_of(call(http, sandbox, "GET", BALANCE, key=IP_BOUND))
    assert {d["ccy"] for d in bound["details"]} >= {"BTC", "CVC", "GHST", "DORA"}  # same uid
    (futures,) = data_of(call(http, sandbox, "GET", BALANCE, key=READ_ONLY))  # acctLv 2
    eth = next(d for d in futures["details"] if d["ccy"] == "ETH")
    assert eth["availEq"] == eth["availBal"] == "0.31" and eth["frozenBal"] == "0.04" and eth["eq"] == "0.35"
    (multi,) = data_of(call(http, sandbox, "GET", BALANCE, key=WITHDRAW))  # acctLv 3
    assert multi["adjEq"] == multi["totalEq"] and multi["details"][0]["liab"] == "0"
    too_many = ",".join(f"C{i}" for i in range(21))
    assert_failed(call(http, sandbox, "GET", BALANCE, f"ccy={too_many}"), 200, "51000")


def test_e4_funding_lists_positive_balances_only(sandbox, http):
    rows = data_of(call(http, sandbox, "GET", FUNDING))
    assert rows == [
        {"availBal": "120.5", "bal": "120.5", "ccy": "USDT", "frozenBal": "0"},
        {"availBal": "0.15", "bal": "0.2", "ccy": "ETH", "frozenBal": "0.05"},
    ]
    assert data_of(call(http, sandbox, "GET", FUNDING, "ccy=ETH")) == rows[1:]
    assert data_of(call(http, sandbox, "GET", FUNDING, key=READ_ONLY)) == []


def test_e5_savings(sandbox, http):
    rows = data_of(call(http, sandbox, "GET", SAVINGS))
    usdt = rows[0]
    assert set(usdt) == {"earnings", "redemptAmt", "rate", "ccy", "amt", "loanAmt", "pendingAmt"}
    assert (usdt["ccy"], usdt["amt"], usdt["loanAmt"], usdt["pendingAmt"]) == (
        "USDT",
        "500.0012473",
        "499.9912473",
        "0.01",
    )
    assert data_of(call(http, sandbox, "GET", SAVINGS, "ccy=ETH"))[0]["loanAmt"] == "0.5"


def test_e6_valuation_per_account_family(sandbox, http):
    (usdt,) = data_of(call(http, sandbox, "GET", VALUATION, "ccy=USDT"))
    details = usdt["details"]
    assert set(details) == {"classic", "earn", "funding", "trading"}
    assert Decimal(details["funding"]) == round(Decimal("120.5") + Decimal("0.2") * Decimal("3420.55"), 2)
    savings = Decimal("500.0012473") + Decimal("0.5") * Decimal("3420.55")
    assert Decimal(details["earn"]) == round(savings, 2) + round(10 * Decimal("182.417"), 2)  # + otherEarn
    parts = sum(Decimal(details[name]) for name in ("earn", "funding", "trading"))
    assert Decimal(usdt["totalBal"]) == parts
    time.sleep(1.05)  # 1 request per second (§4 E6)
    (btc,) = data_of(call(http, sandbox, "GET", VALUATION))  # default unit BTC
    assert abs(Decimal(btc["totalBal"]) * Decimal("97250.1") - parts) < 1
    time.sleep(1.05)
    (eur,) = data_of(call(http, sandbox, "GET", VALUATION, "ccy=EUR", key=EEA, host="eea.okx.com"))
    assert Decimal(eur["details"]["funding"]) == 200  # EUR via USDT-EUR
    time.sleep(1.05)
    assert_failed(call(http, sandbox, "GET", VALUATION, "ccy=XYZ"), 200, "51000")


def test_e7_tickers_need_an_instrument_type(sandbox, http):
    assert_failed(http.get(f"{sandbox.url}{TICKERS}"), 400, "50014", "Parameter instType can not be empty.")
    rows = {row["instId"]: row for row in data_of(http.get(f"{sandbox.url}{TICKERS}?instType=SPOT"))}
    btc = rows["BTC-USDT"]
    assert btc["last"] == "97250.1" and btc["instType"] == "SPOT"
    assert set(btc) == {
        "instType", "instId", "last", "lastSz", "askPx", "askSz", "bidPx", "bidSz", "open24h",
        "high24h", "low24h", "volCcy24h", "vol24h", "ts", "sodUtc0", "sodUtc8",
    }  # fmt: skip
    assert all(isinstance(value, str) for value in btc.values())
    assert Decimal(btc["bidPx"]) < Decimal(btc["last"]) < Decimal(btc["askPx"])
    assert {"CVC-BTC", "GHST-ETH", "ETH-BTC"} <= set(rows) and not any("DORA" in i for i in rows)
    assert data_of(http.get(f"{sandbox.url}{TICKERS}?instType=SWAP")) == []
    (one,) = data_of(http.get(f"{sandbox.url}{TICKER}?instId=ETH-USDT"))
    assert one["last"] == "3420.55"
    assert_failed(http.get(f"{sandbox.url}{TICKER}?instId=DORA-USDT"), 200, "51001")


def test_instruments_and_currencies_for_ccxt(sandbox, http):
    assert_failed(http.get(f"{sandbox.url}{INSTRUMENTS}"), 400, "50014")
    spot = {row["instId"]: row for row in data_of(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=SPOT"))}
    btc = spot["BTC-USDT"]
    assert (btc["baseCcy"], btc["quoteCcy"], btc["state"], btc["tickSz"]) == ("BTC", "USDT", "live", "0.1")
    assert spot["CVC-BTC"]["tickSz"] == "0.00000001"
    margin = data_of(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=MARGIN"))
    assert {row["instId"] for row in margin} == {"BTC-USDT", "ETH-USDT", "SOL-USDT"}
    for kind in ("FUTURES", "SWAP", "OPTION"):
        assert data_of(http.get(f"{sandbox.url}{INSTRUMENTS}?instType={kind}")) == []
    assert_failed(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=BONDS"), 200, "51000")
    assert_refused(http.get(f"{sandbox.url}{CURRENCIES}"), 401, "50103")  # signed
    rows = data_of(call(http, sandbox, "GET", CURRENCIES))
    chains = {row["chain"] for row in rows}
    assert {"USDT-TRC20", "USDT-ERC20", "BTC-Bitcoin", "DORA-ERC20"} <= chains
    assert {row["ccy"] for row in data_of(call(http, sandbox, "GET", CURRENCIES, "ccy=BTC"))} == {"BTC"}


def test_e9_status_and_post_rules(sandbox, http):
    assert data_of(http.get(f"{sandbox.url}{STATUS}")) == []
    no_json = call(http, sandbox, "POST", LEVERAGE, body="lever=5")
    assert_failed(no_json, 400, "50002")
    wrong_type = call(http, sandbox, "POST", LEVERAGE, body=V6_BODY, headers={"Content-Type": "text/plain"})
    assert_failed(wrong_type, 400, "50006")
    assert_failed(call(http, sandbox, "POST", LEVERAGE, body='{"lever":"5"}'), 400, "50014")


def test_a_handler_failure_is_okxs_system_error(sandbox, http):
    sandbox.tickers = [{"instId": "BTC-USDT"}]  # no last price: the handler raises
    assert_refused(http.get(f"{sandbox.url}{TICKERS}?instType=SPOT"), 500, "50026")


# --- rate limits (§4, §8) ---------------------------------------------------------------------


def test_private_limits_are_per_endpoint_and_user_id(sandbox, http):
    assert data_of(call(http, sandbox, "GET", VALUATION))
    # the ip-bound key is another key of the same account: it shares the window
    limited = call(http, sandbox, "GET", VALUATION, key=IP_BOUND)
    assert_refused(limited, 429, "50011", "Too Many Requests")
    assert limited.content == b'{"msg":"Too Many Requests","code":"50011"}'
    assert data_of(call(http, sandbox, "GET", VALUATION, key=READ_ONLY))  # another account
    assert data_of(call(http, sandbox, "GET", CONFIG))  # another endpoint
    stats = http.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["busiest_window_per_caller"][VALUATION] == 2
    assert stats["refused_by_rate_limit"] == {VALUATION: 1}
    assert http.delete(f"{sandbox.url}/_sandbox/stats").json()["requests"] == 0
    assert data_of(call(http, sandbox, "GET", VALUATION))  # DELETE also reset the windows


def test_e2_allows_five_calls_in_two_seconds(sandbox, http):
    for _ in range(5):
        assert data_of(call(http, sandbox, "GET", CONFIG))
    assert_refused(call(http, sandbox, "GET", CONFIG), 429, "50011")
    sandbox.limits[CONFIG] = (100, 2000)  # the load-test knob
    assert data_of(call(http, sandbox, "GET", CONFIG))


def test_public_limits_are_per_ip_and_instruments_per_type(sandbox, http):
    for _ in range(10):
        assert data_of(http.get(f"{sandbox.url}{TIME}"))
    assert_refused(http.get(f"{sandbox.url}{TIME}"), 429, "50011")
    for _ in range(20):
        assert data_of(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=SPOT"))
    assert_refused(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=SPOT"), 429, "50011")
    assert data_of(http.get(f"{sandbox.url}{INSTRUMENTS}?instType=SWAP")) == []
    assert sandbox.stats.snapshot()["busiest_window_per_caller"][f"{INSTRUMENTS}:SPOT"] == 21


# --- faults (§5.2, §12) -----------------------------------------------------------------------


def test_the_faults_hook_lists_shows_and_refuses(sandbox, http):
    shown = http.get(f"{sandbox.url}/_sandbox/faults").json()
    assert set(shown) == set(FAULT_NAMES)
    assert {"rate_limited", "maintenance", "http_status", "malformed_json", "latency_ms"} <= set(FAULT_NAMES)
    assert (
        http.post(f"{sandbox.url}/_sandbox/faults", json={"rate_limited": 50013}).json()["rate_limited"]
        == "50013"
    )
    assert http.delete(f"{sandbox.url}/_sandbox/faults").json()["rate_limited"] is False
    for bad in ({"rate_limited": 42}, {"maintenance": "yes"}, {"nope": True}, {"http_status": 1000}):
        assert http.post(f"{sandbox.url}/_sandbox/faults", json=bad).status_code == 400, bad


@pytest.mark.parametrize(
    ("fault", "status", "code", "msg"),
    [
        ({"maintenance": True}, 503, "50001", "Service temporarily unavailable. Please try again later."),
        ({"rate_limited": True}, 429, "50011", "Too Many Requests"),
        ({"rate_limited": "50013"}, 429, "50013", "Systems are busy. Please try again later."),
        ({"system_error": True}, 500, "50026", "System error. Try again later"),
    ],
    ids=["maintenance", "rate-limited", "busy", "system-error"],
)
def test_json_faults_answer_every_path(sandbox, http, fault, status, code, msg):
    sandbox.faults.update(**fault)
    assert_refused(call(http, sandbox, "GET", CONFIG), status, code, msg)
    assert_refused(http.get(f"{sandbox.url}{TIME}"), status, code, msg)
    sandbox.faults.clear()
    assert data_of(call(http, sandbox, "GET", CONFIG))


def test_maintenance_is_announced_by_e9(sandbox, http):
    http.post(f"{sandbox.url}/_sandbox/faults", json={"maintenance": True})
    (event,) = data_of(http.get(f"{sandbox.url}{STATUS}"))
    assert event["state"] == "ongoing" and int(event["begin"]) < sandbox.now_ms() < int(event["end"])


def test_http_status_is_an_html_gateway_page(sandbox, http):
    sandbox.faults.http_status = 502
    answer = call(http, sandbox, "GET", CONFIG)
    assert answer.status_code == 502 and answer.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in answer.text


def test_malformed_json_latency_and_paths(sandbox, http):
    sandbox.faults.update(malformed_json=True, paths=[BALANCE])
    broken = call(http, sandbox, "GET", BALANCE)
    assert broken.status_code == 200 and len(broken.content) == int(broken.headers["Content-Length"])
    with pytest.raises(ValueError):
        json.loads(broken.content)
    assert data_of(call(http, sandbox, "GET", CONFIG))  # another path: untouched
    sandbox.faults.replace({"latency_ms": 300, "paths": [TIME]})
    started = time.monotonic()
    assert data_of(http.get(f"{sandbox.url}{TIME}"))
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert data_of(call(http, sandbox, "GET", CONFIG))
    assert time.monotonic() - started < 0.3


# --- data -------------------------------------------------------------------------------------


def test_the_demo_data_has_every_scenario_once_and_every_pricing_case():
    notes = [entry["note"] for entry in KEYS.values()]
    for note in notes:
        assert sum(note.startswith(s) for s in SCENARIOS) == 1, note
    assert sorted(next(s for s in SCENARIOS if n.startswith(s)) for n in notes) == sorted(SCENARIOS)
    good = KEYS[GOOD.key]
    assert good["site"] == "global" and good["ip"] == "" and good["perm"] == "read_only,trade"
    assert KEYS[IP_BOUND.key]["ip"] == KEYS[WITHDRAW.key]["ip"] == "127.0.0.1,::1"
    assert KEYS[EEA.key]["site"] == "eea" and KEYS[DEMO.key]["demo"] is True
    assert KEYS[ELSEWHERE.key]["ip"] == "203.0.113.7" and KEYS[IDLE.key]["lastSignedCallDaysAgo"] == 15
    assert any(Decimal(line["frozenBal"]) > 0 for line in good["trading"])
    assert good["funding"] and good["savings"]
    pairs = {row["instId"] for row in load_tickers() if "global" in row.get("sites", ["global"])}
    held = {line["ccy"] for line in good["trading"]}
    only_btc = [c for c in held if f"{c}-BTC" in pairs and f"{c}-USDT" not in pairs]
    only_eth = [
        c for c in held if f"{c}-ETH" in pairs and f"{c}-USDT" not in pairs and f"{c}-BTC" not in pairs
    ]
    no_route = [c for c in held if c != "USDT" and not any(p.startswith(f"{c}-") for p in pairs)]
    assert only_btc == ["CVC"] and only_eth == ["GHST"] and no_route == ["DORA"]
    assert DEFAULT_KEYS_PATH.exists() and DEFAULT_TICKERS_PATH.exists()


def test_malformed_data_is_refused(tmp_path: Path):
    entry = dict(KEYS[GOOD.key])
    for bad_key, bad_entry in (
        (GOOD.key.upper(), entry),
        (GOOD.key, {**entry, "secret": entry["secret"].lower()}),
        (GOOD.key, {**entry, "uid": 638247193051648214}),
        (GOOD.key, {**entry, "passphrase": ""}),
        (GOOD.key, {**entry, "uid": "1234567", "perm": "read_only,withdraw"}),  # sub-account
        (GOOD.key, {**entry, "trading": [{"availBal": "1"}]}),
    ):
        path = tmp_path / "keys.json"
        path.write_text(json.dumps({bad_key: bad_entry}))
        with pytest.raises(ValueError):
            load_keys(path)
    path = tmp_path / "tickers.json"
    for rows in ([{"instId": "btc-usdt", "last": "1"}], [{"instId": "BTC-USDT", "last": "0"}], {"a": 1}):
        path.write_text(json.dumps(rows))
        with pytest.raises(ValueError):
            load_tickers(path)


# --- serving ----------------------------------------------------------------------------------


def test_keep_alive_and_concurrent_calls_are_served(sandbox, http):
    sandbox.limits[TIME] = (1000, 2000)
    started = time.monotonic()
    for _ in range(50):
        assert data_of(http.get(f"{sandbox.url}{TIME}"))
    assert time.monotonic() - started < 5
    results: list[int] = []

    def worker() -> None:
        with requests.Session() as own:
            results.append(own.get(f"{sandbox.url}{TIME}").status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [200] * 8


def test_the_context_manager_starts_and_stops(http):
    with OkxSandbox(load_keys(), load_tickers()) as sb:
        assert data_of(http.get(f"{sb.url}{TIME}"))
        url = sb.url
    assert "okx" in repr(sb).lower() or "Okx" in repr(sb)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}{TIME}", timeout=2)
