"""Our HTX client against the HTX sandbox, over real HTTP."""

from __future__ import annotations

import logging
import socket
import time
from decimal import Decimal

import pytest

from exchanges.venues.htx.client import HtxClient, redact
from exchanges.venues.htx.errors import ErrorKind, HtxError, classify
from tests.conftest import demo_key

GOOD = demo_key("demo: good key")


def _client(sandbox, key=GOOD, **kwargs) -> HtxClient:
    return HtxClient(sandbox.url, access_key=key[0], secret_key=key[1], **kwargs)


def test_it_reads_uid_key_info_accounts_and_balances(sandbox):
    with _client(sandbox) as client:
        uid = client.uid()
        info = client.api_key_info(uid)
        accounts = client.accounts()
        spot = next(a for a in accounts if a.type == "spot")
        balance = client.balance(spot)
    assert uid == sandbox.accounts[GOOD[0]]["uid"]
    assert info.permissions == {"readOnly", "trade"}
    assert info.ip_addresses == ()
    assert info.valid_days == 83
    assert {a.type for a in accounts} >= {"spot"}
    assert all(isinstance(line.balance, Decimal) for line in balance.lines)
    assert {line.type for line in balance.lines} >= {"trade", "frozen"}


def test_it_reads_public_time_and_tickers_as_decimals(sandbox):
    with HtxClient(sandbox.url) as client:
        prices = client.tickers()
        assert abs(client.sync_clock()) < 1000
    assert isinstance(prices["btcusdt"], Decimal)


def test_it_corrects_for_a_wrong_local_clock(sandbox):
    sandbox.clock_offset_ms = 10 * 60 * 1000  # HTX is 10 minutes ahead of us
    with _client(sandbox) as client:
        with pytest.raises(HtxError) as refused:
            client.accounts()
        assert refused.value.kind == ErrorKind.INVALID_TIMESTAMP
        assert not refused.value.permanent
        offset = client.sync_clock()
        assert abs(offset - 600_000) < 2000
        assert client.accounts()


@pytest.mark.parametrize(
    ("kind", "key_of"),
    [
        (ErrorKind.INVALID_ACCESS_KEY, lambda: ("demoXXXX-00000000-00000000-00000", GOOD[1])),
        (ErrorKind.INVALID_SIGNATURE, lambda: (GOOD[0], "wrong-secret-0000-1111-2222")),
        (ErrorKind.IP_NOT_ALLOWED, lambda: demo_key("demo: bound to ip 203")),
        (ErrorKind.KEY_EXPIRED, lambda: demo_key("demo: expired")),
    ],
)
def test_it_classifies_each_refusal_as_permanent(sandbox, kind, key_of):
    with _client(sandbox, key_of()) as client, pytest.raises(HtxError) as refused:
        client.accounts()
    assert refused.value.kind == kind
    assert refused.value.permanent
    assert refused.value.code == "api-signature-not-valid"


def test_a_sub_user_key_is_refused_key_details_as_forbidden(sandbox):
    with _client(sandbox, demo_key("demo: sub-user")) as client:
        assert client.accounts()
        with pytest.raises(HtxError) as refused:
            client.uid()
    assert refused.value.kind == ErrorKind.FORBIDDEN


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"http_status": 502}, ErrorKind.UNAVAILABLE),
        ({"maintenance": True}, ErrorKind.MAINTENANCE),
        ({"rate_limited": True}, ErrorKind.RATE_LIMITED),
    ],
)
def test_it_classifies_htx_outages_as_transient(sandbox, fault, kind):
    sandbox.faults.update(**fault)
    with _client(sandbox) as client, pytest.raises(HtxError) as failed:
        client.accounts()
    assert failed.value.kind == kind
    assert not failed.value.permanent


def test_a_read_timeout_is_transient_and_bounded(sandbox):
    sandbox.faults.update(latency_ms=1500)
    with _client(sandbox, timeout=(1, 0.3)) as client, pytest.raises(HtxError) as failed:
        client.accounts()
    assert failed.value.kind == ErrorKind.UNAVAILABLE


def test_an_unreachable_htx_is_transient_and_the_error_holds_no_key(sandbox):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = HtxClient(f"http://127.0.0.1:{port}", access_key=GOOD[0], secret_key=GOOD[1])
    with pytest.raises(HtxError) as failed:
        client.accounts()
    assert failed.value.kind == ErrorKind.UNAVAILABLE
    text = f"{failed.value} {failed.value!r} {failed.value.detail}"
    assert GOOD[0] not in text and GOOD[1] not in text and "Signature" not in text


def test_it_signs_the_host_it_calls(sandbox):
    # "localhost:PORT" and "127.0.0.1:PORT" are different hosts to sign; both work when called.
    port = sandbox.url.rsplit(":", 1)[1]
    with HtxClient(f"http://localhost:{port}", access_key=GOOD[0], secret_key=GOOD[1]) as client:
        assert client.host == f"localhost:{port}"
        assert client.accounts()


def test_it_remembers_htx_rate_limit_headers(sandbox):
    with _client(sandbox) as client:
        client.accounts()
    assert client.last_rate_limit.remaining is not None
    assert client.last_rate_limit.expires_at_ms is not None


