"""What every venue's sandbox shares: an HTTP double of an exchange's REST API, for tests,
``make demo`` and benchmarks.

A venue's sandbox (``exchanges/venues/<id>/sandbox.py``) subclasses ``BaseSandbox`` and adds
only the exchange itself: its routes, authentication, errors and data. This module holds the
rest: lifecycle (``bind``/``start``/``serve_forever``/``stop``, a context manager), the server
clock (``now_ms`` = real time + ``clock_offset_ms``), thread-safe fault switches (``Faults``,
extended per venue), load statistics (``LoadStats``), the key table (``accounts`` with
``key_entry``/``update_key``), and the HTTP plumbing: keep-alive HTTP/1.1, one ``sendall`` per
response, bodies by Content-Length or chunked, and logs without query strings (they hold keys
and signatures).

How a venue plugs in::

    class MyFaults(Faults):
        __slots__ = ()
        DEFAULTS = {**Faults.DEFAULTS, "maintenance": False}   # booleans need no checker

    class MySandbox(BaseSandbox):
        name = "my-sandbox"             # thread names and repr
        faults_class = MyFaults
        key_fields = {"note": str}      # what POST /_sandbox/keys/<key> may change

        def __init__(self, keys, host="127.0.0.1", port=0):
            super().__init__(keys, host, port)
            self.routes.add("GET", "/api/time", self._time)
            self.routes.add("GET", "/api/orders/{id}", self._order)   # -> handler(request, id)

        def dispatch(self, request, faults, active):   # after latency and http_status
            found = self.routes.match(request.method, request.path)
            ...

Test hooks served by every sandbox (never part of an exchange's API):

- ``GET|POST|DELETE /_sandbox/faults``: show, replace (JSON object; absent names reset) or
  clear the faults (``sb.faults`` from Python).
- ``GET|DELETE /_sandbox/stats``: ``sb.stats`` snapshot; DELETE also resets rate windows.
- ``GET|POST /_sandbox/clock``: ``{"clock_offset_ms": <int>}``.
- ``GET|POST /_sandbox/keys/<key>``: the key's entry without its secret, or merge a JSON
  object of the venue's ``key_fields`` into it (a key changing while a client is connected).

Standard library only; no Django, nothing else of the project.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import unquote

from .sandbox_parts import (
    HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    Faults,
    FixedWindows,
    Headers,
    LoadStats,
    RouteMatch,
    Routes,
    SandboxRequest,
    SandboxResponse,
    check_key_fields,
    fault_applies,
    html_page,
    ip_allowed,
    json_response,
    parse_query,
    truncated,
)

__all__ = [
    "HTML_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "BaseSandbox",
    "Faults",
    "FixedWindows",
    "Headers",
    "LoadStats",
    "RouteMatch",
    "Routes",
    "SandboxRequest",
    "SandboxResponse",
    "check_key_fields",
    "fault_applies",
    "html_page",
    "ip_allowed",
    "json_response",
    "parse_query",
    "truncated",
]

logger = logging.getLogger("venues.sandbox")

MAX_BODY_BYTES = 1 << 20

# --- the sandbox ------------------------------------------------------------------------------


class BaseSandbox:
    """An exchange double served over HTTP on ``host:port`` (port 0 picks a free one).

    Subclasses set the class attributes below, add routes to ``self.routes`` in ``__init__``
    and implement ``dispatch``; they may override ``prepare_key_update`` (per-venue checks of
    a key change), ``internal_error`` and ``reset_rate_limits``.
    """

    name: ClassVar[str] = "sandbox"  # thread names and repr
    key_label: ClassVar[str] = "key"  # the key's own field in key_entry(), e.g. "accessKey"
    key_fields: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}  # changeable by update_key
    faults_class: ClassVar[type[Faults]] = Faults
    stats_per: ClassVar[str] = "uid"  # what one rate window belongs to (LoadStats' "per")

    def __init__(self, accounts: dict[str, dict[str, Any]], host: str = "127.0.0.1", port: int = 0) -> None:
        self.accounts = accounts
        self.host = host
        self.port = port
        self.clock_offset_ms = 0
        self._faults = self.faults_class()
        self._keys_lock = threading.Lock()
        self.stats = LoadStats(self.stats_per)
        self.routes = Routes()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving = False

    # -- lifecycle --

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults | Mapping[str, Any]) -> None:
        if isinstance(value, Faults):
            self._faults = value
        else:
            self._faults.replace(value)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def bind(self) -> Self:
        """Open the listening socket now, so ``url`` has the real port; serving starts later."""
        self._bind()
        return self

    def _bind(self) -> _Server:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler, self)
            self.port = self._server.server_address[1]
        return self._server

    def start(self) -> Self:
        """Serve in a daemon thread; returns self."""
        server = self._bind()
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"{self.name}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() or KeyboardInterrupt."""
        server = self._bind()
        self._serving = True
        server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and close the listening socket."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._serving:
            server.shutdown()
            self._serving = False
        server.close_connections()
        server.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} keys={len(self.accounts)}>"

    # -- clock, stats, keys --

    def now_ms(self) -> int:
        """Server time: real time plus ``clock_offset_ms``."""
        return int(time.time() * 1000) + int(self.clock_offset_ms)

    def reset_rate_limits(self) -> None:
        """Forget rate windows and statistics (``DELETE /_sandbox/stats``); extend per venue."""
        self.stats.reset()

    def key_entry(self, key: str) -> dict[str, Any] | None:
        """A copy of the key's entry without its secret, with ``key_label``; None if unknown."""
        with self._keys_lock:
            entry = self.accounts.get(key)
            return self._shown(key, entry) if isinstance(entry, dict) else None

    def update_key(self, key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``fields`` (names from ``key_fields``) into the key's entry while serving.

        Raises KeyError for an unknown key and ValueError for a refused change. The entry is
        updated in place (one dict.update under a lock), so references to it stay valid.
        """
        with self._keys_lock:
            entry = self.accounts.get(key)
            if not isinstance(entry, dict):
                raise KeyError(key)
            entry.update(self.prepare_key_update(key, entry, fields))
            return self._shown(key, entry)

    def prepare_key_update(self, key: str, entry: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        """What ``update_key`` merges into ``entry``, or ValueError (called under the lock).
        Venues extend it: more checks, or fields the change sets itself (e.g. updateTime)."""
        check_key_fields(fields, self.key_fields)
        return copy.deepcopy(dict(fields))

    def _shown(self, key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in entry.items() if k != "secret"}
        return {self.key_label: key, **copy.deepcopy(rest)}

    # -- dispatch --

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        """Answer one request (the HTTP plumbing calls ``sandbox.handle``, looked up on the
        instance, so a test may wrap it). Counts it in ``stats`` and applies the kit's faults."""
        self.stats.enter()
        try:
            faults = self._faults.snapshot()
            active = fault_applies(faults, request.path)
            if active and faults.get("latency_ms"):
                time.sleep(faults["latency_ms"] / 1000)
            if active and faults.get("http_status"):
                return html_page(faults["http_status"])
            response = self.dispatch(request, faults, active)
            if (
                active
                and faults.get("malformed_json")
                and response.content_type.startswith("application/json")
            ):
                # The real answer (headers included) with its body cut short, as a broken proxy
                # or a dropped connection delivers it; Content-Length is written for the cut body.
                return truncated(response)
            return response
        finally:
            self.stats.leave()

    def dispatch(self, request: SandboxRequest, faults: Mapping[str, Any], active: bool) -> SandboxResponse:
        """The venue's answer. ``faults`` is this request's snapshot; ``active`` says whether
        they apply to its path."""
        raise NotImplementedError

    def internal_error(self) -> SandboxResponse:
        """The answer when a handler raised (the venue's own "system error")."""
        return json_response({"error": "internal sandbox error"}, 500)


# --- HTTP plumbing ----------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, sandbox: BaseSandbox) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def close_connections(self) -> None:
        with self.connections_lock:
            sockets = list(self.connections)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _json_body(body: bytes | None) -> dict[str, Any]:
    values = json.loads(body or b"{}")
    if not isinstance(values, dict):
        raise ValueError("the body must be a JSON object")
    return values


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "venue-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True  # StreamRequestHandler sets TCP_NODELAY on the socket
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def __getattr__(self, name: str) -> Any:
        # Every method (GET, POST, PUT, HEAD, ...) goes through one dispatcher, so unknown
        # methods get the venue's answer rather than http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._write(json_response({"error": str(exc)}, 400))
            return
        sandbox = self.server.sandbox
        try:
            if path.startswith("/_sandbox/"):
                response = self._control(path, body)
            else:
                request = SandboxRequest(
                    method=self.command,
                    path=path,
                    params=parse_query(query),
                    host=self.headers.get("Host", ""),
                    client_ip=self.client_address[0],
                    has_body=body is not None and len(body) > 0,
                    body=body or b"",
                    content_type=self.headers.get("Content-Type", ""),
                    query=query,
                    headers=Headers(self.headers.items()),
                )
                response = sandbox.handle(request)
        except Exception:
            logger.exception("sandbox failed on %s %s", self.command, path)
            response = sandbox.internal_error()
        self._write(response)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return None
        try:
            length = int(length_text)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadRequest("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _control(self, path: str, body: bytes | None) -> SandboxResponse:
        """Test hooks: /_sandbox/faults, stats, clock and keys/<key>. Never part of a venue."""
        sandbox = self.server.sandbox
        method = self.command
        if path.startswith("/_sandbox/keys/"):
            key = unquote(path[len("/_sandbox/keys/") :])
            unknown = json_response({"error": f"unknown {sandbox.key_label} {key!r}"}, 404)
            if method == "POST":
                try:
                    return json_response(sandbox.update_key(key, _json_body(body)))
                except KeyError:
                    return unknown
                except ValueError as exc:
                    return json_response({"error": str(exc)}, 400)
            if method != "GET":
                return json_response({"error": "use GET or POST"}, 405)
            shown = sandbox.key_entry(key)
            return unknown if shown is None else json_response(shown)
        if path == "/_sandbox/faults":
            if method == "POST":
                try:
                    sandbox.faults.replace(_json_body(body))
                except ValueError as exc:
                    return json_response({"error": str(exc)}, 400)
            elif method == "DELETE":
                sandbox.faults.clear()
            elif method != "GET":
                return json_response({"error": "use GET, POST or DELETE"}, 405)
            return json_response(sandbox.faults.snapshot())
        if path == "/_sandbox/stats":
            if method == "DELETE":
                sandbox.reset_rate_limits()
            elif method != "GET":
                return json_response({"error": "use GET or DELETE"}, 405)
            return json_response(sandbox.stats.snapshot())
        if path == "/_sandbox/clock":
            if method == "POST":
                try:
                    offset = _json_body(body)["clock_offset_ms"]
                    if isinstance(offset, bool) or not isinstance(offset, int):
                        raise ValueError
                except (ValueError, KeyError, TypeError):
                    return json_response({"error": 'send {"clock_offset_ms": <int>}'}, 400)
                sandbox.clock_offset_ms = offset
            elif method != "GET":
                return json_response({"error": "use GET or POST"}, 405)
            return json_response({"clock_offset_ms": sandbox.clock_offset_ms, "now_ms": sandbox.now_ms()})
        return json_response({"error": "not found"}, 404)

    def _write(self, response: SandboxResponse) -> None:
        # One sendall per response (wbufsize is 0, so wfile.write is socket.sendall): with
        # TCP_NODELAY this avoids the Nagle + delayed-ACK stall of separate header/body writes.
        reason = self.responses.get(response.status, ("",))[0]
        close = self.close_connection or response.close
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            *(f"{name}: {value}" for name, value in response.headers),
            "Connection: close" if close else "Connection: keep-alive",
        ]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += response.body
        try:
            self.wfile.write(data)
        except OSError:
            close = True
        self.close_connection = close
        logger.debug(
            "%s %s %s -> %s",
            self.client_address[0],
            self.command,
            self.path.partition("?")[0],
            response.status,
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _write logs without the query string (it holds keys and signatures)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        message = format % args
        logger.debug("%s %s", self.client_address[0], re.sub(r"\?\S*", "?…", message))
