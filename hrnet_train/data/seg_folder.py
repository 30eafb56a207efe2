"""A generic segmentation folder: ``images/<stem>.<jpg|png>`` + ``labels/<stem>.png``, classes from config.

Label PNGs are single-channel 8-bit maps holding class ids 0..K-1 and 255 (ignore); ``label_values``
maps other stored values (e.g. a binary mask saved as 0/255 -> {0: 0, 255: 1}), anything unmapped is an
error naming the file. Every image needs its label and every label its image (a missing pair is an
error listing the stems), so a half-copied dataset cannot train silently on fewer samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hrnet_train.data.seg_augment import SegAugmentConfig
from hrnet_train.data.seg_dataset import LabelImageDataset, SegSample
from hrnet_train.seg_classes import IGNORE_LABEL, SegClasses

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def class_id_lut(classes: SegClasses, label_values: Mapping[int, int] | None = None) -> np.ndarray:
    """(256,) int16 stored value -> class id: identity on 0..K-1 and 255, or exactly ``label_values``."""
    lut = np.full(256, -1, dtype=np.int16)
    if label_values is None:
        lut[: classes.num_classes] = np.arange(classes.num_classes)
        lut[IGNORE_LABEL] = IGNORE_LABEL
        return lut
    for stored, class_id in ((int(k), int(v)) for k, v in label_values.items()):
        if not 0 <= stored <= 255 or not (0 <= class_id < classes.num_classes or class_id == IGNORE_LABEL):
            raise ValueError(
                f"label_values: {stored} -> {class_id} must map a stored value 0..255 to a class id "
                f"0..{classes.num_classes - 1} of {classes.name!r} or {IGNORE_LABEL}"
            )
        lut[stored] = class_id
    return lut


def pair_folder(
    image_dir: str | Path, label_dir: str | Path | None, label_suffix: str = ".png",
    image_suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> list[SegSample]:
    """Samples of ``image_dir`` sorted by stem, each paired with ``label_dir/<stem><label_suffix>``
    (unlabelled when ``label_dir`` is None)."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"segmentation image directory not found: {image_dir}")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in image_suffixes}
    if not images:
        raise FileNotFoundError(f"{image_dir}: no images ({', '.join(image_suffixes)})")
    if label_dir is None:
        return [SegSample(path, None, stem) for stem, path in sorted(images.items())]
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise FileNotFoundError(f"segmentation label directory not found: {label_dir}")
    labels = {p.name[: -len(label_suffix)]: p for p in label_dir.iterdir() if p.name.endswith(label_suffix)}
    problems = []
    for missing, where in ((sorted(set(images) - set(labels)), label_dir), (sorted(set(labels) - set(images)), image_dir)):
        if missing:
            listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            problems.append(f"{len(missing)} stem(s) without a file in {where}: {listed}")
    if problems:
        raise FileNotFoundError(f"segmentation folder pairs incomplete ({image_dir} / {label_dir}): " + "; ".join(problems))
    return [SegSample(images[stem], labels[stem], stem) for stem in sorted(images)]


class FolderSegDataset(LabelImageDataset):
    """Images + label PNGs of one split (see the module docstring)."""

    def __init__(
        self,
        image_dir: str | Path,
        label_dir: str | Path | None,
        classes: SegClasses,
        train: bool,
        augment: SegAugmentConfig | None = None,
        seed: int | None = None,
        label_suffix: str = ".png",
        label_values: Mapping[int, int] | None = None,
    ) -> None:
        samples = pair_folder(image_dir, label_dir, label_suffix)
        description = f"labels of class set {classes.name!r}"
        super().__init__(samples, classes, class_id_lut(classes, label_values), train, augment, seed,
                         source=str(label_dir or image_dir), label_description=description)
