"""The Bybit sandbox, tested over real HTTP on 127.0.0.1 with requests and plain hmac.

No database and no Django settings are needed. Facts: shared/bybit-api.md (§ numbers, vectors
V1–V8). Cast: the demo keys of sandbox_data/keys.json, found by the start of their note. The
site of a request is the Host header the test sends (as a client behind a proxy does); the
sandbox's own address is the global site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from exchanges.venues.bybit.sandbox import (
    DEFAULT_KEYS_PATH,
    DEFAULT_TICKERS_PATH,
    ENDPOINTS,
    FAULT_NAMES,
    KEY_FIELDS,
    SITE_HOSTS,
    BybitSandbox,
    hmac_ok,
    hmac_signature,
    load_keys,
    load_tickers,
    prehash,
    rsa_ok,
    site_of,
)
from exchanges.venues.kit.sandbox import Headers, SandboxRequest

DAY_MS = 86_400_000
KEYS = load_keys()
SCENARIOS = (
    "demo: good key", "demo: ip-bound good key", "demo: nl key", "demo: withdraw enabled",
    "demo: read-only", "demo: ip-bound elsewhere", "demo: expiring soon", "demo: expired",
    "demo: no wallet permission",
)  # fmt: skip


def demo(prefix: str) -> tuple[str, str]:
    for api_key, entry in KEYS.items():
        if entry["note"].startswith(prefix):
            return api_key, entry["secret"]
    raise LookupError(prefix)


GOOD = demo("demo: good key")
IP_BOUND = demo("demo: ip-bound good key")
NL = demo("demo: nl key")
WITHDRAW = demo("demo: withdraw enabled")
READ_ONLY = demo("demo: read-only")
ELSEWHERE = demo("demo: ip-bound elsewhere")
EXPIRING = demo("demo: expiring soon")
EXPIRED = demo("demo: expired")
NO_WALLET = demo("demo: no wallet permission")
UNKNOWN = ("Zq9Zq9Zq9Zq9Zq9Zq9", "Y" * 36)

# §3: the vectors' made-up key, secret and frozen clock (2026-01-01T00:00:00Z).
V_KEY, V_SECRET, TS = "Tq7Wm2Hx9KpL4sRv8N", "c3Fj8Qz1Lw6Yp0Rt5Mv2Nb7Xk4Hd9Gs1Ae6U", 1767225600000
V6_BODY = (
    '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001","price":"20000"}'
)
V6_PYBIT_BODY = json.dumps(json.loads(V6_BODY))  # json.dumps: spaces after ":" and ","
VECTORS = [  # (name, method, path, query or body, recvWindow, X-BAPI-SIGN) from §3.1
    ("V1", "GET", "/v5/user/query-api", "", "5000",
     "f7680854b5eb109ea3db51baddff09f26c2cdda30fbcedfd582ec12a1b6f0a17"),
    ("V2", "GET", "/v5/account/wallet-balance", "accountType=UNIFIED", "5000",
     "134ddacb8a3faac1eb111150c1bb1b64f5f5bf9cdc7cb689d8de81df208d4620"),
    ("V3", "GET", "/v5/asset/transfer/query-account-coins-balance", "accountType=FUND", "5000",
     "2e5c144ee207269ae661f75e59e91b3841eda4768d9ca5890a2ab012db93c328"),
    ("V4", "GET", "/v5/account/wallet-balance", "accountType=UNIFIED&coin=USDT,BTC", "5000",
     "3dc54c57a48509a216c34d074080fe7ac31e8c791531aa87d5782d2c88574166"),
    ("V5", "GET", "/v5/account/wallet-balance", "coin=BTC&accountType=UNIFIED", "5000",
     "50b993208d4e185e1bb03ded882a636545bdf0922e2a0bf186169c961a4dbd75"),
    ("V5-pybit", "GET", "/v5/account/wallet-balance", "accountType=UNIFIED&coin=BTC", "5000",
     "6a0e2dae5247eb45a4443ac7433c53ad89fc15e174487f8ae52a3f44638ea826"),
    ("V6", "POST", "/v5/order/create", V6_BODY, "5000",
     "4653b2322b044dbd7651ec8b58722b0ed0a4ad75575d98370a82807d615e77c8"),
    ("V6-pybit", "POST", "/v5/order/create", V6_PYBIT_BODY, "5000",
     "160fb031e4803a3d7fe5498889ec8ade65d07677867534a156eb6fd97b5bda2b"),
    ("V7", "POST", "/v5/user/create-demo-member", "{}", "5000",
     "ca4fd8af83cc5977ac6b5856e747f19f04ae32406c6e38791fd0ecf9c29a1df7"),
    ("V8", "GET", "/v5/user/query-api", "", "20000",
     "c9a65bfee5aea83647e332f6c98e11c3014bfd8aca69d749bdfd02267fee7722"),
]  # fmt: skip
QUERY_API_FIELDS = {
    "id", "note", "apiKey", "readOnly", "secret", "permissions", "ips", "type", "deadlineDay",
    "expiredAt", "createdAt", "unified", "uta", "userID", "inviterID", "vipLevel", "mktMakerLevel",
    "affiliateID", "rsaPublicKey", "isMaster", "parentUid", "kycLevel", "kycRegion", "userIDInt64",
    "inviterIDInt64", "affiliateIDInt64",
}  # fmt: skip
GROUPS = [
    "ContractTrade", "Spot", "Wallet", "Options", "Derivatives", "CopyTrading", "BlockTrade",
    "Exchange", "NFT", "Affiliate", "Earn", "FiatP2P", "FiatConvertBroker", "FiatGlobalPay",
    "FiatBitPay", "BitCard", "ByXPost",
]  # fmt: skip


@pytest.fixture
def sandbox():
    sb = BybitSandbox(load_keys(), load_tickers()).start()
    yield sb
    sb.stop()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def auth(key, payload: str, ts: int | str, recv_window: str | None = "5000", signature=None) -> dict:
    """The four X-BAPI-* headers for ``payload`` (§2), signed with plain hmac."""
    window = recv_window or ""
    headers = {
        "X-BAPI-API-KEY": key[0],
        "X-BAPI-TIMESTAMP": str(ts),
        "X-BAPI-SIGN": signature or sign(key[1], f"{ts}{key[0]}{window}{payload}"),
    }
    if recv_window is not None:
        headers["X-BAPI-RECV-WINDOW"] = recv_window
    return headers


def get(http, sb, path, query="", key=GOOD, *, host=None, ts=None, signed_query=None, **options):
    """A signed GET: ``query`` sent verbatim, ``signed_query`` (default: the same) signed."""
    stamp = sb.now_ms() if ts is None else ts
    headers = auth(key, query if signed_query is None else signed_query, stamp, **options)
    if host:
        headers["Host"] = host
    return http.get(f"{sb.url}{path}" + (f"?{query}" if query else ""), headers=headers)


def post(http, sb, path, body: str, key=GOOD, *, signed_body=None, **options):
    headers = auth(key, body if signed_body is None else signed_body, sb.now_ms(), **options)
    headers["Content-Type"] = "application/json"
    return http.post(f"{sb.url}{path}", data=body.encode(), headers=headers)


def ret(response, code: int, msg: str | None = None) -> dict[str, Any]:
    """Bybit's envelope with HTTP 200 (§9.1) and the given retCode; returns its ``result``."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}, body
    assert body["retCode"] == code, body
    if msg is not None:
        assert body["retMsg"] == msg
    if code:
        assert body["result"] == {} and body["retExtInfo"] == {}
    assert isinstance(body["time"], int)
    return body["result"]


