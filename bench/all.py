"""Every benchmark, one after the other, as `make bench` runs them: each script's output as it
comes, then every target of the run together, with its verdict, and the machine it ran on.

Run from the repository root: .venv/bin/python bench/all.py [--log PATH]
The whole output is also written to --log (default .bench-logs/make-bench.txt). Exits 1 when a
script failed (not when a target is NOT MET: the figures are the deliverable, see _common).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, python  # noqa: E402

# (script, arguments): what each issue's targets are proven by (docs/performance.md).
RUNS = [
    ("sandbox_latency.py", []),
    ("ccxt_compare.py", []),
    ("page_load.py", []),
    ("connect_latency.py", []),
    ("refresh_scale.py", []),
    ("refresh_scale.py", ["--batch", "1"]),
    ("refresh_scale.py", ["--connects", "20"]),
    ("refresh_scale.py", ["--venues", "okx"]),  # target 1 on every venue: OKX's five calls
    ("refresh_scale.py", ["--venues", "bybit"]),  # and Bybit's three (~5 min: its per-IP pace)
    ("venue_budget.py", []),
    ("venue_budget.py", ["--mix", "--minutes", "6"]),
    ("history_prune.py", []),
]


def _machine() -> str:
    cpuinfo = _read("/proc/cpuinfo").splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    model = models[0] if models else platform.processor() or "unknown CPU"
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, load {_load()}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=ROOT / ".bench-logs" / "make-bench.txt")
    args = parser.parse_args()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    verdicts: list[str] = []
    failed: list[str] = []
    with args.log.open("w") as log:

        def say(line: str) -> None:
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()

        say(f"# make bench on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {_machine()}")
        for script, extra in RUNS:
            name = " ".join([script, *extra])
            say(f"# --- {name} (load {_load()})")
            started = time.monotonic()
            child = subprocess.Popen(
                [python(), str(ROOT / "bench" / script), *extra],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in child.stdout:
                say(line.rstrip("\n"))
                if line.startswith("target "):
                    verdicts.append(f"{name}: {line[len('target ') :].rstrip()}")
            if child.wait():
                failed.append(name)
                say(f"# {name} FAILED (exit {child.returncode})")
            say(f"# {name} took {time.monotonic() - started:.0f} s")
        say("# --- every target of this run")
        for verdict in verdicts:
            say(verdict)
        met = sum(1 for verdict in verdicts if verdict.endswith(" MET") and not verdict.endswith("NOT MET"))
        say(f"# {met} of {len(verdicts)} targets met" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
