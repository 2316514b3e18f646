"""The HTX sandbox, tested over real HTTP with requests and exchanges.venues.htx.signing.

No database and no Django settings are needed. Cast: alice has a good key (and a second key with
withdraw on the same uid), bob is another HTX user whose account alice must not read.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import ccxt
import pytest
import requests

from exchanges.venues.htx import signing
from exchanges.venues.htx.sandbox import (
    DEFAULT_ACCOUNTS_PATH,
    DEFAULT_TICKERS_PATH,
    HtxSandbox,
    load_accounts,
    load_tickers,
)

ALICE = "alice1a2-b3c4d5e6-f7a8b9c0-d1e2f"
ALICE_WITHDRAW = "alice9f8-e7d6c5b4-a3f2e1d0-c9b8a"
BOB = "bob0a1b2-c3d4e5f6-a7b8c9d0-e1f2a"
EXPIRED = "expd1a2b-c3d4e5f6-a7b8c9d0-e1f2a"
STALE = "stal1a2b-c3d4e5f6-a7b8c9d0-e1f2a"  # status normal but validDays 0
FAR_IP = "farip1a2-b3c4d5e6-f7a8b9c0-d1e2f"
LOOPBACK = "loop1a2b-c3d4e5f6-a7b8c9d0-e1f2a"
TRADE_ONLY = "trad1a2b-c3d4e5f6-a7b8c9d0-e1f2a"
SUB = "subu1a2b-c3d4e5f6-a7b8c9d0-e1f2a"
READ_ONLY = "read1a2b-c3d4e5f6-a7b8c9d0-e1f2a"
UNKNOWN = "nope1a2b-c3d4e5f6-a7b8c9d0-e1f2a"

ALICE_UID = 1001
BOB_UID = 1002

MSG_ACCESS_KEY = "Signature not valid: Incorrect Access key [Access key错误]"
MSG_TIME = (
    "Signature not valid: Invalid submission time or incorrect time format [无效的提交时间，或时间格式错误]"
)
MSG_VERIFY = "Signature not valid: Verification failure [校验失败]"
MSG_PERMISSION = "Signature not valid: API key has no permission [API Key没有权限]"
MSG_EXPIRED = "APIkey has expired"
MSG_LOGIN = "The account is not logged in, please log in and try again."
MSG_RATE = "Frequency of requests has exceeded the limit, please try again later"
MSG_GATEWAY = "Failed to load data. Try again later."

TICKERS = [
    {
        "symbol": "btcusdt",
        "open": 42870.15,
        "high": 43612.0,
        "low": 42510.33,
        "close": 43250.5,
        "amount": 6521.382915,
        "vol": 281954123.6524,
        "count": 412873,
        "bid": 43250.49,
        "bidSize": 0.8521,
        "ask": 43250.5,
        "askSize": 1.2045,
    },
]


def key(secret: str, uid: int, **extra: Any) -> dict[str, Any]:
    return {
        "secret": secret,
        "uid": uid,
        "note": "test",
        "permission": "readOnly,trade",
        "ipAddresses": "",
        "validDays": 80,
        "status": "normal",
        "createTime": 1615192704000,
        "updateTime": 1623030338000,
        **extra,
    }


def spot(account_id: int, *lines: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "id": account_id,
        "type": "spot",
        "subtype": "",
        "state": "working",
        "list": [{"currency": c, "type": t, "balance": b} for c, t, b in lines],
    }


def make_accounts() -> dict[str, dict[str, Any]]:
    alice_accounts = [
        spot(
            2001,
            ("usdt", "trade", "91.850043797676510303"),
            ("usdt", "frozen", "5.160000000000000015"),
            ("btc", "trade", "0.000000000000000001"),
        ),
        {"id": 2002, "type": "otc", "subtype": "", "state": "working", "list": []},
    ]
    return {
        ALICE: key("5f2e8d1c-9a7b3c4d-6e5f4a3b-2c1d0", ALICE_UID, accounts=alice_accounts),
        ALICE_WITHDRAW: key(
            "a1b2c3d4-e5f60718-293a4b5c-6d7e8", ALICE_UID, permission="readOnly,trade,withdraw"
        ),
        BOB: key("0f1e2d3c-4b5a6978-8796a5b4-c3d2e", BOB_UID, accounts=[spot(3001)]),
        EXPIRED: key("9e8d7c6b-5a4f3e2d-1c0b9a8f-7e6d5", 1003, status="expired", validDays=0),
        STALE: key("8d7c6b5a-4f3e2d1c-0b9a8f7e-6d5c4", 1003, validDays=0),
        FAR_IP: key("3c4d5e6f-7a8b9c0d-1e2f3a4b-5c6d7", 1004, ipAddresses="203.0.113.7"),
        LOOPBACK: key("7b8c9d0e-1f2a3b4c-5d6e7f80-91a2b", 1005, ipAddresses="10.0.0.0/8,127.0.0.0/8"),
        TRADE_ONLY: key("2d3e4f5a-6b7c8d9e-0f1a2b3c-4d5e6", 1006, permission="trade"),
        SUB: key("6e5d4c3b-2a1f0e9d-8c7b6a5f-4e3d2", 1007, subUser=True, accounts=[spot(7001)]),
        READ_ONLY: key(
            "1a2b3c4d-5e6f7a8b-9c0d1e2f-3a4b5", 1008, permission="readOnly", accounts=[spot(8001)]
        ),
    }


@pytest.fixture
def sandbox():
    sb = HtxSandbox(make_accounts(), [dict(t) for t in TICKERS], port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def netloc(sb: HtxSandbox) -> str:
    return urlsplit(sb.url).netloc


def now_stamp() -> str:
    return signing.htx_timestamp(datetime.now(UTC))


def signed_url(
    sb: HtxSandbox,
    path: str,
    params: dict[str, str] | None = None,
    *,
    access_key: str = ALICE,
    secret: str | None = None,
    host: str | None = None,
    timestamp: str | None = None,
) -> str:
    """ccxt style: send exactly the canonical query that was signed, plus Signature."""
    if secret is None:
        secret = sb.accounts.get(access_key, {}).get("secret", "00000000-00000000-00000000-00000")
    query = signing.signed_query(
        method="GET",
        host=host or netloc(sb),
        path=path,
        access_key=access_key,
        secret=secret,
        timestamp=timestamp or now_stamp(),
        params=params,
    )
    return f"{sb.url}{path}?{query}"


def signed_get(http: requests.Session, sb: HtxSandbox, path: str, params=None, **kw):
    return http.get(signed_url(sb, path, params, **kw), timeout=5)


def assert_v1_error(response: requests.Response, code: str, message: str) -> None:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert response.json() == {
        "status": "error",
        "err-code": code,
        "err-msg": message,
        "data": None,
    }


# --- default data ---------------------------------------------------------------------------


def test_the_default_files_load_and_hold_the_five_kinds_of_keys():
    accounts = load_accounts()
    tickers = load_tickers()
    assert load_accounts(DEFAULT_ACCOUNTS_PATH) == accounts
    assert load_tickers(DEFAULT_TICKERS_PATH) == tickers
    group = r"[0-9a-z]{8}-[0-9a-z]{8}-[0-9a-z]{8}-[0-9a-z]{5}"
    for access_key, entry in accounts.items():
        assert re.fullmatch(group, access_key), access_key
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{5}", entry["secret"])
        assert entry["note"]

    def perms(entry):
        return set(entry["permission"].split(","))

    good = [
        e
        for e in accounts.values()
        if perms(e) == {"readOnly", "trade"}
        and e["ipAddresses"] == ""
        and e["validDays"] > 0
        and e["status"] == "normal"
        and not e.get("subUser")
    ]
    assert good
    account_types = {a["type"] for a in good[0]["accounts"]}
    assert "spot" in account_types and account_types & {"otc", "point"}
    spot_lines = next(a for a in good[0]["accounts"] if a["type"] == "spot")["list"]
    held = {(line["currency"], line["type"]) for line in spot_lines}
    assert {("usdt", "trade"), ("usdt", "frozen"), ("btc", "trade"), ("eth", "trade")} <= held
    symbols = {t["symbol"] for t in tickers}
    btc_only = [c for c, _ in held if f"{c}btc" in symbols and f"{c}usdt" not in symbols and c != "usdt"]
    assert btc_only, "one coin must have a btc pair but no usdt pair"
    assert {"btcusdt", "ethusdt", "ethbtc", "usdcusdt"} <= symbols
    for line in spot_lines:
        Decimal(line["balance"])  # string decimals
        assert isinstance(line["balance"], str)

    assert any("withdraw" in perms(e) for e in accounts.values())
    assert any("203.0.113.7" in e["ipAddresses"] for e in accounts.values())
    assert any(e["status"] == "expired" and e["validDays"] == 0 for e in accounts.values())
    assert any(perms(e) == {"readOnly"} for e in accounts.values())
    for t in tickers:
        assert set(t) == {
            "symbol", "open", "high", "low", "close", "amount", "vol", "count",
            "bid", "bidSize", "ask", "askSize",
        }  # fmt: skip


def test_the_default_keys_behave_as_their_notes_say(http):
    with HtxSandbox(load_accounts(), load_tickers()) as sb:
        outcomes = {}
        for access_key, entry in sb.accounts.items():
            body = signed_get(http, sb, "/v1/account/accounts", access_key=access_key).json()
            outcomes[access_key] = body.get("err-msg", body["status"])
            if "203.0.113.7" in entry["ipAddresses"]:
                assert "Incorrect IP address" in outcomes[access_key]
            elif entry["status"] == "expired":
                assert outcomes[access_key] == MSG_EXPIRED
            else:
                assert outcomes[access_key] == "ok", (access_key, body)


# --- success shapes -------------------------------------------------------------------------


def test_it_tells_the_server_time_including_the_clock_offset(sandbox, http):
    before = int(time.time() * 1000)
    body = http.get(f"{sandbox.url}/v1/common/timestamp").json()
    assert set(body) == {"status", "data"} and body["status"] == "ok"
    assert before - 5 <= body["data"] <= int(time.time() * 1000) + 5

    sandbox.clock_offset_ms = -3_600_000
    shifted = http.get(f"{sandbox.url}/v1/common/timestamp").json()["data"]
    assert abs(shifted - (time.time() * 1000 - 3_600_000)) < 1000


def test_it_lists_tickers_as_htx_does(sandbox, http):
    response = http.get(f"{sandbox.url}/market/tickers")
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert set(body) == {"status", "ts", "data"} and body["status"] == "ok"
    assert body["data"] == TICKERS
    assert isinstance(body["data"][0]["close"], float)  # prices are JSON numbers
    assert '"close":43250.5' in response.text


def test_it_returns_the_uid_of_the_key(sandbox, http):
    body = signed_get(http, sandbox, "/v2/user/uid").json()
    assert body == {"code": 200, "data": ALICE_UID}


def test_it_describes_the_key_through_the_api_key_endpoint(sandbox, http):
    params = {"uid": str(ALICE_UID), "accessKey": ALICE}
    body = signed_get(http, sandbox, "/v2/user/api-key", params).json()
    assert body == {
        "code": 200,
        "message": "success",
        "ok": True,
        "data": [
            {
                "accessKey": ALICE,
                "status": "normal",
                "note": "test",
                "permission": "readOnly,trade",
                "ipAddresses": "",
                "validDays": 80,
                "createTime": 1615192704000,
                "updateTime": 1623030338000,
            }
        ],
    }


def test_it_lists_every_key_of_the_uid_when_no_access_key_is_given(sandbox, http):
    body = signed_get(http, sandbox, "/v2/user/api-key", {"uid": str(ALICE_UID)}).json()
    assert [k["accessKey"] for k in body["data"]] == [ALICE, ALICE_WITHDRAW]
    assert body["data"][1]["permission"] == "readOnly,trade,withdraw"


def test_it_refuses_an_api_key_query_for_another_uid(sandbox, http):
    body = signed_get(http, sandbox, "/v2/user/api-key", {"uid": str(BOB_UID)}).json()
    assert body == {"code": 1002, "message": "forbidden"}


def test_it_refuses_an_api_key_query_without_uid(sandbox, http):
    body = signed_get(http, sandbox, "/v2/user/api-key", {"accessKey": ALICE}).json()
    assert body == {"code": 2003, "message": 'missing mandatory field "uid"'}
    body = signed_get(http, sandbox, "/v2/user/api-key", {"uid": "abc"}).json()
    assert body == {"code": 2002, "message": 'invalid field value in "uid"'}


def test_it_refuses_user_endpoints_to_a_sub_user_key_but_shows_its_balances(sandbox, http):
    assert signed_get(http, sandbox, "/v2/user/uid", access_key=SUB).json() == {
        "code": 1002,
        "message": "forbidden",
    }
    params = {"uid": "1007", "accessKey": SUB}
    response = signed_get(http, sandbox, "/v2/user/api-key", params, access_key=SUB)
    assert response.status_code == 200
    assert response.json() == {"code": 1002, "message": "forbidden"}
    body = signed_get(http, sandbox, "/v1/account/accounts/7001/balance", access_key=SUB).json()
    assert body["status"] == "ok"


def test_it_lists_the_accounts_of_the_key(sandbox, http):
    body = signed_get(http, sandbox, "/v1/account/accounts").json()
    assert body == {
        "status": "ok",
        "data": [
            {"id": 2001, "type": "spot", "subtype": "", "state": "working"},
            {"id": 2002, "type": "otc", "subtype": "", "state": "working"},
        ],
    }


def test_a_second_key_of_the_same_uid_sees_the_same_accounts(sandbox, http):
    body = signed_get(http, sandbox, "/v1/account/accounts", access_key=ALICE_WITHDRAW).json()
    assert [a["id"] for a in body["data"]] == [2001, 2002]


def test_it_returns_balances_as_exact_string_decimals(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts/2001/balance")
    body = response.json()
    assert set(body) == {"status", "data"} and body["status"] == "ok"
    assert set(body["data"]) == {"id", "type", "state", "list"}
    assert (body["data"]["id"], body["data"]["type"], body["data"]["state"]) == (
        2001,
        "spot",
        "working",
    )
    assert body["data"]["list"][0] == {
        "currency": "usdt",
        "type": "trade",
        "balance": "91.850043797676510303",
        "seq-num": "0",
    }
    assert '"balance":"0.000000000000000001"' in response.text
    assert all(set(line) == {"currency", "type", "balance", "seq-num"} for line in body["data"]["list"])


def test_it_refuses_the_balance_of_an_account_that_is_not_the_keys(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts/3001/balance")
    assert_v1_error(
        response,
        "account-get-balance-account-inexistent-error",
        "account for id `1,001` and user id `3,001` does not exist",
    )


def test_it_sends_rate_limit_headers_on_the_account_endpoints(sandbox, http):
    for path in ("/v1/account/accounts", "/v1/account/accounts/2001/balance"):
        before = int(time.time() * 1000)
        response = signed_get(http, sandbox, path)
        assert response.headers["X-HB-RateLimit-Requests-Remain"] == "99"
        expire = int(response.headers["X-HB-RateLimit-Requests-Expire"])
        assert before + 1900 <= expire <= int(time.time() * 1000) + 2100
    response = signed_get(http, sandbox, "/v2/user/uid")
    assert "X-HB-RateLimit-Requests-Remain" not in response.headers


def test_it_refuses_calls_past_the_rate_limit_of_the_uid(sandbox, http):
    assert (sandbox.rate_limit, sandbox.rate_limit_window_ms) == (100, 2000)
    sandbox.rate_limit = 3
    remains = [
        signed_get(http, sandbox, "/v1/account/accounts", access_key=k).headers[
            "X-HB-RateLimit-Requests-Remain"
        ]
        for k in (ALICE, ALICE_WITHDRAW, ALICE)  # both keys of the uid share the window
    ]
    assert remains == ["2", "1", "0"]
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "base-request-exceed-frequency-limit", MSG_RATE)
    assert response.headers["X-HB-RateLimit-Requests-Remain"] == "0"
    # other uids and other endpoints have their own windows
    assert signed_get(http, sandbox, "/v1/account/accounts", access_key=BOB).json()["status"] == "ok"
    assert signed_get(http, sandbox, "/v1/account/accounts/2001/balance").json()["status"] == "ok"
    sandbox.reset_rate_limits()
    assert signed_get(http, sandbox, "/v1/account/accounts").json()["status"] == "ok"


# --- asset valuation (E7) -------------------------------------------------------------------

VALUATION_TICKERS = [
    *TICKERS,  # btcusdt 43250.5
    {"symbol": "ethusdt", "close": 2000},
    {"symbol": "ethbtc", "close": 0.05},  # not used: eth has a direct usdt pair
    {"symbol": "xyzbtc", "close": 0.0001},  # xyz: btc route only
    {"symbol": "abceth", "close": 0.5},  # abc: eth route only
]


def margin(account_id: int, subtype: str, *lines: tuple[str, str, str]) -> dict[str, Any]:
    return {**spot(account_id, *lines), "type": "margin", "subtype": subtype}


@pytest.fixture
def valued(sandbox):
    """alice holds usdt, btc, eth, a btc-route coin, an eth-route coin and an unpriced coin."""
    sandbox.tickers = [dict(t) for t in VALUATION_TICKERS]
    sandbox.accounts[ALICE]["accounts"] = [
        spot(
            2001,
            ("usdt", "trade", "100.500000000000000000"),
            ("usdt", "frozen", "20"),
            ("btc", "trade", "0.01"),
            ("btc", "frozen", "0.002"),
            ("eth", "trade", "1.5"),
            ("xyz", "trade", "1000"),
            ("abc", "trade", "10"),
            ("abc", "frozen", "2"),
            ("nop", "trade", "99"),  # no route to USDT: left out
        ),
        {"id": 2002, "type": "otc", "subtype": "", "state": "working", "list": []},
        margin(
            2003,
            "btcusdt",
            ("btc", "trade", "0.1"),
            ("usdt", "trade", "1000"),
            ("usdt", "loan", "-500"),  # only trade + frozen lines count
            ("usdt", "interest", "-1"),
        ),
        margin(2004, "ethusdt", ("eth", "trade", "1")),
    ]
    return sandbox


def valuation(http, sb, access_key: str = ALICE, **params: str) -> requests.Response:
    return signed_get(http, sb, "/v2/account/asset-valuation", params, access_key=access_key)


def test_asset_valuation_answers_htx_shape_in_btc_by_default(valued, http):
    before = int(time.time() * 1000)
    response = valuation(http, valued, accountType="spot")
    body = response.json()
    assert list(body) == ["code", "data", "ok"]
    assert body["code"] == 200 and body["ok"] is True
    assert list(body["data"]) == ["balance", "timestamp"]
    assert before - 5 <= body["data"]["timestamp"] <= int(time.time() * 1000) + 5
    # usdt 120.5 + btc 0.012 x 43250.5 + eth 1.5 x 2000 + xyz 1000 x 0.0001 x 43250.5
    # + abc 12 x 0.5 x 2000 = 19964.556 USDT; / 43250.5, 8 decimals rounded down
    total_usdt = Decimal("120.5") + Decimal("519.006") + 3000 + Decimal("4325.05") + 12000
    assert body["data"]["balance"] == "0.46160289"
    assert Decimal(body["data"]["balance"]) == (total_usdt / Decimal("43250.5")).quantize(
        Decimal("1E-8"), rounding="ROUND_DOWN"
    )
    assert '"balance":"0.46160289"' in response.text  # a JSON string, plain notation
    assert response.headers["X-HB-RateLimit-Requests-Remain"] == "99"  # NEW rule, per uid


def test_asset_valuation_in_usd_and_other_fiat_per_account_type(valued, http):
    def balance(**params: str) -> str:
        body = valuation(http, valued, **params).json()
        assert body["code"] == 200, body
        return body["data"]["balance"]

    assert balance(accountType="spot", valuationCurrency="USD") == "19964.55"  # USDT as USD
    assert balance(accountType="spot", valuationCurrency="EUR") == "18367.39"  # x 0.92, fixed
    assert balance(accountType="spot", valuationCurrency="CNY") == "143744.80"  # x 7.2, fixed
    # margin: both isolated accounts, trade lines only: 0.1 x 43250.5 + 1000 + 1 x 2000
    assert balance(accountType="margin", valuationCurrency="USD") == "7325.05"
    assert balance(accountType="margin") == "0.16936335"
    assert balance(accountType="otc", valuationCurrency="USD") == "0.00"  # empty account
    assert balance(accountType="super-margin") == "0.00000000"  # no such account: zero
    valued.fiat_per_usd["EUR"] = Decimal("0.5")
    assert balance(accountType="spot", valuationCurrency="EUR") == "9982.27"


def test_asset_valuation_of_the_default_demo_key(http):
    good, _ = next((k, e) for k, e in load_accounts().items() if e["note"].startswith("demo: good key"))
    with HtxSandbox(load_accounts(), load_tickers()) as sb:
        usd = valuation(http, sb, access_key=good, accountType="spot", valuationCurrency="USD")
        btc = valuation(http, sb, access_key=good, accountType="spot")
    # usdt 1020.5 + btc 0.0173 x 43250.5 + eth 0.5201 x 2285.42 + ht 123.45 x 0.5631
    # + xyz 250 x 0.000153 x 43250.5 + usdc 15.25 x 0.9998 = 4696.473862 USDT
    assert usd.json()["data"]["balance"] == "4696.47"
    assert btc.json()["data"]["balance"] == "0.10858773"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"code": 2003, "message": 'missing mandatory field "accountType"'}),
        ({"accountType": ""}, {"code": 2003, "message": 'missing mandatory field "accountType"'}),
        ({"accountType": "point"}, {"code": 2002, "message": 'invalid field value in "accountType"'}),
        ({"accountType": "Spot"}, {"code": 2002, "message": 'invalid field value in "accountType"'}),
        (
            {"accountType": "spot", "valuationCurrency": "USDT"},
            {"code": 2002, "message": 'invalid field value in "valuationCurrency"'},
        ),
        (
            {"accountType": "spot", "valuationCurrency": "usd"},
            {"code": 2002, "message": 'invalid field value in "valuationCurrency"'},
        ),
        (
            {"accountType": "spot", "valuationCurrency": ""},
            {"code": 2002, "message": 'invalid field value in "valuationCurrency"'},
        ),
        ({"accountType": "spot", "subUid": "1007"}, {"code": 1002, "message": "forbidden"}),
        (
            {"accountType": "spot", "subUid": "x"},
            {"code": 2002, "message": 'invalid field value in "subUid"'},
        ),
    ],
)
def test_asset_valuation_refuses_bad_parameters_with_v2_errors(valued, http, params, expected):
    response = valuation(http, valued, **params)
    assert response.status_code == 200
    assert response.json() == expected


def test_asset_valuation_is_refused_to_a_sub_user_and_needs_only_read(valued, http):
    response = valuation(http, valued, access_key=SUB, accountType="spot")
    assert response.json() == {"code": 1002, "message": "forbidden"}
    body = valuation(http, valued, access_key=READ_ONLY, accountType="spot").json()
    assert body["code"] == 200 and body["data"]["balance"] == "0.00000000"
    response = valuation(http, valued, access_key=TRADE_ONLY, accountType="spot")
    assert_v1_error(response, "api-signature-not-valid", MSG_PERMISSION)


def test_asset_valuation_in_btc_needs_the_btcusdt_ticker(valued, http):
    valued.tickers = [t for t in valued.tickers if t["symbol"] != "btcusdt"]
    assert valuation(http, valued, accountType="spot").json() == {"code": 500, "message": "System error"}
    # in USD the coins without a route are left out: usdt 120.5 + eth 1.5 x 2000 + abc 12000
    body = valuation(http, valued, accountType="spot", valuationCurrency="USD").json()
    assert body["data"]["balance"] == "15120.50"


# --- authentication errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp", "Signature"]
)
def test_it_requires_every_auth_parameter(sandbox, http, missing):
    url = signed_url(sandbox, "/v1/account/accounts")
    path, _, query = url.partition("?")
    kept = [(k, v) for k, v in parse_qsl(query) if k != missing]
    response = http.get(f"{path}?{urlencode(kept, quote_via=quote)}")
    assert_v1_error(response, "login-required", MSG_LOGIN)


def test_it_refuses_an_unknown_access_key(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=UNKNOWN)
    assert_v1_error(response, "api-signature-not-valid", MSG_ACCESS_KEY)


def test_it_refuses_a_wrong_secret(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts", secret="00000000-11111111-22222222-33333")
    assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)


def test_it_refuses_a_signature_made_for_another_host(sandbox, http):
    for host in ("api.huobi.pro", "127.0.0.1"):  # 127.0.0.1 lacks the port that Host carries
        response = signed_get(http, sandbox, "/v1/account/accounts", host=host)
        assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)


def test_it_verifies_against_the_host_header_as_sent(sandbox, http):
    url = signed_url(sandbox, "/v1/account/accounts", host="api.huobi.pro")
    response = http.get(url, headers={"Host": "api.huobi.pro"})
    assert response.json()["status"] == "ok"
    url = signed_url(sandbox, "/v1/account/accounts", host="api.huobi.pro")
    response = http.get(url, headers={"Host": "API.Huobi.PRO"})  # HTX lower-cases the host
    assert response.json()["status"] == "ok"


def test_it_refuses_a_timestamp_outside_five_minutes_of_server_time(sandbox, http):
    for offset_minutes in (6, -6):
        sandbox.clock_offset_ms = offset_minutes * 60_000
        response = signed_get(http, sandbox, "/v1/account/accounts")
        assert_v1_error(response, "api-signature-not-valid", MSG_TIME)
    for offset_minutes in (4, -4):
        sandbox.clock_offset_ms = offset_minutes * 60_000
        assert signed_get(http, sandbox, "/v1/account/accounts").json()["status"] == "ok"


@pytest.mark.parametrize(
    "stamp", ["2024-01-02 03:04:05", "2024-01-02T03:04:05Z", "2024-13-02T03:04:05", "1704164645"]
)
def test_it_refuses_an_unparsable_timestamp(sandbox, http, stamp):
    response = signed_get(http, sandbox, "/v1/account/accounts", timestamp=stamp)
    assert_v1_error(response, "api-signature-not-valid", MSG_TIME)


def test_it_refuses_a_signature_method_other_than_hmac_sha256_v2(sandbox, http):
    secret = sandbox.accounts[ALICE]["secret"]
    for method, version in (("Ed25519", "2"), ("HmacSHA256", "1")):
        params = {
            "AccessKeyId": ALICE,
            "SignatureMethod": method,
            "SignatureVersion": version,
            "Timestamp": now_stamp(),
        }
        payload = signing.presign_string("GET", netloc(sandbox), "/v1/account/accounts", params)
        params["Signature"] = signing.signature(secret, payload)
        response = http.get(f"{sandbox.url}/v1/account/accounts?{urlencode(params)}")
        assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)


@pytest.mark.parametrize("access_key", [EXPIRED, STALE])
def test_it_refuses_an_expired_key(sandbox, http, access_key):
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=access_key)
    assert_v1_error(response, "api-signature-not-valid", MSG_EXPIRED)


def test_it_checks_the_signature_before_telling_that_a_key_expired(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=EXPIRED, secret="wrong")
    assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)


def test_it_refuses_a_caller_outside_the_ip_binding(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=FAR_IP)
    assert_v1_error(
        response,
        "api-signature-not-valid",
        "Signature not valid: Incorrect IP address [IP地址错误]:127.0.0.1",
    )
    sandbox.accounts[FAR_IP]["ipAddresses"] = "203.0.113.0/24, 198.51.100.7"
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=FAR_IP)
    assert response.json()["err-msg"].endswith(":127.0.0.1")


def test_it_accepts_a_caller_inside_a_bound_cidr(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=LOOPBACK)
    assert response.json()["status"] == "ok"


def test_it_refuses_a_key_without_read_permission(sandbox, http):
    response = signed_get(http, sandbox, "/v1/account/accounts", access_key=TRADE_ONLY)
    assert_v1_error(response, "api-signature-not-valid", MSG_PERMISSION)


def test_it_sees_changes_to_the_accounts_while_running(sandbox, http):
    assert signed_get(http, sandbox, "/v1/account/accounts").json()["status"] == "ok"
    sandbox.accounts[ALICE]["permission"] = "trade"
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "api-signature-not-valid", MSG_PERMISSION)
    sandbox.accounts[ALICE]["status"] = "expired"
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "api-signature-not-valid", MSG_EXPIRED)


# --- independent signers --------------------------------------------------------------------


def test_it_accepts_params_in_any_order_with_plus_for_spaces_as_the_sdk_sends_them(sandbox, http):
    """The official SDK signs the canonical string but sends quote_plus-encoded, unsorted."""
    secret = sandbox.accounts[ALICE]["secret"]
    path = "/v2/user/api-key"
    params = {
        "uid": str(ALICE_UID),
        "note": "a b,c/d:e",
        "accessKey": ALICE,
        **signing.auth_params(ALICE, now_stamp()),
    }
    params["Signature"] = signing.signature(
        secret, signing.presign_string("GET", netloc(sandbox), path, params)
    )
    query = urlencode(params)  # quote_plus: space -> "+"
    assert "note=a+b%2Cc%2Fd%3Ae" in query and query.startswith("uid=")
    body = http.get(f"{sandbox.url}{path}?{query}").json()
    assert body["code"] == 200 and body["data"][0]["accessKey"] == ALICE


def test_it_accepts_the_sdk_balance_call_that_also_signs_account_id(sandbox, http):
    secret = sandbox.accounts[ALICE]["secret"]
    path = "/v1/account/accounts/2001/balance"
    params = {"account-id": "2001", **signing.auth_params(ALICE, now_stamp())}
    params["Signature"] = signing.signature(
        secret, signing.presign_string("GET", netloc(sandbox), path, params)
    )
    body = http.get(f"{sandbox.url}{path}?{urlencode(params)}").json()
    assert body["status"] == "ok" and body["data"]["id"] == 2001


def test_it_accepts_the_published_test_vectors(sandbox, http):
    """htx-api.md §3 vectors (made by ccxt 4.5.90 and the official SDK), with the server clock
    set to their Timestamp and the Host they were signed for."""
    sandbox.accounts["abcd1234-ef567890-12345678-9abcd"] = key(
        "00000000-11111111-22222222-33333", 63628520, accounts=[spot(12345678)]
    )
    sandbox.clock_offset_ms = 1704164645000 - int(time.time() * 1000)
    auth = (
        "AccessKeyId=abcd1234-ef567890-12345678-9abcd&SignatureMethod=HmacSHA256"
        "&SignatureVersion=2&Timestamp=2024-01-02T03%3A04%3A05"
    )
    vectors = {  # V1, V2 (SDK form, account-id sent first), V3, V6
        "/v1/account/accounts": (auth, "KQhQB1STr5JGxRN5wdxNHNLKYoSi2MBaHHBRzfVXe3o="),
        "/v1/account/accounts/12345678/balance": (
            "account-id=12345678&" + auth,
            "GgC2fqB6bY+cxkBmLQvUSjxj/d+UXSLSBKnpsqVbnpc=",
        ),
        "/v2/user/api-key": (
            auth + "&accessKey=abcd1234-ef567890-12345678-9abcd&uid=63628520",
            "cp9iZg+bk76ZuKw2ds2vT2ByfshFjrYTLQKoJZQFoeA=",
        ),
        "/v2/user/uid": (auth, "P/IY+qBjgeXbAhVg0gJHb6AEj5vJSKeHTQHy0yj0N3Q="),
    }
    for path, (query, sig) in vectors.items():
        url = f"{sandbox.url}{path}?{query}&Signature={quote(sig, safe='')}"
        body = http.get(url, headers={"Host": "api.huobi.pro"}).json()
        assert body.get("status") == "ok" or body.get("code") == 200, (path, body)
        # V7: the same V1 request signed for api-aws.huobi.pro is refused on api.huobi.pro
    url = (
        f"{sandbox.url}/v1/account/accounts?{auth}"
        "&Signature=rq5r684P1%2BECyffOb1ZcH7ZpdxCG%2BKa%2BX%2FNncmtHBLM%3D"
    )
    assert http.get(url, headers={"Host": "api.huobi.pro"}).json()["err-msg"] == MSG_VERIFY
    assert http.get(url, headers={"Host": "api-aws.huobi.pro"}).json()["status"] == "ok"


def ccxt_htx(sb: HtxSandbox, access_key: str = ALICE) -> ccxt.htx:
    """ccxt's own htx client (pinned test dependency), pointed at the sandbox over plain HTTP."""
    assert ccxt.__version__ == "4.5.90"
    exchange = ccxt.htx({"apiKey": access_key, "secret": sb.accounts[access_key]["secret"]})
    exchange.hostname = netloc(sb)
    exchange.urls["hostnames"]["spot"] = netloc(sb)
    for name in exchange.urls["api"]:
        exchange.urls["api"][name] = "http://{hostname}"
    exchange.set_markets([])  # skip load_markets' public calls, which the sandbox does not serve
    return exchange


