from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchanges.venues.htx.sandbox import HtxSandbox, load_accounts, load_tickers

ROOT = Path(__file__).resolve().parent.parent

# Demo keys from exchanges/htx/sandbox_data/accounts.json, by what they are.
_DEMO = load_accounts()


def demo_key(kind: str) -> tuple[str, str]:
    """(access key, secret) of the default sandbox account whose note starts with `kind`."""
    for access_key, account in _DEMO.items():
        if account.get("note", "").lower().startswith(kind):
            return access_key, account["secret"]
    raise LookupError(kind)


# --- No test may reach the internet ---------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address) -> None:
    if isinstance(address, tuple):
        host = address[0]
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise OSError(f"test tried to reach a non-loopback host: {host}")
        except ValueError:
            if host not in ("localhost",):
                raise OSError(f"test tried to reach a non-loopback host: {host}") from None


def _guarded_connect(self, address):
    _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(autouse=True, scope="session")
def _clean_redis():
    # The Redis database the tests use belongs to the tests (CI points REDIS_URL at a spare db).
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


@pytest.fixture(autouse=True)
def _fresh_venue_state():
    """Each test starts without shared prices, this process's clock offsets or venue windows."""
    from exchanges import registry, venue_state

    venue_state.forget_process_state()
    client = venue_state.redis_client()
    # The shared price tables of every venue and site, the sweeper's marks, the gates' windows,
    # and allauth's rate-limit counters (every browser test connects from 127.0.0.1: a test of
    # the connect limit makes all its attempts itself, not with those of the tests before it).
    keys = [
        *client.scan_iter("*:tickers:v2"),
        *client.scan_iter("exchanges:queued:*"),
        *client.scan_iter("*allauth:rl:*"),
    ]
    for venue in registry.venues():
        keys += client.scan_iter(f"{venue_state.gate_for(venue).prefix}:*")
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _batches_in_the_test_thread(settings):
    """A batch's checks run in this thread: check threads would have database connections of their
    own, outside the test's transaction (tests/exchanges/test_batch_checks.py covers the threads,
    and the worker processes of the integration and fault tests run with them)."""
    settings.CHECK_THREADS = 0


# --- People ----------------------------------------------------------------------------------


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(
        username="alice", email="alice@example.com", password="pw-alice-123"
    )


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(
        username="bob", email="bob@example.com", password="pw-bob-123"
    )


# --- The HTX sandbox -------------------------------------------------------------------------


@pytest.fixture
def sandbox(settings):
    server = HtxSandbox(load_accounts(), load_tickers()).start()
    settings.HTX_API_URL = server.url
    yield server
    server.stop()


@pytest.fixture
def sandboxes(settings):
    """Every registered venue's sandbox, the dashboard pointed at each: {venue id: sandbox}."""
    from exchanges import registry

    started = {}
    try:
        for venue in registry.venues():
            started[venue.id] = venue.sandbox().start()
            setattr(settings, f"{venue.env_prefix}_API_URL", started[venue.id].url)
        yield started
    finally:
        for server in started.values():
            server.stop()


def sandbox_env(sandboxes: dict) -> dict[str, str]:
    """The environment that points a worker process at each venue's sandbox."""
    from exchanges import registry

    return {f"{registry.get(venue_id).env_prefix}_API_URL": s.url for venue_id, s in sandboxes.items()}


# --- A real Celery worker process --------------------------------------------------------------


def _database_url(settings_dict: dict) -> str:
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    at = "@" if user else ""
    return (
        f"postgres://{user}{password}{at}{settings_dict.get('HOST') or '127.0.0.1'}:"
        f"{settings_dict.get('PORT') or 5432}/{settings_dict['NAME']}"
    )


def child_database_url() -> str:
    """DATABASE_URL of the database this test runs on (the pytest-django test database)."""
    from django.db import connection

    return _database_url(connection.settings_dict)


def spawn_celery(args: list[str], *, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `celery -A bitsgap_clone <args>` on the test database, its output appended to
    `log_path` (kept on the process as `log_path`), without waiting for it. `env` overrides this
    process's environment (e.g. REDIS_URL, HTX_API_URL, CHECK_CLAIM_SECONDS)."""
    full_env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bitsgap_clone", *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path
    process.args_ = args
    return process


def wait_ready(process: subprocess.Popen, ready: bytes, timeout: float = 30) -> subprocess.Popen:
    """Wait until `ready` appears in the process's log; fail the test (after killing it) if
    it exits first or takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while ready not in process.log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(10)
            pytest.fail(f"celery {process.args_[0]} did not start:\n{process.log_path.read_text()}")
        time.sleep(0.1)
    return process


def start_celery(
    args: list[str], *, log_path: Path, env: dict[str, str] | None = None, ready: bytes, timeout: float = 30
) -> subprocess.Popen:
    """`spawn_celery`, then `wait_ready`."""
    return wait_ready(spawn_celery(args, log_path=log_path, env=env), ready, timeout)


def worker_args(*, hostname: str, concurrency: int = 4) -> list[str]:
    """Arguments of a thread-pool `celery worker` as the tests run it."""
    return [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "-n",
        hostname,
    ]


def stop_process(process: subprocess.Popen, timeout: float = 15) -> int:
    """SIGTERM (a Celery warm shutdown), then SIGKILL if it has not exited within `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


@pytest.fixture
def celery_worker_process(transactional_db, sandbox, tmp_path):
    """`celery worker` in its own process, on the test database, real Redis and the sandbox."""
    from bitsgap_clone.celery import app

    app.control.purge()
    process = start_celery(
        worker_args(hostname=f"test-{os.getpid()}@%h"),
        log_path=tmp_path / "worker.log",
        env={"HTX_API_URL": sandbox.url},
        ready=b" ready.",
    )
    yield process
    stop_process(process)


@pytest.fixture
def venues_worker_process(transactional_db, sandboxes, tmp_path):
    """`celery worker` in its own process, pointed at every venue's sandbox."""
    from bitsgap_clone.celery import app

    app.control.purge()
    process = start_celery(
        worker_args(hostname=f"test-{os.getpid()}@%h"),
        log_path=tmp_path / "worker.log",
        env=sandbox_env(sandboxes),
        ready=b" ready.",
    )
    yield process
    stop_process(process)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1, message=None):
    """Poll `predicate` until it returns something truthy, and return that. On timeout, fail
    with `message` (a string, or a callable returning one, e.g. to show counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = message() if callable(message) else message
    raise AssertionError(f"condition not met in {timeout} s" + (f": {detail}" if detail else ""))


# --- Real receivers of alerts (tests/alerts/servers.py), on loopback ---------------------------


@pytest.fixture
def smtp_server():
    """A running SMTP server (aiosmtpd) recording every mail; stop and start it to take the mail
    server down and up."""
    from tests.alerts.servers import SmtpServer

    with SmtpServer() as server:
        yield server


@pytest.fixture
def webhook_server():
    """A running HTTP server recording every webhook; `webhook_server.url()` is an address."""
    from tests.alerts.servers import WebhookServer

    with WebhookServer() as server:
        yield server
