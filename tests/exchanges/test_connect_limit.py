"""The limit on keys tried (issue 13, point 3): the refusal says exactly when the next key may be
tried, replacements count, a refusal by the address does not spend the account's budget, and
`make demo` has a limit of its own that its demo keys fit in, while production keeps both parts."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from allauth.core.internal.ratelimit import get_cache_key, get_rates
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse

from exchanges import connect_limit, registry
from exchanges.models import ExchangeConnection, Status
from exchanges.services import access_key_fingerprint
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

ADDRESS = "198.51.100.23"
# 00:17:30 UTC: the tests' clock, frozen (allauth and the limit both read time.time()).
NOW = datetime(2026, 12, 2, 0, 17, 30, tzinfo=UTC).timestamp()


def _key(n: int) -> dict:
    return {
        "label": "",
        "access_key": f"test{n:04d}-aaaa-bbbb-cccc-dddd",
        "secret_key": f"TESTSECRET-{n:04d}-eeee",
    }


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters live in Redis, shared by the whole run: every test here starts from
    zero and leaves none of its hits to the tests after it."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    now = [NOW]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


@pytest.fixture
def alice_client(alice):
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(alice)
    return client


def _cache_key(user, per: str) -> str:
    request = RequestFactory().post("/", REMOTE_ADDR=ADDRESS)
    request.user = user
    rate = next(r for r in get_rates(app=connect_limit.APP, action=connect_limit.ACTION) if r.per == per)
    return get_cache_key(request, app=connect_limit.APP, action=connect_limit.ACTION, rate=rate, user=user)


def _hits(user, per: str, times: list[float]) -> None:
    """The counter as allauth keeps it: hit times, newest first."""
    cache.set(_cache_key(user, per), sorted(times, reverse=True), 3600)


def _post(client, n: int):
    return client.post(reverse("exchanges:connection-add-venue", args=["htx"]), _key(n))


def test_the_refusal_says_when_the_next_key_may_be_tried_to_the_second(alice_client, alice, clock):
    # Ten keys tried: the oldest at 23:40:12, so the next is allowed at 00:40:12.
    oldest = datetime(2026, 12, 1, 23, 40, 12, tzinfo=UTC).timestamp()
    _hits(alice, "user", [oldest + 60 * i for i in range(10)])
    body = _post(alice_client, 1).content.decode()
    assert (
        "You have tried 10 keys from this account in the last hour, the most we allow, so that "
        "nobody can test a stolen list of keys through this site. You can try another key in "
        "23 minutes, at 00:41 UTC." in body
    )
    assert not ExchangeConnection.objects.exists()

    clock[0] = oldest + 3600 - 1  # 00:40:11
    body = _post(alice_client, 2).content.decode()
    assert "You can try another key in 1 second, at 00:41 UTC." in body
    assert not ExchangeConnection.objects.exists()

    clock[0] = oldest + 3600  # 00:40:12: the oldest hit is an hour old
    assert _post(alice_client, 3).status_code == 302
    assert ExchangeConnection.objects.count() == 1


def test_the_address_limit_is_named_and_does_not_spend_the_accounts_budget(alice_client, alice, clock):
    _hits(alice, "ip", [NOW - 3000 + i for i in range(30)])  # oldest 00:17:30 - 50 min
    body = _post(alice_client, 1).content.decode()
    assert "30 keys were tried from your network address in the last hour, the most we allow" in body
    assert "You can try another key in 10 minutes, at 00:28 UTC." in body
    assert cache.get(_cache_key(alice, "user"), []) == []  # the refusal cost the account nothing


def test_a_replacement_key_counts_and_is_refused_with_the_same_message(alice_client, alice, clock):
    connection = ExchangeConnection.objects.create(
        owner=alice,
        status=Status.CONNECTED,
        established=True,
        access_key="test9999-aaaa-bbbb-cccc-dddd",
        secret_key="TESTSECRET-9999-eeee",
        access_key_fingerprint=access_key_fingerprint("test9999-aaaa-bbbb-cccc-dddd"),
        account_uid="1",
    )
    _hits(alice, "user", [NOW - 600 - i for i in range(10)])  # oldest 00:07:21
    response = alice_client.post(reverse("exchanges:connection-replace", args=[connection.pk]), _key(5))
    body = response.content.decode()
    assert "You can try another key in 50 minutes, at 01:08 UTC." in body
    connection.refresh_from_db()
    assert not connection.replacing


def test_the_next_key_is_counted_from_the_nth_newest_hit():
    rate = connect_limit.per_user()
    assert (rate.amount, rate.duration) == (10, 3600)
    hits = [1000.0 + i for i in range(12)]  # twelve (the limit was lowered meanwhile)
    assert connect_limit.retry_at(hits, rate, now=1500.0) == 1002.0 + 3600
    assert connect_limit.retry_at(hits[:9], rate, now=1500.0) is None
    assert connect_limit.retry_at(hits, rate, now=1000.0 + 3600 + 2) is None  # three expired


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (1, "in 1 second"),
        (59.2, "in 60 seconds"),
        (61, "in 2 minutes"),
        (3600, "in 1 hour"),
        (3661, "in 1 hour 2 minutes"),
    ],
)
def test_durations_are_rounded_up(seconds, said):
    assert connect_limit._in(seconds) == said


# --- The demo's own limit, production's guard --------------------------------------------------


def _dev_module():
    spec = importlib.util.spec_from_file_location("dev_runner", ROOT / "bin" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _connect_limit_in_a_fresh_process(env: dict) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.ACCOUNT_RATE_LIMITS['connect_key'])"
    clean = {k: v for k, v in os.environ.items() if k not in ("CONNECT_RATE_LIMIT", "DEBUG")}
    clean.update({"DJANGO_SETTINGS_MODULE": "bitsgap_clone.settings", "ENV_FILE": "/nonexistent", **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_make_demo_sets_a_limit_of_its_own_that_every_demo_key_fits_in():
    dev = _dev_module()
    env: dict[str, str] = {"DEBUG": "1"}
    dev.demo_environment(env)
    assert env["CONNECT_RATE_LIMIT"] == dev.DEMO_CONNECT_RATE_LIMIT == "200/h/user,600/h/ip"
    shown = _connect_limit_in_a_fresh_process(env)
    assert shown.stdout.strip() == "200/h/user,600/h/ip", shown.stderr
    # Every demo key of every exchange, tried twice and used once as a replacement, in one hour.
    demo_keys = sum(len(venue.demo_keys()) for venue in registry.venues())
    per_user = next(r for r in get_rates(app="x", action="c", config={"c": env["CONNECT_RATE_LIMIT"]}))
    assert demo_keys >= 30 and 3 * demo_keys <= per_user.amount
    # An exported CONNECT_RATE_LIMIT still wins over the demo's.
    mine = {"CONNECT_RATE_LIMIT": "50/h/user,90/h/ip"}
    dev.demo_environment(mine)
    assert mine["CONNECT_RATE_LIMIT"] == "50/h/user,90/h/ip"


def test_without_the_demo_the_limit_is_ten_per_account_and_thirty_per_address():
    shown = _connect_limit_in_a_fresh_process({"DEBUG": "1"})
    assert shown.stdout.strip() == "10/h/user,30/h/ip", shown.stderr


@pytest.mark.parametrize("limit", ["", "100/h/user", "300/h/ip", "100/h"])
def test_production_refuses_to_start_without_both_parts_of_the_limit(limit):
    production = {
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "FERNET_KEYS": "A" * 43 + "=",
        "KEY_FINGERPRINT_SECRET": "y" * 50,
        "CONNECT_RATE_LIMIT": limit,
    }
    refused = _connect_limit_in_a_fresh_process(production)
    assert refused.returncode != 0
    assert "CONNECT_RATE_LIMIT needs a per-user and a per-ip rate" in refused.stderr
    production["CONNECT_RATE_LIMIT"] = "10/h/user,30/h/ip"
    assert _connect_limit_in_a_fresh_process(production).stdout.strip() == "10/h/user,30/h/ip"
