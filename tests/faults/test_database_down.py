"""Issue #6, scenario 4: the database unavailable for 30 s in the middle of work.

The test runs its own PostgreSQL cluster (never the shared server), a worker with beat and
gunicorn on it. A user connects six keys through the web; while the checks run (HTX made slow
so some are in flight), PostgreSQL is stopped for 30 s:

- checks that hit the outage retry with growing pauses (no hot loop), and the sweeper picks up
  what was claimed just before the outage;
- the web answers a friendly 503 page with Retry-After, not a 500 traceback;
- after the restart every submission reaches Connected, verified once, and the user's session
  and balances are all there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.urls import reverse

from bitsgap_clone.embedded_redis import start as start_redis
from tests.conftest import ROOT, stop_process, wait_for

from ._pgcluster import PgCluster
from ._procs import add_sandbox_keys, login, post_form, start_gunicorn, start_worker, task_retries, task_runs

OUTAGE_SECONDS = 30
N = 6
EMAIL, PASSWORD = "dora@example.com", "pw-dora-123"


@pytest.fixture
def cluster():
    pg = PgCluster().init()
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture
def own_broker():
    process, url = start_redis()
    yield url
    process.terminate()
    process.wait(10)


def _manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.worker
def test_thirty_seconds_without_the_database_loses_nothing(cluster, own_broker, sandbox, tmp_path):
    started = time.monotonic()
    env = {
        "DATABASE_URL": cluster.create_database("dashboard"),
        "REDIS_URL": own_broker,
        "HTX_API_URL": sandbox.url,
        # Short enough for one test: a claim taken just before the outage expires during it,
        # and beat's sweeper runs every 2 s, re-queuing submissions untouched for 5 s.
        "CHECK_CLAIM_SECONDS": "10",
        "SWEEP_SECONDS": "2",
        "VERIFY_STALE_SECONDS": "5",
    }
    _manage(env, "migrate", "--noinput")
    _manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; "
        f"User.objects.create_user(username='dora', email='{EMAIL}', password='{PASSWORD}')",
    )
    db = "dashboard"
    started_processes = []  # stopped at the end whatever happens, so none outlives the test
    try:
        worker = start_worker(tmp_path / "worker.log", env, concurrency=2, beat=True)
        started_processes.append(worker)
        web, url = start_gunicorn(tmp_path / "web.log", env)
        started_processes.append(web)
        session = login(url, EMAIL, PASSWORD)
        keys = add_sandbox_keys(sandbox, N, first=800)
        sandbox.faults.replace({"latency_ms": 250})  # a check takes ~2 s: some are in flight
        submitted = sum(
            post_form(
                session,
                url + reverse("exchanges:connection-add-venue", args=["htx"]),
                {"label": f"D{n}", "access_key": key, "secret_key": secret},
            ).status_code
            == 302
            for n, (key, secret) in enumerate(keys)
        )
        statuses = "SELECT status, count(*) FROM exchanges_exchangeconnection GROUP BY status ORDER BY status"
        wait_for(lambda: dict(cluster.query(db, statuses)).get("connected"), timeout=30)
        at_outage = dict(cluster.query(db, statuses))
        in_flight = cluster.query(
            db, "SELECT count(*) FROM exchanges_exchangeconnection WHERE claimed_until > now()"
        )[0][0]

        cluster.stop()
        down_at = time.monotonic()
        pages = []
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            # A new connection each time: pages come every 2 s, gunicorn's keep-alive is 2 s, and
            # a reused connection closed by the server in between is not the outage's doing.
            page = session.get(
                url + reverse("exchanges:connection-list"), timeout=10, headers={"Connection": "close"}
            )
            pages.append((page.status_code, page.headers.get("Retry-After"), page.text))
            wait_for(lambda: time.monotonic() - down_at >= min(OUTAGE_SECONDS, 2.0 * len(pages)), timeout=5)
        sandbox.faults.clear()
        cluster.start()
        up_at = time.monotonic()

        def all_connected():
            return dict(cluster.query(db, statuses)) == {"connected": N}

        wait_for(all_connected, timeout=60, interval=0.5, message=lambda: cluster.query(db, statuses))
        recovered_in = time.monotonic() - up_at
        after = session.get(url + reverse("exchanges:connection-list"), timeout=10)
        log = worker.log_path.read_text()
    finally:
        for process in reversed(started_processes):
            stop_process(process)

    verified = cluster.query(
        db,
        "SELECT c.id, count(e.id) FROM exchanges_exchangeconnection c LEFT JOIN exchanges_connectionevent e "
        "ON e.connection_id = c.id AND e.message = 'Key verified with HTX' GROUP BY c.id",
    )
    keys_added = cluster.query(db, "SELECT count(*) FROM accounts_securityevent WHERE kind = 'key_added'")[0][
        0
    ]
    retries = task_retries(log)
    runs = task_runs(log)
    friendly = [
        p
        for p in pages
        if p[0] == 503 and p[1] == "30" and "cannot reach its database" in p[2] and "Traceback" not in p[2]
    ]
    counts = {
        "submitted": submitted,
        "at outage": at_outage,
        "in flight at outage": in_flight,
        "connected": sum(n == 1 for _, n in verified),
        "lost": N - len(verified),
        "verified twice": sum(n > 1 for _, n in verified),
        "keys logged added": keys_added,
        "task retries (countdowns s)": retries,
        "duplicate runs dropped by the claim": sum(result == "None" for _, result in runs),
        "pages during outage": len(pages),
        "friendly 503 pages": len(friendly),
        "recovered in s": round(recovered_in, 1),
        "total s": round(time.monotonic() - started, 1),
    }
    print(f"\ndatabase down {OUTAGE_SECONDS} s: {counts}")
    assert submitted == N and counts["lost"] == 0 and counts["connected"] == N, counts
    assert counts["verified twice"] == 0 and keys_added == N, counts
    assert pages and len(friendly) == len(pages), [
        (s, r, t[:300]) for s, r, t in pages if (s, r, t) not in friendly
    ]
    # Checks that hit the outage were retried, with growing pauses rather than in a hot loop.
    assert retries and max(retries) > min(retries) and len(retries) <= 10 * N, counts
    assert after.status_code == 200 and after.text.count('data-status="connected"') == N, after.text[:500]


@pytest.mark.parametrize("opted_out", [False, True])
def test_missing_postgresql_fails_unless_explicitly_opted_out(monkeypatch, opted_out):
    from . import _pgcluster

    monkeypatch.setattr(_pgcluster, "_bin_dir", lambda: None)
    if opted_out:
        monkeypatch.setenv("SKIP_POSTGRES_CLUSTER", "1")
    else:
        monkeypatch.delenv("SKIP_POSTGRES_CLUSTER", raising=False)
    outcome = pytest.skip.Exception if opted_out else pytest.fail.Exception
    with pytest.raises(outcome, match="PostgreSQL binaries not found"):
        PgCluster()
