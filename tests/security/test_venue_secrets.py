"""The secrets rules of issue 5 for every registered venue, not only HTX.

Each venue's demo keys go through a full cycle (connect from the browser, checks run in-process,
a "Refresh now", an outage, a replacement accepted and one refused, every page rendered, the
connection removed) with every logger at DEBUG. No secret key, no passphrase (OKX's third
credential, a secret like the Secret Key) and no full API key may show up in a log record, a page
or HTMX fragment, an exception, a Celery task message, an admin page, Redis or a database row in
plain text. As in tests/security/test_secrets_and_access.py, a leak is any 12-character piece of a
key (a masked key keeps only 4 + 4 characters).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import string
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
import redis
from django.db import connection as db
from django.test import Client
from django.urls import reverse

from exchanges import keycheck, registry
from exchanges.logging import RedactSigningParams
from exchanges.models import ExchangeConnection, Status
from exchanges.venues.kit.errors import VenueError
from exchanges.venues.kit.types import Credentials, Prior
from tests.security.test_secrets_and_access import (
    HTMX,
    MODAL,
    REQUIRED_TABLES,
    _all_logs_at_debug,
    _as_printed,
    _as_text,
    _body,
    _configured_console,
    _database_rows,
    _decoded,
    _leaks,
    _log_in,
    _make_due,
    _owner_pages,
    _redis_contents,
)

pytestmark = pytest.mark.django_db

VENUES = [pytest.param(venue, id=venue.id) for venue in registry.venues()]

# Headers that sign a request or name its key: Binance's X-MBX-APIKEY, OKX's OK-ACCESS-SIGN,
# -KEY and -PASSPHRASE, Bybit's X-BAPI-SIGN and X-BAPI-API-KEY.
_SIGNING_HEADERS = (
    "X-MBX-APIKEY",
    "OK-ACCESS-SIGN",
    "OK-ACCESS-KEY",
    "OK-ACCESS-PASSPHRASE",
    "X-BAPI-SIGN",
    "X-BAPI-API-KEY",
)
# Signing material left in clear by a log line: HTX's AccessKeyId/Signature query parameters,
# Binance's signature= (query or form body), and the value of any of those headers.
_UNREDACTED_SIGNING = re.compile(
    r"(AccessKeyId|Signature|accessKey)=(?!\[redacted\])"
    rf"|(?:{'|'.join(map(re.escape, _SIGNING_HEADERS))})['\"]?+\s*+[:=]\s*+['\"]?+(?!\[redacted\])",
    re.IGNORECASE,
)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Connect attempts are rate limited in Redis; these tests connect many times."""
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in broker.scan_iter(match="*allauth:rl:*", count=1000):
        broker.delete(key)


@pytest.fixture
def _purge_task_queue():
    from bitsgap_clone.celery import app

    yield
    app.control.purge()


# --- Keys ---------------------------------------------------------------------------------------


def _shaped_like(text: str) -> str:
    """A new random value of the same shape: letters for letters (same case), digits for digits,
    everything else kept, so it passes the venue's format rules. A value written in hexadecimal
    (OKX's UUID keys and hex secrets) stays hexadecimal."""
    rng = secrets.SystemRandom()
    hexadecimal = all(ch in string.hexdigits or ch == "-" for ch in text)
    lower = "abcdef" if hexadecimal else string.ascii_lowercase
    upper = lower.upper() if hexadecimal else string.ascii_uppercase
    out = []
    for ch in text:
        if ch.isdigit():
            out.append(rng.choice(string.digits))
        elif ch.isupper():
            out.append(rng.choice(upper))
        elif ch.islower():
            out.append(rng.choice(lower))
        else:
            out.append(ch)
    return "".join(out)


def _is_wallet(value) -> bool:
    """A wallet in a sandbox key entry: balance lines (a list of objects) or an account object
    (Binance's margin). A permission map (Bybit's lists of names) or an IP list is not."""
    if isinstance(value, list):
        return any(isinstance(line, dict) for line in value)
    if isinstance(value, dict):
        return not all(isinstance(v, list) and all(isinstance(n, str) for n in v) for v in value.values())
    return False


