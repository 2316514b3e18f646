"""Our Binance client against the Binance sandbox, over real HTTP on 127.0.0.1; and Binance's
error answers decoded (binance-api.md §7.2)."""

from __future__ import annotations

import json

import pytest

from exchanges.venues.binance.errors import BinanceError, ErrorKind, decode, request_ip

# --- Decoding: HTTP status first, then code, then msg ------------------------------------------


def _body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}).encode()


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (401, _body(-2014, "API-key format invalid."), ErrorKind.INVALID_ACCESS_KEY, "-2014"),
        (400, _body(-2014, "API-key format invalid."), ErrorKind.INVALID_ACCESS_KEY, "-2014"),
        (
            401,
            _body(-2015, "Invalid API-key, IP, or permissions for action."),
            ErrorKind.KEY_IP_OR_PERMISSION,
            "-2015",
        ),
        (400, _body(-1022, "Signature for this request is not valid."), ErrorKind.INVALID_SIGNATURE, "-1022"),
        (
            400,
            _body(-1021, "Timestamp for this request is outside of the recvWindow."),
            ErrorKind.INVALID_TIMESTAMP,
            "-1021",
        ),
        (
            401,
            _body(-1002, "You are not authorized to execute this request."),
            ErrorKind.NO_PERMISSION,
            "-1002",
        ),
        (
            500,
            _body(-1000, "An unknown error occurred while processing the request."),
            ErrorKind.UNAVAILABLE,
            "-1000",
        ),
        (
            503,
            _body(-1001, "Internal error; unable to process your request."),
            ErrorKind.UNAVAILABLE,
            "-1001",
        ),
        (
            503,
            _body(-1008, "Server is currently overloaded with other requests."),
            ErrorKind.UNAVAILABLE,
            "-1008",
        ),
        (
            408,
            _body(-1007, "Timeout waiting for response from backend server."),
            ErrorKind.UNAVAILABLE,
            "-1007",
        ),
        (
            451,
            b'{\n  "code": 0,\n  "msg": "Service unavailable from a restricted location according to '
            b"'b. Eligibility' in https://www.binance.com/en/terms.\"\n}",
            ErrorKind.RESTRICTED_LOCATION,
            "0",
        ),
        (403, b"<html><body>403 Forbidden</body></html>", ErrorKind.UNAVAILABLE, "403"),
        (
            503,
            b"<!DOCTYPE HTML><HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD></HTML>",
            ErrorKind.UNAVAILABLE,
            "503",
        ),
        (502, b"", ErrorKind.UNAVAILABLE, "502"),
        (503, _body(-1001, "System is under maintenance."), ErrorKind.MAINTENANCE, "-1001"),
        (200, b'{"success": false, "msg": "You don\'t have permission."}', ErrorKind.NO_PERMISSION, "200"),
        (400, _body(-1104, "Not all sent parameters were read."), ErrorKind.UNKNOWN, "-1104"),
        (400, _body(-9999, "Something new."), ErrorKind.UNKNOWN, "-9999"),
        (
            404,
            b'{"timestamp":1,"status":404,"error":"Not Found","message":"No message available","path":"/sapi/v1/x"}',
            ErrorKind.UNKNOWN,
            "404",
        ),
    ],
)
def test_binance_answers_decode_to_neutral_kinds(status, body, kind, code):
    error = decode(status, body, {}, path="/api/v3/account")
    assert isinstance(error, BinanceError)
    assert error.kind == kind
    assert error.code == code
    assert error.status == status
    assert str(error).startswith("Binance /api/v3/account failed")


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", 7.0), (418, "120", 120.0), (429, "0", 1.0), (429, None, 1.0), (418, "soon", 1.0)],
)
def test_rate_limits_carry_retry_after_of_at_least_one_second(status, retry_after, expected):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    error = decode(status, _body(-1003, "Too much request weight used; current limit is 6000"), headers)
    assert error.kind == ErrorKind.RATE_LIMITED
    assert error.retry_after == expected
    assert not error.permanent


def test_minus_2015_keeps_the_ip_binance_saw():
    message = "Invalid API-key, IP, or permissions for action, request ip: 203.0.113.7"
    error = decode(401, _body(-2015, message), {})
    assert error.kind == ErrorKind.KEY_IP_OR_PERMISSION
    assert error.ip == "203.0.113.7"
    assert "request ip: 203.0.113.7" in error.message and "203.0.113.7" in error.detail
    assert error.permanent
    assert request_ip("Invalid API-key, IP, or permissions for action.") is None
    assert request_ip("..., request ip: 2001:db8::1") == "2001:db8::1"


def test_unknown_and_location_answers_are_never_a_verdict_on_the_key():
    assert not decode(400, _body(-9999, "?"), {}).permanent
    assert not decode(451, _body(0, "restricted location"), {}).permanent
    assert not decode(503, b"<html>", {}).permanent
    assert decode(400, _body(-1022, "Signature for this request is not valid."), {}).permanent


def test_a_web_page_never_reaches_the_message():
    page = b"<html><body>" + b"x" * 5000 + b"secret-looking</body></html>"
    error = decode(503, page, {})
    assert "secret-looking" not in str(error) and len(error.message) < 100
    assert error.message == "Binance answered HTTP 503 with a web page"
