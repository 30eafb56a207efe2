"""The synthetic people as a segmentation dataset (the embedded default for CPU segmentation runs).

Reads the images and mask PNGs that :mod:`hrnet_train.data.synthetic` writes: person masks
(background / person) or body-part masks (background + the 17 ``PARTS``; left/right parts swap under
flip, as LIP's arms and legs do). Without an explicit augmentation, training uses the official recipe
scaled to the image: long side at scale 1 = the image's, crop = the image size.
"""

from __future__ import annotations

import json
from pathlib import Path

from hrnet_train.data.seg_augment import SegAugmentConfig
from hrnet_train.data.seg_folder import FolderSegDataset
from hrnet_train.data.synthetic import MANIFEST_NAME, PARTS, image_dir, mask_dir
from hrnet_train.seg_classes import SegClasses, make_seg_classes
from hrnet_train.sizes import InputSize

SYNTHETIC_PERSON_CLASSES: SegClasses = make_seg_classes(
    "synthetic_person", ["background", "person"], palette=[(0, 0, 0), (220, 20, 60)]
)
SYNTHETIC_PART_CLASSES: SegClasses = make_seg_classes(
    "synthetic_parts",
    ["background", *PARTS],
    flip_pairs=[(name, "right" + name[len("left"):]) for name in PARTS if name.startswith("left_")],
)


def synthetic_image_size(root: str | Path) -> InputSize:
    """The generated image size, from the dataset's manifest."""
    manifest = Path(root) / MANIFEST_NAME
    try:
        return InputSize.parse(json.loads(manifest.read_text())["image_size"], field=f"{manifest} image_size")
    except FileNotFoundError:
        raise FileNotFoundError(f"synthetic dataset manifest not found: {manifest} (generate the dataset first)") from None


def synthetic_seg_dataset(
    root: str | Path,
    split: str,
    train: bool,
    parts: bool = False,
    augment: SegAugmentConfig | None = None,
    seed: int | None = None,
) -> FolderSegDataset:
    """Person (or, with ``parts``, body-part) segmentation samples of ``split`` under ``root``."""
    root = Path(root)
    if augment is None and train:
        size = synthetic_image_size(root)
        augment = SegAugmentConfig(crop_size=size, base_size=max(size))
    classes = SYNTHETIC_PART_CLASSES if parts else SYNTHETIC_PERSON_CLASSES
    return FolderSegDataset(image_dir(root, split), mask_dir(root, split, parts), classes, train, augment, seed)