def test_ccxt_reads_uid_key_info_accounts_and_balances_and_is_refused_a_wrong_secret(sandbox):
    exchange = ccxt_htx(sandbox)
    assert exchange.spot_private_get_v2_user_uid() == {"code": 200, "data": ALICE_UID}

    info = exchange.spot_private_get_v2_user_api_key({"uid": ALICE_UID, "accessKey": ALICE})
    assert info["code"] == 200 and info["ok"] is True
    assert [(k["accessKey"], k["permission"], k["validDays"]) for k in info["data"]] == [
        (ALICE, "readOnly,trade", 80)
    ]

    accounts = exchange.fetch_accounts()
    assert [(a["id"], a["type"]) for a in accounts] == [("2001", "spot"), ("2002", "otc")]
    assert accounts[0]["info"] == {"id": 2001, "type": "spot", "subtype": "", "state": "working"}

    balance = exchange.fetch_balance()
    assert balance["USDT"]["total"] == pytest.approx(97.010043797676510318)
    assert balance["USDT"]["free"] == pytest.approx(91.850043797676510303)

    exchange.secret = "00000000-11111111-22222222-33333"
    with pytest.raises(ccxt.AuthenticationError, match="Verification failure"):
        exchange.spot_private_get_v1_account_accounts()


def test_ccxt_reads_the_asset_valuation(sandbox):
    exchange = ccxt_htx(sandbox)
    response = exchange.spot_private_get_v2_account_asset_valuation(
        {"accountType": "spot", "valuationCurrency": "BTC"}
    )
    assert response["code"] == 200 and response["ok"] is True
    assert response["data"]["balance"] == "0.00224298"  # 97.0100437976765535685 USDT / 43250.5
    usd = exchange.spot_private_get_v2_account_asset_valuation(
        {"accountType": "spot", "valuationCurrency": "USD"}
    )
    assert usd["data"]["balance"] == "97.01"