def test_redact_blanks_access_key_and_signature():
    assert redact("GET /v1/x?AccessKeyId=abc&Timestamp=1&Signature=zz%3D HTTP/1.1") == (
        "GET /v1/x?AccessKeyId=[redacted]&Timestamp=1&Signature=[redacted] HTTP/1.1"
    )


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (
            "api-signature-not-valid",
            "Signature not valid: Incorrect Access key [Access key错误]",
            ErrorKind.INVALID_ACCESS_KEY,
        ),
        (
            "api-signature-not-valid",
            "Signature not valid: Verification failure [校验失败]",
            ErrorKind.INVALID_SIGNATURE,
        ),
        ("api-signature-not-valid", "Signature not valid: 校验失败", ErrorKind.INVALID_SIGNATURE),
        (
            "api-signature-not-valid",
            "Signature not valid: Invalid submission time or incorrect time format",
            ErrorKind.INVALID_TIMESTAMP,
        ),
        (
            "api-signature-not-valid",
            "Signature not valid: Incorrect IP address [IP地址错误]:1.2.3.4",
            ErrorKind.IP_NOT_ALLOWED,
        ),
        ("api-signature-not-valid", "Signature not valid: ip地址错误", ErrorKind.IP_NOT_ALLOWED),
        (
            "api-signature-not-valid",
            "Signature not valid: API key has no permission",
            ErrorKind.NO_PERMISSION,
        ),
        ("api-signature-not-valid", "APIkey has expired", ErrorKind.KEY_EXPIRED),
        ("api-signature-not-valid", "something new", ErrorKind.UNKNOWN),
        ("1003", "invalid signature", ErrorKind.INVALID_SIGNATURE),
        ("1002", "forbidden", ErrorKind.FORBIDDEN),
        ("login-required", "", ErrorKind.LOGIN_REQUIRED),
        ("base-request-exceed-frequency-limit", "", ErrorKind.RATE_LIMITED),
        ("invalid-parameter", "request limit", ErrorKind.RATE_LIMITED),
        ("system-maintenance", "", ErrorKind.MAINTENANCE),
        ("gateway-internal-error", "", ErrorKind.UNAVAILABLE),
        ("whatever-new", "", ErrorKind.UNKNOWN),
    ],
)
def test_it_decodes_htx_error_codes(code, message, kind):
    assert classify(code, message) == kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, ErrorKind.RATE_LIMITED), (403, ErrorKind.UNAVAILABLE), (404, ErrorKind.UNAVAILABLE)],
)
def test_a_page_that_is_not_an_api_answer_is_never_a_verdict_on_the_key(sandbox, status, kind):
    # A CDN or proxy in front of HTX answering with HTML, even on a public path.
    sandbox.faults.update(http_status=status)
    with _client(sandbox) as client, pytest.raises(HtxError) as failed:
        client.sync_clock()
    assert failed.value.kind == kind
    assert not failed.value.permanent


def test_an_unrecognised_error_is_transient(sandbox):
    error = HtxError(classify("some-new-code", "something"), code="some-new-code", message="something")
    assert error.kind == ErrorKind.UNKNOWN and not error.permanent


def test_it_waits_for_the_next_window_when_htx_says_none_are_left(sandbox):
    sandbox.rate_limit = 2
    with _client(sandbox) as client:
        client.accounts()
        client.accounts()
        assert client.last_rate_limit.remaining == 0
        started = time.monotonic()
        assert client.accounts()  # waited for the window instead of being refused
        assert time.monotonic() - started < 2.5


def test_it_gives_up_for_now_when_the_window_is_far_away(sandbox):
    from exchanges.venues.htx.types import RateLimit

    with _client(sandbox) as client:
        client.last_rate_limit = RateLimit(remaining=0, expires_at_ms=int(time.time() * 1000) + 60_000)
        with pytest.raises(HtxError) as failed:
            client.accounts()
    assert failed.value.kind == ErrorKind.RATE_LIMITED and not failed.value.permanent


def test_the_log_filter_blanks_signed_urls_in_any_record():
    from exchanges.logging import RedactSigningParams

    record = logging.LogRecord(
        "urllib3", logging.DEBUG, __file__, 1, "GET %s", ("/v1/x?AccessKeyId=k-1&Signature=s%3D",), None
    )
    assert RedactSigningParams().filter(record)
    assert record.getMessage() == "GET /v1/x?AccessKeyId=[redacted]&Signature=[redacted]"


def test_every_log_handler_redacts_and_urllib3_stays_quiet(settings):
    assert all("redact" in h.get("filters", []) for h in settings.LOGGING["handlers"].values())
    assert settings.LOGGING["loggers"]["urllib3"]["level"] == "WARNING"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/account/accounts", {"status": "ok", "data": None}),
        ("/v1/account/accounts", {"status": "ok", "data": [{"type": "spot"}]}),
        ("/v2/user/uid", {"code": 200, "data": None}),
        ("/v1/common/timestamp", {"status": "ok", "data": "soon"}),
    ],
)
def test_an_answer_of_the_wrong_shape_is_an_htx_error_not_a_crash(path, body):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Odd(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = HtxClient(f"http://127.0.0.1:{server.server_port}", access_key=GOOD[0], secret_key=GOOD[1])
        call = {
            "/v1/account/accounts": client.accounts,
            "/v2/user/uid": client.uid,
            "/v1/common/timestamp": client.server_time_ms,
        }[path]
        with pytest.raises(HtxError) as failed:
            call()
        assert failed.value.kind == ErrorKind.UNKNOWN and not failed.value.permanent
    finally:
        server.shutdown()
