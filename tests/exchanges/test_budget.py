"""Venue budgets at scale (issue #12, target 3): the refreshes a minute that fit each venue's
per-IP limits, the sweeper sending at most that, oldest due first, and the interval it shows."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta

import pytest
import redis
from django.urls import reverse
from django.utils import timezone

from exchanges import budget, registry, services, tasks
from exchanges.dispatch import INTERACTIVE_QUEUE
from exchanges.models import ExchangeConnection, Status
from exchanges.venues.binance import limits as binance_limits
from exchanges.venues.binance.venue import BINANCE
from exchanges.venues.bybit import limits as bybit_limits
from exchanges.venues.bybit.venue import BYBIT
from exchanges.venues.kit.gate import SAFETY
from tests.conftest import wait_for


@pytest.fixture(autouse=True)
def _no_budget_state():
    """Each test starts without the sweeper's pacing or published stretches."""
    client = budget.redis_client()
    keys = list(client.scan_iter("budget:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def broker():
    from bitsgap_clone.celery import app

    app.control.purge()
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    app.control.purge()


def _messages(broker, queue: str = tasks.PACED_QUEUE) -> list[tuple[list, datetime | None]]:
    """(arguments, eta) of each task message waiting in ``queue``, oldest first."""
    found = []
    for raw in reversed(broker.lrange(queue, 0, -1)):
        message = json.loads(raw)
        eta = message["headers"].get("eta")
        found.append((json.loads(base64.b64decode(message["body"]))[0], eta and datetime.fromisoformat(eta)))
    return found


def _sent_ids(broker, queue: str = tasks.PACED_QUEUE) -> list[int]:
    """Every connection id sent to ``queue``, in order (a message may carry several)."""
    ids: list[int] = []
    for args, _ in _messages(broker, queue):
        ids += args[0] if isinstance(args[0], list) else [args[0]]
    return ids


def _due(owner, venue_id: str, n: int, *, start: int = 0) -> list[int]:
    """``n`` connected keys of one venue, each overdue by a different time (the first the most)."""
    now = timezone.now()
    rows = ExchangeConnection.objects.bulk_create(
        ExchangeConnection(
            owner=owner,
            exchange=venue_id,
            status=Status.CONNECTED,
            established=True,
            access_key_fingerprint=f"{venue_id}-{start + i}",
            next_check_at=now - timedelta(seconds=3600 - i),
        )
        for i in range(n)
    )
    return [row.pk for row in rows]


def _ran(ids: list[int]) -> None:
    """What a worker does to checks it ran: their marks go, their next check is later."""
    tasks._unmark_queued(ids)
    ExchangeConnection.objects.filter(pk__in=ids).update(
        next_check_at=timezone.now() + timedelta(seconds=300)
    )


def _next_sweep(venue_id: str) -> None:
    """Time moves on to the next sweep: the previous one's checks have all started."""
    budget.redis_client().delete(budget.PACED_KEY.format(venue_id))


# --- The budget, from the venues' own declarations ------------------------------------------------


def test_binance_fits_166_refreshes_a_minute_set_by_its_sapi_weight():
    got = budget.venue_budget(BINANCE)
    sapi, api = sorted(got.shares, key=lambda share: share.group, reverse=True)
    # E4 1 + E6 1 + E7 60 on /sapi (one budget of 12,000 to the gate), E5 20 on /api (6,000).
    assert (sapi.group, sapi.cost, sapi.limit) == ("sapi", 62, int(binance_limits.SAPI_IP_LIMIT * SAFETY))
    assert (api.group, api.cost, api.limit) == ("api", 20, int(binance_limits.API_LIMIT * SAFETY))
    # 8 checks a user waits for kept free in every minute: (10,800 - 8 x 62) / 62.
    assert sapi.headroom == 8 * 62
    assert got.binding == sapi
    assert got.per_minute == pytest.approx((10_800 - 496) / 62)  # 166.2
    assert api.per_minute == pytest.approx((5_400 - 160) / 20)  # 262: not the one that binds


def test_bybit_fits_2064_refreshes_a_minute_set_by_its_per_ip_600_per_5_s():
    got = budget.venue_budget(BYBIT)
    (share,) = got.shares
    # query-api, wallet-balance and the funding balance are per UID for the gate, but Bybit's
    # per-IP budget counts every request too.
    assert (share.group, share.cost, share.window_ms) == (bybit_limits.IP_GROUP, 3, 5_000)
    assert share.limit == int(600 * SAFETY)
    assert got.per_minute == pytest.approx((540 - 8 * 3) / 3 * 12)


@pytest.mark.parametrize("venue_id", ["htx", "okx"])
def test_a_venue_limited_only_per_account_has_no_server_budget(venue_id):
    got = budget.venue_budget(registry.get(venue_id))
    assert got.shares == () and got.per_minute is None
    assert venue_id not in budget.budgets()


def test_the_headroom_follows_the_gates_interactive_reserve(settings):
    settings.BINANCE_INTERACTIVE_RESERVED_REQUESTS = 0
    assert budget.venue_budget(BINANCE).per_minute == pytest.approx(10_800 / 62)
    settings.BINANCE_INTERACTIVE_RESERVED_REQUESTS = 100  # capped at a quarter of the cap, as the gate does
    settings.BINANCE_MAX_CONCURRENT_REQUESTS = 48
    assert budget.venue_budget(BINANCE).binding.headroom == 12 * 62


def test_a_connection_wanting_more_than_the_budget_waits_the_stretch():
    per_second = 166.0 / 60
    assert budget.stretch_seconds({300: 800}, per_second) == 0  # 2.7 a second wanted: it fits
    stretch = budget.stretch_seconds({300: 10_000}, per_second)
    assert 300 + stretch == pytest.approx(10_000 / per_second, rel=1e-6)  # about 60 min
    mixed = budget.stretch_seconds({60: 1_000, 300: 9_000}, per_second)
    assert sum(n / (i + mixed) for i, n in {60: 1_000, 300: 9_000}.items()) == pytest.approx(per_second)


# --- The sweeper ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sweeper_sends_binance_at_most_its_budget_until_the_next_sweep(alice, broker, settings):
    settings.SWEEP_SECONDS = 30
    ids = _due(alice, "binance", 200)
    allowance = int(budget.venue_budget(BINANCE).per_minute / 2)  # 30 s of 166.2 a minute: 83

    assert tasks.queue_due_checks() == allowance
    assert _sent_ids(broker) == ids[:allowance]  # the longest overdue first
    # The rest are neither sent nor marked: a later sweep sends them.
    marked = budget.redis_client().exists(*[tasks.QUEUED_MARK.format(pk) for pk in ids[allowance:]])
    assert marked == 0
    # Spread over the 30 s until the next sweep, one every 60 / 166.2 s, not sent in one burst:
    # the checks of about a second in one message (3), each message due at its first's turn.
    messages = _messages(broker)
    assert [len(args[0]) for args, _ in messages] == [3] * 27 + [2]
    etas = [eta for _, eta in messages][1:]  # the first starts at once (no eta)
    assert all(etas) and etas == sorted(etas)
    spread = (etas[-1] - etas[0]).total_seconds()
    assert spread == pytest.approx((81 - 3) * 60 / budget.venue_budget(BINANCE).per_minute, abs=0.5)

    assert tasks.queue_due_checks() == 0  # a sweep that comes early sends nothing more


@pytest.mark.django_db
def test_every_row_is_sent_once_before_any_is_sent_twice(alice, broker, settings):
    settings.SWEEP_SECONDS = 30
    ids = _due(alice, "binance", 200)
    sent: list[int] = []
    for _ in range(3):
        _next_sweep("binance")
        tasks.queue_due_checks()
        batch = _sent_ids(broker)[len(sent) :]
        sent += batch
        _ran(batch)
    assert sent == ids  # 83, 83, then the last 34: each once, oldest first
    _next_sweep("binance")
    _due(alice, "binance", 1, start=500)
    assert tasks.queue_due_checks() == 1  # only the new one is due


@pytest.mark.django_db
def test_a_check_given_back_is_sent_again_first(alice, broker, settings):
    settings.SWEEP_SECONDS = 30
    ids = _due(alice, "binance", 120)
    tasks.queue_due_checks()
    first = _sent_ids(broker)
    _ran(first[1:])
    tasks._unmark_queued(first[:1])  # the gate gave it back: still due, mark gone
    _next_sweep("binance")
    tasks.queue_due_checks()
    assert _sent_ids(broker)[len(first)] == ids[0]


@pytest.mark.django_db
def test_rows_still_waiting_in_the_queue_count_against_the_budget(alice, broker, settings):
    settings.SWEEP_SECONDS = 30
    _due(alice, "binance", 200)
    first = tasks.queue_due_checks()
    _next_sweep("binance")  # the workers are behind: nothing of the first sweep has started
    assert tasks.queue_due_checks() == 0
    assert len(_sent_ids(broker)) == first


@pytest.mark.django_db
def test_venues_without_a_server_budget_are_sent_everything_due_at_once(alice, broker):
    htx = _due(alice, "htx", 150)
    okx = _due(alice, "okx", 150)
    _due(alice, "binance", 150)
    sent = tasks.queue_due_checks()
    assert sorted(_sent_ids(broker, "celery")) == sorted(htx + okx)  # at once, as before
    assert len(_sent_ids(broker)) == 83  # Binance: its budget, paced on a queue of its own
    assert sent == 300 + 83


@pytest.mark.django_db
def test_a_paced_message_holds_a_seconds_worth_of_checks_whatever_the_batch_size(alice, broker, settings):
    """Binance's budget is ~2.8 refreshes a second: messages of 3, side by side, not bursts of
    CHECK_BATCH_SIZE (20) that would spend seven seconds of it at once."""
    settings.CHECK_BATCH_SIZE = 20
    ids = _due(alice, "binance", 200)
    tasks.queue_due_checks()
    batches = [args[0] for args, _ in _messages(broker)]
    assert [pk for batch in batches for pk in batch] == ids[:83]
    assert {len(batch) for batch in batches[:-1]} == {3} and len(batches[-1]) <= 3


def test_paced_messages_are_timed_so_the_workers_take_them_before_a_waves_checks(alice, broker):
    """Each paced message, one check or several, is a batch marked ``timed``: the check threads
    take it before the checks of other batches waiting for them (exchanges.batches)."""
    _due(alice, "binance", 5)
    tasks.queue_due_checks()
    bodies = [
        json.loads(base64.b64decode(json.loads(raw)["body"]))
        for raw in broker.lrange(tasks.PACED_QUEUE, 0, -1)
    ]
    assert bodies and all(kwargs == {"timed": True} for _, kwargs, _ in bodies)
    assert all(isinstance(args[0], list) for args, _, _ in bodies)


@pytest.mark.django_db(transaction=True)
def test_checks_a_user_waits_for_are_never_held_back_by_the_budget(alice, broker, settings):
    _due(alice, "binance", 200)
    tasks.queue_due_checks()
    # The budget is spent for the next ten minutes.
    client = budget.redis_client()
    client.set(budget.PACED_KEY.format("binance"), budget._redis_ms(client) + 600_000, px=700_000)
    assert tasks.queue_due_checks() == 0

    api_key, secret = BINANCE.demo_key("good")
    connection = services.connection_create(
        owner=alice, exchange="binance", label="", access_key=api_key, secret_key=secret
    )
    assert _messages(broker, INTERACTIVE_QUEUE) == [([connection.pk], None)]  # sent at once
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        status=Status.CONNECTED, established=True, last_checked_at=timezone.now() - timedelta(minutes=5)
    )
    connection.refresh_from_db()
    services.connection_refresh_now(connection=connection)
    assert [args for args, _ in _messages(broker, INTERACTIVE_QUEUE)] == [[connection.pk]] * 2


@pytest.mark.django_db(transaction=True)
def test_a_paced_refresh_runs_in_a_real_worker_against_the_binance_sandbox(
    alice, broker, venues_worker_process, sandboxes
):
    api_key, secret = BINANCE.demo_key("good")
    connection = services.connection_create(
        owner=alice, exchange="binance", label="", access_key=api_key, secret_key=secret
    )
    wait_for(lambda: ExchangeConnection.objects.get(pk=connection.pk).status == Status.CONNECTED, timeout=30)
    before = ExchangeConnection.objects.get(pk=connection.pk).last_refreshed_at
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())
    assert tasks.queue_due_checks() == 1
    wait_for(lambda: ExchangeConnection.objects.get(pk=connection.pk).last_refreshed_at != before, timeout=30)
    stats = sandboxes["binance"].stats.snapshot()
    assert sum(stats["refused_by_rate_limit"].values()) == 0


