"""Connect latency (issue 6): click Connect → "Connected" visible, in Chromium, against a
0-latency HTX sandbox. Target: p95 ≤ 1.5 s.

Run from the repository root: .venv/bin/python bench/connect_latency.py [--attempts 20]

1. A throwaway SQLite database under /tmp (or the database in DATABASE_URL: the users seeded
   there are deleted at the end), migrated; the embedded Redis unless REDIS_URL is set.
2. The HTX sandbox (exchanges/htx/sandbox.py) in this process, with no latency and no faults.
3. A real Celery worker (threads pool, 4 threads, as the tests run it) and the site under
   gunicorn (2 sync workers, DEBUG off). With no reverse proxy in front, static files (htmx,
   CSS) are served by Django's StaticFilesHandler (bench/_static_wsgi.py).
4. Chromium (/usr/bin/chromium, or CHROMIUM_PATH) driven by Playwright. Each attempt is a fresh
   user (the session is created directly and its cookie given to a fresh browser context) and a
   fresh HTX key (the sandbox's "good key" account under a new access key): My Exchanges,
   "+ Add New Exchange", HTX, key and secret, then the click on Connect.

Measured in the page with performance.now(), so Playwright's own polling adds nothing: from the
click on Connect to the first moment the new row's status badge says "Connected". Printed
beside it, to show where the time goes: click → verification dialog closed, and on the server
the connection's creation → the worker's successful check (last_verified_at).

Prints `name: value unit` and `target ...: MET|NOT MET` lines; exits 0 either way.
"""

from __future__ import annotations

import argparse
import copy
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, figure, free_port, note, percentile, python, start_gunicorn, stop_process, target  # noqa: E402
from page_load import cleanup_shared_database, configure_environment, login_sessions, migrate, seed_user  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
P95_MS_MAX = 1500.0
WORKERS = 2
GOOD_KEY_NOTE = "demo: good key"