def query_api(http, sb, key=GOOD, **options) -> dict[str, Any]:
    return ret(get(http, sb, "/v5/user/query-api", key=key, **options), 0)


# --- the signature checker (§3 vectors) -------------------------------------------------------


@pytest.mark.parametrize(("name", "method", "path", "payload", "window", "signature"), VECTORS)
def test_the_documented_vectors_verify_in_the_checker(name, method, path, payload, window, signature):
    message = prehash(str(TS), V_KEY, window, payload)
    assert message == f"{TS}{V_KEY}{window}{payload}".encode()  # no separators, no method/host/path
    assert hmac_signature(V_SECRET, message) == signature
    assert hmac_ok(V_SECRET, message, signature)
    assert not hmac_ok(V_SECRET, message, signature.upper())  # Choice: lower-case hex only
    assert not hmac_ok(V_SECRET + "x", message, signature)


def test_the_vectors_are_accepted_over_http_at_their_own_time(sandbox, http):
    sandbox.accounts[V_KEY] = {**KEYS[GOOD[0]], "secret": V_SECRET}
    sandbox.clock_offset_ms = TS - int(time.time() * 1000) + 300  # the server sees TS + 0.3 s
    served = [v for v in VECTORS if f"{v[1]} {v[2]}" in ENDPOINTS]
    assert [v[0] for v in served] == ["V1", "V2", "V3", "V4", "V5", "V5-pybit", "V6", "V6-pybit", "V8"]
    for name, method, path, payload, window, signature in served:
        headers = auth((V_KEY, V_SECRET), payload, TS, window, signature)
        if method == "GET":
            response = http.get(f"{sandbox.url}{path}" + (f"?{payload}" if payload else ""), headers=headers)
        else:
            headers.update({"Content-Type": "application/json", "Referer": "CCXT"})
            response = http.post(f"{sandbox.url}{path}", data=payload.encode(), headers=headers)
        assert ret(response, 0) is not None, name
    # V7's path is not served (never called by the dashboard): HTTP 404, no envelope.
    body = b"{}"
    response = http.post(
        f"{sandbox.url}/v5/user/create-demo-member", data=body, headers=auth((V_KEY, V_SECRET), "{}", TS)
    )
    assert response.status_code == 404 and "retCode" not in response.text


def test_an_rsa_key_is_verified_with_its_public_key_and_shown_by_query_api(sandbox, http):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    api_key = "RsaKey7Wm2Hx9KpL4s"
    entry = {k: v for k, v in KEYS[GOOD[0]].items() if k != "secret"}
    sandbox.accounts[api_key] = {**entry, "rsaPublicKey": public_pem}

    def rsa_headers(message: str, key=private) -> dict:
        signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return {"X-BAPI-SIGN": base64.b64encode(signature).decode()}

    ts = sandbox.now_ms()
    headers = {**auth((api_key, ""), "", ts), **rsa_headers(f"{ts}{api_key}5000")}
    result = ret(http.get(f"{sandbox.url}/v5/user/query-api", headers=headers), 0)
    assert result["rsaPublicKey"] == public_pem and result["secret"] == ""
    assert rsa_ok(public_pem, f"{ts}{api_key}5000", headers["X-BAPI-SIGN"])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers.update(rsa_headers(f"{ts}{api_key}5000", other))
    ret(http.get(f"{sandbox.url}/v5/user/query-api", headers=headers), 10004)
    assert not rsa_ok(public_pem, "x", "not base64!")


# --- headers, keys and sites (§1, §2, §9.2) ---------------------------------------------------


@pytest.mark.parametrize("missing", ["X-BAPI-API-KEY", "X-BAPI-SIGN", "X-BAPI-TIMESTAMP"])
def test_a_missing_auth_header_is_http_401_without_an_envelope(sandbox, http, missing):
    headers = auth(GOOD, "", sandbox.now_ms())
    del headers[missing]
    response = http.get(f"{sandbox.url}/v5/user/query-api", headers=headers)
    assert response.status_code == 401 and response.headers["Content-Type"] == "text/html"
    assert "Need to put authentication params in the request header" in response.text


def test_an_unknown_key_is_10003(sandbox, http):
    ret(get(http, sandbox, "/v5/user/query-api", key=UNKNOWN), 10003, "API key is invalid.")
    ret(get(http, sandbox, "/v5/user/query-api", key=(GOOD[0].lower(), GOOD[1])), 10003)


