"""What the tolerance options skipped, counted, and the one summary line every run prints at its end.

``drop_invalid_boxes`` and ``skip_corrupt`` turn errors into skips; a skip that nobody hears of is a
silent result, so each is counted by kind and reported: "skipped: 3 invalid boxes, 1 corrupt image".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# kind -> plural, in the order the summary lists them
KINDS = {
    "invalid box": "invalid boxes",
    "corrupt annotation": "corrupt annotations",
    "corrupt detection": "corrupt detections",
    "missing image": "missing images",
    "corrupt image": "corrupt images",
}


class SkipCounts(Counter):
    """Skipped records by kind (keys of :data:`KINDS`)."""

    def add(self, kind: str, count: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"SkipCounts: unknown kind {kind!r}, expected one of {list(KINDS)}")
        if count:
            self[kind] += count

    def summary(self) -> str:
        """``skipped: 3 invalid boxes, 1 corrupt image`` (``skipped: nothing`` when empty)."""
        parts = [f"{self[kind]} {kind if self[kind] == 1 else plural}" for kind, plural in KINDS.items() if self[kind]]
        return "skipped: " + (", ".join(parts) if parts else "nothing")

    @classmethod
    def merged(cls, parts: Iterable[SkipCounts]) -> SkipCounts:
        total = cls()
        for part in parts:
            total.update(part)
        return total