def test_ccxt_signs_a_post_with_an_unsigned_json_body_and_maps_the_unknown_order(sandbox):
    exchange = ccxt_htx(sandbox)
    with pytest.raises(ccxt.OrderNotFound, match="order-orderstate-error"):
        exchange.spot_private_post_v1_order_orders_order_id_submitcancel(
            {"order-id": "59378", "symbol": "btcusdt"}
        )
    exchange.secret = "00000000-11111111-22222222-33333"
    with pytest.raises(ccxt.AuthenticationError, match="Verification failure"):
        exchange.spot_private_post_v1_order_orders_order_id_submitcancel({"order-id": "59378"})


# --- POST: JSON body, unsigned ----------------------------------------------------------------


def signed_post_url(sb: HtxSandbox, path: str, *, access_key: str = ALICE, secret: str | None = None) -> str:
    """POST signs only the 4 auth parameters (§2 step 3)."""
    if secret is None:
        secret = sb.accounts[access_key]["secret"]
    query = signing.signed_query(
        method="POST",
        host=netloc(sb),
        path=path,
        access_key=access_key,
        secret=secret,
        timestamp=now_stamp(),
    )
    return f"{sb.url}{path}?{query}"


CANCEL = "/v1/order/orders/59378/submitcancel"
ORDER_STATE_ERROR = {
    "status": "error",
    "err-code": "order-orderstate-error",
    "err-msg": "Incorrect order state",
    "order-state": -1,
    "data": None,
}


