"""The Binance sandbox, tested over real HTTP on 127.0.0.1 with requests and plain hmac.

No database and no Django settings are needed. Facts: shared/binance-api.md (§ numbers, vectors
V0–V11). Cast: the demo keys of sandbox_data/keys.json, found by the start of their note.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchanges.venues.binance.sandbox import (
    DEFAULT_KEYS_PATH,
    DEFAULT_TICKERS_PATH,
    ENDPOINTS,
    FAULT_NAMES,
    KEY_FIELDS,
    BinanceSandbox,
    ed25519_ok,
    hmac_ok,
    hmac_signature,
    load_keys,
    load_tickers,
    signed_payload,
)
from exchanges.venues.kit.sandbox import Headers, SandboxRequest

DAY_MS = 86_400_000
KEYS = load_keys()


def demo(prefix: str) -> tuple[str, str]:
    for api_key, entry in KEYS.items():
        if entry["note"].startswith(prefix):
            return api_key, entry["secret"]
    raise LookupError(prefix)


GOOD = demo("demo: good key")
IP_BOUND = demo("demo: ip-bound good key")
WITHDRAW = demo("demo: withdraw enabled")
ELSEWHERE = demo("demo: ip-bound elsewhere")
READ_ONLY = demo("demo: read-only")
EXPIRING = demo("demo: trading expiring soon")
EXPIRED = demo("demo: trading expired")
UNKNOWN = ("Z" * 64, "Y" * 64)

# Binance's documented example pair and the vectors computed with it (§3).
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TS = 1767225600000
V0_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
V0_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
V0_MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
V1_SIGNATURE = "145a2e794fb1e41426a0b66ac3bbd4623af4014549b9af44afa3c8015894fb05"
V4_BODY = (
    "timestamp=1767225600000&needBtcValuation=true&recvWindow=10000"
    "&signature=e5f696eb5488e5afe595a4513250d5560df5e806fb761241fe2f930a9b2a0fe4"
)
V11_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
V11_SIGNATURE = (
    "YRgl4y3a5F%2FKgUaKD%2FVr4FQlXH%2BM0qAXKNWgcBRyLbDlT2BIlPhAK9CeVES896ATQPnLBypWN4IMiRrN4w1kDw%3D%3D"
)

MSG_REJECTED = "Invalid API-key, IP, or permissions for action."
MSG_RESTRICTED = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)
WALLET_NAMES = [
    "Spot", "Funding", "Cross Margin", "Isolated Margin", "USDⓈ-M Futures", "COIN-M Futures",
    "Earn", "Options", "Trading Bots", "Copy Trading",
]  # fmt: skip


@pytest.fixture
def sandbox():
    sb = BinanceSandbox(load_keys(), load_tickers()).start()
    yield sb
    sb.stop()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_text(sb, params=None, secret=GOOD[1], *, ts=None, recv_window=None) -> str:
    """``params&timestamp=…[&recvWindow=…]&signature=…``, signed as sent (§2)."""
    items = [*(params or {}).items(), ("timestamp", sb.now_ms() if ts is None else ts)]
    if recv_window is not None:
        items.append(("recvWindow", recv_window))
    text = urlencode(items)
    return f"{text}&signature={sign(secret, text)}"


def call(http, sb, method, path, params=None, key=GOOD, *, body=False, headers=None, **options):
    """A signed call with the key's API key header; parameters in the query, or the body."""
    text = signed_text(sb, params, key[1], **options)
    sent = {"X-MBX-APIKEY": key[0], **(headers or {})}
    if body:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
        return http.request(method, f"{sb.url}{path}", data=text, headers=sent)
    return http.request(method, f"{sb.url}{path}?{text}", headers=sent)


def raw(http, sb, method, path, query="", body=None, key=GOOD[0]):
    headers = {"X-MBX-APIKEY": key}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return http.request(
        method, f"{sb.url}{path}" + (f"?{query}" if query else ""), data=body, headers=headers
    )


def assert_error(response, status: int, code: int, msg: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if msg is not None:
        assert body["msg"] == msg
    return body


def short(value: Decimal) -> str:
    value = value.quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
    return "0" if value == 0 else format(value.normalize(), "f")


# --- the signature checker (vectors V0, V1, V4, V11) ------------------------------------------


def test_v0_the_documented_example_verifies_in_the_query_and_mixed_with_a_body():
    payload, signatures = signed_payload(f"{V0_PAYLOAD}&signature={V0_SIGNATURE}")
    assert payload == V0_PAYLOAD.encode() and signatures == [V0_SIGNATURE]
    assert hmac_signature(DOC_SECRET, payload) == V0_SIGNATURE
    assert hmac_ok(DOC_SECRET, payload, V0_SIGNATURE.upper())  # hex is case-insensitive (§2 step 5)
    # SPOT-OLD Example 3: query + body concatenated without "&"
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature={V0_MIXED_SIGNATURE}"
    payload, signatures = signed_payload(query, body)
    assert b"timeInForce=GTCquantity=1" in payload
    assert hmac_ok(DOC_SECRET, payload, signatures[0])
    assert not hmac_ok(DOC_SECRET, query + "&" + body.split("&signature=")[0], V0_MIXED_SIGNATURE)
    assert not hmac_ok(DOC_SECRET, payload, V0_SIGNATURE)


def test_v1_an_empty_params_call_verifies_and_the_path_is_not_signed():
    payload, signatures = signed_payload(f"timestamp={TS}&recvWindow=10000&signature={V1_SIGNATURE}")
    assert payload == f"timestamp={TS}&recvWindow=10000".encode()
    assert hmac_ok(DOC_SECRET, payload, signatures[0])
    assert not hmac_ok(DOC_SECRET + "x", payload, signatures[0])


def test_v4_a_post_signed_in_the_body_verifies():
    payload, signatures = signed_payload("", V4_BODY)
    assert payload == f"timestamp={TS}&needBtcValuation=true&recvWindow=10000".encode()
    assert hmac_ok(DOC_SECRET, payload, signatures[0])


def _v11_keys() -> tuple[str, str]:
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(V11_SEED))
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def test_v11_an_ed25519_signature_verifies_percent_decoded():
    _, public_pem = _v11_keys()
    payload = f"timestamp={TS}&recvWindow=10000"
    assert ed25519_ok(public_pem, payload, V11_SIGNATURE)
    assert not ed25519_ok(public_pem, payload + "0", V11_SIGNATURE)
    assert not ed25519_ok(public_pem, payload, "not base64!")