# Installed in the page before the click: when the click happened, when the dialog closed, and
# when a row's status badge first said "Connected" (checked on every DOM change).
PROBE = """() => {
  const b = window.__bench = {click: null, closed: null, connected: null};
  document.addEventListener("click", (e) => {
    if (b.click === null && e.target.closest("dialog.modal button[type=submit]")) b.click = performance.now();
  }, true);
  const check = () => {
    if (b.click === null) return;
    const now = performance.now();
    if (b.closed === null && !document.querySelector("dialog.modal")) b.closed = now;
    const s = document.querySelector('[data-testid="connection"] [data-testid="status"]');
    if (b.connected === null && s && s.textContent.includes("Connected")) b.connected = now;
  };
  new MutationObserver(check).observe(
    document.documentElement, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def start_worker(log_path: Path) -> subprocess.Popen:
    command = [
        python(),
        "-m",
        "celery",
        "-A",
        "bitsgap_clone",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "--loglevel=INFO",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "-n",
        f"bench-connect-{os.getpid()}@%h",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.stderr.write(log_path.read_text(errors="replace")[-3000:])
            stop_process(process)
            raise SystemExit("the Celery worker did not start")
        time.sleep(0.1)
    return process


def fresh_key(sandbox, good: dict, n: int) -> tuple[str, str]:
    """A new access key on the sandbox, behaving exactly like the demo "good key"."""

    def part(length: int) -> str:
        return secrets.token_hex(4)[:length]

    access_key = f"bnch{n:04x}-{part(8)}-{part(8)}-{part(5)}"  # the demo keys' 8-8-8-5 shape
    secret = f"{part(8)}-{part(8)}-{part(8)}-{part(5)}"
    account = copy.deepcopy(good)
    account["secret"] = secret
    sandbox.accounts[access_key] = account
    return access_key, secret


def attempt(browser, base: str, cookie: dict, key: tuple[str, str]) -> dict:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(30_000)
    context.add_cookies([cookie])
    try:
        page = context.new_page()
        page.goto(base + "/exchanges/")
        page.get_by_role("link", name="Add New Exchange").first.click()
        dialog = page.locator("dialog.modal")
        dialog.get_by_test_id("pick-htx").click()
        expect(dialog.get_by_label("Secret Key")).to_be_visible()
        dialog.get_by_label("API Key").fill(key[0])
        dialog.get_by_label("Secret Key").fill(key[1])
        page.evaluate(PROBE)
        dialog.get_by_role("button", name="Connect").click()
        expect(page.get_by_test_id("connection").get_by_test_id("status")).to_contain_text("Connected")
        page.wait_for_function("() => window.__bench.connected !== null")
        return page.evaluate("window.__bench")
    finally:
        context.close()


def server_side_ms(access_tail: str, owner) -> float | None:
    from exchanges.models import ExchangeConnection

    c = ExchangeConnection.objects.filter(owner=owner, access_key_tail=access_tail).first()
    if c is None or c.last_verified_at is None:
        return None
    return (c.last_verified_at - c.created_at).total_seconds() * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--attempts", type=int, default=20, help="measured attempts (at least 20 for p95)")
    parser.add_argument("--warmup", type=int, default=2, help="attempts run first and not counted")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        note(f"Chromium not found at {CHROMIUM} (set CHROMIUM_PATH): nothing measured")
        return

    tmpdir = Path(tempfile.mkdtemp(prefix="bench-connect-", dir="/tmp"))
    throwaway, redis_process = configure_environment(tmpdir)
    # Many connects from one user and one address: the bench is not what the limit is about.
    os.environ.update({"CONNECT_RATE_LIMIT": "100000/h/user,100000/h/ip", "BEHIND_TLS_PROXY": "0"})
    from exchanges.venues.htx.sandbox import HtxSandbox, load_accounts, load_tickers

    accounts = load_accounts()
    good = next(a for a in accounts.values() if a.get("note", "").lower().startswith(GOOD_KEY_NOTE))
    sandbox = HtxSandbox(accounts, load_tickers()).start()
    os.environ["HTX_API_URL"] = sandbox.url
    server = worker = None
    prefix = f"benchc{os.getpid()}-"
    session_keys: list[str] = []
    django_ready = False
    try:
        migrate()
        import django

        django.setup()
        django_ready = True
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection

        total = args.warmup + args.attempts
        users = get_user_model().objects.bulk_create([seed_user(f"{prefix}{i}") for i in range(total)])
        session_keys = login_sessions(users)
        connection.close()

        worker = start_worker(tmpdir / "worker.log")
        port = free_port()
        server = start_gunicorn(
            "_static_wsgi:application",
            port,
            tmpdir / "server.log",
            workers=WORKERS,
            extra=["--pythonpath", str(ROOT / "bench")],
        )
        base = f"http://127.0.0.1:{port}"
        figure("database", connection.vendor)
        figure("server", f"gunicorn, {WORKERS} sync workers, DEBUG off")
        figure("worker", "celery, threads pool, 4 threads")
        figure("browser", CHROMIUM)

        from playwright.sync_api import sync_playwright

        clicks_to_connected, clicks_to_closed, measured = [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
            )
            try:
                for n, (user, key) in enumerate(zip(users, session_keys, strict=True)):
                    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": key, "url": base}
                    htx_key = fresh_key(sandbox, good, n)
                    marks = attempt(browser, base, cookie, htx_key)
                    if n < args.warmup:
                        continue
                    clicks_to_connected.append(marks["connected"] - marks["click"])
                    if marks["closed"] is not None:
                        clicks_to_closed.append(marks["closed"] - marks["click"])
                    measured.append((htx_key[0][-4:], user))
            finally:
                browser.close()
        # The ORM after Playwright's event loop has gone (Django refuses it inside one).
        verified = [ms for ms in (server_side_ms(tail, user) for tail, user in measured) if ms is not None]

        lat = sorted(clicks_to_connected)
        figure("connect_attempts", len(lat), "attempts")
        figure("connect_p50_ms", percentile(lat, 0.50), "ms", 0)
        figure("connect_p95_ms", percentile(lat, 0.95), "ms", 0)
        figure("connect_min_ms", lat[0] if lat else float("nan"), "ms", 0)
        figure("connect_max_ms", lat[-1] if lat else float("nan"), "ms", 0)
        figure("connect_mean_ms", statistics.fmean(lat) if lat else float("nan"), "ms", 0)
        closed = sorted(clicks_to_closed)
        figure("dialog_closed_p50_ms", percentile(closed, 0.50), "ms", 0)
        server_side = sorted(verified)
        figure("server_created_to_verified_p50_ms", percentile(server_side, 0.50), "ms", 0)
        figure("server_created_to_verified_p95_ms", percentile(server_side, 0.95), "ms", 0)
        target("connect_p95_ms", percentile(lat, 0.95), P95_MS_MAX, digits=0)
    finally:
        stop_process(server)
        stop_process(worker)
        sandbox.stop()
        if django_ready and not throwaway:
            cleanup_shared_database(prefix, session_keys)
        stop_process(redis_process)
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
