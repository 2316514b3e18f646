"""Our OKX client against the OKX sandbox, over real HTTP on 127.0.0.1; and OKX's answers
decoded (shared/okx-api.md §5)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from decimal import Decimal

import pytest
import redis

from exchanges.explain import caller_ip
from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.gate import GateBusy
from exchanges.venues.kit.types import Credentials, KeyFacts, OtherLine, Prior
from exchanges.venues.okx.client import OkxClient
from exchanges.venues.okx.client import redact as okx_redact
from exchanges.venues.okx.endpoints import (
    ACCOUNT_CONFIG,
    ASSET_VALUATION,
    FUNDING_BALANCE,
    SAVINGS_BALANCE,
    SYSTEM_STATUS,
    TICKERS,
    TIME,
    TRADING_BALANCE,
)
from exchanges.venues.okx.errors import OkxError, decode, request_ip
from exchanges.venues.okx.facts import facts_from_config
from exchanges.venues.okx.sandbox import OkxSandbox, load_keys, load_tickers
from exchanges.venues.okx.venue import OKX
from exchanges.venues.okx.wallets import Book, unread_collector
from tests.venues.recording_gate import RecordingGate

# --- Decoding: OKX's body code first, then the HTTP status -----------------------------------


def _gateway(code: str, msg: str) -> bytes:
    return json.dumps({"msg": msg, "code": code}).encode()


def _business(code: str, msg: str) -> bytes:
    return json.dumps({"code": code, "data": [], "msg": msg}).encode()


PERMANENT = [
    (401, _gateway("50105", "Request header OK-ACCESS-PASSPHRASE incorrect."), ErrorKind.INVALID_PASSPHRASE),
    (
        401,
        _gateway("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.'),
        ErrorKind.INVALID_PASSPHRASE,
    ),
    (401, _gateway("50113", "Invalid Sign"), ErrorKind.INVALID_SIGNATURE),
    (401, _gateway("50111", "Invalid OK-ACCESS-KEY"), ErrorKind.INVALID_ACCESS_KEY),
    (401, _gateway("50103", "Request header OK-ACCESS-KEY can not be empty."), ErrorKind.INVALID_ACCESS_KEY),
    (401, _gateway("50119", "API key doesn't exist"), ErrorKind.INVALID_ACCESS_KEY),
    (200, _business("50119", "API key doesn't exist"), ErrorKind.INVALID_ACCESS_KEY),  # the DOCS' status
    (
        401,
        _gateway("50110", "Your IP 203.0.113.9 is not included in your API key's IP whitelist."),
        ErrorKind.IP_NOT_ALLOWED,
    ),
    (401, _gateway("50101", "APIKey does not match current environment."), ErrorKind.WRONG_ENVIRONMENT),
    (400, _gateway("50100", "API frozen, please contact customer service."), ErrorKind.FORBIDDEN),
    (
        200,
        _business("50120", "This API key doesn't have permission to use this function"),
        ErrorKind.NO_PERMISSION,
    ),
]
TRANSIENT = [
    (401, _gateway("50102", "Timestamp request expired"), ErrorKind.INVALID_TIMESTAMP),
    (401, _business("50102", "Timestamp request expired"), ErrorKind.INVALID_TIMESTAMP),  # the other envelope
    (401, _gateway("50112", "Invalid OK-ACCESS-TIMESTAMP"), ErrorKind.INVALID_TIMESTAMP),
    (429, _gateway("50011", "Too Many Requests"), ErrorKind.RATE_LIMITED),
    (200, _business("50011", "Rate limit reached."), ErrorKind.RATE_LIMITED),
    (429, _gateway("50013", "Systems are busy. Please try again later."), ErrorKind.RATE_LIMITED),
    (
        503,
        _gateway("50001", "Service temporarily unavailable. Please try again later."),
        ErrorKind.UNAVAILABLE,
    ),
    (500, _gateway("50026", "System error. Try again later"), ErrorKind.UNAVAILABLE),
    (503, _gateway("50001", "System maintenance in progress"), ErrorKind.MAINTENANCE),
    (
        502,
        b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
        ErrorKind.UNAVAILABLE,
    ),
    (200, b'{"code":"0","da', ErrorKind.UNAVAILABLE),  # cut short
    (502, b"", ErrorKind.UNAVAILABLE),
    (503, b"<html>Scheduled maintenance</html>", ErrorKind.MAINTENANCE),
    (400, _business("51000", "Parameter ccy error"), ErrorKind.UNKNOWN),
    (400, _business("59999", "Something new."), ErrorKind.UNKNOWN),
    (404, b'{"error":"Not Found"}', ErrorKind.UNKNOWN),  # JSON of another shape
    (429, b"Too Many Requests", ErrorKind.RATE_LIMITED),
]


@pytest.mark.parametrize(("status", "body", "kind"), PERMANENT)
def test_refusals_of_the_key_decode_to_permanent_kinds(status, body, kind):
    error = decode(status, body, {}, path=ACCOUNT_CONFIG)
    assert isinstance(error, OkxError) and error.venue == "OKX"
    assert error.kind == kind and error.permanent
    assert error.code == json.loads(body)["code"] and error.status == status
    assert str(error).startswith("OKX /api/v5/account/config failed")


@pytest.mark.parametrize(("status", "body", "kind"), TRANSIENT)
def test_trouble_at_okx_decodes_to_transient_kinds(status, body, kind):
    error = decode(status, body, {}, path=ACCOUNT_CONFIG)
    assert error.kind == kind and not error.permanent
    assert error.code  # OKX's code, or the HTTP status when there is none


def test_50119_says_what_it_can_mean():
    error = decode(401, _gateway("50119", "API key doesn't exist"), {})
    for cause in ("another OKX site", "mistyped", "deleted", "14 days without use"):
        assert cause in error.message
    assert error.message.startswith("API key doesn't exist")


@pytest.mark.parametrize("ip", ["203.0.113.9", "2001:db8::17"])
def test_50110_keeps_the_ip_okx_saw_where_the_explain_layer_finds_it(ip):
    error = decode(
        401, _gateway("50110", f"Your IP {ip} is not included in your API key's IP whitelist."), {}
    )
    assert error.ip == ip and request_ip(error.message) == ip
    assert f"Your IP {ip}" in error.message and error.message.endswith(f"request ip: {ip}")
    assert caller_ip(error.kind, error.detail) == ip
    assert ip in OKX.texts[error.kind].fix_with_ip.format(ip=error.ip)
    # OctoBot's live wording, with more words before "IP whitelist".
    live = decode(
        401, _gateway("50110", f"Your IP {ip} is not included in your API key's xxxx IP whitelist."), {}
    )
    assert live.ip == ip


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({}, 1.0), ({"Retry-After": "0"}, 1.0), ({"Retry-After": "x"}, 1.0)],
)
def test_rate_limits_carry_retry_after_of_at_least_one_second(headers, expected):
    error = decode(429, _gateway("50011", "Too Many Requests"), headers)
    assert error.kind == ErrorKind.RATE_LIMITED and error.retry_after == expected
    assert decode(401, _gateway("50113", "Invalid Sign"), headers).retry_after is None


def test_a_web_page_never_reaches_the_message():
    page = b"<html><body>" + b"x" * 5000 + b"secret-looking</body></html>"
    error = decode(503, page, {})
    assert error.message == "OKX answered HTTP 503 with a web page"
    assert "secret-looking" not in str(error)


# --- E2 as key facts, wallets as lines (no network) ----------------------------------------


@pytest.mark.parametrize(
    ("perm", "ip", "trade", "withdraw", "idle"),
    [
        ("read_only,trade", "", True, False, 14),
        ("trade,read_only", "1.2.3.4", True, False, None),  # bound: never deleted
        ("read_only,withdraw,trade", "", True, True, 14),  # DOCS' order
        ("read_only", "", False, False, None),  # read-only keys do not expire
        ("read_only,withdraw", "", False, True, 14),
    ],
)
def test_permissions_are_a_set_and_the_14_day_rule_follows_them(perm, ip, trade, withdraw, idle):
    facts = facts_from_config([{"perm": perm, "ip": ip, "uid": "42", "mainUid": "42", "label": "x"}])
    assert (facts.can_read, facts.can_trade, facts.can_withdraw) == (True, trade, withdraw)
    assert facts.idle_deletion_days == idle
    assert facts.permissions == tuple(perm.split(","))
    assert [flag.name for flag in facts.flags] == ["Read", "Trade", "Withdraw"]
    assert [(f.on, f.danger, f.required) for f in facts.flags] == [
        (True, False, True),
        (trade, False, True),
        (withdraw, True, False),
    ]
    assert facts.ip_restricted is bool(ip) and facts.ip_addresses == ((ip,) if ip else ())
    assert facts.context["sub_account"] is False


def test_a_demo_key_is_never_deleted_and_a_sub_account_is_noticed():
    config = {"perm": "read_only,trade", "ip": "", "uid": "7", "mainUid": "6", "label": "sub\nkey"}
    facts = facts_from_config([config], demo=True)
    assert facts.idle_deletion_days is None and facts.context["sub_account"] is True
    assert "\n" not in facts.summary and 'label="sub key"' in facts.summary


def _lines(read, wallet: str) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {
        line.asset: (line.available, line.in_orders, line.debt)
        for line in read.lines
        if line.wallet == wallet
    }


def test_a_borrowing_is_debt_and_unrealised_pnl_is_shown_aside():
    book = Book()
    book.trading(
        [
            {
                "details": [
                    {
                        "ccy": "USDT",
                        "availBal": "",
                        "cashBal": "100",
                        "frozenBal": "10",
                        "liab": "25",
                        "upl": "-3",
                    },
                    {"ccy": "BTC", "availBal": "0.5", "frozenBal": "", "stgyEq": "0.1"},
                ]
            }
        ]
    )
    book.funding([{"ccy": "ETH", "availBal": "", "bal": "2", "frozenBal": "0.5"}])
    read = book.result([])
    assert _lines(read, "trading") == {
        "USDT": (Decimal(90), Decimal(10), Decimal(-25)),  # availBal empty: cash not held
        "BTC": (Decimal("0.5"), 0, 0),
    }
    assert _lines(read, "funding") == {"ETH": (Decimal("1.5"), Decimal("0.5"), 0)}
    assert read.other == (
        OtherLine("trading", "USDT", "unrealized-pnl", Decimal(-3)),
        OtherLine("trading", "BTC", "trading-bots", Decimal("0.1")),
    )


def test_a_wallet_okx_refuses_is_unread_and_anything_else_goes_up():
    unread: list[dict] = []
    wallet = unread_collector(unread)
    with wallet("savings", "Simple Earn (savings)"):
        raise OkxError(ErrorKind.NO_PERMISSION, code="50120", message="no permission")
    with wallet("savings", "Simple Earn (savings)"):
        raise OkxError(ErrorKind.UNKNOWN, code="50038", message="This feature is unavailable in demo trading")
    assert [u["type"] for u in unread] == ["savings", "savings"]
    assert unread[0]["reason"] == "OKX refused this key: 50120: no permission"
    for kind, code in ((ErrorKind.UNAVAILABLE, "50001"), (ErrorKind.IP_NOT_ALLOWED, "50110")):
        with pytest.raises(OkxError), wallet("funding", "Funding account"):
            raise OkxError(kind, code=code)
    assert len(unread) == 2


# --- Over HTTP, against the OKX sandbox ----------------------------------------------------

_DEMO = load_keys()


def demo(note: str, **extra: str) -> Credentials:
    """The demo key whose note starts with ``note``, with its passphrase and site."""
    for api_key, entry in _DEMO.items():
        if entry["note"].startswith(note):
            given = {"passphrase": entry["passphrase"], "site": entry["site"], **extra}
            return Credentials(api_key, entry["secret"], given)
    raise LookupError(note)


GOOD = demo("demo: good key")
IP_BOUND = demo("demo: ip-bound good key")
EEA = demo("demo: eea key")
WITHDRAW = demo("demo: withdraw enabled")
READ_ONLY = demo("demo: read-only")
ELSEWHERE = demo("demo: ip-bound elsewhere")
DEMO_TRADING = demo("demo: demo-trading key")
IDLE = demo("demo: idle 15 days")
ALL_SECRETS = [
    value
    for credentials in (GOOD, IP_BOUND, EEA, WITHDRAW, READ_ONLY, ELSEWHERE, DEMO_TRADING, IDLE)
    for value in (credentials.api_key, credentials.secret, credentials.extra["passphrase"])
]


@pytest.fixture
def sandbox():
    sb = OkxSandbox(load_keys(), load_tickers()).start()
    yield sb
    sb.stop()


@pytest.fixture
def gate():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test:okx-gate:{os.getpid()}:{time.monotonic_ns()}"
    gate = RecordingGate(
        client, cap=8, lease_seconds=5, max_wait_seconds=3, prefix=prefix, limit_for=OKX.limit_for
    )
    yield gate
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def _client(sandbox, credentials: Credentials | None = GOOD, **kwargs) -> OkxClient:
    return OkxClient(sandbox.url, credentials=credentials, timeout=(2.0, 5.0), **kwargs)


def _replace(credentials: Credentials, *, api_key=None, secret=None, **extra: str) -> Credentials:
    return Credentials(
        api_key if api_key is not None else credentials.api_key,
        secret if secret is not None else credentials.secret,
        {**credentials.extra, **extra},
    )


def _assert_clean(error: BaseException, *extra_secrets: str) -> None:
    """No key, secret, passphrase, signature or URL in anything an error shows."""
    shown = " ".join(
        [str(error), repr(error), error.detail, error.message, error.path, *map(str, error.args)]
    )
    for secret in (*ALL_SECRETS, *extra_secrets):
        assert not secret or secret not in shown
    for needle in ("http://", "127.0.0.1:", "?"):
        assert needle not in shown, needle
    assert not re.search(r"OK-ACCESS-[A-Z]+['\"]?\s*[:=]", shown)  # a header with its value
    assert not re.search(r"[A-Za-z0-9+/]{43}=", shown)  # a Base64 HMAC-SHA256


def test_a_good_key_is_described_in_okx_words(sandbox):
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())
    entry = sandbox.keys[GOOD.api_key]
    assert (facts.can_read, facts.can_trade, facts.can_withdraw, facts.known) == (True, True, False, True)
    assert facts.account_uid == entry["uid"] == "638247193051648214"
    assert facts.permissions == ("read_only", "trade")
    assert {flag.name: flag.on for flag in facts.flags} == {"Read": True, "Trade": True, "Withdraw": False}
    assert facts.ip_restricted is False and facts.ip_addresses == ()
    assert facts.idle_deletion_days == 14  # Trade, no IP binding
    assert facts.site is None and client.site == "global"
    assert facts.key_expires_at is None and not facts.key_expired
    assert facts.summary.startswith("perm=read_only,trade, ip=, uid=638247193051648214")
    assert "\n" not in facts.summary and GOOD.extra["passphrase"] not in facts.summary
    assert client.calls == 1  # one call proves key, secret, passphrase, site and IP


def test_every_wallet_of_a_good_key_is_read(sandbox):
    with _client(sandbox) as client:
        read = client.read_balances(client.inspect_key(Prior()))
    assert read.wallets == ("trading", "funding", "savings")
    trading = _lines(read, "trading")
    assert trading["BTC"] == (Decimal("0.41235"), Decimal("0.05"), 0)  # availBal, frozenBal
    assert trading["USDT"] == (Decimal("3250.42718"), Decimal(180), 0)
    assert trading["GHST"] == (Decimal("140.2"), Decimal(20), 0)
    assert set(trading) == {"BTC", "ETH", "USDT", "OKB", "CVC", "GHST", "DORA"}  # LTC is zero
    assert _lines(read, "funding") == {
        "USDT": (Decimal("120.5"), 0, 0),
        "ETH": (Decimal("0.15"), Decimal("0.05"), 0),
    }
    assert _lines(read, "savings") == {"USDT": (Decimal("500.0012473"), 0, 0), "ETH": (Decimal("0.5"), 0, 0)}
    assert all(
        isinstance(v, Decimal) for line in read.lines for v in (line.available, line.in_orders, line.debt)
    )
    # OKX's own valuation is shown aside, never counted...
    assert [(o.wallet, o.asset, o.type) for o in read.other] == [("all accounts", "USDT", "OKX valuation")]
    assert read.other[0].balance > 0
    # ...and the Earn money it sees beyond Simple Earn (10 SOL staked) is reported, not dropped.
    assert [u["type"] for u in read.unread] == ["earn"]
    assert "about 1824.17 USDT more" in read.unread[0]["reason"]
    # E2, then E3, E4, E5, E6 and the tickers E6 is checked with.
    assert client.calls == 6 == sandbox.stats.snapshot()["requests"]


def test_okx_valuation_failing_never_fails_the_read(sandbox):
    sandbox.faults.update(http_status=502, paths=[ASSET_VALUATION])
    with _client(sandbox) as client:
        read = client.read_balances(KeyFacts(can_read=True, can_trade=True, can_withdraw=False))
    assert read.wallets == ("trading", "funding", "savings") and read.other == () and read.unread == ()


def test_a_wallet_failing_for_a_while_fails_the_whole_read(sandbox):
    sandbox.faults.update(http_status=503, paths=[SAVINGS_BALANCE])
    with _client(sandbox) as client, pytest.raises(OkxError) as failed:
        client.read_balances(KeyFacts(can_read=True, can_trade=True, can_withdraw=False))
    assert failed.value.kind == ErrorKind.UNAVAILABLE and not failed.value.permanent
    assert failed.value.path == SAVINGS_BALANCE


def test_an_ip_bound_key_shares_its_account_and_is_never_deleted(sandbox):
    with _client(sandbox, IP_BOUND) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
    assert facts.ip_addresses == ("127.0.0.1", "::1") and facts.ip_restricted
    assert facts.idle_deletion_days is None and facts.can_trade
    assert facts.account_uid == sandbox.keys[GOOD.api_key]["uid"]
    assert _lines(read, "trading")["BTC"] == (Decimal("0.41235"), Decimal("0.05"), 0)


def test_a_withdraw_key_and_a_read_only_key_are_told_apart(sandbox):
    with _client(sandbox, WITHDRAW) as client:
        withdraw = client.inspect_key(Prior())
    flag = next(f for f in withdraw.flags if f.name == "Withdraw")
    assert withdraw.can_withdraw and flag.on and flag.danger
    assert withdraw.permissions == ("read_only", "withdraw", "trade")
    with _client(sandbox, READ_ONLY) as client:
        read_only = client.inspect_key(Prior())
    assert read_only.can_read and not read_only.can_trade and not read_only.can_withdraw
    assert read_only.idle_deletion_days is None  # read-only keys do not expire


def test_a_key_of_another_site_is_found_there_and_read_there(sandbox):
    chosen_global = _replace(EEA, site="global")
    with _client(sandbox, chosen_global) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
        prices = client.prices()
    assert facts.site == "eea" and client.site == "eea"
    assert facts.account_uid == "702418836590112777" and facts.can_trade
    # E2 on Global (50119), E2 on the EEA; then the EEA's E3-E6 and its tickers, read once for
    # E6's cross-check and reused by prices().
    assert client.calls == 2 + 4 + 1
    assert _lines(read, "trading")["EUR"] == (Decimal("1450.75"), Decimal("49.25"), 0)
    assert _lines(read, "savings") == {"USDC": (Decimal(1000), 0, 0)}
    assert prices["BTCEUR"] == Decimal("89460.2")  # EUR pairs: the EEA site's tickers


def test_a_key_on_its_chosen_site_needs_no_search(sandbox):
    with _client(sandbox, EEA) as client:
        facts = client.inspect_key(Prior())
    assert facts.site is None and client.calls == 1


def test_a_global_key_chosen_as_us_is_found_on_global(sandbox):
    with _client(sandbox, _replace(GOOD, site="us")) as client:
        facts = client.inspect_key(Prior())
    assert facts.site == "global" and client.site == "global"
    assert client.calls == 2  # US (50119), then Global


def test_a_key_known_elsewhere_but_refused_there_says_where(sandbox):
    wrong = _replace(EEA, site="global", passphrase="not-it")
    with _client(sandbox, wrong) as client, pytest.raises(OkxError) as refused:
        client.inspect_key(Prior())
    error = refused.value
    assert error.kind == ErrorKind.INVALID_PASSPHRASE and error.code == "50105" and error.permanent
    assert error.message.startswith("On OKX's EEA (my.okx.com) site, where this key belongs")
    _assert_clean(error, "not-it")


def test_an_unknown_key_is_looked_for_on_every_site_once(sandbox):
    unknown = _replace(GOOD, api_key="0" * 8 + GOOD.api_key[8:])
    with _client(sandbox, unknown) as client, pytest.raises(OkxError) as refused:
        client.inspect_key(Prior())
    error = refused.value
    assert error.kind == ErrorKind.INVALID_ACCESS_KEY and error.code == "50119" and error.permanent
    assert "any OKX site" in error.message and "14 days" in error.message and "mistyped" in error.message
    assert client.calls == 3 and client.site == "global"
    _assert_clean(error, unknown.api_key)


def test_a_key_okx_deleted_after_14_idle_days(sandbox):
    """OKX answers 50119 for it as for any unknown key: a new key is invalid, but one that
    worked before (a described connection) was deleted, which is what an expiry means here."""
    with _client(sandbox, IDLE) as client, pytest.raises(OkxError) as new:
        client.inspect_key(Prior())
    assert new.value.kind == ErrorKind.INVALID_ACCESS_KEY and new.value.code == "50119"
    with _client(sandbox, IDLE) as client, pytest.raises(OkxError) as known:
        client.inspect_key(Prior(account_uid="612009347781203968", described=True))
    assert known.value.kind == ErrorKind.KEY_EXPIRED and known.value.permanent
    assert "worked before" in known.value.message and "14 days" in known.value.message
    assert client.calls == 3
    _assert_clean(known.value)


def test_our_refreshes_keep_a_key_alive_past_14_days(sandbox):
    day = 86_400_000
    with _client(sandbox) as client:
        for _ in range(3):  # a signed call every 10 days
            sandbox.clock_offset_ms += 10 * day
            client.sync_clock()
            assert client.inspect_key(Prior()).can_read
    sandbox.clock_offset_ms += 15 * day  # then 15 days without one: OKX deletes it
    with _client(sandbox) as client, pytest.raises(OkxError) as gone:
        client.sync_clock()
        client.inspect_key(Prior(described=True))
    assert gone.value.kind == ErrorKind.KEY_EXPIRED


@pytest.mark.parametrize(
    ("credentials", "kind", "code"),
    [
        (_replace(GOOD, passphrase="Dash-Read-Trade-8"), ErrorKind.INVALID_PASSPHRASE, "50105"),
        (
            _replace(GOOD, passphrase="dash-read-trade-7"),
            ErrorKind.INVALID_PASSPHRASE,
            "50105",
        ),  # case counts
        (Credentials(GOOD.api_key, GOOD.secret, {}), ErrorKind.INVALID_PASSPHRASE, "50104"),  # none given
        (_replace(GOOD, secret="A" * 32), ErrorKind.INVALID_SIGNATURE, "50113"),
        (_replace(GOOD, secret=GOOD.secret.lower()), ErrorKind.INVALID_SIGNATURE, "50113"),
        (_replace(GOOD, secret=GOOD.extra["passphrase"]), ErrorKind.INVALID_SIGNATURE, "50113"),
        (_replace(GOOD, api_key=GOOD.api_key.upper()), ErrorKind.INVALID_ACCESS_KEY, "50111"),
        (_replace(GOOD, api_key="not-an-okx-key"), ErrorKind.INVALID_ACCESS_KEY, "50111"),
        (DEMO_TRADING, ErrorKind.WRONG_ENVIRONMENT, "50101"),
    ],
    ids=[
        "passphrase",
        "passphrase-case",
        "no-passphrase",
        "secret",
        "secret-case",
        "swapped",
        "key-case",
        "key",
        "demo",
    ],
)
def test_refusals_are_decoded_and_permanent(sandbox, credentials, kind, code):
    with _client(sandbox, credentials) as client, pytest.raises(OkxError) as refused:
        client.inspect_key(Prior())
    error = refused.value
    assert (error.kind, error.code, error.status) == (kind, code, 401)
    assert error.permanent and error.path == ACCOUNT_CONFIG
    assert client.calls == 1  # only 50119 sends us to the other sites
    _assert_clean(error, credentials.api_key, credentials.secret, credentials.extra.get("passphrase", ""))


def test_an_ip_refusal_keeps_the_address_okx_saw(sandbox):
    with _client(sandbox, ELSEWHERE) as client, pytest.raises(OkxError) as refused:
        client.inspect_key(Prior())
    error = refused.value
    assert error.kind == ErrorKind.IP_NOT_ALLOWED and error.code == "50110" and error.permanent
    assert error.ip == "127.0.0.1" and error.detail.endswith("request ip: 127.0.0.1")
    assert "Your IP 127.0.0.1 is not included" in error.message
    assert caller_ip(error.kind, error.detail) == "127.0.0.1"
    _assert_clean(error)


def test_a_frozen_key_is_forbidden(sandbox):
    sandbox.update_key(GOOD.api_key, {"frozen": True})
    with _client(sandbox) as client, pytest.raises(OkxError) as refused:
        client.inspect_key(Prior())
    assert (
        refused.value.kind == ErrorKind.FORBIDDEN
        and refused.value.code == "50100"
        and refused.value.permanent
    )


@pytest.mark.parametrize("offset_minutes", [10, -10])
def test_a_wrong_clock_is_corrected_once_and_never_reaches_the_user(sandbox, offset_minutes):
    sandbox.clock_offset_ms = offset_minutes * 60_000
    with _client(sandbox) as client:
        facts = client.inspect_key(Prior())  # no sync first: OKX's 50102 makes the client sync
        read = client.read_balances(facts)
    assert abs(client.clock_offset_ms - offset_minutes * 60_000) < 2000
    assert abs(facts.skew_ms - offset_minutes * 60_000) < 2000
    assert _lines(read, "trading")
    # E2 refused (50102), E1, E2 again; then the balances on the corrected clock.
    assert client.calls == 3 + 5
    assert sandbox.stats.snapshot()["requests"] == client.calls


def test_sync_clock_measures_okx_time(sandbox):
    sandbox.clock_offset_ms = -123_456
    with OkxClient(sandbox.url) as client:
        assert abs(client.sync_clock() + 123_456) < 1000
    assert client.calls == 1


def test_prices_are_spot_last_prices_by_concatenated_symbol(sandbox):
    with OkxClient(sandbox.url) as client:
        prices = client.prices()
    assert prices["BTCUSDT"] == Decimal("97250.1") and prices["CVCBTC"] == Decimal("0.00000131")
    assert prices["GHSTETH"] == Decimal("0.000291")
    assert "BTCEUR" not in prices  # an EEA pair: not on the Global site
    assert "DORAUSDT" not in prices and not any(s.startswith("DORA") for s in prices)  # no route
    assert all(isinstance(p, Decimal) and s == s.upper() and "-" not in s for s, p in prices.items())
    assert client.quote_stand_in is None and client.calls == 1


def test_a_site_without_usdt_pairs_gets_usdc_as_a_stand_in(sandbox):
    sandbox.tickers[:] = [
        {"instId": "BTC-USDC", "last": "97000", "open24h": "1", "vol24h": "1"},
        {"instId": "BTC-EUR", "last": "89000", "open24h": "1", "vol24h": "1"},
    ]
    with OkxClient(sandbox.url) as client:
        prices = client.prices()
    assert prices == {
        "BTCUSDC": Decimal(97000),
        "BTCEUR": Decimal(89000),
        "BTCUSDT": Decimal(97000),
        "USDCUSDT": Decimal(1),
    }
    assert client.quote_stand_in == "USDC"


@pytest.mark.parametrize(
    ("faults", "kind", "code", "retry_after", "calls"),
    [
        ({"rate_limited": True}, ErrorKind.RATE_LIMITED, "50011", 1.0, 1),
        ({"rate_limited": "50013"}, ErrorKind.RATE_LIMITED, "50013", 1.0, 1),
        ({"maintenance": True}, ErrorKind.MAINTENANCE, "50001", None, 2),  # E9 says so
        ({"system_error": True}, ErrorKind.UNAVAILABLE, "50026", None, 2),  # E9 lists nothing
        ({"http_status": 502}, ErrorKind.UNAVAILABLE, "502", None, 2),
        ({"malformed_json": True}, ErrorKind.UNAVAILABLE, "200", None, 1),
    ],
    ids=["50011", "50013", "maintenance", "system-error", "bad-gateway", "malformed"],
)
def test_every_transient_failure_is_decoded_and_kept_transient(
    sandbox, faults, kind, code, retry_after, calls
):
    sandbox.faults.update(**faults)
    with _client(sandbox) as client, pytest.raises(OkxError) as failed:
        client.inspect_key(Prior())
    error = failed.value
    assert (error.kind, error.code, error.retry_after) == (kind, code, retry_after)
    assert not error.permanent and client.calls == calls
    _assert_clean(error)


def test_a_real_limit_overrun_is_a_429(sandbox):
    sandbox.limits[ACCOUNT_CONFIG] = (1, 2000)
    with _client(sandbox) as client:
        client.inspect_key(Prior())
        with pytest.raises(OkxError) as limited:
            client.inspect_key(Prior())
    assert limited.value.kind == ErrorKind.RATE_LIMITED and limited.value.status == 429
    assert limited.value.retry_after >= 1
    _assert_clean(limited.value)


def test_timeouts_and_closed_ports_are_unavailable(sandbox):
    sandbox.faults.update(latency_ms=800)
    client = OkxClient(sandbox.url, credentials=GOOD, timeout=(1.0, 0.2))
    with pytest.raises(OkxError) as slow:
        client.inspect_key(Prior())
    assert slow.value.kind == ErrorKind.UNAVAILABLE and "in time" in slow.value.message
    _assert_clean(slow.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(OkxError) as refused:
        OkxClient(f"http://127.0.0.1:{closed}", credentials=GOOD).inspect_key(Prior())
    assert refused.value.kind == ErrorKind.UNAVAILABLE and not refused.value.permanent
    _assert_clean(refused.value)


def test_the_gate_admits_every_request_under_its_own_limit(sandbox, gate):
    with _client(sandbox, gate=gate, scope="uid:638247193051648214") as client:
        facts = client.inspect_key(Prior())
        client.read_balances(facts)
        client.prices()
        client.sync_clock()
    assert len(gate.admitted) == client.calls == sandbox.stats.snapshot()["requests"] == 7
    assert [path for path, _ in gate.admitted] == [
        ACCOUNT_CONFIG,
        TRADING_BALANCE,
        FUNDING_BALANCE,
        SAVINGS_BALANCE,
        ASSET_VALUATION,
        TICKERS,  # to check E6's Earn figure with; prices() reuses them
        TIME,
    ]
    public = {TICKERS, TIME, SYSTEM_STATUS}
    assert all(
        scope == ("ip" if path in public else "uid:638247193051648214") for path, scope in gate.admitted
    )
    # Each endpoint has its own window: per User ID for signed calls, per IP for public ones.
    assert gate.client.zcard(f"{gate.prefix}:rate:uid:638247193051648214:{ACCOUNT_CONFIG}") == 1
    assert gate.client.zcard(f"{gate.prefix}:rate:ip:{TICKERS}") == 1
    assert gate.client.zcard(f"{gate.prefix}:rate:ip:{TIME}") == 1


def test_a_429_stops_every_worker_through_the_gate(sandbox, gate):
    sandbox.faults.update(rate_limited=True)
    with _client(sandbox, gate=gate) as client, pytest.raises(OkxError) as limited:
        client.inspect_key(Prior())
    assert limited.value.retry_after == 1.0 and gate.blocked == [1.0]
    assert 0 < gate.client.pttl(f"{gate.prefix}:ban") <= 1000
    sandbox.faults.clear()
    gate.max_wait_seconds = 0.5
    with pytest.raises(GateBusy):  # the ban holds even though OKX would answer again
        _client(sandbox, gate=gate).inspect_key(Prior())
    assert sandbox.stats.snapshot()["requests"] == 1


def test_no_secret_or_passphrase_in_any_repr_or_redacted_line(sandbox):
    client = _client(sandbox)
    for value in (GOOD.api_key, GOOD.secret, GOOD.extra["passphrase"]):
        assert value not in repr(client)
    line = (
        f"GET {sandbox.url}{ACCOUNT_CONFIG} OK-ACCESS-KEY: {GOOD.api_key} "
        f"OK-ACCESS-SIGN: ev0iOaWdz8sTmB6Y1Pe05iM/KuC9mO+L/JnJR0SYHdw= "
        f"headers={{'OK-ACCESS-PASSPHRASE': '{GOOD.extra['passphrase']}'}} secret={GOOD.secret}"
    )
    for cleaned in (client.redact(line), okx_redact(line)):
        for value in (GOOD.api_key, GOOD.secret, GOOD.extra["passphrase"], "ev0iOaWdz8sTmB6Y1Pe05iM"):
            assert value not in cleaned
        assert "OK-ACCESS-SIGN: [redacted]" in cleaned and ACCOUNT_CONFIG in cleaned


def test_the_four_wallet_reads_go_out_together_and_wait_once(sandbox, gate):
    """E3–E6 do not depend on each other: admitted in one gate call and written before any
    answer is read, so at 300 ms a call they take one wait, not four. A cap that has room for
    only some of them sends those first and the others next; the read is the same."""
    facts = KeyFacts(can_read=True, can_trade=True, can_withdraw=False)
    with _client(sandbox) as plain:
        expected = plain.read_balances(facts)
    time.sleep(1.05)  # OKX allows E6 once a second per account
    sandbox.faults.update(latency_ms=300)
    with _client(sandbox, gate=gate, scope="uid:1") as client:
        started = time.monotonic()
        read = client.read_balances(facts)
        took = time.monotonic() - started
    assert took < 1.1, took  # E3–E6 together (0.3 s), then the tickers E6 is checked with (0.3 s)
    assert read == expected
    assert [path for path, _ in gate.admitted] == [
        TRADING_BALANCE, FUNDING_BALANCE, SAVINGS_BALANCE, ASSET_VALUATION, TICKERS
    ]  # fmt: skip
    gate.settle()
    sandbox.faults.clear()
    gate.cap, gate.admitted = 2, []
    time.sleep(1.05)  # OKX allows E6 once a second per account
    with _client(sandbox, gate=gate, scope="uid:2") as client:
        assert client.read_balances(facts) == expected
        assert client.calls == 5
    assert [path for path, _ in gate.admitted][:4] == [
        TRADING_BALANCE, FUNDING_BALANCE, SAVINGS_BALANCE, ASSET_VALUATION
    ]  # fmt: skip
    gate.settle()
    assert gate.in_flight() == 0


def test_the_valuation_cross_check_waiting_too_long_at_the_gate_never_fails_the_read(sandbox, gate):
    """E6 allows one call per second per account: when its turn is too far away, the wallets
    read together with it are kept and only the cross-check is left out, as before."""
    facts = KeyFacts(can_read=True, can_trade=True, can_withdraw=False)
    with _client(sandbox, gate=gate, scope="uid:3") as client:
        client.read_balances(facts)
        gate.max_wait_seconds = 0.1  # E6's window (1 s) is still full for this account
        read = client.read_balances(facts)
    assert read.wallets == ("trading", "funding", "savings") and read.other == ()
    assert client.calls == 5 + 3