def test_it_accepts_the_post_vector_v5_whatever_the_unsigned_body_holds(sandbox, http):
    sandbox.accounts["abcd1234-ef567890-12345678-9abcd"] = key("00000000-11111111-22222222-33333", 63628520)
    sandbox.clock_offset_ms = 1704164645000 - int(time.time() * 1000)
    url = (
        f"{sandbox.url}{CANCEL}?AccessKeyId=abcd1234-ef567890-12345678-9abcd"
        "&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2024-01-02T03%3A04%3A05"
        "&Signature=MBi7lq%2B5O0TM%2Fhl1zv8hwukzwiS2M4EOvYzuTNC4dpI%3D"
    )
    headers = {"Host": "api.huobi.pro", "Content-Type": "application/json"}
    for body in (b'{"symbol":"btcusdt"}', b'{"symbol":"ethusdt","note":"a b"}', b"{}"):
        response = http.post(url, data=body, headers=headers)
        assert response.status_code == 200
        assert response.json() == ORDER_STATE_ERROR
    # the same signature sent for api-aws.huobi.pro fails: the host is signed, the body is not
    response = http.post(url, data=b'{"symbol":"btcusdt"}', headers={**headers, "Host": "api-aws.huobi.pro"})
    assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)


def test_a_post_whose_body_fields_were_signed_is_refused(sandbox, http):
    # A client that signs the body's fields as if they were query parameters fails.
    query = signing.signed_query(
        method="POST",
        host=netloc(sandbox),
        path=CANCEL,
        access_key=ALICE,
        secret=sandbox.accounts[ALICE]["secret"],
        timestamp=now_stamp(),
        params={"symbol": "btcusdt"},
    )
    query = "&".join(part for part in query.split("&") if not part.startswith("symbol="))
    response = http.post(f"{sandbox.url}{CANCEL}?{query}", json={"symbol": "btcusdt"})
    assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)
    response = http.post(signed_post_url(sandbox, CANCEL), json={"symbol": "btcusdt"})
    assert response.json() == ORDER_STATE_ERROR


