"""Requests of one check that do not depend on each other, sent together: admitted by the gate
in one script call (``Gate.slots``) and written before any answer is read
(``HttpPool.request_many``). A thread that waits once instead of once per request also resumes
once: on a small machine each resumption costs a refresh more CPU than the wait saves
(docs/performance.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from .errors import GateBusy
from .transport import HttpPool, Request, Response, TransportError


def send_together(
    gate,
    pool: HttpPool,
    scope: str,
    calls: Sequence[tuple[str, Callable[[], Request]]],
    timeout: tuple[float, float],
) -> list[Response | TransportError | GateBusy]:
    """Send ``calls`` (each its path and what builds its request, signed at that moment), as
    many at once as the gate admits, then the rest. The answers come back in order, each a
    ``Response`` or the ``TransportError`` of its request. If the gate says busy for the first
    call it raises, as one request would; for a later one, that call and those after it come
    back as the ``GateBusy`` they met, and the answers already read are kept."""
    answers: list[Response | TransportError | GateBusy] = []
    while len(answers) < len(calls):
        waiting = calls[len(answers) :]
        paths = [path for path, _ in waiting]
        admission = gate.slots(paths, scope) if gate is not None else contextlib.nullcontext(len(paths))
        try:
            with admission as admitted:
                # Built (and signed) once admitted, so time spent waiting does not age a timestamp.
                answers += pool.request_many([build() for _, build in waiting[:admitted]], timeout=timeout)
        except GateBusy as busy:
            if not answers:
                raise
            answers += [busy] * len(waiting)
    return answers
