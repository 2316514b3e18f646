"""Attack-style tests for the security properties of issue 5: secrets, admin, ownership, CSRF,
headers and injection.

Each test tries to break one property and fails if it can. Secrets are looked for as any
12-character piece of the secret or access key (a masked key keeps 4 + 4 characters), so a
partial leak counts as a leak.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import traceback
import uuid
from contextlib import contextmanager, suppress
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib import admin
from django.db import connection as db
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.module_loading import import_string
from fernet_fields import EncryptedTextField

from accounts.models import SecurityEvent
from exchanges import keycheck, registry, services
from exchanges.logging import RedactSigningParams
from exchanges.models import BalanceLine, BalanceSnapshot, ConnectionEvent, ExchangeConnection, Status
from exchanges.venues.htx.client import HtxClient
from exchanges.venues.htx.errors import HtxError
from tests.conftest import ROOT, demo_key, wait_for

pytestmark = pytest.mark.django_db

ACCESS, SECRET = demo_key("demo: good key")
# A second key of the same HTX account (added to the sandbox by the tests), to replace the first.
NEW_ACCESS, NEW_SECRET = "demoBEEF-7a6b5c4d-3e2f1a0b-99887", "c0ffee00-1badb002-deadbeef-12345"
MASKED, NEW_MASKED = f"{ACCESS[:4]}…{ACCESS[-4:]}", f"{NEW_ACCESS[:4]}…{NEW_ACCESS[-4:]}"
SECRETS = {"secret": SECRET, "replacement secret": NEW_SECRET}
ACCESS_KEYS = {"access key": ACCESS, "replacement access key": NEW_ACCESS}
ALICE_LOGIN = {"login": "alice@example.com", "password": "pw-alice-123"}

HTMX = {"HTTP_HX_REQUEST": "true"}
MODAL = {**HTMX, "HTTP_HX_TARGET": "modal-body"}

# Every URL taking a connection id must include at least these (more are found automatically).
MINIMUM_CONNECTION_URLS = {
    "connection-detail",
    "connection-row",
    "connection-verification",
    "connection-refresh",
    "connection-rename",
    "connection-replace",
    "connection-replacement",
    "connection-remove",
    "connection-dismiss",
    "connection-holdings-csv",
}


# --- Looking for key material ------------------------------------------------------------------


def _pieces(value: str, size: int = 12) -> list[str]:
    return [value[i : i + size] for i in range(len(value) - size + 1)]


def _leaks(text: str, values: dict[str, str]) -> list[str]:
    """Which of `values` (or any 12-character piece of one) occur in `text`, with context."""
    found = []
    for name, value in values.items():
        for piece in _pieces(value):
            at = text.find(piece)
            if at >= 0:
                found.append(f"{name} ({piece!r}) in …{text[max(0, at - 100) : at + 100]!r}…")
                break
    return found


def _as_text(value) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def _body(response) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode("utf-8", errors="replace")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters (Redis) outlive a test; these tests log in and connect many times."""
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in broker.scan_iter(match="*allauth:rl:*", count=1000):
        broker.delete(key)


@pytest.fixture
def _purge_task_queue():
    from bitsgap_clone.celery import app

    yield
    app.control.purge()


# --- Capturing every log record -------------------------------------------------------------------

