"""Learning this server's outgoing address from the exchanges: a check refused because the key is
bound to other IPs records the address the exchange named (in-process, against each sandbox over
real HTTP, as tests/exchanges/test_venue_checks.py does). The sandboxes refuse the demo key bound
to 203.0.113.7 and name the request's peer, 127.0.0.1, as the contract suite's "ip_elsewhere"."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from exchanges import keycheck, registry, selectors, services
from exchanges.explain import explain
from exchanges.models import ExchangeConnection, SeenAddress, Status

pytestmark = pytest.mark.django_db


def _submit(owner, venue_id: str, scenario: str) -> ExchangeConnection:
    credentials = registry.get(venue_id).demo_credentials(scenario)
    return services.connection_create(
        owner=owner,
        exchange=venue_id,
        label="",
        access_key=credentials.api_key,
        secret_key=credentials.secret,
        **credentials.extra,
    )


def _check(connection: ExchangeConnection) -> str | None:
    return keycheck.connection_check(connection_id=connection.pk)


def test_htx_naming_the_ip_it_saw_is_recorded_with_when(sandboxes, alice):
    before = timezone.now()
    connection = _submit(alice, "htx", "ip_elsewhere")
    assert _check(connection) == Status.IP_NOT_ALLOWED
    seen = SeenAddress.objects.get()
    assert (seen.exchange, seen.site, seen.ip) == ("htx", "", "127.0.0.1")
    assert before <= seen.seen_at <= timezone.now()


def test_okx_naming_the_ip_it_saw_is_recorded_per_site(sandboxes, alice):
    connection = _submit(alice, "okx", "ip_elsewhere")
    assert _check(connection) == Status.IP_NOT_ALLOWED
    connection.refresh_from_db()
    seen = SeenAddress.objects.get()
    assert (seen.exchange, seen.site, seen.ip) == ("okx", connection.site, "127.0.0.1")
    assert connection.site  # OKX has sites: the sighting is kept for the one the key was tried on


def test_binance_ambiguous_refusal_with_request_ip_is_recorded_too(sandboxes, alice):
    connection = _submit(alice, "binance", "ip_elsewhere")
    assert _check(connection) == Status.INVALID
    assert SeenAddress.objects.filter(exchange="binance", ip="127.0.0.1").exists()


def test_seeing_the_same_address_again_moves_its_date_and_keeps_one_row(sandboxes, alice, bob):
    first = _submit(alice, "htx", "ip_elsewhere")
    _check(first)
    three_days_ago = timezone.now() - timedelta(days=3)
    SeenAddress.objects.update(seen_at=three_days_ago, first_seen_at=three_days_ago)
    second = _submit(bob, "htx", "ip_elsewhere")
    _check(second)
    seen = SeenAddress.objects.get()
    assert seen.seen_at > timezone.now() - timedelta(minutes=1)
    assert seen.first_seen_at == three_days_ago


def test_a_working_key_or_an_error_that_names_no_ip_records_nothing(sandboxes, alice):
    assert _check(_submit(alice, "htx", "good")) == Status.CONNECTED
    assert _check(_submit(alice, "okx", "read_only")) == Status.INCORRECT_PERMISSIONS
    assert not SeenAddress.objects.exists()


def test_the_learned_address_survives_a_redis_flush_and_is_offered_without_egress_ips(
    sandboxes, alice, settings
):
    settings.EGRESS_IPS = ()
    _check(_submit(alice, "okx", "ip_elsewhere"))
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # Redis restarted empty
    server = selectors.server_addresses("okx")
    assert server.learned and server.addresses == ("127.0.0.1",)
    assert server.seen[0].venue_name == "OKX" and server.seen[0].site_label


def test_the_failure_explanation_says_when_the_ip_seen_is_not_among_egress_ips(sandboxes, alice, settings):
    settings.EGRESS_IPS = ["198.51.100.7"]
    connection = _submit(alice, "okx", "ip_elsewhere")
    _check(connection)
    connection.refresh_from_db()
    okx = registry.get("okx")
    text = explain(connection.status, connection.error_kind, connection.error_detail, venue=okx)
    assert text.cause.endswith(
        "OKX saw 127.0.0.1, which is not among EGRESS_IPS (198.51.100.7): this server's outgoing "
        "address may have changed."
    )
    assert "127.0.0.1" in text.fix  # the fix still names what OKX saw: that is what to add

    settings.EGRESS_IPS = ["127.0.0.1"]
    text = explain(connection.status, connection.error_kind, connection.error_detail, venue=okx)
    assert "EGRESS_IPS" not in text.cause


def test_a_replacement_key_refused_for_its_ip_teaches_the_address_too(sandboxes, alice):
    connection = _submit(alice, "htx", "good")
    assert _check(connection) == Status.CONNECTED
    other = registry.get("htx").demo_credentials("ip_elsewhere")
    services.connection_replace_keys(connection=connection, access_key=other.api_key, secret_key=other.secret)
    _check(connection)
    connection.refresh_from_db()
    assert connection.replacement_error and connection.status == Status.CONNECTED
    assert SeenAddress.objects.filter(exchange="htx", ip="127.0.0.1").exists()
