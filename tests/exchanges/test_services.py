"""Verification and refresh, in-process, against the HTX sandbox over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection as db
from django.utils import timezone

from exchanges import claims, keycheck, recording, selectors, services, venue_state
from exchanges.models import BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from exchanges.valuation import price_in_usdt
from exchanges.venues.htx.sandbox import load_tickers
from exchanges.venues.htx.venue import HTX
from exchanges.venues.kit.types import Prior
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")


def _submit(owner, key) -> ExchangeConnection:
    return services.connection_create(
        owner=owner, exchange="htx", label="", access_key=key[0], secret_key=key[1]
    )


def _tickers() -> list[dict]:
    return load_tickers()


def test_a_good_key_becomes_connected_with_its_trading_balance(sandbox, alice):
    connection = _submit(alice, GOOD)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.established
    assert connection.account_uid == str(sandbox.accounts[GOOD[0]]["uid"])
    assert connection.permissions == "readOnly,trade"
    assert connection.key_expires_at is not None
    assert connection.total_usdt == _expected_total(sandbox, GOOD[0])
    assert connection.total_usdt > 0
    snapshot = BalanceSnapshot.objects.get(connection=connection)
    assert "spot" in snapshot.account_types
    lines = {line.currency: line for line in snapshot.lines.all()}
    assert lines["usdt"].in_orders > 0  # funds in open orders are counted
    assert lines["usdt"].total == lines["usdt"].available + lines["usdt"].in_orders
    assert connection.next_check_at > timezone.now()


def test_an_asset_without_a_usdt_pair_is_valued_through_btc(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    lines = {line.currency: line for line in BalanceSnapshot.objects.get(connection=connection).lines.all()}
    tickers = {t["symbol"] for t in _tickers()}
    btc_only = [c for c in lines if f"{c}usdt" not in tickers and f"{c}btc" in tickers]
    assert btc_only, "the demo account holds a coin that only has a BTC pair"
    assert all(lines[c].value_usdt and lines[c].value_usdt > 0 for c in btc_only)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("demo: same user, key with withdraw", Status.WITHDRAW_ENABLED),
        ("demo: bound to ip 203", Status.IP_NOT_ALLOWED),
        ("demo: expired", Status.EXPIRED),
        ("demo: read-only", Status.INCORRECT_PERMISSIONS),
    ],
)
def test_a_refused_key_gets_its_status_and_is_not_kept(sandbox, alice, kind, status):
    connection = _submit(alice, demo_key(kind))
    assert keycheck.connection_check(connection_id=connection.pk) == status
    connection.refresh_from_db()
    assert not connection.established
    assert connection.access_key is None and connection.secret_key is None
    assert connection.access_key_fingerprint is None
    assert connection.total_usdt is None
    assert not BalanceSnapshot.objects.filter(connection=connection).exists()
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_key, secret_key FROM exchanges_exchangeconnection WHERE id = %s", [connection.pk]
        )
        assert cursor.fetchone() == (None, None)


def test_a_wrong_secret_is_invalid_with_htxs_own_words_kept_for_details(sandbox, alice):
    connection = _submit(alice, (GOOD[0], "0badbad0-11111111-22222222-33333"))
    assert keycheck.connection_check(connection_id=connection.pk) == Status.INVALID
    connection.refresh_from_db()
    assert connection.error_kind == "invalid_signature"
    assert "Verification failure" in connection.error_detail
    assert "0badbad0" not in connection.error_detail


def test_a_wrong_access_key_is_invalid(sandbox, alice):
    connection = _submit(alice, ("demo0000-00000000-00000000-00000", GOOD[1]))
    assert keycheck.connection_check(connection_id=connection.pk) == Status.INVALID
    connection.refresh_from_db()
    assert connection.error_kind == "invalid_access_key"


def test_htx_unreachable_keeps_the_key_and_retries_later(sandbox, alice):
    sandbox.faults.update(http_status=503)
    connection = _submit(alice, GOOD)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.access_key == GOOD[0] and connection.secret_key == GOOD[1]
    assert connection.next_check_at > timezone.now()
    assert connection.attempts == 1
    # Not due yet: the sweeper leaves it alone. Once due, it is verified again and connects.
    assert connection.pk not in selectors.connections_due_for_check()
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())
    assert connection.pk in selectors.connections_due_for_check()
    sandbox.faults.clear()
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED


def test_verifying_twice_is_harmless(sandbox, alice):
    connection = _submit(alice, GOOD)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    assert keycheck.connection_check(connection_id=connection.pk) is None
    assert BalanceSnapshot.objects.filter(connection=connection).count() == 1


def test_a_claimed_connection_is_not_taken_by_a_second_worker(sandbox, alice):
    connection = _submit(alice, GOOD)
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=60)
    )
    assert keycheck.connection_check(connection_id=connection.pk) is None


def test_the_sweeper_finds_verifications_whose_message_was_lost(sandbox, alice, settings):
    settings.VERIFY_STALE_SECONDS = 0
    connection = _submit(alice, GOOD)
    assert selectors.connections_due_for_check() == [connection.pk]


def test_a_refresh_keeps_the_last_good_balance_when_htx_fails(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())
    connection.refresh_from_db()
    good_total = connection.total_usdt
    sandbox.faults.update(maintenance=True)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.total_usdt == good_total
    assert connection.established and connection.has_keys
    assert ConnectionEvent.objects.filter(connection=connection, status=Status.TEMPORARY).exists()


def test_a_refresh_stores_a_new_snapshot(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    assert keycheck.connection_check(connection_id=connection.pk) is None  # not due yet
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())
    assert connection.pk in selectors.connections_due_for_check()
    sandbox.accounts[GOOD[0]]["accounts"][0]["list"].append(
        {"currency": "usdt", "type": "trade", "balance": "1000.000000000000000000"}
    )
    before = ExchangeConnection.objects.get(pk=connection.pk).total_usdt
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    after = ExchangeConnection.objects.get(pk=connection.pk).total_usdt
    assert after - before == Decimal(1000)
    assert BalanceSnapshot.objects.filter(connection=connection).count() == 2


def test_a_new_attempt_replaces_earlier_failed_attempts(sandbox, alice):
    failed = _submit(alice, demo_key("demo: expired"))
    keycheck.connection_check(connection_id=failed.pk)
    _submit(alice, GOOD)
    assert not ExchangeConnection.objects.filter(pk=failed.pk).exists()


def test_tickers_are_fetched_once_and_shared(sandbox, alice):
    from django.core.cache import cache

    first = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=first.pk)
    assert cache.get(venue_state.PRICES_CACHE_KEY.format("htx"))["BTCUSDT"]


def test_keys_are_encrypted_at_rest_and_absent_from_logs(sandbox, alice, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    with db.cursor() as cursor:
        cursor.execute("SELECT * FROM exchanges_exchangeconnection WHERE id = %s", [connection.pk])
        row = cursor.fetchone()
    raw = " ".join(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v) for v in row)
    assert GOOD[1] not in raw and GOOD[0] not in raw
    assert ExchangeConnection.objects.get(pk=connection.pk).secret_key == GOOD[1]  # and yet it decrypts
    assert GOOD[1] not in caplog.text and GOOD[0] not in caplog.text


def _make_due(connection) -> None:
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())


def test_transient_failures_back_off_exponentially_up_to_a_cap(sandbox, alice, settings):
    settings.RETRY_BASE_SECONDS, settings.RETRY_MAX_SECONDS = 10, 50
    sandbox.faults.update(http_status=502)
    connection = _submit(alice, GOOD)
    delays = []
    for _ in range(5):
        before = timezone.now()
        assert keycheck.connection_check(connection_id=connection.pk) == Status.TEMPORARY
        connection.refresh_from_db()
        delays.append((connection.next_check_at - before).total_seconds())
        _make_due(connection)
    expected = [10, 20, 40, 50, 50]
    assert all(0.85 * e <= d <= 1.15 * e for d, e in zip(delays, expected, strict=True)), delays
    assert connection.attempts == 5


def test_a_duplicate_message_does_not_defeat_the_backoff(sandbox, alice):
    sandbox.faults.update(http_status=502)
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    assert keycheck.connection_check(connection_id=connection.pk) is None  # not due: no HTX call
    connection.refresh_from_db()
    assert connection.attempts == 1


def test_a_check_whose_claim_was_taken_over_writes_nothing(sandbox, alice):
    connection = _submit(alice, GOOD)
    claimed = claims.claim(connection.pk)
    # Our claim expired and another worker took the row over meanwhile.
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        claimed_until=timezone.now() + timedelta(minutes=5)
    )
    with venue_state.client_for(claimed) as client:
        facts = keycheck.inspect_key(HTX, client, Prior())
        valuation = keycheck.read_balances(HTX, client, facts)
    assert recording.record_key(claimed, facts, Status.CONNECTED, "", valuation) is None
    assert not BalanceSnapshot.objects.filter(connection=connection).exists()
    assert ExchangeConnection.objects.get(pk=connection.pk).status == Status.VERIFYING


def test_a_connected_key_that_gains_withdraw_permission_is_refused_and_destroyed(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    sandbox.accounts[GOOD[0]]["permission"] = "readOnly,trade,withdraw"
    _make_due(connection)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.WITHDRAW_ENABLED
    connection.refresh_from_db()
    assert connection.established
    assert connection.access_key is None and connection.secret_key is None
    assert connection.next_check_at is None


def test_a_connected_key_refused_later_is_kept_and_recovers_once_fixed_on_htx(sandbox, alice, settings):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    sandbox.accounts[GOOD[0]]["ipAddresses"] = "203.0.113.7"
    _make_due(connection)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.IP_NOT_ALLOWED
    connection.refresh_from_db()
    assert connection.has_keys and connection.total_usdt > 0  # last good balance kept
    recheck = (connection.next_check_at - timezone.now()).total_seconds()
    assert 0.85 * settings.RECHECK_REFUSED_SECONDS <= recheck <= 1.15 * settings.RECHECK_REFUSED_SECONDS
    sandbox.accounts[GOOD[0]]["ipAddresses"] = ""
    _make_due(connection)
    assert connection.pk in selectors.connections_due_for_check()
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED


def test_tickers_are_read_from_htx_once_per_minute_and_shared_by_every_connection(sandbox, alice, bob):
    keycheck.connection_check(connection_id=_submit(alice, GOOD).pk)
    first = ExchangeConnection.objects.get(owner=alice).total_usdt
    for ticker in sandbox.tickers:
        ticker["close"] *= 2  # HTX's prices move, but the shared minute-old table is used
    other = ExchangeConnection.objects.create(
        owner=bob,
        access_key=GOOD[0],
        secret_key=GOOD[1],
        status=Status.VERIFYING,
        access_key_fingerprint="not-a-real-fingerprint",
    )
    keycheck.connection_check(connection_id=other.pk)
    other.refresh_from_db()
    assert other.total_usdt == first


def test_the_broker_being_down_loses_no_submission(
    alice, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from exchanges import tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.check_connection, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        connection = _submit(alice, GOOD)
    assert ExchangeConnection.objects.get(pk=connection.pk).status == Status.VERIFYING
    settings.VERIFY_STALE_SECONDS = 0
    assert selectors.connections_due_for_check() == [connection.pk]


def test_every_account_is_read_and_a_margin_account_counts_net_of_its_loans(sandbox, alice):
    sandbox.accounts[GOOD[0]]["accounts"].append(
        {
            "id": 99,
            "type": "margin",
            "subtype": "btcusdt",
            "state": "working",
            "list": [
                {"currency": "usdt", "type": "trade", "balance": "1000.5"},
                {"currency": "usdt", "type": "loan", "balance": "-900"},
                {"currency": "usdt", "type": "interest", "balance": "-0.5"},
                {"currency": "usdt", "type": "transfer-out-available", "balance": "-1"},
                {"currency": "usdt", "type": "some-new-type", "balance": "7"},
            ],
        }
    )
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    snapshot = BalanceSnapshot.objects.get(connection=connection)
    assert snapshot.account_types == ["spot", "otc", "point", "margin"]
    margin = snapshot.lines.get(account_type="margin", currency="usdt")
    assert (margin.available, margin.debt, margin.value_usdt) == (
        Decimal("1000.5"),
        Decimal("-900.5"),
        Decimal("100.0"),
    )
    # Derived and unknown line types are kept as sent, never added to a value.
    assert {o["type"] for o in snapshot.other_lines} == {"transfer-out-available", "some-new-type"}
    connection.refresh_from_db()
    assert connection.total_usdt == _expected_total(sandbox, GOOD[0])
    assert connection.accounts_read == ["spot", "otc", "point", "margin"]


def test_an_account_htx_refuses_is_recorded_as_unread_without_failing_the_check(sandbox, alice):
    sandbox.accounts[GOOD[0]]["accounts"].append(
        {
            "id": 77,
            "type": "investment",
            "subtype": "",
            "state": "working",
            "list": [],
            "refuse": {
                "err-code": "account-get-balance-account-inexistent-error",
                "err-msg": "no such account",
            },
        }
    )
    connection = _submit(alice, GOOD)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.accounts_unread == [
        {
            "type": "investment",
            "id": 77,
            "reason": "account-get-balance-account-inexistent-error: no such account",
        }
    ]
    assert connection.accounts_read == ["spot", "otc", "point"]


def test_a_refused_spot_account_fails_the_check(sandbox, alice):
    sandbox.accounts[GOOD[0]]["accounts"][0]["refuse"] = {
        "err-code": "account-get-balance-account-inexistent-error",
        "err-msg": "no such account",
    }
    connection = _submit(alice, GOOD)
    assert keycheck.connection_check(connection_id=connection.pk) != Status.CONNECTED


def _expected_total(sandbox, access_key: str) -> Decimal:
    """Every account, valued net of margin debt, from the sandbox's own data."""
    prices = {t["symbol"].upper(): Decimal(str(t["close"])) for t in _tickers()}
    total = Decimal(0)
    for account in sandbox.accounts[access_key]["accounts"]:
        for line in account.get("list", ()):
            if line["type"] in ("trade", "frozen", "loan", "interest"):
                total += Decimal(line["balance"]) * (price_in_usdt(line["currency"], prices) or 0)
    return total


