"""``manage.py htx_sandbox``: run the HTX sandbox in the foreground for demos and manual tests."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from exchanges.venues.htx.sandbox import (
    ENDPOINTS,
    FAULT_NAMES,
    KEY_FIELDS,
    HtxSandbox,
    load_accounts,
    load_tickers,
)


def key_table(accounts: dict[str, dict[str, Any]]) -> str:
    """The demo keys as a plain-text table a newcomer can copy from."""
    rows = [("Access Key", "Secret Key", "What it is")]
    rows += [
        (key, str(entry.get("secret", "")), str(entry.get("note", ""))) for key, entry in accounts.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{widths[0]}}  {s:<{widths[1]}}  {n}".rstrip() for a, s, n in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def endpoints_help(url: str) -> str:
    """What the sandbox serves: HTX's endpoints, then its own test hooks (not part of HTX)."""
    faults = ", ".join(name for name in FAULT_NAMES if name != "paths")
    lines = [
        "HTX endpoints:",
        *(f"  {endpoint}" for endpoint in ENDPOINTS),
        "Test hooks (not HTX; change the running sandbox, no restart):",
        f"  GET/POST/DELETE {url}/_sandbox/faults  JSON object of {faults}, paths",
        "    (a client timeout = latency_ms above its read timeout; paths = prefixes it applies to)",
        f'  GET/POST {url}/_sandbox/clock  {{"clock_offset_ms": <int>}}',
        f"  GET/POST {url}/_sandbox/keys/<access key>  GET shows the key (no secret); POST merges",
        f"    a JSON object of {', '.join(KEY_FIELDS)}",
    ]
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the local HTX sandbox (a double of HTX's spot REST API) until Ctrl-C."
    # The sandbox needs no database, models or checks; skipping them lets it start on its own.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 = any)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--accounts", default=None, help="accounts JSON (default: demo keys)")
        parser.add_argument("--tickers", default=None, help="tickers JSON (default: demo tickers)")

    def handle(self, *args: Any, **options: Any) -> None:
        sandbox = HtxSandbox(
            load_accounts(options["accounts"]),
            load_tickers(options["tickers"]),
            host=options["host"],
            port=options["port"],
        )
        sandbox.bind()  # so the printed URL has the real port
        self.sandbox = sandbox  # lets a test or an embedding process stop it
        self.stdout.write(self.style.SUCCESS(f"HTX sandbox listening on {sandbox.url}"))
        self.stdout.write("Sign for the host in that URL (host:port).")
        self.stdout.write(endpoints_help(sandbox.url) + "\n")
        self.stdout.write(key_table(sandbox.accounts))
        self.stdout.write("\nPress Ctrl-C to stop.")
        self.stdout.flush()
        if threading.current_thread() is threading.main_thread():
            # honcho and docker stop with SIGTERM: treat it like Ctrl-C so the socket is closed.
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            sandbox.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the HTX sandbox.")
        finally:
            sandbox.stop()
