"""Building blocks of the venue sandboxes (re-exported by ``exchanges.venues.kit.sandbox``,
import them from there): fault switches, the request and response records, small helpers, a
route table, fixed rate windows and load statistics. Standard library only.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qsl

JSON_CONTENT_TYPE = "application/json;charset=utf-8"
HTML_CONTENT_TYPE = "text/html"

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
    # Compact, non-ASCII as UTF-8 (HTX's Chinese messages, wallet names such as "USDⓈ-M Futures").
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
