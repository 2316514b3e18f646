"""Our venue clients against ccxt's, side by side in one run (issue 6, "Against ccxt"): HTX
(ours vs ``ccxt.htx``), Binance (ours vs ``ccxt.binance``), OKX (ours vs ``ccxt.okx``) and Bybit
(ours vs ``ccxt.bybit``), one entry of ``VENUES`` each.

Run from the repository root: .venv/bin/python bench/ccxt_compare.py [--calls N] [--runs N]
    [--venues htx,binance,okx,bybit]

(a) import: wall time of a fresh `python -c "import X"` minus a bare interpreter's, median of
    --runs (7) interleaved runs; peak RSS printed by the child after the import (VmHWM,
    because ru_maxrss is inherited across fork+exec on Linux), minus the bare interpreter's.
    `import ccxt` loads every exchange class, so it is one figure for all venues.
    The issue measured ccxt at 250 ms and 78 MB.
(b) signing: one signed GET with a fixed clock, timeit, µs per call; both sides must produce the
    same, known signature first. HTX: a GET with 2 parameters, ours `signing.signed_query` plus
    `htx_timestamp_at` (the client formats the timestamp once per second; ccxt formats it every
    call), `signed_query` alone printed as well. Binance: the client's spot read (E5,
    `omitZeroBalances=true`, `timestamp`, `recvWindow` 10000 as ccxt sends it), ours
    `signing.signed_params` with the client's cached `Signer`, ccxt's `sign()`. OKX: okx-api.md
    §3 vector V2, `GET /api/v5/account/balance?ccy=BTC` (the client's trading-account read, E3,
    with one parameter), ours the query, `request_path` and the client's `Signer.headers` (which
    formats the ISO timestamp every call, as ccxt does), ccxt's `sign()`. Bybit: bybit-api.md §3
    vector V2, `GET /v5/account/wallet-balance?accountType=UNIFIED` (the client's E4 read as
    sent, recvWindow 5000 both sides), ours what the client's `_send` does (`_credentials`, then
    `signing.signed_request`, which builds a `Signer` per call), ccxt's `sign()`.
(c) balance read: CPU of this process (time.process_time) per read against the venue's sandbox,
    which runs in a separate process with its rate limits lifted, so its CPU is not counted;
    --calls (300) reads each, median of 3 interleaved rounds. ccxt's client-side rate limiter
    is off (it only sleeps, but it would cost wall time).
    HTX: our `balance(spot account)` vs `fetch_balance()`, ccxt pointed at the sandbox as
    tests/venues/htx/test_sandbox.py does. Binance: our spot read (`account()`, i.e.
    /api/v3/account, parsed into wallet lines as `read_balances` does) vs `fetch_balance()`
    with every `urls['api']` at the sandbox and `load_markets` limited to spot markets, no
    currencies, no margin pairs (tests/venues/binance/test_ccxt.py), markets loaded once first.
    OKX: the trading account both ways: ours E3 (/api/v5/account/balance) parsed into wallet
    lines as `read_balances` does for that account (its funding, Earn and valuation calls left
    out), vs `fetch_balance()` (the trading account by default) with `hostname` and
    `urls['api']['rest']` at the sandbox (tests/venues/okx/test_ccxt.py), markets and currencies
    loaded once first. Bybit: the Unified Trading Account both ways: ours E4
    (/v5/account/wallet-balance?accountType=UNIFIED) parsed as `read_balances` does for it (its
    Funding Account call left out), vs `fetch_balance()` with every `urls['api']` entry at the
    sandbox and ccxt's default options (tests/venues/bybit/test_ccxt.py); markets, currencies
    and its account-type lookups (query-api, account/info) done once first.

Prints `name: value unit` lines and `target ...: MET|NOT MET` lines, each named after its venue
(`htx_...`, `binance_...`, `okx_...`, `bybit_...`); exits 0 either way. Another venue is one
more `VENUES` entry: its import statement, a signing case, a sandbox and a balance case.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, figure, median, note, python, sandbox_process, serve_sandbox_until_told, target  # noqa: E402

# Targets from issue 6, ours / ccxt, the same for every venue.
IMPORT_RATIO_MAX = 0.4
RSS_RATIO_MAX = 0.5
SIGN_RATIO_MAX = 0.6
BALANCE_CPU_ADVANTAGE_MIN = 3.0  # ccxt CPU / our CPU per balance read

LIFTED = 10**9  # a sandbox rate limit nobody reaches: we measure clients, not limits


@dataclass
class SignCase:
    """One signed request, built by our signer and by ccxt's ``sign()``."""

    ours: Callable[[], Any]
    ccxt: Callable[[], Any]
    ours_signature: Callable[[], str]  # the signature `ours()` produced
    ccxt_signature: Callable[[], str]  # the signature `ccxt()` produced
    expected: str  # the known signature both must produce
    extra: dict[str, Callable[[], Any]] = field(default_factory=dict)  # more of ours, printed only
    note: str = ""


