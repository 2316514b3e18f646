"""My Exchanges under load (issue 6, "Page"): req/s, p50/p95/p99 and SQL queries per page.

Run from the repository root: .venv/bin/python bench/page_load.py [--duration S] [--concurrency 2,4]

1. A throwaway SQLite database under /tmp (or the PostgreSQL in DATABASE_URL when it is set:
   the rows seeded there are deleted at the end) is migrated and seeded with bulk_create:
   200 users x 25 connections, each Connected with a latest snapshot of 40 balance lines.
2. SQL queries per page, in this process with Django's test client, for users with 0, 1 and 50
   connections (and for the status fragment).
3. The site is served with gunicorn (2 sync workers, DEBUG off), as in production.
4. Users are logged in by creating their sessions directly (SessionStore + auth keys); this
   process then loads /exchanges/ and /exchanges/<id>/row/ (the status fragment, as htmx polls
   it) with their cookies, round-robin over all users: with `wrk` when /usr/bin/wrk exists
   (`apt-get install wrk`), otherwise with threads using http.client keep-alive connections
   (gunicorn's sync workers close each connection after a response; http.client then
   reconnects); `--client python|wrk` forces one. The load generator shares the 2 cores with
   the server: its own CPU use is printed beside each figure (wrk: ~1-2 % of a core; the
   Python client: far more, which lowers the server's share of the machine).
5. Before the page is measured, each user's page is loaded --prime times (default 5): each
   worker keeps the rows it rendered (exchanges.row_cache), so the levels measure pages whose
   rows are kept; the CPU of those first visits is printed as page_prime_server_cpu_ms_per_req.

Targets: issue 6's rate and p95 at the busiest level within it, and issue 12's server CPU per
page (<= 10 ms) and p95 (<= 15 ms) at the lightest level.

Prints `name: value unit` and `target ...: MET|NOT MET` lines; exits 0 either way.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    ROOT,
    cores,
    figure,
    free_port,
    percentile,
    python,
    start_gunicorn,
    stop_process,
    target,
)

WRK = Path("/usr/bin/wrk")
PAGE_RPS_PER_CORE_MIN = 300.0
PAGE_P95_MS_MAX = 25.0
# Issue 12, target 6: server CPU per page and p95 with 2 connections (one per worker).
PAGE_CPU_MS_MAX = 10.0
PAGE_P95_MS_C2_MAX = 15.0
FRAGMENT_P95_MS_MAX = 10.0
QUERY_COUNT_SIZES = (0, 1, 50)
WORKERS = 2


# --- environment ------------------------------------------------------------------------------


def configure_environment(tmpdir: Path) -> tuple[bool, subprocess.Popen | None]:
    """Production-like settings for this process and the server it starts. Returns whether the
    database is our throwaway SQLite file, and the embedded Redis we started (if any)."""
    throwaway = not os.environ.get("DATABASE_URL")
    env = {
        "DJANGO_SETTINGS_MODULE": "bitsgap_clone.settings",
        "ENV_FILE": "/dev/null",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FERNET_KEYS": secrets.token_urlsafe(32),
        "KEY_FINGERPRINT_SECRET": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    if throwaway:
        env["DATABASE_URL"] = f"sqlite:///{tmpdir / 'bench-page.sqlite3'}"
    os.environ.update(env)
    redis_process = None
    if not os.environ.get("REDIS_URL"):
        from bitsgap_clone import embedded_redis

        redis_process, os.environ["REDIS_URL"] = embedded_redis.start()
    return throwaway, redis_process


def migrate() -> None:
    subprocess.run(
        [python(), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


# --- seeding ----------------------------------------------------------------------------------


def seed_user(username: str):
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    # "!" is an unusable password: nobody logs in with it; sessions are made directly.
    return user_model(username=username, email=f"{username}@bench.invalid", password="!")


def seed_connections(users, per_user: int, assets: int) -> None:
    """Like tests/exchanges/test_my_exchanges.py::_seed, in bulk: each connection Connected with
    a latest snapshot of `assets` balance lines."""
    from django.db import transaction
    from django.db.models import OuterRef, Subquery
    from django.utils import timezone

    from exchanges.models import BalanceLine, BalanceSnapshot, ExchangeConnection, Status

    now = timezone.now()
    with transaction.atomic():
        connections = ExchangeConnection.objects.bulk_create(
            (
                ExchangeConnection(
                    owner=user,
                    status=Status.CONNECTED,
                    established=True,
                    total_usdt=Decimal(assets),
                    total_btc=Decimal("0.001"),
                    access_key_head="seed",
                    access_key_tail=f"{i:04d}",
                    last_refreshed_at=now,
                    last_verified_at=now,
                )
                for user in users
                for i in range(per_user)
            ),
            batch_size=500,
        )
        snapshots = BalanceSnapshot.objects.bulk_create(
            (BalanceSnapshot(connection=c, total_usdt=Decimal(assets)) for c in connections),
            batch_size=500,
        )
        chunk = 100
        for start in range(0, len(snapshots), chunk):
            BalanceLine.objects.bulk_create(
                BalanceLine(
                    snapshot=snapshot,
                    currency=f"c{a}",
                    available=Decimal(1),
                    in_orders=Decimal(0),
                    total=Decimal(1),
                    price_usdt=Decimal(1),
                    value_usdt=Decimal(1),
                )
                for snapshot in snapshots[start : start + chunk]
                for a in range(assets)
            )
        latest = BalanceSnapshot.objects.filter(connection=OuterRef("pk")).order_by("-id").values("pk")[:1]
        ExchangeConnection.objects.filter(pk__in=[c.pk for c in connections]).update(
            latest_snapshot=Subquery(latest)
        )


# --- SQL queries per page ---------------------------------------------------------------------


def query_counts(prefix: str, assets: int, session_keys: list[str]) -> dict[int, int]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from exchanges.models import ExchangeConnection

    user_model = get_user_model()
    users = user_model.objects.bulk_create([seed_user(f"{prefix}q{n}") for n in QUERY_COUNT_SIZES])
    counts: dict[int, int] = {}
    for n, user in zip(QUERY_COUNT_SIZES, users, strict=True):
        if n:
            seed_connections([user], n, assets)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        session_keys.append(client.session.session_key)
        client.get("/exchanges/")  # warm the session, as the test does
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/exchanges/")
        shown = response.content.decode().count('data-testid="connection"')
        counts[n] = len(captured)
        figure(
            f"page_queries_{n}_connections", counts[n], f"queries (HTTP {response.status_code}, {shown} rows)"
        )
        if n == 1:
            pk = ExchangeConnection.objects.get(owner=user).pk
            with CaptureQueriesContext(connection) as captured:
                response = client.get(f"/exchanges/{pk}/row/", HTTP_HX_REQUEST="true")
            figure("fragment_queries", len(captured), f"queries (HTTP {response.status_code})")
    return counts


# --- sessions ---------------------------------------------------------------------------------


def login_sessions(users) -> list[str]:
    """A logged-in session per user, created directly: the session keys to send as cookies."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.middleware import LOGIN_AT

    keys = []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = user._meta.pk.value_to_string(user)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session[LOGIN_AT] = time.time()
        session.create()
        keys.append(session.session_key)
    return keys