def _add_sibling_key(sandbox, good: Credentials) -> Credentials:
    """A second key of the good key's account (and site), added to the sandbox (to replace the
    first), with a passphrase of its own where the venue has one. The wallets are left out: a
    sandbox shows every key of one account the wallets of the key that has them."""
    api_key, secret = _shaped_like(good.api_key), _shaped_like(good.secret)
    entry = {k: v for k, v in sandbox.accounts[good.api_key].items() if not _is_wallet(v)}
    entry.update(secret=secret, note="secrets test: second key of the good key's account")
    extra = dict(good.extra)
    if "passphrase" in extra:
        extra["passphrase"] = entry["passphrase"] = _shaped_like(extra["passphrase"])
    sandbox.accounts[api_key] = entry
    return Credentials(api_key, secret, extra)


def _form(venue, key: Credentials, *, replacing: bool = False, **fields: str) -> dict[str, str]:
    """What the connect (or replace) dialog posts: every credential field of the venue (API Key,
    Secret Key, a passphrase, the site; a replacement keeps the connection's site) with `fields`."""
    values = {"access_key": key.api_key, "secret_key": key.secret, **key.extra}
    for spec in venue.credential_fields:
        if spec.choices and replacing:
            continue
        fields[spec.name] = values.get(spec.name, spec.choices[0][0] if spec.choices else "")
    return fields


def _key_values(key: Credentials, name: str = "") -> dict[str, str]:
    """The key's secret parts by name: its secret and its passphrase (if any)."""
    prefix = f"{name} " if name else ""
    values = {f"{prefix}secret": key.secret}
    if key.extra.get("passphrase"):
        values[f"{prefix}passphrase"] = key.extra["passphrase"]
    return values


def _stored(key: Credentials) -> tuple[str, str, str | None]:
    """The key as a connection stores it: API Key, Secret Key, passphrase (None without one)."""
    return key.api_key, key.secret, key.extra.get("passphrase") or None


def _masked(api_key: str) -> str:
    return f"{api_key[:4]}…{api_key[-4:]}"


@dataclass
class KeySet:
    good: Credentials
    sibling: Credentials  # replaces the good key
    refused: Credentials  # offered as a replacement, refused (another account, read-only)

    @property
    def secrets(self) -> dict[str, str]:
        """Secret Keys and passphrases: no piece of them anywhere."""
        return (
            _key_values(self.good)
            | _key_values(self.sibling, "replacement")
            | _key_values(self.refused, "refused")
        )

    @property
    def api_keys(self) -> dict[str, str]:
        return {
            "api key": self.good.api_key,
            "replacement api key": self.sibling.api_key,
            "refused api key": self.refused.api_key,
        }

    @property
    def all(self) -> dict[str, str]:
        return self.secrets | self.api_keys


# --- Looking for key material -----------------------------------------------------------------


def _assert_logs_hold_no_key_material(records, secrets_: dict[str, str], api_keys: dict[str, str]) -> None:
    """Raw records (message, arguments, exceptions, extras): no piece of a secret and no whole
    API key. As printed through the configured console handler: no piece of either, and no
    signing parameter or key header left unredacted."""
    filters, formatter = _configured_console()
    raw_leaks, printed_leaks = [], []
    for record, raw in records:
        raw_leaks += [f"{record.name}: {leak}" for leak in _leaks(raw, secrets_)]
        raw_leaks += [f"{record.name}: whole {name}" for name, value in api_keys.items() if value in raw]
        printed = _as_printed(record, filters, formatter)
        if printed is None:
            continue
        printed_leaks += [f"{record.name}: {leak}" for leak in _leaks(printed, secrets_ | api_keys)]
        if _UNREDACTED_SIGNING.search(printed):
            printed_leaks.append(f"{record.name}: unredacted signing material in {printed!r}")
    assert not raw_leaks, "\n".join(raw_leaks)
    assert not printed_leaks, "\n".join(printed_leaks)


