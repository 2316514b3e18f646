"""The venue seam holds: a venue is one folder plus one registry line.

- Outside its folder, only the registry line, its logo, the docs and the tests name a venue.
- A venue imports nothing of the project but the venue kit, and no other venue.
- The kit imports no venue and nothing of the dashboard (no Django).
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from exchanges import registry

ROOT = Path(__file__).resolve().parents[2]
VENUES_DIR = ROOT / "exchanges" / "venues"
# HTX came first: the dashboard's own docs, settings names and a few comments still speak of it.
ADDED_VENUES = [pytest.param(v, id=v.id) for v in registry.venues() if v.id != "htx"]


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def _allowed(path: Path, venue_id: str) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return (
        relative.startswith((f"exchanges/venues/{venue_id}/", "tests/", "docs/", "bench/"))
        or relative in (f"static/img/{venue_id}.svg", "README.md", ".env.example")
        or relative.endswith(".png")
    )


@pytest.mark.parametrize("venue", ADDED_VENUES)
def test_outside_its_folder_only_the_registry_line_names_a_venue(venue):
    pattern = re.compile(rf"\b{re.escape(venue.id)}\b|\b{re.escape(venue.name)}\b", re.IGNORECASE)
    registry_line = f'"exchanges.venues.{venue.id}.venue.'
    found = []
    for path in _tracked_files():
        if _allowed(path, venue.id):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line) and registry_line not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "venue named outside its folder:\n" + "\n".join(found)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("venue", [pytest.param(v, id=v.id) for v in registry.venues()])
def test_a_venue_imports_only_the_kit_and_itself(venue):
    ours = ("exchanges", "accounts", "bitsgap_clone", "django", "celery")
    for path in (VENUES_DIR / venue.id).rglob("*.py"):
        for name in _imports(path):
            if name.startswith(ours):
                assert name.startswith(("exchanges.venues.kit", f"exchanges.venues.{venue.id}")), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def test_the_kit_imports_no_venue_and_no_django():
    for path in (VENUES_DIR / "kit").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(("django", "celery", "accounts", "bitsgap_clone")), path
            if name.startswith("exchanges"):
                assert name.startswith("exchanges.venues.kit"), f"{path.relative_to(ROOT)} imports {name}"


def test_no_module_of_the_dashboard_is_much_over_500_lines():
    long = []
    for path in _tracked_files():
        relative = path.relative_to(ROOT).as_posix()
        if path.suffix == ".py" and relative.startswith(("exchanges/", "accounts/", "bitsgap_clone/")):
            lines = len(path.read_text().splitlines())
            if lines > 550:
                long.append(f"{relative}: {lines} lines")
    assert not long, long