def test_the_documented_requests_are_accepted_verbatim_at_their_own_time(http):
    _, public_pem = _v11_keys()
    keys = load_keys()
    keys[DOC_KEY] = {**keys[GOOD[0]], "secret": DOC_SECRET, "note": "docs example", "uid": 1}
    ed_key = "E" * 64
    keys[ed_key] = {
        **keys[GOOD[0]],
        "note": "ed25519",
        "uid": 2,
        "keyType": "ED25519",
        "publicKeyPem": public_pem,
    }
    with BinanceSandbox(keys, load_tickers()) as sb:
        sb.clock_offset_ms = TS + 500 - int(time.time() * 1000)  # Binance's clock at V1's time
        v1 = raw(
            http,
            sb,
            "GET",
            "/api/v3/account",
            f"timestamp={TS}&recvWindow=10000&signature={V1_SIGNATURE}",
            key=DOC_KEY,
        )
        assert v1.status_code == 200 and v1.json()["uid"] == 1, v1.text
        v3 = raw(
            http, sb, "GET", "/sapi/v1/account/apiRestrictions", v1.request.url.split("?")[1], key=DOC_KEY
        )
        assert v3.status_code == 200  # V3: the same signature on another path
        v4 = raw(http, sb, "POST", "/sapi/v1/asset/get-funding-asset", body=V4_BODY, key=DOC_KEY)
        assert v4.status_code == 200 and v4.json()[0]["btcValuation"] != "0"
        v11 = raw(
            http,
            sb,
            "GET",
            "/api/v3/account",
            f"timestamp={TS}&recvWindow=10000&signature={V11_SIGNATURE}",
            key=ed_key,
        )
        assert v11.status_code == 200 and v11.json()["uid"] == 2
        wrong = raw(
            http,
            sb,
            "GET",
            "/api/v3/account",
            f"timestamp={TS}&recvWindow=9999&signature={V11_SIGNATURE}",
            key=ed_key,
        )
        assert_error(wrong, 400, -1022)


# --- authentication (§2, §7.2) ----------------------------------------------------------------


def test_a_missing_or_malformed_api_key_is_minus_2014(sandbox, http):
    text = signed_text(sandbox)
    assert_error(http.get(f"{sandbox.url}/api/v3/account?{text}"), 401, -2014, "API-key format invalid.")
    for bad in ("", GOOD[0][:63], GOOD[0][:63] + "-", GOOD[0] + "a"):
        response = http.get(f"{sandbox.url}/api/v3/account?{text}", headers={"X-MBX-APIKEY": bad})
        assert_error(response, 401, -2014)


