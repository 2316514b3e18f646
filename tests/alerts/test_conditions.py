"""When an alert is raised: every trigger of alerts.conditions, driven through the real code paths
(a check against the venues' sandboxes over loopback HTTP, exchanges.recording, the services),
with time moved forward by giving the periodic scan its ``now``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from alerts import conditions
from alerts.models import Alert, AlertSettings
from exchanges import claims, keycheck, recording, registry, services
from exchanges.models import ExchangeConnection, Status
from exchanges.venues.htx.errors import HtxError
from exchanges.venues.kit.errors import ErrorKind
from tests.conftest import demo_key

pytestmark = pytest.mark.django_db

GOOD = demo_key("demo: good key")  # 83 days left
EXPIRING = demo_key("demo: expires in 5 days")
BOUND = demo_key("demo: bound to 127.0.0.1")  # bound to this machine, never expires
BINANCE = registry.get("binance")
OKX = registry.get("okx")


# --- helpers ----------------------------------------------------------------------------------


def _check(connection: ExchangeConnection) -> str | None:
    return keycheck.connection_check(connection_id=connection.pk)


def _due(connection: ExchangeConnection) -> None:
    ExchangeConnection.objects.filter(pk=connection.pk).update(next_check_at=timezone.now())


def _recheck(connection: ExchangeConnection) -> str | None:
    _due(connection)
    return _check(connection)


def _connected(
    owner, key=GOOD, *, exchange="htx", label="Main", passphrase="", site=""
) -> ExchangeConnection:
    connection = services.connection_create(
        owner=owner,
        exchange=exchange,
        label=label,
        access_key=key[0],
        secret_key=key[1],
        passphrase=passphrase,
        site=site,
    )
    assert _check(connection) == Status.CONNECTED
    return ExchangeConnection.objects.get(pk=connection.pk)


def _okx_connected(owner) -> ExchangeConnection:
    credentials = OKX.demo_credentials("good")
    return _connected(
        owner,
        (credentials.api_key, credentials.secret),
        exchange="okx",
        passphrase=credentials.extra.get("passphrase", ""),
        site=credentials.extra.get("site", ""),
    )


def _prefs(user, **fields) -> AlertSettings:
    prefs, _ = AlertSettings.objects.update_or_create(user=user, defaults=fields)
    return prefs


def _alerts(kind=None):
    rows = Alert.objects.all()
    return list(rows.filter(kind=kind) if kind else rows)


def _break_ip(sandbox, key=GOOD) -> None:
    sandbox.accounts[key[0]]["ipAddresses"] = "203.0.113.7"


def _fix_ip(sandbox, key=GOOD) -> None:
    sandbox.accounts[key[0]]["ipAddresses"] = ""


# --- a key about to die ----------------------------------------------------------------------


def test_a_key_expiring_in_5_days_raises_one_alert_at_the_7_day_threshold(sandbox, alice):
    connection = _connected(alice, EXPIRING)
    assert connection.key_expires_at is not None
    assert conditions.scan() == 1
    [alert] = _alerts()
    assert alert.kind == Alert.Kind.EXPIRING
    assert alert.dedupe_key.endswith(":7") and ":key:" in alert.dedupe_key
    assert alert.connection == connection and alert.user == alice
    masked = connection.masked_access_key
    assert alert.connection_name == f"HTX · Main ({masked})"
    assert alert.title.startswith(f"HTX · Main ({masked}): key expires on ")
    assert "(in 5 days)" in alert.title
    assert "HTX stops accepting this key" in alert.happened
    assert alert.link == f"/exchanges/{connection.pk}/" or str(connection.pk) in alert.link
    # Scanned again (every minute), nothing more.
    assert conditions.scan() == 0
    assert conditions.scan(timezone.now() + timedelta(hours=30)) == 0
    assert len(_alerts()) == 1


def test_the_smallest_crossed_threshold_is_used_and_each_threshold_alerts_once(sandbox, alice):
    connection = _connected(alice, EXPIRING)
    start = timezone.now()
    assert conditions.scan(start) == 1  # 5 days left: 7
    assert conditions.scan(start + timedelta(days=2)) == 0  # 3 days left: still 7, already told
    assert conditions.scan(start + timedelta(days=4, hours=6)) == 1  # under a day: 1
    assert conditions.scan(start + timedelta(days=4, hours=12)) == 0
    keys = sorted(a.dedupe_key.rsplit(":", 1)[1] for a in _alerts(Alert.Kind.EXPIRING))
    assert keys == ["1", "7"]
    last = Alert.objects.filter(dedupe_key__endswith=":1").get()
    assert "(in 1 day)" in last.title and last.connection == connection


def test_a_first_scan_past_both_thresholds_raises_only_the_smallest(sandbox, alice):
    connection = _connected(alice, EXPIRING)
    assert conditions.scan(timezone.now() + timedelta(days=4, hours=12)) == 1
    [alert] = _alerts()
    assert alert.dedupe_key == (f"expiring:{connection.pk}:key:{connection.key_expires_at:%Y%m%d}:1")


def test_the_users_own_thresholds_are_used(sandbox, alice):
    _prefs(alice, expiry_days="3")
    _connected(alice, EXPIRING)
    assert conditions.scan() == 0  # 5 days left, warned at 3
    assert conditions.scan(timezone.now() + timedelta(days=2, hours=1)) == 1
    assert _alerts()[0].dedupe_key.endswith(":3")


def test_never_two_alerts_for_the_same_deadline_within_a_day(sandbox, alice):
    _prefs(alice, expiry_days="5,4")
    _connected(alice, EXPIRING)
    start = timezone.now()
    assert conditions.scan(start) == 1  # 5 days left: the 5-day reminder
    # Twelve hours later the 4-day threshold is crossed, but the last reminder is not a day old.
    assert conditions.scan(start + timedelta(hours=12)) == 0
    assert conditions.scan(start + timedelta(hours=25)) == 1
    assert sorted(a.dedupe_key[-1] for a in _alerts()) == ["4", "5"]


def test_htx_counting_a_day_less_before_our_date_turns_is_still_the_same_deadline(sandbox, alice):
    """HTX says how many whole days a key has left (validDays), so the expiry we compute moves
    with each check, and across a date when HTX's day turns at another hour than ours. A key
    warned about must not be warned about again the same day because its date moved."""
    connection = _connected(alice, EXPIRING)
    assert conditions.scan() == 1
    sandbox.accounts[EXPIRING[0]]["validDays"] = 4  # HTX's day turned; ours did not
    assert _recheck(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert conditions.scan() == 0
    assert len(_alerts(Alert.Kind.EXPIRING)) == 1


def test_a_deadline_flipping_between_two_dates_is_told_once_per_threshold(sandbox, alice):
    connection = _connected(alice, EXPIRING)
    midnight = (timezone.now() + timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    after, before = midnight + timedelta(minutes=30), midnight - timedelta(minutes=30)
    start = midnight - timedelta(days=4, hours=12)  # 4.5 days before: the 7-day reminder
    ExchangeConnection.objects.filter(pk=connection.pk).update(key_expires_at=after)
    assert conditions.scan(start) == 1
    # The next checks compute the deadline an hour earlier, then later again, for days.
    for hours, at in [(2, before), (26, after), (50, before), (74, after)]:
        ExchangeConnection.objects.filter(pk=connection.pk).update(key_expires_at=at)
        assert conditions.scan(start + timedelta(hours=hours)) == 0, hours
    ExchangeConnection.objects.filter(pk=connection.pk).update(key_expires_at=before)
    assert conditions.scan(before - timedelta(hours=12)) == 1  # the 1-day reminder, once
    assert [a.dedupe_key[-1] for a in _alerts()] == ["1", "7"]


def test_a_new_deadline_far_from_the_old_one_is_told_again(sandbox, alice):
    connection = _connected(alice, EXPIRING)
    assert conditions.scan() == 1
    # A replacement key with its own expiry, three days later than the first.
    later = connection.key_expires_at + timedelta(days=3)
    ExchangeConnection.objects.filter(pk=connection.pk).update(key_expires_at=later)
    assert conditions.scan(timezone.now() + timedelta(hours=2)) == 0  # not twice within a day
    assert conditions.scan(timezone.now() + timedelta(hours=25)) == 1
    assert len({a.dedupe_key for a in _alerts()}) == 2


def test_nothing_for_a_key_without_a_deadline(sandbox, alice):
    connection = _connected(alice, BOUND)
    assert connection.key_expires_at is None and connection.ip_restricted
    assert conditions.scan() == 0
    assert conditions.scan(timezone.now() + timedelta(days=29)) == 0
    assert _alerts() == []


def test_nothing_for_a_key_far_from_its_deadline(sandbox, alice):
    _connected(alice, GOOD)  # 83 days left
    assert conditions.scan() == 0
    assert _alerts() == []


def test_a_binance_keys_trading_right_expiring_raises_its_own_alert(sandboxes, alice):
    key = BINANCE.demo_key("good")
    sandboxes["binance"].update_key(key[0], {"tradingExpiresInDays": 3})
    connection = _connected(alice, key, exchange="binance")
    assert connection.key_expires_at is None and connection.trading_expires_at is not None
    assert conditions.scan() == 1
    [alert] = _alerts()
    assert ":trading:" in alert.dedupe_key and alert.dedupe_key.endswith(":7")
    assert "trading permission expires" in alert.title
    assert alert.title.startswith("Binance · Main (")
    assert conditions.scan() == 0


def test_an_okx_idle_deletion_is_told_only_once_the_last_success_is_over_a_day_old(sandboxes, alice):
    _prefs(alice, expiry_days="30")  # so that even 14 days left crosses a threshold
    connection = _okx_connected(alice)
    assert connection.idle_deletion_days == 14
    start = timezone.now()
    assert conditions.scan(start) == 0  # checked just now
    assert conditions.scan(start + timedelta(hours=23)) == 0  # under a day since the last success
    assert conditions.scan(start + timedelta(hours=25)) == 1
    [alert] = _alerts()
    assert ":idle:" in alert.dedupe_key
    assert "key will be deleted" in alert.title
    assert "14 days without a signed call" in alert.happened


def test_a_successful_check_pushes_the_idle_deadline_back(sandboxes, alice):
    connection = _okx_connected(alice)
    # Our last success was 8 days ago: 6 days before OKX deletes the key.
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        last_verified_at=timezone.now() - timedelta(days=8)
    )
    assert conditions.scan() == 1
    assert "(in 6 days)" in _alerts()[0].title
    assert _recheck(connection) == Status.CONNECTED  # a check succeeds: 14 days again
    assert conditions.scan(timezone.now() + timedelta(days=2)) == 0


def test_an_okx_idle_deletion_is_told_while_the_checks_are_refused(sandboxes, alice):
    """The idle deadline matters exactly when our checks stop succeeding: the alert says to fix
    "what stops our checks (its status says what)"; a refused key must get it too."""
    connection = _okx_connected(alice)
    sandboxes["okx"].update_key(OKX.demo_credentials("good").api_key, {"ip": "203.0.113.7"})
    assert _recheck(connection) == Status.IP_NOT_ALLOWED
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        last_verified_at=timezone.now() - timedelta(days=8)
    )
    conditions.scan()
    idle = [a for a in _alerts(Alert.Kind.EXPIRING) if ":idle:" in a.dedupe_key]
    assert len(idle) == 1 and "(in 6 days)" in idle[0].title


def test_an_okx_idle_deletion_is_told_while_okx_is_unreachable(sandboxes, alice):
    connection = _okx_connected(alice)
    sandboxes["okx"].faults.update(http_status=503)
    assert _recheck(connection) == Status.TEMPORARY
    ExchangeConnection.objects.filter(pk=connection.pk).update(
        last_verified_at=timezone.now() - timedelta(days=8)
    )
    assert conditions.scan() == 1
    assert ":idle:" in _alerts()[0].dedupe_key


def test_expiry_alerts_off_raise_nothing(sandbox, alice):
    _prefs(alice, on_expiry=False)
    _connected(alice, EXPIRING)
    assert conditions.scan() == 0
    assert conditions.scan(timezone.now() + timedelta(days=4, hours=12)) == 0
    assert _alerts() == []


# --- a connection failing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("breaks", "status"),
    [
        (lambda entry: entry.update(ipAddresses="203.0.113.7"), Status.IP_NOT_ALLOWED),
        (lambda entry: entry.update(permission="readOnly"), Status.INCORRECT_PERMISSIONS),
        (lambda entry: entry.update(status="expired", validDays=0), Status.EXPIRED),
        (lambda entry: entry.update(secret="another-secret-0000-0000"), Status.INVALID),
    ],
    ids=["ip", "permissions", "expired", "invalid"],
)
def test_an_established_key_refused_starts_a_failing_episode(sandbox, alice, breaks, status):
    connection = _connected(alice)
    assert connection.failing_since is None
    breaks(sandbox.accounts[GOOD[0]])
    before = timezone.now()
    assert _recheck(connection) == status
    connection.refresh_from_db()
    assert connection.has_keys  # an established key is kept
    assert connection.failing_since is not None and connection.failing_since >= before
    assert conditions.scan() == 0  # not yet 30 minutes
    assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 1
    [alert] = _alerts()
    assert alert.kind == Alert.Kind.FAILING
    assert alert.dedupe_key == f"failing:{connection.pk}:{connection.failing_since:%Y%m%dT%H%M%S.%f}"
    assert alert.title.startswith(f"HTX · Main ({connection.masked_access_key}): ")
    assert connection.get_status_display() in alert.happened
    assert alert.fix


def test_a_binance_trading_expiry_starts_a_failing_episode(sandboxes, alice):
    key = BINANCE.demo_key("good")
    connection = _connected(alice, key, exchange="binance")
    sandboxes["binance"].update_key(key[0], {"tradingExpiresInDays": 0})
    assert _recheck(connection) == Status.TRADING_EXPIRED
    connection.refresh_from_db()
    assert connection.failing_since is not None
    assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 1
    assert _alerts()[0].kind == Alert.Kind.FAILING


def test_a_new_key_refused_at_once_is_no_failing_episode(sandbox, alice):
    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=GOOD[0], secret_key="wrong-secret"
    )
    assert _check(connection) == Status.INVALID
    connection.refresh_from_db()
    assert connection.failing_since is None
    assert conditions.scan(timezone.now() + timedelta(days=1)) == 0


def test_the_users_failing_minutes_are_used(sandbox, alice):
    _prefs(alice, failing_minutes=0)
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    assert conditions.scan() == 1  # 0: at once
    _prefs(alice, failing_minutes=120)
    assert conditions.scan(timezone.now() + timedelta(days=1)) == 0  # one per episode


def test_a_failing_episode_alerts_once(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    start = timezone.now()
    assert conditions.scan(start + timedelta(minutes=29)) == 0
    assert conditions.scan(start + timedelta(minutes=31)) == 1
    assert _recheck(connection) == Status.IP_NOT_ALLOWED  # refused again an hour later
    assert conditions.scan(start + timedelta(hours=5)) == 0
    assert len(_alerts(Alert.Kind.FAILING)) == 1


def test_a_temporary_trouble_in_between_does_not_restart_the_count(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    connection.refresh_from_db()
    since = connection.failing_since
    sandbox.faults.update(maintenance=True)
    assert _recheck(connection) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.failing_since == since
    # While HTX is down it is HTX's trouble, not the key's: no failing alert.
    assert conditions.scan(timezone.now() + timedelta(hours=2)) == 0
    sandbox.faults.clear()
    assert _recheck(connection) == Status.IP_NOT_ALLOWED
    connection.refresh_from_db()
    assert connection.failing_since == since
    # Counted from the first refusal: the threshold is already past.
    assert conditions.scan(since + timedelta(minutes=31)) == 1


def test_a_change_between_two_refusals_keeps_the_episode(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    connection.refresh_from_db()
    since = connection.failing_since
    sandbox.accounts[GOOD[0]]["permission"] = "readOnly"
    _fix_ip(sandbox)
    assert _recheck(connection) == Status.INCORRECT_PERMISSIONS
    connection.refresh_from_db()
    assert connection.failing_since == since


def test_failing_alerts_off_raise_nothing(sandbox, alice):
    _prefs(alice, on_failing=False)
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    assert conditions.scan(timezone.now() + timedelta(hours=2)) == 0
    _fix_ip(sandbox)
    assert _recheck(connection) == Status.CONNECTED
    assert _alerts() == []


def test_record_failure_with_a_permanent_error_starts_and_a_transient_one_keeps_the_episode(sandbox, alice):
    connection = _connected(alice)
    _due(connection)
    claimed = claims.claim(connection.pk)
    error = HtxError(ErrorKind.IP_NOT_ALLOWED, code="api-signature-not-valid", message="ip not allowed")
    assert recording.record_failure(claimed, error) == Status.IP_NOT_ALLOWED
    connection.refresh_from_db()
    since = connection.failing_since
    assert since is not None
    _due(connection)
    claimed = claims.claim(connection.pk)
    busy = HtxError(ErrorKind.MAINTENANCE, code="system-maintenance", message="maintenance")
    assert recording.record_failure(claimed, busy) == Status.TEMPORARY
    connection.refresh_from_db()
    assert connection.failing_since == since
    assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 0  # Temporary: not counted


# --- working again ---------------------------------------------------------------------------


def test_working_again_after_a_failing_alert_says_so_once(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 1
    _fix_ip(sandbox)
    assert _recheck(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.failing_since is None
    [recovered] = _alerts(Alert.Kind.RECOVERED)
    failing = _alerts(Alert.Kind.FAILING)[0]
    assert recovered.dedupe_key == f"recovered:{failing.dedupe_key}"
    assert "working again" in recovered.title and "accepts the key again" in recovered.happened
    assert _recheck(connection) == Status.CONNECTED
    assert len(_alerts(Alert.Kind.RECOVERED)) == 1


def test_working_again_through_a_temporary_trouble_still_says_so(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 1
    sandbox.faults.update(maintenance=True)
    assert _recheck(connection) == Status.TEMPORARY
    sandbox.faults.clear()
    _fix_ip(sandbox)
    assert _recheck(connection) == Status.CONNECTED
    assert len(_alerts(Alert.Kind.RECOVERED)) == 1


def test_working_again_before_any_failing_alert_says_nothing(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    assert conditions.scan() == 0  # refused for seconds only
    _fix_ip(sandbox)
    assert _recheck(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.failing_since is None
    assert _alerts() == []
    # A second episode counts from its own start.
    _break_ip(sandbox)
    _recheck(connection)
    connection.refresh_from_db()
    assert conditions.scan(connection.failing_since + timedelta(minutes=29)) == 0
    assert conditions.scan(connection.failing_since + timedelta(minutes=31)) == 1


def test_two_episodes_alert_twice_and_recover_twice(sandbox, alice):
    connection = _connected(alice)
    for _ in range(2):
        _break_ip(sandbox)
        _recheck(connection)
        assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 1
        _fix_ip(sandbox)
        assert _recheck(connection) == Status.CONNECTED
    assert len(_alerts(Alert.Kind.FAILING)) == 2
    assert len(_alerts(Alert.Kind.RECOVERED)) == 2


# --- security: withdraw, replaced, removed ---------------------------------------------------


def test_a_working_key_that_gains_withdraw_is_destroyed_and_alerted(sandbox, alice):
    connection = _connected(alice)
    masked = connection.masked_access_key
    sandbox.accounts[GOOD[0]]["permission"] = "readOnly,trade,withdraw"
    assert _recheck(connection) == Status.WITHDRAW_ENABLED
    connection.refresh_from_db()
    assert connection.secret_key is None
    [alert] = _alerts()
    assert alert.kind == Alert.Kind.WITHDRAW
    assert alert.dedupe_key == f"withdraw:{connection.pk}:{masked}"
    assert alert.title == f"HTX · Main ({masked}): key refused and deleted, it can withdraw"
    assert alert.happened and alert.fix
    assert GOOD[0] not in alert.title + alert.happened + alert.fix
    assert GOOD[1] not in alert.title + alert.happened + alert.fix


def test_a_new_key_with_withdraw_is_refused_without_an_alert(sandbox, alice):
    key = demo_key("demo: same user, key with withdraw")
    connection = services.connection_create(
        owner=alice, exchange="htx", label="", access_key=key[0], secret_key=key[1]
    )
    assert _check(connection) == Status.WITHDRAW_ENABLED
    assert _alerts() == []  # never a working connection: the form says it


def _another_key_of_the_same_account(sandbox) -> tuple[str, str]:
    new_key, new_secret = "demoaaaa-bbbbcccc-dddd-eeee-ffff0", "0a1b2c3d-4e5f6a7b-8c9d0e1f-2a3b4"
    sandbox.accounts[new_key] = {k: v for k, v in sandbox.accounts[GOOD[0]].items() if k != "secret"}
    sandbox.accounts[new_key]["secret"] = new_secret
    return new_key, new_secret


def test_a_replaced_key_is_alerted_with_both_masked_keys(sandbox, alice):
    connection = _connected(alice)
    old_masked = connection.masked_access_key
    new_key, new_secret = _another_key_of_the_same_account(sandbox)
    services.connection_replace_keys(connection=connection, access_key=new_key, secret_key=new_secret)
    assert _check(connection) == Status.CONNECTED
    connection.refresh_from_db()
    assert connection.access_key == new_key
    [alert] = _alerts()
    assert alert.kind == Alert.Kind.REPLACED
    new_masked = connection.masked_access_key
    assert alert.dedupe_key == f"replaced:{connection.pk}:{old_masked}:{new_masked}"
    assert old_masked in alert.happened and new_masked in alert.happened
    assert new_key not in alert.happened and new_secret not in alert.happened + alert.fix


def test_a_refused_replacement_is_not_a_replaced_key(sandbox, alice):
    connection = _connected(alice)
    services.connection_replace_keys(connection=connection, access_key=GOOD[0] + "x", secret_key="nope")
    _check(connection)
    connection.refresh_from_db()
    assert connection.replacement_error
    assert _alerts() == []


def test_a_removed_connection_leaves_an_alert_naming_it(sandbox, alice):
    connection = _connected(alice, label="Savings")
    pk, masked = connection.pk, connection.masked_access_key
    services.connection_remove(connection=connection)
    assert not ExchangeConnection.objects.filter(pk=pk).exists()
    [alert] = _alerts()
    assert alert.kind == Alert.Kind.REMOVED
    assert alert.connection is None and alert.user == alice
    assert alert.connection_name == f"HTX · Savings ({masked})"
    assert alert.exchange_name == "HTX"
    assert alert.dedupe_key == f"removed:{pk}"
    assert alert.link == "/exchanges/" or "exchanges" in alert.link
    assert "still exists on HTX" in alert.happened


@pytest.mark.parametrize("what", ["withdraw", "replaced", "removed"])
def test_security_alerts_off_raise_nothing(sandbox, alice, what):
    _prefs(alice, on_security=False)
    connection = _connected(alice)
    if what == "withdraw":
        sandbox.accounts[GOOD[0]]["permission"] = "readOnly,trade,withdraw"
        assert _recheck(connection) == Status.WITHDRAW_ENABLED
    elif what == "replaced":
        new_key, new_secret = _another_key_of_the_same_account(sandbox)
        services.connection_replace_keys(connection=connection, access_key=new_key, secret_key=new_secret)
        assert _check(connection) == Status.CONNECTED
        assert ExchangeConnection.objects.get(pk=connection.pk).access_key == new_key
    else:
        services.connection_remove(connection=connection)
        assert not ExchangeConnection.objects.filter(pk=connection.pk).exists()
    assert _alerts() == []


def test_alerts_belong_to_the_connections_owner(sandbox, alice, bob):
    _connected(alice, EXPIRING)
    _prefs(bob, on_expiry=False)
    assert conditions.scan() == 1
    assert _alerts()[0].user == alice
    assert not Alert.objects.filter(user=bob).exists()


# --- an alert exists if and only if its cause committed --------------------------------------


class Boom(Exception):
    pass


def test_a_removal_rolled_back_leaves_no_alert(sandbox, alice):
    connection = _connected(alice)
    pk = connection.pk
    with pytest.raises(Boom), transaction.atomic():
        services.connection_remove(connection=connection)
        assert len(_alerts()) == 1  # written in the same transaction...
        raise Boom
    assert _alerts() == []  # ...and gone with it
    assert ExchangeConnection.objects.filter(pk=pk).exists()


def test_a_withdraw_refusal_rolled_back_leaves_no_alert(sandbox, alice):
    connection = _connected(alice)
    sandbox.accounts[GOOD[0]]["permission"] = "readOnly,trade,withdraw"
    _due(connection)
    with pytest.raises(Boom), transaction.atomic():
        assert _check(connection) == Status.WITHDRAW_ENABLED
        raise Boom
    assert _alerts() == []
    connection.refresh_from_db()
    assert connection.status == Status.CONNECTED and connection.has_keys


def test_a_recovery_rolled_back_leaves_no_alert_and_the_episode_open(sandbox, alice):
    connection = _connected(alice)
    _break_ip(sandbox)
    _recheck(connection)
    assert conditions.scan(timezone.now() + timedelta(minutes=31)) == 1
    _fix_ip(sandbox)
    _due(connection)
    with pytest.raises(Boom), transaction.atomic():
        assert _check(connection) == Status.CONNECTED
        assert len(_alerts(Alert.Kind.RECOVERED)) == 1
        raise Boom
    assert _alerts(Alert.Kind.RECOVERED) == []
    connection.refresh_from_db()
    assert connection.failing_since is not None and connection.status == Status.IP_NOT_ALLOWED


def test_a_duplicate_dedupe_key_inside_a_transaction_undoes_only_itself(alice):
    from alerts.outbox import raise_alert

    with transaction.atomic():
        first = raise_alert(user=alice, kind=Alert.Kind.TEST, dedupe_key="k1", title="t", happened="h")
        assert first is not None
        assert raise_alert(user=alice, kind=Alert.Kind.TEST, dedupe_key="k1", title="t", happened="h") is None
    assert Alert.objects.filter(dedupe_key="k1").count() == 1
