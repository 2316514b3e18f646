"""This server's addresses on the pages: every venue's connect dialog and guide list them with a
Copy button and the venue's reason to bind a key; without EGRESS_IPS they show what exchanges
saw; a disagreement between the two is said; the key facts say whether a key's IP list
includes this server's addresses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils.html import escape

from exchanges import registry
from exchanges.models import ExchangeConnection, SeenAddress, Status

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
VENUES = [pytest.param(venue, id=venue.id) for venue in registry.venues()]
DEC_1 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _dialog(client, venue, htmx: bool = True) -> str:
    url = reverse("exchanges:connection-add-venue", args=[venue.id])
    response = client.get(url, **(HTMX if htmx else {}))
    assert response.status_code == 200
    return response.content.decode()


def _guide(client, venue) -> str:
    response = client.get(reverse("exchanges:help-api-key", args=[venue.id]))
    assert response.status_code == 200
    return response.content.decode()


def _copy_block(venue, addresses: str) -> str:
    return (
        f'<code class="copy-source" id="server-ips-{venue.id}" translate="no" '
        f'data-testid="server-ips-text">{addresses}</code>\n'
        '      <button type="button" class="btn btn-small" '
        f'data-copy="server-ips-{venue.id}" hidden>Copy</button>'
    )


@pytest.mark.parametrize("venue", VENUES)
def test_every_connect_dialog_lists_egress_ips_with_copy_and_why_to_bind(alice_client, settings, venue):
    settings.EGRESS_IPS = ["198.51.100.7", "2001:db8::7"]
    addresses = venue.ip_list_separator.join(settings.EGRESS_IPS)
    for htmx in (True, False):  # the dialog, and the page it is without JavaScript
        body = _dialog(alice_client, venue, htmx)
        assert _copy_block(venue, addresses) in body
        assert f"This dashboard talks to {venue.name} from these addresses:" in body
        assert escape(venue.unbound_key_rule.line(venue.name)) in body
        assert 'data-testid="ip-mismatch"' not in body


@pytest.mark.parametrize("venue", VENUES)
def test_every_guide_lists_egress_ips_with_copy_and_why_to_bind(alice_client, settings, venue):
    settings.EGRESS_IPS = ["198.51.100.7", "2001:db8::7"]
    body = _guide(alice_client, venue)
    assert _copy_block(venue, venue.ip_list_separator.join(settings.EGRESS_IPS)) in body
    assert escape(venue.unbound_key_rule.line(venue.name)) in body
    assert "None configured" not in body and "has not published fixed IP addresses" not in body


@pytest.mark.parametrize("venue", VENUES)
def test_without_egress_ips_or_sightings_the_dialog_lists_nothing_and_the_guide_says_none(
    alice_client, settings, venue
):
    settings.EGRESS_IPS = []
    assert 'data-testid="server-ips"' not in _dialog(alice_client, venue)
    body = _guide(alice_client, venue)
    assert 'data-copy="' not in body and "has not published fixed IP addresses" in body


def test_without_egress_ips_the_addresses_exchanges_saw_are_offered_with_who_saw_them_and_when(
    alice_client, settings
):
    settings.EGRESS_IPS = []
    SeenAddress.objects.create(exchange="okx", site="eea", ip="203.0.113.9", seen_at=DEC_1)
    SeenAddress.objects.create(exchange="htx", site="", ip="203.0.113.9", seen_at=DEC_1)
    okx = registry.get("okx")
    for body in (_dialog(alice_client, okx), _guide(alice_client, okx)):
        assert _copy_block(okx, "203.0.113.9") in body
        assert (
            "This dashboard has not published its addresses, but exchanges saw our requests come from:"
            in body
        )
        assert (
            'seen by OKX EEA (my.okx.com) on <time datetime="2026-12-01T12:00:00+00:00">1 Dec 2026</time>'
            in body
        )
        assert "seen by HTX on" in body
    # HTX's guide too: one address, HTX's sighting listed first.
    htx_body = _guide(alice_client, registry.get("htx"))
    assert htx_body.index("seen by HTX") < htx_body.index("seen by OKX")


def test_when_what_an_exchange_saw_differs_from_egress_ips_the_dialog_and_guide_say_so(
    alice_client, settings
):
    settings.EGRESS_IPS = ["198.51.100.7"]
    SeenAddress.objects.create(exchange="okx", site="global", ip="203.0.113.9", seen_at=DEC_1)
    okx = registry.get("okx")
    expected = (
        "OKX Global (www.okx.com) saw 203.0.113.9 on 1 Dec 2026, which is not among EGRESS_IPS "
        "(198.51.100.7): this server&#x27;s outgoing address may have changed."
    )
    for body in (_dialog(alice_client, okx), _guide(alice_client, okx)):
        assert expected in body
        assert _copy_block(okx, "198.51.100.7") in body  # the setting is still what is offered
    SeenAddress.objects.create(exchange="okx", site="global", ip="198.51.100.7", seen_at=datetime.now(UTC))
    assert 'data-testid="ip-mismatch"' not in _dialog(alice_client, okx)  # the latest agrees


def test_the_replace_keys_dialog_lists_them_too(alice_client, alice, settings):
    settings.EGRESS_IPS = ["198.51.100.7"]
    connection = ExchangeConnection.objects.create(
        owner=alice, status=Status.CONNECTED, established=True, access_key_fingerprint="f" * 64
    )
    body = alice_client.get(reverse("exchanges:connection-replace", args=[connection.pk]), **HTMX)
    assert _copy_block(registry.get("htx"), "198.51.100.7") in body.content.decode()


def _bound(owner, ips: str, status: str = Status.CONNECTED, exchange: str = "htx") -> ExchangeConnection:
    return ExchangeConnection.objects.create(
        owner=owner,
        exchange=exchange,
        status=status,
        established=True,
        ip_addresses=ips,
        ip_restricted=True,
        last_verified_at=DEC_1,
    )


def _facts(client, connection) -> str:
    body = client.get(reverse("exchanges:connection-detail", args=[connection.pk])).content.decode()
    start = body.index('data-testid="key-facts"')
    return body[start : body.index("</details>", start)]


def test_key_facts_say_a_key_bound_to_this_servers_address_includes_it(alice_client, alice, settings):
    settings.EGRESS_IPS = ["198.51.100.7"]
    facts = _facts(alice_client, _bound(alice, "203.0.113.1,198.51.100.7"))
    assert 'data-tone="ok"' in facts
    assert "Bound to 2 IPs, including this server&#x27;s (198.51.100.7)." in facts


def test_key_facts_warn_when_the_key_is_bound_elsewhere_with_the_fix(alice_client, alice, settings):
    settings.EGRESS_IPS = ["198.51.100.7"]
    facts = _facts(alice_client, _bound(alice, "203.0.113.1", Status.IP_NOT_ALLOWED))
    assert 'data-tone="warn"' in facts
    assert (
        "Bound to 203.0.113.1 — not this server&#x27;s address (198.51.100.7): checks will fail. "
        "On HTX, edit the key and add 198.51.100.7 to its IP list."
    ) in facts


def test_key_facts_compare_with_what_the_venue_saw_when_egress_ips_is_not_set(alice_client, alice, settings):
    settings.EGRESS_IPS = []
    SeenAddress.objects.create(exchange="htx", ip="203.0.113.9", seen_at=DEC_1)
    SeenAddress.objects.create(exchange="okx", site="global", ip="198.51.100.99", seen_at=DEC_1)
    facts = _facts(alice_client, _bound(alice, "203.0.113.9"))
    assert "Bound to 1 IP, including the address HTX saw us use (203.0.113.9)." in facts
    assert "198.51.100.99" not in facts  # another exchange's sighting is not HTX's fact


def test_key_facts_say_nothing_more_when_this_servers_addresses_are_unknown(alice_client, alice, settings):
    settings.EGRESS_IPS = []
    facts = _facts(alice_client, _bound(alice, "203.0.113.1"))
    assert "<code>203.0.113.1</code>" in facts and 'data-testid="ip-binding"' not in facts


def test_a_working_key_whose_list_we_cannot_read_is_known_to_include_this_server(alice_client, alice):
    connection = _bound(alice, "", exchange="binance")
    facts = _facts(alice_client, connection)
    assert (
        "Binance does not show the list); Binance accepted our last check, so this server's "
        "address is on it" in facts
    )


def test_the_list_asks_for_sightings_once_whatever_the_number_of_bound_keys(alice_client, alice, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.EGRESS_IPS = []
    SeenAddress.objects.create(exchange="htx", ip="203.0.113.9", seen_at=DEC_1)
    url = reverse("exchanges:connection-list")
    counts = []
    for _ in range(2):
        _bound(alice, "203.0.113.9")
        alice_client.get(url)
        with CaptureQueriesContext(connection) as captured:
            body = alice_client.get(url).content.decode()
        counts.append(len(captured))
    assert body.count("including the address HTX saw us use (203.0.113.9)") == 2
    assert counts[0] == counts[1]