def test_a_key_answers_only_on_its_own_sites_hosts(sandbox, http):
    # The sandbox's own address (no proxy) is the global site.
    assert query_api(http, sandbox)["userID"] == KEYS[GOOD[0]]["uid"]
    for host in ("api.bybit.com", "api.bytick.com", "API.BYBIT.COM.", f"localhost:{sandbox.port}"):
        assert query_api(http, sandbox, host=host)["apiKey"] == GOOD[0], host
    # The Netherlands key: only on api.bybit.nl; elsewhere it looks unknown (10003 text, §1).
    ret(get(http, sandbox, "/v5/user/query-api", key=NL), 10003, "API key is invalid.")
    ret(get(http, sandbox, "/v5/user/query-api", key=NL, host="api.bybit.com"), 10003)
    assert query_api(http, sandbox, key=NL, host="api.bybit.nl")["userID"] == KEYS[NL[0]]["uid"]
    assert query_api(http, sandbox, key=NL, host="api.bybit.nl:443")["apiKey"] == NL[0]
    # The global key on a regional site, testnet, demo trading, or a host that is not Bybit's.
    for host in (
        "api.bybit.nl",
        "api.bybit.tr",
        "api-testnet.bybit.com",
        "api-demo.bybit.com",
        "api.example.org",
    ):
        ret(get(http, sandbox, "/v5/user/query-api", host=host), 10003)
    # Public endpoints answer on every host.
    response = http.get(f"{sandbox.url}/v5/market/time", headers={"Host": "api.bybit.kz"})
    assert ret(response, 0)["timeSecond"]


def test_site_of_reads_the_host_header():
    assert site_of("api.bybit.nl") == "nl" and site_of("api.bybit.tr:443") == "tr"
    assert site_of("api.bybit-tr.com") == "tr"  # the old Turkey host (PYBIT)
    assert site_of("api.bybitgeorgia.ge") == "ge" and site_of("api.manepa.jp") == "jp"
    assert (
        site_of("api.bybit.kz") == "kz"
        and site_of("api.bybit.ae") == "ae"
        and site_of("api.bybit.id") == "id"
    )
    assert site_of("127.0.0.1:8000") == "global" and site_of("[::1]:8000") == "global"
    assert site_of("10.0.0.5") == "global" and site_of("") == "global"
    assert site_of("sandbox.internal", own_host="sandbox.internal") == "global"
    assert site_of("api-testnet.bybit.com") == "testnet" and site_of("bybit.com") is None
    assert set(SITE_HOSTS) >= {"global", "nl", "tr", "kz", "ge", "ae", "id", "jp"}
    assert all(entry["site"] in SITE_HOSTS for entry in KEYS.values())


def test_a_wrong_secret_is_10004_and_echoes_what_was_hashed_never_the_secret(sandbox, http):
    response = get(
        http, sandbox, "/v5/account/wallet-balance", "accountType=UNIFIED", key=(GOOD[0], READ_ONLY[1])
    )
    ret(response, 10004)
    message = response.json()["retMsg"]
    assert message == (
        "Error sign, please check your signature generation algorithm: origin_string[***accountType=UNIFIED]"
    )
    assert GOOD[1] not in message and READ_ONLY[1] not in message and GOOD[0] not in message
    # A key bound elsewhere with a wrong secret: the signature is checked before the IP.
    ret(get(http, sandbox, "/v5/user/query-api", key=(ELSEWHERE[0], GOOD[1])), 10004)


def test_the_signature_covers_exactly_the_bytes_sent(sandbox, http):
    path = "/v5/account/wallet-balance"
    # Any order is fine as long as it is the order sent (V4/V5).
    ret(get(http, sandbox, path, "coin=BTC&accountType=UNIFIED"), 0)
    ret(get(http, sandbox, path, "accountType=UNIFIED&coin=USDT,BTC"), 0)
    # Signed sorted, sent unsorted; signed raw, sent percent-encoded: 10004.
    ret(
        get(http, sandbox, path, "coin=BTC&accountType=UNIFIED", signed_query="accountType=UNIFIED&coin=BTC"),
        10004,
    )
    sent = "accountType=UNIFIED&coin=USDT%2CBTC"
    ret(get(http, sandbox, path, sent, signed_query="accountType=UNIFIED&coin=USDT,BTC"), 10004)
    coins = ret(get(http, sandbox, path, sent), 0)["list"][0]["coin"]  # signed as sent: decoded after
    assert [c["coin"] for c in coins] == ["USDT", "BTC"]
    # Neither the path nor the method nor the host is signed: one signature, two endpoints.
    headers = auth(GOOD, "", sandbox.now_ms())
    for endpoint in ("/v5/user/query-api", "/v5/account/info"):
        ret(http.get(f"{sandbox.url}{endpoint}", headers=headers), 0)


def test_a_post_is_signed_over_its_raw_body(sandbox, http):
    spaced = '{"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001"}'
    result = ret(post(http, sandbox, "/v5/order/create", spaced), 0, "OK")
    assert result["orderId"].isdigit() and result["orderLinkId"] == ""
    compact = json.dumps(json.loads(spaced), separators=(",", ":"))
    ret(post(http, sandbox, "/v5/order/create", spaced, signed_body=compact), 10004)
    ret(post(http, sandbox, "/v5/order/create", "[1, 2]"), 10001, "request body is not a JSON object")


# --- timestamp and window (§4) ----------------------------------------------------------------


def test_the_timestamp_window_is_server_minus_recv_window_to_server_plus_one_second(sandbox, http):
    sandbox.clock_offset_ms = 120_000  # a fixed point far from local time: no drift matters
    now = sandbox.now_ms()
    assert query_api(http, sandbox, ts=now + 800)["apiKey"] == GOOD[0]  # < 1 s ahead
    ahead = get(http, sandbox, "/v5/user/query-api", ts=now + 1500, recv_window="60000")
    ret(ahead, 10002)
    text = ahead.json()["retMsg"]
    found = re.fullmatch(
        r"invalid request, please check your server timestamp or recv_window param\. "
        r"req_timestamp\[(\d+)\],server_timestamp\[(\d+)\],recv_window\[(\d+)\]",
        text,
    )
    assert found and found.group(1) == str(now + 1500) and found.group(3) == "60000"
    assert abs(int(found.group(2)) - sandbox.now_ms()) < 2_000  # the server clock, to resync from
    ret(get(http, sandbox, "/v5/user/query-api", ts=now - 8_000), 10002)  # older than 5000
    assert query_api(http, sandbox, ts=now - 8_000, recv_window="20000")["apiKey"] == GOOD[0]
    ret(get(http, sandbox, "/v5/user/query-api", ts="17672256x0000"), 10002)


