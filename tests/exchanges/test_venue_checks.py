"""The worker's check for a second venue (Binance), in-process against its sandbox over real HTTP:
the statuses that only Binance has, Retry-After, a restricted location, and replacing keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from exchanges import keycheck, registry, selectors, services
from exchanges.explain import explain
from exchanges.models import ExchangeConnection, Status

pytestmark = pytest.mark.django_db

BINANCE = registry.get("binance")


def _submit(owner, key, label: str = "") -> ExchangeConnection:
    return services.connection_create(
        owner=owner, exchange="binance", label=label, access_key=key[0], secret_key=key[1]
    )


def _check(connection: ExchangeConnection) -> str | None:
    return keycheck.connection_check(connection_id=connection.pk)


def _due(connection: ExchangeConnection) -> None:
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())


def test_a_good_binance_key_is_connected_with_every_wallet_and_its_trading_expiry(sandboxes, alice):
    connection = _submit(alice, BINANCE.demo_key("good"))
    assert _check(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.established and connection.account_uid
    assert {"spot", "funding"} <= set(connection.accounts_read)
    assert connection.trading_expires_at > timezone.now() + timedelta(days=20)
    assert connection.ip_restricted is False and connection.ip_addresses == ""
    assert connection.total_usdt > 0
    assert ["Enable Withdrawals", False, True, False] in connection.key_flags
    # The portfolio counts it like any other exchange.
    assert selectors.portfolio_for_user(alice).total_usdt == connection.total_usdt


def test_a_binance_key_whose_trading_expired_keeps_reading_and_counts(sandboxes, alice):
    connection = _submit(alice, BINANCE.demo_key("expired"))
    assert _check(connection) == Status.TRADING_EXPIRED
    connection.refresh_from_db()
    assert connection.has_keys and connection.established
    assert connection.total_usdt > 0 and connection.latest_snapshot is not None
    assert connection.next_check_at > timezone.now()  # refreshed on the normal schedule
    assert selectors.portfolio_for_user(alice).total_usdt == connection.total_usdt
    text = explain(connection.status, connection.error_kind, venue=BINANCE)
    assert "Balances keep refreshing" in text.cause or "balances keep refreshing" in text.cause


def test_a_withdraw_enabled_binance_key_is_destroyed(sandboxes, alice):
    connection = _submit(alice, BINANCE.demo_key("withdraw"))
    assert _check(connection) == Status.WITHDRAW_ENABLED
    connection.refresh_from_db()
    assert connection.access_key is None and connection.secret_key is None


def test_the_ambiguous_refusal_names_all_three_causes_and_the_ip_binance_saw(sandboxes, alice):
    connection = _submit(alice, BINANCE.demo_key("ip_elsewhere"))
    assert _check(connection) == Status.INVALID
    connection.refresh_from_db()
    assert connection.error_kind == "key_ip_or_permission"
    assert not connection.has_keys
    text = explain(connection.status, connection.error_kind, connection.error_detail, venue=BINANCE)
    assert "three" in text.cause and "127.0.0.1" in text.fix


def test_binance_asking_us_to_wait_is_honoured_and_the_key_kept(sandboxes, alice):
    connection = _submit(alice, BINANCE.demo_key("good"))
    assert _check(connection) == Status.CONNECTED
    sandboxes["binance"].faults.update(rate_limited=900)
    _due(connection)
    assert _check(connection) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.has_keys and connection.total_usdt > 0  # the last good balance stays
    assert connection.next_check_at >= timezone.now() + timedelta(seconds=895)  # Retry-After 900 s


def test_a_restricted_location_keeps_the_key_and_says_why(sandboxes, alice):
    sandboxes["binance"].faults.update(restricted_location=True)
    connection = _submit(alice, BINANCE.demo_key("good"))
    assert _check(connection) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.has_keys and connection.error_kind == "restricted_location"
    text = explain(connection.status, connection.error_kind, venue=BINANCE)
    assert "location" in text.title


def test_a_replacement_must_be_a_working_key_of_the_same_binance_account(sandboxes, alice):
    connection = _submit(alice, BINANCE.demo_key("good"), label="Main")
    assert _check(connection) == Status.CONNECTED
    connection.refresh_from_db()
    uid, old_key = connection.account_uid, connection.access_key

    # Another Binance account's key: refused, the current key stays.
    other = BINANCE.demo_key("ip_bound_here")
    services.connection_replace_keys(connection=connection, access_key=other[0], secret_key=other[1])
    _check(connection)
    connection.refresh_from_db()
    assert connection.access_key == old_key and f"account {uid}" in connection.replacement_error

    # The same account's key that can withdraw: refused too.
    withdraw = BINANCE.demo_key("withdraw")
    services.connection_replace_keys(connection=connection, access_key=withdraw[0], secret_key=withdraw[1])
    _check(connection)
    connection.refresh_from_db()
    assert connection.access_key == old_key and "Withdraw" in connection.replacement_error
    assert connection.status == Status.CONNECTED


# --- OKX: the passphrase is part of the key; sites -------------------------------------------

OKX = registry.get("okx")


def _submit_okx(owner, scenario: str, **overrides) -> ExchangeConnection:
    credentials = OKX.demo_credentials(scenario)
    extra = {**credentials.extra, **overrides}
    return services.connection_create(
        owner=owner,
        exchange="okx",
        label="",
        access_key=credentials.api_key,
        secret_key=credentials.secret,
        passphrase=extra.get("passphrase", ""),
        site=extra.get("site", ""),
    )


def test_an_okx_key_is_checked_with_its_passphrase_and_the_rule_that_deletes_idle_keys(sandboxes, alice):
    connection = _submit_okx(alice, "good")
    assert _check(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.passphrase == OKX.demo_credentials("good").extra["passphrase"]
    assert connection.idle_deletion_days == 14
    assert connection.idle_deletion_at == connection.last_verified_at + timedelta(days=14)


def test_a_wrong_okx_passphrase_is_said_as_such_and_nothing_is_kept(sandboxes, alice):
    connection = _submit_okx(alice, "good", passphrase="not-the-passphrase")
    assert _check(connection) == Status.INVALID
    connection.refresh_from_db()
    assert connection.error_kind == "invalid_passphrase"
    assert connection.passphrase is None and connection.secret_key is None


def test_an_okx_key_of_another_site_switches_the_connection_to_it(sandboxes, alice):
    connection = _submit_okx(alice, "other_site", site="global")
    assert _check(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.site == "eea"
    assert connection.events.filter(message__contains="switched").exists()


def test_an_okx_replacement_brings_its_own_passphrase_and_must_be_the_same_account(sandboxes, alice):
    connection = _submit_okx(alice, "good")
    assert _check(connection) == Status.CONNECTED
    same_account = OKX.demo_credentials("ip_bound_here")  # another key of the same OKX account
    services.connection_replace_keys(
        connection=connection,
        access_key=same_account.api_key,
        secret_key=same_account.secret,
        passphrase=same_account.extra["passphrase"],
    )
    assert _check(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.access_key == same_account.api_key
    assert connection.passphrase == same_account.extra["passphrase"] and connection.pending_passphrase is None

    other = OKX.demo_credentials("other_site")  # another account (and site)
    services.connection_replace_keys(
        connection=connection,
        access_key=other.api_key,
        secret_key=other.secret,
        passphrase=other.extra["passphrase"],
    )
    _check(connection)
    connection.refresh_from_db()
    assert connection.access_key == same_account.api_key and connection.replacement_error