def test_a_post_needs_trade_permission_and_a_right_secret(sandbox, http):
    response = http.post(signed_post_url(sandbox, CANCEL, access_key=READ_ONLY), json={})
    assert_v1_error(response, "api-signature-not-valid", MSG_PERMISSION)
    response = http.post(signed_post_url(sandbox, CANCEL, secret="wrong"), json={})
    assert_v1_error(response, "api-signature-not-valid", MSG_VERIFY)
    response = http.post(f"{sandbox.url}{CANCEL}", json={})
    assert_v1_error(response, "login-required", MSG_LOGIN)
    path = "/v1/order/orders/abc/submitcancel"
    response = http.post(signed_post_url(sandbox, path), json={})
    assert_v1_error(response, "validation-format-error", "Format Error: order-id.")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"symbol":'),  # bad JSON
        ("application/json", b""),  # no JSON at all
        ("application/json", b'["btcusdt"]'),  # not an object
        ("application/json", b'{"symbol":"\xff"}'),  # not UTF-8
        ("application/x-www-form-urlencoded", b'{"symbol":"btcusdt"}'),  # wrong Content-Type
        ("text/plain", b'{"symbol":"btcusdt"}'),
        (None, b'{"symbol":"btcusdt"}'),
    ],
)
def test_a_post_with_bad_json_or_content_type_gets_gateway_internal_error(sandbox, http, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    response = http.post(signed_post_url(sandbox, CANCEL), data=body, headers=headers)
    assert_v1_error(response, "gateway-internal-error", MSG_GATEWAY)


def test_a_post_accepts_json_content_type_with_a_charset(sandbox, http):
    headers = {"Content-Type": "application/json;charset=UTF-8"}
    response = http.post(signed_post_url(sandbox, CANCEL), data=b'{"symbol":"btcusdt"}', headers=headers)
    assert response.json() == ORDER_STATE_ERROR


def test_submitcancel_answers_405_to_get_and_post_stays_405_elsewhere(sandbox, http):
    response = signed_get(http, sandbox, CANCEL)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["err-msg"] == "Request method 'GET' not supported"
    response = http.post(signed_post_url(sandbox, "/v2/user/uid"), json={})
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    response = http.post(signed_post_url(sandbox, "/v1/order/orders/59378/cancel"), json={})
    assert response.status_code == 405 and "Allow" not in response.headers


# --- gateway behaviour ----------------------------------------------------------------------


def test_it_answers_403_to_a_get_that_carries_a_body(sandbox, http):
    url = signed_url(sandbox, "/v1/account/accounts/2001/balance")
    response = http.get(url, data=b'{"account-id":"2001"}')
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "text/html"
    # the connection stays usable after the body was read
    assert http.get(signed_url(sandbox, "/v1/account/accounts")).json()["status"] == "ok"


def test_it_answers_405_to_other_methods_and_unknown_paths(sandbox, http):
    response = http.post(f"{sandbox.url}/v1/account/accounts", json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.json() == {
        "status": "error",
        "err-code": "method-not-allowed",
        "err-msg": "Request method 'POST' not supported",
        "data": None,
    }
    for method, path in (("GET", "/v1/account/Accounts"), ("DELETE", "/v1/nope")):
        response = http.request(method, f"{sandbox.url}{path}")
        assert response.status_code == 405
        assert response.json()["err-code"] == "method-not-allowed"
    assert http.head(f"{sandbox.url}/v1/common/timestamp").status_code == 405


# --- faults ---------------------------------------------------------------------------------


def test_latency_set_from_python_delays_answers(sandbox, http):
    sandbox.faults.latency_ms = 150
    started = time.perf_counter()
    assert http.get(f"{sandbox.url}/v1/common/timestamp").json()["status"] == "ok"
    assert time.perf_counter() - started >= 0.15
    with pytest.raises(requests.Timeout):
        http.get(f"{sandbox.url}/v1/common/timestamp", timeout=0.05)


def test_an_http_status_fault_set_over_http_answers_a_gateway_page(sandbox, http):
    response = http.post(f"{sandbox.url}/_sandbox/faults", json={"http_status": 502})
    assert response.json()["http_status"] == 502
    assert http.get(f"{sandbox.url}/_sandbox/faults").json() == {
        "latency_ms": 0,
        "http_status": 502,
        "maintenance": False,
        "rate_limited": False,
        "malformed_json": False,
        "paths": None,
    }
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert response.status_code == 502
    assert "502 Bad Gateway" in response.text
    assert http.delete(f"{sandbox.url}/_sandbox/faults").json()["http_status"] is None
    assert signed_get(http, sandbox, "/v1/account/accounts").status_code == 200


def test_maintenance_answers_htx_maintenance_errors(sandbox, http):
    sandbox.faults["maintenance"] = True
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "system-maintenance", "System is in maintenance!")
    assert signed_get(http, sandbox, "/v2/user/uid").json() == {
        "code": 500,
        "message": "System is in maintenance!",
    }
    response = http.post(f"{sandbox.url}/_sandbox/faults", json={"maintenance": True})
    assert response.status_code == 200
    assert http.get(f"{sandbox.url}/market/tickers").json()["err-code"] == "system-maintenance"


def test_a_rate_limited_fault_only_hits_the_paths_it_names(sandbox, http):
    http.post(f"{sandbox.url}/_sandbox/faults", json={"rate_limited": True, "paths": ["/v1/account"]})
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "base-request-exceed-frequency-limit", MSG_RATE)
    assert response.headers["X-HB-RateLimit-Requests-Remain"] == "0"
    assert int(response.headers["X-HB-RateLimit-Requests-Expire"]) > time.time() * 1000
    assert http.get(f"{sandbox.url}/v1/common/timestamp").json()["status"] == "ok"


