"""Issue #6, scenario 7: the broker (Redis) is down when users click Connect.

The web side cannot hand the check to a worker. Each user is told at once, and on every later
look at the connection, that verification is queued and starts by itself once the background
service is back; nothing is lost. When a broker comes up on that address, beat's sweeper
queues the submissions and a worker takes each one to Connected, exactly once.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import SecurityEvent
from bitsgap_clone.embedded_redis import free_port, start
from exchanges.models import ConnectionEvent, ExchangeConnection, Status
from exchanges.tasks import queue_due_checks
from tests.conftest import stop_process, wait_for

from ._broker import web_broker
from ._procs import add_sandbox_keys, start_worker

QUEUED_REPLY = "Verification is queued."
QUEUED_ROW = "Verification queued: it starts automatically once our background service is back."
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "modal-body"}


@pytest.fixture
def broker_address():
    """A loopback port for a broker that is down until the test starts one there."""
    port = free_port()
    servers = []
    yield port, servers
    for server in servers:
        server.terminate()
        server.wait(10)


def _statuses(pks) -> dict[int, str]:
    return dict(ExchangeConnection.objects.filter(pk__in=pks).values_list("pk", "status"))


@pytest.mark.worker
def test_connect_while_the_broker_is_down_is_queued_and_verified_once_it_is_back(
    transactional_db, sandbox, alice, settings, tmp_path, broker_address
):
    port, servers = broker_address
    broker_url = f"redis://127.0.0.1:{port}/0"
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "connect_key": "100/h/user,100/h/ip"}
    settings.VERIFY_STALE_SECONDS = 0  # the sweeper re-queues at once (60 s by default)
    keys = add_sandbox_keys(sandbox, 3, first=700)
    client = Client()
    client.force_login(alice)
    replies = []
    with web_broker(broker_url):
        for n, (key, secret) in enumerate(keys):
            form = {"label": f"Queued {n}", "access_key": key, "secret_key": secret}
            started = time.monotonic()
            if n < 2:  # the dialog (htmx) ...
                response = client.post(reverse("exchanges:connection-add-venue", args=["htx"]), form, **HTMX)
            else:  # ... and the page without JavaScript, which redirects to the verification page
                response = client.post(
                    reverse("exchanges:connection-add-venue", args=["htx"]), form, follow=True
                )
            took = time.monotonic() - started
            assert response.status_code == 200
            assert took < 5, f"Connect answered after {took:.1f} s with the broker down"
            replies.append(response.content.decode())

        pks = list(ExchangeConnection.objects.filter(owner=alice).values_list("pk", flat=True))
        told = sum(
            QUEUED_REPLY in r and "will start automatically once the service is back" in r for r in replies
        )
        page = client.get(reverse("exchanges:connection-list")).content.decode()
        rows = [client.get(reverse("exchanges:connection-row", args=[pk])).content.decode() for pk in pks]
        counts = {
            "submitted": len(keys),
            "stored": len(pks),
            "told queued": told,
            "queued rows on My Exchanges": page.count(QUEUED_ROW),
            "queued row fragments": sum(QUEUED_ROW in row for row in rows),
        }
        assert set(counts.values()) == {len(keys)}, counts
        assert set(_statuses(pks).values()) == {Status.VERIFYING}

        # The broker comes back (same address), with a worker on it; beat's sweeper queues.
        servers.append(start(port)[0])
        worker = start_worker(tmp_path / "worker.log", {"REDIS_URL": broker_url, "HTX_API_URL": sandbox.url})
        try:
            swept = []
            wait_for(
                lambda: (
                    swept.append(queue_due_checks()) or set(_statuses(pks).values()) == {Status.CONNECTED}
                ),
                timeout=30,
                interval=0.5,
                message=lambda: f"{counts} {_statuses(pks)}",
            )
        finally:
            stop_process(worker)

    statuses = _statuses(pks)
    verified = {
        pk: ConnectionEvent.objects.filter(connection_id=pk, message="Key verified with HTX").count()
        for pk in pks
    }
    keys_added = SecurityEvent.objects.filter(user=alice, kind=SecurityEvent.Kind.KEY_ADDED).count()
    counts.update(
        connected=sum(s == Status.CONNECTED for s in statuses.values()),
        lost=len(keys) - len(statuses),
        verified_twice=sum(n > 1 for n in verified.values()) + max(keys_added - len(keys), 0),
        queued_by_sweeper=sum(swept),
    )
    print(f"\nbroker down at Connect: {counts}")
    assert counts["connected"] == len(keys) and counts["lost"] == 0, counts
    assert counts["verified_twice"] == 0, counts  # a second verification would log the key twice
    page = client.get(reverse("exchanges:connection-list")).content.decode()
    assert QUEUED_ROW not in page and page.count('data-status="connected"') == len(keys)
