"""``manage.py sandboxes``: run the sandbox of every registered venue (or those named) in the
foreground, for ``make demo`` and manual tests. Each is a faithful local double of its
exchange's API (``exchanges/venues/<id>/sandbox.py``); the demo keys are printed last."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchanges import registry
from exchanges.venues.kit.venue import Venue


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_ports(text: str) -> dict[str, int]:
    """``"htx=8765,other=8766"`` -> ``{"htx": 8765, "other": 8766}``."""
    ports = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        venue_id, _, port = part.partition("=")
        try:
            ports[venue_id.strip()] = int(port)
        except ValueError:
            raise CommandError(f"--ports wants id=port pairs, not {part!r}") from None
    return ports


def demo_keys_table(sandboxes: list[tuple[Venue, Any]]) -> str:
    """Every credential of each venue's demo keys, with what each key demonstrates."""
    lines = []
    for venue, sandbox in sandboxes:
        # Every credential the venue asks for beyond the two keys (a passphrase, the site).
        extras = [f.name for f in venue.credential_fields if f.name not in ("access_key", "secret_key")]
        header = ", ".join(["API Key", "Secret Key", *(e.capitalize() for e in extras), "what it is"])
        lines.append(f"\n{venue.name} demo keys ({header}):")
        for api_key, secret, note in venue.demo_keys():
            entry = sandbox.accounts.get(api_key, {})
            more = "".join(f"  {entry.get(name, '')}" for name in extras)
            lines.append(f"  {api_key}  {secret}{more}  {note}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Run the local sandbox of each exchange (doubles of their REST APIs) until Ctrl-C."
    # The sandboxes need no database, models or checks; skipping them lets them start on their own.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ports",
            default="",
            help="venue=port pairs, e.g. htx=8765,other=8766 (default: every venue on a free port)",
        )
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--keys-file", default="", help="also write the demo keys to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        ports = parse_ports(options["ports"])
        unknown = set(ports) - {venue.id for venue in registry.venues()}
        if unknown:
            raise CommandError(f"no such venue: {', '.join(sorted(unknown))}")
        venues = [v for v in registry.venues() if not ports or v.id in ports]
        self.sandboxes = []
        for venue in venues:
            sandbox = venue.sandbox(host=options["host"], port=ports.get(venue.id, 0)).bind()
            self.sandboxes.append((venue, sandbox))
            self.stdout.write(self.style.SUCCESS(f"{venue.name} sandbox listening on {sandbox.url}"))
        table = demo_keys_table(self.sandboxes)
        self.stdout.write(table)
        if options["keys_file"]:
            Path(options["keys_file"]).write_text(table.lstrip() + "\n")
            note = f"\nThe demo keys above are also in {options['keys_file']}."
            self.stdout.write(self.style.SUCCESS(note))
        self.stdout.write("\nPress Ctrl-C to stop.")
        self.stdout.flush()
        if threading.current_thread() is threading.main_thread():
            # honcho and docker stop with SIGTERM: treat it like Ctrl-C so the sockets are closed.
            signal.signal(signal.SIGTERM, _interrupt)
        for _, sandbox in self.sandboxes:
            sandbox.start()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the sandboxes.")
        finally:
            for _, sandbox in self.sandboxes:
                sandbox.stop()
