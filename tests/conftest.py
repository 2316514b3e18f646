from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache

from exchanges.htx.sandbox import HtxSandbox, load_accounts, load_tickers

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
def _fresh_tickers_cache():
    from exchanges.checks import TICKERS_CACHE_KEY

    cache.delete(TICKERS_CACHE_KEY)


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


@pytest.fixture
def celery_worker_process(transactional_db, sandbox, tmp_path):
    """`celery worker` in its own process, on the test database, real Redis and the sandbox."""
    from django.db import connection

    from bitsgap_clone.celery import app

    app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "HTX_API_URL": sandbox.url,
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
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
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while b" ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"Celery worker did not start:\n{log.read_text()}")
        time.sleep(0.1)
    process.log_path = log
    yield process
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