def test_an_unknown_key_is_minus_2015_without_an_ip(sandbox, http):
    assert_error(call(http, sandbox, "GET", "/api/v3/account", key=UNKNOWN), 401, -2015, MSG_REJECTED)
    # a swapped pair is a well-formed unknown key (§7.2)
    swapped = (GOOD[1], GOOD[0])
    assert_error(call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions", key=swapped), 401, -2015)


def test_a_key_bound_elsewhere_is_minus_2015_with_the_ip_binance_saw_even_with_a_wrong_secret(sandbox, http):
    expected = "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"
    for key in (ELSEWHERE, (ELSEWHERE[0], "x" * 64)):
        response = call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions", key=key)
        assert_error(response, 401, -2015, expected)


def test_the_whitelist_is_checked_against_the_callers_socket_address(sandbox):
    def from_ip(ip: str, key: tuple[str, str]):
        query = signed_text(sandbox, secret=key[1])
        request = SandboxRequest(
            method="GET", path="/api/v3/account", params=[], host="", client_ip=ip, has_body=False,
            query=query, headers=Headers({"x-mbx-apikey": key[0]}),
        )  # fmt: skip
        return sandbox.handle(request)

    assert from_ip("203.0.113.7", ELSEWHERE).status == 200
    assert from_ip("::ffff:203.0.113.7", ELSEWHERE).status == 200  # IPv4-mapped IPv6 peer
    refused = from_ip("198.51.100.1", IP_BOUND)
    assert refused.status == 401 and b"request ip: 198.51.100.1" in refused.body
    assert from_ip("::1", IP_BOUND).status == 200


def test_ip_bound_and_withdraw_keys_work_from_this_machine(sandbox, http):
    for key in (IP_BOUND, WITHDRAW):
        assert call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions", key=key).status_code == 200


def test_a_wrong_secret_from_an_allowed_ip_is_minus_1022(sandbox, http):
    response = call(http, sandbox, "GET", "/api/v3/account", key=(GOOD[0], READ_ONLY[1]))
    assert_error(response, 400, -1022, "Signature for this request is not valid.")


def test_the_signature_covers_exactly_what_was_sent(sandbox, http):
    ts = sandbox.now_ms()
    text = f"omitZeroBalances=true&timestamp={ts}"
    signature = sign(GOOD[1], text)
    ok = raw(http, sandbox, "GET", "/api/v3/account", f"{text}&signature={signature.upper()}")
    assert ok.status_code == 200  # upper-case hex is accepted
    reordered = raw(
        http, sandbox, "GET", "/api/v3/account", f"timestamp={ts}&omitZeroBalances=true&signature={signature}"
    )
    assert_error(reordered, 400, -1022)  # no sorting: the order is signed
    changed = raw(
        http,
        sandbox,
        "GET",
        "/api/v3/account",
        f"omitZeroBalances=false&timestamp={ts}&signature={signature}",
    )
    assert_error(changed, 400, -1022)  # signed one request, sent another
    middle = raw(
        http,
        sandbox,
        "GET",
        "/api/v3/account",
        f"omitZeroBalances=true&signature={sign(GOOD[1], text)}&timestamp={ts}",
    )
    assert middle.status_code == 200  # only the signature parameter is taken out


def test_a_post_may_be_signed_in_the_body_the_query_or_both_but_without_a_joining_ampersand(sandbox, http):
    path = "/sapi/v1/asset/get-funding-asset"
    assert call(http, sandbox, "POST", path, {"asset": "USDT"}, body=True).json()[0]["asset"] == "USDT"
    assert call(http, sandbox, "POST", path, {"asset": "USDT"}).json()[0]["asset"] == "USDT"  # SDK style
    query, ts = "asset=BNB", sandbox.now_ms()
    body = f"timestamp={ts}"
    mixed = raw(http, sandbox, "POST", path, query, f"{body}&signature={sign(GOOD[1], query + body)}")
    assert [row["asset"] for row in mixed.json()] == ["BNB"]
    joined = raw(http, sandbox, "POST", path, query, f"{body}&signature={sign(GOOD[1], query + '&' + body)}")
    assert_error(joined, 400, -1022)
    # a name in both places takes the query's value (§1), and is not a duplicate
    both = raw(
        http,
        sandbox,
        "POST",
        path,
        query,
        f"asset=USDT&{body}&signature={sign(GOOD[1], query + 'asset=USDT&' + body)}",
    )
    assert [row["asset"] for row in both.json()] == ["BNB"]


def test_missing_malformed_duplicate_and_unknown_parameters(sandbox, http):
    ts = sandbox.now_ms()
    no_stamp = raw(http, sandbox, "GET", "/api/v3/account", f"signature={sign(GOOD[1], '')}")
    assert_error(
        no_stamp, 400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
    )
    no_signature = raw(http, sandbox, "GET", "/api/v3/account", f"timestamp={ts}")
    assert_error(
        no_signature,
        400,
        -1102,
        "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
    )
    text = f"timestamp={ts}&timestamp={ts}"
    duplicate = raw(http, sandbox, "GET", "/api/v3/account", f"{text}&signature={sign(GOOD[1], text)}")
    assert_error(duplicate, 400, -1101, "Duplicate values for a parameter detected.")
    text = "timestamp=12ab"
    malformed = raw(http, sandbox, "GET", "/api/v3/account", f"{text}&signature={sign(GOOD[1], text)}")
    body = assert_error(malformed, 400, -1100)
    assert body["msg"].startswith("Illegal characters found in parameter 'timestamp'")
    unknown = call(http, sandbox, "GET", "/api/v3/account", {"note": "x"})
    assert_error(
        unknown, 400, -1104, "Not all sent parameters were read; read '2' parameter(s) but was sent '3'."
    )
    assert call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions", {"note": "x"}).status_code == 200
    bad_bool = call(http, sandbox, "GET", "/api/v3/account", {"omitZeroBalances": "yes"})
    assert_error(bad_bool, 400, -1130, "Data sent for parameter 'omitZeroBalances' is not valid.")


def test_timestamp_and_recv_window_rules(sandbox, http):
    now = sandbox.now_ms()
    path = "/sapi/v1/account/apiRestrictions"
    assert call(http, sandbox, "GET", path, ts=now + 500).status_code == 200
    ahead = call(http, sandbox, "GET", path, ts=now + 1500)
    assert_error(ahead, 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    late = call(http, sandbox, "GET", path, ts=now - 6000)  # default recvWindow 5000
    assert_error(late, 400, -1021, "Timestamp for this request is outside of the recvWindow.")
    assert call(http, sandbox, "GET", path, ts=now - 6000, recv_window=10000).status_code == 200
    assert call(http, sandbox, "GET", path, ts=now - 6000, recv_window="6500.346").status_code == 200
    assert call(http, sandbox, "GET", path, recv_window=60000).status_code == 200
    too_big = call(http, sandbox, "GET", path, recv_window=60001)
    assert_error(too_big, 400, -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000.")
    assert_error(call(http, sandbox, "GET", path, recv_window="5s"), 400, -1100)
    assert call(http, sandbox, "GET", path, ts=sandbox.now_ms() * 1000).status_code == 200  # µs
    assert_error(call(http, sandbox, "GET", path, ts=(now - 6000) * 1000), 400, -1021)


def test_a_moved_clock_refuses_local_time_and_e1_tells_the_offset(sandbox, http):
    sandbox.clock_offset_ms = 600_000
    local = int(time.time() * 1000)
    assert_error(call(http, sandbox, "GET", "/api/v3/account", ts=local), 400, -1021)
    server = http.get(f"{sandbox.url}/api/v3/time").json()["serverTime"]
    assert abs(server - local - 600_000) < 5_000
    assert call(http, sandbox, "GET", "/api/v3/account", ts=server).status_code == 200


# --- permissions and trading expiry (§5) ------------------------------------------------------


def test_the_test_order_needs_the_trading_permission_while_reads_work(sandbox, http):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    response = call(http, sandbox, "POST", "/api/v3/order/test", order, body=True)
    assert response.status_code == 200 and response.json() == {}
    for key in (READ_ONLY, EXPIRED):
        assert_error(
            call(http, sandbox, "POST", "/api/v3/order/test", order, key, body=True), 401, -2015, MSG_REJECTED
        )
        assert call(http, sandbox, "GET", "/api/v3/account", key=key).status_code == 200
    assert call(http, sandbox, "POST", "/api/v3/order/test", order, EXPIRING, body=True).json() == {}
    assert_error(
        call(http, sandbox, "POST", "/api/v3/order/test", {**order, "symbol": "NOPE"}, body=True), 400, -1121
    )
    assert_error(
        call(http, sandbox, "POST", "/api/v3/order/test", {"symbol": "BTCUSDT"}, body=True), 400, -1102
    )
    assert_error(
        call(http, sandbox, "POST", "/api/v3/order/test", {**order, "side": "HOLD"}, body=True), 400, -1130
    )
    rates = call(
        http, sandbox, "POST", "/api/v3/order/test", {**order, "computeCommissionRates": "true"}, body=True
    )
    assert rates.json()["standardCommissionForOrder"]["taker"] == "0.00100000"


def api_restrictions(http, sandbox, key) -> dict[str, Any]:
    response = call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions", key=key)
    assert response.status_code == 200, response.text
    return response.json()


def test_e4_reports_each_keys_flags_and_trading_expiry_relative_to_now(sandbox, http):
    now = sandbox.now_ms()
    good = api_restrictions(http, sandbox, GOOD)
    assert list(good) == [
        "ipRestrict", "createTime", "enableReading", "enableWithdrawals", "enableInternalTransfer",
        "enableMargin", "enableFutures", "permitsUniversalTransfer", "enableVanillaOptions",
        "enableFixApiTrade", "enableFixReadOnly", "enableSpotAndMarginTrading",
        "enablePortfolioMarginTrading", "tradingAuthorityExpirationTime",
    ]  # fmt: skip
    assert good["ipRestrict"] is False and good["enableReading"] and good["enableSpotAndMarginTrading"]
    assert good["enableWithdrawals"] is False and good["enableFutures"] is True
    assert abs(good["tradingAuthorityExpirationTime"] - (now + 27 * DAY_MS)) < 60_000
    assert abs(good["createTime"] - (now - 3 * DAY_MS)) < 60_000
    bound = api_restrictions(http, sandbox, IP_BOUND)
    assert bound["ipRestrict"] is True and "tradingAuthorityExpirationTime" not in bound
    withdraw = api_restrictions(http, sandbox, WITHDRAW)
    assert withdraw["enableWithdrawals"] is True and withdraw["ipRestrict"] is True
    read_only = api_restrictions(http, sandbox, READ_ONLY)
    assert (
        read_only["enableSpotAndMarginTrading"] is False and "tradingAuthorityExpirationTime" not in read_only
    )
    soon = api_restrictions(http, sandbox, EXPIRING)
    assert round((soon["tradingAuthorityExpirationTime"] - now) / DAY_MS) == 3
    expired = api_restrictions(http, sandbox, EXPIRED)
    assert expired["enableSpotAndMarginTrading"] is False
    assert -3 * DAY_MS < expired["tradingAuthorityExpirationTime"] - now < -DAY_MS


def test_trading_expires_when_the_clock_passes_it_and_reads_keep_working(sandbox, http):
    order = {"symbol": "ETHBTC", "side": "SELL", "type": "LIMIT", "price": "0.03", "quantity": "1"}
    sandbox.clock_offset_ms = 4 * DAY_MS  # past the 3 days of the "expiring soon" key
    after = api_restrictions(http, sandbox, EXPIRING)
    assert after["enableSpotAndMarginTrading"] is False
    assert after["tradingAuthorityExpirationTime"] < sandbox.now_ms()
    assert_error(call(http, sandbox, "POST", "/api/v3/order/test", order, EXPIRING), 401, -2015)
    assert call(http, sandbox, "GET", "/api/v3/account", key=EXPIRING).status_code == 200
    assert api_restrictions(http, sandbox, GOOD)["enableSpotAndMarginTrading"] is True  # 27 days


def test_the_keys_hook_changes_a_key_while_connected_and_keeps_the_withdraw_rule(sandbox, http):
    shown = http.get(f"{sandbox.url}/_sandbox/keys/{GOOD[0]}").json()
    assert shown["apiKey"] == GOOD[0] and "secret" not in shown and GOOD[1] not in json.dumps(shown)
    changed = http.post(f"{sandbox.url}/_sandbox/keys/{GOOD[0]}", json={"tradingExpiresInDays": 1})
    assert changed.status_code == 200
    expires = api_restrictions(http, sandbox, GOOD)["tradingAuthorityExpirationTime"]
    assert abs(expires - (sandbox.now_ms() + DAY_MS)) < 60_000
    http.post(f"{sandbox.url}/_sandbox/keys/{GOOD[0]}", json={"ipRestrict": True, "ips": ["203.0.113.7"]})
    assert "request ip: 127.0.0.1" in call(http, sandbox, "GET", "/api/v3/account").json()["msg"]
    refused = http.post(f"{sandbox.url}/_sandbox/keys/{READ_ONLY[0]}", json={"enableWithdrawals": True})
    assert refused.status_code == 400 and "ipRestrict" in refused.json()["error"]
    assert (
        http.post(f"{sandbox.url}/_sandbox/keys/{WITHDRAW[0]}", json={"ipRestrict": False}).status_code == 400
    )
    for bad in ({"secret": "x"}, {"uid": 1}, {"enableReading": "yes"}, {"tradingExpiresInDays": True}):
        assert http.post(f"{sandbox.url}/_sandbox/keys/{GOOD[0]}", json=bad).status_code == 400, bad
    assert http.get(f"{sandbox.url}/_sandbox/keys/{UNKNOWN[0]}").status_code == 404
    sandbox.update_key(READ_ONLY[0], {"enableReading": False})
    assert_error(call(http, sandbox, "GET", "/api/v3/account", key=READ_ONLY), 401, -2015)


def test_data_that_breaks_the_withdraw_rule_or_the_key_format_is_refused(tmp_path: Path):
    keys = load_keys()
    keys[WITHDRAW[0]] = {**keys[WITHDRAW[0]], "ipRestrict": False, "ips": []}
    with pytest.raises(ValueError, match="enableWithdrawals"):
        BinanceSandbox(keys, load_tickers())
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys))
    with pytest.raises(ValueError, match="enableWithdrawals"):
        load_keys(path)
    for broken in ({"x" * 63: KEYS[GOOD[0]]}, {GOOD[0]: {**KEYS[GOOD[0]], "secret": "short"}}):
        with pytest.raises(ValueError):
            BinanceSandbox(broken, load_tickers())


# --- endpoints (§4) ---------------------------------------------------------------------------


def test_e1_e15_and_unknown_paths(sandbox, http):
    server = http.get(f"{sandbox.url}/api/v3/time").json()["serverTime"]
    assert abs(server - time.time() * 1000) < 5_000
    assert http.get(f"{sandbox.url}/sapi/v1/system/status").json() == {"status": 0, "msg": "normal"}
    missing = http.get(f"{sandbox.url}/sapi/v1/capital/config/getall")
    assert missing.status_code == 404
    body = missing.json()
    assert {k: body[k] for k in ("status", "error", "message", "path")} == {
        "status": 404,
        "error": "Not Found",
        "message": "No message available",
        "path": "/sapi/v1/capital/config/getall",
    }
    assert isinstance(body["timestamp"], int)
    wrong_method = http.get(f"{sandbox.url}/sapi/v1/asset/get-funding-asset")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "Method Not Allowed"


def test_e2_exchange_info_has_what_ccxt_parses(sandbox, http):
    info = http.get(f"{sandbox.url}/api/v3/exchangeInfo").json()
    assert info["timezone"] == "UTC" and info["rateLimits"][0]["limit"] == 6000
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert set(symbols) == {t["symbol"] for t in load_tickers()}
    btc = symbols["BTCUSDT"]
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}
    assert btc["filters"][0]["tickSize"] == "0.01000000" and btc["permissionSets"] == [["SPOT"]]
    assert symbols["WAVESUSDT"]["status"] == "BREAK"
    one = http.get(f"{sandbox.url}/api/v3/exchangeInfo", params={"symbol": "KMDBTC"}).json()
    assert [s["symbol"] for s in one["symbols"]] == ["KMDBTC"]
    assert_error(
        http.get(f"{sandbox.url}/api/v3/exchangeInfo", params={"symbol": "NOPE"}),
        400,
        -1121,
        "Invalid symbol.",
    )


