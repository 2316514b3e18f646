"""The keep-alive transport under the HTX client, against the sandbox and raw sockets."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from exchanges.venues.kit.transport import HttpPool, Request, TransportError


def test_connections_are_kept_alive_and_reused(sandbox):
    pool = HttpPool()
    first = pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2))
    (idle,) = [conns[0][0] for conns in pool._idle.values()]
    second = pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2))
    assert first.status == second.status == 200
    assert [conns[0][0] for conns in pool._idle.values()] == [idle]  # the same connection again
    pool.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_transparently(sandbox):
    pool = HttpPool()
    pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2))
    sandbox._server.close_connections()  # the server drops idle keep-alive connections
    time.sleep(0.05)
    assert pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2)).status == 200
    pool.close()


def test_the_read_timeout_bounds_a_hanging_server(sandbox):
    sandbox.faults.latency_ms = 3000
    pool = HttpPool()
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(1, 0.3))
    assert caught.value.timeout
    assert time.monotonic() - started < 1.5
    sandbox.faults.clear()


def test_nothing_listening_is_a_transport_error_without_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        HttpPool().get(f"http://127.0.0.1:{port}/x?AccessKeyId=abc&Signature=def", timeout=(1, 1))
    assert not caught.value.timeout
    assert "AccessKeyId" not in str(caught.value) and "Signature" not in str(caught.value)


def _capture_one() -> tuple[int, list[bytes], threading.Thread]:
    """A server for one connection: records what arrives (one request, headers and body, or
    what came before the client closed without one) and answers a request."""
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(2)

    def serve() -> None:
        conn, _ = server.accept()
        conn.settimeout(1)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
            data += chunk
        head, ended, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"Content-Length: (\d+)", head)
        while length and len(body) < int(length[1]):
            body += conn.recv(4096)
        received.append(head + ended + body)
        if ended:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        conn.close()
        server.close()

    thread = threading.Thread(target=serve)
    thread.start()
    return server.getsockname()[1], received, thread


def test_the_query_is_sent_exactly_as_given():
    """No re-encoding: the signature covers the bytes HTX receives."""
    port, received, thread = _capture_one()
    target = "/v1/account/accounts?Timestamp=2024-01-02T03%3A04%3A05&Signature=a%2Bb%3D"
    response = HttpPool().get(f"http://127.0.0.1:{port}{target}", timeout=(1, 1))
    thread.join(5)
    assert response.body == b"{}"
    assert received[0].startswith(f"GET {target} HTTP/1.1\r\n".encode())


def test_a_connection_idle_too_long_is_not_reused(sandbox, monkeypatch):
    from exchanges.venues.kit import transport

    pool = HttpPool()
    pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2))
    (old,) = [conns[0][0] for conns in pool._idle.values()]
    monkeypatch.setattr(transport, "MAX_IDLE_SECONDS", 0.0)
    time.sleep(0.01)
    assert pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2)).status == 200
    (new,) = [conns[0][0] for conns in pool._idle.values()]
    assert new is not old and old.sock is None  # closed, and a fresh one opened instead
    pool.close()


def _serve_raw(replies: list[bytes]) -> tuple[int, threading.Thread]:
    """A server on one keep-alive connection that answers each request with the next reply."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        for reply in replies:
            conn.recv(4096)
            conn.sendall(reply)
        conn.close()
        server.close()

    thread = threading.Thread(target=serve)
    thread.start()
    return server.getsockname()[1], thread


def test_headers_read_without_regard_to_case_chunked_bodies_and_empty_ones_on_one_connection():
    """The transport reads a response's headers itself (not through the email package): names in
    any case, a chunked body, a 204 without one, all on one kept-alive connection."""
    port, thread = _serve_raw(
        [
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\nX-MBX-USED-WEIGHT-1M: 1200\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n',
            b"HTTP/1.1 204 No Content\r\nX-Bapi-Limit-Status: 9\r\n\r\n",
        ]
    )
    pool = HttpPool()
    url = f"http://127.0.0.1:{port}/x"
    limited = pool.get(url, timeout=(1, 1))
    assert (limited.status, limited.body) == (429, b"{}")
    assert limited.headers.get("Retry-After") == "7" and limited.headers["x-mbx-used-weight-1m"] == "1200"
    assert "RETRY-AFTER" in limited.headers and limited.headers.get("Missing") is None
    chunked = pool.get(url, timeout=(1, 1))
    assert (chunked.status, chunked.body) == (200, b'{"a":1}')
    empty = pool.get(url, timeout=(1, 1))
    assert (empty.status, empty.body, empty.headers.get("x-bapi-limit-status")) == (204, b"", "9")
    thread.join(5)
    assert len(pool._idle) == 1  # one connection served all three
    pool.close()