def test_faults_refuse_bad_values(sandbox, http):
    for body in ({"http_status": "502"}, {"latency_ms": -1}, {"nope": 1}, {"paths": "x"}):
        assert http.post(f"{sandbox.url}/_sandbox/faults", json=body).status_code == 400
    assert http.post(f"{sandbox.url}/_sandbox/faults", data=b"[1]").status_code == 400
    with pytest.raises(ValueError):
        sandbox.faults.update(maintenance="yes")
    with pytest.raises(AttributeError):
        sandbox.faults.latencyms = 1
    sandbox.faults = {"latency_ms": 5}
    assert sandbox.faults.snapshot()["latency_ms"] == 5


def test_the_clock_can_be_moved_over_http(sandbox, http):
    response = http.post(f"{sandbox.url}/_sandbox/clock", json={"clock_offset_ms": 400_000})
    assert response.json()["clock_offset_ms"] == 400_000
    assert sandbox.clock_offset_ms == 400_000
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "api-signature-not-valid", MSG_TIME)


def test_malformed_json_answers_200_with_a_truncated_body_and_a_matching_length(sandbox, http):
    sandbox.faults.malformed_json = True
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.text.startswith('{"status":"ok","data":[')
    assert response.headers["X-HB-RateLimit-Requests-Remain"] == "99"  # the real answer's headers
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    for path in ("/v1/common/timestamp", "/market/tickers"):
        with pytest.raises(ValueError):
            json.loads(http.get(f"{sandbox.url}{path}").content)
    with pytest.raises(ValueError):
        json.loads(signed_get(http, sandbox, "/v2/user/uid").content)
    sandbox.faults.clear()
    assert signed_get(http, sandbox, "/v1/account/accounts").json()["status"] == "ok"  # same connection