_STANDARD_RECORD_ATTRS = set(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {
    "message",
    "asctime",
}


def _raw_text(record: logging.LogRecord) -> str:
    """Everything a record carries: message, args, exception, stack and extra attributes."""
    parts = [repr(record.msg), repr(record.args)]
    try:
        parts.append(record.getMessage())
    except Exception as error:  # noqa: BLE001 - a broken record is still searched
        parts.append(f"<unformattable: {error!r}>")
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    parts += [record.exc_text or "", record.stack_info or ""]
    parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in _STANDARD_RECORD_ATTRS]
    return "\n".join(parts)


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[tuple[logging.LogRecord, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # First handler on the root logger: sees the record before any handler's filter runs.
        self.records.append((copy.copy(record), _raw_text(record)))


@contextmanager
def _all_logs_at_debug():
    """Every logger (urllib3, requests, celery, kombu, django.db.backends included) at DEBUG,
    every record collected raw; everything restored afterwards."""
    for name in ("urllib3", "urllib3.connectionpool", "requests", "celery", "kombu", "django"):
        logging.getLogger(name)
    recorder = _Recorder()
    root = logging.getLogger()
    loggers = [
        root,
        *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    saved = [(lg, lg.level, lg.disabled, list(lg.handlers)) for lg in loggers]
    disabled_level = logging.root.manager.disable
    debug_cursor = db.force_debug_cursor
    logging.disable(logging.NOTSET)
    db.force_debug_cursor = True  # SQL and its parameters are logged too
    try:
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
            lg.disabled = False
            if lg is root or not lg.propagate:
                lg.handlers.insert(0, recorder)
        yield recorder.records
    finally:
        db.force_debug_cursor = debug_cursor
        logging.disable(disabled_level)
        for lg, level, was_disabled, handlers in saved:
            lg.setLevel(level)
            lg.disabled = was_disabled
            lg.handlers[:] = handlers


def _configured_console():
    """The filters and formatter of the console handler as settings.LOGGING configures them."""
    conf = django_settings.LOGGING
    assert "console" in conf["root"]["handlers"]
    console = conf["handlers"]["console"]
    filters = []
    for name in console.get("filters", []):
        spec = dict(conf["filters"][name])
        factory = spec.pop("()")
        filters.append((import_string(factory) if isinstance(factory, str) else factory)(**spec))
    assert any(isinstance(f, RedactSigningParams) for f in filters), "the console handler must redact"
    fmt = conf["formatters"][console["formatter"]]
    return filters, logging.Formatter(fmt.get("format"), fmt.get("datefmt"), fmt.get("style", "%"))


def _as_printed(record: logging.LogRecord, filters, formatter) -> str | None:
    record = copy.copy(record)
    for f in filters:
        if not f.filter(record):
            return None
    return formatter.format(record)


_UNREDACTED_SIGNING = re.compile(r"(AccessKeyId|Signature|accessKey)=(?!\[redacted\])")


def _assert_logs_hold_no_key_material(records: list[tuple[logging.LogRecord, str]]) -> None:
    filters, formatter = _configured_console()
    printed_leaks, raw_leaks = [], []
    for record, raw in records:
        raw_leaks += [f"{record.name}: {leak}" for leak in _leaks(raw, SECRETS)]
        printed = _as_printed(record, filters, formatter)
        if printed is None:
            continue
        printed_leaks += [f"{record.name}: {leak}" for leak in _leaks(printed, SECRETS | ACCESS_KEYS)]
        if _UNREDACTED_SIGNING.search(printed):
            printed_leaks.append(f"{record.name}: unredacted signing parameter in {printed!r}")
    assert not printed_leaks, "\n".join(printed_leaks)
    assert not raw_leaks, "\n".join(raw_leaks)


# --- Redis and the database -------------------------------------------------------------------

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def _decoded(text: str) -> str:
    """`text` plus every base64 run in it decoded (Celery bodies, nested), searched together."""
    out = [text]
    for _ in range(3):
        decoded = []
        for run in _BASE64.findall(out[-1]):
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded.append(decode(run + "=" * (-len(run) % 4)).decode("latin-1"))
                    break
                except (binascii.Error, ValueError):
                    continue
        if not decoded:
            break
        out.append("\n".join(decoded))
    return "\n".join(out)


def _celery_bodies(value) -> list[str]:
    """Base64-decoded bodies of Celery/kombu messages found in a JSON value."""
    if isinstance(value, list):
        return [b for item in value for b in _celery_bodies(item)]
    if not isinstance(value, dict):
        return []
    bodies = [b for item in value.values() for b in _celery_bodies(item)]
    if isinstance(value.get("body"), str) and value.get("properties", {}).get("body_encoding") == "base64":
        bodies.append(base64.b64decode(value["body"]).decode("latin-1"))
    return bodies


def _redis_contents() -> dict[str, str]:
    """Every key of the Redis database, read by type, Celery message bodies decoded."""
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    contents = {}
    for key in broker.scan_iter(count=1000):
        kind = broker.type(key).decode()
        if kind == "string":
            values = [broker.get(key)]
        elif kind == "list":
            values = broker.lrange(key, 0, -1)
        elif kind == "hash":
            values = [part for pair in broker.hgetall(key).items() for part in pair]
        elif kind == "set":
            values = list(broker.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in broker.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [repr(entry).encode() for entry in broker.xrange(key)]
        else:
            values = [broker.dump(key) or b""]
        texts = [key.decode("latin-1")]
        for value in values:
            if value is None:
                continue
            text = _as_text(value)
            texts.append(text)
            with suppress(ValueError):
                texts += _celery_bodies(json.loads(text))
        contents[key.decode("latin-1")] = "\n".join(texts)
    return contents


def _assert_redis_holds_no_key_material() -> dict[str, str]:
    contents = _redis_contents()
    leaks = [
        f"{key}: {leak}" for key, text in contents.items() for leak in _leaks(text, SECRETS | ACCESS_KEYS)
    ]
    assert not leaks, "\n".join(leaks)
    return contents


REQUIRED_TABLES = (
    "exchanges_exchangeconnection",
    "exchanges_balancesnapshot",
    "exchanges_connectionevent",
    "django_session",
    "accounts_securityevent",
)


def _database_rows() -> dict[str, list[str]]:
    """Every row of every table, read with raw SQL, each value as text."""
    rows = {}
    with db.cursor() as cursor:
        for table in db.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db.ops.quote_name(table)}")  # noqa: S608 - table names from the DB
            rows[table] = [" | ".join(_as_text(v) for v in row) for row in cursor.fetchall()]
    return rows


def _assert_database_holds_no_key_material() -> dict[str, list[str]]:
    rows = _database_rows()
    for table in REQUIRED_TABLES:
        assert rows.get(table), f"{table} has no rows: the cycle did not exercise it"
    leaks = [
        f"{table}: {leak}"
        for table, table_rows in rows.items()
        for row in table_rows
        for leak in _leaks(row, SECRETS | ACCESS_KEYS)
    ]
    assert not leaks, "\n".join(leaks)
    return rows


# --- A full connect + refresh + replace cycle ---------------------------------------------------


def _log_in(client: Client) -> None:
    response = client.post(reverse("account_login"), ALICE_LOGIN)
    assert response.status_code == 302, _body(response)[:2000]


def _make_due(pk: int) -> None:
    ExchangeConnection.objects.filter(pk=pk).update(next_check_at=timezone.now())


def _add_replacement_key_to(sandbox) -> None:
    entry = {k: v for k, v in sandbox.accounts[ACCESS].items() if k != "accounts"}
    entry["secret"] = NEW_SECRET
    sandbox.accounts[NEW_ACCESS] = entry


def _full_cycle(sandbox, alice, client, capture_on_commit) -> ExchangeConnection:
    """Log in through allauth; connect the key (its task message goes to Redis); refresh when
    due, through an HTX outage and after it; replace the key from the browser and check it."""
    _log_in(client)
    with capture_on_commit(execute=True):
        connection = services.connection_create(
            owner=alice, exchange="htx", label="Main", access_key=ACCESS, secret_key=SECRET
        )
    pk = connection.pk
    assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
    _make_due(pk)
    assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
    sandbox.faults.update(http_status=503)
    _make_due(pk)
    assert keycheck.connection_check(connection_id=pk) == Status.TEMPORARY
    sandbox.faults.clear()
    _make_due(pk)
    assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
    _add_replacement_key_to(sandbox)
    with capture_on_commit(execute=True):
        response = client.post(
            reverse("exchanges:connection-replace", args=[pk]),
            {"access_key": NEW_ACCESS, "secret_key": NEW_SECRET},
        )
    assert response.status_code == 302, _body(response)[:2000]
    assert keycheck.connection_check(connection_id=pk) == Status.CONNECTED
    connection = ExchangeConnection.objects.get(pk=pk)
    assert (connection.access_key, connection.secret_key) == (NEW_ACCESS, NEW_SECRET)
    return connection


def test_a_full_connect_refresh_and_replace_cycle_logs_neither_the_secret_nor_the_access_key(
    sandbox, alice, client, django_capture_on_commit_callbacks, _purge_task_queue
):
    with _all_logs_at_debug() as records:
        connection = _full_cycle(sandbox, alice, client, django_capture_on_commit_callbacks)
        for _, url, headers, _ in _owner_pages(connection.pk):
            client.get(url, **headers)
    # The capture really saw everything at DEBUG, SQL with the encrypted keys included. (HTX
    # calls go through http.client, which logs nothing; the filter for urllib3's signed URLs is
    # proved by tests/htx/test_client.py::test_the_log_filter_blanks_signed_urls_in_any_record.)
    assert any(r.name == "django.db.backends" and "secret_key" in raw for r, raw in records)
    assert any(r.name in ("exchanges.keycheck", "exchanges.recording") for r, _ in records)
    _assert_logs_hold_no_key_material(records)


def test_after_a_full_cycle_no_database_row_holds_the_secret_or_the_access_key(
    sandbox, alice, client, django_capture_on_commit_callbacks, _purge_task_queue
):
    connection = _full_cycle(sandbox, alice, client, django_capture_on_commit_callbacks)
    rows = _assert_database_holds_no_key_material()
    (row,) = [r for r in rows["exchanges_exchangeconnection"] if r.startswith(f"{connection.pk} |")]
    assert "gAAAAA" in row, "the keys are stored as Fernet tokens"
    assert "demo" in row and NEW_ACCESS[-4:] in row  # only the head and tail are kept in clear
    assert ExchangeConnection.objects.get(pk=connection.pk).secret_key == NEW_SECRET  # and yet it decrypts


def test_after_a_full_cycle_no_redis_key_holds_the_secret_or_the_access_key(
    sandbox, alice, client, django_capture_on_commit_callbacks, _purge_task_queue
):
    _full_cycle(sandbox, alice, client, django_capture_on_commit_callbacks)
    contents = _assert_redis_holds_no_key_material()
    # The scan really read the task messages (decoded) and the cache.
    assert any("exchanges.tasks.check_connection" in text for text in contents.values())
    assert any("htx:tickers" in key for key in contents)


# --- A cycle through the browser and a real worker process -------------------------------------


class _RedisMonitor:
    """Every command any client (web process or worker) sends to Redis, via MONITOR."""

    def __init__(self):
        self.commands: list[str] = []
        self._sentinel = f"monitor-stop-{uuid.uuid4().hex}"
        self._monitor = redis.Redis.from_url(os.environ["REDIS_URL"]).monitor()

    def __enter__(self) -> _RedisMonitor:
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        return self

    def _listen(self) -> None:
        try:
            for command in self._monitor.listen():
                self.commands.append(command["command"])
                if self._sentinel in command["command"]:
                    return
        except (redis.RedisError, OSError, ValueError):
            return

    def __exit__(self, *exc) -> None:
        redis.Redis.from_url(os.environ["REDIS_URL"]).echo(self._sentinel)
        self._thread.join(10)
        self._monitor.__exit__(*exc)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_cycle_through_the_browser_and_a_real_worker_leaves_no_key_material_in_redis_logs_or_database(
    celery_worker_process, sandbox, alice, client, settings
):
    settings.REFRESH_NOW_MIN_SECONDS = 0
    _add_replacement_key_to(sandbox)
    with _RedisMonitor() as monitor, _all_logs_at_debug() as records:
        _log_in(client)
        response = client.post(
            reverse("exchanges:connection-add-venue", args=["htx"]),
            {"label": "Main", "access_key": ACCESS, "secret_key": SECRET},
        )
        assert response.status_code == 302, _body(response)[:2000]
        pk = ExchangeConnection.objects.get(owner=alice).pk
        wait_for(lambda: ExchangeConnection.objects.get(pk=pk).status == Status.CONNECTED, timeout=30)
        checked = ExchangeConnection.objects.get(pk=pk).last_checked_at
        assert client.post(reverse("exchanges:connection-refresh", args=[pk])).status_code == 302
        wait_for(lambda: ExchangeConnection.objects.get(pk=pk).last_checked_at > checked, timeout=30)
        response = client.post(
            reverse("exchanges:connection-replace", args=[pk]),
            {"access_key": NEW_ACCESS, "secret_key": NEW_SECRET},
        )
        assert response.status_code == 302, _body(response)[:2000]
        wait_for(lambda: ExchangeConnection.objects.get(pk=pk).masked_access_key == NEW_MASKED, timeout=30)
        for _, url, headers, _ in _owner_pages(pk):
            client.get(url, **headers)

    # Everything written to Redis while it ran, by this process and by the worker.
    sent = [_decoded(command) for command in monitor.commands]
    assert sum("exchanges.tasks.check_connection" in text for text in sent) >= 3, "task messages seen"
    leaks = [leak for text in sent for leak in _leaks(text, SECRETS | ACCESS_KEYS)]
    assert not leaks, "\n".join(leaks)
    # What is left in Redis, the database, the worker's log and this process's logs.
    _assert_redis_holds_no_key_material()
    _assert_database_holds_no_key_material()
    worker_log = celery_worker_process.log_path.read_text(errors="replace")
    assert "succeeded" in worker_log
    assert not _leaks(worker_log, SECRETS | ACCESS_KEYS), _leaks(worker_log, SECRETS | ACCESS_KEYS)
    assert not _UNREDACTED_SIGNING.search(worker_log)
    _assert_logs_hold_no_key_material(records)


# --- Keys pasted the wrong way round, and the worker's own logging --------------------------------


def test_keys_pasted_swapped_leave_no_part_of_the_secret_stored_or_displayed(sandbox, alice, client):
    """The Secret Key pasted into the API Key field: the 'masked access key' kept for display
    must not be the head and tail of the secret (design §6: the secret is never shown, not
    even masked)."""
    client.force_login(alice)
    response = client.post(
        reverse("exchanges:connection-add-venue", args=["htx"]),
        {"label": "", "access_key": SECRET, "secret_key": ACCESS},
    )
    assert response.status_code == 302, _body(response)[:2000]
    pk = ExchangeConnection.objects.get(owner=alice).pk
    keycheck.connection_check(connection_id=pk)
    connection = ExchangeConnection.objects.get(pk=pk)
    assert connection.error_kind == "invalid_access_key"
    assert not connection.has_keys and connection.secret_key is None  # the pair was not kept
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_key_head, access_key_tail FROM exchanges_exchangeconnection WHERE id = %s", [pk]
        )
        head, tail = cursor.fetchone()
    assert not (head and head in SECRET) and not (tail and tail in SECRET), (
        f"access_key_head/tail {head!r}/{tail!r} are the first and last characters of the secret"
    )
    masked_secret = f"{SECRET[:4]}…{SECRET[-4:]}"
    for what, url, headers in (
        ("list", reverse("exchanges:connection-list"), {}),
        ("row", reverse("exchanges:connection-row", args=[pk]), HTMX),
        ("verification", reverse("exchanges:connection-verification", args=[pk]), {}),
        ("detail", reverse("exchanges:connection-detail", args=[pk]), {}),
    ):
        body = _body(client.get(url, **headers))
        assert masked_secret not in body, f"{what} shows the secret masked as {masked_secret}"


def test_keys_pasted_swapped_are_never_probed_with_the_secret_in_a_request_url(sandbox, alice):
    """A swapped pair must not be probed by trying it the other way round: when the API Key is
    merely wrong, that sends the real secret to HTX as AccessKeyId, in a URL that urllib3 (and
    any proxy or access log) records. What was typed as the API Key is sent once, as entered
    (we cannot know it is a secret); the real secret typed as Secret Key never leaves."""
    with _all_logs_at_debug() as records:
        connection = services.connection_create(
            owner=alice, exchange="htx", label="", access_key=SECRET, secret_key=ACCESS
        )
        keycheck.connection_check(connection_id=connection.pk)
    assert ExchangeConnection.objects.get(pk=connection.pk).error_kind == "invalid_access_key"
    raw = "\n".join(text for _, text in records)
    assert f"AccessKeyId={ACCESS}" not in raw, "the pair was probed the other way round"


def test_a_worker_process_keeps_the_redaction_filter_on_its_log_output():
    """HTX is only called from Celery workers, and a worker sets up its own logging: the
    project's RedactSigningParams must still apply there."""
    code = (
        "import logging, django; django.setup()\n"
        "from bitsgap_clone.celery import app\n"
        "app.log.setup(loglevel='INFO')  # what `celery worker` does at start\n"
        "logging.getLogger('exchanges.venues.htx.client').warning(\n"
        f"    'GET /v1/account/accounts?AccessKeyId={ACCESS}&Signature=c2lnbmF0dXJl')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bitsgap_clone.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "/v1/account/accounts" in output, output
    assert ACCESS not in output and "c2lnbmF0dXJl" not in output, f"worker log output not redacted:\n{output}"


# --- Pages, admin pages, error pages -------------------------------------------------------------


def _owner_pages(pk: int) -> list[tuple[str, str, dict, bool]]:
    """(what, url, headers, shows the masked key) for every page the owner can open."""

    def url(name: str, *args) -> str:
        return reverse(name, args=args)

    return [
        ("list", url("exchanges:connection-list"), {}, True),
        ("list fragment", url("exchanges:connection-list"), HTMX, True),
        ("detail", url("exchanges:connection-detail", pk), {}, True),
        ("detail sorted", url("exchanges:connection-detail", pk) + "?sort=asset&dir=asc&page=1", {}, True),
        ("row fragment", url("exchanges:connection-row", pk), HTMX, True),
        ("verification", url("exchanges:connection-verification", pk), HTMX, False),
        ("verification step", url("exchanges:connection-verification", pk), MODAL, False),
        ("rename", url("exchanges:connection-rename", pk), {}, False),
        ("rename dialog", url("exchanges:connection-rename", pk), HTMX, False),
        ("replace", url("exchanges:connection-replace", pk), {}, False),
        ("replace dialog", url("exchanges:connection-replace", pk), HTMX, False),
        ("replacement", url("exchanges:connection-replacement", pk), HTMX, True),
        ("remove confirm", url("exchanges:connection-remove", pk), {}, True),
        ("remove dialog", url("exchanges:connection-remove", pk), HTMX, True),
        ("holdings csv", url("exchanges:connection-holdings-csv", pk), {}, False),
        ("add", url("exchanges:connection-add"), {}, False),
        *[
            (f"add {venue.id}", url("exchanges:connection-add-venue", venue.id), {}, False)
            for venue in registry.venues()
        ],
        *[
            (f"help {venue.id}", url("exchanges:help-api-key", venue.id), {}, False)
            for venue in registry.venues()
        ],
        ("settings", url("accounts:settings"), {}, False),
        ("security log", url("accounts:security-log"), {}, True),
    ]


def _assert_page_is_clean(what: str, response, *, masked: str | None) -> str:
    body = _body(response)
    assert not _leaks(body, SECRETS), f"{what}: {_leaks(body, SECRETS)}"
    assert not _leaks(body, ACCESS_KEYS), f"{what}: {_leaks(body, ACCESS_KEYS)}"
    for name, value in response.items():
        assert not _leaks(f"{name}: {value}", SECRETS | ACCESS_KEYS), f"{what}: header {name}"
    if masked:
        assert masked in body, f"{what} should show the key masked as {masked}"
    return body


def test_no_page_the_owner_can_open_shows_the_secret_and_the_access_key_only_masked(
    sandbox, alice, client, django_capture_on_commit_callbacks, _purge_task_queue
):
    connection = _full_cycle(sandbox, alice, client, django_capture_on_commit_callbacks)
    for what, url, headers, shows_masked in _owner_pages(connection.pk):
        response = client.get(url, **headers)
        assert response.status_code in (200, 286), f"{what}: {response.status_code}"
        _assert_page_is_clean(what, response, masked=NEW_MASKED if shows_masked else None)
    # The security log names both keys, masked: the replaced one and the new one.
    log = _body(client.get(reverse("accounts:security-log")))
    assert MASKED in log and NEW_MASKED in log
    # Submitting a key again (refused as a duplicate) does not echo the secret back.
    for headers in ({}, MODAL):
        response = client.post(
            reverse("exchanges:connection-add-venue", args=["htx"]),
            {"label": "", "access_key": NEW_ACCESS, "secret_key": NEW_SECRET},
            **headers,
        )
        assert response.status_code == 200 and "already connected" in _body(response)
        assert not _leaks(_body(response), SECRETS)
    # Error pages.
    for url in (
        reverse("exchanges:connection-detail", args=[connection.pk + 10_000]),
        reverse("exchanges:connection-rename", args=[connection.pk + 10_000]),
        "/no-such-page/",
    ):
        response = client.get(url)
        assert response.status_code == 404
        _assert_page_is_clean(f"404 {url}", response, masked=None)


def test_no_admin_page_shows_the_secret_and_the_access_key_only_masked(
    sandbox, alice, client, django_user_model, django_capture_on_commit_callbacks, _purge_task_queue
):
    connection = _full_cycle(sandbox, alice, client, django_capture_on_commit_callbacks)
    root = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="pw-root-123"
    )
    staff = Client()
    staff.force_login(root)
    opts = ExchangeConnection._meta
    pages = [
        ("changelist", reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), True),
        (
            "changelist search",
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist") + "?q=alice",
            True,
        ),
        ("change", reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[connection.pk]), True),
        ("delete", reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[connection.pk]), True),
        ("history", reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[connection.pk]), True),
        ("user change", reverse("admin:accounts_user_change", args=[alice.pk]), False),
        ("admin 404", reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[99_999]), False),
    ]
    for what, url, shows_masked in pages:
        response = staff.get(url, follow=True)
        assert response.status_code == 200, f"{what}: {response.status_code}"
        _assert_page_is_clean(f"admin {what}", response, masked=NEW_MASKED if shows_masked else None)