def test_without_a_recv_window_header_the_window_is_5000_and_nothing_stands_in_the_prehash(sandbox, http):
    now = sandbox.now_ms()
    assert query_api(http, sandbox, recv_window=None)["apiKey"] == GOOD[0]
    ret(get(http, sandbox, "/v5/user/query-api", ts=now - 7_000, recv_window=None), 10002)
    headers = auth(GOOD, "", now, None, signature=sign(GOOD[1], f"{now}{GOOD[0]}5000"))
    ret(http.get(f"{sandbox.url}/v5/user/query-api", headers=headers), 10004)


def test_a_moved_clock_refuses_local_time_and_e1_gives_the_offset(sandbox, http):
    sandbox.clock_offset_ms = -3_600_000
    ret(get(http, sandbox, "/v5/user/query-api", ts=int(time.time() * 1000)), 10002)
    body = http.get(f"{sandbox.url}/v5/market/time").json()
    offset = body["time"] - int(time.time() * 1000)
    assert abs(offset + 3_600_000) < 2_000
    assert query_api(http, sandbox, ts=int(time.time() * 1000) + offset)["apiKey"] == GOOD[0]


# --- IP binding (§6) ------------------------------------------------------------------------------


def test_the_ip_binding_is_checked_against_the_callers_socket_address(sandbox):
    def from_ip(ip: str, key: tuple[str, str]) -> dict:
        request = SandboxRequest(
            method="GET", path="/v5/user/query-api", params=[], host="api.bybit.com", client_ip=ip,
            has_body=False, query="", headers=Headers(auth(key, "", sandbox.now_ms())),
        )  # fmt: skip
        response = sandbox.handle(request)
        assert response.status == 200
        return json.loads(response.body)

    assert from_ip("203.0.113.7", ELSEWHERE)["retCode"] == 0
    assert from_ip("::ffff:203.0.113.7", ELSEWHERE)["retCode"] == 0  # IPv4-mapped IPv6 peer
    for key in (IP_BOUND, WITHDRAW):
        assert from_ip("::1", key)["retCode"] == 0 and from_ip("127.0.0.1", key)["retCode"] == 0
        refused = from_ip("198.51.100.1", key)
        assert refused["retCode"] == 10010
        assert refused["retMsg"] == "Unmatched IP, please check your API key's bound IP addresses."
    assert from_ip("198.51.100.1", GOOD)["retCode"] == 0  # ["*"]: not bound


def test_a_key_bound_elsewhere_is_10010_over_http(sandbox, http):
    ret(get(http, sandbox, "/v5/user/query-api", key=ELSEWHERE), 10010)
    assert query_api(http, sandbox, key=IP_BOUND)["ips"] == ["127.0.0.1", "::1"]


# --- what query-api tells (§5 E2, §6) -------------------------------------------------------------


def test_query_api_has_every_field_and_group_for_every_working_key(sandbox, http):
    for api_key, entry in KEYS.items():
        if api_key in (ELSEWHERE[0], EXPIRED[0]):
            continue
        host = "api.bybit.nl" if entry["site"] == "nl" else None
        result = query_api(http, sandbox, key=(api_key, entry["secret"]), host=host)
        assert set(result) == QUERY_API_FIELDS, api_key
        assert list(result["permissions"]) == GROUPS
        assert result["apiKey"] == api_key and result["secret"] == "" and result["rsaPublicKey"] == ""
        assert result["userID"] == entry["uid"] and result["uta"] == 1 and result["isMaster"] is True
        assert result["note"] == entry["note"] and result["parentUid"] == "0"
        assert isinstance(result["readOnly"], int) and isinstance(result["deadlineDay"], int)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result["createdAt"])


def test_query_api_tells_read_only_trade_and_withdraw(sandbox, http):
    good, read_only, withdraw = (query_api(http, sandbox, key=k) for k in (GOOD, READ_ONLY, WITHDRAW))
    assert good["readOnly"] == 0 and good["permissions"]["Spot"] == ["SpotTrade"]
    assert "Withdraw" not in good["permissions"]["Wallet"]
    assert read_only["readOnly"] == 1 and read_only["permissions"]["Spot"] == [
        "SpotTrade"
    ]  # the flag decides
    assert withdraw["permissions"]["Wallet"] == ["AccountTransfer", "SubMemberTransfer", "Withdraw"]
    assert withdraw["userID"] == good["userID"]  # two keys of one account
    assert query_api(http, sandbox, key=NO_WALLET)["permissions"]["Wallet"] == []


def test_expiry_is_relative_to_the_sandbox_now_and_bound_keys_never_expire(sandbox, http):
    def iso(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))

    start = sandbox.started_ms
    good = query_api(http, sandbox)
    assert good["ips"] == ["*"] and good["expiredAt"] == iso(start + 80 * DAY_MS)
    assert good["deadlineDay"] == 79  # whole days left, rounded down (§5 E2)
    assert good["createdAt"] == iso(start - 10 * DAY_MS)  # 90 days before it expires
    soon = query_api(http, sandbox, key=EXPIRING)
    assert soon["deadlineDay"] == 4 and soon["expiredAt"] == iso(start + 5 * DAY_MS)
    for key in (IP_BOUND, WITHDRAW):
        bound = query_api(http, sandbox, key=key)
        assert (bound["deadlineDay"], bound["expiredAt"]) == (-2, "1970-01-01T00:00:00Z")
    ret(get(http, sandbox, "/v5/user/query-api", key=EXPIRED), 33004, "Your api key has expired.")
    ret(get(http, sandbox, "/v5/account/wallet-balance", "accountType=UNIFIED", key=EXPIRED), 33004)


