"""The kit's gate in real Redis, noting what it admitted and what it was told to block: the
venue clients' tests check with it that every request they send was admitted."""

from __future__ import annotations

from contextlib import contextmanager

from exchanges.venues.kit.gate import Gate


class RecordingGate(Gate):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.admitted: list[tuple[str, str]] = []
        self.blocked: list[float] = []

    @contextmanager
    def slots(self, paths, scope: str, *, interactive: bool = False):
        # ``slot`` admits through here too (one path); requests sent together, several.
        with super().slots(paths, scope, interactive=interactive) as admitted:
            self.admitted += [(path, scope) for path in paths[:admitted]]
            yield admitted

    def block(self, seconds: float) -> None:
        self.blocked.append(seconds)
        super().block(seconds)