def test_a_crash_while_replacing_keys_leaks_them_nowhere(alice, settings, monkeypatch, mailoutbox):
    """A 500 in the middle of a key submission: the error page, the log records and the report
    mailed to ADMINS (POST data and local variables) hold no key material."""

    settings.ADMINS = [("Ops", "ops@example.com")]
    connection = ExchangeConnection.objects.create(
        owner=alice,
        access_key=ACCESS,
        secret_key=SECRET,
        access_key_fingerprint=services.access_key_fingerprint(ACCESS),
        access_key_head=ACCESS[:4],
        access_key_tail=ACCESS[-4:],
        status=Status.CONNECTED,
        established=True,
    )

    def broker_exploded(connection_id: int) -> None:
        raise RuntimeError("broker exploded")

    monkeypatch.setattr(services, "enqueue_check", broker_exploded)
    browser = Client(raise_request_exception=False)
    browser.force_login(alice)
    with _all_logs_at_debug() as records:
        response = browser.post(
            reverse("exchanges:connection-replace", args=[connection.pk]),
            {"access_key": NEW_ACCESS, "secret_key": NEW_SECRET},
        )
    assert response.status_code == 500
    _assert_page_is_clean("500 page", response, masked=None)
    assert any(r.name == "django.request" and r.exc_info for r, _ in records)
    _assert_logs_hold_no_key_material(records)
    assert mailoutbox, "the error was reported to ADMINS"
    for message in mailoutbox:
        report = message.body + "".join(str(content) for content, _ in getattr(message, "alternatives", []))
        assert "broker exploded" in report
        assert not _leaks(report, SECRETS | ACCESS_KEYS), _leaks(report, SECRETS | ACCESS_KEYS)