def test_the_request_carries_host_the_pools_headers_and_the_callers_in_order_and_the_body():
    port, received, thread = _capture_one()
    pool = HttpPool(headers={"User-Agent": "ua/1"})
    response = pool.request(
        "POST",
        f"http://127.0.0.1:{port}/v5/x?a=1",
        timeout=(1, 1),
        headers={"X-Key": "k1", "Content-Type": "application/json"},
        body=b'{"a": 1}\n',
    )
    thread.join(5)
    assert response.body == b"{}"
    assert received[0] == (
        b"POST /v5/x?a=1 HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{port}\r\n".encode()
        + b"Accept-Encoding: identity\r\nUser-Agent: ua/1\r\nX-Key: k1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 9\r\n\r\n"
        b'{"a": 1}\n'
    )


def test_a_host_header_given_replaces_the_connections_own():
    port, received, thread = _capture_one()
    HttpPool().get(f"http://127.0.0.1:{port}/x", timeout=(1, 1), headers={"Host": "www.okx.com"})
    thread.join(5)
    head = received[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert [line for line in head if line.lower().startswith(b"host:")] == [b"Host: www.okx.com"]


@pytest.mark.parametrize("value", ["k1\r\nX-Injected: 1", "k1\nX: 1", "k1\rX", "k1\x00", "k1\u00e9"])
def test_a_header_value_that_would_end_its_line_is_refused_and_nothing_is_sent(value):
    port, received, thread = _capture_one()
    pool = HttpPool()
    with pytest.raises(ValueError, match="line break"):
        pool.get(f"http://127.0.0.1:{port}/x", timeout=(1, 1), headers={"X-Key": value})
    thread.join(5)
    assert received == [b""] and pool._idle == {}


def test_requests_sent_together_wait_once_and_answer_in_order_each_with_its_own_outcome(sandbox):
    """``request_many``: every request is written before any answer is read, each on its own
    connection, so four answers delayed 300 ms each take about 300 ms, not 1.2 s. A request
    that cannot be sent comes back as its TransportError; the others still answer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    pool = HttpPool()
    pool.get(f"{sandbox.url}/v1/common/timestamp", timeout=(2, 2))
    sandbox._server.close_connections()  # the kept connection goes stale: sent again on a fresh one
    time.sleep(0.05)
    sandbox.faults.latency_ms = 300
    paths = ["/v1/common/timestamp", "/market/tickers", "/v1/common/timestamp", "/market/tickers"]
    requests = [Request("GET", f"{sandbox.url}{path}") for path in paths]
    requests.insert(2, Request("GET", f"http://127.0.0.1:{closed}/nothing"))
    started = time.monotonic()
    answers = pool.request_many(requests, timeout=(1, 2))
    took = time.monotonic() - started
    sandbox.faults.clear()
    assert isinstance(answers[2], TransportError) and not answers[2].timeout
    answered = answers[:2] + answers[3:]
    assert [answer.status for answer in answered] == [200] * 4
    assert [b'"ts"' in answer.body or b'"data"' in answer.body for answer in answered] == [True] * 4
    assert [b"tickers" in answer.body or b"symbol" in answer.body for answer in answered] == [
        False,
        True,
        False,
        True,
    ]
    assert took < 0.9, took  # one wait for all four, not four in a row
    assert sum(len(idle) for idle in pool._idle.values()) == 4  # each kept for the next call
    pool.close()


def test_a_refused_header_among_requests_sent_together_leaves_no_connection_open(sandbox):
    pool = HttpPool()
    requests = [
        Request("GET", f"{sandbox.url}/v1/common/timestamp"),
        Request("GET", f"{sandbox.url}/v1/common/timestamp", {"X-Bad": "a\r\nInjected: 1"}),
    ]
    with pytest.raises(ValueError, match="line break"):
        pool.request_many(requests, timeout=(1, 2))
    assert not any(pool._idle.values())  # the first one's answer was never read: not kept either
    assert pool.request_many(requests[:1], timeout=(1, 2))[0].status == 200
    pool.close()
