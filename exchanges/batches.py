"""Checks in batches: the sweeper's messages (CHECK_BATCH_SIZE connection ids each) claimed in one
query, checked side by side, and their plain refreshes written together.

Why: alone, a refresh paid Celery's cost per message (~2 ms of worker CPU), two queries to claim
its row and six to write its result (docs/performance.md, issue #12). In a batch the message,
the claim and the write are shared; the checks themselves stay one per row, exactly as
``keycheck.check_claimed`` does them.

Side by side, not one after the other: each check of a batch runs on this process's pool of
check threads (CHECK_THREADS), so a key whose venue hangs delays no other key of its batch, and
the task's thread is held no longer than its slowest check. Plain refreshes
(``recording.plain_refresh``, almost all of a wave) are written as soon as those that finished
together are in (GATHER_SECONDS), so a slow one's wait is not the others'; anything else a check finds (a new
status, a failure, a first verification) is written by the check at once, as alone.

A check that has not started halfway through the claim's lifetime is not started: its row is let
go for the sweeper, so a claim never lapses under a check still running. Checks a user waits for
are never batched (exchanges.dispatch sends them alone, on their own queue).

Timed checks first: the sweeper sends a venue with a per-IP budget its checks a second's worth at
a time, each message due at its turn (tasks._send_paced). Behind a refresh wave the threads have
hundreds of other checks waiting; a timed check that waited behind them would start late, then
with the next ones, and spend its venue's budget in a burst the gate must hold back. So the
threads take timed checks before the others (``_CheckThreads``).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future

from django.conf import settings
from django.db import close_old_connections

from . import recording, venue_state
from .claims import claim_many, release
from .keycheck import PlainRefresh, check_claimed
from .models import ExchangeConnection, Status

# After a check of a batch finishes, how long the others may take to finish too and be written in
# the same transaction: a few queries per write, so the fewer writes the less CPU; and a key
# that hangs delays the others' writes by no more than this.
GATHER_SECONDS = 0.25


class _CheckThreads:
    """A fixed set of threads taking work in order, timed work before the rest."""

    def __init__(self, count: int) -> None:
        self._work: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # first come, first served within each kind
        for n in range(count):
            threading.Thread(target=self._take, name=f"check_{n}", daemon=True).start()

    def submit(self, fn, *args, timed: bool = False, **kwargs) -> Future:
        future: Future = Future()
        self._work.put((0 if timed else 1, next(self._order), future, fn, args, kwargs))
        return future

    def _take(self) -> None:
        while True:
            _, _, future, fn, args, kwargs = self._work.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 (handed to whoever waits for it)
                future.set_exception(exc)
            else:
                future.set_result(result)


_pool: _CheckThreads | None = None
_pool_lock = threading.Lock()


def _threads() -> _CheckThreads | None:
    """This process's check threads; None when CHECK_THREADS is 0 (checks run in the caller's
    thread, one after the other: for tests inside one database transaction)."""
    global _pool
    if settings.CHECK_THREADS <= 0:
        return None
    with _pool_lock:
        if _pool is None:
            _pool = _CheckThreads(settings.CHECK_THREADS)
        return _pool


# What a check of a batch comes back with: a status it wrote, or a plain refresh for the batch
# to write, or nothing (not started in time, or nothing to do).
_Outcome = tuple[str | None, PlainRefresh | None]


def _run(connection: ExchangeConnection, deadline: float, *, own_thread: bool) -> _Outcome:
    if time.monotonic() > deadline:
        release(connection)  # the sweeper sends it again
        return None, None
    if own_thread:
        close_old_connections()  # as Celery does around a task: a broken or old connection goes
    plain: list[PlainRefresh] = []
    try:
        status = check_claimed(connection, plain)
    finally:
        venue_state.settle_gates()
        if own_thread:
            close_old_connections()
    return status, (plain[0] if plain else None)


def connections_check(*, connection_ids: list[int], timed: bool = False) -> list[str | None]:
    """Check a batch of connections. Returns their statuses in the order of the ids (None: another
    worker had it, there was nothing to do, or it was let go for the sweeper); an id sent twice is
    checked once. ``timed``: the sweeper paced these checks (they go before the others)."""
    deadline = time.monotonic() + settings.CHECK_CLAIM_SECONDS / 2
    claimed = claim_many(connection_ids)
    pool = _threads()
    statuses: dict[int, str | None] = {}
    if pool is None:
        outcomes = [_run(connection, deadline, own_thread=False) for connection in claimed]
        _settle(claimed, outcomes, statuses)
    else:
        _side_by_side(pool, claimed, deadline, statuses, timed)
    return [statuses.pop(connection_id, None) for connection_id in connection_ids]


def _side_by_side(pool: _CheckThreads, claimed, deadline: float, statuses: dict, timed: bool) -> None:
    done: queue.SimpleQueue = queue.SimpleQueue()  # (connection, future), as each check ends
    for connection in claimed:
        future = pool.submit(_run, connection, deadline, own_thread=True, timed=timed)
        future.add_done_callback(lambda future, connection=connection: done.put((connection, future)))
    failure: BaseException | None = None
    left = len(claimed)
    while left:
        finished = [done.get()]
        # Gather what finishes shortly after, to write it in the same transaction.
        until = time.monotonic() + GATHER_SECONDS
        while len(finished) < left:
            try:
                finished.append(done.get(timeout=max(until - time.monotonic(), 0)))
            except queue.Empty:
                break
        left -= len(finished)
        rows, outcomes = [], []
        for connection, future in finished:
            rows.append(connection)
            try:
                outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 (raised below, once the others are written)
                failure = failure or exc
                outcomes.append((None, None))
        _settle(rows, outcomes, statuses)
    if failure is not None:
        raise failure  # the task retries (a database outage): the checks written stay written


def _settle(rows: list[ExchangeConnection], outcomes: list[_Outcome], statuses: dict) -> None:
    """Write the plain refreshes among ``outcomes`` together; note every row's status."""
    plain = [refresh for _, refresh in outcomes if refresh is not None]
    written = {connection.pk for connection in recording.record_refreshes(plain)}
    for connection, (status, refresh) in zip(rows, outcomes, strict=True):
        if refresh is not None:
            status = Status.CONNECTED if connection.pk in written else None
        statuses[connection.pk] = status
