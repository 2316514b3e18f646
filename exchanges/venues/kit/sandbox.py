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
import ipaddress
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, unquote

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
    "html_page",
    "ip_allowed",
    "json_response",
    "parse_query",
    "truncated",
]

logger = logging.getLogger("venues.sandbox")

JSON_CONTENT_TYPE = "application/json;charset=utf-8"
HTML_CONTENT_TYPE = "text/html"
MAX_BODY_BYTES = 1 << 20

_GATEWAY_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)


# --- faults -----------------------------------------------------------------------------------


class Faults:
    """Thread-safe fault switches. Read and set as attributes or items::

        sb.faults.latency_ms = 300
        sb.faults["http_status"] = 502
        sb.faults.update(malformed_json=True, paths=["/v1/account"])
        sb.faults.clear()

    The kit implements these four for every venue: ``latency_ms`` sleeps before answering (a
    client *timeout* is a latency above its read timeout), ``http_status`` answers a gateway
    HTML page with that status, ``malformed_json`` cuts a JSON answer in half (HTTP status,
    headers and a matching Content-Length kept), and ``paths`` limits every fault to the given
    path prefixes (None or [] = every path).

    A venue adds its own by subclassing with a bigger ``DEFAULTS`` (name -> off value). A
    boolean default makes a boolean switch, an int default an int; anything else needs an
    override of ``check`` (call ``super().check`` for the rest).
    """

    __slots__ = ("_lock", "_values")

    DEFAULTS: ClassVar[Mapping[str, Any]] = {
        "latency_ms": 0,
        "http_status": None,
        "malformed_json": False,
        "paths": None,
    }

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_values", dict(self.DEFAULTS))
        if values:
            self.update(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(cls.DEFAULTS)

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        """The value to store for ``name``, or ValueError."""
        if name not in cls.DEFAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(cls.DEFAULTS)}")
        if name == "latency_ms":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 <= value <= 600_000:
                raise ValueError("latency_ms must be a number of milliseconds between 0 and 600000")
            return value
        if name == "http_status":
            if value in (None, 0):
                return None
            if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
                raise ValueError("http_status must be null or an HTTP status code (100-599)")
            return value
        if name == "paths":
            if value is None:
                return None
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple) or not all(
                isinstance(p, str) and p.startswith("/") for p in value
            ):
                raise ValueError("paths must be null or a list of path prefixes starting with '/'")
            return list(value)
        default = cls.DEFAULTS[name]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        elif isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} must be an integer")
        return value

    def __getattr__(self, name: str) -> Any:
        if name in type(self).DEFAULTS:
            with self._lock:
                return self._values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in type(self).DEFAULTS:
            raise AttributeError(f"unknown fault {name!r}")
        self.update(**{name: value})

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).DEFAULTS:
            raise KeyError(name)
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in type(self).DEFAULTS:
            raise KeyError(name)
        self.update(**{name: value})

    def update(self, **values: Any) -> None:
        checked = {name: self.check(name, value) for name, value in values.items()}
        with self._lock:
            self._values.update(checked)

    def replace(self, values: Mapping[str, Any]) -> None:
        """Set exactly these faults; every field not given goes back to its default."""
        checked = {name: self.check(name, value) for name, value in values.items()}
        with self._lock:
            object.__setattr__(self, "_values", {**self.DEFAULTS, **checked})

    def clear(self) -> None:
        self.replace({})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            values = dict(self._values)
        if values.get("paths") is not None:
            values["paths"] = list(values["paths"])
        return values

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.snapshot()!r})"


def fault_applies(faults: Mapping[str, Any], path: str) -> bool:
    prefixes = faults.get("paths")
    return not prefixes or any(path.startswith(p) for p in prefixes)


# --- request / response -----------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively; the first of repeated headers wins."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass(frozen=True)
class SandboxRequest:
    method: str
    path: str  # as received, without the query string
    params: list[tuple[str, str]]  # query parameters, decoded, in the order received
    host: str  # the Host header as sent
    client_ip: str  # socket peer address
    has_body: bool
    body: bytes = b""
    content_type: str = ""  # the Content-Type header as sent
    query: str = ""  # the raw query string as received (after "?"), not decoded
    headers: Mapping[str, str] = field(default_factory=Headers)  # case-insensitive


@dataclass
class SandboxResponse:
    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


def json_response(
    payload: Any,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = JSON_CONTENT_TYPE,
) -> SandboxResponse:
    # Compact, non-ASCII as UTF-8 (HTX's Chinese messages, Binance's "USDⓈ-M Futures").
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return SandboxResponse(status, body, content_type, headers or [])


