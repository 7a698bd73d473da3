"""One integrity failure found by a verification (``audit.verification``, ``audit.published``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One integrity failure. ``sequence`` is ``None`` only for an unsealed (never chained) row."""

    kind: str
    sequence: int | None
    message: str
    event_id: int | None = None

    def __str__(self) -> str:
        where = f"sequence {self.sequence}" if self.sequence is not None else f"unsealed event id {self.event_id}"
        return f"{where}: {self.kind}: {self.message}"