# --- Exceptions ---------------------------------------------------------------------------------


def _htx_failure(client: HtxClient, call) -> HtxError:
    with client, pytest.raises(HtxError) as caught:
        call(client)
    return caught.value


def test_htx_errors_and_the_client_hold_no_key_material(sandbox):
    wrong_secret = "0badf00d-0badf00d-0badf00d-0bad1"
    ip_bound = demo_key("demo: bound to ip 203")
    sub_user = demo_key("demo: sub-user")
    cases = []

    def case(what, access_key, secret_key, call, base_url=None, timeout=(2.0, 2.0), **faults):
        sandbox.faults.clear()
        sandbox.faults.update(**faults)
        client = HtxClient(
            base_url or sandbox.url, access_key=access_key, secret_key=secret_key, timeout=timeout
        )
        for text in (repr(client), str(client), f"{client!r}"):
            assert not _leaks(text, {"access key": access_key, "secret": secret_key}), what
        cases.append((what, access_key, secret_key, _htx_failure(client, call)))

    case("unreachable host", ACCESS, SECRET, HtxClient.accounts, base_url="http://127.0.0.1:9")
    case("timeout", ACCESS, SECRET, HtxClient.accounts, timeout=(2.0, 0.2), latency_ms=1000)
    case("wrong secret", ACCESS, wrong_secret, HtxClient.accounts)
    case("unknown access key", "demoFFFF-00000000-11111111-22222", SECRET, HtxClient.accounts)
    case("ip-bound key", ip_bound[0], ip_bound[1], HtxClient.accounts)
    case("gateway error", ACCESS, SECRET, HtxClient.accounts, http_status=502)
    case("malformed answer", ACCESS, SECRET, HtxClient.accounts, malformed_json=True)
    case("maintenance", ACCESS, SECRET, HtxClient.uid, maintenance=True)
    case("sub-user key details", sub_user[0], sub_user[1], lambda c: c.api_key_info(c.uid()))
    sandbox.faults.clear()

    for what, access_key, secret_key, error in cases:
        texts = [
            str(error),
            repr(error),
            *map(str, error.args),
            error.detail,
            error.message,
            error.path,
            "".join(traceback.format_exception(error)),
        ]
        text = "\n".join(texts)
        leaks = _leaks(text, {"access key": access_key, "secret": secret_key})
        assert not leaks, f"{what}: {leaks}"
        assert "Signature=" not in text and "AccessKeyId" not in text, f"{what}: {text}"