def test_moving_the_clock_counts_the_days_down_and_then_expires_the_key(sandbox, http):
    sandbox.clock_offset_ms = 3 * DAY_MS + 3_600_000
    assert query_api(http, sandbox, key=EXPIRING)["deadlineDay"] == 1
    response = http.post(f"{sandbox.url}/_sandbox/clock", json={"clock_offset_ms": 6 * DAY_MS})
    assert response.json()["clock_offset_ms"] == 6 * DAY_MS
    ret(get(http, sandbox, "/v5/user/query-api", key=EXPIRING), 33004)
    assert query_api(http, sandbox)["deadlineDay"] == 73  # the good key goes on
    assert query_api(http, sandbox, key=IP_BOUND)["deadlineDay"] == -2


def test_the_keys_hook_changes_a_key_while_connected_and_refuses_impossible_keys(sandbox, http):
    hook = f"{sandbox.url}/_sandbox/keys/{GOOD[0]}"
    shown = http.get(hook).json()
    assert shown["apiKey"] == GOOD[0] and "secret" not in shown and shown["site"] == "global"
    assert http.post(hook, json={"expiresInDays": 1}).status_code == 200
    assert query_api(http, sandbox)["deadlineDay"] == 0  # counted from the change
    assert http.post(hook, json={"expiresInDays": -1}).status_code == 200
    ret(get(http, sandbox, "/v5/user/query-api"), 33004)
    http.post(hook, json={"expiresInDays": 30, "ips": ["127.0.0.1"], "readOnly": 1})
    assert query_api(http, sandbox)["readOnly"] == 1
    for refused in (
        {"ips": ["*"], "expiresInDays": None},  # unbound keys always expire (§6)
        {"isMaster": False, "permissions": {"Wallet": ["Withdraw"]}},  # sub keys never withdraw
        {"site": "mars"},
        {"readOnly": 2},
        {"secret": "x"},  # not a key field
    ):
        assert http.post(hook, json=refused).status_code == 400, refused
    ret(get(http, sandbox, "/v5/user/query-api", key=NL, host="api.bybit.com"), 10003)
    http.post(f"{sandbox.url}/_sandbox/keys/{NL[0]}", json={"site": "global"})
    assert query_api(http, sandbox, key=NL)["apiKey"] == NL[0]
    assert http.get(f"{sandbox.url}/_sandbox/keys/{UNKNOWN[0]}").status_code == 404


def test_bad_key_data_is_refused_on_load(tmp_path: Path):
    entry = dict(KEYS[GOOD[0]])
    for keys in (
        {"short": entry},
        {GOOD[0]: {**entry, "secret": "tooshort"}},
        {GOOD[0]: {**entry, "expiresInDays": None}},
        {GOOD[0]: {**entry, "site": "moon"}},
        {GOOD[0]: {**entry, "isMaster": False, "permissions": {"Wallet": ["Withdraw"]}}},
        {GOOD[0]: {**entry, "ips": ["not-an-ip"], "expiresInDays": None}},
        {GOOD[0]: {**entry, "uid": "186452013"}},
    ):
        path = tmp_path / "keys.json"
        path.write_text(json.dumps(keys))
        with pytest.raises(ValueError):
            load_keys(path)
    path = tmp_path / "tickers.json"
    path.write_text(json.dumps([{"symbol": "BTCUSDT"}]))
    with pytest.raises(ValueError):
        load_tickers(path)


# --- balances (§5 E4, E5, E6) ---------------------------------------------------------------------


def wallet(http, sb, query="accountType=UNIFIED", key=GOOD) -> dict[str, Any]:
    return ret(get(http, sb, "/v5/account/wallet-balance", query, key=key), 0, "OK")["list"][0]


def test_the_unified_wallet_lists_held_coins_with_bybits_fields_as_strings(sandbox, http):
    account = wallet(http, sandbox)
    assert account["accountType"] == "UNIFIED"
    coins = {c["coin"]: c for c in account["coin"]}
    assert set(coins) == {"USDT", "BTC", "ETH", "USDC", "QNT", "LDO", "XCAD"}  # SOL is all zeros
    usdt = coins["USDT"]
    assert (usdt["walletBalance"], usdt["locked"], usdt["equity"]) == (
        "4210.55218311",
        "150",
        "4188.12218311",
    )
    assert (usdt["totalPositionIM"], usdt["usdValue"]) == ("61.2045", "4188.12218311")
    usdc = coins["USDC"]  # walletBalance includes the borrowed 50; equity nets it
    assert (usdc["walletBalance"], usdc["equity"], usdc["borrowAmount"], usdc["spotBorrow"]) == (
        "310.4", "260.4", "50", "50",
    )  # fmt: skip
    assert coins["XCAD"]["usdValue"] == "0"  # no route to USD in the sandbox's prices
    for coin in coins.values():
        assert coin["availableToWithdraw"] == "" and coin["collateralSwitch"] is True
        assert all(
            isinstance(v, str) for k, v in coin.items() if k not in ("collateralSwitch", "marginCollateral")
        )
    total = sum(Decimal(c["usdValue"]) for c in coins.values())
    assert Decimal(account["totalEquity"]) == total
    assert account["totalPerpUPL"] == "-22.43" and account["totalInitialMargin"] == "61.2045"


def test_the_unified_wallet_by_coin_and_its_parameter_errors(sandbox, http):
    account = wallet(http, sandbox, "accountType=UNIFIED&coin=BTC,SOL,DOGE")
    assert [(c["coin"], c["walletBalance"]) for c in account["coin"]] == [
        ("BTC", "0.08415377"), ("SOL", "0"), ("DOGE", "0"),
    ]  # fmt: skip
    path = "/v5/account/wallet-balance"
    ret(get(http, sandbox, path, "accountType=SPOT"), 10001, "accountType only support UNIFIED")
    ret(get(http, sandbox, path, ""), 10001)
    # Keys of one UID see one account: the withdraw key shares the good key's balances.
    assert wallet(http, sandbox, key=WITHDRAW)["coin"] == wallet(http, sandbox)["coin"]
    # A classic (non-UTA) account: HTTP 404 (pybit#173).
    sandbox.update_key(READ_ONLY[0], {"uta": 0})
    assert get(http, sandbox, path, "accountType=UNIFIED", key=READ_ONLY).status_code == 404