def test_malformed_json_set_over_http_only_hits_the_paths_it_names(sandbox, http):
    response = http.post(
        f"{sandbox.url}/_sandbox/faults", json={"malformed_json": True, "paths": ["/v1/account"]}
    )
    assert response.json()["malformed_json"] is True
    with pytest.raises(requests.JSONDecodeError):
        signed_get(http, sandbox, "/v1/account/accounts/2001/balance").json()
    assert http.get(f"{sandbox.url}/v1/common/timestamp").json()["status"] == "ok"
    assert signed_get(http, sandbox, "/v2/user/uid").json()["code"] == 200
    assert http.post(f"{sandbox.url}/_sandbox/faults", json={"malformed_json": "yes"}).status_code == 400


# --- runtime key changes ----------------------------------------------------------------------


def test_the_keys_hook_shows_a_key_without_its_secret(sandbox, http):
    response = http.get(f"{sandbox.url}/_sandbox/keys/{ALICE}")
    assert response.status_code == 200
    shown = response.json()
    assert "secret" not in shown and sandbox.accounts[ALICE]["secret"] not in response.text
    assert shown["accessKey"] == ALICE
    assert {k: shown[k] for k in ("uid", "permission", "ipAddresses", "validDays", "status")} == {
        "uid": ALICE_UID,
        "permission": "readOnly,trade",
        "ipAddresses": "",
        "validDays": 80,
        "status": "normal",
    }
    assert [a["id"] for a in shown["accounts"]] == [2001, 2002]
    assert http.get(f"{sandbox.url}/_sandbox/keys/{UNKNOWN}").status_code == 404


