"""A readable name for a browser from its User-Agent header ("Chrome 131 on Linux"), for the
sessions page. Deliberately small: the common browsers and systems by their own tokens, in the
order that tells them apart (Edge and Opera also say "Chrome", Chrome also says "Safari")."""

from __future__ import annotations

import re

# (name, pattern whose first group is the version); the first that matches wins.
_BROWSERS: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        ("Edge", r"\bEdg(?:e|A|iOS)?/(\d+)"),
        ("Opera", r"\b(?:OPR|Opera)/(\d+)"),
        ("Samsung Internet", r"\bSamsungBrowser/(\d+)"),
        ("Vivaldi", r"\bVivaldi/(\d+)"),
        ("Yandex Browser", r"\bYaBrowser/(\d+)"),
        ("Firefox", r"\b(?:Firefox|FxiOS)/(\d+)"),
        ("Headless Chrome", r"\bHeadlessChrome/(\d+)"),
        ("Chrome", r"\b(?:Chrome|CriOS)/(\d+)"),
        ("Chromium", r"\bChromium/(\d+)"),
        ("Safari", r"\bVersion/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/"),
        ("curl", r"^curl/(\d+(?:\.\d+)?)"),
        ("Python", r"^python-(?:requests|httpx|urllib\d?)/(\d+(?:\.\d+)?)"),
    ]
]

# (name, pattern); checked in order: iOS and Android before the systems they are built on.
_SYSTEMS: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        ("iPhone", r"\biPhone\b"),
        ("iPad", r"\biPad\b"),
        ("Android", r"\bAndroid\b"),
        ("ChromeOS", r"\bCrOS\b"),
        ("Windows", r"\bWindows\b"),
        ("macOS", r"\bMac OS X\b|\bMacintosh\b"),
        ("Linux", r"\bLinux\b|\bX11\b"),
    ]
]

UNKNOWN = "Unknown browser"


def describe(user_agent: str | None) -> str:
    """ "<browser> <major version> on <system>", as much of it as the header tells."""
    user_agent = (user_agent or "").strip()[:500]
    if not user_agent:
        return UNKNOWN
    browser = next(
        (f"{name} {match.group(1)}" for name, pattern in _BROWSERS if (match := pattern.search(user_agent))),
        None,
    )
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser:
        return browser
    if system:
        return f"A browser on {system}"
    return UNKNOWN