def truncated(response: SandboxResponse) -> SandboxResponse:
    # Any strict prefix of a compact JSON object or array is invalid JSON.
    body = response.body[: max(1, len(response.body) // 2)]
    return SandboxResponse(response.status, body, response.content_type, response.headers, response.close)


def html_page(status: int) -> SandboxResponse:
    """A bare gateway error page (nginx style), as a proxy in front of an API sends it."""
    reason = BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
    body = _GATEWAY_HTML.format(status=status, reason=reason).encode()
    return SandboxResponse(status, body, content_type=HTML_CONTENT_TYPE)


def parse_query(query: str) -> list[tuple[str, str]]:
    # parse_qsl decodes both %20 and "+" as a space; blank values are kept.
    return parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")


def ip_allowed(client_ip: str, entries: Iterable[str]) -> bool:
    """Is ``client_ip`` in one of ``entries`` (IPv4/IPv6 hosts or CIDRs)? No entries = any.
    An IPv4-mapped IPv6 peer (``::ffff:127.0.0.1``) counts as its IPv4 address."""
    entries = [e.strip() for e in entries if e and e.strip()]
    if not entries:
        return True
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if ip.version == network.version and ip in network:
            return True
    return False


def check_key_fields(fields: Mapping[str, Any], allowed: Mapping[str, type | tuple[type, ...]]) -> None:
    """ValueError unless every field is in ``allowed`` with a value of its JSON type(s).
    A JSON boolean only passes where ``bool`` is allowed (bool is an int in Python)."""
    for name, value in fields.items():
        kinds = allowed.get(name)
        if kinds is None:
            raise ValueError(f"unknown field {name!r}; allowed: {', '.join(allowed)}")
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise ValueError(f"{name} must be a JSON {names}")


# --- routes, windows, stats -------------------------------------------------------------------


@dataclass(frozen=True)
class RouteMatch:
    handler: Callable[..., SandboxResponse] | None  # None: unknown path, or method not allowed
    args: tuple[str, ...] = ()  # the {placeholders} of the path, in order
    allowed: tuple[str, ...] = ()  # methods the path answers (empty: unknown path)


class Routes:
    """Method + path table. A path is literal, or holds ``{name}`` segments that match one
    path segment each and are passed to the handler positionally: ``handler(request, *args)``."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Callable[..., SandboxResponse]]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Callable[..., SandboxResponse]]]] = []

    def add(self, method: str, path: str, handler: Callable[..., SandboxResponse]) -> None:
        if "{" not in path:
            self._exact.setdefault(path, {})[method.upper()] = handler
            return
        regex = re.compile(re.sub(r"\\\{[^}]*\\\}", "([^/]+)", re.escape(path)))
        for pattern, methods in self._patterns:
            if pattern.pattern == regex.pattern:
                methods[method.upper()] = handler
                return
        self._patterns.append((regex, {method.upper(): handler}))

    def match(self, method: str, path: str) -> RouteMatch:
        methods, args = self._exact.get(path), ()
        if methods is None:
            for pattern, candidate in self._patterns:
                found = pattern.fullmatch(path)
                if found is not None:
                    methods, args = candidate, found.groups()
                    break
        if methods is None:
            return RouteMatch(None)
        return RouteMatch(methods.get(method.upper()), args, tuple(methods))


class FixedWindows:
    """Counters in fixed windows that open at a key's first call (real time, so moving a
    sandbox's clock neither stretches nor cuts them). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[Any, list[int]] = {}

    def add(self, key: Any, amount: int, window_ms: int) -> tuple[int, int]:
        """Add ``amount`` to the key's current window; -> (count now, window end in real ms)."""
        now = int(time.time() * 1000)
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window[0]:
                window = self._windows[key] = [now + int(window_ms), 0]
            window[1] += amount
            return window[1], window[0]

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


class LoadStats:
    """What load tests read back (``GET /_sandbox/stats``): requests served, the most in flight
    at once, per bucket (an endpoint, or a weight budget) the busiest window of one UID or IP
    (``per`` names which) and how many calls its limit refused, plus venue counters."""

    def __init__(self, per: str = "uid") -> None:
        self._lock = threading.Lock()
        self.per = per
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = self.in_flight = self.peak_in_flight = 0
            self.busiest_window: dict[str, int] = {}
            self.refused: dict[str, int] = {}
            self.counters: dict[str, dict[str, int]] = {}

    def enter(self) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def window_count(self, bucket: str, count: int, *, refused: bool) -> None:
        with self._lock:
            self.busiest_window[bucket] = max(self.busiest_window.get(bucket, 0), count)
            if refused:
                self.refused[bucket] = self.refused.get(bucket, 0) + 1

    def bump(self, counter: str, key: str, amount: int = 1) -> None:
        """Count a venue event, reported as ``{counter: {key: n}}`` (e.g. bans per bucket)."""
        with self._lock:
            values = self.counters.setdefault(counter, {})
            values[key] = values.get(key, 0) + amount

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                f"busiest_window_per_{self.per}": dict(self.busiest_window),
                "refused_by_rate_limit": dict(self.refused),
                **{name: dict(values) for name, values in self.counters.items()},
            }


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
            if active and faults.get("malformed_json") and response.content_type.startswith("application/json"):
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
