"""Keep-alive HTTP(S) requests to exchanges over the standard library's ``http.client``.

Why not requests (or urllib3 directly): both re-parse and re-percent-encode every URL byte by
byte in Python, and a signed query is ~250 bytes of already encoded text. That alone cost
more CPU than the whole rest of a call (docs/performance.md). It also matters for correctness:
some venues verify the signature over the exact bytes received, so the query must go out
exactly as signed. This module does only what an exchange client needs: one pool of idle
connections per host shared by all threads of the process, separate connect and read timeouts,
certificate verification (``ssl.create_default_context``), no redirects, no retries except once
on a kept-alive connection the server had already closed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


class TransportError(Exception):
    """No answer from the server; ``timeout`` says whether it was a timeout."""

    def __init__(self, reason: str, *, timeout: bool = False):
        super().__init__(reason)
        self.timeout = timeout


class Headers(dict):
    """A response's headers, looked up without regard to case (``get``), as the venue clients
    read them. A header sent twice keeps its last value."""

    __slots__ = ()

    def get(self, name: str, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class _Response(http.client.HTTPResponse):
    """``http.client``'s response, its headers read into ``Headers`` instead of through the
    ``email`` package (~20 µs per response less, three responses per refresh). The rest is the
    standard library's ``begin``: status line, chunked or sized body, keep-alive."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # a 100 Continue's headers: skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = Headers()
        for line in http.client._read_headers(self.fp):
            name, _, value = line.decode("iso-8859-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        self.headers = self.msg = headers
        self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            self.length = 0
        if self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Request:
    """One request of ``HttpPool.request_many`` (the arguments of ``HttpPool.request``)."""

    method: str
    url: str
    headers: dict[str, str] | None = None
    body: bytes | None = None
    idempotent: bool | None = None


@dataclass(slots=True)
class _Pending:
    """A request written (or that could not be), its answer not read yet."""

    key: tuple[str, str, int]
    timeout: tuple[float, float]
    method: str
    target: str
    headers: dict[str, str]
    body: bytes | None
    retry: bool
    conn: http.client.HTTPConnection | None = None
    reused: bool = False
    error: TransportError | None = None


# Errors that mean a reused connection had been closed by the server while it sat idle.
_STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    http.client.BadStatusLine,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)
# An idle connection older than this is not reused: a NAT or firewall on the way may have
# dropped it silently, and finding out would cost a whole read timeout.
MAX_IDLE_SECONDS = 30.0


