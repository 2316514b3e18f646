"""Issue #6, scenario 6: our clock 10 minutes off (ahead, then behind) HTX's.

Our whole side runs shifted with libfaketime: the web server (gunicorn) and the worker, so
HTX (the sandbox, on the real clock) would refuse every signature (it allows 5 minutes) if we
signed with our own time. A user logs in, connects a key through the form and asks for a
refresh; both go through, and the measured skew shows the shift was real.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from bitsgap_clone.celery import app
from exchanges.models import BalanceSnapshot, ExchangeConnection, Status
from tests.conftest import child_database_url, stop_process, wait_for

from ._procs import add_sandbox_keys, faketime_env, login, post_form, start_gunicorn, start_worker

SHIFTS = {"+10m": -600_000, "-10m": 600_000}  # our offset -> HTX's clock minus ours (ms)


@pytest.mark.worker
@pytest.mark.parametrize("offset", list(SHIFTS))
def test_connecting_and_refreshing_work_with_our_clock_ten_minutes_off(
    transactional_db, sandbox, alice, tmp_path, offset
):
    app.control.purge()
    env = {
        "DATABASE_URL": child_database_url(),
        "HTX_API_URL": sandbox.url,
        "REFRESH_NOW_MIN_SECONDS": "0",
        **faketime_env(offset),
    }
    (key, secret), *_ = add_sandbox_keys(sandbox, 1, first=600 + len(offset))
    started_processes = []  # stopped at the end whatever happens, so none outlives the test
    try:
        worker = start_worker(tmp_path / "worker.log", env)
        started_processes.append(worker)
        web, url = start_gunicorn(tmp_path / "web.log", env)
        started_processes.append(web)
        session = login(url, "alice@example.com", "pw-alice-123")
        connect = post_form(
            session,
            url + reverse("exchanges:connection-add-venue", args=["htx"]),
            {"label": "Shifted", "access_key": key, "secret_key": secret},
        )
        assert connect.status_code == 302, connect.text[:2000]
        connection = ExchangeConnection.objects.get(owner=alice)

        def row():
            return ExchangeConnection.objects.get(pk=connection.pk)

        wait_for(lambda: row().status != Status.VERIFYING, timeout=30, message=lambda: row().status)
        connected = row()
        assert connected.status == Status.CONNECTED, (
            f"{connected.status}: {connected.error_detail}\n{worker.log_path.read_text()[-3000:]}"
        )
        # The worker's clock really was off by 10 minutes, and it signed with HTX's time.
        assert abs(connected.clock_skew_ms - SHIFTS[offset]) < 30_000, connected.clock_skew_ms

        refresh = post_form(session, url + reverse("exchanges:connection-refresh", args=[connection.pk]), {})
        assert refresh.status_code == 302
        wait_for(
            lambda: (
                BalanceSnapshot.objects.filter(connection=connection).count() >= 2 and not row().refreshing
            ),
            timeout=30,
            message=lambda: f"{row().status}, refreshing={row().refreshing}",
        )
        page = session.get(url + reverse("exchanges:connection-list"), timeout=10).text
    finally:
        for process in reversed(started_processes):
            stop_process(process)

    refreshed = row()
    snapshots = BalanceSnapshot.objects.filter(connection=connection).count()
    counts = {
        "submitted": 2,  # one Connect, one Refresh
        "correct": int(connected.status == Status.CONNECTED) + int(refreshed.status == Status.CONNECTED),
        "lost": int(snapshots < 2),
        "run twice": max(snapshots - 2, 0),
        "skew_ms": refreshed.clock_skew_ms,
    }
    print(f"\nclock {offset}: {counts}")
    assert counts["correct"] == 2 and counts["lost"] == 0 and counts["run twice"] == 0, counts
    assert 'data-status="connected"' in page and "Shifted" in page