def test_the_funding_wallet_needs_a_wallet_permission(sandbox, http):
    path = "/v5/asset/transfer/query-account-coins-balance"
    result = ret(get(http, sandbox, path, "accountType=FUND"), 0, "success")
    assert result["memberId"] == str(KEYS[GOOD[0]]["uid"]) and result["accountType"] == "FUND"
    assert result["balance"][1] == {
        "coin": "EUR",
        "transferBalance": "120",
        "walletBalance": "120",
        "bonus": "",
    }
    ret(get(http, sandbox, path, "accountType=FUND", key=NO_WALLET), 10005,
        "Permission denied, please check your API key permissions.")  # fmt: skip
    assert wallet(http, sandbox, key=NO_WALLET)["coin"]  # the trading wallet still reads
    one = ret(get(http, sandbox, path, "accountType=FUND&coin=MNT"), 0)["balance"]
    assert one == [{"coin": "MNT", "transferBalance": "250.5", "walletBalance": "250.5", "bonus": ""}]
    ret(get(http, sandbox, path, "accountType=UNIFIED"), 10001)  # coin is mandatory there
    unified = ret(get(http, sandbox, path, "accountType=UNIFIED&coin=ETH"), 0)["balance"]
    assert unified == [{"coin": "ETH", "transferBalance": "1.67", "walletBalance": "1.92", "bonus": ""}]
    ret(get(http, sandbox, path, "accountType=CONTRACT"), 10001)
    assert ret(get(http, sandbox, path, "accountType=FUND", key=NL, host="api.bybit.nl"), 0)["balance"]


def test_the_asset_overview_values_every_account_on_the_global_site_only(sandbox, http):
    path = "/v5/asset/asset-overview"
    result = ret(get(http, sandbox, path), 0)
    accounts = {a["accountType"]: a for a in result["list"]}
    assert list(accounts) == ["UnifiedTradingAccount", "FundingAccount", "Earn"]
    assert accounts["UnifiedTradingAccount"]["totalEquity"] == wallet(http, sandbox)["totalEquity"]
    assert accounts["Earn"]["categories"][0]["coinDetail"] == [
        {"coin": "USDT", "equity": "1000"}, {"coin": "ETH", "equity": "0.4"},
    ]  # fmt: skip
    assert Decimal(result["totalEquity"]) == sum(Decimal(a["totalEquity"]) for a in accounts.values())
    assert all(a["valuationCurrency"] == "USD" and a["snapshotTime"].isdigit() for a in accounts.values())
    in_btc = ret(get(http, sandbox, path, "valuationCurrency=BTC"), 0)
    assert Decimal(in_btc["totalEquity"]) < Decimal(result["totalEquity"]) / 90_000
    ret(get(http, sandbox, path, "valuationCurrency=XCAD"), 10001)
    ret(get(http, sandbox, path, key=NL, host="api.bybit.nl"), 10001)  # no regional accounts


def test_account_info_member_type_and_coin_info(sandbox, http):
    info = ret(get(http, sandbox, "/v5/account/info"), 0)
    assert info["unifiedMarginStatus"] == 6 and info["marginMode"] == "REGULAR_MARGIN"
    assert info["updatedTime"].isdigit()
    kinds = ret(get(http, sandbox, "/v5/user/get-member-type"), 0, "")
    assert kinds == {"accounts": [{"uid": str(KEYS[GOOD[0]]["uid"]), "accountType": ["UNIFIED", "FUND"]}]}
    rows = ret(get(http, sandbox, "/v5/asset/coin/query-info"), 0)["rows"]
    assert {"BTC", "USDT", "XCAD", "EUR"} <= {r["coin"] for r in rows}
    assert rows[0]["chains"][0]["chainDeposit"] == "1"
    assert [
        r["coin"] for r in ret(get(http, sandbox, "/v5/asset/coin/query-info", "coin=BTC"), 0)["rows"]
    ] == ["BTC"]


def test_an_order_needs_write_access_and_the_trade_permission(sandbox, http):
    body = (
        '{"category":"spot","symbol":"ETHBTC","side":"Sell","orderType":"Limit","qty":"0.1","price":"0.04"}'
    )
    assert ret(post(http, sandbox, "/v5/order/create", body), 0)["orderId"]
    ret(post(http, sandbox, "/v5/order/create", body, key=READ_ONLY), 10005)
    sandbox.update_key(NO_WALLET[0], {"permissions": {"ContractTrade": ["Order"]}})
    ret(post(http, sandbox, "/v5/order/create", body, key=NO_WALLET), 10005)
    for bad in (
        '{"category":"spot","symbol":"NOPEUSDT","side":"Buy","orderType":"Market","qty":"1"}',
        '{"category":"spot","symbol":"BTCUSDT","side":"Hold","orderType":"Market","qty":"1"}',
        '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1"}',
        '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0"}',
        '{"category":"nft","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"1"}',
    ):
        ret(post(http, sandbox, "/v5/order/create", bad), 10001)
    assert sandbox.stats.snapshot()["orders"] == {GOOD[0]: 1}  # nothing else was accepted


# --- market data (§5 E1, E7, E8, E9) ------------------------------------------------------------


