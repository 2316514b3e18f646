"""Processes the fault tests start: Celery workers with their own settings (and clock), a
gunicorn web server, and what their logs tell."""

from __future__ import annotations

import ast
import contextlib
import copy
import glob
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bitsgap_clone.embedded_redis import free_port
from tests.conftest import ROOT, spawn_celery, stop_process, wait_ready, worker_args

# Debian's multiarch path (x86_64-linux-gnu, aarch64-linux-gnu, ...).
LIBFAKETIME = next(
    iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))),
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
)

# A check alone logs its status ('connected'); a batch (check_connections, the sweeper's) the
# list of its checks' statuses, which ran side by side: one entry per check, with the batch's time.
_TASK_DONE = re.compile(r"Task exchanges\.tasks\.check_connections?\[[^\]]+\] succeeded in ([\d.]+)s: (.+)")
_TASK_RETRY = re.compile(r"Task exchanges\.tasks\.check_connections?\[[^\]]+\] retry: Retry in (\d+)s")


def per_check(result: str) -> list[str]:
    """A check task's logged result, one entry per check: a batch logs a list of statuses."""
    result = result.strip()
    if result.startswith("["):
        with contextlib.suppress(ValueError, SyntaxError):  # (a log filter blanked part of it)
            return [repr(status) for status in ast.literal_eval(result)]
    return [result]


def start_worker(log_path: Path, env: dict[str, str], *, concurrency: int = 2, beat: bool = False):
    """A thread-pool `celery worker` (with embedded beat when `beat`) on `env` overrides."""
    args = worker_args(hostname=f"fault-{os.getpid()}-{free_port()}@%h", concurrency=concurrency)
    if beat:
        args += ["--beat", "--schedule", str(log_path.with_suffix(".beat"))]
    return wait_ready(spawn_celery(args, log_path=log_path, env=env), b" ready.", timeout=60)


def faketime_env(offset: str) -> dict[str, str]:
    """Environment that shifts a process's wall clock by `offset` (libfaketime, e.g. "+10m");
    monotonic clocks stay real so timeouts keep their length."""
    if not Path(LIBFAKETIME).exists():
        pytest.fail(f"libfaketime missing ({LIBFAKETIME}): apt-get install faketime")
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": offset,
        "DONT_FAKE_MONOTONIC": "1",
        # _faketime/sitecustomize.py works around libfaketime 0.9.10 breaking time.sleep.
        "PYTHONPATH": f"{Path(__file__).with_name('_faketime')}{os.pathsep}{ROOT}",
    }


def task_runs(log_text: str) -> list[tuple[float, str]]:
    """(seconds, result) of every check the worker finished (alone or in a batch), in order."""
    return [(float(s), one) for s, result in _TASK_DONE.findall(log_text) for one in per_check(result)]


def task_retries(log_text: str) -> list[int]:
    """The countdowns (s) of check_connection retries the worker scheduled, in order."""
    return [int(s) for s in _TASK_RETRY.findall(log_text)]


def start_gunicorn(log_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The production web server on a free loopback port; -> (process, base URL)."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "bitsgap_clone.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/", timeout=10)
            return process, url
        except requests.RequestException:  # not listening yet, or its worker still booting
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                pytest.fail(f"gunicorn did not start:\n{log_path.read_text()}")
            time.sleep(0.2)


def login(base_url: str, email: str, password: str) -> requests.Session:
    """A browser-like session logged in through the real login form."""
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/", timeout=10)
    response = session.post(
        f"{base_url}/accounts/login/",
        data={"login": email, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/accounts/login/"},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, f"login failed: {response.status_code} {response.text[:500]}"
    return session


def post_form(session: requests.Session, url: str, data: dict[str, str]) -> requests.Response:
    return session.post(
        url,
        data={**data, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": url},
        timeout=30,
        allow_redirects=False,
    )


def add_sandbox_keys(sandbox, count: int, *, first: int = 0) -> list[tuple[str, str]]:
    """`count` more working keys in the sandbox, each its own HTX user with its own account
    ids (copies of the demo good key's accounts), so a fault can target one key's paths."""
    template = next(a for a in sandbox.accounts.values() if a.get("note", "").startswith("demo: good key"))
    keys = []
    for n in range(first, first + count):
        access_key, secret = f"fa{n:06x}-c3d4e5f6-0a1b2c3d-{n:05x}", f"5f{n:06x}-9a7b3c4d-6e5f4a3b-2c1d0"
        entry = copy.deepcopy(template)
        entry.update(secret=secret, uid=70_000_000 + n, note=f"fault test key {n}")
        for i, account in enumerate(entry["accounts"]):
            account["id"] = 30_000_000 + n * 10 + i
        sandbox.accounts[access_key] = entry
        keys.append((access_key, secret))
    return keys


def spot_balance_path(sandbox, access_key: str) -> str:
    spot = next(a for a in sandbox.accounts[access_key]["accounts"] if a["type"] == "spot")
    return f"/v1/account/accounts/{spot['id']}/balance"
