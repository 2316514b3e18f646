"""The SSRF rules of alerts.safe_http, against real HTTP servers on loopback started here (stdlib
http.server in a thread). Every address that must be refused is a literal, judged without any
connection (tests/conftest.py fails a test that connects anywhere but loopback)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alerts import channels, safe_http
from alerts.models import AlertSettings

# --- loopback servers -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _V6Server(_Server):
    address_family = socket.AF_INET6


class Loopback:
    """An HTTP server on loopback answering every POST with ``answer(handler)``; it records the
    requests it got (path, headers, body)."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None], host: str = "127.0.0.1"):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                owner.requests.append((self.path, dict(self.headers), self.rfile.read(length)))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    answer(self)  # the client may give up first, as it should

            def log_message(self, *args):
                pass

        self.server = (_V6Server if ":" in host else _Server)((host, 0), Handler)
        self.port = self.server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ok(handler: BaseHTTPRequestHandler, body: bytes = b"ok", status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def serve():
    started: list[Loopback] = []

    def start(answer=_ok, host="127.0.0.1") -> Loopback:
        server = Loopback(answer, host)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def loopback_allowed(settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = True


@pytest.fixture
def production(settings):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK = False


# --- the address's form -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost:8080/hook", "http://[::1]:8080/hook"]
)
def test_http_is_refused_without_the_loopback_allowance(production, url):
    with pytest.raises(safe_http.UnsafeUrlError, match="must start with https://"):
        safe_http.parse(url)


def test_http_is_refused_to_anything_but_loopback_even_where_loopback_is_allowed(loopback_allowed):
    for url in ("http://example.com/hook", "http://93.184.215.14/hook", "http://10.0.0.1/hook"):
        with pytest.raises(safe_http.UnsafeUrlError, match="must start with https://"):
            safe_http.parse(url)


def test_http_to_loopback_is_allowed_where_the_operator_allows_it(loopback_allowed):
    target = safe_http.parse("http://127.0.0.1:8080/hooks/a?x=1")
    assert target == safe_http.Target("http", "127.0.0.1", 8080, "/hooks/a?x=1")
    assert safe_http.parse("http://localhost/").port == 80


def test_https_to_a_public_name_is_accepted_and_defaults_to_443(production):
    assert safe_http.parse("https://hooks.example.com") == safe_http.Target(
        "https", "hooks.example.com", 443, "/"
    )
    safe_http.check("https://hooks.example.com/alerts")  # a name is judged when it is called
    safe_http.check("https://93.184.215.14/alerts")  # a public literal is fine


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://:secret@hooks.example.com/",
    ],
)
def test_no_user_name_or_password_in_the_address(production, url):
    with pytest.raises(safe_http.UnsafeUrlError, match="no user name or password"):
        safe_http.parse(url)


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/hook", "https://", "javascript:alert(1)"])
def test_anything_but_a_full_web_address_is_refused(production, url):
    with pytest.raises(safe_http.UnsafeUrlError, match="https://"):
        safe_http.parse(url)


def test_a_malformed_port_is_not_an_address(production):
    with pytest.raises(safe_http.UnsafeUrlError, match="not a web address"):
        safe_http.parse("https://example.com:99999/")


# --- where it points ---------------------------------------------------------------------------

REFUSED = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.10",
    "169.254.169.254",  # the cloud metadata service
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "100.127.255.254",
    "0.0.0.0",
    "127.0.0.1",
    "127.1.2.3",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",  # reserved
    "198.18.0.1",  # benchmarking
    "[::1]",
    "[::]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fe80::1]",
    "[ff02::1]",  # multicast
    "[::ffff:10.0.0.1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "[64:ff9b:1::a00:1]",  # a local NAT64
    "[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
    "[2002:c0a8:0101::1]",  # 6to4 of 192.168.1.1
]


@pytest.mark.parametrize("host", REFUSED)
def test_private_internal_and_special_addresses_are_refused(production, host):
    url = f"https://{host}/hook"
    with pytest.raises(safe_http.UnsafeUrlError, match="private or internal address"):
        safe_http.check(url)
    with pytest.raises(safe_http.UnsafeUrlError, match="private or internal address"):
        safe_http.resolve(safe_http.parse(url))
    # Posting refuses it before any connection (a connection would fail the test: conftest).
    with pytest.raises(safe_http.UnsafeUrlError):
        safe_http.post(url, b"{}", {})