def _assert_page_is_clean(what: str, response, values: dict[str, str], *, masked: str | None = None) -> None:
    body = _body(response)
    assert not _leaks(body, values), f"{what}: {_leaks(body, values)}"
    for name, value in response.items():
        assert not _leaks(f"{name}: {value}", values), f"{what}: header {name}"
    if masked:
        assert masked in body, f"{what} should show the key masked as {masked}"


@contextmanager
def _published_messages():
    """Every task message this process publishes within the block: (headers, body)."""
    from celery.signals import after_task_publish

    seen: list[tuple[dict, object]] = []

    def record(sender=None, headers=None, body=None, **kwargs):
        seen.append((dict(headers or {}), body))

    after_task_publish.connect(record, weak=False)
    try:
        yield seen
    finally:
        after_task_publish.disconnect(record)


def _raw_connection_row(pk: int) -> dict[str, str | None]:
    """The connection's key columns, read with raw SQL (what a database dump would show)."""
    columns = [
        "access_key",
        "secret_key",
        "passphrase",
        "pending_access_key",
        "pending_secret_key",
        "pending_passphrase",
        "access_key_fingerprint",
        "site",
    ]
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM exchanges_exchangeconnection WHERE id = %s",  # noqa: S608
            [pk],
        )
        row = cursor.fetchone()
    assert row is not None, f"connection {pk} is gone"
    return {
        name: None if value is None else _as_text(value) for name, value in zip(columns, row, strict=True)
    }


# --- A full cycle, for one venue ----------------------------------------------------------------


@dataclass
class Cycle:
    venue: object
    keys: KeySet
    pk: int
    records: list = field(default_factory=list)
    pages: list[tuple[str, object, str | None]] = field(default_factory=list)  # (what, response, masked)
    messages: list[tuple[dict, object]] = field(default_factory=list)
    rows_before_removal: dict[str, list[str]] = field(default_factory=dict)
    key_columns: dict[str, str | None] = field(default_factory=dict)  # after the replacement
    redis: dict[str, str] = field(default_factory=dict)
    rows_after_removal: dict[str, list[str]] = field(default_factory=dict)
    decrypted: tuple[str, str, str | None] | None = None  # API Key, Secret Key, passphrase


def _owner_pages_of(client: Client, cycle: Cycle, masked: str, when: str) -> None:
    for what, url, headers, shows_masked in _owner_pages(cycle.pk):
        response = client.get(url, **headers)
        assert response.status_code in (200, 286), f"{when} {what}: {response.status_code}"
        cycle.pages.append((f"{when}: {what}", response, masked if shows_masked else None))


def _admin_pages_of(cycle: Cycle, alice, django_user_model) -> None:
    root = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="pw-root-123"
    )
    staff = Client()
    staff.force_login(root)
    opts = ExchangeConnection._meta
    base = f"admin:{opts.app_label}_{opts.model_name}"
    masked = _masked(cycle.keys.sibling.api_key)
    for what, url, shows_masked in (
        ("changelist", reverse(f"{base}_changelist"), True),
        ("changelist search", reverse(f"{base}_changelist") + "?q=alice", True),
        ("change", reverse(f"{base}_change", args=[cycle.pk]), True),
        ("delete", reverse(f"{base}_delete", args=[cycle.pk]), True),
        ("history", reverse(f"{base}_history", args=[cycle.pk]), True),
        ("user change", reverse("admin:accounts_user_change", args=[alice.pk]), False),
    ):
        response = staff.get(url, follow=True)
        assert response.status_code == 200, f"admin {what}: {response.status_code}"
        cycle.pages.append((f"admin {what}", response, masked if shows_masked else None))


