"""Template source rules that Django does not enforce itself."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted([*ROOT.glob("templates/**/*.html"), *ROOT.glob("exchanges/venues/*/*.html")])


def test_there_are_templates_to_check():
    assert len(TEMPLATES) > 20


def test_no_comment_tag_spans_lines():
    """`{# … #}` ends on its own line; one that spans lines is printed to the page as text."""
    unclosed = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in TEMPLATES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\{#(?!.*#\})", line)
    ]
    assert not unclosed, f"use {{% comment %}} for comments over several lines: {unclosed}"
