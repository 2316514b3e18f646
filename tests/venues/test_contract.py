"""The venue contract: one set of cases run against every registered venue's sandbox over real
HTTP, through the venue protocol only (``exchanges.venues.kit``), as the worker sees it.

A new venue passes this suite by adding its folder and its registry line: nothing here names an
exchange. Venue-specific behaviour (every wallet of one exchange, its error codes one by one)
is tested beside each venue under tests/venues/<id>/.
"""

from __future__ import annotations

import pytest

from exchanges import registry
from exchanges.keycheck import READS_BALANCES, status_from_facts
from exchanges.models import Status
from exchanges.valuation import value_lines
from exchanges.venues.kit.errors import ErrorKind, VenueError
from exchanges.venues.kit.types import Credentials, KeyFacts, Prior

VENUES = [pytest.param(venue, id=venue.id) for venue in registry.venues()]
TIMEOUT = (2.0, 5.0)


@pytest.fixture(params=VENUES)
def venue(request):
    return request.param


@pytest.fixture
def sandbox(venue):
    server = venue.sandbox().start()
    yield server
    server.stop()


def _client(venue, sandbox, credentials: Credentials | None):
    client = venue.client(base_url=sandbox.url, credentials=credentials, timeout=TIMEOUT)
    client.sync_clock()
    return client


def _inspect(venue, sandbox, scenario: str, prior: Prior | None = None) -> KeyFacts:
    with _client(venue, sandbox, venue.demo_credentials(scenario)) as client:
        return client.inspect_key(prior or Prior())


def _refusal(venue, sandbox, credentials: Credentials) -> VenueError:
    with _client(venue, sandbox, credentials) as client, pytest.raises(VenueError) as caught:
        client.inspect_key(Prior())
    return caught.value


def _with(credentials: Credentials, *, api_key: str | None = None, secret: str | None = None) -> Credentials:
    return Credentials(api_key or credentials.api_key, secret or credentials.secret, credentials.extra)


def _other(text: str) -> str:
    """The same shape of text with its characters changed (a mistyped key or secret)."""
    return "".join(
        "b" if ch == "a" else "a" if ch.isalpha() else "1" if ch == "0" else "0" if ch.isdigit() else ch
        for ch in text
    )


def test_every_venue_declares_what_the_dashboard_shows_and_needs(venue):
    assert venue.id == venue.id.lower() and venue.id.isidentifier()
    assert venue.name and venue.logo.endswith(".svg")
    assert venue.api_management_url.startswith("https://")
    assert venue.default_api_url.startswith("https://")
    assert {field.name for field in venue.credential_fields} >= {"access_key", "secret_key"}
    assert any(field.secret for field in venue.credential_fields)
    assert venue.checklist, "the connect dialog says which permissions to tick"
    assert set(venue.demo_scenarios) >= {"good", "withdraw", "read_only", "ip_elsewhere", "expired"}


def test_a_good_key_can_read_and_trade_but_not_withdraw_and_names_its_account(venue, sandbox):
    facts = _inspect(venue, sandbox, "good")
    assert (facts.can_read, facts.can_trade, facts.can_withdraw) == (True, True, False)
    assert facts.known and facts.account_uid
    assert status_from_facts(facts) == (Status.CONNECTED, "")
    assert any(flag.danger and not flag.on for flag in facts.flags), "withdraw shown as off"
    assert facts.summary


def test_every_wallet_of_a_good_key_is_read_and_valued_from_the_venues_own_prices(venue, sandbox):
    with _client(venue, sandbox, venue.demo_credentials("good")) as client:
        facts = client.inspect_key(Prior())
        read = client.read_balances(facts)
        prices = client.prices()
    assert read.wallets and read.lines
    assert {line.wallet for line in read.lines} <= set(read.wallets), "every line's wallet is listed as read"
    assert prices and all(symbol == symbol.upper() for symbol in prices)
    valuation = value_lines(read, prices)
    assert valuation.total_usdt > 0
    assert valuation.total_btc is not None and valuation.total_btc > 0
    # Nothing is dropped: every held asset is either valued or listed as unpriced.
    held = {(h.account_type, h.currency) for h in valuation.holdings}
    assert held == {
        (line.wallet, line.asset) for line in read.lines if line.available or line.in_orders or line.debt
    }


def test_a_mistyped_api_key_is_refused_for_good(venue, sandbox):
    good = venue.demo_credentials("good")
    error = _refusal(venue, sandbox, _with(good, api_key=_other(good.api_key)))
    assert error.permanent
    assert error.kind in (ErrorKind.INVALID_ACCESS_KEY, ErrorKind.KEY_IP_OR_PERMISSION)


