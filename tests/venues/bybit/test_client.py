"""Our Bybit client against the Bybit sandbox, over real HTTP on 127.0.0.1; and Bybit's answers
decoded (bybit-api.md §9), its key description (§5 E2) and its wallets (§5 E4, E5) as data."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis

from exchanges.explain import caller_ip
from exchanges.venues.bybit.client import BybitClient
from exchanges.venues.bybit.errors import BybitError, ErrorKind, decode, request_ip
from exchanges.venues.bybit.facts import facts_from_api_key
from exchanges.venues.bybit.sandbox import BybitSandbox, load_keys, load_tickers
from exchanges.venues.bybit.venue import BYBIT
from exchanges.venues.bybit.wallets import Book
from exchanges.venues.kit.gate import GateBusy
from exchanges.venues.kit.types import Credentials, KeyFacts, OtherLine, Prior
from tests.venues.recording_gate import RecordingGate

QUERY_API = "/v5/user/query-api"
WALLET = "/v5/account/wallet-balance"
FUNDING = "/v5/asset/transfer/query-account-coins-balance"

# --- Decoding: the envelope's retCode first, then the HTTP status -------------------------------


def _env(code: int, msg: str) -> bytes:
    return json.dumps({"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": 1}).encode()


PAGE_403_REGION = (
    b"<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center>"
    b"<p>The request could not be satisfied: access from your region is restricted.</p></body></html>"
)
PAGE_403_LIMIT = b"<html><body><h1>403 Forbidden</h1><p>access too frequent</p></body></html>"


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (200, _env(10003, "API key is invalid."), ErrorKind.INVALID_ACCESS_KEY, "10003"),
        (200, _env(10004, "Error sign, please check ..."), ErrorKind.INVALID_SIGNATURE, "10004"),
        (
            200,
            _env(10005, "Permission denied, please check your API key permissions."),
            "no_permission",
            "10005",
        ),
        (
            200,
            _env(10010, "Unmatched IP, please check your API key's bound IP addresses."),
            "ip_not_allowed",
            "10010",
        ),
        (200, _env(33004, "Your api key has expired."), ErrorKind.KEY_EXPIRED, "33004"),
        (200, _env(-2015, "Your api key has expired."), ErrorKind.KEY_EXPIRED, "-2015"),
        (
            200,
            _env(10002, "invalid request, please check your server timestamp"),
            "invalid_timestamp",
            "10002",
        ),
        (200, _env(10006, "Too many visits!"), ErrorKind.RATE_LIMITED, "10006"),
        (200, _env(10016, "System error. Please try again later."), ErrorKind.MAINTENANCE, "10016"),
        (200, _env(10000, "Server Timeout"), ErrorKind.UNAVAILABLE, "10000"),
        (200, _env(10009, "Service Restricted: unavailable for your region"), "restricted_location", "10009"),
        (200, _env(10008, "Common banned, please check your account mode"), ErrorKind.FORBIDDEN, "10008"),
        (200, _env(10001, "accountType only support UNIFIED"), ErrorKind.UNKNOWN, "10001"),
        (200, _env(99999, "Something new."), ErrorKind.UNKNOWN, "99999"),
        (429, b"", ErrorKind.RATE_LIMITED, "429"),
        (403, PAGE_403_LIMIT, ErrorKind.RATE_LIMITED, "403"),
        (403, PAGE_403_REGION, ErrorKind.RESTRICTED_LOCATION, "403"),
        (502, b"<html><body>502 Bad Gateway</body></html>", ErrorKind.UNAVAILABLE, "502"),
        (503, b"", ErrorKind.UNAVAILABLE, "503"),
        (200, b'{"retCode":0,"retMsg":"OK","res', ErrorKind.UNAVAILABLE, "200"),
        (404, b'{"error":"Not Found"}', ErrorKind.UNKNOWN, "404"),
        (401, b"<html>Need to put authentication params in the request header</html>", "unavailable", "401"),
    ],
)
def test_bybit_answers_decode_to_neutral_kinds(status, body, kind, code):
    error = decode(status, body, {}, path=QUERY_API)
    assert isinstance(error, BybitError)
    assert (error.kind, error.code, error.status) == (kind, code, status)
    assert str(error).startswith("Bybit /v5/user/query-api failed")


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        (10003, True),
        (10004, True),
        (10010, True),
        (33004, True),
        (10002, False),
        (10006, False),
        (10016, False),
    ],
)
def test_refusals_of_the_key_are_permanent_and_trouble_is_transient(code, permanent):
    assert decode(200, _env(code, "x"), {}).permanent is permanent


def test_10003_is_expired_once_the_stored_expiry_has_passed():
    body = _env(10003, "API key is invalid.")
    past, future = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(days=3)
    expired = decode(200, body, {}, key_expires_at=past)
    assert expired.kind == ErrorKind.KEY_EXPIRED and expired.permanent
    assert expired.code == "10003" and "has passed" in expired.message
    assert decode(200, body, {}, key_expires_at=future).kind == ErrorKind.INVALID_ACCESS_KEY
    assert decode(200, body, {}).kind == ErrorKind.INVALID_ACCESS_KEY
    # Judged by Bybit's clock: ours two hours behind, a key that expired an hour ago by Bybit's.
    soon = datetime.now(UTC) + timedelta(hours=1)
    assert decode(200, body, {}, key_expires_at=soon, clock_offset_ms=2 * 3_600_000).kind == "key_expired"


@pytest.mark.parametrize(
    ("message", "ip"),
    [
        (
            "Unmatched IP, please check your API key's bound IP addresses. request ip[203.0.113.9]",
            "203.0.113.9",
        ),
        ("Unmatched IP, ip: 2001:db8::7 not bound", "2001:db8::7"),
        ("Unmatched IP, please check your API key's bound IP addresses.", None),
    ],
)
def test_an_ip_bybit_names_is_kept_at_the_end_where_the_dashboard_finds_it(message, ip):
    error = decode(200, _env(10010, message), {})
    assert error.kind == ErrorKind.IP_NOT_ALLOWED and error.ip == ip
    assert caller_ip(error.kind, error.detail) == ip
    if ip:
        assert error.message.endswith(f", request ip: {ip}")
    assert request_ip("..., request ip: 1.2.3.4") == "1.2.3.4"


def test_a_10004_echo_of_what_bybit_hashed_is_not_kept():
    echo = "Error sign! origin_string[1767225600000Tq7Wm2Hx9KpL4sRv8N5000accountType=UNIFIED]"
    error = decode(200, _env(10004, echo), {})
    assert "Tq7Wm2Hx9KpL4sRv8N" not in str(error) and "origin_string[redacted]" in error.message


@pytest.mark.parametrize(
    ("status", "body", "headers", "low", "high"),
    [
        (200, _env(10006, "Too many visits!"), {"X-Bapi-Limit-Reset-Timestamp": "{in5s}"}, 4.0, 5.0),
        (200, _env(10006, "Too many visits!"), {"X-Bapi-Limit-Reset-Timestamp": "{past}"}, 1.0, 1.0),
        (200, _env(10006, "Too many visits!"), {}, 1.0, 1.0),
        (429, b"", {"Retry-After": "7"}, 7.0, 7.0),
        (429, b"", {"Retry-After": "0"}, 1.0, 1.0),
        (403, PAGE_403_LIMIT, {}, 600.0, 600.0),  # Bybit: wait at least 10 minutes
    ],
)
def test_rate_limits_carry_retry_after_of_at_least_one_second(status, body, headers, low, high):
    now = int(time.time() * 1000)
    filled = {k: v.format(in5s=now + 5000, past=now - 5000) for k, v in headers.items()}
    error = decode(status, body, filled)
    assert error.kind == ErrorKind.RATE_LIMITED and not error.permanent
    assert low <= error.retry_after <= high


def test_a_web_page_never_reaches_the_message():
    page = b"<html><body>" + b"x" * 5000 + b"secret-looking</body></html>"
    error = decode(503, page, {})
    assert error.message == "Bybit answered HTTP 503 with a web page"


# --- E2 as key facts --------------------------------------------------------------------------

DOCS_2026 = {  # DOCS user/apikey-info at 583db51 (an IP-bound key), shortened
    "id": "2208369",
    "readOnly": 1,
    "permissions": {
        "ContractTrade": ["Order", "Position"],
        "Spot": ["SpotTrade"],
        "Wallet": ["AccountTransfer", "SubMemberTransfer"],
        "Options": [],
        "Derivatives": ["DerivativesTrade"],
        "NFT": [],
        "Earn": ["Earn"],
        "FiatP2P": ["FiatP2POrder", "Advertising"],
        "FiatConvertBroker": ["FiatConvertBrokerOrder"],
        "FiatBitPay": ["FaitPayOrder"],
        "BitCard": ["BitCard"],
        "ByXPost": ["ByXPost"],
    },
    "ips": ["18.181.170.164", "13.212.45.47", "13.212.45.48"],
    "type": 1,
    "deadlineDay": -2,
    "expiredAt": "1970-01-01T00:00:00Z",
    "uta": 1,
    "userID": 1448939,
    "isMaster": True,
}


def test_the_docs_example_read_only_decides_whatever_the_boxes_say():
    facts = facts_from_api_key(DOCS_2026)
    assert (facts.can_read, facts.can_trade, facts.can_withdraw) == (True, False, False)
    assert facts.account_uid == "1448939"
    assert facts.ip_addresses == ("18.181.170.164", "13.212.45.47", "13.212.45.48") and facts.ip_restricted
    assert facts.key_expires_at is None and not facts.key_expired  # bound: permanent
    flags = {flag.name: flag for flag in facts.flags}
    assert not flags["Read-Write"].on and flags["Read-Write"].required
    assert flags["Spot: SpotTrade"].on and flags["Spot: SpotTrade"].required
    for money in (
        "FiatP2P: FiatP2POrder",
        "FiatBitPay: FaitPayOrder",
        "BitCard: BitCard",
        "Wallet: AccountTransfer",
    ):
        assert flags[money].on and flags[money].danger, money
    assert flags["FiatConvertBroker: FiatConvertBrokerOrder"].danger  # a group we do not list: still danger
    assert flags["ByXPost: ByXPost"].on and not flags["ByXPost: ByXPost"].danger
    assert not flags["Wallet: Withdraw"].on and flags["Wallet: Withdraw"].danger
    assert "Earn: Earn" in facts.permissions and "NFT" not in " ".join(facts.permissions)
    assert "readOnly=1" in facts.summary and "\n" not in facts.summary


def test_an_unbound_key_expires_at_expired_at_and_only_then():
    answer = {"readOnly": 0, "permissions": {"Spot": ["SpotTrade"]}, "ips": ["*"], "deadlineDay": 66}
    answer |= {"expiredAt": "2023-12-22T07:20:25Z", "userID": 7}
    facts = facts_from_api_key(answer, now=datetime(2023, 10, 17, tzinfo=UTC))
    assert facts.key_expires_at == datetime(2023, 12, 22, 7, 20, 25, tzinfo=UTC) and not facts.key_expired
    assert facts.ip_addresses == () and facts.ip_restricted is False and facts.can_trade
    assert facts_from_api_key(answer, now=datetime(2024, 1, 1, tzinfo=UTC)).key_expired
    # Only deadlineDay: days from now. A negative one: never.
    only_days = facts_from_api_key({**answer, "expiredAt": ""}, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert only_days.key_expires_at == datetime(2026, 3, 8, tzinfo=UTC)
    assert facts_from_api_key({**answer, "deadlineDay": -2}).key_expires_at is None


def test_withdraw_is_the_wallet_scope_and_shows_as_danger():
    facts = facts_from_api_key({"readOnly": 0, "permissions": {"Wallet": ["Withdraw"]}, "ips": ["1.2.3.4"]})
    assert facts.can_withdraw and not facts.can_trade
    assert next(f for f in facts.flags if f.name == "Wallet: Withdraw").on


# --- wallets as data --------------------------------------------------------------------------


def test_unified_lines_hold_the_wallet_balance_and_owe_what_was_borrowed():
    book = Book()
    coins = [
        {"coin": "USDT", "walletBalance": "100", "locked": "30", "equity": "95", "unrealisedPnl": "-5"},
        {"coin": "USDC", "walletBalance": "310.4", "locked": "0", "spotBorrow": "50", "borrowAmount": "50",
         "accruedInterest": "0.0012", "equity": "260.4"},
        {"coin": "BTC", "walletBalance": "0.5", "locked": "", "borrowAmount": "0.1"},  # older: no spotBorrow
        {"coin": "ETH", "walletBalance": "-2", "locked": "0", "borrowAmount": "2", "spotBorrow": "0"},
        {"coin": "OPT", "walletBalance": "1", "equity": "3"},  # option value in equity
        {"coin": "SOL", "walletBalance": "0", "locked": "0"},
    ]  # fmt: skip
    book.unified({"list": [{"accountType": "UNIFIED", "coin": coins}]})
    read = book.result([])
    lines = {line.asset: (line.available, line.in_orders, line.debt) for line in read.lines}
    assert lines["USDT"] == (Decimal(70), Decimal(30), 0)
    assert lines["USDC"] == (Decimal("310.4"), 0, Decimal("-50.0012"))  # net 260.3988
    assert lines["BTC"] == (Decimal("0.5"), 0, Decimal("-0.1"))
    assert lines["ETH"] == (0, 0, Decimal(-2))  # a negative balance is owed once, not twice
    assert "SOL" not in lines and read.wallets == ("unified",)
    assert read.other == (
        OtherLine("unified", "USDT", "unrealized-pnl", Decimal(-5)),
        OtherLine("unified", "OPT", "equity", Decimal(3)),
    )


def test_funding_lines_split_what_can_move_from_what_is_held():
    book = Book()
    book.funding({"balance": [{"coin": "USDT", "walletBalance": "10", "transferBalance": "7"},
                              {"coin": "EUR", "walletBalance": "5", "transferBalance": ""}]})  # fmt: skip
    lines = {line.asset: (line.available, line.in_orders) for line in book.result([]).lines}
    assert lines == {"USDT": (Decimal(7), Decimal(3)), "EUR": (Decimal(5), 0)}


# --- Over HTTP, against the Bybit sandbox -------------------------------------------------------

_DEMO = load_keys()


def demo_key(note: str) -> tuple[str, str]:
    for api_key, entry in _DEMO.items():
        if entry["note"].startswith(note):
            return api_key, entry["secret"]
    raise LookupError(note)


GOOD = demo_key("demo: good key")
IP_BOUND = demo_key("demo: ip-bound good key")
NL = demo_key("demo: nl key")
WITHDRAW = demo_key("demo: withdraw enabled")
READ_ONLY = demo_key("demo: read-only")
ELSEWHERE = demo_key("demo: ip-bound elsewhere")
EXPIRING = demo_key("demo: expiring soon")
EXPIRED = demo_key("demo: expired")
NO_WALLET = demo_key("demo: no wallet permission")
ALL_SECRETS = [entry["secret"] for entry in _DEMO.values()] + list(_DEMO)


@pytest.fixture
def sandbox():
    sb = BybitSandbox(load_keys(), load_tickers()).start()
    yield sb
    sb.stop()


@pytest.fixture
def gate():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test:bybit-gate:{os.getpid()}:{time.monotonic_ns()}"
    gate = RecordingGate(
        client, cap=8, lease_seconds=5, max_wait_seconds=2, prefix=prefix, limit_for=BYBIT.limit_for
    )
    yield gate
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def _client(sandbox, key=GOOD, site: str | None = None, **kwargs) -> BybitClient:
    extra = {"site": site} if site else {}
    return BybitClient(sandbox.url, credentials=Credentials(*key, extra), timeout=(2.0, 5.0), **kwargs)


def _lines(read, wallet: str) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {
        line.asset: (line.available, line.in_orders, line.debt)
        for line in read.lines
        if line.wallet == wallet
    }


def _assert_clean(error: BaseException, key=GOOD) -> None:
    """No URL, key, secret, signature or header in anything an error shows."""
    shown = " ".join(
        [str(error), repr(error), error.detail, error.message, error.path, *map(str, error.args)]
    )
    for secret in (*key, *ALL_SECRETS):
        assert secret not in shown
    for needle in ("X-BAPI", "http://", "127.0.0.1:", "recvWindow", "origin_string[1"):
        assert needle not in shown, needle
    assert not re.search(r"[0-9a-f]{64}", shown)


def _days_left(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds() / 86400


def test_a_good_key_is_described_in_bybit_words(sandbox):
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())
    assert (facts.can_read, facts.can_trade, facts.can_withdraw, facts.known) == (True, True, False, True)
    assert facts.account_uid == str(sandbox.keys[GOOD[0]]["uid"]) and facts.site is None
    assert facts.ip_addresses == () and facts.ip_restricted is False
    assert 79.9 < _days_left(facts.key_expires_at) <= 80 and not facts.key_expired
    flags = {flag.name: flag for flag in facts.flags}
    on = {name for name, flag in flags.items() if flag.on}
    assert on == {
        "Read-Write",
        "Spot: SpotTrade",
        "Wallet: AccountTransfer",
        "ContractTrade: Order",
        "ContractTrade: Position",
        "Derivatives: DerivativesTrade",
        "Exchange: ExchangeHistory",
    }
    assert {name for name, flag in flags.items() if flag.required} == {"Read-Write", "Spot: SpotTrade"}
    assert flags["Wallet: AccountTransfer"].danger and not flags["Spot: SpotTrade"].danger
    assert not flags["Wallet: Withdraw"].on and flags["Wallet: Withdraw"].danger
    assert "Spot: SpotTrade" in facts.permissions and "Wallet: AccountTransfer" in facts.permissions
    assert "ips=*" in facts.summary and "deadlineDay=79" in facts.summary and "\n" not in facts.summary
    assert client.calls == 1  # one call proves key, secret, clock and IP


def test_both_wallets_are_read_with_borrowing_as_debt(sandbox):
    with _client(sandbox) as client:
        read = client.read_balances(client.inspect_key(Prior()))
    assert read.wallets == ("unified", "funding") and read.unread == ()
    unified = _lines(read, "unified")
    assert unified["USDT"] == (Decimal("4060.55218311"), Decimal(150), 0)  # locked by spot orders
    assert unified["ETH"] == (Decimal("1.67"), Decimal("0.25"), 0)
    assert unified["USDC"] == (Decimal("310.4"), 0, Decimal("-50.0012"))  # spotBorrow + interest
    assert "SOL" not in unified  # Bybit leaves out coins with nothing
    assert _lines(read, "funding") == {
        "USDT": (Decimal("735.1"), 0, 0),
        "EUR": (Decimal(120), 0, 0),
        "MNT": (Decimal("250.5"), 0, 0),
        "ETH": (Decimal("0.05"), 0, 0),
    }
    assert read.other == (OtherLine("unified", "USDT", "unrealized-pnl", Decimal("-22.43")),)
    assert all(
        isinstance(v, Decimal) for line in read.lines for v in (line.available, line.in_orders, line.debt)
    )
    assert client.calls == 3


def test_a_key_without_wallet_permission_keeps_funding_as_unread(sandbox):
    with _client(sandbox, NO_WALLET) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert facts.can_trade and not any(f.on for f in facts.flags if f.name.startswith("Wallet"))
    assert read.wallets == ("unified",) and _lines(read, "unified")["USDT"] == (Decimal("500.5"), 5, 0)
    assert [(u["type"], u["id"]) for u in read.unread] == [("funding", "Funding Account")]
    reason = read.unread[0]["reason"]
    assert "10005" in reason and "Permission denied" in reason and "Wallet permission" in reason
    assert all(secret not in reason for secret in ALL_SECRETS)


def test_the_two_wallets_go_out_together_and_a_refused_one_is_still_only_unread(sandbox, gate):
    """The unified and funding wallets do not depend on each other: admitted in one gate call,
    written before either answer is read (at 500 ms a call, one wait), each handled as alone."""
    with _client(sandbox, NO_WALLET) as plain:
        facts = plain.inspect_key(Prior())
        expected = plain.read_balances(facts)
    sandbox.faults.update(latency_ms=500)
    with _client(sandbox, NO_WALLET, gate=gate, scope="uid:1") as client:
        started = time.monotonic()
        read = client.read_balances(facts)
        took = time.monotonic() - started
    sandbox.faults.clear()
    assert took < 0.8, took  # one wait of 500 ms, not two
    assert read == expected and [u["type"] for u in read.unread] == ["funding"]
    assert [path for path, _ in gate.admitted] == [WALLET, FUNDING] and client.calls == 2
    gate.settle()
    assert gate.in_flight() == 0


def test_a_classic_account_is_said_to_need_the_unified_account(sandbox):
    sandbox.update_key(GOOD[0], {"uta": 0})
    with _client(sandbox) as client:
        read = client.read_balances(client.inspect_key(Prior()))
    assert read.wallets == ("funding",) and [u["type"] for u in read.unread] == ["unified"]
    assert "Unified Trading Account" in read.unread[0]["reason"] and "404" in read.unread[0]["reason"]


@pytest.mark.parametrize(
    ("key", "can_trade", "bound", "days"),
    [(READ_ONLY, False, False, 60), (EXPIRING, True, False, 5), (IP_BOUND, True, True, None)],
)
def test_trading_binding_and_expiry_of_each_key(sandbox, key, can_trade, bound, days):
    with _client(sandbox, key) as client:
        facts = client.inspect_key(Prior())
    assert facts.can_read and facts.can_trade is can_trade and not facts.can_withdraw
    assert facts.ip_restricted is bound and bool(facts.ip_addresses) is bound
    if days is None:
        assert facts.key_expires_at is None  # bound keys never expire
    else:
        assert days - 0.1 < _days_left(facts.key_expires_at) <= days
    assert facts.account_uid == str(sandbox.keys[key[0]]["uid"])


def test_a_withdraw_key_is_seen_as_such(sandbox):
    with _client(sandbox, WITHDRAW) as client:
        facts = client.inspect_key(Prior())
    assert facts.can_withdraw and facts.ip_addresses == ("127.0.0.1", "::1")
    assert next(f for f in facts.flags if f.name == "Wallet: Withdraw").on


@pytest.mark.parametrize(
    ("key", "kind", "code"),
    [
        (("A1b2C3d4E5f6G7h8J9", GOOD[1]), ErrorKind.INVALID_ACCESS_KEY, "10003"),  # unknown everywhere
        ((GOOD[0], "B" * 36), ErrorKind.INVALID_SIGNATURE, "10004"),
        ((GOOD[0], GOOD[1][:-1] + "x"), ErrorKind.INVALID_SIGNATURE, "10004"),
        (ELSEWHERE, ErrorKind.IP_NOT_ALLOWED, "10010"),
        (EXPIRED, ErrorKind.KEY_EXPIRED, "33004"),
    ],
)
def test_refusals_are_decoded_and_permanent(sandbox, key, kind, code):
    with _client(sandbox, key) as client, pytest.raises(BybitError) as refused:
        client.inspect_key(Prior())
    error = refused.value
    assert (error.kind, error.code) == (kind, code) and error.permanent
    assert error.venue == "Bybit" and error.path == QUERY_API
    _assert_clean(error, key)


def test_an_unknown_key_is_looked_for_on_every_site_once_then_never_again(sandbox):
    unknown = ("A1b2C3d4E5f6G7h8J9", GOOD[1])
    with _client(sandbox, unknown) as client, pytest.raises(BybitError):
        client.inspect_key(Prior())
    assert client.calls == 8 and client.site == "global"  # global, then the 7 regional sites
    with _client(sandbox, unknown) as client, pytest.raises(BybitError) as refused:
        client.inspect_key(Prior(described=True))  # it worked before: deleted, not elsewhere
    assert refused.value.kind == ErrorKind.INVALID_ACCESS_KEY and client.calls == 1


def test_a_deleted_key_is_expired_when_its_stored_expiry_has_passed(sandbox):
    with _client(sandbox, EXPIRING) as client:
        expires_at = client.inspect_key(Prior()).key_expires_at
    # Older behaviour: Bybit forgets the expired key and answers 10003, as for an unknown one.
    del sandbox.keys[EXPIRING[0]]
    sandbox.clock_offset_ms = 6 * 86_400_000
    stored = Prior(account_uid="1", described=True, key_expires_at=expires_at)
    with _client(sandbox, EXPIRING) as client, pytest.raises(BybitError) as expired:
        client.sync_clock()
        client.inspect_key(stored)
    assert expired.value.kind == ErrorKind.KEY_EXPIRED and expired.value.code == "10003"
    with _client(sandbox, EXPIRING) as client, pytest.raises(BybitError) as unknown:
        client.sync_clock()
        client.inspect_key(Prior(described=True, key_expires_at=expires_at + timedelta(days=30)))
    assert unknown.value.kind == ErrorKind.INVALID_ACCESS_KEY


def test_a_key_expires_when_bybit_time_passes_its_date(sandbox):
    sandbox.clock_offset_ms = 6 * 86_400_000  # six days on: the 5-day key is over (33004)
    with _client(sandbox, EXPIRING) as client, pytest.raises(BybitError) as expired:
        client.inspect_key(Prior())
    assert expired.value.kind == ErrorKind.KEY_EXPIRED and expired.value.code == "33004"
    assert abs(client.clock_offset_ms - 6 * 86_400_000) < 2000  # re-synced on 10002 by itself


def test_a_netherlands_key_works_on_its_site(sandbox):
    with _client(sandbox, NL, site="nl") as client:
        assert client.host_header == "api.bybit.nl" and client.base_url == sandbox.url
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
        prices = client.prices()
    assert facts.site is None and facts.account_uid == str(sandbox.keys[NL[0]]["uid"])
    assert _lines(read, "unified") == {"USDT": (Decimal("820.3"), 0, 0), "ETH": (Decimal("0.75"), 0, 0)}
    assert _lines(read, "funding") == {"EUR": (Decimal(350), 0, 0), "USDC": (Decimal("95.5"), 0, 0)}
    assert prices["BTCUSDT"] == Decimal("97250.5") and client.calls == 4


def test_a_key_of_another_site_is_found_there_and_read_there(sandbox):
    with _client(sandbox, NL) as client:  # the user chose Global
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert facts.site == "nl" and client.site == "nl" and client.host_header == "api.bybit.nl"
    assert facts.can_trade and client.calls == 2 + 2  # global 10003, nl; then both wallets on nl
    assert _lines(read, "funding")["EUR"] == (Decimal(350), 0, 0)
    # The other way round: a global key the user said was Dutch.
    with _client(sandbox, GOOD, site="nl") as client:
        assert client.inspect_key(Prior()).site == "global"
    # A fresh client told the site found (as the worker does next time) reads it straight away.
    with _client(sandbox, NL, site="nl") as client:
        client.read_balances(KeyFacts(can_read=True, can_trade=True, can_withdraw=False))
    assert client.calls == 2


def test_a_wrong_secret_on_another_site_says_which_site(sandbox):
    with _client(sandbox, (NL[0], "C" * 36)) as client, pytest.raises(BybitError) as refused:
        client.inspect_key(Prior())
    assert refused.value.kind == ErrorKind.INVALID_SIGNATURE and "Netherlands" in refused.value.message
    _assert_clean(refused.value, NL)


@pytest.mark.parametrize("offset_minutes", [10, -10])
def test_a_wrong_clock_is_corrected_once_and_never_reaches_the_user(sandbox, offset_minutes):
    sandbox.clock_offset_ms = offset_minutes * 60_000
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert abs(client.clock_offset_ms - offset_minutes * 60_000) < 2000
    assert abs(facts.skew_ms - offset_minutes * 60_000) < 2000
    assert _lines(read, "unified")
    assert client.calls == 3 + 2  # E2 refused (10002), E1, E2 again; then the wallets on time


def test_sync_clock_measures_bybit_time(sandbox):
    sandbox.clock_offset_ms = -123_456
    with BybitClient(sandbox.url) as client:
        assert abs(client.sync_clock() + 123_456) < 1000
    assert client.calls == 1


def test_prices_are_spot_pairs_that_trade_as_decimals(sandbox):
    with BybitClient(sandbox.url) as client:
        prices = client.prices()
    assert prices["BTCUSDT"] == Decimal("97250.5") and prices["QNTBTC"] == Decimal("0.001137")
    assert "WAVESUSDT" not in prices  # a closed pair has no ticker
    assert all(isinstance(p, Decimal) and s == s.upper() for s, p in prices.items())


@pytest.mark.parametrize(
    ("faults", "kind", "code"),
    [
        ({"rate_limited": True}, ErrorKind.RATE_LIMITED, "10006"),
        ({"rate_limited": "ip"}, ErrorKind.RATE_LIMITED, "403"),
        ({"restricted_location": True}, ErrorKind.RESTRICTED_LOCATION, "403"),
        ({"maintenance": True}, ErrorKind.MAINTENANCE, "10016"),
        ({"server_timeout": True}, ErrorKind.UNAVAILABLE, "10000"),
        ({"http_status": 502}, ErrorKind.UNAVAILABLE, "502"),
        ({"malformed_json": True}, ErrorKind.UNAVAILABLE, "200"),
    ],
)
def test_every_transient_failure_is_decoded_and_kept_transient(sandbox, faults, kind, code):
    sandbox.faults.update(**faults)
    with _client(sandbox) as client, pytest.raises(BybitError) as failed:
        client.inspect_key(Prior())
    error = failed.value
    assert (error.kind, error.code) == (kind, code) and not error.permanent
    _assert_clean(error)


def test_a_uid_rate_limit_waits_until_bybit_reset_and_stops_only_this_check(sandbox, gate):
    sandbox.faults.update(rate_limited=True)
    with _client(sandbox, gate=gate) as client, pytest.raises(BybitError) as limited:
        client.inspect_key(Prior())
    assert limited.value.retry_after == pytest.approx(1.0, abs=0.3) and limited.value.retry_after >= 1
    assert gate.blocked == []  # one account's per-endpoint limit: other users go on


def test_the_ip_limit_stops_every_worker_through_the_gate_for_ten_minutes(sandbox, gate):
    sandbox.ip_limit = 2
    with _client(sandbox, gate=gate) as client:
        client.inspect_key(Prior())
        client.prices()
        with pytest.raises(BybitError) as limited:
            client.inspect_key(Prior())
    assert limited.value.kind == ErrorKind.RATE_LIMITED and limited.value.status == 403
    assert limited.value.retry_after == 600.0 and gate.blocked == [600.0]
    assert 599_000 < gate.client.pttl(f"{gate.prefix}:ban") <= 600_000
    with pytest.raises(GateBusy):  # nobody asks Bybit again before the ban ends
        _client(sandbox, gate=gate).inspect_key(Prior())
    assert sandbox.stats.snapshot()["requests"] == 3


def test_a_real_uid_overrun_is_a_10006_with_retry_after(sandbox):
    sandbox.uid_limits[QUERY_API] = 1
    with _client(sandbox) as client:
        client.inspect_key(Prior())
        with pytest.raises(BybitError) as limited:
            client.inspect_key(Prior())
    assert limited.value.kind == ErrorKind.RATE_LIMITED and limited.value.code == "10006"
    assert 1.0 <= limited.value.retry_after <= 1.5
    assert client.limit_status[QUERY_API] == 0


def test_the_gate_admits_every_request_against_its_limit(sandbox, gate):
    with _client(sandbox, gate=gate, scope="uid:186452013") as client:
        facts = client.inspect_key(Prior())
        client.read_balances(facts)
        client.prices()
        client.sync_clock()
    assert len(gate.admitted) == client.calls == sandbox.stats.snapshot()["requests"] == 5
    assert gate.admitted == [
        (QUERY_API, "uid:186452013"),
        (WALLET, "uid:186452013"),
        (FUNDING, "uid:186452013"),
        ("/v5/market/tickers", "ip"),
        ("/v5/market/time", "ip"),
    ]
    for path in (QUERY_API, WALLET, FUNDING):  # per UID and endpoint, one second
        assert gate.client.zcard(f"{gate.prefix}:rate:uid:186452013:{path}") == 1
    assert gate.client.zcard(f"{gate.prefix}:rate:ip:ip") == 2  # public calls: the shared IP budget


def test_timeouts_and_closed_ports_are_unavailable(sandbox):
    sandbox.faults.update(latency_ms=800)
    client = BybitClient(sandbox.url, credentials=Credentials(*GOOD), timeout=(1.0, 0.2))
    with pytest.raises(BybitError) as slow:
        client.inspect_key(Prior())
    assert slow.value.kind == ErrorKind.UNAVAILABLE and "in time" in slow.value.message
    _assert_clean(slow.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(BybitError) as refused:
        BybitClient(f"http://127.0.0.1:{closed}", credentials=Credentials(*GOOD)).inspect_key(
            Prior(described=True)
        )
    assert refused.value.kind == ErrorKind.UNAVAILABLE
    _assert_clean(refused.value)


def test_no_secret_in_reprs_and_redact_cleans_log_lines(sandbox):
    client = _client(sandbox)
    assert GOOD[0] not in repr(client) and GOOD[1] not in repr(client)
    line = (
        f"GET {sandbox.url}{WALLET}?accountType=UNIFIED headers={{'X-BAPI-API-KEY': '{GOOD[0]}', "
        f"'X-BAPI-SIGN': 'f7680854b5eb109ea3db51baddff09f26c2cdda30fbcedfd582ec12a1b6f0a17'}} "
        f"secret={GOOD[1]}"
    )
    cleaned = client.redact(line)
    assert GOOD[0] not in cleaned and GOOD[1] not in cleaned and "f7680854" not in cleaned
    assert "accountType=UNIFIED" in cleaned and "X-BAPI-SIGN" in cleaned
    assert GOOD[1] not in repr(Credentials(*GOOD))