def _full_cycle(venue, sandbox, alice, client, capture_on_commit, django_user_model) -> Cycle:
    good = venue.demo_credentials("good")
    keys = KeySet(
        good=good, sibling=_add_sibling_key(sandbox, good), refused=venue.demo_credentials("read_only")
    )
    with _published_messages() as messages, _all_logs_at_debug() as records:
        _log_in(client)
        # Connect from the browser: the check's task message goes to Redis once committed.
        with capture_on_commit(execute=True):
            response = client.post(
                reverse("exchanges:connection-add-venue", args=[venue.id]), _form(venue, good, label="Main")
            )
        assert response.status_code == 302, _body(response)[:2000]
        cycle = Cycle(venue, keys, ExchangeConnection.objects.get(owner=alice).pk, records, messages=messages)
        pk = cycle.pk
        connection = ExchangeConnection.objects.get(pk=pk)
        assert (connection.access_key, connection.secret_key, connection.passphrase) == _stored(good)
        assert connection.site == good.extra.get("site", ""), "the site chosen in the dialog"
        assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
        _owner_pages_of(client, cycle, _masked(good.api_key), "connected")

        # "Refresh now" from the row (an HTMX fragment comes back), then an outage and after it.
        with capture_on_commit(execute=True):
            response = client.post(reverse("exchanges:connection-refresh", args=[pk]), **HTMX)
        assert response.status_code == 200
        cycle.pages.append(("refresh fragment", response, _masked(good.api_key)))
        assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
        sandbox.faults.update(http_status=503)
        _make_due(pk)
        assert keycheck.connection_check(connection_id=pk) == Status.TEMPORARY
        response = client.get(reverse("exchanges:connection-row", args=[pk]), **HTMX)
        cycle.pages.append(("row during an outage", response, _masked(good.api_key)))
        sandbox.faults.clear()
        _make_due(pk)
        assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED

        # The same key again is refused as a duplicate, without echoing the secret back.
        for headers in ({}, MODAL):
            response = client.post(
                reverse("exchanges:connection-add-venue", args=[venue.id]),
                _form(venue, good, label=""),
                **headers,
            )
            assert response.status_code == 200 and "already connected" in _body(response)
            # The form shows the API Key back as typed, for correcting it (as for HTX in
            # test_secrets_and_access.py); the secret and the passphrase are never echoed.
            body = _body(response)
            assert not _leaks(body, keys.secrets), _leaks(body, keys.secrets)
            assert body.count(good.api_key) == 1, "the API Key only in its own input field"

        # A replacement key of the same account is accepted...
        with capture_on_commit(execute=True):
            response = client.post(
                reverse("exchanges:connection-replace", args=[pk]), _form(venue, keys.sibling, replacing=True)
            )
        assert response.status_code == 302, _body(response)[:2000]
        connection = ExchangeConnection.objects.get(pk=pk)
        pending = (
            connection.pending_access_key,
            connection.pending_secret_key,
            connection.pending_passphrase,
        )
        assert pending == _stored(keys.sibling), "the replacement is held with every credential"
        response = client.get(reverse("exchanges:connection-replacement", args=[pk]), **HTMX)
        cycle.pages.append(("replacement in progress", response, None))
        assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
        assert ExchangeConnection.objects.get(pk=pk).masked_access_key == _masked(keys.sibling.api_key)

        # ...and one of another account, without trading, is refused (from the dialog).
        with capture_on_commit(execute=True):
            response = client.post(
                reverse("exchanges:connection-replace", args=[pk]),
                _form(venue, keys.refused, replacing=True),
                **MODAL,
            )
        assert response.status_code == 200, _body(response)[:2000]
        cycle.pages.append(("replacement submitted (dialog)", response, None))
        keycheck.connection_check(connection_id=pk)
        connection = ExchangeConnection.objects.get(pk=pk)
        assert connection.replacement_error, "the replacement was refused"
        assert connection.pending_access_key is None and connection.pending_secret_key is None
        assert connection.pending_passphrase is None
        cycle.decrypted = (connection.access_key, connection.secret_key, connection.passphrase)
        assert cycle.decrypted == _stored(keys.sibling)
        response = client.get(reverse("exchanges:connection-replacement", args=[pk]), **MODAL)
        cycle.pages.append(("replacement refused (dialog)", response, None))

        _owner_pages_of(client, cycle, _masked(keys.sibling.api_key), "replaced")
        _admin_pages_of(cycle, alice, django_user_model)
        cycle.key_columns = _raw_connection_row(pk)
        cycle.rows_before_removal = _database_rows()
        cycle.redis = _redis_contents()

        # Removal: the row goes, with its keys.
        response = client.post(reverse("exchanges:connection-remove", args=[pk]))
        assert response.status_code == 302
        assert not ExchangeConnection.objects.filter(pk=pk).exists()
        for what, url in (
            ("list after removal", reverse("exchanges:connection-list")),
            ("security log after removal", reverse("accounts:security-log")),
        ):
            cycle.pages.append((what, client.get(url), None))
        cycle.rows_after_removal = _database_rows()
    return cycle