def test_e1_server_time(sandbox, http):
    sandbox.clock_offset_ms = 42_000
    body = http.get(f"{sandbox.url}/v5/market/time").json()
    assert body["retCode"] == 0 and body["retMsg"] == "OK"
    result = body["result"]
    assert result["timeSecond"] == str(body["time"] // 1000)
    assert result["timeNano"].startswith(str(body["time"])) and len(result["timeNano"]) == 19
    assert abs(body["time"] - sandbox.now_ms()) < 2_000
    assert "X-Bapi-Limit" not in http.get(f"{sandbox.url}/v5/market/time").headers  # public


def test_e7_spot_tickers(sandbox, http):
    response = http.get(f"{sandbox.url}/v5/market/tickers?category=spot")
    result = ret(response, 0, "OK")
    rows = {r["symbol"]: r for r in result["list"]}
    assert result["category"] == "spot" and "WAVESUSDT" not in rows  # Closed: no ticker
    btc = rows["BTCUSDT"]
    assert btc["lastPrice"] == "97250.5" and btc["usdIndexPrice"] == "97250.5"
    assert set(btc) >= {"bid1Price", "ask1Price", "prevPrice24h", "price24hPcnt", "volume24h", "turnover24h"}
    assert "usdIndexPrice" not in rows["ETHBTC"]  # only XXX/USDT and XXX/USDC pairs
    one = ret(http.get(f"{sandbox.url}/v5/market/tickers?category=spot&symbol=LDOETH"), 0)["list"]
    assert [r["symbol"] for r in one] == ["LDOETH"]
    ret(
        http.get(f"{sandbox.url}/v5/market/tickers?category=spot&symbol=NOPEUSDT"),
        10001,
        "Not supported symbols",
    )
    ret(http.get(f"{sandbox.url}/v5/market/tickers"), 10001)
    assert ret(http.get(f"{sandbox.url}/v5/market/tickers?category=linear"), 0)["list"] == []


def test_the_prices_hold_every_valuation_route():
    """§8: a coin priced only via BTC (QNT), only via ETH (LDO), only inversely (EUR), and a
    held coin with no route at all (XCAD)."""
    tickers = load_tickers()
    pairs = {(t["baseCoin"], t["quoteCoin"]) for t in tickers if t["status"] == "Trading"}
    for coin, via in (("QNT", "BTC"), ("LDO", "ETH")):
        assert {q for b, q in pairs if b == coin} == {via} and (via, "USDT") in pairs
    assert ("USDT", "EUR") in pairs and not {q for b, q in pairs if b == "EUR"}
    assert not any("XCAD" in pair for pair in pairs)
    held = {
        line["coin"] for entry in KEYS.values() for line in entry.get("unified", []) + entry.get("fund", [])
    }
    assert {"QNT", "LDO", "XCAD", "EUR"} <= held


def test_e8_instruments_for_every_category(sandbox, http):
    result = ret(http.get(f"{sandbox.url}/v5/market/instruments-info?category=spot"), 0)
    rows = {r["symbol"]: r for r in result["list"]}
    assert result["nextPageCursor"] == "" and len(rows) == len(load_tickers())
    assert rows["WAVESUSDT"]["status"] == "Closed" and rows["BTCUSDT"]["status"] == "Trading"
    assert rows["QNTBTC"]["baseCoin"] == "QNT" and rows["QNTBTC"]["quoteCoin"] == "BTC"
    assert rows["BTCUSDT"]["priceFilter"] == {"tickSize": "0.1"}
    assert rows["BTCUSDT"]["lotSizeFilter"]["basePrecision"] == "0.000001"
    trading = ret(http.get(f"{sandbox.url}/v5/market/instruments-info?category=spot&status=Trading"), 0)
    assert "WAVESUSDT" not in {r["symbol"] for r in trading["list"]}
    for category in (
        "linear&limit=1000",
        "linear&limit=1000&status=PreLaunch",
        "inverse",
        "option&baseCoin=BTC",
    ):
        assert ret(http.get(f"{sandbox.url}/v5/market/instruments-info?category={category}"), 0)["list"] == []
    ret(http.get(f"{sandbox.url}/v5/market/instruments-info?category=spot&limit=5000"), 10001)


def test_e9_system_status(sandbox, http):
    assert ret(http.get(f"{sandbox.url}/v5/system/status"), 0) == {"list": []}


# --- HTTP-level errors (DOCS error "HTTP Code") ---------------------------------------------------


def test_http_errors_have_no_envelope(sandbox, http):
    assert http.put(f"{sandbox.url}/v5/market/time").status_code == 400
    assert http.get(f"{sandbox.url}/v5/market/time", data=b'{"a":1}').status_code == 403  # GET with a body
    assert http.get(f"{sandbox.url}/v5/market/nothing").status_code == 404
    response = http.post(f"{sandbox.url}/v5/user/query-api", data=b"{}")
    assert response.status_code == 404 and response.headers["Content-Type"] == "text/html"


# --- rate limits (§10) --------------------------------------------------------------------------


def test_per_uid_limits_count_down_in_headers_and_then_answer_10006(sandbox, http):
    sandbox.uid_window_ms = 60_000  # one window for the whole test
    path, query = "/v5/asset/transfer/query-account-coins-balance", "accountType=FUND"
    statuses = []
    for key in (GOOD, WITHDRAW, GOOD, WITHDRAW, GOOD):  # two keys, one UID: one budget (5/s)
        response = get(http, sandbox, path, query, key=key)
        ret(response, 0)
        assert response.headers["X-Bapi-Limit"] == "5"
        assert abs(int(response.headers["X-Bapi-Limit-Reset-Timestamp"]) - sandbox.now_ms()) < 2_000
        statuses.append(response.headers["X-Bapi-Limit-Status"])
    assert statuses == ["4", "3", "2", "1", "0"]
    refused = get(http, sandbox, path, query)
    ret(refused, 10006, "Too many visits!")
    assert refused.headers["X-Bapi-Limit-Status"] == "0"
    assert int(refused.headers["X-Bapi-Limit-Reset-Timestamp"]) > sandbox.now_ms() + 30_000  # window end
    ret(get(http, sandbox, path, query, key=IP_BOUND), 0)  # another UID has its own budget
    ret(get(http, sandbox, "/v5/account/wallet-balance", "accountType=UNIFIED"), 0)  # another endpoint
    stats = http.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["busiest_window_per_uid"][path] == 6 and stats["refused_by_rate_limit"][path] == 1
    http.delete(f"{sandbox.url}/_sandbox/stats")
    ret(get(http, sandbox, path, query), 0)


def test_query_api_allows_ten_a_second(sandbox, http):
    sandbox.uid_window_ms = 60_000
    answers = [get(http, sandbox, "/v5/user/query-api").json()["retCode"] for _ in range(11)]
    assert answers == [0] * 10 + [10006]


def test_the_ip_limit_is_a_403_page_and_a_ban(sandbox, http):
    sandbox.ip_limit, sandbox.ip_ban_seconds = 5, 600
    for _ in range(5):
        assert http.get(f"{sandbox.url}/v5/market/time").status_code == 200
    for _ in range(2):  # over the limit, then banned (public and signed alike)
        response = get(http, sandbox, "/v5/user/query-api")
        assert response.status_code == 403 and "access too frequent" in response.text
        assert response.headers["Content-Type"] == "text/html"
    stats = http.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["ip_bans"] == {"127.0.0.1": 1} and stats["refused_by_rate_limit"]["ip"] == 2
    http.delete(f"{sandbox.url}/_sandbox/stats")  # forgets windows and bans
    assert http.get(f"{sandbox.url}/v5/market/time").status_code == 200


# --- faults -----------------------------------------------------------------------------------


def test_fault_names_and_the_faults_hook(sandbox, http):
    assert {"rate_limited", "maintenance", "http_status", "malformed_json", "latency_ms", "paths"} <= set(
        FAULT_NAMES
    )
    shown = http.get(f"{sandbox.url}/_sandbox/faults").json()
    assert set(shown) == set(FAULT_NAMES) and shown["rate_limited"] is False
    assert http.post(f"{sandbox.url}/_sandbox/faults", json={"rate_limited": "everyone"}).status_code == 400
    assert http.post(f"{sandbox.url}/_sandbox/faults", json={"nonsense": True}).status_code == 400
    assert (
        http.post(f"{sandbox.url}/_sandbox/faults", json={"maintenance": True}).json()["maintenance"] is True
    )
    assert http.delete(f"{sandbox.url}/_sandbox/faults").json()["maintenance"] is False
    assert set(KEY_FIELDS) >= {"site", "readOnly", "permissions", "ips", "expiresInDays", "unified", "fund"}


def test_rate_limited_faults_answer_10006_or_the_ip_page(sandbox, http):
    sandbox.faults.rate_limited = True
    response = get(http, sandbox, "/v5/user/query-api")
    ret(response, 10006, "Too many visits!")
    assert response.headers["X-Bapi-Limit"] == "10" and response.headers["X-Bapi-Limit-Status"] == "0"
    assert int(response.headers["X-Bapi-Limit-Reset-Timestamp"]) > sandbox.now_ms()
    sandbox.faults.rate_limited = "ip"
    response = http.get(f"{sandbox.url}/v5/market/time")
    assert response.status_code == 403 and "access too frequent" in response.text


def test_maintenance_is_10016_and_the_status_page_says_ongoing(sandbox, http):
    sandbox.faults.maintenance = True
    ret(get(http, sandbox, "/v5/user/query-api"), 10016, "System error. Please try again later.")
    ret(http.get(f"{sandbox.url}/v5/market/tickers?category=spot"), 10016)
    status = ret(http.get(f"{sandbox.url}/v5/system/status"), 0)["list"]
    assert status[0]["state"] == "ongoing" and int(status[0]["end"]) > sandbox.now_ms()


def test_server_timeout_and_restricted_location(sandbox, http):
    sandbox.faults.server_timeout = True
    ret(get(http, sandbox, "/v5/account/info"), 10000, "Server Timeout")
    sandbox.faults.replace({"restricted_location": True})
    response = get(http, sandbox, "/v5/account/info")
    assert response.status_code == 403 and response.headers["Content-Type"] == "text/html"


def test_http_status_malformed_json_latency_and_paths(sandbox, http):
    sandbox.faults.http_status = 502
    response = http.get(f"{sandbox.url}/v5/market/time")
    assert response.status_code == 502 and "<html>" in response.text
    sandbox.faults.replace({"malformed_json": True, "paths": ["/v5/user/"]})
    broken = get(http, sandbox, "/v5/user/query-api")
    assert broken.status_code == 200 and int(broken.headers["Content-Length"]) == len(broken.content)
    with pytest.raises(ValueError):
        json.loads(broken.content)
    assert http.get(f"{sandbox.url}/v5/market/time").json()["retCode"] == 0  # other paths spared
    sandbox.faults.replace({"latency_ms": 300})
    started = time.monotonic()
    assert http.get(f"{sandbox.url}/v5/market/time").status_code == 200
    assert time.monotonic() - started >= 0.3


# --- the demo data and the server -----------------------------------------------------------


def test_the_demo_keys_cover_every_scenario_once_with_bybits_formats():
    assert DEFAULT_KEYS_PATH.exists() and DEFAULT_TICKERS_PATH.exists()
    notes = [entry["note"] for entry in KEYS.values()]
    for note in notes:
        assert sum(note.startswith(s) for s in SCENARIOS) == 1, note
    assert sorted(next(s for s in SCENARIOS if n.startswith(s)) for n in notes) == sorted(SCENARIOS)
    for api_key, entry in KEYS.items():
        assert re.fullmatch(r"[A-Za-z0-9]{18}", api_key) and re.fullmatch(r"[A-Za-z0-9]{36}", entry["secret"])
        bound = entry["ips"] != ["*"]
        assert (entry["expiresInDays"] is None) == bound, api_key  # bound keys never expire
    assert KEYS[NL[0]]["site"] == "nl" and KEYS[EXPIRED[0]]["expiresInDays"] == -2
    assert KEYS[ELSEWHERE[0]]["ips"] == ["203.0.113.7"] and KEYS[EXPIRING[0]]["expiresInDays"] == 5


def test_keep_alive_concurrency_and_the_context_manager(http):
    with BybitSandbox(load_keys(), load_tickers()) as sb:
        sb.uid_limits["/v5/user/query-api"] = 1000
        codes: list[int] = []

        def worker():
            with requests.Session() as session:
                codes.extend(get(session, sb, "/v5/user/query-api").json()["retCode"] for _ in range(5))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert codes == [0] * 40 and sb.stats.snapshot()["peak_in_flight"] >= 1
        url = sb.url
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/v5/market/time", timeout=2)
