"""Where a refresh's CPU goes (issue #12, target 1): N connected keys of one venue (default HTX)
refreshed one after the other in this process, in one thread, against the venue's sandbox in a
child process (no latency), through real Redis and PostgreSQL, under cProfile. Not a figure for
docs/performance.md (a profiler slows what it measures): a map of the hot path, to compare
before and after a change.

Run from the repository root: .venv/bin/python bench/refresh_profile.py [--keys N] [--batch N]
    [--top N] [--sort cumulative|tottime] [--latency-ms N] [--venue htx|binance|okx|bybit]
    (CHECK_THREADS=0: no check threads)

Prints our CPU per refresh without the profiler (a first pass) and with it, then the profile.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, figure, note, postgres_database, sandbox_process  # noqa: E402
from refresh_scale import VENUES, _seed, _serve_sandbox  # noqa: E402


def _make_due() -> None:
    from django.utils import timezone

    from exchanges.models import ExchangeConnection

    ExchangeConnection.objects.update(next_check_at=timezone.now(), claimed_until=None)


def _refresh_all(ids: list[int], batch: int) -> None:
    from exchanges import batches

    for start in range(0, len(ids), batch):
        batches.connections_check(connection_ids=ids[start : start + batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--batch", type=int, default=20, help="checks per task message")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--latency-ms", type=int, default=0, help="the sandbox's latency on every call")
    parser.add_argument("--venue", choices=sorted(VENUES), default="htx")
    args = parser.parse_args()

    from bitsgap_clone import embedded_redis

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = f"bench_profile_{os.getpid()}"
    database_url = postgres_database(base_url, db_name, create=True)
    redis_process, redis_url = embedded_redis.start()
    try:
        venue = VENUES[args.venue]
        with sandbox_process(_serve_sandbox, venue.id, range(args.keys), args.latency_ms) as (url, _pid):
            os.environ.update(
                DEBUG="0",
                SECRET_KEY="bench-secret-key-not-for-production-0123456789abcdef",
                FERNET_KEYS="bench-fernet-key",
                KEY_FINGERPRINT_SECRET="bench-fingerprint-secret",
                SECURE_SSL_REDIRECT="0",
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                LOG_LEVEL="WARNING",
                **{f"{venue.resolve().env_prefix}_API_URL": url},
                PYTHONPATH=str(ROOT),
            )
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")
            import django

            django.setup()
            from django.core.management import call_command
            from django.db import connection

            from exchanges.models import ExchangeConnection

            call_command("migrate", verbosity=0)
            _seed(args.keys, [venue])
            ids = list(ExchangeConnection.objects.order_by("pk").values_list("pk", flat=True))
            _refresh_all(ids[: args.batch], args.batch)  # warm: imports, clock, prices, connections
            _make_due()
            cpu0 = time.process_time()
            _refresh_all(ids, args.batch)
            plain_ms = (time.process_time() - cpu0) * 1000 / len(ids)
            _make_due()
            profile = cProfile.Profile(time.process_time)  # CPU, not the wait for the sandbox
            cpu0 = time.process_time()
            profile.enable()
            _refresh_all(ids, args.batch)
            profile.disable()
            profiled_ms = (time.process_time() - cpu0) * 1000 / len(ids)
            figure("profile_keys", len(ids), f"{venue.resolve().name} connections")
            figure("profile_batch", args.batch, "checks per call")
            figure("profile_cpu_ms_per_refresh", plain_ms, "ms (no profiler; sandbox's CPU not included)")
            figure("profile_cpu_ms_per_refresh_profiled", profiled_ms, "ms")
            figure(
                "profile_queries_per_refresh",
                ExchangeConnection.objects.count() and _queries_per_refresh(ids, args.batch),
                "queries",
            )
            pstats.Stats(profile).strip_dirs().sort_stats(args.sort).print_stats(args.top)
            connection.close()
    finally:
        redis_process.terminate()
        postgres_database(base_url, db_name, create=False)
        note("done")


def _queries_per_refresh(ids: list[int], batch: int) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _make_due()
    sample = ids[: batch * 5]
    with CaptureQueriesContext(connection) as captured:
        _refresh_all(sample, batch)
    return len(captured.captured_queries) / len(sample)


if __name__ == "__main__":
    main()
