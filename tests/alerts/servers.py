"""Real receivers for the alert tests, on loopback: an SMTP server (aiosmtpd) and an HTTP server
(stdlib http.server) for JSON webhooks and Telegram's sendMessage. Both record everything they
receive, and both can misbehave on demand, so a test can count at the receiving end, by the
delivery key, what arrived (once, twice, never).

- ``SmtpServer``: records every message (Message-ID, To, Subject, List-Unsubscribe, body); can
  be stopped and started again on the same port ("SMTP down"), refuse the next recipients with
  a 4xx, stall conversations at RCPT (so a worker can be killed mid-send), or answer QUIT late.
- ``WebhookServer``: records every request (headers incl. Idempotency-Key and X-Alert-Signature,
  body, JSON); can answer an error status for the next N requests, redirect, send a huge body
  or answer slowly.
- Helpers: ``alert_user`` (a verified address and alert settings), ``expiring_connections``
  (connections whose key dies in a few days: the cause of an alert), ``worker_env`` (what a
  worker process needs to deliver to these servers), ``receipt`` (the counts the tests print).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

_MESSAGE_ID = re.compile(r"<alert-([0-9a-f-]{36})@[^>]+>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


# --- SMTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    to: str
    subject: str
    list_unsubscribe: str | None
    list_unsubscribe_post: str | None
    auto_submitted: str | None
    body: str  # the text/plain part
    html: str  # the text/html part ("" if none)
    raw: bytes

    @property
    def delivery_key(self) -> str | None:
        """The delivery key carried in the Message-ID (<alert-KEY@domain>)."""
        found = _MESSAGE_ID.fullmatch(self.message_id.strip())
        return found.group(1) if found else None


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        owner = self.server
        with owner.lock:
            owner.conversations += 1
            refuse = owner._refuse_left > 0
            if refuse:
                owner._refuse_left -= 1
            stall = not refuse and owner._stall_left != 0
            if stall:
                if owner._stall_left > 0:  # negative: stall every conversation
                    owner._stall_left -= 1
                owner.stalled_now += 1
                owner.stalled_total += 1
        if refuse:
            return owner.refuse_reply
        if stall:
            try:
                # Asynchronously: other conversations go on while this one hangs.
                while not owner._released.is_set():
                    await asyncio.sleep(0.02)
            finally:
                with owner.lock:
                    owner.stalled_now -= 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))

        def header(name: str) -> str | None:
            # Unfolded and stripped: a long header arrives folded ("Name:\r\n <value>").
            value = message.get(name)
            return None if value is None else " ".join(str(value).split())

        received = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            message_id=header("Message-ID") or "",
            to=header("To") or "",
            subject=header("Subject") or "",
            list_unsubscribe=header("List-Unsubscribe"),
            list_unsubscribe_post=header("List-Unsubscribe-Post"),
            auto_submitted=header("Auto-Submitted"),
            body=plain.get_content() if plain is not None else "",
            html=html.get_content() if html is not None else "",
            raw=raw,
        )
        with self.server.lock:
            self.server.messages.append(received)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        if self.server.quit_delay:
            await asyncio.sleep(self.server.quit_delay)
        return "221 Bye"


class SmtpServer:
    """An SMTP server on 127.0.0.1 that accepts every message and records it."""

    refuse_reply = "451 4.3.0 Try again later"

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.messages: list[ReceivedMail] = []
        self.conversations = 0  # RCPT commands seen
        self.stalled_now = 0  # conversations hanging at RCPT right now
        self.stalled_total = 0
        self._stall_left = 0  # conversations still to stall; negative: every one
        self._refuse_left = 0
        self.quit_delay = 0.0  # seconds to wait before answering QUIT (after a mail was accepted)
        self._released = threading.Event()
        self._controller: Controller | None = None

    # Life cycle

    def start(self) -> SmtpServer:
        """Start (or start again, on the same port)."""
        assert self._controller is None, "already running"
        self._controller = Controller(_SmtpHandler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open conversation: "the mail server is down"."""
        if self._controller is not None:
            self.release()
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Faults

    def stall(self, count: int | None = None) -> None:
        """Hang the next `count` conversations (every one when None) at RCPT until `release`."""
        with self.lock:
            self._released.clear()
            self._stall_left = -1 if count is None else count

    def release(self) -> None:
        """Let stalled conversations go on, and stall no more."""
        with self.lock:
            self._stall_left = 0
            self._released.set()

    def refuse_next(self, count: int) -> None:
        """Answer the next `count` RCPT commands with a temporary failure (451)."""
        with self.lock:
            self._refuse_left = count

    def wait_stalled(self, count: int = 1, timeout: float = 30) -> int:
        return _wait(lambda: self.stalled_now >= count and self.stalled_now, timeout, f"{count} stalled")

    # What arrived

    def received(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.messages)

    def by_key(self) -> Counter:
        """{delivery key (from the Message-ID): how many messages carried it}."""
        return Counter(m.delivery_key for m in self.received())

    def wait_for(self, count: int, timeout: float = 30) -> list[ReceivedMail]:
        return _wait(
            lambda: len(self.received()) >= count and self.received(), timeout, f"{count} message(s)"
        )