@pytest.fixture(params=VENUES)
def venue(request):
    return request.param


@pytest.fixture
def cycle(venue, sandboxes, alice, client, settings, django_capture_on_commit_callbacks, django_user_model):
    settings.REFRESH_NOW_MIN_SECONDS = 0
    from bitsgap_clone.celery import app

    try:
        yield _full_cycle(
            venue, sandboxes[venue.id], alice, client, django_capture_on_commit_callbacks, django_user_model
        )
    finally:
        app.control.purge()


# --- The cycle, looked at from every side -------------------------------------------------------


def test_a_full_cycle_logs_no_secret_and_no_whole_api_key(cycle):
    records = cycle.records
    # The capture really saw everything at DEBUG: SQL with the encrypted keys, the checks.
    assert any(r.name == "django.db.backends" and "secret_key" in raw for r, raw in records)
    assert any(r.name in ("exchanges.keycheck", "exchanges.recording") for r, _ in records)
    assert any(cycle.venue.name in raw for _, raw in records), "the venue's own failure was logged"
    _assert_logs_hold_no_key_material(records, cycle.keys.secrets, cycle.keys.api_keys)


def test_no_page_or_htmx_fragment_shows_a_secret_and_the_api_key_only_masked(cycle):
    owner_pages = [p for p in cycle.pages if not p[0].startswith("admin ")]
    assert len(owner_pages) >= 2 * len(_owner_pages(0)) + 6
    for what, response, masked in owner_pages:
        _assert_page_is_clean(what, response, cycle.keys.all, masked=masked)
    # The security log names the keys, masked: the first one and its replacement.
    log = _body(next(r for what, r, _ in cycle.pages if what == "security log after removal"))
    assert _masked(cycle.keys.good.api_key) in log and _masked(cycle.keys.sibling.api_key) in log


def test_no_admin_page_shows_a_secret_and_the_api_key_only_masked(cycle):
    admin_pages = [p for p in cycle.pages if p[0].startswith("admin ")]
    assert len(admin_pages) == 6
    for what, response, masked in admin_pages:
        _assert_page_is_clean(what, response, cycle.keys.all, masked=masked)


def test_task_messages_carry_connection_ids_only_and_redis_holds_no_key_material(cycle):
    checks = [(h, b) for h, b in cycle.messages if h.get("task") == "exchanges.tasks.check_connection"]
    # Connect, "Refresh now", the accepted and the refused replacement.
    assert len(checks) >= 4, [h.get("task") for h, _ in cycle.messages]
    for headers, body in cycle.messages:
        args, kwargs = body[0], body[1]
        assert list(args) == [cycle.pk] and not kwargs, f"{headers.get('task')}: {body!r}"
        text = json.dumps(headers, default=str) + json.dumps(body, default=str)
        assert not _leaks(text, cycle.keys.all), _leaks(text, cycle.keys.all)
    # What Redis held before the removal: the messages themselves (decoded), the cache.
    assert any("exchanges.tasks.check_connection" in text for text in cycle.redis.values())
    # Cached per venue, and per site for a venue with several ("okx:global:tickers").
    site = cycle.keys.good.extra.get("site")
    tickers = f"{cycle.venue.id}:{site}:tickers" if site else f"{cycle.venue.id}:tickers"
    assert any(tickers in key for key in cycle.redis), f"the venue's prices are cached ({tickers})"
    leaks = [
        f"{key}: {leak}"
        for key, text in cycle.redis.items()
        for leak in _leaks(_decoded(text), cycle.keys.all)
    ]
    assert not leaks, "\n".join(leaks)


