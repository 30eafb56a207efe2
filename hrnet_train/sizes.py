"""Image sizes written as names: ``"256x192"`` is height x width everywhere in this project.

The official yacs configs store ``IMAGE_SIZE`` as ``[width, height]``; we avoid that ambiguity by
using one string form in configs and ``(height, width)`` tuples in Python.
"""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(value: str | tuple[int, int] | list[int], field: str = "input_size", multiple_of: int = 1) -> tuple[int, int]:
    """Parse ``"HxW"`` (or an explicit ``(H, W)`` pair) into ``(height, width)``.

    Raises ValueError naming ``field`` when the value is malformed or not divisible by ``multiple_of``.
    """
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
    if height % multiple_of or width % multiple_of:
        raise ValueError(
            f"{field}: {height}x{width} (height x width) must be divisible by {multiple_of} "
            f"(HRNet fuses branches at strides 4..32)"
        )
    return height, width


def format_size(size: tuple[int, int]) -> str:
    """``(256, 192) -> "256x192"`` (height x width)."""
    return f"{size[0]}x{size[1]}"
