"""`make run` / `make demo`: start web, workers and beat (and Redis when REDIS_URL is unset,
and every exchange's sandbox for the demo) under honcho. Ctrl-C stops them all."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bitsgap_clone.embedded_redis import free_port  # noqa: E402


def ensure_dotenv() -> None:
    """First run: write a .env with secrets of this machine's own, so keys connected through
    `make run` are never encrypted with the public development defaults."""
    path = ROOT / ".env"
    if path.exists():
        return
    import secrets

    from cryptography.fernet import Fernet

    path.write_text(
        "# Written by `make run` on first start. Keep it private; see .env.example.\n"
        "DEBUG=1\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"FERNET_KEYS={Fernet.generate_key().decode()}\n"
        f"KEY_FINGERPRINT_SECRET={secrets.token_urlsafe(50)}\n"
    )
    path.chmod(0o600)
    print(f"Wrote {path} with fresh secrets for this machine.", flush=True)


# The demo's own limit on keys tried (CONNECT_RATE_LIMIT; production's default is
# 10/h/user,30/h/ip): room for every demo key of every exchange, each tried a few times and
# replaced, within one hour. Only `make demo` sets it, and an exported CONNECT_RATE_LIMIT wins.
DEMO_CONNECT_RATE_LIMIT = "200/h/user,600/h/ip"


def demo_environment(env) -> None:
    """What `make demo` sets for itself beyond `make run` (the sandboxes' URLs come later)."""
    env.setdefault("CONNECT_RATE_LIMIT", DEMO_CONNECT_RATE_LIMIT)


def _venues():
    """The venues of settings.VENUES (read with the .env just written)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")
    import django

    django.setup()
    from exchanges import registry

    return registry.venues()


def main() -> None:
    demo = "--demo" in sys.argv[1:]
    env = os.environ
    ensure_dotenv()
    env.setdefault("DEBUG", "1")
    if demo:
        demo_environment(env)
    # honcho gives every process its own PORT, so the web port travels as WEB_PORT.
    env["WEB_PORT"] = env.get("PORT", "8000")
    # Links in alert mails (printed on the worker's console in development) open this dashboard.
    env.setdefault("SITE_URL", f"http://127.0.0.1:{env['WEB_PORT']}")
    # "interactive": a small worker for the checks a user waits for only, so that a refresh wave
    # holding every thread of the main worker never makes Connect wait (docs/deploy.md).
    processes = ["web", "worker", "interactive", "beat"]
    if not env.get("REDIS_URL"):
        port = free_port()
        env["EMBEDDED_REDIS_PORT"] = str(port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        processes.append("redis")
    venues = _venues()
    if demo:
        # Each exchange's sandbox on a port of its own; the dashboard signs requests to them.
        ports = {venue.id: free_port() for venue in venues}
        env["SANDBOX_PORTS"] = ",".join(f"{venue_id}={port}" for venue_id, port in ports.items())
        for venue in venues:
            env[f"{venue.env_prefix}_API_URL"] = f"http://127.0.0.1:{ports[venue.id]}"
        processes.append("sandbox")
    apis = "   ".join(
        f"{venue.name} API: {env.get(f'{venue.env_prefix}_API_URL', venue.default_api_url)}"
        for venue in venues
    )
    print(f"Dashboard: http://127.0.0.1:{env['WEB_PORT']}/   {apis}   Redis: {env['REDIS_URL']}", flush=True)
    if demo:
        print(f"Keys tried (CONNECT_RATE_LIMIT): {env['CONNECT_RATE_LIMIT']}", flush=True)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    os.chdir(ROOT)
    os.execv(os.path.join(bin_dir, "honcho"), ["honcho", "-f", "Procfile", "start", *processes])


if __name__ == "__main__":
    main()