def test_no_database_row_holds_a_key_in_plain_text_before_or_after_removal(cycle):
    rows = cycle.rows_before_removal
    for table in REQUIRED_TABLES:
        assert rows.get(table), f"{table} has no rows: the cycle did not exercise it"
    for when, snapshot in (("before removal", rows), ("after removal", cycle.rows_after_removal)):
        leaks = [
            f"{when} {table}: {leak}"
            for table, table_rows in snapshot.items()
            for row in table_rows
            for leak in _leaks(row, cycle.keys.all)
        ]
        assert not leaks, "\n".join(leaks)
    # The encrypted columns hold Fernet tokens, not the keys; and yet they decrypt.
    columns = cycle.key_columns
    encrypted = ["access_key", "secret_key"]
    if "passphrase" in cycle.keys.good.extra:
        encrypted.append("passphrase")
    else:
        assert columns["passphrase"] is None, "a venue without a passphrase stores none"
    for name in encrypted:
        assert columns[name] and columns[name].startswith("gAAAAA"), f"{name}: {columns[name]!r}"
        assert not _leaks(columns[name], cycle.keys.all)
    for name in ("pending_access_key", "pending_secret_key", "pending_passphrase"):
        assert columns[name] is None, f"{name}: {columns[name]!r}"
    assert columns["site"] == cycle.keys.good.extra.get("site", ""), columns["site"]
    assert cycle.decrypted == _stored(cycle.keys.sibling)
    assert not [
        r for r in cycle.rows_after_removal["exchanges_exchangeconnection"] if r.startswith(f"{cycle.pk} |")
    ]


# --- Exceptions -----------------------------------------------------------------------------------


def test_venue_errors_and_clients_hold_no_key_material(venue, sandboxes):
    sandbox = sandboxes[venue.id]
    good = venue.demo_credentials("good")
    cases: list[tuple[str, Credentials, VenueError]] = []

    def case(what, key: Credentials, *, base_url=None, timeout=(2.0, 2.0), **faults):
        sandbox.faults.clear()
        client = venue.client(base_url=base_url or sandbox.url, credentials=key, timeout=timeout)
        for text in (repr(client), str(client)):
            assert not _leaks(text, {"api key": key.api_key, **_key_values(key)}), what
        with client, pytest.raises(VenueError) as caught:
            client.sync_clock()
            sandbox.faults.update(**faults)
            client.inspect_key(Prior())
        cases.append((what, key, caught.value))

    case("unreachable host", good, base_url="http://127.0.0.1:9")
    case("timeout", good, timeout=(2.0, 0.2), latency_ms=1000)
    case("wrong secret", Credentials(good.api_key, _shaped_like(good.secret), good.extra))
    case("unknown api key", Credentials(_shaped_like(good.api_key), good.secret, good.extra))
    if "passphrase" in good.extra:
        wrong = {**good.extra, "passphrase": _shaped_like(good.extra["passphrase"])}
        case("wrong passphrase", Credentials(good.api_key, good.secret, wrong))
    case("bound to other addresses", venue.demo_credentials("ip_elsewhere"))
    case("gateway error", good, http_status=502)
    case("malformed answer", good, malformed_json=True)
    case("maintenance", good, maintenance=True)
    case("rate limited", good, rate_limited=True)
    sandbox.faults.clear()

    assert len(cases) == 9 + ("passphrase" in good.extra)
    for what, key, error in cases:
        text = "\n".join(
            [
                str(error),
                repr(error),
                *map(str, error.args),
                error.detail,
                error.message,
                error.path,
                "".join(traceback.format_exception(error)),
            ]
        )
        values = {"api key": key.api_key, **_key_values(key), **_key_values(good, "good")}
        leaks = _leaks(text, values)
        assert not leaks, f"{venue.id} {what}: {leaks}"
        assert not _UNREDACTED_SIGNING.search(text), f"{venue.id} {what}: {text}"


