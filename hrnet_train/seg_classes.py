"""Segmentation class sets (names, palette, loss weights, flip swaps): the one description of a label space.

Like :mod:`hrnet_train.keypoints` for poses, a class set is data: datasets (label validation, flip
swaps), the loss (class weights), the metric (per-class table) and the overlays (palette) all read the
same validated object. Label maps hold class ids 0..K-1 and :data:`IGNORE_LABEL` (255) for pixels that
count nowhere (HRNet's ``IGNORE_LABEL 255``, spec B.6), so K is at most 255.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE_LABEL = 255
MAX_CLASSES = IGNORE_LABEL  # ids 0..254; 255 is reserved for "ignore"


def indexed_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 RGB colours for classes without their own palette: the PASCAL VOC colour map.

    Class k's bits are spread over the three channels from the most significant bit down (bit 0 of k
    -> bit 7 of R, bit 1 -> bit 7 of G, bit 2 -> bit 7 of B, bit 3 -> bit 6 of R, ...), so neighbouring
    ids get distinct colours. Algorithm as described for the VOC devkit's ``labelcolormap`` (also
    HRNet's ``get_palette``); written here from that description.
    """
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, bit = index, 7
        while value and bit >= 0:
            for channel in range(3):
                palette[index, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
    return palette


@dataclass(frozen=True, eq=False)
class SegClasses:
    """A validated label space. ``palette`` is RGB; ``class_weights`` None = unweighted loss.

    ``flip_pairs`` are classes that swap under a horizontal flip (left/right body parts, as the LIP
    recipe does, spec B.7); empty for scene datasets.
    """

    name: str
    names: tuple[str, ...]
    palette: np.ndarray
    class_weights: np.ndarray | None = None
    flip_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        where = f"class set {self.name!r}"
        count = len(self.names)
        if not 1 <= count <= MAX_CLASSES:
            raise ValueError(f"{where}: expected 1..{MAX_CLASSES} class names (255 is the ignore label), got {count}")
        if len(set(self.names)) != count or not all(isinstance(n, str) and n for n in self.names):
            raise ValueError(f"{where}: class names must be unique non-empty strings, got {list(self.names)}")
        if self.palette.shape != (count, 3) or self.palette.dtype != np.uint8:
            raise ValueError(f"{where}: palette must be ({count}, 3) uint8 RGB, got {self.palette.dtype} {self.palette.shape}")
        if self.class_weights is not None:
            weights = self.class_weights
            if weights.shape != (count,) or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
                raise ValueError(f"{where}: class_weights must be {count} positive numbers, got {weights.tolist()}")
        seen: set[int] = set()
        for pair in self.flip_pairs:
            if len(pair) != 2 or not all(0 <= c < count for c in pair) or pair[0] == pair[1] or seen & set(pair):
                raise ValueError(
                    f"{where}: flip pair {pair} must name two different classes in 0..{count - 1}, each in one pair only"
                )
            seen |= set(pair)
        for array in (self.palette, self.class_weights):
            if array is not None:
                array.setflags(write=False)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def flip_lut(self) -> np.ndarray | None:
        """(256,) uint8 table relabelling a horizontally flipped label map (255 stays); None without pairs."""
        if not self.flip_pairs:
            return None
        lut = np.arange(256, dtype=np.uint8)
        lut[: self.num_classes] = self.flip_index
        return lut

    @property
    def flip_index(self) -> np.ndarray:
        """(K,) permutation: channel k of the logits of a flipped input belongs to class ``flip_index[k]``."""
        index = np.arange(self.num_classes)
        for left, right in self.flip_pairs:
            index[left], index[right] = right, left
        return index

    def __repr__(self) -> str:
        return f"SegClasses(name={self.name!r}, num_classes={self.num_classes})"


def make_seg_classes(
    name: str,
    names: Sequence[str],
    palette: Sequence[Sequence[int]] | np.ndarray | None = None,
    class_weights: Sequence[float] | np.ndarray | None = None,
    flip_pairs: Sequence[Sequence[int | str]] = (),
) -> SegClasses:
    """Build a :class:`SegClasses`; palette defaults to :func:`indexed_palette`, pairs may use class names."""
    names = tuple(str(n) for n in names)
    colours = indexed_palette(len(names)) if palette is None else np.asarray(palette)
    if colours.shape != (len(names), 3) or np.any(colours < 0) or np.any(colours > 255):
        raise ValueError(f"class set {name!r}: palette must be {len(names)} RGB triples in 0..255, got shape {colours.shape}")
    weights = None if class_weights is None else np.asarray(class_weights, dtype=np.float32)
    lookup = {class_name: index for index, class_name in enumerate(names)}
    pairs = []
    for pair in flip_pairs:
        try:
            pairs.append(tuple(lookup[c] if isinstance(c, str) else int(c) for c in pair))
        except KeyError as error:
            raise ValueError(f"class set {name!r}: flip pair {list(pair)} names unknown class {error}") from None
    return SegClasses(name, names, colours.astype(np.uint8), weights, tuple(pairs))  # type: ignore[arg-type]


_KNOWN_FIELDS = {"name", "names", "palette", "class_weights", "flip_pairs"}


def seg_classes_from_mapping(values: Mapping[str, Any]) -> SegClasses:
    """A class set from config (``names`` required; ``name``, ``palette``, ``class_weights``, ``flip_pairs``
    optional); unknown keys are an error, not ignored."""
    unknown = sorted(set(values) - _KNOWN_FIELDS)
    if unknown:
        raise ValueError(f"classes: unknown key(s) {unknown}; known: {sorted(_KNOWN_FIELDS)}")
    if not values.get("names"):
        raise ValueError("classes: 'names' (the list of class names, id order) is required")
    return make_seg_classes(
        str(values.get("name", "custom")),
        list(values["names"]),
        values.get("palette"),
        values.get("class_weights"),
        [list(pair) for pair in values.get("flip_pairs") or ()],
    )


def seg_classes_to_mapping(classes: SegClasses) -> dict[str, Any]:
    """The plain form :func:`seg_classes_from_mapping` reads back (what checkpoints store: builtins only)."""
    return {
        "name": classes.name,
        "names": list(classes.names),
        "palette": classes.palette.tolist(),
        "class_weights": None if classes.class_weights is None else [float(w) for w in classes.class_weights],
        "flip_pairs": [list(pair) for pair in classes.flip_pairs],
    }