@dataclass
class BalanceCase:
    """Both clients reading the same key's balance from the venue's sandbox at ``url``."""

    read_ours: Callable[[], Any]
    read_ccxt: Callable[[], Any]
    ours_calls: Callable[[], int]  # HTTP requests our client has sent so far
    exchange: Any  # the ccxt exchange (its requests session is hooked to count its calls)
    describe: Callable[[Any, Any], str]  # (our read, ccxt's read) -> what each read holds
    close: Callable[[], None]
    note: str = ""  # what each side reads, printed as a comment line


@dataclass(frozen=True)
class VenueBench:
    id: str
    ours_import: str  # the statement a fresh interpreter runs for "ours"
    sign: Callable[[], SignCase]
    sandbox: Callable[[], Any]  # in the sandbox's child process: bound, not started, limits lifted
    balance: Callable[[str], BalanceCase]  # given the sandbox's URL
    ccxt_import: str = "import ccxt"


# Peak RSS as VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child
# started from this (larger) process would report the parent's peak instead of its own.
CHILD = (
    "{statement}\n"
    "with open('/proc/self/status') as f:\n"
    "    print(next(line.split()[1] for line in f if line.startswith('VmHWM:')))"
)
BARE = "pass"


# --- HTX --------------------------------------------------------------------------------------

# A signed GET with two parameters: htx-api.md §3 vector V3 (/v2/user/api-key).
HTX_ACCESS_KEY = "abcd1234-ef567890-12345678-9abcd"
HTX_SECRET = "00000000-11111111-22222222-33333"
HTX_HOST = "api.huobi.pro"
HTX_PATH = "/v2/user/api-key"
HTX_PARAMS = {"uid": "63628520", "accessKey": HTX_ACCESS_KEY}
HTX_FIXED_MS = 1704164645000  # 2024-01-02T03:04:05Z
HTX_SIGNATURE = "cp9iZg+bk76ZuKw2ds2vT2ByfshFjrYTLQKoJZQFoeA="


def _htx_sign() -> SignCase:
    import ccxt

    from exchanges.venues.htx import signing

    exchange = ccxt.htx({"apiKey": HTX_ACCESS_KEY, "secret": HTX_SECRET})
    exchange.milliseconds = lambda: HTX_FIXED_MS  # a fixed clock: nonce() reads it

    def sign(timestamp: str) -> str:
        return signing.signed_query(
            method="GET",
            host=HTX_HOST,
            path=HTX_PATH,
            access_key=HTX_ACCESS_KEY,
            secret=HTX_SECRET,
            timestamp=timestamp,
            params=HTX_PARAMS,
        )

    fixed_stamp = signing.htx_timestamp(datetime.fromtimestamp(HTX_FIXED_MS / 1000, UTC))

    def ours() -> str:
        return sign(signing.htx_timestamp_at(HTX_FIXED_MS / 1000))

    def theirs() -> dict:
        return exchange.sign(HTX_PATH.lstrip("/"), ["spot", "private"], "GET", dict(HTX_PARAMS))

    return SignCase(
        ours=ours,
        ccxt=theirs,
        ours_signature=lambda: parse_qs(ours())["Signature"][0],
        ccxt_signature=lambda: parse_qs(urlsplit(theirs()["url"]).query)["Signature"][0],
        expected=HTX_SIGNATURE,
        extra={"query_only": lambda: sign(fixed_stamp)},
        note="issue: ccxt.htx.sign 19.4 us",
    )