def test_a_sub_user_key_connects_with_its_permissions_marked_unknown(sandbox, alice):
    connection = _submit(alice, demo_key("demo: sub-user"))
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    connection.refresh_from_db()
    assert not connection.key_info_known
    assert connection.permissions == "" and connection.account_uid == ""
    assert connection.total_usdt is not None


def test_keys_pasted_into_each_others_fields_are_refused_without_keeping_any_part_of_them(sandbox, alice):
    connection = _submit(alice, (GOOD[1], GOOD[0]))
    assert keycheck.connection_check(connection_id=connection.pk) == Status.INVALID
    connection.refresh_from_db()
    assert connection.error_kind == "invalid_access_key"
    assert not connection.has_keys
    # What was typed as the API Key was the secret: not even its ends are kept for display.
    assert connection.access_key_head == connection.access_key_tail == ""


@pytest.mark.parametrize("minutes", [10, -10])
def test_a_local_clock_ten_minutes_off_still_connects_and_the_skew_is_recorded(sandbox, alice, minutes):
    sandbox.clock_offset_ms = minutes * 60_000  # HTX's clock vs ours: same as ours being off
    connection = _submit(alice, GOOD)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    connection.refresh_from_db()
    assert abs(connection.clock_skew_ms - minutes * 60_000) < 2_000