# --- The admin ----------------------------------------------------------------------------------

# Key material: every encrypted field and every fingerprint of a key.
KEY_FIELDS = {
    f.name
    for f in ExchangeConnection._meta.get_fields()
    if isinstance(f, EncryptedTextField) or "fingerprint" in f.name
}


class _Elements(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def test_the_admin_shows_no_key_fields_and_no_key_values(alice, django_user_model):
    assert {"access_key", "secret_key", "pending_access_key", "pending_secret_key"} <= KEY_FIELDS
    model_admin = admin.site._registry[ExchangeConnection]
    connection = ExchangeConnection.objects.create(
        owner=alice,
        label="Main",
        access_key=ACCESS,
        secret_key=SECRET,
        pending_access_key=NEW_ACCESS,
        pending_secret_key=NEW_SECRET,
        access_key_fingerprint=services.access_key_fingerprint(ACCESS),
        pending_fingerprint=services.access_key_fingerprint(NEW_ACCESS),
        access_key_head=ACCESS[:4],
        access_key_tail=ACCESS[-4:],
        status=Status.CONNECTED,
    )
    root = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="pw-root-123"
    )
    staff = Client()
    staff.force_login(root)
    request = staff.get(reverse("admin:index")).wsgi_request
    exposed = {
        "list_display": set(model_admin.get_list_display(request)),
        "fields": set(model_admin.get_fields(request, connection)),
        "readonly": set(model_admin.get_readonly_fields(request, connection)),
        "search": set(model_admin.get_search_fields(request)),
        "form": set(model_admin.get_form(request, connection).base_fields),
    }
    for where, names in exposed.items():
        assert not names & KEY_FIELDS, f"{where} exposes {names & KEY_FIELDS}"

    changelist = _body(staff.get(reverse("admin:exchanges_exchangeconnection_changelist")))
    change = _body(staff.get(reverse("admin:exchanges_exchangeconnection_change", args=[connection.pk])))
    assert MASKED in changelist and MASKED in change
    for what, body in (("changelist", changelist), ("change form", change)):
        assert not _leaks(body, SECRETS | ACCESS_KEYS), f"{what}: {_leaks(body, SECRETS | ACCESS_KEYS)}"
        fingerprint = services.access_key_fingerprint(ACCESS)
        assert fingerprint not in body, f"{what} shows the key's fingerprint"
        for tag, attrs in _Elements(body).elements:
            classes = (attrs.get("class") or "").split()
            for field in KEY_FIELDS:
                assert attrs.get("name") != field, f"{what}: <{tag} name={field}>"
                assert f"field-{field}" not in classes and f"column-{field}" not in classes, (
                    f"{what}: {field}"
                )
        lowered = body.lower()
        for field in KEY_FIELDS:
            label = ExchangeConnection._meta.get_field(field).verbose_name.lower()
            assert f">{label}<" not in lowered and f">{label}:<" not in lowered, f"{what} labels {label}"


# --- Ownership ----------------------------------------------------------------------------------


def _walk(patterns, namespace=None, params=frozenset()):
    """(namespace, pattern, parameter names) of every URL pattern, through every include."""
    for pattern in patterns:
        names = set(getattr(pattern.pattern, "converters", {})) | set(pattern.pattern.regex.groupindex)
        if isinstance(pattern, URLResolver):
            inner = ":".join(n for n in (namespace, pattern.namespace) if n) or None
            yield from _walk(pattern.url_patterns, inner, params | names)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern, params | names


def _exchanges_patterns() -> list[tuple[str, frozenset[str]]]:
    return [
        (p.name, frozenset(params))
        for ns, p, params in _walk(get_resolver().url_patterns)
        if ns == "exchanges"
    ]


def _connection_url_names() -> list[str]:
    return sorted({name for name, params in _exchanges_patterns() if "pk" in params})


CONNECTION_URL_NAMES = _connection_url_names()


def test_the_urls_taking_a_connection_id_are_found_by_walking_the_resolver():
    assert set(CONNECTION_URL_NAMES) >= MINIMUM_CONNECTION_URLS, set(CONNECTION_URL_NAMES)
    for name, params in _exchanges_patterns():
        # A new parameter name (connection_id, uuid...) would escape the ownership test.
        assert name, "every exchanges URL pattern is named, so the tests can reverse it"
        # venue_id names an exchange (public), never a row: only pk reaches a connection.
        assert params <= {"pk", "venue_id"}, f"{name} takes {set(params)}: extend the ownership test"


