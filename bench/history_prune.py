"""Snapshot history: pruning 1,000,000 snapshots, the Python walk against the SQL prune, and the
bytes a year of history costs under the retention rules.

Run from the repository root: .venv/bin/python bench/history_prune.py [--connections N]
    [--per-connection N] [--size-connections N]

PostgreSQL only: a database of its own (`bench_prune`, created and dropped here) on the server
DATABASE_URL names (default postgres://postgres@127.0.0.1:5432/test). No Redis is used.

1. Prune: --connections (10,000) x --per-connection (100) snapshots with 2 balance lines each,
   inserted with INSERT ... SELECT generate_series. Per connection: 30 in the last day (all
   kept: 18 every 5 minutes up to now, 12 every 5 minutes in the hour before it is a day old),
   30 every 5 minutes two days ago (kept: the newest of each UTC hour),
   30 as 15 pairs on the same day between 10 and 332 days ago (kept: one of each pair), 10 older
   than 365 days (none kept); the newest is the connection's latest. Each connection's times
   are shifted by 0-299 s so buckets do not line up. The same seed is pruned by the Python walk
   snapshots_prune was before (copied below as the baseline) and, after a reseed, by the SQL
   prune: first run, a second run right after (nothing to delete), and a run an hour later
   after one more hour of 5-minute refreshes (12 snapshots per connection) has arrived: the 12
   that were nearly a day old have aged into hour buckets, the steady hourly case (10-11
   deleted per connection). Both must delete the same number of rows.
2. Size: the snapshots a year of 5-minute refreshes leaves under the retention rules (computed
   by applying the rules to 105,120 five-minute times in Python: 288 + 144 + 358 = 790 per
   connection at SNAPSHOT_HOURLY_DAYS=7, SNAPSHOT_DAILY_DAYS=365) are inserted for
   --size-connections (1,000) connections with 10 balance lines each, and snapshots_prune is
   run on them to confirm it deletes nothing (so this is what pruning keeps). Measured:
   pg_total_relation_size (heap, TOAST and indexes) of the snapshot and line tables for those
   connections. Computed: per connection, and x 10,000 connections (linear: every connection
   holds the same rows; the connection table is not counted).

Prints `name: value unit` and `target ...: MET|NOT MET` lines; exits 0 either way. The targets
are this script's own (issue #6 sets none for pruning).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, figure, note, postgres_database, target  # noqa: E402

DB_NAME = "bench_prune"
SQL_FIRST_RATIO_MAX = 0.2  # the SQL prune's first run at most a fifth of the walk's time
SECOND_RUN_S_MAX = 1.0  # nothing to delete: near-instant
HOURLY_RUN_S_MAX = 5.0  # an hourly prune for 10,000 connections
FIVE_MINUTES = timedelta(minutes=5)
YEAR_TICKS = 365 * 24 * 12
CURRENCIES = ["usdt", "btc", "eth", "sol", "xrp", "trx", "doge", "ada", "ltc", "ht"]


# --- the baseline: snapshots_prune as it was before it moved to SQL ----------------------------


def python_walk_prune(*, now: datetime) -> int:
    from django.conf import settings

    from exchanges.models import BalanceSnapshot, ExchangeConnection

    keep_all_after = now - timedelta(days=1)
    hourly_after = now - timedelta(days=settings.SNAPSHOT_HOURLY_DAYS)
    daily_after = now - timedelta(days=settings.SNAPSHOT_DAILY_DAYS)
    latest = set(
        ExchangeConnection.objects.exclude(latest_snapshot=None).values_list("latest_snapshot", flat=True)
    )
    kept: set[tuple[int, str]] = set()
    doomed: list[int] = []
    rows = BalanceSnapshot.objects.filter(taken_at__lt=keep_all_after).order_by("connection_id", "-taken_at")
    for pk, connection_id, taken_at in rows.values_list("pk", "connection_id", "taken_at").iterator():
        if pk in latest:
            continue
        if taken_at < daily_after:
            doomed.append(pk)
            continue
        bucket = taken_at.strftime("%Y%m%d%H" if taken_at >= hourly_after else "%Y%m%d")
        if (connection_id, bucket) in kept:
            doomed.append(pk)
        else:
            kept.add((connection_id, bucket))
    for start in range(0, len(doomed), 500):
        BalanceSnapshot.objects.filter(pk__in=doomed[start : start + 500]).delete()
    return len(doomed)


# --- seeding ------------------------------------------------------------------------------------


def _tables():
    from exchanges.models import BalanceLine, BalanceSnapshot, ExchangeConnection, SnapshotPruneMark

    return (
        BalanceSnapshot._meta.db_table,
        BalanceLine._meta.db_table,
        ExchangeConnection._meta.db_table,
        SnapshotPruneMark._meta.db_table,
    )


def _connections(n: int) -> None:
    from django.contrib.auth import get_user_model

    from exchanges.models import ExchangeConnection, Status

    user, _ = get_user_model().objects.get_or_create(
        username="bench", email="bench@example.com", password="!"
    )
    ExchangeConnection.objects.bulk_create(
        (
            ExchangeConnection(
                owner=user,
                status=Status.CONNECTED,
                established=True,
                access_key_head="bnch",
                access_key_tail=f"{i}",
            )
            for i in range(n)
        ),
        batch_size=2000,
    )


def _fresh(connections_n: int) -> None:
    """No history, and `connections_n` new connections (ids from 1)."""
    from django.db import connection

    snapshots, lines, connections, marks = _tables()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {connections}, {lines}, {snapshots}, {marks} RESTART IDENTITY CASCADE")
    _connections(connections_n)
    _vacuum(connections)


def _vacuum(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def _insert_snapshots(times_sql: str, params: list, lines: int) -> None:
    """Insert one snapshot per (connection, time) that `times_sql` yields (columns connection_id,
    taken_at) with `lines` balance lines each."""
    from django.db import connection

    snapshots, line_table, _, _ = _tables()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {snapshots}
                  (connection_id, taken_at, total_usdt, total_btc, account_types, accounts_unread,
                   unpriced, other_lines)
                SELECT connection_id, taken_at, '12345.678901234567', '0.123456789012345678',
                       '["spot"]', '[]', '[]', '[]'
                FROM ({times_sql}) t RETURNING id""",
            params,
        )
        ids = [row[0] for row in cursor.fetchall()]
        if lines:
            cursor.execute(
                f"""INSERT INTO {line_table}
                      (snapshot_id, account_type, currency, available, in_orders, debt, total,
                       price_usdt, value_usdt)
                    SELECT s, 'spot', (%s::text[])[g], '1.234567890123456789', '0.5', '0',
                           '1.734567890123456789', '61234.56789', '106213.0987654321'
                    FROM unnest(%s::bigint[]) s CROSS JOIN generate_series(1, %s) g""",
                [CURRENCIES, ids, lines],
            )


