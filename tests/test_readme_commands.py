"""The commands the README shows work as shown from a fresh clone: no `.env`, none of the
dashboard's secrets in the environment, started by a Python other than the project's .venv."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ("SECRET_KEY", "FERNET_KEYS", "KEY_FINGERPRINT_SECRET", "DEBUG", "DJANGO_SETTINGS_MODULE")


def _base_python() -> str:
    """The interpreter the venv was made from (no Django in it on a fresh machine)."""
    candidate = Path(sys.base_prefix) / "bin" / "python3"
    return str(candidate if candidate.exists() else sys.executable)


def _fresh_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("VIRTUAL_ENV")}
    env["ENV_FILE"] = os.devnull  # as if no .env had been written yet
    return env


def _first_lines_until(process: subprocess.Popen, pattern: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if re.search(pattern, line):
            return lines
    got = "\n".join(lines)
    raise AssertionError(f"never printed {pattern!r}; got:\n{got}\n{process.stderr.read()}")


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["htx_sandbox", "--port", "0"], r"HTX sandbox listening on http://127\.0\.0\.1:\d+"),
        (["sandboxes"], r"Bybit sandbox listening on http://127\.0\.0\.1:\d+"),
    ],
)
def test_sandbox_commands_start_without_the_dashboards_secrets(args, expect):
    process = subprocess.Popen(
        [_base_python(), "manage.py", *args],
        cwd=ROOT,
        env=_fresh_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _first_lines_until(process, expect)
        assert any(re.search(expect, line) for line in lines)
        assert process.poll() is None, "the sandbox exited instead of serving"
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_demo_keys_are_written_to_the_file_the_readme_names(tmp_path):
    from exchanges import registry

    keys_file = tmp_path / "demo-keys.txt"
    process = subprocess.Popen(
        [_base_python(), "manage.py", "sandboxes", "--keys-file", str(keys_file)],
        cwd=ROOT,
        env=_fresh_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _first_lines_until(process, r"demo keys above are also in")
    finally:
        process.terminate()
        process.wait(timeout=15)
    text = keys_file.read_text()
    for venue in registry.venues():
        assert f"{venue.name} demo keys" in text
        for api_key, secret, _note in venue.demo_keys():
            assert f"{api_key}  {secret}" in text
    assert "demo-keys.txt" in (ROOT / "README.md").read_text()
    assert "--keys-file demo-keys.txt" in (ROOT / "Procfile").read_text()


def test_dashboard_commands_still_demand_their_secrets_in_production():
    result = subprocess.run(
        [_base_python(), "manage.py", "check"],
        cwd=ROOT,
        env=_fresh_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_readme_shows_no_bare_python_for_project_scripts():
    """`python bench/...` would run outside the .venv; the README says how to run them."""
    readme = (ROOT / "README.md").read_text()
    assert not re.findall(r"`python3? (?:bench|bin)/", readme)
