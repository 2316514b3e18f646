"""ccxt 4.5.90's ``okx`` against the OKX sandbox: an independent client signs in and reads
balances the way it does against www.okx.com (okx-api.md §9, §12).

ccxt is pointed at the sandbox as §9 step 5 says: ``hostname`` and ``urls['api']['rest']``,
after ``set_sandbox_mode`` for demo keys. For another site it sends that site's Host header,
as a client behind a proxy would.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import ccxt
import pytest

from exchanges.venues.okx.sandbox import OkxSandbox, load_keys, load_tickers

KEYS = load_keys()


def demo(prefix: str) -> tuple[str, str, str]:
    return next((k, e["secret"], e["passphrase"]) for k, e in KEYS.items() if e["note"].startswith(prefix))


GOOD = demo("demo: good key")
EEA = demo("demo: eea key")
ELSEWHERE = demo("demo: ip-bound elsewhere")
DEMO = demo("demo: demo-trading key")
IDLE = demo("demo: idle 15 days")
# CCXT load_markets: instruments for spot, futures, swap and (per default underlying) options,
# then the signed currencies (§9 step 1).
LOAD_MARKETS = {"GET /api/v5/public/instruments": 5, "GET /api/v5/asset/currencies": 1}


@pytest.fixture
def sandbox():
    sb = OkxSandbox(load_keys(), load_tickers()).start()
    sb.paths = Counter()  # what ccxt asked for, by method and path
    sb.seen = []  # (path, query, host, simulated) per request
    handle = sb.handle

    def counting(request):
        sb.paths[f"{request.method} {request.path}"] += 1
        sb.seen.append(
            (request.path, request.query, request.host, request.headers.get("x-simulated-trading"))
        )
        return handle(request)

    sb.handle = counting
    yield sb
    sb.stop()


def okx(sandbox, key, *, cls=ccxt.okx, host: str | None = None, demo_mode: bool = False, password=None):
    exchange = cls({"apiKey": key[0], "secret": key[1], "password": key[2] if password is None else password})
    exchange.enableRateLimit = False
    if demo_mode:
        exchange.set_sandbox_mode(True)  # before the URLs: it swaps urls['api'] (§9 step 5)
    exchange.hostname = urlsplit(sandbox.url).netloc
    exchange.urls["api"] = {"rest": sandbox.url}
    if host is not None:
        exchange.headers = {**(exchange.headers or {}), "Host": host}
    return exchange


def test_load_markets_reads_instruments_and_the_signed_currencies(sandbox):
    markets = okx(sandbox, GOOD).load_markets()
    assert dict(sandbox.paths) == LOAD_MARKETS
    assert markets["BTC/USDT"]["spot"] and markets["BTC/USDT"]["active"]
    assert markets["BTC/USDT"]["precision"]["price"] == 0.1
    assert markets["BTC/USDT"]["margin"] is True and markets["CVC/BTC"]["margin"] is False
    assert {"CVC/BTC", "GHST/ETH", "USDC/USDT"} <= set(markets)
    kinds = sorted(query for path, query, _, _ in sandbox.seen if path.endswith("/instruments"))
    assert kinds == [
        "instType=FUTURES", "instType=OPTION&uly=BTC-USD", "instType=OPTION&uly=ETH-USD",
        "instType=SPOT", "instType=SWAP",
    ]  # fmt: skip


def test_fetch_balance_reads_the_trading_account(sandbox):
    balance = okx(sandbox, GOOD).fetch_balance()
    assert balance["BTC"] == {"free": 0.41235, "used": 0.05, "total": 0.46235}
    assert balance["USDT"] == {"free": 3250.42718, "used": 180.0, "total": 3430.42718}
    assert balance["DORA"]["total"] == 35.0 and balance["CVC"]["free"] == 850.0  # unpriced and via BTC kept
    assert "LTC" not in balance["total"]
    assert sandbox.paths["GET /api/v5/account/balance"] == 1


def test_fetch_balance_of_the_funding_account(sandbox):
    balance = okx(sandbox, GOOD).fetch_balance({"type": "funding"})
    assert balance["total"] == {"USDT": 120.5, "ETH": 0.2}
    assert balance["ETH"] == {"free": 0.15, "used": 0.05, "total": 0.2}
    assert sandbox.paths["GET /api/v5/asset/balances"] == 1


def test_implicit_methods_read_config_savings_and_valuation(sandbox):
    exchange = okx(sandbox, GOOD)
    (config,) = exchange.privateGetAccountConfig()["data"]
    assert config["perm"] == "read_only,trade" and config["uid"] == KEYS[GOOD[0]]["uid"]
    assert config["ip"] == "" and config["acctLv"] == "1"
    savings = exchange.privateGetFinanceSavingsBalance({"ccy": "USDT"})["data"]
    assert [row["amt"] for row in savings] == ["500.0012473"]
    (valuation,) = exchange.privateGetAssetAssetValuation({"ccy": "USDT"})["data"]
    assert float(valuation["totalBal"]) > 0 and set(valuation["details"]) >= {"trading", "funding", "earn"}
    assert float(exchange.publicGetPublicTime()["data"][0]["ts"]) > 0


def test_fetch_tickers_parses_the_spot_tickers(sandbox):
    tickers = okx(sandbox, GOOD).fetch_tickers()
    assert tickers["BTC/USDT"]["last"] == 97250.1
    assert tickers["CVC/BTC"]["last"] == 0.00000131 and tickers["GHST/ETH"]["last"] == 0.000291
    assert tickers["BTC/USDT"]["bid"] < tickers["BTC/USDT"]["ask"]
    assert sandbox.paths["GET /api/v5/market/tickers"] == 1


def test_a_wrong_passphrase_or_secret_raises_authentication_error(sandbox):
    with pytest.raises(ccxt.AuthenticationError, match="50105"):
        okx(sandbox, GOOD, password="not-the-passphrase").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="50113"):
        okx(sandbox, (GOOD[0], "0" * 32, GOOD[2])).fetch_balance()
    # load_markets already fails: the currencies call is signed (§9 step 1)
    assert sandbox.paths["GET /api/v5/asset/currencies"] == 2
    assert "GET /api/v5/account/balance" not in sandbox.paths


def test_unknown_deleted_and_other_site_keys_are_50119_which_ccxt_does_not_map(sandbox):
    for key in (IDLE, EEA, ("0b7f4c1e-93aa-4d2b-8e61-5f0c2d9a7e13", GOOD[1], GOOD[2])):
        with pytest.raises(ccxt.ExchangeError, match="50119") as caught:
            okx(sandbox, key).privateGetAccountConfig()
        assert not isinstance(caught.value, ccxt.AuthenticationError)  # §5.2: not mapped


def test_an_ip_outside_the_binding_raises_permission_denied(sandbox):
    with pytest.raises(ccxt.PermissionDenied, match="Your IP 127.0.0.1"):
        okx(sandbox, ELSEWHERE).privateGetAccountConfig()


def test_the_eea_site_through_myokx_with_its_host_header(sandbox):
    exchange = okx(sandbox, EEA, cls=ccxt.myokx, host="eea.okx.com")
    balance = exchange.fetch_balance()
    assert balance["EUR"] == {"free": 1450.75, "used": 49.25, "total": 1500.0}
    assert "BTC/EUR" in exchange.markets
    assert {host for _, _, host, _ in sandbox.seen} == {"eea.okx.com"}


def test_a_demo_key_works_in_ccxts_sandbox_mode_only(sandbox):
    exchange = okx(sandbox, DEMO, demo_mode=True)
    assert exchange.fetch_balance()["BTC"]["total"] == 1.0
    assert "GET /api/v5/asset/currencies" not in sandbox.paths  # skipped in sandbox mode (§1.3)
    assert {flag for _, _, _, flag in sandbox.seen} == {"1"}
    with pytest.raises(ccxt.AuthenticationError, match="50101"):
        okx(sandbox, DEMO).privateGetAccountConfig()


def test_clock_skew_is_invalid_nonce_until_ccxt_reads_e1(sandbox):
    exchange = okx(sandbox, GOOD)
    sandbox.clock_offset_ms = 120_000
    with pytest.raises(ccxt.InvalidNonce, match="50102"):
        exchange.privateGetAccountConfig()
    exchange.load_time_difference()  # §9 step 6
    assert exchange.privateGetAccountConfig()["code"] == "0"


def test_trouble_raises_ccxts_transient_errors(sandbox):
    exchange = okx(sandbox, GOOD)
    exchange.load_markets()
    sandbox.faults.update(rate_limited=True)
    with pytest.raises(ccxt.RateLimitExceeded):
        exchange.fetch_balance()
    sandbox.faults.replace({"maintenance": True})
    with pytest.raises(ccxt.OnMaintenance):
        exchange.fetch_balance()
    sandbox.faults.replace({"http_status": 502})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.fetch_balance()
