"""UTC time stamps for signed requests, formatted once per second: every call within a second
shares the text (``strftime`` costs more than the rest of a request's signing)."""

from __future__ import annotations

import time

_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def utc_second(epoch_seconds: float) -> str:
    """``YYYY-MM-DDThh:mm:ss`` (UTC, truncated to the second, no zone suffix) of a Unix time."""
    global _last_second
    second = int(epoch_seconds // 1)
    last = _last_second
    if last[0] != second:
        last = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return last[1]