def test_e3_prices_all_one_list_and_tradable_only_with_their_weights(sandbox, http):
    everything = http.get(f"{sandbox.url}/api/v3/ticker/price")
    assert len(everything.json()) == len(load_tickers()) and everything.headers["X-MBX-USED-WEIGHT-1M"] == "4"
    one = http.get(f"{sandbox.url}/api/v3/ticker/price", params={"symbol": "BTCUSDT"})
    assert one.json() == {"symbol": "BTCUSDT", "price": "97250.12000000"}
    assert one.headers["X-MBX-USED-WEIGHT-1M"] == "6"  # 2 for one symbol
    listed = http.get(f"{sandbox.url}/api/v3/ticker/price", params={"symbols": '["ETHBTC","WAVESUSDT"]'})
    assert [p["symbol"] for p in listed.json()] == ["ETHBTC", "WAVESUSDT"]
    trading = http.get(f"{sandbox.url}/api/v3/ticker/price", params={"symbolStatus": "TRADING"}).json()
    assert "WAVESUSDT" not in {p["symbol"] for p in trading} and len(trading) == len(load_tickers()) - 1
    stale = http.get(
        f"{sandbox.url}/api/v3/ticker/price", params={"symbol": "WAVESUSDT", "symbolStatus": "TRADING"}
    )
    assert_error(stale, 400, -1220)
    assert_error(http.get(f"{sandbox.url}/api/v3/ticker/price", params={"symbols": "BTCUSDT"}), 400, -1100)
    assert_error(http.get(f"{sandbox.url}/api/v3/ticker/price", params={"symbolStatus": "OPEN"}), 400, -1130)
    both = http.get(
        f"{sandbox.url}/api/v3/ticker/price", params={"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}
    )
    assert_error(both, 400, -1128)


def test_e5_spot_account_with_and_without_zero_balances(sandbox, http):
    held = call(http, sandbox, "GET", "/api/v3/account", {"omitZeroBalances": "true"}).json()
    assert (
        held["uid"] == KEYS[GOOD[0]]["uid"]
        and held["accountType"] == "SPOT"
        and held["permissions"] == ["SPOT"]
    )
    expected = [
        {"asset": line["asset"], "free": line["free"], "locked": line["locked"]}
        for line in KEYS[GOOD[0]]["spot"]
        if Decimal(line["free"]) + Decimal(line["locked"]) > 0
    ]
    assert held["balances"] == expected
    assert {"asset": "LDUSDT", "free": "500.00000000", "locked": "0.00000000"} in held["balances"]
    assert {"asset": "USDT", "free": "1520.25000000", "locked": "250.00000000"} in held["balances"]
    full = call(http, sandbox, "GET", "/api/v3/account").json()["balances"]
    assets = [b["asset"] for b in full]
    assert "LTC" in assets and "USDC" in assets and "TRY" in assets and len(full) > len(expected)
    # keys of one uid share an account
    shared = call(http, sandbox, "GET", "/api/v3/account", {"omitZeroBalances": "true"}, WITHDRAW).json()
    assert shared["balances"] == expected and shared["uid"] == held["uid"]


def test_e6_funding_as_post_in_body_or_query_with_btc_valuation(sandbox, http):
    path = "/sapi/v1/asset/get-funding-asset"
    rows = call(http, sandbox, "POST", path, body=True).json()
    assert rows == [
        {
            "asset": "USDT",
            "free": "75.5",
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "btcValuation": "0",
        },
        {
            "asset": "BNB",
            "free": "0.25",
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "btcValuation": "0",
        },
    ]
    valued = call(http, sandbox, "POST", path, {"asset": "USDT", "needBtcValuation": "true"}).json()
    assert valued[0]["btcValuation"] == short(Decimal("75.5") / Decimal("97250.12"))
    assert call(http, sandbox, "POST", path, {"asset": "ETH"}, body=True).json() == []


def test_e7_values_every_wallet_in_usdt_from_tradable_pairs(sandbox, http):
    response = call(http, sandbox, "GET", "/sapi/v1/asset/wallet/balance", {"quoteAsset": "USDT"})
    assert "USDⓈ-M Futures".encode() in response.content  # UTF-8 on the wire
    rows = response.json()
    assert [r["walletName"] for r in rows] == WALLET_NAMES
    by_name = {r["walletName"]: r for r in rows}
    btc, eth, bnb = Decimal("97250.12"), Decimal("3420.55"), Decimal("640.10")
    spot = (
        Decimal("0.51234567") * btc + Decimal("3.7") * eth + Decimal("1770.25")
        + Decimal(120) * Decimal("0.00000412") * btc  # KMD only via BTC
        + Decimal(800) * Decimal("0.00001650") * eth  # DNT only via ETH
    )  # fmt: skip
    # VTHO has no route and WAVES only a BREAK pair: both count 0; LDUSDT is Earn, not Spot
    assert by_name["Spot"]["balance"] == short(spot)
    assert by_name["Funding"]["balance"] == short(Decimal("75.5") + Decimal("0.25") * bnb)
    assert by_name["Earn"]["balance"] == short(Decimal(500) + Decimal("2.5") * bnb)
    assert by_name["USDⓈ-M Futures"]["balance"] == "314.62345678"
    assert by_name["Cross Margin"] == {"activate": False, "balance": "0", "walletName": "Cross Margin"}
    assert by_name["Options"]["activate"] is False and by_name["Spot"]["activate"] is True
    in_btc = {r["walletName"]: r for r in call(http, sandbox, "GET", "/sapi/v1/asset/wallet/balance").json()}
    assert in_btc["Earn"]["balance"] == short((Decimal(500) + Decimal("2.5") * bnb) / btc)  # default BTC
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "60"
    detail = call(http, sandbox, "GET", "/sapi/v1/asset/wallet/balance", {"needBalanceDetail": "true"}).json()
    assert [line["asset"] for line in detail[1]["assetBalances"]] == ["USDT", "BNB"]
    assert_error(
        call(http, sandbox, "GET", "/sapi/v1/asset/wallet/balance", {"quoteAsset": "VTHO"}), 400, -1130
    )


def test_e9_earn_positions_are_paginated(sandbox, http):
    flexible = call(http, sandbox, "GET", "/sapi/v1/simple-earn/flexible/position").json()
    assert flexible["total"] == 1 and flexible["rows"][0]["totalAmount"] == "500.00000000"
    assert flexible["rows"][0]["asset"] == "USDT" and flexible["rows"][0]["canRedeem"] is True
    locked = call(
        http, sandbox, "GET", "/sapi/v1/simple-earn/locked/position", {"current": 1, "size": 10}
    ).json()
    assert locked["total"] == 1 and locked["rows"][0]["amount"] == "2.50000000"
    assert locked["rows"][0]["projectId"] == "BNB*90" and locked["rows"][0]["status"] == "HOLDING"
    page2 = call(
        http, sandbox, "GET", "/sapi/v1/simple-earn/flexible/position", {"current": 2, "size": 1}
    ).json()
    assert page2 == {"rows": [], "total": 1}
    assert (
        call(http, sandbox, "GET", "/sapi/v1/simple-earn/locked/position", {"asset": "ETH"}).json()["total"]
        == 0
    )
    too_big = call(http, sandbox, "GET", "/sapi/v1/simple-earn/flexible/position", {"size": 101})
    assert_error(too_big, 400, -1102, "'size' contains unexpected value. Cannot be greater than 100.")
    assert_error(
        call(http, sandbox, "GET", "/sapi/v1/simple-earn/flexible/position", {"current": 0}), 400, -1100
    )
    # 150 a call, refused ones too, in the endpoint's own budget (5th call of this path)
    fifth = call(http, sandbox, "GET", "/sapi/v1/simple-earn/flexible/position")
    assert fifth.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "750"


def test_e11_cross_margin_or_minus_3003(sandbox, http):
    assert_error(
        call(http, sandbox, "GET", "/sapi/v1/margin/account"), 400, -3003, "Margin account does not exist."
    )
    margin = call(http, sandbox, "GET", "/sapi/v1/margin/account", key=IP_BOUND).json()
    assert margin["created"] is True
    btc = next(a for a in margin["userAssets"] if a["asset"] == "BTC")
    assert btc == {
        "asset": "BTC", "borrowed": "0.00200000", "free": "0.01000000", "interest": "0.00000150",
        "locked": "0.00000000", "netAsset": "0.00799850",
    }  # fmt: skip
    assert margin["totalLiabilityOfBtc"] == "0.00200150"


def test_e13_futures_on_the_same_host_or_minus_2015_with_the_ip(sandbox, http):
    rows = call(http, sandbox, "GET", "/fapi/v2/balance").json()
    assert rows[0]["asset"] == "USDT" and rows[0]["balance"] == "310.12345678"
    assert rows[0]["crossUnPnl"] == "4.50000000" and rows[0]["availableBalance"] == "290.00000000"
    refused = call(http, sandbox, "GET", "/fapi/v2/balance", key=READ_ONLY)
    assert_error(refused, 401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1")
    weight = call(http, sandbox, "GET", "/fapi/v2/balance").headers["X-MBX-USED-WEIGHT-1M"]
    assert weight == "15"  # /fapi has its own budget: 5 a call


# --- weights, 429 and 418 (§8) ----------------------------------------------------------------


def test_weights_are_counted_per_budget_and_ip(sandbox, http):
    first = call(http, sandbox, "GET", "/api/v3/account")
    second = http.get(f"{sandbox.url}/api/v3/exchangeInfo")
    assert first.headers["X-MBX-USED-WEIGHT-1M"] == first.headers["X-MBX-USED-WEIGHT"] == "20"
    assert second.headers["X-MBX-USED-WEIGHT-1M"] == "40"  # one /api budget for every key and call
    assert (
        call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions").headers["X-SAPI-USED-IP-WEIGHT-1M"]
        == "1"
    )
    assert call(http, sandbox, "GET", "/sapi/v1/margin/account").headers["X-SAPI-USED-IP-WEIGHT-1M"] == "10"
    other_ip = SandboxRequest("GET", "/api/v3/time", [], "", "10.1.2.3", False)
    assert dict(sandbox.handle(other_ip).headers)["X-MBX-USED-WEIGHT-1M"] == "1"
    stats = http.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["busiest_window_per_ip"]["api"] == 40
    assert stats["busiest_window_per_ip"]["/sapi/v1/margin/account"] == 10
    assert http.delete(f"{sandbox.url}/_sandbox/stats").json()["requests"] == 0
    assert http.get(f"{sandbox.url}/api/v3/time").headers["X-MBX-USED-WEIGHT-1M"] == "1"


def test_over_the_limit_is_429_and_going_on_is_a_418_ban(sandbox, http):
    sandbox.api_weight_limit = 30
    assert call(http, sandbox, "GET", "/api/v3/account").status_code == 200
    for _ in range(3):
        response = call(http, sandbox, "GET", "/api/v3/account")
        assert_error(
            response, 429, -1003,
            "Too much request weight used; current limit is 30 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
        )  # fmt: skip
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    banned = http.get(f"{sandbox.url}/api/v3/time")
    body = assert_error(banned, 418, -1003)
    assert body["msg"].startswith("Way too much request weight used; IP banned until ")
    until = int(body["msg"].split("until ")[1].split(".")[0])
    assert abs(until - (sandbox.now_ms() + 120_000)) < 5_000
    assert int(banned.headers["Retry-After"]) == 120
    assert http.get(f"{sandbox.url}/sapi/v1/system/status").status_code == 418  # the IP is banned
    stats = sandbox.stats.snapshot()
    assert stats["refused_by_rate_limit"]["api"] == 4 and stats["bans"] == {"api": 1}
    assert stats["refused_by_ban"] == {"/sapi/v1/system/status": 1}
    sandbox.reset_rate_limits()
    assert http.get(f"{sandbox.url}/api/v3/time").status_code == 200


def test_sapi_limits_are_429_only_and_knobs_raise_limits(sandbox, http):
    sandbox.sapi_ip_weight_limit = 100
    for expected in (200, 429, 429, 429, 429, 429):
        assert call(http, sandbox, "GET", "/sapi/v1/asset/wallet/balance").status_code == expected
    assert call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions").status_code == 200  # own budget
    sandbox.api_weight_limit = 10**9
    for _ in range(400):  # 8,000 weight: over Binance's 6,000, fine with the knob raised
        assert http.get(f"{sandbox.url}/api/v3/exchangeInfo").status_code == 200
    assert sandbox.stats.snapshot()["busiest_window_per_ip"]["api"] == 8000


# --- faults (§7.2, §11) -----------------------------------------------------------------------


def test_the_faults_hook_lists_shows_and_refuses(sandbox, http):
    assert set(http.get(f"{sandbox.url}/_sandbox/faults").json()) == set(FAULT_NAMES)
    assert http.post(f"{sandbox.url}/_sandbox/faults", json={"waf": True}).json()["waf"] is True
    assert http.delete(f"{sandbox.url}/_sandbox/faults").json()["waf"] is False
    for bad in ({"nope": 1}, {"rate_limited": "x"}, {"banned": 0}, {"waf": 1}, {"latency_ms": -1}):
        assert http.post(f"{sandbox.url}/_sandbox/faults", json=bad).status_code == 400, bad


def test_restricted_location_answers_451_with_the_exact_body_everywhere(sandbox, http):
    sandbox.faults.restricted_location = True
    for response in (
        http.get(f"{sandbox.url}/api/v3/exchangeInfo"),
        call(http, sandbox, "GET", "/api/v3/account"),
    ):
        assert response.status_code == 451
        assert response.json() == {"code": 0, "msg": MSG_RESTRICTED}
        assert "\n" in response.text  # pretty-printed


@pytest.mark.parametrize(
    ("fault", "status", "code", "text"),
    [
        ({"internal_error": True}, 500, -1000, "An unknown error occurred while processing the request."),
        (
            {"overloaded": True},
            503,
            -1008,
            "Server is currently overloaded with other requests. Please try again in a few minutes.",
        ),
        ({"rate_limited": True}, 429, -1003, None),
        ({"banned": True}, 418, -1003, None),
    ],
)
def test_json_error_faults(sandbox, http, fault, status, code, text):
    sandbox.faults.update(**fault)
    body = assert_error(call(http, sandbox, "GET", "/api/v3/account"), status, code, text)
    assert body["msg"]


def test_rate_limited_and_banned_faults_carry_retry_after(sandbox, http):
    sandbox.faults.rate_limited = True
    assert http.get(f"{sandbox.url}/api/v3/time").headers["Retry-After"] == "60"
    sandbox.faults.replace({"rate_limited": 2})
    assert http.get(f"{sandbox.url}/api/v3/time").headers["Retry-After"] == "2"
    sandbox.faults.replace({"banned": 5})
    response = http.get(f"{sandbox.url}/api/v3/time")
    assert response.status_code == 418 and response.headers["Retry-After"] == "5"
    assert "IP banned until" in response.json()["msg"]


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        ({"cdn_error": True}, 503, "ERROR: The request could not be satisfied"),
        ({"waf": True}, 403, "Request blocked."),
        ({"http_status": 502}, 502, "502 Bad Gateway"),
    ],
)
def test_html_faults(sandbox, http, fault, status, text):
    sandbox.faults.update(**fault)
    response = http.get(f"{sandbox.url}/sapi/v1/system/status")
    assert response.status_code == status and text in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_maintenance_says_status_1_and_fails_other_calls_with_503(sandbox, http):
    http.post(f"{sandbox.url}/_sandbox/faults", json={"maintenance": True})
    assert http.get(f"{sandbox.url}/sapi/v1/system/status").json() == {
        "status": 1,
        "msg": "system maintenance",
    }
    assert_error(call(http, sandbox, "GET", "/api/v3/account"), 503, -1001)
    assert_error(http.get(f"{sandbox.url}/api/v3/ticker/price"), 503, -1001)


