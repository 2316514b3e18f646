"""ccxt 4.5.90's ``bybit`` against the Bybit sandbox: an independent client signs in and reads
balances the way it does against api.bybit.com (bybit-api.md §2, §9.2, §11).

Every ``urls['api']`` entry points at the sandbox, with ccxt's default options: a cold
``fetch_balance`` makes the 15 calls of §11. A regional key is reached by sending its site's
host in the ``Host`` header, as through a proxy.
"""

from __future__ import annotations

from collections import Counter

import ccxt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exchanges.venues.bybit.sandbox import BybitSandbox, load_keys, load_tickers

KEYS = load_keys()


def demo(prefix: str) -> tuple[str, str]:
    return next((k, e["secret"]) for k, e in KEYS.items() if e["note"].startswith(prefix))


GOOD = demo("demo: good key")
NL = demo("demo: nl key")
READ_ONLY = demo("demo: read-only")
ELSEWHERE = demo("demo: ip-bound elsewhere")
EXPIRED = demo("demo: expired")
NO_WALLET = demo("demo: no wallet permission")


@pytest.fixture
def sandbox():
    sb = BybitSandbox(load_keys(), load_tickers()).start()
    sb.paths = Counter()  # what ccxt asked for, by method and path
    handle = sb.handle

    def counting(request):
        sb.paths[f"{request.method} {request.path}"] += 1
        return handle(request)

    sb.handle = counting
    yield sb
    sb.stop()


def bybit(sandbox, key: tuple[str, str], host: str | None = None) -> ccxt.bybit:
    exchange = ccxt.bybit({"apiKey": key[0], "secret": key[1], "enableRateLimit": False})
    exchange.urls["api"] = dict.fromkeys(exchange.urls["api"], sandbox.url)
    if host:
        exchange.headers = {"Host": host}
    return exchange


def test_a_cold_fetch_balance_makes_the_15_calls_and_reads_the_unified_wallet(sandbox):
    balance = bybit(sandbox, GOOD).fetch_balance()
    assert dict(sandbox.paths) == {
        "GET /v5/asset/coin/query-info": 1,
        "GET /v5/market/instruments-info": 11,  # spot, linear x2, inverse x2, option x6
        "GET /v5/user/query-api": 1,
        "GET /v5/account/info": 1,
        "GET /v5/account/wallet-balance": 1,
    }
    assert sum(sandbox.paths.values()) == 15
    usdt = balance["USDT"]
    assert usdt["total"] == 4210.55218311 and usdt["used"] == 211.2045  # locked + position IM
    assert usdt["free"] == pytest.approx(4210.55218311 - 211.2045)
    assert balance["USDC"]["debt"] == 50.0012  # borrowAmount + accruedInterest
    assert balance["XCAD"]["total"] == 2500 and balance["QNT"]["total"] == 14.2
    assert "SOL" not in balance["total"]  # zero coins are not listed


def test_load_markets_parses_the_spot_instruments(sandbox):
    exchange = bybit(sandbox, GOOD)
    markets = exchange.load_markets()
    assert markets["BTC/USDT"]["active"] is True and markets["BTC/USDT"]["precision"]["price"] == 0.1
    assert markets["QNT/BTC"]["spot"] is True and markets["LDO/ETH"]["quote"] == "ETH"
    assert markets["WAVES/USDT"]["active"] is False  # Closed
    assert "BTC" in exchange.currencies and "XCAD" in exchange.currencies
    tickers = exchange.fetch_tickers(params={"type": "spot"})
    assert tickers["BTC/USDT"]["last"] == 97250.5 and "WAVES/USDT" not in tickers


def test_the_funding_wallet_reads_with_a_wallet_permission_only(sandbox):
    balance = bybit(sandbox, GOOD).fetch_balance({"type": "funding"})
    assert balance["USDT"]["total"] == 735.1 and balance["USDT"]["free"] == 735.1
    assert balance["EUR"]["total"] == 120 and balance["MNT"]["total"] == 250.5
    assert sandbox.paths["GET /v5/asset/transfer/query-account-coins-balance"] == 1
    exchange = bybit(sandbox, NO_WALLET)
    with pytest.raises(ccxt.PermissionDenied, match="10005"):
        exchange.fetch_balance({"type": "funding"})
    assert exchange.fetch_balance()["BTC"]["total"] == 0.004  # the trading wallet still reads


def test_a_wrong_secret_unknown_expired_or_elsewhere_key_is_refused(sandbox):
    with pytest.raises(ccxt.AuthenticationError, match="10004"):
        bybit(sandbox, (GOOD[0], READ_ONLY[1])).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="10003"):
        bybit(sandbox, ("Zq9Zq9Zq9Zq9Zq9Zq9", GOOD[1])).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="33004"):
        bybit(sandbox, EXPIRED).fetch_balance()
    with pytest.raises(ccxt.PermissionDenied, match="10010"):
        bybit(sandbox, ELSEWHERE).fetch_balance()


def test_a_regional_key_works_only_through_its_sites_host(sandbox):
    with pytest.raises(ccxt.AuthenticationError, match="10003"):
        bybit(sandbox, NL).fetch_balance()
    balance = bybit(sandbox, NL, host="api.bybit.nl").fetch_balance()
    assert balance["USDT"]["total"] == 820.3 and balance["ETH"]["total"] == 0.75
    with pytest.raises(ccxt.AuthenticationError, match="10003"):
        bybit(sandbox, GOOD, host="api.bybit.nl").fetch_balance()


def test_clock_skew_is_invalid_nonce_until_ccxt_loads_the_time_difference(sandbox):
    exchange = bybit(sandbox, GOOD)
    exchange.load_markets()
    sandbox.clock_offset_ms = 3_600_000
    assert abs(exchange.fetch_time() - sandbox.now_ms()) < 5_000
    with pytest.raises(ccxt.InvalidNonce, match="10002"):
        exchange.fetch_balance()
    exchange.load_time_difference()
    assert exchange.fetch_balance()["ETH"]["used"] == 0.25


def test_limits_and_maintenance_raise_ccxts_transient_errors(sandbox):
    exchange = bybit(sandbox, GOOD)
    exchange.load_markets()
    sandbox.faults.rate_limited = True
    with pytest.raises(ccxt.RateLimitExceeded, match="10006"):
        exchange.fetch_balance()
    sandbox.faults.rate_limited = "ip"  # HTTP 403: ccxt's httpExceptions
    with pytest.raises(ccxt.RateLimitExceeded):
        exchange.fetch_balance()
    sandbox.faults.replace({"maintenance": True})
    with pytest.raises(ccxt.ExchangeError, match="10016"):
        exchange.fetch_balance()
    assert exchange.fetch_status()["status"] == "maintenance"
    sandbox.faults.clear()
    assert exchange.fetch_status()["status"] == "ok"


def test_an_rsa_key_signed_by_ccxt_is_verified(sandbox):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    api_key = "RsaKey7Wm2Hx9KpL4s"
    entry = {k: v for k, v in KEYS[GOOD[0]].items() if k != "secret"}
    sandbox.accounts[api_key] = {**entry, "rsaPublicKey": public_pem}
    assert bybit(sandbox, (api_key, private_pem)).fetch_balance()["USDT"]["total"] == 4210.55218311
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ccxt.AuthenticationError, match="10004"):
        bybit(sandbox, (api_key, other.decode())).fetch_balance()