def _htx_sandbox() -> Any:
    from exchanges.venues.htx.sandbox import HtxSandbox, load_accounts, load_tickers

    sandbox = HtxSandbox(load_accounts(), load_tickers()).bind()
    sandbox.rate_limit = LIFTED  # HTX allows 100 per 2 s per UID
    return sandbox


def _htx_balance(url: str) -> BalanceCase:
    import ccxt

    from exchanges.venues.htx.client import HtxClient
    from exchanges.venues.htx.venue import HTX

    access_key, secret = HTX.demo_key("good")
    netloc = urlsplit(url).netloc
    ours = HtxClient(url, access_key=access_key, secret_key=secret)
    spot = next(a for a in ours.accounts() if a.type == "spot")

    exchange = ccxt.htx({"apiKey": access_key, "secret": secret, "enableRateLimit": False})
    exchange.hostname = netloc
    exchange.urls["hostnames"]["spot"] = netloc
    for name in exchange.urls["api"]:
        exchange.urls["api"][name] = "http://{hostname}"
    exchange.set_markets([])  # skip load_markets' public calls, which the sandbox does not serve

    def close() -> None:
        ours.close()
        exchange.session.close()

    # Spot account both ways; ccxt loads the account list once, then caches it.
    return BalanceCase(
        read_ours=lambda: ours.balance(spot),
        read_ccxt=exchange.fetch_balance,
        ours_calls=lambda: ours.calls,
        exchange=exchange,
        describe=lambda o, c: f"{len(o.lines)} lines (ours), {len(c['total'])} currencies (ccxt)",
        close=close,
        note="ours: balance(spot account); ccxt: fetch_balance(), the spot account (account list cached)",
    )


# --- Binance ----------------------------------------------------------------------------------

# binance-api.md §3 vector V2 (tests/venues/binance/test_signing.py): GET /api/v3/account with
# omitZeroBalances=true, as the client's spot read sends it, recvWindow 10000 as ccxt sends it.
BINANCE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_FIXED_MS = 1767225600000
BINANCE_RECV_WINDOW = 10_000
BINANCE_PARAMS = {"omitZeroBalances": True}
BINANCE_SIGNATURE = "60f040573e0f594e616235329b6b184de0979ad58279cca21c3dd21dab688028"