@pytest.mark.parametrize("host", ["172.15.255.254", "172.32.0.1", "100.63.255.254", "100.128.0.1", "8.8.8.8"])
def test_addresses_just_outside_the_private_ranges_are_public(production, host):
    target = safe_http.parse(f"https://{host}/hook")
    assert safe_http.resolve(target) == host


def test_a_public_ipv6_address_is_accepted(production):
    assert safe_http.resolve(safe_http.parse("https://[2606:4700::1111]/")) == "2606:4700::1111"
    # A 6to4 address of a public IPv4 address is as public as that address.
    assert safe_http.resolve(safe_http.parse("https://[2002:808:808::1]/")) == "2002:808:808::1"


def test_localhost_is_refused_where_loopback_is_not_allowed(production):
    with pytest.raises(safe_http.UnsafeUrlError, match="private or internal address"):
        safe_http.check("https://localhost/hook")
    with pytest.raises(safe_http.UnsafeUrlError, match="private or internal address"):
        safe_http.check("https://localhost./hook")
    with pytest.raises(safe_http.UnsafeUrlError):
        safe_http.post("https://localhost:1/hook", b"{}", {})


def test_a_production_server_refuses_a_loopback_server_that_is_really_there(production, serve):
    server = serve()
    with pytest.raises(safe_http.UnsafeUrlError):
        safe_http.post(server.url, b"{}", {})
    with pytest.raises(safe_http.UnsafeUrlError):
        safe_http.post(server.url.replace("http://", "https://"), b"{}", {})
    assert server.requests == []


def test_a_public_address_stays_refused_only_where_it_is_private(loopback_allowed):
    # Allowing loopback allows loopback, nothing else.
    for host in ("10.0.0.1", "169.254.169.254", "[fc00::1]", "[::ffff:192.168.0.1]"):
        with pytest.raises(safe_http.UnsafeUrlError):
            safe_http.check(f"https://{host}/")
    safe_http.check("http://127.0.0.1:1/")
    safe_http.check("http://[::1]:1/")


# --- the call ---------------------------------------------------------------------------------


def test_a_post_reaches_a_loopback_server_with_its_body_and_headers(loopback_allowed, serve):
    server = serve(lambda h: _ok(h, b'{"ok": true}', 202))
    answer = safe_http.post(server.url + "?t=1", b'{"a": 1}', {"Content-Type": "application/json"})
    assert answer == safe_http.Answer(202, b'{"ok": true}')
    [(path, headers, body)] = server.requests
    assert path == "/hook?t=1" and body == b'{"a": 1}'
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Content-Type"] == "application/json"


def test_localhost_reaches_loopback_where_allowed(loopback_allowed, serve):
    server = serve()
    assert safe_http.post(f"http://localhost:{server.port}/x", b"1", {}).status == 200
    assert server.requests[0][1]["Host"] == f"localhost:{server.port}"


def test_an_ipv6_literal_is_sent_as_a_valid_host_header(loopback_allowed, serve):
    server = serve(host="::1")
    assert safe_http.post(server.url, b"{}", {}).status == 200
    # RFC 9110: an IPv6 literal in Host is in brackets.
    assert server.requests[0][1]["Host"] == f"[::1]:{server.port}"


def test_redirects_are_not_followed(loopback_allowed, serve):
    elsewhere = serve()

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", elsewhere.url)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    first = serve(redirect)
    answer = safe_http.post(first.url, b"{}", {})
    assert answer.status == 302
    assert len(first.requests) == 1 and elsewhere.requests == []
    # As a webhook it is not delivered, and says why.
    prefs = AlertSettings(webhook_mode=AlertSettings.WebhookMode.JSON, webhook_url=first.url)
    with pytest.raises(channels.SendError, match="redirect"):
        channels._raise_for(safe_http.post(prefs.webhook_url, b"{}", {}), "The webhook")
    assert elsewhere.requests == []