def _raw_row(table: str, pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {db.ops.quote_name(table)} WHERE id = %s", [pk])  # noqa: S608
        row = cursor.fetchone()
    return "" if row is None else " | ".join(_as_text(v) for v in row)


def _connection_state(pk: int) -> dict:
    c = ExchangeConnection.objects.get(pk=pk)
    return {
        "row": _raw_row("exchanges_exchangeconnection", pk),
        "model": model_to_dict(c),
        "keys": (c.label, c.status, c.access_key, c.secret_key, c.pending_access_key, c.pending_secret_key),
        "snapshots": BalanceSnapshot.objects.filter(connection_id=pk).count(),
        "events": list(ConnectionEvent.objects.filter(connection_id=pk).values_list("id", "message")),
    }


def _alice_connections(alice) -> list[ExchangeConnection]:
    """A working connection with history, and a first attempt still being retried."""
    working = ExchangeConnection.objects.create(
        owner=alice,
        label="Alice main",
        access_key=ACCESS,
        secret_key=SECRET,
        access_key_fingerprint=services.access_key_fingerprint(ACCESS),
        access_key_head=ACCESS[:4],
        access_key_tail=ACCESS[-4:],
        status=Status.CONNECTED,
        established=True,
        total_usdt="100",
        last_verified_at=timezone.now(),
        last_checked_at=timezone.now() - timedelta(hours=1),
    )
    snapshot = BalanceSnapshot.objects.create(connection=working, total_usdt="100")
    BalanceLine.objects.create(
        snapshot=snapshot, currency="usdt", available="100", in_orders="0", total="100", price_usdt="1"
    )
    working.latest_snapshot = snapshot
    working.save()
    ConnectionEvent.objects.create(connection=working, status=Status.CONNECTED, message="Key verified")
    retrying = ExchangeConnection.objects.create(
        owner=alice,
        label="Alice retry",
        access_key=NEW_ACCESS,
        secret_key=NEW_SECRET,
        access_key_fingerprint=services.access_key_fingerprint(NEW_ACCESS),
        access_key_head=NEW_ACCESS[:4],
        access_key_tail=NEW_ACCESS[-4:],
        status=Status.TEMPORARY,
        error_kind="unavailable",
    )
    return [working, retrying]


@pytest.mark.parametrize("name", CONNECTION_URL_NAMES)
def test_another_user_gets_404_on_every_url_that_takes_a_connection_id_and_changes_nothing(
    client, alice, bob, name
):
    targets = _alice_connections(alice)
    events_before = SecurityEvent.objects.count()
    bob_key = demo_key("demo: read-only")
    forged = {
        "label": "pwned by bob",
        "access_key": bob_key[0],
        "secret_key": bob_key[1],
        "confirm": "DELETE",
    }
    client.force_login(bob)
    missing = max(t.pk for t in targets) + 10_000
    for target in targets:
        before = _connection_state(target.pk)
        url = reverse(f"exchanges:{name}", kwargs={"pk": target.pk})
        nowhere = reverse(f"exchanges:{name}", kwargs={"pk": missing})
        for method in ("get", "post", "put", "patch", "delete"):
            for headers in ({}, HTMX, MODAL):
                data = forged if method == "post" else None
                response = getattr(client, method)(url, data, **headers)
                probe = getattr(client, method)(nowhere, data, **headers)
                status = response.status_code
                # 404; or 405 when the view refuses the method for anyone, before looking the
                # id up (then it is the same answer as for an id that does not exist).
                assert status == 404 or (status == 405 and probe.status_code == 405), (
                    f"{method.upper()} {url} {headers}: {status} (missing id: {probe.status_code})"
                )
                if method in ("get", "post"):
                    assert status == 404 or response.get("Allow") == probe.get("Allow")
                body = _body(response)
                assert target.label not in body and target.masked_access_key not in body
        assert _connection_state(target.pk) == before, f"{name} changed alice's connection"
    assert ExchangeConnection.objects.filter(owner=alice).count() == len(targets)
    assert not ExchangeConnection.objects.filter(owner=bob).exists()
    assert SecurityEvent.objects.count() == events_before


# --- CSRF ---------------------------------------------------------------------------------------

_REQUIRED_CSRF_TARGETS = [
    "exchanges:connection-add-venue",
    "accounts:settings",
    "accounts:delete",
    "account_logout",
    "account_change_password",
]
_OPTIONAL_CSRF_TARGETS = [
    "account_email",
    "account_set_password",
    "account_reauthenticate",
    "mfa_activate_totp",
    "mfa_deactivate_totp",
    "mfa_generate_recovery_codes",
    "usersessions_list",
]


def _csrf_targets() -> list[str]:
    names = [f"exchanges:{name}" for name, _ in _exchanges_patterns()]
    names += [f"accounts:{p.name}" for ns, p, _ in _walk(get_resolver().url_patterns) if ns == "accounts"]
    names += _REQUIRED_CSRF_TARGETS
    for name in _OPTIONAL_CSRF_TARGETS:
        try:
            reverse(name)
        except NoReverseMatch:
            continue
        names.append(name)
    return sorted(set(names))


def _url_for(name: str, pk: int) -> str:
    for kwargs in ({"pk": pk}, {"venue_id": "htx"}, {}):
        try:
            return reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
    raise NoReverseMatch(name)


FORGED_POST = {
    "label": "forged",
    "access_key": NEW_ACCESS,
    "secret_key": NEW_SECRET,
    "valuation_currency": "BTC",
    "refresh_minutes": "5",
    "confirm": "DELETE",
    "oldpassword": "pw-alice-123",
    "password1": "a-New-password-4711",
    "password2": "a-New-password-4711",
    "email": "mallory@example.com",
    "action_add": "1",
}


def _account_state(alice) -> dict:
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator
    from django.contrib.auth import get_user_model

    return {
        "connections": [
            _connection_state(pk)
            for pk in ExchangeConnection.objects.order_by("pk").values_list("pk", flat=True)
        ],
        "user": _raw_row(get_user_model()._meta.db_table, alice.pk),
        "users": get_user_model().objects.count(),
        "emails": list(EmailAddress.objects.values_list("email", "verified", "primary")),
        "authenticators": Authenticator.objects.count(),
        "security events": SecurityEvent.objects.count(),
    }


@pytest.mark.parametrize("name", _csrf_targets())
def test_a_post_without_a_csrf_token_is_refused_and_changes_nothing(alice, name):
    assert set(_REQUIRED_CSRF_TARGETS) <= set(_csrf_targets())
    (connection, _) = _alice_connections(alice)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    url = _url_for(name, connection.pk)
    before = _account_state(alice)
    for headers in ({}, HTMX, MODAL):
        response = browser.post(url, FORGED_POST, **headers)
        assert response.status_code == 403, f"POST {url} {headers} without a token: {response.status_code}"
    assert _account_state(alice) == before
    page = browser.get(reverse("exchanges:connection-list"))
    assert page.status_code == 200, "still logged in"
    # The same request with the token gets past the CSRF check: the 403s above were CSRF's.
    token = browser.cookies["csrftoken"].value
    response = browser.post(url, FORGED_POST, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code != 403, f"POST {url} with a token: 403"


def test_a_post_with_the_csrf_token_goes_through(alice):
    (connection, _) = _alice_connections(alice)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    browser.get(reverse("exchanges:connection-rename", args=[connection.pk]))
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        reverse("exchanges:connection-rename", args=[connection.pk]),
        {"label": "Renamed", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    htmx = browser.post(
        reverse("exchanges:connection-rename", args=[connection.pk]),
        {"label": "Renamed by htmx"},
        HTTP_X_CSRFTOKEN=token,
        **HTMX,
    )
    assert htmx.status_code == 200 and "closeModal" in htmx["HX-Trigger"]
    assert ExchangeConnection.objects.get(pk=connection.pk).label == "Renamed by htmx"


@pytest.mark.parametrize("name", ["account_login", "account_signup", "account_reset_password"])
def test_anonymous_forms_refuse_a_post_without_a_csrf_token(alice, name, mailoutbox):
    from django.contrib.auth import get_user_model

    browser = Client(enforce_csrf_checks=True)
    data = {
        **ALICE_LOGIN,
        "email": "mallory@example.com",
        "password1": "a-New-password-4711",
        "password2": "a-New-password-4711",
    }
    users = get_user_model().objects.count()
    for headers in ({}, HTMX):
        assert browser.post(reverse(name), data, **headers).status_code == 403
    assert get_user_model().objects.count() == users and not mailoutbox
    assert "_auth_user_id" not in browser.session


# --- Headers, CSP, inline script, htmx config ----------------------------------------------------


def _csp(what: str, response) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, f"{what}: no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0].lower()] = tokens[1:]
    return directives


def _assert_secure_headers(what: str, response) -> None:
    csp = _csp(what, response)
    script_src = csp.get("script-src")
    assert script_src is not None, f"{what}: no script-src"
    assert "'self'" in script_src, f"{what}: {script_src}"
    for bad in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "http:", "https:", "data:"):
        assert bad not in script_src, f"{what}: script-src allows {bad}"
        assert bad not in csp.get("default-src", []), f"{what}: default-src allows {bad}"
    assert all("'unsafe-eval'" not in values for values in csp.values()), f"{what}: unsafe-eval"
    assert csp.get("object-src") == ["'none'"], f"{what}: {csp.get('object-src')}"
    assert csp.get("base-uri") == ["'none'"], f"{what}: {csp.get('base-uri')}"
    assert csp.get("frame-ancestors") == ["'none'"], f"{what}: {csp.get('frame-ancestors')}"
    assert csp.get("form-action") == ["'self'"], f"{what}: {csp.get('form-action')}"
    assert response.get("X-Frame-Options") == "DENY", what
    referrer = response.get("Referrer-Policy")
    assert referrer and "unsafe-url" not in referrer, f"{what}: Referrer-Policy {referrer!r}"
    assert response.get("X-Content-Type-Options") == "nosniff", what


# Attributes whose value is fetched or navigated to (a javascript: URL there would run).
_URL_ATTRIBUTES = {
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "data",
    "poster",
    "srcset",
    "background",
    "ping",
    "hx-get",
    "hx-post",
    "hx-put",
    "hx-patch",
    "hx-delete",
    "hx-push-url",
    "hx-replace-url",
}


def _script_problems(html: str) -> list[str]:
    """Inline scripts, event-handler attributes and javascript: URLs in a page."""
    problems = []
    for tag, attrs in _Elements(html).elements:
        if tag == "script" and not attrs.get("src") and (attrs.get("type") or "") != "application/json":
            problems.append(f"inline <script {attrs}>")
        src = attrs.get("src") or ""
        if tag == "script" and src and (not src.startswith("/") or src.startswith("//")):
            problems.append(f"script from elsewhere: {src}")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"<{tag} {name}={value!r}>")
            if name.startswith(("hx-on", "data-hx-on")):
                problems.append(f"<{tag} {name}={value!r}> (htmx inline handler)")
            if name in _URL_ATTRIBUTES and "javascript:" in re.sub(r"[\s\x00-\x1f]", "", value or "").lower():
                problems.append(f"<{tag} {name}={value!r}>")
    return problems


def _htmx_config(html: str) -> dict | None:
    for tag, attrs in _Elements(html).elements:
        if tag == "meta" and attrs.get("name") == "htmx-config":
            return json.loads(attrs.get("content") or "")
    return None


def _html_responses(alice) -> list[tuple[str, object]]:
    (connection, _) = _alice_connections(alice)
    anonymous, browser = Client(), Client()
    browser.force_login(alice)
    pk = connection.pk
    return [
        ("home", anonymous.get(reverse("home"))),
        ("login", anonymous.get(reverse("account_login"))),
        ("signup", anonymous.get(reverse("account_signup"))),
        ("password reset", anonymous.get(reverse("account_reset_password"))),
        ("home, logged in", browser.get(reverse("home"))),
        ("list", browser.get(reverse("exchanges:connection-list"))),
        ("list fragment", browser.get(reverse("exchanges:connection-list"), **HTMX)),
        ("detail", browser.get(reverse("exchanges:connection-detail", args=[pk]))),
        ("row fragment", browser.get(reverse("exchanges:connection-row", args=[pk]), **HTMX)),
        ("add dialog", browser.get(reverse("exchanges:connection-add"), **HTMX)),
        ("connect dialog", browser.get(reverse("exchanges:connection-add-venue", args=["htx"]), **HTMX)),
        ("rename dialog", browser.get(reverse("exchanges:connection-rename", args=[pk]), **HTMX)),
        ("rename step", browser.get(reverse("exchanges:connection-rename", args=[pk]), **MODAL)),
        ("remove page", browser.get(reverse("exchanges:connection-remove", args=[pk]))),
        ("help", browser.get(reverse("exchanges:help-api-key", args=["htx"]))),
        ("settings", browser.get(reverse("accounts:settings"))),
        ("security log", browser.get(reverse("accounts:security-log"))),
        ("2fa", browser.get(reverse("mfa_index"))),
        ("sessions", browser.get(reverse("usersessions_list"))),
        ("404", browser.get("/no-such-page/")),
        ("csrf 403", Client(enforce_csrf_checks=True).post(reverse("account_login"), ALICE_LOGIN)),
    ]


def test_every_html_response_carries_a_strict_csp_and_the_security_headers(alice):
    responses = _html_responses(alice)
    for what, response in responses:
        assert response["Content-Type"].startswith("text/html"), f"{what}: {response['Content-Type']}"
        _assert_secure_headers(what, response)


def test_no_page_has_inline_script_or_event_handlers_and_htmx_is_configured_to_match_the_csp(alice):
    full_pages = 0
    for what, response in _html_responses(alice):
        html = _body(response)
        assert not _script_problems(html), f"{what}: {_script_problems(html)}"
        if "<html" not in html or response.status_code != 200:
            continue
        full_pages += 1
        config = _htmx_config(html)
        assert config is not None, f"{what}: no htmx-config meta tag"
        assert config.get("selfRequestsOnly") is True, f"{what}: {config}"
        assert config.get("allowScriptTags") is False, f"{what}: {config}"
        assert config.get("allowEval") is False, f"{what}: {config}"
        assert config.get("historyCacheSize") == 0, f"{what}: {config}"
    assert full_pages >= 10


def test_session_and_csrf_cookies_are_httponly_and_samesite(alice):
    browser = Client()
    response = browser.post(reverse("account_login"), ALICE_LOGIN)
    assert response.status_code == 302
    session = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert session["httponly"] and session["samesite"] in ("Lax", "Strict")
    browser.get(reverse("exchanges:connection-list"))
    csrf = browser.cookies[django_settings.CSRF_COOKIE_NAME]
    assert csrf["samesite"] in ("Lax", "Strict")


# Anything the test environment sets that production must decide for itself.
_NOT_PRODUCTION = (
    "DEBUG",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # set for the Playwright tests in this process
    "SECRET_KEY",
    "FERNET_KEYS",
    "KEY_FINGERPRINT_SECRET",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
    "BEHIND_TLS_PROXY",
    "SESSION_IDLE_SECONDS",
    "SESSION_ABSOLUTE_SECONDS",
    "ACCOUNT_EMAIL_VERIFICATION",
    "EMAIL_BACKEND",
    "LOG_LEVEL",
    "DJANGO_SETTINGS_MODULE",
)


def _production_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PRODUCTION}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        KEY_FINGERPRINT_SECRET=secrets.token_urlsafe(64),
        FERNET_KEYS=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="example.com",
        ENV_FILE=os.devnull,
        DJANGO_SETTINGS_MODULE="bitsgap_clone.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