# --- The log filter ---------------------------------------------------------------------------------


def _signed_requests(venue, sandbox, key: Credentials) -> list:
    """The signed requests a venue's client sends for one check, as the sandbox received them."""
    seen = []
    handle = sandbox.handle

    def recording(request):
        seen.append(request)
        return handle(request)

    sandbox.handle = recording  # the sandbox's HTTP handler calls sandbox.handle(request)
    try:
        with venue.client(base_url=sandbox.url, credentials=key, timeout=(2.0, 5.0)) as client:
            client.sync_clock()
            client.read_balances(client.inspect_key(Prior()))
    finally:
        sandbox.handle = handle
    return [r for r in seen if _signing_material(r, key)]


def _signing_material(request, key: Credentials) -> set[str]:
    """Values in a request that sign it or name its key: signature parameters (query or form
    body), the signing headers (OKX's OK-ACCESS-SIGN/-KEY/-PASSPHRASE, Bybit's X-BAPI-SIGN/
    -API-KEY, Binance's X-MBX-APIKEY) and any parameter or header holding the API key or the
    passphrase."""
    credentials = {value for value in (key.api_key, key.extra.get("passphrase")) if value}
    params = list(request.params)
    if request.body and "form" in request.content_type:
        params += parse_qsl(request.body.decode(), keep_blank_values=True)
    material = {value for name, value in params if name.lower() == "signature" or value in credentials}
    signing_headers = {name.lower() for name in _SIGNING_HEADERS}
    material |= {
        value
        for name, value in request.headers.items()
        if name.lower() in signing_headers or value in credentials
    }
    # As sent: percent-encoded in a query or form body (a base64 signature's + / =).
    material |= {quote(value, safe="") for value in material} | {quote_plus(value) for value in material}
    return {value for value in material if value}


def _log_lines(request, base_url: str) -> list[tuple[str, tuple]]:
    """(msg, args) of what a request looks like in the logs of HTTP libraries and our own code."""
    target = request.path + (f"?{request.query}" if request.query else "")
    headers = dict(request.headers)
    body = request.body.decode("latin-1") if request.body else ""
    raw_headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return [
        ('%s://%s "%s %s HTTP/1.1" %s %s', ("http", base_url, request.method, target, 200, 512)),  # urllib3
        ("%s %s%s", (request.method, base_url, target)),
        ("request headers: %r", (headers,)),
        ("request body: %s", (body,)),
        ("send: %r", (f"{request.method} {target} HTTP/1.1\r\n{raw_headers}\r\n{body}".encode(),)),
        (f"{request.method} {target} {headers} {body}", ()),  # already formatted, no args
    ]