# --- HTTP (webhooks, Telegram) ---------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int  # what the server answered (or was about to answer, when slow)
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def signature(self) -> str | None:
        return self.headers.get("x-alert-signature")

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class _Action:
    kind: str  # status, redirect, huge, slow
    value: object = None


class WebhookServer:
    """An HTTP server on 127.0.0.1 that records every request and answers 200 {"ok": true}
    (Telegram's success) unless told otherwise for the next requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self._plan: deque[_Action] = deque()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def start(self) -> WebhookServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format, *args):  # noqa: A002
                pass

            def do_POST(self):  # noqa: N802
                server._handle(self)

            do_GET = do_POST  # noqa: N815  (a followed redirect would show up as one)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Faults, for the next requests, in the order given

    def fail_next(self, count: int, status: int = 500) -> None:
        self._add(count, _Action("status", status))

    def redirect_next(self, count: int, location: str = "/elsewhere", status: int = 302) -> None:
        self._add(count, _Action("redirect", (status, location)))

    def huge_next(self, count: int, size: int = 8 * 1024 * 1024) -> None:
        """Answer 200 with a body of `size` bytes (a JSON string that never seems to end)."""
        self._add(count, _Action("huge", size))

    def slow_next(self, count: int, seconds: float) -> None:
        """Wait `seconds` after reading the request, then answer 200."""
        self._add(count, _Action("slow", seconds))

    def _add(self, count: int, action: _Action) -> None:
        with self.lock:
            self._plan.extend([action] * count)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            action = self._plan.popleft() if self._plan else _Action("status", 200)
            if action.kind == "status":
                status = action.value
            elif action.kind == "redirect":
                status = action.value[0]
            else:
                status = 200
            self.requests.append(
                ReceivedRequest(
                    method=handler.command,
                    path=handler.path,
                    headers={k.lower(): v for k, v in handler.headers.items()},
                    body=body,
                    status=status,
                )
            )
        with contextlib.suppress(OSError):  # the client may hang up (huge, slow)
            if action.kind == "slow":
                time.sleep(action.value)
            if action.kind == "redirect":
                handler.send_response(status)
                handler.send_header("Location", action.value[1])
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            if action.kind == "huge":
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(action.value))
                handler.end_headers()
                chunk = b"x" * 65536
                handler.wfile.write(b'"')
                left = action.value - 1
                while left > 0:
                    handler.wfile.write(chunk[:left])
                    left -= len(chunk)
                return
            answer = json.dumps({"ok": status == 200, "description": f"HTTP {status}"}).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)

    # What arrived

    def received(self) -> list[ReceivedRequest]:
        with self.lock:
            return list(self.requests)

    def accepted(self) -> list[ReceivedRequest]:
        return [r for r in self.received() if r.accepted]

    def by_key(self) -> Counter:
        """{Idempotency-Key: how many requests with it were accepted (2xx)}."""
        return Counter(r.idempotency_key for r in self.accepted())

    def wait_for(self, count: int, timeout: float = 30) -> list[ReceivedRequest]:
        """Wait for `count` accepted requests."""
        return _wait(
            lambda: len(self.accepted()) >= count and self.accepted(), timeout, f"{count} accepted request(s)"
        )


# --- Test data and worker settings --------------------------------------------------------------


def worker_env(smtp: SmtpServer | None = None, webhook: WebhookServer | None = None, **extra) -> dict:
    """Environment of a worker (and beat) process delivering to these servers, with pauses in
    seconds: a retry after 1 s, then 2 s at most (production: 30 s doubling to 15 min), the
    sweeper every second (15 s), a claim of 5 s (120 s)."""
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port if smtp else 9),
        "ALERT_SMTP_TIMEOUT": "10",
        "ALERT_WEBHOOK_ALLOW_LOOPBACK": "1",
        "ALERT_RETRY_BASE_SECONDS": "1",
        "ALERT_RETRY_MAX_SECONDS": "2",
        "ALERT_SWEEP_SECONDS": "1",
        "ALERT_CLAIM_SECONDS": "5",
    }
    if webhook is not None:
        env["TELEGRAM_API_URL"] = webhook.base_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


def alert_user(
    user, *, email_on: bool = True, webhook_url: str = "", telegram: tuple[str, str] | None = None
):
    """Give `user` a verified primary address (alert emails go only there) and alert settings:
    email, and a JSON webhook to `webhook_url` or Telegram (bot token, chat id). Returns the
    settings."""
    from allauth.account.models import EmailAddress

    from alerts.models import AlertSettings

    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    prefs = AlertSettings(user=user, email_enabled=email_on)
    if webhook_url:
        prefs.webhook_mode, prefs.webhook_url = AlertSettings.WebhookMode.JSON, webhook_url
    if telegram:
        prefs.webhook_mode = AlertSettings.WebhookMode.TELEGRAM
        prefs.telegram_bot_token, prefs.telegram_chat_id = telegram
    prefs.save()
    return prefs


def expiring_connections(owner, count: int, *, days: int = 5) -> list:
    """`count` working HTX connections of `owner` whose key the venue stops accepting in `days`
    days (as a check of the sandbox's "expires in 5 days" key records it). No check is due, so
    no worker calls HTX about them; alerts.conditions.scan() raises one alert for each."""
    from django.utils import timezone

    from exchanges.models import ExchangeConnection, Status
    from exchanges.services import access_key_fingerprint

    now = timezone.now()
    rows = []
    for i in range(count):
        h = secrets.token_hex(16)
        access_key = f"{h[:8]}-{h[8:16]}-{h[16:24]}-{h[24:29]}"
        rows.append(
            ExchangeConnection.objects.create(
                owner=owner,
                label=f"key {i}",
                access_key=access_key,
                secret_key=secrets.token_hex(16),
                access_key_fingerprint=access_key_fingerprint(access_key),
                access_key_head=access_key[:4],
                access_key_tail=access_key[-4:],
                status=Status.CONNECTED,
                established=True,
                account_uid=str(72_000_000 + i),
                permissions="readOnly,trade",
                key_expires_at=now + timedelta(days=days, minutes=-1),
                last_verified_at=now,
                last_checked_at=now,
            )
        )
    return rows


@dataclass(frozen=True)
class Receipt:
    """What a receiving server got, against the deliveries recorded, by delivery key."""

    channel: str
    created: int  # alerts (deliveries of this channel) recorded
    delivered: int  # distinct keys the server accepted
    lost: int  # recorded, never accepted
    duplicated: int  # keys accepted more than once
    strangers: int  # keys accepted that no delivery has

    def __str__(self) -> str:
        return (
            f"{self.channel}: alerts created={self.created} delivered={self.delivered} lost={self.lost} "
            f"duplicated={self.duplicated} unknown={self.strangers}"
        )


def receipt(channel: str, keys: list[str], counted: Counter) -> Receipt:
    expected = set(keys)
    return Receipt(
        channel=channel,
        created=len(expected),
        delivered=len(expected & set(counted)),
        lost=len(expected - set(counted)),
        duplicated=sum(1 for k, n in counted.items() if k in expected and n > 1),
        strangers=len(set(counted) - expected),
    )