# --- the server -------------------------------------------------------------------------------


def start_server(port: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    import gunicorn

    process = start_gunicorn("bitsgap_clone.wsgi:application", port, log_path, workers=WORKERS)
    return process, f"gunicorn {gunicorn.__version__}"


def server_cpu_seconds(pid: int) -> float | None:
    """utime + stime of the server process and its direct children (gunicorn's workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for p in [str(pid), *children]:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --- load -------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    client_cpu_s: float | None = None


def python_load(port, targets, concurrency: int, duration: float, warmup: float) -> LoadResult:
    """`concurrency` threads, each on its own keep-alive connection, for warmup + duration."""
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        samples = per_thread[index]
        k = index
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                break
            path, headers = targets[k % len(targets)]
            k += concurrency
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status in (200, 286)
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            ended = time.perf_counter()
            if began >= measure_from and ended <= stop_at:
                if ok:
                    samples.append((ended - began) * 1000)
                else:
                    errors[index] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu = time.process_time()
    for t in threads:
        t.join(duration + warmup + 30)
    cpu = time.process_time() - cpu
    latencies = sorted(x for samples in per_thread for x in samples)
    return LoadResult(len(latencies), duration, latencies, sum(errors), cpu)


WRK_SCRIPT = """
local targets = {{ {targets} }}
local i = 0
request = function()
  i = i + 1
  local t = targets[(i % #targets) + 1]
  return wrk.format("GET", t[1], t[2])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def wrk_load(port, targets, concurrency: int, duration: float, warmup: float, tmpdir: Path) -> LoadResult:
    """wrk with a Lua script cycling over the users' cookies; reports p50/p95/p99 itself."""

    def lua(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    rows = ", ".join(
        "{" + lua(path) + ", {" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in headers.items()) + "}}"
        for path, headers in targets
    )
    script = tmpdir / "bench.lua"
    script.write_text(WRK_SCRIPT.format(targets=rows))
    base = [str(WRK), "-t", str(min(2, concurrency)), "-c", str(concurrency), "-s", str(script)]
    url = f"http://127.0.0.1:{port}/"
    if warmup > 0:
        subprocess.run([*base, "-d", f"{max(1, round(warmup))}s", url], check=True, capture_output=True)
    before = os.times()
    done = subprocess.run(
        [*base, "-d", f"{round(duration)}s", "--timeout", "10s", url],
        check=True,
        capture_output=True,
        text=True,
    )
    after = os.times()
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    count, micros, p50, p95, p99, errors = (int(x) for x in line.split()[1:])
    result = LoadResult(count, micros / 1e6, [], errors)
    result.latencies_ms = [p50 / 1000, p95 / 1000, p99 / 1000]  # already the percentiles
    result.client_cpu_s = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    return result


@dataclass
class Level:
    concurrency: int
    rps: float
    p50: float
    p95: float
    p99: float
    cpu_ms: float = float("nan")  # server CPU per request (an upper bound: warmup included)


def measure(name, server, port, targets, levels, duration, warmup, tmpdir, use_wrk: bool) -> list[Level]:
    out = []
    for c in levels:
        cpu_before = server_cpu_seconds(server.pid)
        if use_wrk:
            result = wrk_load(port, targets, c, duration, warmup, tmpdir)
            p50, p95, p99 = result.latencies_ms
        else:
            result = python_load(port, targets, c, duration, warmup)
            lat = result.latencies_ms
            p50, p95, p99 = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99)
        cpu_after = server_cpu_seconds(server.pid)
        rps = result.requests / result.seconds
        level = Level(c, rps, p50, p95, p99)
        out.append(level)
        prefix = f"{name}_c{c}"
        figure(f"{prefix}_requests", result.requests, "requests")
        figure(f"{prefix}_errors", result.errors, "errors")
        figure(f"{prefix}_req_per_s", rps, "req/s", 1)
        figure(f"{prefix}_req_per_s_per_core", rps / cores(), "req/s/core", 1)
        figure(f"{prefix}_p50_ms", p50, "ms", 2)
        figure(f"{prefix}_p95_ms", p95, "ms", 2)
        figure(f"{prefix}_p99_ms", p99, "ms", 2)
        if cpu_before is not None and cpu_after is not None and result.requests:
            # The server's CPU over warmup + run, so per request it is an upper bound.
            total = result.requests * (duration + warmup) / duration
            level.cpu_ms = (cpu_after - cpu_before) / total * 1000
            figure(f"{prefix}_server_cpu_ms_per_req", level.cpu_ms, "ms/req", 2)
        if result.client_cpu_s is not None:
            figure(
                f"{prefix}_loadgen_cpu_pct", result.client_cpu_s / result.seconds * 100, "% of one core", 0
            )
    return out


def answers(port: int, path: str, headers: dict) -> bool:
    """One GET, waited for: 200 (or htmx's 286)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status in (200, 286)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def prime(server, port, targets, rounds: int) -> None:
    """Load every user's page `rounds` times (2 threads), so that both workers have kept the rows
    they show; the CPU of these first visits is printed, as the cost of a page not yet kept."""
    if rounds <= 0:
        return
    cpu_before = server_cpu_seconds(server.pid)
    queue = [t for _ in range(rounds) for t in targets]
    lock = threading.Lock()
    count = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                path, headers = queue.pop(0)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                count[0] += 1
            if response.will_close:
                conn.close()
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu_after = server_cpu_seconds(server.pid)
    figure("page_prime_requests", count[0], f"requests ({rounds} per user)")
    if cpu_before is not None and cpu_after is not None and count[0]:
        figure("page_prime_server_cpu_ms_per_req", (cpu_after - cpu_before) / count[0] * 1000, "ms/req", 2)


def pick(levels: list[Level], p95_limit: float) -> Level:
    """The busiest level whose p95 is within the limit, else the lightest level."""
    within = [x for x in levels if x.p95 <= p95_limit]
    return max(within, key=lambda x: x.rps) if within else min(levels, key=lambda x: x.concurrency)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--connections", type=int, default=25, help="connections per user")
    parser.add_argument("--assets", type=int, default=40, help="balance lines per connection")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per load level")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--concurrency", default="2,4", help="comma-separated connection counts")
    parser.add_argument(
        "--prime",
        type=int,
        default=5,
        help="visits per user's page before the page is measured (each worker keeps the rows it "
        "rendered: exchanges.row_cache); their CPU is printed as page_prime_*",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when /usr/bin/wrk exists (auto), else Python threads",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.client == "wrk" and not WRK.exists():
        raise SystemExit(f"{WRK} not found (apt-get install wrk)")
    use_wrk = args.client == "wrk" or (args.client == "auto" and WRK.exists())

    tmpdir = Path(tempfile.mkdtemp(prefix="bench-page-", dir="/tmp"))
    throwaway, redis_process = configure_environment(tmpdir)
    server = None
    prefix = f"bench{os.getpid()}-"
    session_keys: list[str] = []
    django_ready = False
    try:
        started = time.perf_counter()
        migrate()
        import django

        django.setup()
        django_ready = True
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.db.models import Min

        from exchanges.models import ExchangeConnection

        figure("database", connection.vendor)
        figure("migrate_s", time.perf_counter() - started, "s", 1)

        started = time.perf_counter()
        users = get_user_model().objects.bulk_create(
            [seed_user(f"{prefix}{i}") for i in range(args.users)], batch_size=500
        )
        seed_connections(users, args.connections, args.assets)
        figure(
            "seeded",
            f"{args.users} users x {args.connections} connections x {args.assets} assets "
            f"({args.users * args.connections * args.assets} balance lines)",
        )
        figure("seed_s", time.perf_counter() - started, "s", 1)

        counts = query_counts(prefix, args.assets, session_keys)

        load_keys = login_sessions(users)
        session_keys += load_keys
        first = dict(
            ExchangeConnection.objects.filter(owner__in=users)
            .values("owner_id")
            .annotate(first=Min("id"))
            .values_list("owner_id", "first")
        )
        cookie = settings.SESSION_COOKIE_NAME
        page_targets = [("/exchanges/", {"Cookie": f"{cookie}={key}"}) for key in load_keys]
        fragment_targets = [
            (f"/exchanges/{first[user.pk]}/row/", {"Cookie": f"{cookie}={key}", "HX-Request": "true"})
            for user, key in zip(users, load_keys, strict=True)
        ]
        connection.close()  # the server's processes use the database from here on

        port = free_port()
        server, kind = start_server(port, tmpdir / "server.log")
        figure("server", kind)
        figure("server_workers", WORKERS, "processes")
        figure(
            "load_generator",
            "wrk"
            if use_wrk
            else "python http.client threads" + ("" if WRK.exists() else " (wrk not installed)"),
        )
        figure("cores", cores(), "cores")
        from django.conf import settings as django_settings

        figure("conn_max_age", django_settings.DATABASES["default"]["CONN_MAX_AGE"], "s")

        # The page and the fragment answer before anything is timed (each request waited for:
        # a worker's first one loads the app, seconds on a busy machine).
        if not all(answers(port, path, headers) for path, headers in (page_targets[0], fragment_targets[0])):
            sys.stderr.write((tmpdir / "server.log").read_text(errors="replace")[-3000:])
            raise SystemExit("the server did not answer the logged-in page with 200")

        prime(server, port, page_targets, args.prime)
        page = measure(
            "page", server, port, page_targets, levels, args.duration, args.warmup, tmpdir, use_wrk
        )
        fragment = measure(
            "fragment", server, port, fragment_targets, levels, args.duration, args.warmup, tmpdir, use_wrk
        )

        best = pick(page, PAGE_P95_MS_MAX)
        figure("page_target_level", f"c{best.concurrency}")
        target("page_req_per_s_per_core", best.rps / cores(), PAGE_RPS_PER_CORE_MIN, at_least=True, digits=1)
        target("page_p95_ms", best.p95, PAGE_P95_MS_MAX)
        c2 = min(page, key=lambda x: x.concurrency)
        target(f"page_server_cpu_ms_per_req_c{c2.concurrency}", c2.cpu_ms, PAGE_CPU_MS_MAX)
        target(f"page_p95_ms_c{c2.concurrency}", c2.p95, PAGE_P95_MS_C2_MAX)
        best_fragment = pick(fragment, FRAGMENT_P95_MS_MAX)
        figure("fragment_target_level", f"c{best_fragment.concurrency}")
        target("fragment_p95_ms", best_fragment.p95, FRAGMENT_P95_MS_MAX)
        target(
            "page_query_count_spread_0_1_50", float(max(counts.values()) - min(counts.values())), 0, digits=0
        )
    finally:
        stop_process(server)
        if django_ready and not throwaway:
            cleanup_shared_database(prefix, session_keys)
        stop_process(redis_process)
        shutil.rmtree(tmpdir, ignore_errors=True)


def cleanup_shared_database(prefix: str, session_keys: list[str]) -> None:
    """On a database we did not create, delete what we seeded (connections cascade)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    Session.objects.filter(session_key__in=session_keys).delete()
    get_user_model().objects.filter(username__startswith=prefix).delete()


if __name__ == "__main__":
    main()