def _binance_sign() -> SignCase:
    import ccxt

    from exchanges.venues.binance import signing

    exchange = ccxt.binance({"apiKey": BINANCE_KEY, "secret": BINANCE_SECRET})
    exchange.milliseconds = lambda: BINANCE_FIXED_MS  # a fixed clock: nonce() reads it
    assert exchange.options["recvWindow"] == BINANCE_RECV_WINDOW
    signer = signing.Signer(BINANCE_SECRET)  # the client builds one per key and keeps it
    clock_offset_ms = 0

    def now_ms() -> int:  # the client's _now_ms, on the fixed clock
        return BINANCE_FIXED_MS + clock_offset_ms

    def ours() -> str:
        return signing.signed_params(
            signer, BINANCE_PARAMS, timestamp=now_ms(), recv_window=BINANCE_RECV_WINDOW
        )

    def theirs() -> dict:
        return exchange.sign("account", ["private"], "GET", dict(BINANCE_PARAMS))

    # Independently of both: HMAC-SHA256 of the query as sent, without its signature.
    payload = f"timestamp={BINANCE_FIXED_MS}&omitZeroBalances=true&recvWindow={BINANCE_RECV_WINDOW}"
    recomputed = hmac.new(BINANCE_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert recomputed == BINANCE_SIGNATURE, recomputed

    return SignCase(
        ours=ours,
        ccxt=theirs,
        ours_signature=lambda: parse_qs(ours())["signature"][0],
        ccxt_signature=lambda: parse_qs(urlsplit(theirs()["url"]).query)["signature"][0],
        expected=BINANCE_SIGNATURE,
        note="GET /api/v3/account, 3 parameters + signature",
    )


def _binance_sandbox() -> Any:
    from exchanges.venues.binance.venue import BINANCE

    sandbox = BINANCE.sandbox().bind()
    # Binance counts weight per IP: 6,000 a minute on /api, of which a spot read costs 20.
    sandbox.api_weight_limit = sandbox.sapi_ip_weight_limit = sandbox.fapi_weight_limit = LIFTED
    return sandbox


def _binance_balance(url: str) -> BalanceCase:
    import ccxt

    from exchanges.venues.binance.venue import BINANCE
    from exchanges.venues.binance.wallets import Book
    from exchanges.venues.kit.types import Credentials

    api_key, secret = BINANCE.demo_key("good")
    ours = BINANCE.client(base_url=url, credentials=Credentials(api_key, secret), timeout=(3.05, 10.0))
    ours.sync_clock()

    def read_ours():
        book = Book()  # what read_balances does with E5's answer
        book.mirrors(book.spot(ours.account()))
        return book.result([])

    exchange = ccxt.binance({"apiKey": api_key, "secret": secret, "enableRateLimit": False})
    exchange.urls["api"] = {name: url + urlsplit(api).path for name, api in exchange.urls["api"].items()}
    exchange.options["fetchMarkets"] = {"types": ["spot"]}  # no fapi/dapi exchangeInfo
    exchange.options["fetchCurrencies"] = False  # no signed /sapi/v1/capital/config/getall
    exchange.options["fetchMargins"] = False  # no margin pair lists
    exchange.load_markets()  # once (GET /api/v3/exchangeInfo), as every ccxt user does

    # E5 both ways: ours asks Binance to omit zero balances, ccxt lists every asset.
    return BalanceCase(
        read_ours=read_ours,
        read_ccxt=exchange.fetch_balance,
        ours_calls=lambda: ours.calls,
        exchange=exchange,
        describe=lambda o, c: f"{len(o.lines)} lines (ours), {len(c['total'])} currencies (ccxt)",
        close=exchange.session.close,
        note=(
            "ours: account() (GET /api/v3/account, omitZeroBalances) parsed into wallet lines; "
            "ccxt: fetch_balance() (GET /api/v3/account, zero balances included), markets loaded once"
        ),
    )


# --- OKX --------------------------------------------------------------------------------------

# okx-api.md §3 vector V2 (tests/venues/okx/test_signing.py): GET /api/v5/account/balance?ccy=BTC,
# the client's trading-account read (E3) with one parameter.
OKX_KEY = "6d21f451-5156-4af7-83a1-ef483c4573bc"
OKX_SECRET = "10E0F6068FEA5EFBCDD8039150DC6474"
OKX_PASSPHRASE = "Vector-Pass-9"
OKX_FIXED_MS = 1704164645678  # 2024-01-02T03:04:05.678Z
OKX_PARAMS = {"ccy": "BTC"}
OKX_SIGNATURE = "9FoP2Lc4Ru57GoczcyBgQPFGqJ2J1VBTAJGAa0Czl/U="


def _okx_sign() -> SignCase:
    import ccxt

    from exchanges.venues.okx import signing
    from exchanges.venues.okx.endpoints import TRADING_BALANCE

    exchange = ccxt.okx({"apiKey": OKX_KEY, "secret": OKX_SECRET, "password": OKX_PASSPHRASE})
    exchange.milliseconds = lambda: OKX_FIXED_MS  # a fixed clock: nonce() reads it
    signer = signing.Signer(OKX_KEY, OKX_SECRET, OKX_PASSPHRASE)  # the client builds one per key
    clock_offset_ms = 0

    def now_ms() -> int:  # the client's _now_ms, on the fixed clock
        return OKX_FIXED_MS + clock_offset_ms

    def ours() -> dict[str, str]:  # what the client's _send does to sign a GET
        query = signing.encode_query(OKX_PARAMS)
        return signer.headers(now_ms(), "GET", signing.request_path(TRADING_BALANCE, query))

    def theirs() -> dict:
        return exchange.sign("account/balance", ["private"], "GET", dict(OKX_PARAMS))

    # Independently of both: Base64 HMAC-SHA256 of timestamp + method + path and query.
    payload = "2024-01-02T03:04:05.678ZGET/api/v5/account/balance?ccy=BTC"
    digest = hmac.new(OKX_SECRET.encode(), payload.encode(), hashlib.sha256).digest()
    recomputed = base64.b64encode(digest).decode()
    assert recomputed == OKX_SIGNATURE, recomputed

    return SignCase(
        ours=ours,
        ccxt=theirs,
        ours_signature=lambda: ours()["OK-ACCESS-SIGN"],
        ccxt_signature=lambda: theirs()["headers"]["OK-ACCESS-SIGN"],
        expected=OKX_SIGNATURE,
        note=(
            "GET /api/v5/account/balance?ccy=BTC; ours: encode_query, request_path, Signer.headers "
            "(4 OK-ACCESS-* headers, ISO timestamp formatted per call); ccxt: okx.sign() (URL + headers)"
        ),
    )


def _okx_sandbox() -> Any:
    from exchanges.venues.okx.sandbox import OkxSandbox, load_keys, load_tickers

    sandbox = OkxSandbox(load_keys(), load_tickers()).bind()
    # OKX limits each endpoint per User ID (private) or IP (public): E3 allows 10 per 2 s.
    sandbox.limits = {path: (LIFTED, window_ms) for path, (_, window_ms) in sandbox.limits.items()}
    return sandbox


def _okx_balance(url: str) -> BalanceCase:
    import ccxt

    from exchanges.venues.okx.endpoints import TRADING_BALANCE
    from exchanges.venues.okx.venue import OKX
    from exchanges.venues.okx.wallets import Book

    credentials = OKX.demo_credentials("good")  # a passphrase and a site ("global") in extra
    ours = OKX.client(base_url=url, credentials=credentials, timeout=(3.05, 10.0))
    ours.sync_clock()

    def read_ours():
        book = Book()  # what read_balances does with E3's answer (the trading account)
        book.trading(ours._call("GET", TRADING_BALANCE))
        return book.result([])

    exchange = ccxt.okx(
        {
            "apiKey": credentials.api_key,
            "secret": credentials.secret,
            "password": credentials.extra["passphrase"],
            "enableRateLimit": False,
        }
    )
    exchange.hostname = urlsplit(url).netloc
    exchange.urls["api"] = {"rest": url}
    exchange.load_markets()  # once (5 instrument lists, the signed currencies), as every ccxt user does

    # The trading account both ways (E3, GET /api/v5/account/balance): ours parsed into wallet
    # lines, ccxt's fetch_balance() of its default account type, "trading".
    return BalanceCase(
        read_ours=read_ours,
        read_ccxt=exchange.fetch_balance,
        ours_calls=lambda: ours.calls,
        exchange=exchange,
        describe=lambda o, c: f"{len(o.lines)} lines (ours), {len(c['total'])} currencies (ccxt)",
        close=exchange.session.close,
        note=(
            "ours: E3 GET /api/v5/account/balance parsed into trading-account lines (no funding, Earn, "
            "valuation calls); ccxt: fetch_balance(), its default 'trading' account, the same GET, "
            "markets loaded once"
        ),
    )


# --- Bybit ------------------------------------------------------------------------------------

# bybit-api.md §3 vector V2 (tests/venues/bybit/test_signing.py): GET /v5/account/wallet-balance
# ?accountType=UNIFIED, the client's E4 read as sent; recvWindow 5000, Bybit's and ccxt's default.
BYBIT_KEY = "Tq7Wm2Hx9KpL4sRv8N"
BYBIT_SECRET = "c3Fj8Qz1Lw6Yp0Rt5Mv2Nb7Xk4Hd9Gs1Ae6U"
BYBIT_FIXED_MS = 1767225600000
BYBIT_RECV_WINDOW = 5000
BYBIT_PARAMS = {"accountType": "UNIFIED"}
BYBIT_SIGNATURE = "134ddacb8a3faac1eb111150c1bb1b64f5f5bf9cdc7cb689d8de81df208d4620"


def _bybit_sign() -> SignCase:
    import ccxt

    from exchanges.venues.bybit import signing
    from exchanges.venues.bybit.client import BybitClient
    from exchanges.venues.bybit.endpoints import WALLET
    from exchanges.venues.kit.types import Credentials

    exchange = ccxt.bybit({"apiKey": BYBIT_KEY, "secret": BYBIT_SECRET})
    exchange.milliseconds = lambda: BYBIT_FIXED_MS  # a fixed clock: nonce() reads it
    assert exchange.options["recvWindow"] == BYBIT_RECV_WINDOW
    client = BybitClient(credentials=Credentials(BYBIT_KEY, BYBIT_SECRET))  # never sends here
    assert client.recv_window == BYBIT_RECV_WINDOW

    def now_ms() -> int:  # the client's _now_ms, on the fixed clock
        return BYBIT_FIXED_MS + client.clock_offset_ms

    def ours() -> tuple[str, str | None, dict[str, str]]:  # what the client's _send does to sign
        return signing.signed_request(
            *client._credentials(WALLET),
            "GET",
            BYBIT_PARAMS,
            timestamp=now_ms(),
            recv_window=client.recv_window,
        )

    def theirs() -> dict:
        return exchange.sign("v5/account/wallet-balance", ["private"], "GET", dict(BYBIT_PARAMS))

    # Independently of both: hex HMAC-SHA256 of timestamp + key + recvWindow + the query sent.
    payload = f"{BYBIT_FIXED_MS}{BYBIT_KEY}{BYBIT_RECV_WINDOW}accountType=UNIFIED"
    recomputed = hmac.new(BYBIT_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert recomputed == BYBIT_SIGNATURE, recomputed

    return SignCase(
        ours=ours,
        ccxt=theirs,
        ours_signature=lambda: ours()[2]["X-BAPI-SIGN"],
        ccxt_signature=lambda: theirs()["headers"]["X-BAPI-SIGN"],
        expected=BYBIT_SIGNATURE,
        note=(
            "GET /v5/account/wallet-balance?accountType=UNIFIED; ours: _credentials, signed_request "
            "(query, a Signer, 4 X-BAPI-* headers); ccxt: bybit.sign() (URL + headers)"
        ),
    )


def _bybit_sandbox() -> Any:
    from exchanges.venues.bybit.sandbox import BybitSandbox, load_keys, load_tickers

    sandbox = BybitSandbox(load_keys(), load_tickers()).bind()
    # Bybit limits each endpoint per UID (E4: 50 a second) and every request per IP (600 per 5 s).
    sandbox.uid_limits = dict.fromkeys(sandbox.uid_limits, LIFTED)
    sandbox.ip_limit = LIFTED
    return sandbox


def _bybit_balance(url: str) -> BalanceCase:
    import ccxt

    from exchanges.venues.bybit.endpoints import WALLET
    from exchanges.venues.bybit.venue import BYBIT
    from exchanges.venues.bybit.wallets import Book

    credentials = BYBIT.demo_credentials("good")  # a site ("global") in extra
    ours = BYBIT.client(base_url=url, credentials=credentials, timeout=(3.05, 10.0))
    ours.sync_clock()

    def read_ours():
        book = Book()  # what read_balances does with E4's answer (the Unified Trading Account)
        book.unified(ours._call("GET", WALLET, {"accountType": "UNIFIED"}))
        return book.result([])

    exchange = ccxt.bybit(
        {"apiKey": credentials.api_key, "secret": credentials.secret, "enableRateLimit": False}
    )
    exchange.urls["api"] = dict.fromkeys(exchange.urls["api"], url)
    exchange.load_markets()  # once (11 instrument lists, the signed coin list), as every ccxt user does

    # The Unified Trading Account both ways (E4, GET /v5/account/wallet-balance?accountType=
    # UNIFIED): ours parsed into wallet lines, ccxt's fetch_balance(), which on its first call
    # also asks query-api and account/info whether the account is unified, then caches that.
    return BalanceCase(
        read_ours=read_ours,
        read_ccxt=exchange.fetch_balance,
        ours_calls=lambda: ours.calls,
        exchange=exchange,
        describe=lambda o, c: f"{len(o.lines)} lines (ours), {len(c['total'])} currencies (ccxt)",
        close=exchange.session.close,
        note=(
            "ours: E4 GET /v5/account/wallet-balance?accountType=UNIFIED parsed into unified-account lines "
            "(no Funding Account call); ccxt: fetch_balance(), the same GET (account type looked up "
            "once before timing), markets loaded once"
        ),
    )


VENUES: dict[str, VenueBench] = {
    "htx": VenueBench("htx", "import exchanges.venues.htx.client", _htx_sign, _htx_sandbox, _htx_balance),
    "binance": VenueBench(
        "binance", "import exchanges.venues.binance.client", _binance_sign, _binance_sandbox, _binance_balance
    ),
    "okx": VenueBench("okx", "import exchanges.venues.okx.client", _okx_sign, _okx_sandbox, _okx_balance),
    "bybit": VenueBench(
        "bybit", "import exchanges.venues.bybit.client", _bybit_sign, _bybit_sandbox, _bybit_balance
    ),
}


# --- (a) import time and RSS ------------------------------------------------------------------


def _run_child(statement: str) -> tuple[float, int]:
    """Wall seconds of a fresh interpreter importing `statement`, and its peak RSS in KiB."""
    started = time.perf_counter()
    done = subprocess.run(
        [python(), "-c", CHILD.format(statement=statement)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    return elapsed, int(done.stdout.strip().splitlines()[-1])


def bench_import(runs: int, venues: list[VenueBench]) -> dict[str, float]:
    """{statement: ms} and {statement: MB} keyed "ms:<statement>" and "mb:<statement>", the bare
    interpreter subtracted; each distinct statement measured once (ccxt is shared)."""
    statements = list(dict.fromkeys([BARE, *(s for v in venues for s in (v.ours_import, v.ccxt_import))]))
    for statement in statements:  # warm the page cache and the .pyc files
        _run_child(statement)
    walls: dict[str, list[float]] = {s: [] for s in statements}
    rss: dict[str, list[int]] = {s: [] for s in statements}
    for _ in range(runs):  # interleaved, so drift hits all alike
        for statement in statements:
            wall, kib = _run_child(statement)
            walls[statement].append(wall)
            rss[statement].append(kib)
    bare_ms = median(walls[BARE]) * 1000
    bare_mb = median(rss[BARE]) / 1024
    figure("import_bare_interpreter_ms", bare_ms, "ms", 1)
    figure("rss_bare_interpreter_mb", bare_mb, "MB", 1)
    out: dict[str, float] = {}
    for statement in statements[1:]:
        out[f"ms:{statement}"] = median(walls[statement]) * 1000 - bare_ms
        out[f"mb:{statement}"] = median(rss[statement]) / 1024 - bare_mb
    for venue in venues:
        figure(f"{venue.id}_import_ours_ms", out[f"ms:{venue.ours_import}"], "ms", 1)
        figure(f"{venue.id}_rss_ours_mb", out[f"mb:{venue.ours_import}"], "MB", 1)
    for statement in dict.fromkeys(v.ccxt_import for v in venues):  # once per distinct statement
        owners = [v.id for v in venues if v.ccxt_import == statement]
        prefix = "" if statement == "import ccxt" else f"{owners[0]}_"
        figure(f"{prefix}import_ccxt_ms", out[f"ms:{statement}"], "ms", 1)
        figure(f"{prefix}rss_ccxt_mb", out[f"mb:{statement}"], "MB", 1)
    note(f"median of {runs} fresh interpreters each, bare interpreter subtracted; issue: ccxt 250 ms, 78 MB")
    return out


# --- (b) signing ------------------------------------------------------------------------------


def _per_call_us(fn) -> float:
    timer = timeit.Timer(fn)
    loops, _ = timer.autorange()  # enough loops for >= 0.2 s
    loops = max(loops, 10_000)
    return min(timer.repeat(repeat=5, number=loops)) / loops * 1e6


def bench_signing(venue: VenueBench) -> dict[str, float]:
    case = venue.sign()
    # Both must produce the same, known signature, or the timing compares different work.
    ours_sig, ccxt_sig = case.ours_signature(), case.ccxt_signature()
    same = ours_sig == ccxt_sig == case.expected
    figure(f"{venue.id}_sign_signatures_agree", "yes" if same else f"NO (ours {ours_sig}, ccxt {ccxt_sig})")
    out = {"ours": _per_call_us(case.ours)}
    out.update({f"ours_{name}": _per_call_us(fn) for name, fn in case.extra.items()})
    out["ccxt"] = _per_call_us(case.ccxt)
    for name, value in out.items():
        figure(f"{venue.id}_sign_{name}_us", value, "us", 2)
    note(f"best of 5 timeit repeats; {case.note}" if case.note else "best of 5 timeit repeats")
    return out


# --- (c) CPU per balance read -----------------------------------------------------------------


def _serve_sandbox(conn, venue_id: str) -> None:
    """Child process: the venue's sandbox, its rate limits lifted, until the parent says stop."""
    serve_sandbox_until_told(conn, VENUES[venue_id].sandbox())


def _cpu_per_call_ms(call, n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    return (time.process_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000


def bench_balance(venue: VenueBench, n: int, rounds: int = 3) -> dict[str, float]:
    with sandbox_process(_serve_sandbox, venue.id) as (url, _):
        case = venue.balance(url)
        figure(f"{venue.id}_balance_lines_read", case.describe(case.read_ours(), case.read_ccxt()))
        ccxt_calls = [0]

        def count_ccxt(response, *args, **kwargs):
            ccxt_calls[0] += 1

        hooks = case.exchange.session.hooks["response"]
        hooks.append(count_ccxt)
        ours_before = case.ours_calls()
        for _ in range(30):  # warm up: connections, caches
            case.read_ours()
            case.read_ccxt()
        figure(
            f"{venue.id}_balance_http_calls_per_read_ours", (case.ours_calls() - ours_before) / 30, "calls", 1
        )
        figure(f"{venue.id}_balance_http_calls_per_read_ccxt", ccxt_calls[0] / 30, "calls", 1)
        hooks.remove(count_ccxt)

        cpu: dict[str, list[float]] = {"ours": [], "ccxt": []}
        wall: dict[str, list[float]] = {"ours": [], "ccxt": []}
        for _ in range(rounds):
            for name, call in (("ours", case.read_ours), ("ccxt", case.read_ccxt)):
                c, w = _cpu_per_call_ms(call, n)
                cpu[name].append(c)
                wall[name].append(w)
        case.close()

    out = {}
    for name in ("ours", "ccxt"):
        out[name] = median(cpu[name])
        figure(f"{venue.id}_balance_cpu_{name}_ms", out[name], "ms/read", 3)
        figure(f"{venue.id}_balance_wall_{name}_ms", median(wall[name]), "ms/read", 3)
    note(f"{n} reads each, median of {rounds} interleaved rounds; sandbox CPU not counted")
    if case.note:
        note(case.note)
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="balance reads per client per round")
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per import measurement")
    parser.add_argument("--venues", default=",".join(VENUES), help=f"comma-separated, of {', '.join(VENUES)}")
    args = parser.parse_args()
    names = [name.strip() for name in args.venues.split(",") if name.strip()]
    unknown = [name for name in names if name not in VENUES]
    if unknown or not names:
        parser.error(f"unknown venue {', '.join(unknown)}; known: {', '.join(VENUES)}")
    venues = [VENUES[name] for name in names]

    import ccxt

    figure("ccxt_version", ccxt.__version__)
    imports = bench_import(args.runs, venues)
    signs = {venue.id: bench_signing(venue) for venue in venues}
    balances = {venue.id: bench_balance(venue, args.calls) for venue in venues}

    for venue in venues:
        ours, theirs = venue.ours_import, venue.ccxt_import
        target(
            f"{venue.id}_import_time_ratio",
            _ratio(imports[f"ms:{ours}"], imports[f"ms:{theirs}"]),
            IMPORT_RATIO_MAX,
        )
        target(
            f"{venue.id}_import_rss_ratio",
            _ratio(imports[f"mb:{ours}"], imports[f"mb:{theirs}"]),
            RSS_RATIO_MAX,
        )
        target(
            f"{venue.id}_sign_time_ratio",
            _ratio(signs[venue.id]["ours"], signs[venue.id]["ccxt"]),
            SIGN_RATIO_MAX,
        )
        target(
            f"{venue.id}_balance_cpu_ccxt_over_ours",
            _ratio(balances[venue.id]["ccxt"], balances[venue.id]["ours"]),
            BALANCE_CPU_ADVANTAGE_MIN,
            at_least=True,
        )


if __name__ == "__main__":
    main()