def test_malformed_json_latency_and_paths(sandbox, http):
    sandbox.faults.update(malformed_json=True, paths=["/api/v3/account"])
    response = call(http, sandbox, "GET", "/api/v3/account")
    assert response.status_code == 200 and int(response.headers["Content-Length"]) == len(response.content)
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # the real answer's headers
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    assert http.get(f"{sandbox.url}/api/v3/time").json()["serverTime"] > 0  # other paths untouched
    sandbox.faults.replace({"latency_ms": 150, "paths": ["/api/v3/time"]})
    started = time.perf_counter()
    assert http.get(f"{sandbox.url}/api/v3/time").status_code == 200
    assert time.perf_counter() - started >= 0.15
    with pytest.raises(requests.Timeout):
        http.get(f"{sandbox.url}/api/v3/time", timeout=0.05)


# --- data, lifecycle --------------------------------------------------------------------------


def test_the_demo_data_has_every_scenario_and_pricing_case():
    notes = [entry["note"] for entry in KEYS.values()]
    for prefix in (
        "demo: good key", "demo: ip-bound good key", "demo: withdraw enabled", "demo: ip-bound elsewhere",
        "demo: read-only", "demo: trading expiring soon", "demo: trading expired",
    ):  # fmt: skip
        assert sum(note.startswith(prefix) for note in notes) == 1, prefix
    for api_key, entry in KEYS.items():
        assert len(api_key) == len(entry["secret"]) == 64 and api_key.isalnum() and entry["secret"].isalnum()
        assert not entry["enableWithdrawals"] or entry["ipRestrict"]
    assert KEYS[IP_BOUND[0]]["ips"] == ["127.0.0.1", "::1"] and KEYS[ELSEWHERE[0]]["ips"] == ["203.0.113.7"]
    tickers = {t["symbol"]: t for t in load_tickers()}
    assert {"BTCUSDT", "ETHUSDT", "BNBUSDT", "USDTTRY"} <= set(tickers)
    assert tickers["WAVESUSDT"]["status"] == "BREAK"
    good = KEYS[GOOD[0]]
    held = {line["asset"] for line in good["spot"]}
    assert "KMDBTC" in tickers and "KMDUSDT" not in tickers and "KMD" in held
    assert "DNTETH" in tickers and not {"DNTUSDT", "DNTBTC"} & set(tickers) and "DNT" in held
    assert "VTHO" in held and not any("VTHO" in symbol for symbol in tickers)
    ld = next(line for line in good["spot"] if line["asset"] == "LDUSDT")
    assert good["earnFlexible"] == [{"asset": "USDT", "totalAmount": ld["free"]}]
    assert DEFAULT_KEYS_PATH.exists() and DEFAULT_TICKERS_PATH.exists()
    assert len(ENDPOINTS) == 13 and "POST /sapi/v1/asset/get-funding-asset" in ENDPOINTS
    assert "tradingExpiresInDays" in KEY_FIELDS and "secret" not in KEY_FIELDS


def test_keep_alive_is_fast_and_concurrent_calls_are_served(sandbox, http):
    call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions")
    started = time.perf_counter()
    for _ in range(100):
        assert call(http, sandbox, "GET", "/sapi/v1/account/apiRestrictions").status_code == 200
    assert (time.perf_counter() - started) * 10 < 10  # under 10 ms a call
    results: list[int] = []

    def worker() -> None:
        with requests.Session() as session:
            results.extend(call(session, sandbox, "GET", "/api/v3/account").status_code for _ in range(10))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 40 and sandbox.stats.snapshot()["requests"] >= 141


def test_the_context_manager_starts_and_stops(http):
    with BinanceSandbox(load_keys(), load_tickers()) as sb:
        assert http.get(f"{sb.url}/api/v3/time").status_code == 200
        url = sb.url
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/api/v3/time", timeout=2)
