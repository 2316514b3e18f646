"""The keep-alive transport under the HTX client, against the sandbox and raw sockets."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from exchanges.venues.kit.transport import HttpPool, TransportError


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


def test_the_query_is_sent_exactly_as_given():
    """No re-encoding: the signature covers the bytes HTX receives."""
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        received.append(conn.recv(4096))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    port = server.getsockname()[1]
    target = "/v1/account/accounts?Timestamp=2024-01-02T03%3A04%3A05&Signature=a%2Bb%3D"
    response = HttpPool().get(f"http://127.0.0.1:{port}{target}", timeout=(1, 1))
    thread.join(5)
    server.close()
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