class HttpPool:
    """Idle keep-alive connections per (scheme, host, port), safe to share between threads."""

    def __init__(self, *, max_idle_per_host: int = 64, headers: dict[str, str] | None = None):
        self.max_idle_per_host = max_idle_per_host
        self.headers = dict(headers or {})
        # Per host: (connection, when it was put back), most recent last.
        self._idle: dict[tuple[str, str, int], list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None

    def get(
        self, url: str, *, timeout: tuple[float, float], headers: dict[str, str] | None = None
    ) -> Response:
        """GET ``url`` (already encoded: it is sent as is). Raises TransportError."""
        return self.request("GET", url, timeout=timeout, headers=headers)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: tuple[float, float],
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send ``method`` to ``url`` (already encoded) with ``body``. Raises TransportError.

        ``idempotent`` (default: GET only) allows sending once more on a fresh connection when
        a kept-alive one turns out closed; a read-only POST may say so."""
        return self._finish(self._start(Request(method, url, headers, body, idempotent), timeout))

    def send(self, request: Request, *, timeout: tuple[float, float]) -> Response:
        """``request`` for a ``Request``. Raises TransportError."""
        return self._finish(self._start(request, timeout))

    def request_many(
        self, requests: list[Request], *, timeout: tuple[float, float]
    ) -> list[Response | TransportError]:
        """Send every request at once, each on a connection of its own, then read their answers
        in order: one wait for all of them instead of one after another (a thread resuming
        after a wait pays for its cold caches, docs/performance.md). Each comes back as its
        ``Response`` or the ``TransportError`` ``request`` would have raised."""
        started: list[_Pending] = []
        results: list[Response | TransportError] = []
        try:
            for request in requests:
                started.append(self._start(request, timeout))
            for pending in started:
                try:
                    results.append(self._finish(pending))
                except TransportError as exc:
                    results.append(exc)
        except BaseException:
            # A refused header, or the task interrupted: no answer left unread on a connection.
            for pending in started[len(results) :]:
                if pending.conn is not None:
                    pending.conn.close()
            raise
        return results

    def _start(self, request: Request, timeout: tuple[float, float]) -> _Pending:
        """Check out a connection and write the request on it (a TransportError to raise when
        its answer is asked for, if it could not be sent)."""
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http(s) URL is required")
        key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {**self.headers, **(request.headers or {})}
        if request.body is not None:
            headers["Content-Length"] = str(len(request.body))
        retry = request.method == "GET" if request.idempotent is None else request.idempotent
        pending = _Pending(key, timeout, request.method, target, headers, request.body, retry)
        try:
            pending.conn, pending.reused = self._checkout(key, timeout)
        except TransportError as exc:
            pending.error = exc
            return pending
        try:
            self._write(pending)
        except _STALE as exc:
            if pending.reused and retry:
                self._again(pending)
            else:
                pending.error = self._failed(pending, exc)
        except (OSError, http.client.HTTPException) as exc:
            pending.error = self._failed(pending, exc)
        return pending

    def _finish(self, pending: _Pending) -> Response:
        """Read the answer to a request ``_start`` wrote. Raises TransportError."""
        if pending.error is None:
            try:
                try:
                    response = self._read(pending.conn)
                except _STALE:
                    if not pending.reused or not pending.retry:
                        raise
                    # The server closed this idle connection: a GET is safe to send once more.
                    self._again(pending)
                    if pending.error is not None:
                        raise pending.error from None
                    response = self._read(pending.conn)
            except (OSError, http.client.HTTPException) as exc:
                pending.error = self._failed(pending, exc)
        if pending.error is not None:
            raise pending.error
        self._checkin(pending.key, pending.conn, reusable=not response.will_close)
        return Response(response.status, response.msg, response.body)

    def _again(self, pending: _Pending) -> None:
        """Write the request once more, on a fresh connection."""
        pending.conn.close()
        pending.reused = False
        try:
            pending.conn = self._connect(pending.key, pending.timeout)
            self._write(pending)
        except TransportError as exc:
            pending.error = exc
        except (OSError, http.client.HTTPException) as exc:
            pending.error = self._failed(pending, exc)

    @staticmethod
    def _failed(pending: _Pending, exc: BaseException) -> TransportError:
        pending.conn.close()
        if isinstance(exc, TimeoutError):
            return TransportError("timed out", timeout=True)
        return TransportError(type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for conn, _ in connections:
                conn.close()

    @staticmethod
    def _write(pending: _Pending) -> None:
        # http.client's request line and state, then every header line at once: its
        # ``putheader`` checks each name and value with two regular expressions and encodes
        # them one by one (a seventh of a request's CPU for a signed call's eight headers).
        # Checked here in one pass instead: nothing in a header may end its line early.
        conn, headers = pending.conn, pending.headers
        conn.putrequest(pending.method, pending.target, skip_host=True, skip_accept_encoding=True)
        given = {name.lower() for name in headers}
        lines = [f"Host: {_host_header(conn)}"] if "host" not in given else []
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        text = "".join(lines)
        if not (text.isascii() and text.isprintable()):
            conn.close()
            raise ValueError("a header name or value holds a line break, a control or a non-ASCII character")
        conn._buffer.append("\r\n".join(lines).encode("ascii"))
        conn.endheaders(pending.body)

    @staticmethod
    def _read(conn: http.client.HTTPConnection):
        response = conn.getresponse()
        response.body = response.read()
        return response

    def _checkout(self, key: tuple[str, str, int], timeout: tuple[float, float]):
        stale = []
        conn = None
        with self._lock:
            idle = self._idle.get(key) or []
            now = time.monotonic()
            while idle and conn is None:
                candidate, since = idle.pop()
                if now - since <= MAX_IDLE_SECONDS:
                    conn = candidate
                else:
                    stale.append(candidate)
        for old in stale:
            old.close()
        if conn is not None:
            conn.sock.settimeout(timeout[1])
            return conn, True
        return self._connect(key, timeout), False

    def _connect(self, key: tuple[str, str, int], timeout: tuple[float, float]) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=timeout[0], context=self._ssl_context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout[0])
        conn.response_class = _Response
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise TransportError("connect timed out", timeout=True) from None
        except OSError as exc:
            conn.close()
            raise TransportError(type(exc).__name__) from None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(timeout[1])  # from now on, the read timeout
        return conn

    def _checkin(
        self, key: tuple[str, str, int], conn: http.client.HTTPConnection, *, reusable: bool
    ) -> None:
        if reusable:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.max_idle_per_host:
                    idle.append((conn, time.monotonic()))
                    return
        conn.close()


def _host_header(conn: http.client.HTTPConnection) -> str:
    """The ``Host`` header http.client would send: the port only when not the scheme's own."""
    host = f"[{conn.host}]" if ":" in conn.host else conn.host
    return host if conn.port == conn.default_port else f"{host}:{conn.port}"


USER_AGENT = "bitsgap-clone/1.0 (+self-hosted)"
# One connection pool per process, shared by every venue's clients and threads: a check reuses
# the keep-alive connection the previous check opened instead of paying a new TCP (and TLS)
# handshake.
_pool: HttpPool | None = None
_pool_lock = threading.Lock()


def shared_pool() -> HttpPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = HttpPool(headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        return _pool
