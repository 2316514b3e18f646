"""Helpers shared by the benchmark scripts: figure lines, target verdicts, ports, percentiles.

Every figure is printed as ``name: value unit``; every target as
``target name: value <= limit MET`` (or ``NOT MET``). A script exits 0 whether or not its
targets are met: the figures are the deliverable, not a pass/fail.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def python() -> str:
    """The interpreter to start children with: the project's venv when there is one."""
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def figure(name: str, value: float | int | str, unit: str = "", digits: int = 3) -> None:
    text = str(value)
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.{digits}f}"
    print(f"{name}: {text} {unit}".rstrip(), flush=True)


def note(text: str) -> None:
    """A comment line, never mistaken for a figure."""
    print(f"# {text}", flush=True)


def target(name: str, value: float, limit: float, *, at_least: bool = False, digits: int = 2) -> bool:
    """Print ``target name: value <= limit MET`` (``>=`` when ``at_least``); return whether met."""
    met = not math.isnan(value) and (value >= limit if at_least else value <= limit)
    op = ">=" if at_least else "<="
    print(f"target {name}: {value:.{digits}f} {op} {limit:g} {'MET' if met else 'NOT MET'}", flush=True)
    return met


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process=None) -> None:
    """Wait until something accepts connections on 127.0.0.1:port (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server exited with code {process.returncode} before listening") from None
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:.0f} s")


def stop_process(process, timeout: float = 10.0) -> None:
    """SIGTERM the process we started, then SIGKILL it if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def start_gunicorn(app: str, port: int, log_path: Path, *, workers: int, extra: Sequence[str] = ()):
    """gunicorn serving `app` with `workers` sync workers on 127.0.0.1:port, its output in
    `log_path`; waits until it listens (and prints the log's tail if it never does)."""
    command = [python(), "-m", "gunicorn", app, *extra, "--workers", str(workers),
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60, process=process)
    except RuntimeError:
        sys.stderr.write(log_path.read_text(errors="replace")[-3000:])
        stop_process(process)
        raise
    return process


def serve_sandbox_until_told(conn, sandbox) -> None:
    """In a child process: serve `sandbox` (bound, not started), send its URL through `conn`,
    and stop when the parent says so or goes away."""
    sandbox.start()
    conn.send(sandbox.url)
    try:
        conn.recv()
    except EOFError:
        pass
    finally:
        sandbox.stop()


@contextmanager
def sandbox_process(target: Callable, *args, start_timeout: float = 120.0) -> Iterator[tuple[str, int]]:
    """Run `target(conn, *args)` (which ends in serve_sandbox_until_told) in a spawned process, so
    the sandbox's CPU is not counted as ours; yields (its URL, its pid)."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=target, args=(child_end, *args), daemon=True)
    child.start()
    try:
        if not parent_end.poll(start_timeout):
            raise RuntimeError("the sandbox process did not start")
        yield parent_end.recv(), child.pid
    finally:
        parent_end.send("stop")
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(5)


def postgres_database(base_url: str, name: str, *, create: bool) -> str:
    """Drop the database `name` on the server `base_url` names (and create it anew when `create`);
    returns its URL. Benchmarks seed and measure in a database of their own."""
    import psycopg

    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))