def test_a_rate_limit_error_backs_off_without_marking_the_key_broken(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    sandbox.faults.update(rate_limited=True)
    _make_due(connection)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.error_kind == "rate_limited" and connection.has_keys and connection.established
    assert connection.next_check_at > timezone.now()


def test_a_check_keeps_what_the_user_changed_while_it_ran(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    _make_due(connection)
    claimed = claims.claim(connection.pk)
    # Meanwhile, in the web process: a rename, a replacement key and a "Refresh now".
    now = timezone.now()
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        label="Renamed meanwhile", pending_fingerprint="pending-fp", refresh_requested_at=now
    )
    with venue_state.client_for(claimed) as client:
        facts = keycheck.inspect_key(HTX, client, Prior(described=True))
        balances = keycheck.read_balances(HTX, client, facts)
    assert recording.record_key(claimed, facts, Status.CONNECTED, "", balances) == Status.CONNECTED
    after = ExchangeConnection.objects.get(pk=connection.pk)
    assert after.label == "Renamed meanwhile" and after.pending_fingerprint == "pending-fp"
    assert after.next_check_at <= timezone.now()  # the refresh asked for meanwhile runs next


def test_a_known_key_that_htx_stops_describing_is_not_taken_for_a_sub_user_key(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    sandbox.accounts[GOOD[0]]["subUser"] = True  # HTX now answers "forbidden" to uid/api-key
    _make_due(connection)
    assert keycheck.connection_check(connection_id=connection.pk) == Status.INCORRECT_PERMISSIONS


def test_a_replacement_checked_while_htx_is_down_is_kept_and_retried(sandbox, alice):
    connection = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=connection.pk)
    connection.refresh_from_db()
    new_key, new_secret = "demoBBBB-11112222-33334444-55555", "eeee0000-11112222-33334444-bbbbb"
    sandbox.accounts[new_key] = {k: v for k, v in sandbox.accounts[GOOD[0]].items() if k != "accounts"}
    sandbox.accounts[new_key]["secret"] = new_secret
    services.connection_replace_keys(connection=connection, access_key=new_key, secret_key=new_secret)
    sandbox.faults.update(http_status=503)
    keycheck.connection_check(connection_id=connection.pk)
    connection.refresh_from_db()
    assert connection.replacing and not connection.replacement_error and connection.claimed_until is None
    sandbox.faults.clear()
    assert keycheck.connection_check(connection_id=connection.pk) == Status.CONNECTED
    assert ExchangeConnection.objects.get(pk=connection.pk).secret_key == new_secret


def test_a_sub_user_connection_cannot_be_replaced_without_knowing_both_accounts(sandbox, alice):
    connection = _submit(alice, demo_key("demo: sub-user"))
    keycheck.connection_check(connection_id=connection.pk)
    connection.refresh_from_db()
    services.connection_replace_keys(connection=connection, access_key=GOOD[0], secret_key=GOOD[1])
    keycheck.connection_check(connection_id=connection.pk)
    connection.refresh_from_db()
    assert "cannot replace it safely" in connection.replacement_error
    assert connection.access_key != GOOD[0]


def test_api_key_added_is_logged_only_once_htx_accepts_the_key(sandbox, alice):
    from accounts.models import SecurityEvent

    wrong = _submit(alice, (GOOD[1], GOOD[0]))  # the secret typed as API Key
    keycheck.connection_check(connection_id=wrong.pk)
    assert not SecurityEvent.objects.filter(user=alice, kind="key_added").exists()
    good = _submit(alice, GOOD)
    keycheck.connection_check(connection_id=good.pk)
    (event,) = SecurityEvent.objects.filter(user=alice, kind="key_added")
    assert GOOD[1][:4] not in event.detail and GOOD[0][:4] in event.detail