def _set_latest() -> None:
    from django.db import connection

    snapshots, _, connections, _ = _tables()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {connections} c SET latest_snapshot_id = l.id
                FROM (SELECT DISTINCT ON (connection_id) connection_id, id FROM {snapshots}
                      ORDER BY connection_id, taken_at DESC, id DESC) l
                WHERE c.id = l.connection_id"""
        )


def _seed_prune_case(now: datetime, per_connection: int) -> None:
    """The 100-per-connection layout in the docstring (scaled to --per-connection)."""
    from django.db import connection

    _, _, connections, _ = _tables()
    q = per_connection // 10  # 10 for 100 per connection
    times = f"""
        SELECT c.id AS connection_id,
               %s::timestamptz - make_interval(secs => (c.id * 7919) %% 300) - CASE
                 WHEN i < {q + q // 5 * 4} THEN i * interval '5 minutes'
                 WHEN i < {3 * q} THEN interval '1 day' - (i - {q + q // 5 * 4 - 1}) * interval '5 minutes'
                                       - interval '1 second'
                 WHEN i < {6 * q} THEN interval '2 days' + (i - {3 * q}) * interval '5 minutes'
                 WHEN i < {9 * q} THEN make_interval(days => 10 + ((i - {6 * q}) / 2) * (322 / {max(1, 3 * q // 2 - 1)}))
                                       + (i %% 2) * interval '2 hours'
                 ELSE make_interval(days => 370 + (i - {9 * q}) * 3)
               END AS taken_at
        FROM {connections} c CROSS JOIN generate_series(0, {per_connection - 1}) i"""  # noqa: E501
    started = time.perf_counter()
    _insert_snapshots(times, [now], lines=2)
    _set_latest()
    snapshots, lines, connections, _ = _tables()
    _vacuum(snapshots, lines, connections)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {snapshots}")
        n = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {lines}")
        m = cursor.fetchone()[0]
    note(f"seeded {n:,} snapshots and {m:,} lines in {time.perf_counter() - started:.1f} s")


def _one_more_hour(now: datetime) -> None:
    """Every connection refreshed every 5 minutes for the hour after `now`, 2 lines each."""
    _, _, connections, _ = _tables()
    times = f"""
        SELECT c.id AS connection_id,
               %s::timestamptz + k * interval '5 minutes' - make_interval(secs => (c.id * 7919) %% 300)
                 AS taken_at
        FROM {connections} c CROSS JOIN generate_series(1, 12) k"""
    _insert_snapshots(times, [now], lines=2)
    _set_latest()


def _timed(prune, now: datetime) -> tuple[int, float]:
    started = time.perf_counter()
    deleted = prune(now=now)
    return deleted, time.perf_counter() - started


def _count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


# --- size of a year -----------------------------------------------------------------------------


def _year_kept_times(now: datetime) -> list[datetime]:
    """Of a year of 5-minute refreshes ending at `now`, the times the retention rules keep."""
    from django.conf import settings

    keep_all_after = now - timedelta(days=1)
    hourly_after = now - timedelta(days=settings.SNAPSHOT_HOURLY_DAYS)
    daily_after = now - timedelta(days=settings.SNAPSHOT_DAILY_DAYS)
    kept, seen = [], set()
    for k in range(YEAR_TICKS):  # newest first, as the prune walks them
        t = now - k * FIVE_MINUTES
        if t >= keep_all_after:
            kept.append(t)
            continue
        if t < daily_after:
            break
        bucket = t.strftime("%Y%m%d%H" if t >= hourly_after else "%Y%m%d")
        if bucket not in seen:
            seen.add(bucket)
            kept.append(t)
    return kept


def _measure_size(now: datetime, connections_n: int) -> None:
    from django.db import connection

    from exchanges.retention import snapshots_prune

    snapshots, lines, connections, _ = _tables()
    kept = _year_kept_times(now)
    figure("year_snapshots_kept_per_connection", len(kept))
    _fresh(connections_n)
    started = time.perf_counter()
    times = f"SELECT c.id AS connection_id, t AS taken_at FROM {connections} c, unnest(%s::timestamptz[]) t"
    _insert_snapshots(times, [kept], lines=10)
    _set_latest()
    _vacuum(snapshots, lines)
    n, m = _count(snapshots), _count(lines)
    seconds = time.perf_counter() - started
    note(f"seeded {n:,} snapshots and {m:,} lines for {connections_n:,} connections in {seconds:.1f} s")
    deleted = snapshots_prune(now=now)
    figure("year_prune_deleted", deleted, "rows")
    with connection.cursor() as cursor:
        sizes = {}
        for name, table in (("snapshot", snapshots), ("line", lines)):
            cursor.execute(
                "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)",
                [table, table, table],
            )
            sizes[name] = cursor.fetchone()
    total = sizes["snapshot"][0] + sizes["line"][0]
    for name, (whole, heap, indexes) in sizes.items():
        figure(f"year_{name}_table_mb_measured", whole / 1e6, "MB", 1)
        figure(f"year_{name}_heap_mb_measured", heap / 1e6, "MB", 1)
        figure(f"year_{name}_indexes_mb_measured", indexes / 1e6, "MB", 1)
    figure(f"year_bytes_measured_{connections_n}_connections", total / 1e6, "MB", 1)
    per_connection = total / connections_n
    figure("year_bytes_per_connection_computed", per_connection / 1e6, "MB", 3)
    figure("year_bytes_per_snapshot_with_10_lines_computed", total / n, "B", 0)
    figure("year_bytes_10000_connections_computed", per_connection * 10_000 / 1e9, "GB", 2)
    figure("year_rows_10000_connections_computed", len(kept) * 10_000, "snapshots")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--per-connection", type=int, default=100)
    parser.add_argument("--size-connections", type=int, default=1_000)
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base_url.startswith(("postgres://", "postgresql://")):
        note("history_prune needs PostgreSQL; set DATABASE_URL to a postgres:// URL")
        return
    try:
        database_url = postgres_database(base_url, DB_NAME, create=True)
    except Exception as exc:  # noqa: BLE001 (any reason: say it and stop)
        note(f"history_prune needs PostgreSQL ({type(exc).__name__}: {exc}); set DATABASE_URL")
        return
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bitsgap_clone.settings",
            "ENV_FILE": "/dev/null",
            "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
            "FERNET_KEYS": "bench-fernet-key",
            "KEY_FINGERPRINT_SECRET": "bench-fingerprint-secret",
            "DATABASE_URL": database_url,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing here talks to Redis
            "SNAPSHOT_HOURLY_DAYS": "7",
            "SNAPSHOT_DAILY_DAYS": "365",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from exchanges.retention import snapshots_prune

        call_command("migrate", verbosity=0)
        snapshots, lines, _, _ = _tables()
        now = datetime.now(UTC).replace(microsecond=0)
        total = args.connections * args.per_connection
        note(f"{args.connections:,} connections x {args.per_connection} snapshots = {total:,}, 2 lines each")

        results = {}
        for name, prune in (("python", python_walk_prune), ("sql", snapshots_prune)):
            _fresh(args.connections)
            _seed_prune_case(now, args.per_connection)
            first = _timed(prune, now)
            left = _count(snapshots), _count(lines)
            second = _timed(prune, now)
            _one_more_hour(now)
            hourly = _timed(prune, now + timedelta(hours=1))
            results[name] = (first, second, hourly, left)
            figure(f"prune_{name}_first_deleted", first[0], "rows")
            figure(f"prune_{name}_first_s", first[1], "s", 2)
            figure(f"prune_{name}_left", left[0], "snapshots")
            figure(f"prune_{name}_lines_left", left[1], "lines")
            figure(f"prune_{name}_second_deleted", second[0], "rows")
            figure(f"prune_{name}_second_s", second[1], "s", 3)
            figure(f"prune_{name}_hour_later_deleted", hourly[0], "rows")
            figure(f"prune_{name}_hour_later_s", hourly[1], "s", 3)

        (py_first, _, py_hourly, py_left), (sql_first, sql_second, sql_hourly, sql_left) = (
            results["python"],
            results["sql"],
        )
        same = py_first[0] == sql_first[0] and py_left == sql_left and py_hourly[0] == sql_hourly[0]
        figure("prune_same_rows_deleted", "yes" if same else "NO")
        figure("prune_sql_vs_python_first_ratio", sql_first[1] / py_first[1], "x", 3)
        figure("prune_sql_vs_python_hour_later_ratio", sql_hourly[1] / py_hourly[1], "x", 3)
        target("prune_sql_first_vs_python_ratio", sql_first[1] / py_first[1], SQL_FIRST_RATIO_MAX, digits=3)
        target("prune_sql_second_run_s", sql_second[1], SECOND_RUN_S_MAX, digits=3)
        target("prune_sql_hour_later_s", sql_hourly[1], HOURLY_RUN_S_MAX, digits=3)

        _measure_size(now, args.size_connections)
    finally:
        from django.db import connections

        connections.close_all()
        postgres_database(base_url, DB_NAME, create=False)


if __name__ == "__main__":
    main()
