"""Imported at start-up only by the processes tests/faults/test_clock.py runs under libfaketime.

Debian 12's libfaketime (0.9.10) breaks ``time.sleep`` on Python 3.11 when the monotonic clock
is left real: its clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) wrapper hands the kernel a
negative time (EINVAL; wolfcw/libfaketime#426, fixed after 0.9.10). Sleep with select(), whose
timeout is relative, instead. Only the sleeping changes; the shifted wall clock is untouched.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
