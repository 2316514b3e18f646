"""Helpers shared by the benchmark scripts: figure lines, target verdicts, ports, percentiles.

Every figure is printed as ``name: value unit``; every target as
``target name: value <= limit MET`` (or ``NOT MET``). A script exits 0 whether or not its
targets are met: the figures are the deliverable, not a pass/fail.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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
