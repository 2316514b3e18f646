"""Issue #6's fault scenarios that are not about one exchange, for every registered venue, with
real worker processes on every venue's sandbox (real HTTP, real Redis, the test database).

(a) A venue failing in every way its sandbox can (5xx pages, maintenance, rate limits with
    Retry-After, a hang longer than the read timeout, broken JSON, and each venue's own ways):
    first for one key (on a path only that key calls; OKX and Bybit keys all call the same
    endpoints, so there only that key's requests are faulted, see KeyFaults), then for the
    whole venue. The other keys
    (of this venue and of the others) are not held up, the faulted key becomes "Temporary issue"
    keeping its last good balance, and every key recovers when the fault clears.
(b) A worker killed with SIGKILL in the middle of a wave of verifications and refreshes, of
    Binance and of every other venue: every connection reaches its final status, none is
    written twice (counted as in test_worker_kill.py, which does it for HTX with beat).
(c) Binance's 429/418 with Retry-After: the connection is not checked again sooner, and the
    gate's ban stops every other check to Binance meanwhile (released, never marked failed),
    while other venues go on.

Each scenario prints its counts (submitted, final, lost, run twice) and asserts lost == 0.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import string
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bitsgap_clone.embedded_redis import free_port
from exchanges import claims, recording, registry, services, venue_state
from exchanges.models import BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from exchanges.tasks import check_connection, queue_due_checks
from exchanges.templatetags.exchanges_tags import usdt
from exchanges.venues.bybit.sandbox import check_keys as check_bybit_keys
from exchanges.venues.kit.errors import VenueError
from exchanges.venues.kit.types import Credentials, Prior
from exchanges.venues.okx.sandbox import check_keys as check_okx_keys
from tests.conftest import sandbox_env, start_celery, stop_process, wait_for, worker_args
from tests.faults.conftest import FAST, CeleryFleet, elapsed, forget_shared_messages, kill_when

from ._procs import add_sandbox_keys, per_check, spot_balance_path

VENUES = [pytest.param(venue, id=venue.id) for venue in registry.venues()]
BINANCE = registry.get("binance")
OKX = registry.get("okx")
BYBIT = registry.get("bybit")

READ_TIMEOUT = 2.0
HANG_MS = 6_000  # three read timeouts
RETRY_AFTER = 2  # seconds, for the faults that carry a Retry-After (Binance's 429 and 418)


# --- Keys: each of its own account, the first one calling a path the others do not -----------


class Key(NamedTuple):
    """A sandbox key as the user would connect it: the extra credentials are those of
    Credentials.extra (OKX's passphrase, the site of OKX and Bybit)."""

    api_key: str
    secret: str
    uid: str
    passphrase: str = ""
    site: str = ""

    @property
    def credentials(self) -> Credentials:
        extra = {"passphrase": self.passphrase, "site": self.site}
        return Credentials(self.api_key, self.secret, {k: v for k, v in extra.items() if v})


def _random_like(text: str) -> str:
    """A random value of the same shape (letters for letters, digits for digits)."""
    rng = secrets.SystemRandom()
    out = []
    for ch in text:
        if ch.isdigit():
            out.append(rng.choice(string.digits))
        elif ch.isupper():
            out.append(rng.choice(string.ascii_uppercase))
        elif ch.islower():
            out.append(rng.choice(string.ascii_lowercase))
        else:
            out.append(ch)
    return "".join(out)


def _htx_keys(sandbox, n: int) -> tuple[list[tuple[str, str, str]], list[str]]:
    """HTX: every key its own user and account ids, so the first key's spot balance path is its
    own. -> ([(api key, secret, uid)], the first key's own paths)."""
    keys = add_sandbox_keys(sandbox, n, first=secrets.randbelow(1 << 16))
    return (
        [Key(k, s, str(sandbox.accounts[k]["uid"])) for k, s in keys],
        [spot_balance_path(sandbox, keys[0][0])],
    )


def _binance_keys(sandbox, n: int, *, first_has_futures: bool = True):
    """Binance: copies of the demo good key, each its own account (uid), without Earn (150
    weight a page) or margin. Only the first has USDⓈ-M futures, so only its check calls
    /fapi. -> ([(api key, secret, uid)], the first key's own paths)."""
    template = copy.deepcopy(sandbox.accounts[BINANCE.demo_key("good")[0]])
    assert template.get("futures"), "the demo good key has a futures wallet"
    keys = []
    for i in range(n):
        api_key, secret = _random_like("Aa0" * 21 + "A"), _random_like("aA0" * 21 + "a")
        uid = 950_000_000 + secrets.randbelow(10_000_000)
        entry = copy.deepcopy(template)
        entry.update(secret=secret, uid=uid, note=f"fault test key {i}", earnFlexible=[], earnLocked=[])
        entry["margin"] = None
        if i or not first_has_futures:
            entry.update(futures=None, enableFutures=False)
        sandbox.accounts[api_key] = entry
        keys.append(Key(api_key, secret, str(uid)))
    return keys, ["/fapi/"]


def _okx_keys(sandbox, n: int):
    """OKX: copies of the demo good key (Global site, Read + Trade, no IP binding, used 2 days
    ago), each its own account (uid and mainUid) and passphrase, a lower-case UUID and 32
    upper-case hex characters (sandbox.py "Data"). Without Simple Earn or other Earn products,
    so a check does not ask for prices to compare OKX's Earn valuation. Every OKX key calls the
    same endpoints: no path of its own, the fault is aimed at the first key (KeyFaults)."""
    template = copy.deepcopy(sandbox.accounts[OKX.demo_key("good")[0]])
    assert template["site"] == "global" and template.get("trading"), "the demo good key has a trading account"
    keys = []
    for i in range(n):
        api_key, secret = str(uuid.uuid4()), secrets.token_hex(16).upper()
        passphrase = f"Fault-{secrets.token_urlsafe(9)}-{i}"
        uid = str(700_000_000_000_000_000 + secrets.randbelow(10**17))
        entry = copy.deepcopy(template)
        entry.update(
            secret=secret,
            passphrase=passphrase,
            uid=uid,
            mainUid=uid,
            note=f"fault test key {i}",
            savings=[],
            otherEarn=[],
        )
        check_okx_keys({api_key: entry})
        sandbox.accounts[api_key] = entry
        keys.append(Key(api_key, secret, uid, passphrase, entry["site"]))
    return keys, []


def _bybit_keys(sandbox, n: int):
    """Bybit: copies of the demo good key (Global site, Read-Write, any IP, expires in 80
    days), each its own UID, an API Key of 18 and a Secret Key of 36 letters and digits
    (sandbox_model.check_key), without Earn. Every Bybit key calls the same endpoints: no path
    of its own, the fault is aimed at the first key (KeyFaults)."""
    template = copy.deepcopy(sandbox.accounts[BYBIT.demo_key("good")[0]])
    assert template["site"] == "global" and template.get("unified"), "the demo good key has a UTA"
    keys = []
    for i in range(n):
        api_key, secret = _random_like("Aa0" * 5 + "Aa0"), _random_like("aA0" * 12)
        uid = 500_000_000 + secrets.randbelow(100_000_000)
        entry = copy.deepcopy(template)
        entry.update(secret=secret, uid=uid, note=f"fault test key {i}", earn=[])
        check_bybit_keys({api_key: entry})
        sandbox.accounts[api_key] = entry
        keys.append(Key(api_key, secret, str(uid), site=entry["site"]))
    return keys, []


KEY_MAKERS = {"htx": _htx_keys, "binance": _binance_keys, "okx": _okx_keys, "bybit": _bybit_keys}


def _keys(venue, sandbox, n: int):
    maker = KEY_MAKERS.get(venue.id)
    if maker is None:
        pytest.fail(f"tell test_venue_faults.py how to make {venue.id} keys with a path of their own")
    return maker(sandbox, n)


def _connect(owner, venue, keys, label: str) -> list[int]:
    """Connect each key as the user would (every credential, the site): a Verifying row, its
    check queued once committed."""
    return [
        services.connection_create(
            owner=owner,
            exchange=venue.id,
            label=f"{label}{i}",
            access_key=key.api_key,
            secret_key=key.secret,
            passphrase=key.passphrase,
            site=key.site,
        ).pk
        for i, key in enumerate(keys)
    ]


def _connected_rows(owner, venue, keys, *, due: datetime) -> list[int]:
    """Connections that verified earlier (Connected, established, no snapshot yet), due at
    `due`. Nothing is queued."""
    return [
        ExchangeConnection.objects.create(
            owner=owner,
            exchange=venue.id,
            label=f"r{i}",
            access_key=key.api_key,
            secret_key=key.secret,
            passphrase=key.passphrase or None,
            site=key.site,
            access_key_fingerprint=services.access_key_fingerprint(key.api_key),
            access_key_head=key.api_key[:4],
            access_key_tail=key.api_key[-4:],
            status=Status.CONNECTED,
            established=True,
            account_uid=key.uid,
            next_check_at=due,
        ).pk
        for i, key in enumerate(keys)
    ]


# --- What the sandboxes saw ---------------------------------------------------------------------


class Calls:
    """Every request a sandbox answered, as (time answered, API key or "", path, HTTP status),
    through the sandbox's `handle` hook (its HTTP handler calls sandbox.handle(request))."""

    def __init__(self, sandbox, keys) -> None:
        self.keys = {key.api_key for key in keys}
        self.log: list[tuple[float, str, str, int]] = []
        self._lock = threading.Lock()
        handle = sandbox.handle

        def recording(request):
            response = handle(request)
            key = self.key_of(request)
            with self._lock:
                self.log.append((time.time(), key, request.path, response.status))
            return response

        sandbox.handle = recording

    def key_of(self, request) -> str:
        for value in (*request.headers.values(), *(v for _, v in request.params)):
            if value in self.keys:
                return value
        return ""

    def entries(self) -> list[tuple[float, str, str, int]]:
        with self._lock:
            return list(self.log)

    def checks_of(self, key: str) -> int:
        """Checks of `key` that reached the venue: requests to the path of its first request
        (every check of a key starts with the same signed call)."""
        mine = [path for _, k, path, _ in self.entries() if k == key]
        return mine.count(mine[0]) if mine else 0


class KeyFaults:
    """Faults for one key's requests only, for venues whose keys all call the same endpoints
    (OKX, Bybit), where ``paths`` cannot single a key out. The key's requests are answered by a
    view of the sandbox with fault switches of its own (``faults``), sharing everything else
    (accounts, routes, limits, stats); every other request by the sandbox itself. Install it
    before ``Calls``, which then records the faulted answers too. Unsigned calls name no key
    and are never faulted here (e.g. OKX's system status asked after a maintenance answer)."""

    def __init__(self, sandbox, api_key: str) -> None:
        self.faults = type(sandbox.faults)()
        self.answered = 0  # requests answered while a fault was on
        view = copy.copy(sandbox)
        view.faults = self.faults
        own_handle, handle = type(sandbox).handle, sandbox.handle
        defaults = self.faults.snapshot()

        def routed(request):
            if api_key in request.headers.values() and self.faults.snapshot() != defaults:
                self.answered += 1
                return own_handle(view, request)
            return handle(request)

        sandbox.handle = routed


def _aim(sandbox, key_faults: KeyFaults | None, fault: dict, own_paths: list[str]) -> None:
    """Turn `fault` on for the first key only: on its own paths, or (KeyFaults) on its requests."""
    if key_faults is None:
        sandbox.faults.replace({**fault, "paths": own_paths})
    else:
        key_faults.faults.replace(fault)


def _clear(sandbox, key_faults: KeyFaults | None) -> None:
    sandbox.faults.clear()
    if key_faults is not None:
        key_faults.faults.clear()


# --- Where connections stand ------------------------------------------------------------------


def _rows(pks) -> dict[int, ExchangeConnection]:
    return {c.pk: c for c in ExchangeConnection.objects.filter(pk__in=pks)}


def _snapshots(pks, since: datetime | None = None) -> Counter:
    qs = BalanceSnapshot.objects.filter(connection_id__in=pks)
    if since is not None:
        qs = qs.filter(taken_at__gte=since)
    return Counter(qs.values_list("connection_id", flat=True))  # 0 for a connection without any


def _sweep_until(predicate, timeout: float, message):
    """Run beat's sweeper (queue_due_checks) while waiting, as beat would every few seconds."""

    def swept_():
        queue_due_checks()
        return predicate()

    return wait_for(swept_, timeout=timeout, interval=0.5, message=message)


def _row_html(client: Client, pk: int) -> str:
    body = client.get(reverse("exchanges:connection-list")).content.decode()
    start = body.index(f'id="connection-{pk}"')
    return body[start : body.index("</li>", start)]


def _statuses(pks) -> dict[int, tuple[str, str, int]]:
    return {pk: (c.exchange, c.status, c.attempts) for pk, c in _rows(pks).items()}


# --- Workers ------------------------------------------------------------------------------------

# "Task exchanges.tasks.check_connection[<id>] succeeded in 0.51s: 'connected'". The logging
# filter runs every venue's redact() over every record: OKX's blanks anything shaped like a UUID,
# Celery's task ids included ("[[redacted]]", so _procs.task_runs and conftest's none_results/
# swept, which need the id, find nothing), and Bybit's any 18 letters and digits with both in
# them, such as the fraction of a duration ("0.019942334000006667s" -> "0.[redacted]"). Read
# here without the id, a blanked fraction counted as a whole second (an upper bound).
_TASK_SUCCEEDED = re.compile(
    r"Task ([\w.]+)\[(?:[^\[\]]+|\[redacted\])\] succeeded in "
    r"(\d+)\.(\d+(?:e-?\d+)?s|\[redacted\]|\d*\[redacted\]): (.*)"
)
# The check tasks: one check, or a batch of them side by side (the sweeper's), which logs the list
# of its checks' statuses: read as one run per check, each with the batch's time.
CHECKS = ("exchanges.tasks.check_connection", "exchanges.tasks.check_connections")


def _succeeded(log_text: str, task: str | tuple[str, ...] = CHECKS) -> list[tuple[float, str]]:
    """(seconds, result) of every run of `task` a worker log says finished, in order."""
    tasks = (task,) if isinstance(task, str) else task
    runs = []
    for name, whole, fraction, result in _TASK_SUCCEEDED.findall(log_text):
        if name in tasks:
            redacted = "[redacted]" in fraction
            seconds = int(whole) + 1.0 if redacted else float(f"{whole}.{fraction[:-1]}")
            runs += [(seconds, one) for one in per_check(result)]
    return runs


def _none_results(processes) -> int:
    """check_connection runs that found nothing to do: duplicate messages, harmless by design."""
    return sum(result == "None" for p in processes for _, result in _succeeded(p.log_path.read_text()))


def _swept(processes) -> int:
    """Check messages queued by beat's sweeper (the sum of what queue_due_checks returned)."""
    task = "exchanges.tasks.queue_due_checks"
    return sum(int(r) for p in processes for _, r in _succeeded(p.log_path.read_text(), task) if r.isdigit())


def _worker_env(sandboxes, **extra) -> dict[str, str]:
    env = {**sandbox_env(sandboxes), "RETRY_BASE_SECONDS": "1", "RETRY_MAX_SECONDS": "2"}
    for venue in registry.venues():
        env[f"{venue.env_prefix}_READ_TIMEOUT"] = str(READ_TIMEOUT)
        env[f"{venue.env_prefix}_CONNECT_TIMEOUT"] = "1"
    return {**env, **{k: str(v) for k, v in extra.items()}}


@pytest.fixture
def start_worker(transactional_db, sandboxes, tmp_path):
    """start_worker(name, **env): a thread-pool worker on every venue's sandbox (read timeout
    2 s, retries after 1-2 s), stopped at teardown. The shared Redis holds no task message
    before and after."""
    forget_shared_messages()
    started = []

    def start(name: str, *, concurrency: int = 2, **env):
        process = start_celery(
            worker_args(hostname=f"{name}-{os.getpid()}-{free_port()}@%h", concurrency=concurrency),
            log_path=tmp_path / f"worker-{name}.log",
            env=_worker_env(sandboxes, **env),
            ready=b" ready.",
            timeout=60,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process)
    forget_shared_messages()


def _fault_rounds(sandbox) -> dict[str, dict]:
    """Every way this venue's sandbox can fail, one round each: its fault switches with a value
    that turns them on (a Retry-After where the switch takes one)."""
    faults = type(sandbox.faults)
    rounds: dict[str, dict] = {}
    for name in faults.names():
        if name == "paths":
            continue
        if name == "latency_ms":
            rounds[f"{HANG_MS / 1000:.0f} s hang"] = {name: HANG_MS}
        elif name == "http_status":
            rounds["http 502 page"] = {name: 502}
            rounds["http 503 page"] = {name: 503}
        else:
            try:
                value = faults.check(name, RETRY_AFTER)
            except ValueError:
                value = True
            label = name.replace("_", " ") + ("" if value is True else f" (Retry-After {value} s)")
            rounds[label] = {name: value}
    return rounds


# --- (a) A venue failing every way it can ---------------------------------------------------------


@pytest.mark.worker
@pytest.mark.parametrize("venue", VENUES)
def test_a_failing_venue_never_stalls_other_keys_keeps_the_last_balance_and_recovers(
    venue, sandboxes, start_worker, alice
):
    worker = start_worker(f"faults-{venue.id}")
    sandbox = sandboxes[venue.id]
    own_keys, own_paths = _keys(venue, sandbox, 3)
    key_faults = None if own_paths else KeyFaults(sandbox, own_keys[0].api_key)
    calls = Calls(sandbox, own_keys)
    own = _connect(alice, venue, own_keys, venue.id)
    others = []
    for other in registry.venues():
        if other.id != venue.id:
            others += _connect(alice, other, _keys(other, sandboxes[other.id], 2)[0], other.id)
    pks = own + others
    wait_for(
        lambda: all(c.status == Status.CONNECTED for c in _rows(pks).values()),
        timeout=40,
        message=lambda: _statuses(pks),
    )
    bad_pk, good = own[0], [pk for pk in pks if pk != own[0]]
    client = Client()
    client.force_login(alice)
    counts = Counter(
        submitted=0, final=0, lost=0, **{"run twice": 0, "duplicates dropped": 0, "recovered": 0}
    )
    slowest: dict[str, float] = {}
    healthy_in: dict[str, float] = {}
    rounds = _fault_rounds(sandbox)
    assert len(rounds) >= 6, rounds

    for name, fault in rounds.items():
        before = _snapshots(pks)
        last_good = _rows([bad_pk])[bad_pk]
        log_offset = len(worker.log_path.read_text())
        faulted_before = key_faults.answered if key_faults else 0
        _aim(sandbox, key_faults, fault, own_paths)
        started = time.monotonic()
        ExchangeConnection.objects.filter(pk__in=pks).update(next_check_at=timezone.now())
        queue_due_checks()  # what beat does: every due key is queued at once
        counts["submitted"] += len(pks)

        def settled(before=before):
            rows, now = _rows(pks), _snapshots(pks)
            refreshed = [pk for pk in good if now[pk] > before[pk] and rows[pk].status == Status.CONNECTED]
            failed = rows[bad_pk].status == Status.TEMPORARY and rows[bad_pk].attempts >= 1
            return refreshed if len(refreshed) == len(good) and failed else None

        refreshed = _sweep_until(
            settled, timeout=25, message=lambda name=name: f"{venue.id} {name}: {_statuses(pks)}"
        )
        took = healthy_in[name] = round(time.monotonic() - started, 2)
        # The other keys were not held up by the faulted one: at most one read timeout, plus a
        # Retry-After when the venue banned this server (then every key of it waits, by design).
        assert took < READ_TIMEOUT + RETRY_AFTER + 3, f"{venue.id} {name}: the other keys took {took:.1f} s"
        bad = _rows([bad_pk])[bad_pk]
        assert bad.error_kind, f"{name}: the failure is recorded"
        if key_faults is not None:
            assert key_faults.answered > faulted_before, f"{name}: the faulted key's requests were faulted"
        assert bad.total_usdt == last_good.total_usdt, f"{name}: the last good balance is kept"
        assert bad.latest_snapshot_id == last_good.latest_snapshot_id
        assert _snapshots([bad_pk])[bad_pk] == before[bad_pk], f"{name}: a snapshot from a failed check"
        row = _row_html(client, bad_pk)
        assert 'data-status="temporary"' in row and "Temporary issue" in row, row
        assert f"{usdt(last_good.total_usdt)} USDT" in row, row
        now = _snapshots(pks)
        counts["final"] += len(refreshed) + 1  # the faulted key's final status: Temporary issue
        counts["run twice"] += sum(now[pk] - before[pk] - 1 for pk in good)

        _clear(sandbox, key_faults)
        _sweep_until(
            lambda: _rows([bad_pk])[bad_pk].status == Status.CONNECTED,
            timeout=20,
            message=lambda name=name: f"{venue.id} {name}: did not recover: {_statuses([bad_pk])}",
        )
        counts["recovered"] += 1
        runs = _succeeded(worker.log_path.read_text()[log_offset:])
        slowest[name] = round(max(seconds for seconds, _ in runs), 2)
        counts["duplicates dropped"] += sum(result == "None" for _, result in runs)
        # No worker thread is held much longer than one read timeout (or one Retry-After).
        assert slowest[name] < READ_TIMEOUT + RETRY_AFTER + 1, f"{name}: a check ran {slowest[name]} s"

    faulted_key = own_keys[0].api_key
    if key_faults is None:
        # The faulted key's own path really was its own: it called it, no other key ever did.
        on_own_paths = Counter(k for _, k, path, _ in calls.entries() if path.startswith(tuple(own_paths)))
        assert on_own_paths[faulted_key] > 0 and sum(on_own_paths.values()) == on_own_paths[faulted_key]
    # With KeyFaults, only the faulted key's requests were faulted (checked every round above);
    # the other keys may still meet the venue's own limits (OKX's 1/s on its valuation
    # cross-check, whose failure never fails a read): harmless.

    # The whole venue down at once: its keys all keep their balances; the other venues' go on.
    totals = {pk: c.total_usdt for pk, c in _rows(own).items()}
    before = _snapshots(pks)
    sandbox.faults.replace({"http_status": 503})
    started = time.monotonic()
    ExchangeConnection.objects.filter(pk__in=pks).update(next_check_at=timezone.now())
    queue_due_checks()
    counts["submitted"] += len(pks)

    def venue_down():
        rows, now = _rows(pks), _snapshots(pks)
        down = all(rows[pk].status == Status.TEMPORARY for pk in own)
        fine = all(rows[pk].status == Status.CONNECTED and now[pk] > before[pk] for pk in others)
        return down and fine

    _sweep_until(venue_down, timeout=20, message=lambda: _statuses(pks))
    healthy_in["whole venue down"] = round(time.monotonic() - started, 2)
    assert healthy_in["whole venue down"] < READ_TIMEOUT + 4, healthy_in
    assert {pk: c.total_usdt for pk, c in _rows(own).items()} == totals
    assert all(_snapshots(own)[pk] == before[pk] for pk in own)
    page = client.get(reverse("exchanges:connection-list")).content.decode()
    assert page.count('data-status="temporary"') == len(own)
    counts["final"] += len(pks)
    sandbox.faults.clear()
    _sweep_until(
        lambda: all(c.status == Status.CONNECTED for c in _rows(pks).values()),
        timeout=20,
        message=lambda: _statuses(pks),
    )
    counts["recovered"] += len(own)
    counts["lost"] = counts["submitted"] - counts["final"]
    print(
        f"\n{venue.name} faults: {dict(counts)}\nslowest check per fault (s): {slowest}"
        f"\nother keys refreshed in (s): {healthy_in}"
    )
    assert counts["lost"] == 0, counts
    assert counts["run twice"] == 0, counts  # a second run would add a snapshot (harmless), none expected


# --- (b) A worker killed in the middle of a wave of verifications (Binance's, and every venue's) ---

N = 12  # verifications, and as many refreshes


@pytest.fixture
def fleet(transactional_db, sandboxes, tmp_path):
    """A CeleryFleet (tests/faults/conftest.py) pointed at every venue's sandbox."""
    forget_shared_messages()
    started = CeleryFleet(tmp_path, sandboxes["htx"].url)
    started.env.update(sandbox_env(sandboxes))
    for venue in registry.venues():
        started.env[f"{venue.env_prefix}_READ_TIMEOUT"] = FAST["HTX_READ_TIMEOUT"]
    yield started
    started.stop_all()
    forget_shared_messages()


def _tally(venue, pks: list[int], *, since: datetime) -> dict:
    """Where the wave stands: done (Connected with a snapshot written since `since`), pending,
    claimed by a worker now, and any connection whose result was written twice."""
    now = timezone.now()
    rows = list(ExchangeConnection.objects.filter(pk__in=pks).values_list("pk", "status", "claimed_until"))
    snapshots = _snapshots(pks, since)
    verified = Counter(
        ConnectionEvent.objects.filter(
            connection_id__in=pks, message=f"Key verified with {venue.name}", at__gte=since
        ).values_list("connection_id", flat=True)
    )
    done = {pk for pk, status, _ in rows if status == Status.CONNECTED and snapshots[pk] >= 1}
    return {
        "done": done,
        "pending": set(pks) - done,
        "claimed": {pk for pk, _, until in rows if until is not None and until > now},
        "snapshots": snapshots,
        "verified": verified,
        "twice": {pk for pk in pks if snapshots[pk] > 1 or verified[pk] > 1},
        "statuses": Counter(status for _, status, _ in rows),
    }


@pytest.mark.worker
@pytest.mark.parametrize("venue", VENUES)
def test_a_worker_killed_mid_wave_of_verifications_loses_nothing(venue, fleet, sandboxes, alice):
    sandbox = sandboxes[venue.id]
    start, since = time.monotonic(), timezone.now()
    keys, _ = _keys(venue, sandbox, 2 * N)
    calls = Calls(sandbox, keys)
    sandbox.faults.latency_ms = 300  # five or six calls to the venue: 1.5 to 2 s per check
    first = fleet.spawn_worker("a", concurrency=4)
    beat = fleet.spawn_beat()
    verify_keys, refresh_keys = keys[:N], keys[N:]
    # Interleaved in the queue: a refresh (as beat's sweeper queues one), then a submission.
    verifying, refreshing = [], []
    for i, (v, r) in enumerate(zip(verify_keys, refresh_keys, strict=True)):
        [pk] = _connected_rows(alice, venue, [r], due=timezone.now())
        check_connection.delay(pk)
        refreshing.append(pk)
        verifying += _connect(alice, venue, [v], f"v{i}-")
    pks = verifying + refreshing
    by_pk = dict(zip(pks, [key.api_key for key in verify_keys + refresh_keys], strict=True))
    fleet.ready(first, beat)

    # Kill once some checks have finished and both kinds are half-way through their talk with
    # the venue (row claimed, the key already asked about, the check not finished).
    def mid_wave():
        t = _tally(venue, pks, since=since)
        talking = {pk for pk in t["claimed"] - t["done"] if calls.checks_of(by_pk[pk])}
        enough = len(t["done"]) >= 3 and talking & set(verifying) and talking & set(refreshing)
        return t if enough else None

    kill_when(first, sandbox, mid_wave, timeout=60, message=lambda: str(_tally(venue, pks, since=since)))
    at_kill = _tally(venue, pks, since=since)
    interrupted = at_kill["claimed"] - at_kill["done"]
    interrupted_v, interrupted_r = interrupted & set(verifying), interrupted & set(refreshing)
    assert interrupted_v and interrupted_r, f"the kill did not land mid-check of both kinds: {at_kill}"

    second = fleet.worker("a2", concurrency=4)
    wait_for(
        lambda: not _tally(venue, pks, since=since)["pending"],
        timeout=90,
        interval=0.25,
        message=lambda: f"{_tally(venue, pks, since=since)}\n{fleet.logs()}",
    )
    final = _tally(venue, pks, since=since)
    reread = [pk for pk in pks if calls.checks_of(by_pk[pk]) > 1]
    counts = (
        f"{venue.name} worker kill: submitted={len(pks)} (verify={N} refresh={N}) "
        f"done at kill={len(at_kill['done'])} interrupted by the kill={len(interrupted)} "
        f"(verify={len(interrupted_v)} refresh={len(interrupted_r)}) final={len(final['done'])} "
        f"lost={len(final['pending'])} run twice={len(final['twice'])} | harmless: checks re-read "
        f"from {venue.name}={len(reread)}, duplicate messages that found nothing to do="
        f"{_none_results([first, second])}, queued again by beat's sweeper={_swept([first, second])} "
        f"({elapsed(start)})"
    )
    print(f"\n{counts}")
    assert len(final["pending"]) == 0 and len(final["done"]) == 2 * N, counts  # lost == 0
    assert not final["twice"], counts  # exactly one snapshot (and one "verified") per connection
    assert all(final["verified"][pk] == 1 for pk in verifying), counts
    assert final["statuses"] == Counter({Status.CONNECTED: 2 * N}), counts
    # The interrupted checks are the only ones the venue saw twice (each redone once, from scratch).
    assert len(reread) >= 2 and set(reread) <= interrupted, counts
    assert not final["claimed"], f"rows still claimed after the wave: {final}"


# --- (c) Binance's Retry-After: the connection waits, and the gate's ban stops every check --------


def _ban_left_ms() -> int:
    return int(venue_state.redis_client().pttl(f"{venue_state.gate_for(BINANCE).prefix}:ban"))


def _binance_refusal(sandbox, key, fault: str, retry_after: int):
    """The error Binance's client raises for a 429/418 with Retry-After, over real HTTP (a
    client without a gate, so no ban is left behind), and when the sandbox answered it."""
    sandbox.faults.replace({fault: retry_after})
    client = BINANCE.client(base_url=sandbox.url, credentials=key.credentials, timeout=(2.0, 5.0))
    try:
        with client, pytest.raises(VenueError) as caught:
            client.inspect_key(Prior())
    finally:
        sandbox.faults.clear()
    return caught.value, time.time()


def test_binance_retry_after_sets_the_next_check_no_sooner_than_binance_asked(sandboxes, alice):
    """After a 429 or 418 with Retry-After, next_check_at is never earlier than the answer plus
    Retry-After (recording.py: "never sooner than the venue asked (Retry-After)"). A real 429 and
    a real 418 (Retry-After 120 s, more than our own first backoff of 30 s), each recorded for ten
    connections claimed as a worker claims them, the way connection_check records a failure."""
    sandbox = sandboxes["binance"]
    keys, _ = _binance_keys(sandbox, 20, first_has_futures=False)
    pks = _connected_rows(alice, BINANCE, keys, due=timezone.now())
    retry_after, early, final = 120, [], 0
    for fault, http_status, batch in (("rate_limited", 429, pks[:10]), ("banned", 418, pks[10:])):
        error, answered = _binance_refusal(sandbox, keys[0], fault, retry_after)
        assert error.kind == "rate_limited" and error.retry_after == retry_after and not error.permanent
        assert error.status == http_status
        earliest = datetime.fromtimestamp(answered, tz=UTC) + timedelta(seconds=retry_after)
        for pk in batch:
            connection = claims.claim(pk)
            assert connection is not None
            assert recording.record_failure(connection, error) == Status.TEMPORARY
            row = ExchangeConnection.objects.get(pk=pk)
            # Its final status for now: Temporary issue, key and last balance kept, written once.
            final += row.has_keys and row.attempts == 1 and row.error_kind == "rate_limited"
            if row.next_check_at < earliest:
                early.append(f"{http_status}: {(earliest - row.next_check_at).total_seconds():.1f} s early")
    lost = len(pks) - final
    print(
        f"\nBinance Retry-After {retry_after} s: submitted={len(pks)} final={final} lost={lost} "
        f"run twice=0 | next check scheduled before Retry-After={len(early)}: {early}"
    )
    assert lost == 0
    # The backoff's jitter must never bring the next check before the time Binance asked for.
    assert not early, f"next check scheduled before Retry-After: {early}"


@pytest.mark.worker
def test_binance_429_and_418_ban_every_check_to_binance_until_retry_after_without_failing_them(
    sandboxes, start_worker, alice
):
    retry_after = 6
    worker = start_worker("ban", BINANCE_GATE_WAIT_SECONDS=1, VERIFY_STALE_SECONDS=2)
    sandbox = sandboxes["binance"]
    keys, _ = _binance_keys(sandbox, 5, first_has_futures=False)
    calls = Calls(sandbox, keys)
    binance = _connect(alice, BINANCE, keys, "b")
    others = []
    for other in registry.venues():
        if other.id != BINANCE.id:
            others += _connect(alice, other, _keys(other, sandboxes[other.id], 2)[0], other.id)
    pks = binance + others
    wait_for(
        lambda: all(c.status == Status.CONNECTED for c in _rows(pks).values()),
        timeout=40,
        message=lambda: _statuses(pks),
    )
    trigger, held = binance[0], binance[1:]
    trigger_key = keys[0].api_key
    counts = Counter(submitted=0, final=0, lost=0, **{"run twice": 0, "released": 0})
    for fault, http_status in (("rate_limited", 429), ("banned", 418)):
        before = _snapshots(pks)
        events_before = {pk: ConnectionEvent.objects.filter(connection_id=pk).count() for pk in held}
        log_offset = len(worker.log_path.read_text())
        sandbox.faults.replace({fault: retry_after})
        ExchangeConnection.objects.filter(pk=trigger).update(next_check_at=timezone.now())
        queue_due_checks()
        wait_for(
            lambda: _rows([trigger])[trigger].status == Status.TEMPORARY,
            timeout=15,
            message=lambda: _statuses([trigger]),
        )
        sandbox.faults.clear()  # from now on, any request Binance gets would be answered
        answered = max(t for t, _, _, s in calls.entries() if s == http_status)
        ban_ends = answered + retry_after
        assert _ban_left_ms() > 0, "the gate holds Binance's ban"
        row = _rows([trigger])[trigger]
        assert row.error_kind == "rate_limited" and row.has_keys
        assert row.total_usdt is not None and row.latest_snapshot_id is not None  # balance kept
        # Every other key is due now; the sweeper queues them (and again at each sweep).
        ExchangeConnection.objects.filter(pk__in=held + others).update(next_check_at=timezone.now())
        counts["submitted"] += len(pks)

        def others_refreshed(before=before):
            now = _snapshots(others)
            return all(now[pk] > before[pk] for pk in others)

        _sweep_until(
            others_refreshed, timeout=15, message=lambda fault=fault: f"{fault}: {_statuses(others)}"
        )
        assert time.time() < ban_ends, "the other venues went on during Binance's ban"
        # Until the ban ends, the held keys are tried and let go: never failed, never written.
        while time.time() < ban_ends - 0.5:
            queue_due_checks()
            for pk, c in _rows(held).items():
                assert c.status == Status.CONNECTED and c.attempts == 0 and not c.error_kind, (
                    f"{fault}: connection {pk} was marked failed during the ban: {c.status} {c.error_kind}"
                )
            assert all(_snapshots(held)[pk] == before[pk] for pk in held), "written during the ban"
            time.sleep(0.5)
        log = worker.log_path.read_text()[log_offset:]
        released = log.count("No admission to Binance")
        assert released >= len(held), f"{fault}: the held checks were released ({released})\n{log[-3000:]}"
        counts["released"] += released
        # Once it ends, everything goes through, the trigger included.
        _sweep_until(
            lambda before=before: (
                all(_snapshots(held)[pk] > before[pk] for pk in held)
                and _rows([trigger])[trigger].status == Status.CONNECTED
            ),
            timeout=20,
            message=lambda fault=fault: f"{fault}: after the ban {_statuses(binance)}",
        )
        during = [(t, path) for t, key, path, _ in calls.entries() if answered < t < ban_ends]
        assert not during, f"{fault}: Binance was called during its ban: {during}"
        first_again = min(t for t, key, _, _ in calls.entries() if key == trigger_key and t > answered)
        assert first_again >= ban_ends, (
            f"{fault}: the trigger was checked {ban_ends - first_again:.2f} s early"
        )
        assert all(
            ConnectionEvent.objects.filter(connection_id=pk).count() == events_before[pk] for pk in held
        )
        now = _snapshots(pks)
        counts["final"] += sum(1 for pk in pks if _rows([pk])[pk].status == Status.CONNECTED)
        counts["run twice"] += sum(max(now[pk] - before[pk] - 1, 0) for pk in held + others)
        for pk, c in _rows(pks).items():
            assert c.status == Status.CONNECTED, (pk, c.status)
    counts["lost"] = counts["submitted"] - counts["final"]
    print(f"\nBinance 429/418 with Retry-After {retry_after} s: {dict(counts)}")
    assert counts["lost"] == 0, counts
    assert counts["run twice"] == 0, counts
