"""Network input sizes: one :class:`InputSize` value, written ``"256x192"`` = height x width everywhere.

The official yacs configs store ``IMAGE_SIZE`` as ``[width, height]``; we avoid that ambiguity by
using one string form in configs and a ``(height, width)`` named tuple in Python. A size is parsed
once (:meth:`InputSize.parse`) and checked against the one rule that matters, the network's
``input_multiple`` (:meth:`InputSize.check_multiple`; 32 for a 4-branch HRNet: branches at strides
4..32 must be summed), by whoever knows the network.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class InputSize(NamedTuple):
    """(height, width) in pixels; a tuple, so it unpacks and compares like one."""

    height: int
    width: int

    @classmethod
    def parse(cls, value: str | tuple[int, int] | list[int] | InputSize, field: str = "input_size") -> InputSize:
        """``"HxW"``, an ``(H, W)`` pair or an InputSize -> InputSize; ValueError naming ``field`` otherwise."""
        if isinstance(value, str):
            match = _SIZE_RE.match(value)
            if not match:
                raise ValueError(f"{field}: expected 'HEIGHTxWIDTH' such as '256x192', got {value!r}")
            height, width = int(match.group(1)), int(match.group(2))
        else:
            try:
                height, width = (int(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"{field}: expected 'HEIGHTxWIDTH' or [height, width], got {value!r}") from None
        if height <= 0 or width <= 0:
            raise ValueError(f"{field}: height and width must be positive, got {height}x{width}")
        return cls(height, width)

    def check_multiple(self, multiple: int, field: str = "input_size", why: str = "the network's input_multiple") -> InputSize:
        """Return self, or raise ValueError unless both sides are divisible by ``multiple``."""
        if self.height % multiple or self.width % multiple:
            raise ValueError(
                f"{field}: {self} (height x width) must be divisible by {multiple} ({why}; e.g. "
                f"{_rounded(self.height, multiple)}x{_rounded(self.width, multiple)})"
            )
        return self

    @property
    def aspect_ratio(self) -> float:
        """width / height (the reference's ``aspect_ratio`` of the person crop)."""
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


def _rounded(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)