def test_the_answer_read_is_capped(loopback_allowed, serve, settings):
    settings.ALERT_WEBHOOK_MAX_BYTES = 1000
    server = serve(lambda h: _ok(h, b"x" * 1_000_000))
    answer = safe_http.post(server.url, b"{}", {})
    assert answer.status == 200 and answer.body == b"x" * 1000


def test_an_endless_answer_is_cut_at_the_cap(loopback_allowed, serve, settings):
    settings.ALERT_WEBHOOK_MAX_BYTES = 5000
    settings.ALERT_WEBHOOK_TIMEOUT = (1.0, 1.0)

    def endless(handler):
        handler.send_response(200)
        handler.end_headers()  # no length: the body runs until the connection closes
        while True:
            handler.wfile.write(b"y" * 4096)

    server = serve(endless)
    started = time.monotonic()
    answer = safe_http.post(server.url, b"{}", {})
    assert answer.body == b"y" * 5000
    assert time.monotonic() - started < 1.5


def test_a_server_that_does_not_answer_times_out(loopback_allowed, serve, settings):
    settings.ALERT_WEBHOOK_TIMEOUT = (0.5, 0.5)
    release = threading.Event()

    def silent(handler):
        release.wait(10)

    server = serve(silent)
    started = time.monotonic()
    with pytest.raises(safe_http.WebhookError, match=r"did not answer within 1 s"):
        safe_http.post(server.url, b"{}", {})
    assert time.monotonic() - started < 1.5
    release.set()
    assert len(server.requests) == 1


def test_a_server_dripping_its_answer_is_cut_at_the_deadline(loopback_allowed, serve, settings):
    """The read timeout is per packet: a byte every 0.2 s never trips it. The whole exchange
    still ends at connect + read seconds."""
    settings.ALERT_WEBHOOK_TIMEOUT = (0.5, 0.5)
    stop = threading.Event()

    def drip(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while not stop.is_set():
            handler.wfile.write(b"z")
            handler.wfile.flush()
            time.sleep(0.2)

    server = serve(drip)
    outcome: dict = {}

    def call():
        try:
            outcome["answer"] = safe_http.post(server.url, b"{}", {})
        except Exception as error:  # noqa: BLE001 (reported below)
            outcome["error"] = error

    started = time.monotonic()
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(5)
    stop.set()
    assert not caller.is_alive(), "the call was still reading after 5 s"
    assert time.monotonic() - started < 2
    assert isinstance(outcome.get("error"), safe_http.WebhookError)
    assert "did not answer within 1 s" in str(outcome["error"])


def test_a_server_dripping_its_headers_is_cut_at_the_deadline(loopback_allowed, serve, settings):
    settings.ALERT_WEBHOOK_TIMEOUT = (0.5, 0.5)
    stop = threading.Event()

    def drip_headers(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            handler.wfile.write(b"X-Slow: a\r\n")
            handler.wfile.flush()
            time.sleep(0.2)

    server = serve(drip_headers)
    started = time.monotonic()
    try:
        with pytest.raises(safe_http.WebhookError, match="did not answer within"):
            safe_http.post(server.url, b"{}", {})
    finally:
        stop.set()
    assert time.monotonic() - started < 2


def test_nothing_listening_is_said_plainly(loopback_allowed):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(safe_http.WebhookError, match=r"could not be reached \(\w+"):
        safe_http.post(f"http://127.0.0.1:{port}/", b"{}", {})


def test_a_name_whose_first_address_refuses_is_reached_on_the_next(loopback_allowed, serve, monkeypatch):
    """Debian's /etc/hosts gives "localhost" ::1 before 127.0.0.1: a server listening on IPv4 only
    is still reached (each address is tried in turn while the last one refused)."""
    server = serve()  # 127.0.0.1 only
    real = socket.getaddrinfo

    def dual_stack(host, port, *args, **kwargs):  # what such a resolver answers for localhost
        if host == "localhost":
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dual_stack)
    assert safe_http.addresses(safe_http.parse(f"http://localhost:{server.port}/")) == ["::1", "127.0.0.1"]
    assert safe_http.post(f"http://localhost:{server.port}/x", b"1", {}).status == 200
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = unused.getsockname()[1]
    with pytest.raises(safe_http.WebhookError, match="could not be reached"):
        safe_http.post(f"http://localhost:{nobody}/x", b"1", {})  # nobody on either: said so