def test_the_deployment_checks_pass_under_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"check --deploy failed:\n{result.stdout}\n{result.stderr}"


def test_production_cookies_are_secure_httponly_samesite_with_a_year_of_hsts():
    names = [
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "CSRF_COOKIE_SAMESITE",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_SSL_REDIRECT",
    ]
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {names!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    prod = json.loads(result.stdout.strip().splitlines()[-1])
    assert prod["DEBUG"] is False
    assert prod["SESSION_COOKIE_SECURE"] is True and prod["CSRF_COOKIE_SECURE"] is True
    assert prod["SESSION_COOKIE_HTTPONLY"] is True
    assert prod["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert prod["CSRF_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert prod["SECURE_HSTS_SECONDS"] >= 31_536_000 and prod["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert prod["SECURE_SSL_REDIRECT"] is True


# --- Injection ----------------------------------------------------------------------------------

PAYLOAD = (
    "<script>alert(1)</script><img src=x onerror=alert(2)>"
    ' hx-get="/x" hx-on:click="alert(3)" javascript:alert(4)'
)
# Labels hold at most 64 characters (varchar(64) outside SQLite): the payload in two halves, the
# second opening with a quote to try to break out of an attribute.
LABEL_TAGS = PAYLOAD[:53]
LABEL_ATTRS = '"' + PAYLOAD[53:]
DETAIL = PAYLOAD + " ' onmouseover='alert(5)' <svg onload=alert(6)>"
HOSTILE_ASSET = "<img src=x onerror=alert(7)>"


def _hostile_connections(alice) -> list[ExchangeConnection]:
    """Labels and every text HTX gives us (error, reasons, asset names) set to the payload."""
    refused = ExchangeConnection.objects.create(
        owner=alice,
        label=LABEL_TAGS,
        access_key=ACCESS,
        secret_key=SECRET,
        access_key_fingerprint=services.access_key_fingerprint(ACCESS),
        access_key_head=ACCESS[:4],
        access_key_tail=ACCESS[-4:],
        status=Status.INVALID,
        established=True,
        error_kind="invalid_signature",
        error_detail=DETAIL,
        replacement_error=DETAIL,
        total_usdt="10",
        last_verified_at=timezone.now(),
        permissions="readOnly,trade",
        ip_addresses="<b>1.2.3.4</b>",
        accounts_read=["spot", "<script>alert(8)</script>"],
        accounts_unread=[{"type": "margin", "id": 1, "reason": DETAIL}],
        unpriced=["<script>alert(9)</script>"],
    )
    snapshot = BalanceSnapshot.objects.create(
        connection=refused,
        total_usdt="10",
        accounts_unread=[{"type": "margin", "id": 1, "reason": DETAIL}],
        other_lines=[{"account_type": "spot", "currency": HOSTILE_ASSET, "type": DETAIL, "balance": "1"}],
    )
    BalanceLine.objects.create(
        snapshot=snapshot,
        currency=HOSTILE_ASSET,
        available="10",
        in_orders="0",
        total="10",
        price_usdt="1",
        value_usdt="10",
    )
    refused.latest_snapshot = snapshot
    refused.save()
    ConnectionEvent.objects.create(connection=refused, status=Status.INVALID, message=DETAIL)
    retrying = ExchangeConnection.objects.create(
        owner=alice,
        label="placeholder",
        access_key=NEW_ACCESS,
        secret_key=NEW_SECRET,
        access_key_fingerprint=services.access_key_fingerprint(NEW_ACCESS),
        access_key_head=NEW_ACCESS[:4],
        access_key_tail=NEW_ACCESS[-4:],
        status=Status.TEMPORARY,
        error_kind="unavailable",
        error_detail=DETAIL,
    )
    return [refused, retrying]


def _injection_problems(html: str) -> list[str]:
    problems = _script_problems(html)
    lowered = html.lower()
    for raw in ("<script>alert", "<img src=x", "<svg onload", "<b>1.2.3.4"):
        if raw in lowered:
            problems.append(f"unescaped {raw!r}")
    for tag, attrs in _Elements(html).elements:
        if attrs.get("hx-get") == "/x" or any(name.startswith("hx-on") for name in attrs):
            problems.append(f"<{tag} {attrs}>")
        if tag in ("img", "svg") and (attrs.get("src") == "x" or "onload" in attrs):
            problems.append(f"<{tag} {attrs}>")
        href = re.sub(r"[\s\x00-\x1f]", "", attrs.get("href") or "").lower()
        if "javascript:" in href:
            problems.append(f"<{tag} href={attrs['href']!r}>")
    return problems


def test_hostile_labels_and_htx_texts_render_inert_everywhere(alice, client):
    refused, retrying = _hostile_connections(alice)
    client.force_login(alice)
    # The second label goes in through the rename form, as a user would type it.
    response = client.post(reverse("exchanges:connection-rename", args=[retrying.pk]), {"label": LABEL_ATTRS})
    assert response.status_code == 302
    assert ExchangeConnection.objects.get(pk=retrying.pk).label == LABEL_ATTRS

    def url(name: str, c: ExchangeConnection) -> str:
        return reverse(f"exchanges:{name}", args=[c.pk])

    tags, attrs, detail = escape(LABEL_TAGS), escape(LABEL_ATTRS), escape(DETAIL)
    pages = [("list", reverse("exchanges:connection-list"), {}, [tags, attrs, detail])]
    pages.append(("list fragment", reverse("exchanges:connection-list"), HTMX, [tags, attrs, detail]))
    for c, label in ((refused, tags), (retrying, attrs)):
        pages += [
            (f"row {c.pk}", url("connection-row", c), HTMX, [label, detail]),
            (f"detail {c.pk}", url("connection-detail", c), {}, [label]),
            (f"rename {c.pk}", url("connection-rename", c), {}, [label]),
            (f"rename dialog {c.pk}", url("connection-rename", c), HTMX, [label]),
            (f"rename step {c.pk}", url("connection-rename", c), MODAL, [label]),
            (f"remove {c.pk}", url("connection-remove", c), {}, [label]),
            (f"remove dialog {c.pk}", url("connection-remove", c), HTMX, [label]),
            (f"verification {c.pk}", url("connection-verification", c), {}, [detail]),
            (f"verification dialog {c.pk}", url("connection-verification", c), HTMX, [detail]),
            (f"verification step {c.pk}", url("connection-verification", c), MODAL, [detail]),
        ]
    pages += [
        (
            "detail timeline and coverage",
            url("connection-detail", refused),
            {},
            [detail, escape(HOSTILE_ASSET)],
        ),
        ("replacement", url("connection-replacement", refused), HTMX, [detail]),
        ("replacement page", url("connection-replacement", refused), {}, [detail]),
    ]
    for what, page_url, headers, expected in pages:
        response = client.get(page_url, **headers)
        assert response.status_code in (200, 286), f"{what}: {response.status_code}"
        html = _body(response)
        for text in expected:  # (asset names are shown upper-cased)
            assert text.lower() in html.lower(), f"{what}: the payload did not render (escaped) at all"
        assert not _injection_problems(html), f"{what}: {_injection_problems(html)}"

    # Removing one: its name appears in the message on the next page and in the security log.
    client.post(url("connection-remove", retrying))
    for what, page_url in (
        ("list after remove", reverse("exchanges:connection-list")),
        ("security log", reverse("accounts:security-log")),
    ):
        html = _body(client.get(page_url))
        assert not _injection_problems(html), f"{what}: {_injection_problems(html)}"
    assert escape(LABEL_ATTRS[:40]) in _body(client.get(reverse("accounts:security-log")))