def test_a_key_loses_trade_then_expires_while_a_client_stays_connected(sandbox, http):
    assert http.post(signed_post_url(sandbox, CANCEL), json={}).json() == ORDER_STATE_ERROR
    before = int(time.time() * 1000)
    response = http.post(f"{sandbox.url}/_sandbox/keys/{ALICE}", json={"permission": "readOnly", "note": "x"})
    assert response.status_code == 200
    shown = response.json()
    assert (shown["permission"], shown["note"], shown["validDays"]) == ("readOnly", "x", 80)
    assert "secret" not in shown and shown["updateTime"] >= before
    assert sandbox.accounts[ALICE]["permission"] == "readOnly"  # the same entry, merged in place
    # the same keep-alive session now sees the change
    response = http.post(signed_post_url(sandbox, CANCEL), json={})
    assert_v1_error(response, "api-signature-not-valid", MSG_PERMISSION)
    info = signed_get(http, sandbox, "/v2/user/api-key", {"uid": str(ALICE_UID), "accessKey": ALICE})
    assert info.json()["data"][0]["permission"] == "readOnly"
    assert info.json()["data"][0]["updateTime"] == shown["updateTime"]

    http.post(f"{sandbox.url}/_sandbox/keys/{ALICE}", json={"status": "expired", "validDays": 0})
    response = signed_get(http, sandbox, "/v1/account/accounts")
    assert_v1_error(response, "api-signature-not-valid", MSG_EXPIRED)


def test_the_keys_hook_changes_ip_binding_sub_user_and_accounts(sandbox, http):
    url = f"{sandbox.url}/_sandbox/keys/{ALICE}"
    http.post(url, json={"ipAddresses": "203.0.113.7"})
    assert "Incorrect IP address" in signed_get(http, sandbox, "/v1/account/accounts").json()["err-msg"]
    http.post(url, json={"ipAddresses": "127.0.0.1", "subUser": True, "accounts": [spot(2009)]})
    assert signed_get(http, sandbox, "/v2/user/uid").json() == {"code": 1002, "message": "forbidden"}
    body = signed_get(http, sandbox, "/v1/account/accounts").json()
    assert [a["id"] for a in body["data"]] == [2009]


def test_the_keys_hook_refuses_unknown_keys_fields_and_wrong_types(sandbox, http):
    before = dict(sandbox.accounts[ALICE])
    assert http.post(f"{sandbox.url}/_sandbox/keys/{UNKNOWN}", json={"note": "x"}).status_code == 404
    for body in (
        {"secret": "stolen"},
        {"uid": 1},
        {"note": "ok", "nope": 1},
        {"validDays": "80"},
        {"validDays": True},
        {"subUser": 1},
        {"permission": ["readOnly"]},
        {"accounts": [{"type": "spot"}]},
    ):
        response = http.post(f"{sandbox.url}/_sandbox/keys/{ALICE}", json=body)
        assert response.status_code == 400, body
        assert "error" in response.json()
    for data in (b"[1]", b"{", b'"x"'):
        assert http.post(f"{sandbox.url}/_sandbox/keys/{ALICE}", data=data).status_code == 400
    assert sandbox.accounts[ALICE] == before  # nothing was half-applied
    assert http.delete(f"{sandbox.url}/_sandbox/keys/{ALICE}").status_code == 405


def test_the_python_update_key_equals_the_http_hook(sandbox):
    shown = sandbox.update_key(ALICE, {"validDays": 3})
    assert shown["validDays"] == 3 and "secret" not in shown
    with pytest.raises(KeyError):
        sandbox.update_key(UNKNOWN, {"validDays": 3})
    with pytest.raises(ValueError):
        sandbox.update_key(ALICE, {"secret": "x"})
    assert sandbox.key_entry(UNKNOWN) is None


def test_concurrent_key_changes_leave_a_whole_entry(sandbox, http):
    def flip(n: int) -> None:
        with requests.Session() as session:
            for i in range(20):
                perm = "readOnly" if (n + i) % 2 else "readOnly,trade"
                session.post(f"{sandbox.url}/_sandbox/keys/{ALICE}", json={"permission": perm, "note": perm})

    threads = [threading.Thread(target=flip, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entry = sandbox.accounts[ALICE]
    assert entry["permission"] == entry["note"]  # both fields of one merge, never mixed


# --- transport ------------------------------------------------------------------------------


def test_keep_alive_calls_take_about_a_millisecond(sandbox, http):
    # A sanity bound against the Nagle + delayed-ACK stall (~40 ms a call), not a benchmark.
    signed_get(http, sandbox, "/v2/user/uid")  # open the connection
    started = time.perf_counter()
    for _ in range(200):
        response = signed_get(http, sandbox, "/v2/user/uid")
        assert response.status_code == 200
    average_ms = (time.perf_counter() - started) * 1000 / 200
    assert average_ms < 10, f"{average_ms:.1f} ms per call"


def test_stop_closes_the_socket_and_open_connections(http):
    sb = HtxSandbox(make_accounts(), TICKERS).start()
    assert http.get(f"{sb.url}/v1/common/timestamp").status_code == 200  # keep-alive open
    sb.stop()
    sb.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        http.get(f"{sb.url}/v1/common/timestamp", timeout=2)


def test_the_management_command_serves_and_prints_the_demo_keys(http):
    pytest.importorskip("django")
    from exchanges.management.commands.htx_sandbox import Command

    out = io.StringIO()
    command = Command(stdout=out)
    options = {"port": 0, "host": "127.0.0.1", "accounts": None, "tickers": None}
    thread = threading.Thread(target=command.handle, kwargs=options, daemon=True)
    thread.start()
    for _ in range(200):
        if getattr(command, "sandbox", None) is not None:
            break
        time.sleep(0.01)
    sb = command.sandbox
    assert http.get(f"{sb.url}/v1/common/timestamp").json()["status"] == "ok"
    sb.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    text = out.getvalue()
    assert sb.url in text
    assert f"{sb.url}/_sandbox/keys/<access key>" in text and "malformed_json" in text
    assert "GET /v2/account/asset-valuation" in text and "/submitcancel" in text
    for access_key, entry in load_accounts().items():
        assert access_key in text and entry["secret"] in text and entry["note"] in text
