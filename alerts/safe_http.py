"""POSTing to an address a user typed (a webhook) without letting it reach inside our network.

- ``https`` only; plain ``http`` only to a loopback address, and only where the operator allows
  it (ALERT_WEBHOOK_ALLOW_LOOPBACK, on in development and tests).
- The host is resolved once, every address it resolves to must be a public one (no private,
  loopback, link-local, shared, multicast or reserved range), and the connection goes to that
  very address (TLS still checks the host's name), so a DNS answer that changes between the
  check and the request cannot redirect it.
- Redirects are not followed, the whole exchange has a deadline, and at most
  ALERT_WEBHOOK_MAX_BYTES of the answer are read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import urllib3
from django.conf import settings


class UnsafeUrlError(ValueError):
    """The address may not be called; the message says why, for the user."""


class WebhookError(Exception):
    """The call failed; the message says how, for the user (never a secret)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


def _loopback_allowed() -> bool:
    return settings.ALERT_WEBHOOK_ALLOW_LOOPBACK


def parse(url: str) -> Target:
    """Check an address's form (not yet where it resolves to)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeUrlError("This is not a web address.") from None
    if parts.username or parts.password:
        raise UnsafeUrlError("Put no user name or password in the address; use a token in its path instead.")
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeUrlError("Enter a full address starting with https://.")
    if parts.scheme == "http" and not (_loopback_allowed() and _is_loopback_name(host)):
        raise UnsafeUrlError("The address must start with https://: alerts are never sent unencrypted.")
    return _target(parts, host, port)


def _target(parts: SplitResult, host: str, port: int | None) -> Target:
    path = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # Judged by the IPv4 address inside: mapped, or 6to4 (which Python counts as public).
        # (NAT64's 64:ff9b::/96 is within ::/8, reserved.)
        address = address.ipv4_mapped or address.sixtofour or address
    if address.is_loopback:
        return not _loopback_allowed()
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_link_local
    )


def addresses(target: Target) -> list[str]:
    """The addresses to connect to, in the resolver's order; refuses a host with any non-public
    address."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WebhookError(f"{target.host} could not be found (DNS).") from None
    found = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    if not found:
        raise WebhookError(f"{target.host} could not be found (DNS).")
    for address in found:
        if _refused(address):
            raise UnsafeUrlError(
                f"{target.host} points to {address}, a private or internal address: alerts are only "
                "sent to public addresses."
            )
    return [str(address) for address in found]


def resolve(target: Target) -> str:
    """The first address to connect to (see ``addresses``)."""
    return addresses(target)[0]


def check(url: str) -> None:
    """For a form: refuse an address that could never be called."""
    target = parse(url)
    if _is_loopback_name(target.host) or _is_ip(target.host):
        resolve(target)  # a literal address is judged now; a name is judged when called


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Unreachable(Exception):
    """This address refused or could not be routed to: the next one may answer."""


def post(url: str, body: bytes, headers: dict[str, str], *, trusted: bool = False) -> Answer:
    """POST ``body`` and return the status with at most ALERT_WEBHOOK_MAX_BYTES of the answer.
    Each address the host resolves to is tried in turn while the last one refused the
    connection (a name with an IPv6 and an IPv4 address, one of them not served), all within one
    deadline.

    ``trusted``: an address the operator configured (e.g. Telegram's API base), not a user:
    its form and addresses are not restricted, the rest (no redirects, deadline, size) holds.
    """
    target = parse(url) if not trusted else _parse_trusted(url)
    connect, read = settings.ALERT_WEBHOOK_TIMEOUT
    deadline = time.monotonic() + connect + read
    reason = ""
    for address in [target.host] if trusted else addresses(target):
        try:
            return _post_to(target, address, body, headers, deadline)
        except _Unreachable as error:
            reason = str(error)
    raise WebhookError(f"{target.host} could not be reached ({reason}).")


def _post_to(target: Target, address: str, body: bytes, headers: dict[str, str], deadline: float) -> Answer:
    connect, read = settings.ALERT_WEBHOOK_TIMEOUT
    left = max(deadline - time.monotonic(), 0.001)
    timeout = urllib3.Timeout(connect=min(connect, left), read=min(read, left))
    pool_kwargs = {"timeout": timeout, "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, target.port, server_hostname=target.host, assert_hostname=target.host, **pool_kwargs
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, **pool_kwargs)
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    # The read timeout bounds each wait for a packet, not the exchange: a server sending a byte
    # now and then would hold the worker for hours. At the deadline the socket is shut, whatever
    # the call is waiting for (the headers or the body).
    watchdog = _Watchdog(pool, left)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header, "Content-Length": str(len(body))},
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            release_conn=False,
        )
        limit = settings.ALERT_WEBHOOK_MAX_BYTES
        data = bytearray()
        for chunk in response.stream(8192, decode_content=False):
            data += chunk
            if len(data) > limit or time.monotonic() > deadline:
                break
        response.release_conn()
        if watchdog.fired:  # the answer was cut at the deadline
            raise urllib3.exceptions.TimeoutError
        return Answer(response.status, bytes(data[:limit]))
    except (urllib3.exceptions.HTTPError, OSError) as error:
        # urllib3's NewConnectionError (refused, unreachable) is a ConnectTimeoutError by descent.
        refused = isinstance(error, urllib3.exceptions.NewConnectionError)
        timed_out = isinstance(error, urllib3.exceptions.TimeoutError) and not refused
        if watchdog.fired or timed_out:
            raise WebhookError(f"{target.host} did not answer within {connect + read:g} s.") from None
        if isinstance(error, urllib3.exceptions.SSLError):
            raise WebhookError(f"{target.host}'s TLS certificate could not be verified.") from None
        reason = type(getattr(error, "reason", None) or error).__name__
        if refused:
            raise _Unreachable(reason) from None
        raise WebhookError(f"{target.host} could not be reached ({reason}).") from None
    finally:
        watchdog.cancel()
        pool.close()


class _Watchdog:
    """Shuts the pool's connection's socket once ``seconds`` have passed."""

    def __init__(self, pool, seconds: float):
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        sockets = self._sockets

        class Watched(pool.ConnectionCls):
            def connect(self):
                super().connect()
                sockets.append(self.sock)

        pool.ConnectionCls = Watched
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown, under a TLS layer too: the blocked read ends.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _parse_trusted(url: str) -> Target:
    parts = urlsplit(url)
    return _target(parts, parts.hostname or "", parts.port)