def test_a_wrong_secret_is_a_bad_signature(venue, sandbox):
    good = venue.demo_credentials("good")
    error = _refusal(venue, sandbox, _with(good, secret=_other(good.secret)))
    assert error.permanent and error.kind == ErrorKind.INVALID_SIGNATURE
    assert good.secret not in str(error) and _other(good.secret) not in str(error)


def test_a_key_that_can_withdraw_is_seen_as_such(venue, sandbox):
    facts = _inspect(venue, sandbox, "withdraw")
    assert facts.can_withdraw
    assert status_from_facts(facts)[0] == Status.WITHDRAW_ENABLED


def test_a_key_without_trading_is_incorrect_permissions(venue, sandbox):
    facts = _inspect(venue, sandbox, "read_only")
    assert facts.can_read and not facts.can_trade and not facts.can_withdraw
    assert status_from_facts(facts)[0] == Status.INCORRECT_PERMISSIONS


def test_a_key_bound_to_other_addresses_is_refused_and_says_so(venue, sandbox):
    error = _refusal(venue, sandbox, venue.demo_credentials("ip_elsewhere"))
    assert error.permanent
    assert error.kind in (ErrorKind.IP_NOT_ALLOWED, ErrorKind.KEY_IP_OR_PERMISSION)


def test_a_key_bound_to_this_machine_works(venue, sandbox):
    if "ip_bound_here" not in venue.demo_scenarios:
        pytest.fail(f"{venue.id} has no demo key bound to this machine")
    facts = _inspect(venue, sandbox, "ip_bound_here")
    assert facts.ip_restricted or facts.ip_addresses
    assert status_from_facts(facts)[0] == Status.CONNECTED


def test_an_expired_key_is_told_apart_from_a_bad_one(venue, sandbox):
    """Expired is the whole key (nothing works) or only its trading right (reads go on). The key
    worked before (a venue may answer an expired and an unknown key alike)."""
    try:
        facts = _inspect(venue, sandbox, "expired", Prior(described=True))
    except VenueError as error:
        assert error.permanent and error.kind == ErrorKind.KEY_EXPIRED
        return
    status = status_from_facts(facts)[0]
    assert status in (Status.EXPIRED, Status.TRADING_EXPIRED)
    if status == Status.TRADING_EXPIRED:
        assert facts.trading_expired and facts.trading_expires_at is not None
        assert status in READS_BALANCES
        with _client(venue, sandbox, venue.demo_credentials("expired")) as client:
            assert client.read_balances(client.inspect_key(Prior(described=True))).wallets


@pytest.mark.parametrize("offset_ms", [-600_000, 600_000])
def test_clock_skew_is_corrected_from_the_venues_server_time(venue, sandbox, offset_ms):
    sandbox.clock_offset_ms = offset_ms
    with _client(venue, sandbox, venue.demo_credentials("good")) as client:
        assert abs(client.clock_offset_ms - offset_ms) < 5_000
        facts = client.inspect_key(Prior())
    assert facts.can_read and abs(facts.skew_ms - offset_ms) < 5_000


@pytest.mark.parametrize(
    ("fault", "kinds"),
    [
        ({"rate_limited": True}, {ErrorKind.RATE_LIMITED}),
        ({"maintenance": True}, {ErrorKind.MAINTENANCE, ErrorKind.UNAVAILABLE}),
        ({"http_status": 502}, {ErrorKind.UNAVAILABLE}),
        ({"malformed_json": True}, {ErrorKind.UNAVAILABLE, ErrorKind.UNKNOWN}),
    ],
    ids=["rate-limited", "maintenance", "bad-gateway", "malformed"],
)
def test_a_venue_in_trouble_is_a_transient_error_never_a_verdict_on_the_key(venue, sandbox, fault, kinds):
    with _client(venue, sandbox, venue.demo_credentials("good")) as client:
        sandbox.faults.update(**fault)
        with pytest.raises(VenueError) as caught:
            client.inspect_key(Prior())
    assert not caught.value.permanent
    assert caught.value.kind in kinds


def test_no_secret_reaches_an_error_or_the_redacted_log_text(venue, sandbox):
    good = venue.demo_credentials("good")
    with _client(venue, sandbox, good) as client, pytest.raises(VenueError) as caught:
        sandbox.faults.update(http_status=503)
        client.inspect_key(Prior())
    for secret in (good.secret, *good.extra.values()):
        if len(secret) > 8:  # a site name is no secret
            assert secret not in str(caught.value) and secret not in caught.value.detail
            assert secret not in repr(client)


def test_the_venue_refuses_pastes_that_cannot_be_its_keys_before_any_call(venue):
    good = venue.demo_credentials("good")
    assert venue.validate(good) == {}
    assert venue.validate(_with(good, api_key="short")).get("access_key")
    assert venue.validate(_with(good, secret="ключ" * 10)).get("secret_key")
    assert venue.validate(_with(good, secret=good.api_key))
