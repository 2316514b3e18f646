"""Our Binance client against the Binance sandbox, over real HTTP on 127.0.0.1; and Binance's
error answers decoded (binance-api.md §7.2)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchanges.venues.binance.client import (
    BinanceClient,
    facts_from_restrictions,
    overview_of,
    unlisted_wallets,
)
from exchanges.venues.binance.errors import BinanceError, ErrorKind, decode, request_ip
from exchanges.venues.binance.sandbox import BinanceSandbox, load_keys, load_tickers
from exchanges.venues.binance.venue import BINANCE
from exchanges.venues.kit.gate import GateBusy
from exchanges.venues.kit.types import Credentials, KeyFacts, OtherLine, Prior
from tests.venues.recording_gate import RecordingGate

# --- Decoding: HTTP status first, then code, then msg ------------------------------------------


def _body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}).encode()


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (401, _body(-2014, "API-key format invalid."), ErrorKind.INVALID_ACCESS_KEY, "-2014"),
        (400, _body(-2014, "API-key format invalid."), ErrorKind.INVALID_ACCESS_KEY, "-2014"),
        (
            401,
            _body(-2015, "Invalid API-key, IP, or permissions for action."),
            ErrorKind.KEY_IP_OR_PERMISSION,
            "-2015",
        ),
        (400, _body(-1022, "Signature for this request is not valid."), ErrorKind.INVALID_SIGNATURE, "-1022"),
        (
            400,
            _body(-1021, "Timestamp for this request is outside of the recvWindow."),
            ErrorKind.INVALID_TIMESTAMP,
            "-1021",
        ),
        (
            401,
            _body(-1002, "You are not authorized to execute this request."),
            ErrorKind.NO_PERMISSION,
            "-1002",
        ),
        (
            500,
            _body(-1000, "An unknown error occurred while processing the request."),
            ErrorKind.UNAVAILABLE,
            "-1000",
        ),
        (
            503,
            _body(-1001, "Internal error; unable to process your request."),
            ErrorKind.UNAVAILABLE,
            "-1001",
        ),
        (
            503,
            _body(-1008, "Server is currently overloaded with other requests."),
            ErrorKind.UNAVAILABLE,
            "-1008",
        ),
        (
            408,
            _body(-1007, "Timeout waiting for response from backend server."),
            ErrorKind.UNAVAILABLE,
            "-1007",
        ),
        (
            451,
            b'{\n  "code": 0,\n  "msg": "Service unavailable from a restricted location according to '
            b"'b. Eligibility' in https://www.binance.com/en/terms.\"\n}",
            ErrorKind.RESTRICTED_LOCATION,
            "0",
        ),
        (403, b"<html><body>403 Forbidden</body></html>", ErrorKind.UNAVAILABLE, "403"),
        (
            503,
            b"<!DOCTYPE HTML><HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE>"
            b"</HEAD></HTML>",
            ErrorKind.UNAVAILABLE,
            "503",
        ),
        (502, b"", ErrorKind.UNAVAILABLE, "502"),
        (503, _body(-1001, "System is under maintenance."), ErrorKind.MAINTENANCE, "-1001"),
        (200, b'{"success": false, "msg": "You don\'t have permission."}', ErrorKind.NO_PERMISSION, "200"),
        (400, _body(-1104, "Not all sent parameters were read."), ErrorKind.UNKNOWN, "-1104"),
        (400, _body(-9999, "Something new."), ErrorKind.UNKNOWN, "-9999"),
        (
            404,
            b'{"timestamp":1,"status":404,"error":"Not Found","message":"No message available",'
            b'"path":"/sapi/v1/x"}',
            ErrorKind.UNKNOWN,
            "404",
        ),
    ],
)
def test_binance_answers_decode_to_neutral_kinds(status, body, kind, code):
    error = decode(status, body, {}, path="/api/v3/account")
    assert isinstance(error, BinanceError)
    assert error.kind == kind
    assert error.code == code
    assert error.status == status
    assert str(error).startswith("Binance /api/v3/account failed")


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", 7.0), (418, "120", 120.0), (429, "0", 1.0), (429, None, 1.0), (418, "soon", 1.0)],
)
def test_rate_limits_carry_retry_after_of_at_least_one_second(status, retry_after, expected):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    error = decode(status, _body(-1003, "Too much request weight used; current limit is 6000"), headers)
    assert error.kind == ErrorKind.RATE_LIMITED
    assert error.retry_after == expected
    assert not error.permanent


def test_minus_2015_keeps_the_ip_binance_saw():
    message = "Invalid API-key, IP, or permissions for action, request ip: 203.0.113.7"
    error = decode(401, _body(-2015, message), {})
    assert error.kind == ErrorKind.KEY_IP_OR_PERMISSION
    assert error.ip == "203.0.113.7"
    assert "request ip: 203.0.113.7" in error.message and "203.0.113.7" in error.detail
    assert error.permanent
    assert request_ip("Invalid API-key, IP, or permissions for action.") is None
    assert request_ip("..., request ip: 2001:db8::1") == "2001:db8::1"


def test_unknown_and_location_answers_are_never_a_verdict_on_the_key():
    assert not decode(400, _body(-9999, "?"), {}).permanent
    assert not decode(451, _body(0, "restricted location"), {}).permanent
    assert not decode(503, b"<html>", {}).permanent
    assert decode(400, _body(-1022, "Signature for this request is not valid."), {}).permanent


def test_a_web_page_never_reaches_the_message():
    page = b"<html><body>" + b"x" * 5000 + b"secret-looking</body></html>"
    error = decode(503, page, {})
    assert "secret-looking" not in str(error) and len(error.message) < 100
    assert error.message == "Binance answered HTTP 503 with a web page"


# --- E4 as key facts ------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PAST, FUTURE = int(NOW.timestamp() * 1000) - 86_400_000, int(NOW.timestamp() * 1000) + 86_400_000


@pytest.mark.parametrize(
    ("trading", "restricted", "expiry", "can_trade", "expired"),
    [
        (True, False, None, True, False),  # no expiry known
        (True, False, FUTURE, True, False),  # expires tomorrow
        (False, False, PAST, False, True),  # Binance unticked it
        (True, False, PAST, False, True),  # the date passed; Binance has not unticked it yet
        (True, True, PAST, True, False),  # now IP-restricted: a stale date, trading never expires
        (False, False, FUTURE, False, False),  # simply not ticked: incorrect permissions
    ],
)
def test_trading_expiry_from_the_permission_answer(trading, restricted, expiry, can_trade, expired):
    answer = {"ipRestrict": restricted, "enableReading": True, "enableSpotAndMarginTrading": trading}
    if expiry is not None:
        answer["tradingAuthorityExpirationTime"] = expiry
    facts = facts_from_restrictions(answer, now=NOW)
    assert (facts.can_trade, facts.trading_expired) == (can_trade, expired)
    assert facts.flags[1].on is trading  # the box as Binance shows it


def test_a_missing_permission_field_is_off_and_an_absent_ip_field_unknown():
    facts = facts_from_restrictions({"enableReading": True})
    assert facts.can_read and not facts.can_trade and not facts.can_withdraw
    assert facts.ip_restricted is None and facts.trading_expires_at is None


# --- Over HTTP, against the Binance sandbox -------------------------------------------------

_DEMO = load_keys()


def demo_key(note: str) -> tuple[str, str]:
    """(API key, secret) of the demo key whose note starts with ``note``."""
    for api_key, entry in _DEMO.items():
        if entry["note"].startswith(note):
            return api_key, entry["secret"]
    raise LookupError(note)


GOOD = demo_key("demo: good key")
IP_BOUND = demo_key("demo: ip-bound good key")
WITHDRAW = demo_key("demo: withdraw enabled")
ELSEWHERE = demo_key("demo: ip-bound elsewhere")
READ_ONLY = demo_key("demo: read-only")
EXPIRING = demo_key("demo: trading expiring soon")
EXPIRED = demo_key("demo: trading expired")
ALL_SECRETS = [
    value for pair in (GOOD, IP_BOUND, WITHDRAW, ELSEWHERE, READ_ONLY, EXPIRING, EXPIRED) for value in pair
]

ED25519_KEY = "Ed25519DemoKey" + "0" * 50
_ED25519_PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ED25519_PEM = _ED25519_PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


@pytest.fixture
def sandbox():
    keys = load_keys()
    # An Ed25519 key on the good key's account: Binance holds only its public half.
    keys[ED25519_KEY] = {
        **{k: v for k, v in keys[GOOD[0]].items() if k not in ("secret", "spot", "funding")},
        "keyType": "ED25519",
        "publicKeyPem": _ED25519_PRIVATE.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "note": "test: ed25519",
    }
    keys[ED25519_KEY].pop("secret", None)
    sb = BinanceSandbox(keys, load_tickers()).start()
    yield sb
    sb.stop()


@pytest.fixture
def gate():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test:binance-gate:{os.getpid()}:{time.monotonic_ns()}"
    gate = RecordingGate(
        client, cap=8, lease_seconds=5, max_wait_seconds=2, prefix=prefix, limit_for=BINANCE.limit_for
    )
    yield gate
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def _client(sandbox, key=GOOD, **kwargs) -> BinanceClient:
    return BinanceClient(sandbox.url, credentials=Credentials(*key), timeout=(2.0, 5.0), **kwargs)


def _lines(read, wallet: str) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {
        line.asset: (line.available, line.in_orders, line.debt)
        for line in read.lines
        if line.wallet == wallet
    }


def _assert_clean(error: BaseException, key=GOOD) -> None:
    """No URL, query, key, secret or signature in anything an error shows."""
    shown = " ".join(
        [str(error), repr(error), error.detail, error.message, error.path, *map(str, error.args)]
    )
    for secret in (*key, *ALL_SECRETS, ED25519_PEM[30:60]):
        assert secret not in shown
    for needle in ("signature=", "timestamp=", "recvWindow", "http://", "127.0.0.1:", "X-MBX-APIKEY"):
        assert needle not in shown, needle
    assert not re.search(r"[0-9a-f]{64}|[A-Za-z0-9+/]{86}==", shown)  # an HMAC or Ed25519 signature


def test_a_good_key_is_described_in_binance_words(sandbox):
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())
    entry = sandbox.keys[GOOD[0]]
    assert (facts.can_read, facts.can_trade, facts.can_withdraw, facts.known) == (True, True, False, True)
    assert facts.account_uid == str(entry["uid"])
    assert facts.ip_restricted is False and facts.ip_addresses == ()
    days_left = (facts.trading_expires_at - datetime.now(UTC)).total_seconds() / 86400
    assert 26.9 < days_left <= 27 and not facts.trading_expired
    assert facts.key_expires_at is None and not facts.key_expired
    flags = {flag.name: flag for flag in facts.flags}
    assert list(flags) == [
        "Enable Reading",
        "Enable Spot & Margin Trading",
        "Enable Withdrawals",
        "Enable Margin Loan, Repay & Transfer",
        "Enable Futures",
        "Permits Universal Transfer",
        "Enable Internal Transfer",
        "Enable Vanilla Options",
        "Enable Portfolio Margin Trading",
    ]
    assert (
        flags["Enable Reading"].on and flags["Enable Spot & Margin Trading"].on and flags["Enable Futures"].on
    )
    assert not flags["Enable Withdrawals"].on and flags["Enable Withdrawals"].danger
    assert flags["Permits Universal Transfer"].danger and not flags["Enable Reading"].danger
    assert set(facts.permissions) == {"enableReading", "enableSpotAndMarginTrading", "enableFutures"}
    assert "ipRestrict=false" in facts.summary and "enableWithdrawals=false" in facts.summary
    assert "tradingAuthorityExpirationTime=" in facts.summary and "\n" not in facts.summary
    # E5 was read for the uid and is kept for the balances: 2 calls, no more.
    assert client.calls == 2 and facts.context["account"]["uid"] == entry["uid"]


def test_balances_of_every_wallet_without_counting_flexible_earn_twice(sandbox):
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert read.wallets == ("spot", "funding", "earn-flexible", "earn-locked", "futures")
    spot = _lines(read, "spot")
    assert spot["BTC"] == (Decimal("0.51234567"), 0, 0)
    assert spot["USDT"] == (Decimal("1520.25"), Decimal("250"), 0)  # free -> available, locked -> in orders
    assert "LDUSDT" not in spot and "LTC" not in spot  # the Earn mirror; a zero line
    assert _lines(read, "funding") == {"USDT": (Decimal("75.5"), 0, 0), "BNB": (Decimal("0.25"), 0, 0)}
    assert _lines(read, "earn-flexible") == {"USDT": (Decimal(500), 0, 0)}
    assert _lines(read, "earn-locked") == {"BNB": (Decimal("2.5"), 0, 0)}
    assert _lines(read, "futures") == {"USDT": (Decimal("310.12345678"), 0, 0)}
    assert read.other == (OtherLine("futures", "USDT", "unrealized-pnl", Decimal("4.5")),)
    # The 500 USDT of flexible Earn appear once, though spot also lists them as LDUSDT.
    usdt_in_earn = sum(
        line.available for line in read.lines if line.asset in ("USDT", "LDUSDT") and "earn" in line.wallet
    )
    assert usdt_in_earn == 500
    assert read.unread == ()
    assert all(
        isinstance(v, Decimal) for line in read.lines for v in (line.available, line.in_orders, line.debt)
    )
    # inspect (E4, E5) + funding, overview, flexible, locked, futures: E5 not asked twice.
    assert client.calls == 7 and sandbox.stats.snapshot()["requests"] == 7


def test_flexible_earn_is_shown_from_spot_when_earn_is_not_read(sandbox):
    sandbox.update_key(GOOD[0], {"earnFlexible": [], "earnLocked": []})  # the overview shows no Earn
    with _client(sandbox) as client:
        read = client.read_balances(client.inspect_key(Prior()))
    assert _lines(read, "earn-flexible") == {"USDT": (Decimal(500), 0, 0)}
    assert "LDUSDT" not in _lines(read, "spot") and "earn-locked" not in read.wallets
    assert client.calls == 5  # no Simple Earn call (150 weight each)


def test_cross_margin_counts_borrowed_and_interest_as_debt(sandbox):
    with _client(sandbox, IP_BOUND) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert facts.ip_restricted is True and facts.trading_expires_at is None and facts.can_trade
    assert read.wallets == ("spot", "funding", "margin")
    margin = _lines(read, "margin")
    assert margin["BTC"] == (Decimal("0.01"), 0, Decimal("-0.0020015"))
    assert sum(margin["BTC"]) == Decimal("0.0079985")  # the net asset
    assert margin["USDT"] == (Decimal(120), 0, 0)
    assert _lines(read, "funding") == {"TRY": (Decimal(350), 0, 0)}


def test_a_wallet_the_key_may_not_read_is_reported_not_fatal(sandbox):
    sandbox.update_key(GOOD[0], {"enableFutures": False})  # futures money, but no futures access
    with _client(sandbox) as client:
        read = client.read_balances(client.inspect_key(Prior()))
    assert [u["type"] for u in read.unread] == ["futures"]
    assert read.unread[0]["id"] == "USDⓈ-M Futures"
    assert "-2015" in read.unread[0]["reason"]
    assert "futures" not in read.wallets and _lines(read, "spot")  # the rest was read
    _assert_clean(BinanceError(ErrorKind.UNKNOWN, message=read.unread[0]["reason"]))


def test_funding_counts_locked_freeze_and_withdrawing_as_held(sandbox):
    funding = [{"asset": "USDT", "free": "1", "locked": "2", "freeze": "3", "withdrawing": "4"}]
    sandbox.update_key(READ_ONLY[0], {"funding": funding})
    with _client(sandbox, READ_ONLY) as client:
        read = client.read_balances(client.inspect_key(Prior()))
    assert _lines(read, "funding") == {"USDT": (Decimal(1), Decimal(9), 0)}


def test_wallets_binance_lists_without_a_detail_endpoint_go_to_unread():
    overview = overview_of(
        [
            {"activate": True, "balance": "10", "walletName": "Spot"},
            {"activate": True, "balance": "0.71842752", "walletName": "USDⓈ-M Futures"},
            {"activate": True, "balance": "12.5", "walletName": "Trading Bots"},
            {"activate": True, "balance": "3", "walletName": "Copy Trading"},
            {"activate": True, "balance": "0", "walletName": "Isolated Margin"},
            {"activate": False, "balance": "0", "walletName": "Options"},
        ]
    )
    assert overview["usds-m futures"] == Decimal("0.71842752")
    assert unlisted_wallets(overview) == [
        {
            "type": "trading-bots",
            "id": "Trading Bots",
            "reason": "Binance shows 12.5 USDT here; this dashboard does not read this wallet's assets yet",
        },
        {
            "type": "copy-trading",
            "id": "Copy Trading",
            "reason": "Binance shows 3 USDT here; this dashboard does not read this wallet's assets yet",
        },
    ]
    assert unlisted_wallets(None) == []


@pytest.mark.parametrize(
    ("key", "can_trade", "expired", "days"),
    [(READ_ONLY, False, False, None), (EXPIRING, True, False, 3), (EXPIRED, False, True, -2)],
)
def test_trading_permission_and_its_expiry(sandbox, key, can_trade, expired, days):
    with _client(sandbox, key) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)  # reads keep working after trading expired
    assert facts.can_read and facts.can_trade is can_trade and facts.trading_expired is expired
    if days is None:
        assert facts.trading_expires_at is None
    else:
        left = (facts.trading_expires_at - datetime.now(UTC)).total_seconds() / 86400
        assert days - 0.1 < left <= days
    assert facts.account_uid == str(sandbox.keys[key[0]]["uid"])
    assert _lines(read, "spot")


def test_trading_expires_when_binance_time_passes_the_date(sandbox):
    sandbox.clock_offset_ms = 4 * 86_400_000  # four days on: the 3-day key's trading is over
    with _client(sandbox, EXPIRING) as client:
        facts = client.inspect_key(Prior())
    assert facts.trading_expired and not facts.can_trade
    assert abs(client.clock_offset_ms - 4 * 86_400_000) < 2000  # re-synced on -1021 by itself


def test_a_withdraw_key_is_described_without_reading_its_account(sandbox):
    with _client(sandbox, WITHDRAW) as client:
        facts = client.inspect_key(Prior(account_uid="412867391"))
    assert facts.can_withdraw and facts.ip_restricted
    assert next(f for f in facts.flags if f.name == "Enable Withdrawals").on
    assert client.calls == 1 and facts.context is None
    assert facts.account_uid == "412867391"  # what we knew; no E5 with such a key


@pytest.mark.parametrize(
    ("key", "kind", "code"),
    [
        (("not-a-binance-key", GOOD[1]), ErrorKind.INVALID_ACCESS_KEY, "-2014"),
        (("A" * 64, GOOD[1]), ErrorKind.KEY_IP_OR_PERMISSION, "-2015"),  # unknown (or deleted) key
        ((GOOD[1], GOOD[0]), ErrorKind.KEY_IP_OR_PERMISSION, "-2015"),  # swapped: the secret is no key
        ((GOOD[0], "B" * 64), ErrorKind.INVALID_SIGNATURE, "-1022"),
        ((GOOD[0], GOOD[1][:-1] + "x"), ErrorKind.INVALID_SIGNATURE, "-1022"),
    ],
)
def test_refusals_are_decoded_and_permanent(sandbox, key, kind, code):
    with _client(sandbox, key) as client, pytest.raises(BinanceError) as refused:
        client.inspect_key(Prior())
    assert refused.value.kind == kind and refused.value.code == code
    assert refused.value.permanent and refused.value.venue == "Binance"
    assert refused.value.path == "/sapi/v1/account/apiRestrictions"
    _assert_clean(refused.value, key)


def test_an_ip_refusal_keeps_the_address_binance_saw(sandbox):
    with _client(sandbox, ELSEWHERE) as client, pytest.raises(BinanceError) as refused:
        client.inspect_key(Prior())
    error = refused.value
    assert error.kind == ErrorKind.KEY_IP_OR_PERMISSION and error.code == "-2015"
    assert error.ip == "127.0.0.1"
    assert error.detail.endswith("request ip: 127.0.0.1")
    text = BINANCE.texts[error.kind]
    assert "127.0.0.1" in text.fix_with_ip.format(ip=error.ip)


@pytest.mark.parametrize("offset_minutes", [10, -10])
def test_a_wrong_clock_is_corrected_once_and_never_reaches_the_user(sandbox, offset_minutes):
    sandbox.clock_offset_ms = offset_minutes * 60_000
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert abs(client.clock_offset_ms - offset_minutes * 60_000) < 2000
    assert abs(facts.skew_ms - offset_minutes * 60_000) < 2000
    assert _lines(read, "spot")
    # E4 refused (-1021), E1, E4 again, E5; then the balances on the corrected clock.
    assert client.calls == 4 + 5


def test_sync_clock_measures_binance_time(sandbox):
    sandbox.clock_offset_ms = -123_456
    with BinanceClient(sandbox.url, credentials=None) as client:
        assert abs(client.sync_clock() + 123_456) < 1000
    assert client.calls == 1


def test_prices_are_tradable_pairs_only_as_decimals(sandbox):
    with BinanceClient(sandbox.url) as client:
        prices = client.prices()
    assert prices["BTCUSDT"] == Decimal("97250.12") and prices["KMDBTC"] == Decimal("0.00000412")
    assert "WAVESUSDT" not in prices  # BREAK: a last price that no longer means anything
    assert all(isinstance(p, Decimal) and s == s.upper() for s, p in prices.items())


def test_an_ed25519_key_signs_over_http(sandbox):
    with _client(sandbox, (ED25519_KEY, ED25519_PEM)) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert facts.account_uid == str(sandbox.keys[GOOD[0]]["uid"]) and facts.can_read
    assert _lines(read, "funding")  # a POST with an Ed25519 signature in the body


@pytest.mark.parametrize(
    ("faults", "kind", "code", "retry_after"),
    [
        ({"rate_limited": 7}, ErrorKind.RATE_LIMITED, "-1003", 7.0),
        ({"banned": 120}, ErrorKind.RATE_LIMITED, "-1003", 120.0),
        ({"restricted_location": True}, ErrorKind.RESTRICTED_LOCATION, "0", None),
        ({"internal_error": True}, ErrorKind.UNAVAILABLE, "-1000", None),
        ({"overloaded": True}, ErrorKind.UNAVAILABLE, "-1008", None),
        ({"http_status": 502}, ErrorKind.UNAVAILABLE, "502", None),
        ({"cdn_error": True}, ErrorKind.UNAVAILABLE, "503", None),
        ({"waf": True}, ErrorKind.UNAVAILABLE, "403", None),
        ({"maintenance": True}, ErrorKind.MAINTENANCE, "-1001", None),
        ({"malformed_json": True}, ErrorKind.UNAVAILABLE, "200", None),
    ],
)
def test_every_transient_failure_is_decoded_and_kept_transient(sandbox, faults, kind, code, retry_after):
    sandbox.faults.update(**faults)
    with _client(sandbox) as client, pytest.raises(BinanceError) as failed:
        client.inspect_key(Prior())
    error = failed.value
    assert (error.kind, error.code, error.retry_after) == (kind, code, retry_after)
    assert not error.permanent
    _assert_clean(error)


def test_a_cdn_page_is_reported_as_a_web_page(sandbox):
    sandbox.faults.update(cdn_error=True)
    with BinanceClient(sandbox.url) as client, pytest.raises(BinanceError) as failed:
        client.prices()
    assert failed.value.message == "Binance answered HTTP 503 with a web page"
    assert "CloudFront" not in str(failed.value)


def test_maintenance_is_recognised_from_binance_system_status(sandbox):
    sandbox.faults.update(maintenance=True)
    with _client(sandbox) as client, pytest.raises(BinanceError) as failed:
        client.read_balances(KeyFacts(can_read=True, can_trade=True, can_withdraw=False))
    assert failed.value.kind == ErrorKind.MAINTENANCE
    assert client.calls == 2  # the refused call, then GET /sapi/v1/system/status


def test_timeouts_and_closed_ports_are_unavailable(sandbox):
    sandbox.faults.update(latency_ms=800)
    client = BinanceClient(sandbox.url, credentials=Credentials(*GOOD), timeout=(1.0, 0.2))
    with pytest.raises(BinanceError) as slow:
        client.inspect_key(Prior())
    assert slow.value.kind == ErrorKind.UNAVAILABLE and "in time" in slow.value.message
    _assert_clean(slow.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(BinanceError) as refused:
        BinanceClient(f"http://127.0.0.1:{closed}", credentials=Credentials(*GOOD)).inspect_key(Prior())
    assert refused.value.kind == ErrorKind.UNAVAILABLE
    _assert_clean(refused.value)


def test_the_gate_admits_every_request_with_its_weight(sandbox, gate):
    with _client(sandbox, gate=gate, scope="uid:412867391") as client:
        facts = client.inspect_key(Prior())
        client.read_balances(facts)
        client.prices()
        client.sync_clock()
    seen = sandbox.stats.snapshot()
    assert len(gate.admitted) == client.calls == seen["requests"] == 9
    assert [path for path, _ in gate.admitted] == [
        "/sapi/v1/account/apiRestrictions",
        "/api/v3/account",
        "/sapi/v1/asset/get-funding-asset",
        "/sapi/v1/asset/wallet/balance",
        "/sapi/v1/simple-earn/flexible/position",
        "/sapi/v1/simple-earn/locked/position",
        "/fapi/v2/balance",
        "/api/v3/ticker/price",
        "/api/v3/time",
    ]
    public = {"/api/v3/ticker/price", "/api/v3/time"}
    assert all(scope == ("ip" if path in public else "uid:412867391") for path, scope in gate.admitted)
    # Our weights are Binance's: the gate's windows hold what the sandbox counted per IP.
    weights = {"api": 0, "sapi": 0, "fapi": 0}
    for path, _ in gate.admitted:
        rule = BINANCE.limit_for(path)
        weights[rule.group] += rule.weight
    assert weights == {"api": 20 + 4 + 1, "sapi": 1 + 1 + 60 + 150 + 150, "fapi": 5}
    busiest = seen["busiest_window_per_ip"]
    assert busiest["api"] == weights["api"] and busiest["fapi"] == weights["fapi"]
    assert sum(v for k, v in busiest.items() if k.startswith("/sapi/")) == weights["sapi"]
    for group, expected in weights.items():
        assert gate.client.zcard(f"{gate.prefix}:rate:ip:{group}") == expected
    assert client.used_weight["api"] == weights["api"]


def test_a_rate_limit_stops_every_worker_through_the_gate(sandbox, gate):
    sandbox.faults.update(rate_limited=7)
    with _client(sandbox, gate=gate) as client, pytest.raises(BinanceError) as limited:
        client.inspect_key(Prior())
    assert limited.value.retry_after == 7.0 and gate.blocked == [7.0]
    assert 6000 < gate.client.pttl(f"{gate.prefix}:ban") <= 7000
    sandbox.faults.clear()
    with pytest.raises(GateBusy):  # the ban holds even though Binance would answer again
        _client(sandbox, gate=gate).inspect_key(Prior())
    assert sandbox.stats.snapshot()["requests"] == 1


def test_a_real_weight_overrun_is_a_429_with_retry_after(sandbox):
    sandbox.api_weight_limit = 30  # two account reads (20 each) are over
    with _client(sandbox) as client:
        client.account()
        with pytest.raises(BinanceError) as limited:
            client.account()
    assert limited.value.kind == ErrorKind.RATE_LIMITED and limited.value.status == 429
    assert limited.value.retry_after >= 1
    _assert_clean(limited.value)


def test_redact_cleans_what_a_log_line_could_carry(sandbox):
    client = _client(sandbox)
    line = (
        f"GET {sandbox.url}/api/v3/account?timestamp=1&signature=abc123 X-MBX-APIKEY={GOOD[0]} {GOOD[0][:70]}"
    )
    cleaned = client.redact(line)
    assert GOOD[0] not in cleaned and "abc123" not in cleaned
    assert GOOD[1] not in repr(client) and GOOD[0] not in repr(client)
