"""ccxt 4.5.90's ``binance`` against the Binance sandbox: an independent client signs in and
reads balances the way it does against api.binance.com (binance-api.md §2 step 7, §6, §7.2).

Every ``urls['api']`` entry points at the sandbox (its path kept), and ``load_markets`` is
limited to spot markets without currencies or margin pairs, so ccxt only calls
``/api/v3/exchangeInfo`` before the call under test.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import ccxt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchanges.venues.binance.sandbox import BinanceSandbox, load_keys, load_tickers

KEYS = load_keys()


def demo(prefix: str) -> tuple[str, str]:
    return next((k, e["secret"]) for k, e in KEYS.items() if e["note"].startswith(prefix))


GOOD = demo("demo: good key")
READ_ONLY = demo("demo: read-only")
ELSEWHERE = demo("demo: ip-bound elsewhere")
EXPIRED = demo("demo: trading expired")


@pytest.fixture
def sandbox():
    sb = BinanceSandbox(load_keys(), load_tickers()).start()
    sb.paths = Counter()  # what ccxt asked for, by method and path
    handle = sb.handle

    def counting(request):
        sb.paths[f"{request.method} {request.path}"] += 1
        return handle(request)

    sb.handle = counting
    yield sb
    sb.stop()


def binance(sandbox, key: tuple[str, str]) -> ccxt.binance:
    exchange = ccxt.binance({"apiKey": key[0], "secret": key[1], "enableRateLimit": False})
    exchange.urls["api"] = {
        name: sandbox.url + urlsplit(url).path for name, url in exchange.urls["api"].items()
    }
    exchange.options["fetchMarkets"] = {"types": ["spot"]}  # no fapi/dapi exchangeInfo
    exchange.options["fetchCurrencies"] = False  # no signed /sapi/v1/capital/config/getall
    exchange.options["fetchMargins"] = False  # no margin pair lists
    return exchange


def test_load_markets_reads_only_spot_exchange_info(sandbox):
    exchange = binance(sandbox, GOOD)
    markets = exchange.load_markets()
    assert dict(sandbox.paths) == {"GET /api/v3/exchangeInfo": 1}
    assert markets["BTC/USDT"]["active"] is True and markets["KMD/BTC"]["spot"] is True
    assert markets["WAVES/USDT"]["active"] is False  # BREAK
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01


def test_fetch_balance_returns_the_good_keys_spot_amounts(sandbox):
    exchange = binance(sandbox, GOOD)
    balance = exchange.fetch_balance()
    held = [line for line in KEYS[GOOD[0]]["spot"] if Decimal(line["free"]) + Decimal(line["locked"]) > 0]
    for line in held:
        assert balance[line["asset"]]["free"] == float(line["free"]), line
        assert balance[line["asset"]]["used"] == float(line["locked"]), line
    assert balance["USDT"]["total"] == 1770.25 and balance["LDUSDT"]["total"] == 500.0
    assert balance["info"]["uid"] == KEYS[GOOD[0]]["uid"]
    assert sandbox.paths["GET /api/v3/account"] == 1


def test_fetch_balance_of_the_funding_wallet_is_a_signed_post_body(sandbox):
    balance = binance(sandbox, GOOD).fetch_balance({"type": "funding"})
    assert balance["USDT"]["free"] == 75.5 and balance["BNB"]["total"] == 0.25
    assert sandbox.paths["POST /sapi/v1/asset/get-funding-asset"] == 1


def test_a_wrong_secret_or_unknown_key_raises_authentication_error(sandbox):
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        binance(sandbox, (GOOD[0], READ_ONLY[1])).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        binance(sandbox, ("Q" * 64, GOOD[1])).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="request ip: 127.0.0.1"):
        binance(sandbox, ELSEWHERE).fetch_balance()


def test_a_test_order_without_trading_is_refused_and_ccxt_reads_a_later_2015_as_a_ban(sandbox):
    for key in (READ_ONLY, EXPIRED):
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            binance(sandbox, key).create_order("BTC/USDT", "market", "buy", 0.001, params={"test": True})
    exchange = binance(sandbox, READ_ONLY)
    assert exchange.fetch_balance()["USDT"]["free"] == 18.0  # reads work
    # CCXT handle_errors: -2015 after a success on the same client -> DDoSProtection (§5)
    with pytest.raises(ccxt.DDoSProtection):
        exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"test": True})
    assert sandbox.paths["POST /api/v3/order/test"] == 3


def test_cross_margin_without_an_account_is_minus_3003(sandbox):
    with pytest.raises(ccxt.ExchangeError, match="-3003"):
        binance(sandbox, GOOD).fetch_balance({"type": "margin"})


def test_time_status_and_clock_skew(sandbox):
    exchange = binance(sandbox, GOOD)
    sandbox.clock_offset_ms = 3_600_000
    assert abs(exchange.fetch_time() - sandbox.now_ms()) < 5_000
    with pytest.raises(ccxt.InvalidNonce):  # -1021: ccxt signs with local time
        exchange.fetch_balance()
    exchange.load_time_difference()  # §9: ccxt's own fix
    assert exchange.fetch_balance()["BTC"]["free"] == 0.51234567
    assert exchange.fetch_status()["status"] == "ok"
    sandbox.faults.maintenance = True
    assert exchange.fetch_status()["status"] == "maintenance"


def test_rate_limit_answers_raise_ddos_protection(sandbox):
    exchange = binance(sandbox, GOOD)
    exchange.load_markets()
    sandbox.faults.update(rate_limited=1)
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        exchange.fetch_balance()
    sandbox.faults.replace({"banned": 1})
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        exchange.fetch_balance()


def test_an_ed25519_key_signed_by_ccxt_is_verified(sandbox):
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    api_key = "Ed25519" + "k" * 57
    entry = {k: v for k, v in KEYS[GOOD[0]].items() if k != "secret"}
    sandbox.accounts[api_key] = {**entry, "keyType": "ED25519", "publicKeyPem": public_pem}
    assert binance(sandbox, (api_key, private_pem)).fetch_balance()["ETH"]["used"] == 0.5
    other = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        binance(sandbox, (api_key, other)).fetch_balance()