def test_the_log_filter_blanks_each_venues_signing_material(venue, sandboxes):
    sandbox = sandboxes[venue.id]
    key = venue.demo_credentials("good")
    requests_ = _signed_requests(venue, sandbox, key)
    assert len(requests_) >= 3, "a check sends several signed requests"
    where = {"query": 0, "body": 0, "header": 0}
    lines = least_lines = 0
    log_filter = RedactSigningParams()
    for request in requests_:
        material = _signing_material(request, key)
        in_query = any(value in request.query for value in material)
        in_body = bool(request.body) and any(value.encode() in request.body for value in material)
        in_header = any(value in request.headers.values() for value in material)
        where["query"] += in_query
        where["body"] += in_body
        where["header"] += in_header
        # The raw send and the preformatted line always hold it; the urllib3 and request lines
        # when it is in the query, the headers line when in a header, the body line when in it.
        least_lines += 2 + 2 * in_query + in_header + in_body
        for msg, args in _log_lines(request, sandbox.url):
            record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, __file__, 1, msg, args, None)
            original = record.getMessage()
            if not any(value in original for value in material):
                continue  # e.g. the body line of a GET
            lines += 1
            assert log_filter.filter(record) is True, "the filter blanks, it never drops a record"
            cleaned = record.getMessage()
            leaked = sorted(value for value in material if value in cleaned)
            assert not leaked, f"{venue.id}: {leaked} left in {cleaned!r}"
            assert not [value for value in (key.api_key, *_key_values(key).values()) if value in cleaned]
            assert "[redacted]" in cleaned, cleaned
            assert request.path in cleaned or request.path not in original, "only the material is blanked"
            assert not _UNREDACTED_SIGNING.search(cleaned), cleaned
    # Where each venue puts its signing material, as the brief of each venue says.
    if venue.id == "htx":
        assert where["query"] == len(requests_), where  # AccessKeyId and Signature in the query
    if venue.id == "binance":
        assert where["header"] == len(requests_), where  # X-MBX-APIKEY on every signed call
        assert where["query"] and where["body"], where  # signature= in GET queries and POST bodies
    if venue.id in ("okx", "bybit"):
        # OK-ACCESS-KEY/-SIGN/-PASSPHRASE, or X-BAPI-API-KEY/-SIGN, on every signed call; no
        # signature in the query.
        assert where["header"] == len(requests_) and not where["query"], where
    if "passphrase" in key.extra:
        sent = [r for r in requests_ if key.extra["passphrase"] in r.headers.values()]
        assert len(sent) == len(requests_), "the passphrase goes with every signed call"
    assert sum(where.values()) >= len(requests_), where
    assert lines >= least_lines >= 3 * len(requests_), (lines, least_lines)


# --- A key that can withdraw ----------------------------------------------------------------------


def test_a_key_refused_for_withdraw_is_destroyed(venue, sandboxes, alice, client, _purge_task_queue):
    key = venue.demo_credentials("withdraw")
    client.force_login(alice)
    with _all_logs_at_debug() as records:
        response = client.post(
            reverse("exchanges:connection-add-venue", args=[venue.id]), _form(venue, key, label="Withdraw")
        )
        assert response.status_code == 302, _body(response)[:2000]
        pk = ExchangeConnection.objects.get(owner=alice).pk
        assert keycheck.connection_check(connection_id=pk) == Status.WITHDRAW_ENABLED
    columns = _raw_connection_row(pk)
    assert columns["access_key"] is None and columns["secret_key"] is None, columns
    assert columns["passphrase"] is None and columns["pending_passphrase"] is None, columns
    assert columns["access_key_fingerprint"] is None, columns
    connection = ExchangeConnection.objects.get(pk=pk)
    assert not connection.has_keys and connection.next_check_at is None
    # Nothing left to check with, and nothing of the key left anywhere in the database.
    assert keycheck.connection_check(connection_id=pk) is None
    values = {"api key": key.api_key, **_key_values(key)}
    leaks = [
        f"{t}: {leak}" for t, rows in _database_rows().items() for r in rows for leak in _leaks(r, values)
    ]
    assert not leaks, "\n".join(leaks)
    _assert_logs_hold_no_key_material(records, _key_values(key), {"api key": key.api_key})
    for what, url in (
        ("verification", reverse("exchanges:connection-verification", args=[pk])),
        ("list", reverse("exchanges:connection-list")),
    ):
        page = client.get(url)
        assert page.status_code == 200, f"{what}: {page.status_code}"
        _assert_page_is_clean(what, page, values)
    assert "Withdraw" in _body(page), "the list says why the key was refused"