def test_a_wave_measures_a_venues_clock_once_per_process_not_once_per_thread():
    """At a wave's start every thread wants the clock; a venue limiting that call per IP (OKX's
    10 per 2 s) would refuse some if each asked."""
    import threading
    import time

    from exchanges import venue_state

    class Client:
        clock_offset_ms = 0
        calls = 0

        def sync_clock(self) -> int:
            Client.calls += 1
            time.sleep(0.05)
            return 42

    clients = [Client() for _ in range(16)]
    threads = [threading.Thread(target=venue_state.sync_clock, args=(BINANCE, c)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Client.calls == 1
    assert {c.clock_offset_ms for c in clients} == {42}


# --- What the pages say -----------------------------------------------------------------------------


def _publish(venue, keys: int) -> float:
    return budget.publish(budget.venue_budget(venue), {300: keys})


def test_the_note_says_how_often_why_and_how_many_share_the_budget(settings):
    settings.SWEEP_SECONDS = 30
    stretch = _publish(BINANCE, 10_000)
    found = budget.stretches(["binance", "htx"])
    assert set(found) == {"binance"}
    note = budget.interval_note(found["binance"], 300, "Binance")
    assert note.seconds == pytest.approx(300 + stretch, abs=0.1)
    assert note.short == "Refreshed about every 60 min"
    assert note.text == (
        "Refreshed about every 60 min, not every 5 min: Binance limits how often one server may ask "
        "for balances, and the 10,000 Binance keys on this server share that limit. Refresh now is "
        "not held back by it."
    )
    # A user refreshing every hour waits the same stretch after each due time.
    assert budget.interval_note(found["binance"], 3600, "Binance").every == "1 h 55 min"


def test_no_note_when_the_budget_fits_or_the_figure_is_missing_or_unreadable(settings):
    settings.SWEEP_SECONDS = 30
    assert budget.interval_note(None, 300, "Binance") is None
    _publish(BINANCE, 500)  # 500 keys every 5 min fit 166 a minute
    assert budget.interval_note(budget.stretches(["binance"])["binance"], 300, "Binance") is None
    budget.redis_client().set(budget.STRETCH_KEY.format("binance"), "not json", ex=30)
    assert budget.stretches(["binance"]) == {}


def test_the_figure_lapses_when_the_sweeper_stops(settings):
    settings.SWEEP_SECONDS = 30
    _publish(BINANCE, 10_000)
    ttl = budget.redis_client().ttl(budget.STRETCH_KEY.format("binance"))
    assert 0 < ttl <= budget.STRETCH_SWEEPS * 30


@pytest.mark.django_db
def test_the_sweeper_publishes_the_stretch_from_current_counts(alice, broker, settings):
    settings.SWEEP_SECONDS = 30
    _due(alice, "binance", 2_000)
    tasks.queue_due_checks()
    got = budget.stretches(["binance"])["binance"]
    assert got.keys == 2_000
    assert 300 + got.seconds == pytest.approx(2_000 / (budget.venue_budget(BINANCE).per_minute / 60), abs=0.2)


@pytest.mark.django_db
def test_when_the_workers_are_behind_the_budget_the_figure_is_withdrawn(alice, broker, settings):
    settings.SWEEP_SECONDS = 30
    _due(alice, "binance", 2_000)
    tasks.queue_due_checks()
    assert "binance" in budget.stretches(["binance"])
    _next_sweep("binance")  # the next sweep, and none of the first sweep's checks has started
    tasks.queue_due_checks()
    assert budget.stretches(["binance"]) == {}  # no note rather than one too short


def test_a_few_checks_of_the_previous_sweep_not_yet_started_are_not_being_behind():
    assert not budget.behind(waiting=2, allowance=83)
    assert not budget.behind(waiting=8, allowance=83)
    assert budget.behind(waiting=9, allowance=83)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.django_db
def test_the_row_and_the_detail_page_show_the_stretched_interval(alice_client, alice, settings):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    settings.SWEEP_SECONDS = 30
    (binance,) = _due(alice, "binance", 1)
    (htx,) = _due(alice, "htx", 1)
    url = reverse("exchanges:connection-list")
    alice_client.get(url)
    with CaptureQueriesContext(db) as without:
        page = alice_client.get(url).content.decode()
    assert 'data-testid="refresh-interval"' not in page  # no figure from the sweeper: no note

    _publish(BINANCE, 10_000)
    _publish(BYBIT, 10_000)
    with CaptureQueriesContext(db) as with_note:
        page = alice_client.get(url).content.decode()
    assert page.count('data-testid="refresh-interval"') == 1  # the Binance row only
    assert "Refreshed about every 60 min (Binance's limit per server)</span>" in page
    assert len(with_note) == len(without)  # read from Redis, no query more

    detail = alice_client.get(reverse("exchanges:connection-detail", args=[binance])).content.decode()
    assert "Binance limits how often one server may ask for balances, and the 10,000 Binance keys" in detail
    other = alice_client.get(reverse("exchanges:connection-detail", args=[htx])).content.decode()
    assert 'data-testid="refresh-interval"' not in other


@pytest.mark.django_db
def test_a_refused_key_shows_no_refresh_interval(alice_client, alice, settings):
    settings.SWEEP_SECONDS = 30
    (binance,) = _due(alice, "binance", 1)
    ExchangeConnection.objects.filter(pk=binance).update(status=Status.INVALID)
    _publish(BINANCE, 10_000)
    page = alice_client.get(reverse("exchanges:connection-detail", args=[binance])).content.decode()
    assert 'data-testid="refresh-interval"' not in page
