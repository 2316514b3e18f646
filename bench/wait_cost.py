"""What a wait costs the code after it (docs/performance.md, issue #12 target 1): the same
~1 ms of Python between socket round trips to a local server that answers at once, or after
a pause. The CPU of the Python part grows with the pause because the thread's caches went cold
while it slept; that is why a refresh's sequential calls cost CPU beyond their own work. No
figure here is a target: it explains the others.

Run from the repository root: .venv/bin/python bench/wait_cost.py [--rounds N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, note  # noqa: E402


def _serve(listener: socket.socket, pause: float) -> None:
    conn, _ = listener.accept()
    with conn:
        while conn.recv(100):
            if pause:
                time.sleep(pause)
            conn.sendall(b"x" * 50)


def _work() -> int:
    table = {}
    for i in range(3000):
        table[str(i)] = i * 2
    return sum(table.values())


def _per_round_trip(pause: float, rounds: int) -> tuple[float, float]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = multiprocessing.Process(target=_serve, args=(listener, pause), daemon=True)
    server.start()
    with socket.create_connection(listener.getsockname()) as client:
        client.settimeout(5)
        before = os.times()
        for _ in range(rounds):
            client.sendall(b"y" * 100)
            client.recv(100)
            _work()
        after = os.times()
    server.join(5)
    listener.close()
    return (after.user - before.user) / rounds * 1e6, (after.system - before.system) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    note(f"{args.rounds} round trips per pause, ~1 ms of Python after each")
    for pause_ms in (0, 2, 20):
        user, system = _per_round_trip(pause_ms / 1000, args.rounds)
        figure(f"wait_cost_user_us_after_{pause_ms}ms", user, "µs per round trip", digits=0)
        figure(f"wait_cost_system_us_after_{pause_ms}ms", system, "µs per round trip", digits=0)


if __name__ == "__main__":
    main()
