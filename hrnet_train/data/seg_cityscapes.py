"""Cityscapes for semantic segmentation: the labelId -> trainId table, file discovery and prediction files.

The 19 evaluated classes, their trainIds, class weights and the ignored ids are HRNet's
``label_mapping`` and Cityscapes ``class_weights`` (spec B.9, B.6); colours are the official
Cityscapes ones (cityscapesScripts ``labels.py``). Samples come from an HRNet list file (``.lst``:
image path, whitespace, labelIds path per line, relative to the dataset root; one column = unlabelled)
or from the standard layout ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` +
``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png``.

Labels are read as labelIds and mapped here, like the official loader; a ``*_labelTrainIds.png`` file
(cityscapesScripts' ``createTrainIdLabelImgs``) is read as trainIds as it stands. The 8-bit labelIds
files hold ids 0..33 (the license plate, id -1, is never drawn into them); any other value is an error.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hrnet_train.data.seg_augment import SegAugmentConfig
from hrnet_train.data.seg_dataset import LabelImageDataset, SegSample
from hrnet_train.seg_classes import IGNORE_LABEL, SegClasses, make_seg_classes

# trainId -> (name, labelId, loss weight, RGB colour).
_TRAIN_CLASSES = (
    ("road", 7, 0.8373, (128, 64, 128)),
    ("sidewalk", 8, 0.918, (244, 35, 232)),
    ("building", 11, 0.866, (70, 70, 70)),
    ("wall", 12, 1.0345, (102, 102, 156)),
    ("fence", 13, 1.0166, (190, 153, 153)),
    ("pole", 17, 0.9969, (153, 153, 153)),
    ("traffic light", 19, 0.9754, (250, 170, 30)),
    ("traffic sign", 20, 1.0489, (220, 220, 0)),
    ("vegetation", 21, 0.8786, (107, 142, 35)),
    ("terrain", 22, 1.0023, (152, 251, 152)),
    ("sky", 23, 0.9539, (70, 130, 180)),
    ("person", 24, 0.9843, (220, 20, 60)),
    ("rider", 25, 1.1116, (255, 0, 0)),
    ("car", 26, 0.9037, (0, 0, 142)),
    ("truck", 27, 1.0865, (0, 0, 70)),
    ("bus", 28, 1.0955, (0, 60, 100)),
    ("train", 31, 1.0865, (0, 80, 100)),
    ("motorcycle", 32, 1.1529, (0, 0, 230)),
    ("bicycle", 33, 1.0507, (119, 11, 32)),
)
NUM_LABEL_IDS = 34  # labelIds 0..33 in gtFine_labelIds.png
CITYSCAPES_CLASSES: SegClasses = make_seg_classes(
    "cityscapes",
    [name for name, _, _, _ in _TRAIN_CLASSES],
    palette=[colour for _, _, _, colour in _TRAIN_CLASSES],
    class_weights=[weight for _, _, weight, _ in _TRAIN_CLASSES],
)
TRAIN_TO_LABEL_ID = np.array([label_id for _, label_id, _, _ in _TRAIN_CLASSES], dtype=np.uint8)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = {"labelIds": "_gtFine_labelIds.png", "labelTrainIds": "_gtFine_labelTrainIds.png"}


def label_id_lut() -> np.ndarray:
    """(256,) int16: labelId -> trainId (255 for ignored ids 0..33), -1 for values that are no labelId."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[:NUM_LABEL_IDS] = IGNORE_LABEL
    lut[TRAIN_TO_LABEL_ID] = np.arange(len(TRAIN_TO_LABEL_ID))
    return lut


def train_id_lut() -> np.ndarray:
    """(256,) int16 for labelTrainIds files: 0..18 and 255 as they are, anything else invalid."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[: len(TRAIN_TO_LABEL_ID)] = np.arange(len(TRAIN_TO_LABEL_ID))
    lut[IGNORE_LABEL] = IGNORE_LABEL
    return lut


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Predicted trainIds (0..18) -> labelIds (uint8), the inverse table the benchmark server expects.

    Raises ValueError for values outside 0..18 (255 has no labelId to go back to).
    """
    train_ids = np.asarray(train_ids)
    if train_ids.size and (train_ids.min() < 0 or train_ids.max() >= len(TRAIN_TO_LABEL_ID)):
        bad = np.unique(train_ids[(train_ids < 0) | (train_ids >= len(TRAIN_TO_LABEL_ID))])
        raise ValueError(f"train_ids_to_label_ids: value(s) {bad[:10].tolist()} are not Cityscapes trainIds 0..18")
    return TRAIN_TO_LABEL_ID[train_ids]


def write_label_id_png(path: str | Path, train_ids: np.ndarray) -> Path:
    """Write a predicted trainId map as an 8-bit labelIds PNG (``<stem>_leftImg8bit.png`` style names are
    the caller's choice); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), train_ids_to_label_ids(train_ids)):
        raise OSError(f"cannot write prediction PNG: {path}")
    return path


def read_list_file(list_file: str | Path, root: str | Path) -> list[SegSample]:
    """Samples of an HRNet ``.lst`` file: ``image [label]`` per line, paths relative to ``root``."""
    list_file, root = Path(list_file), Path(root)
    if not list_file.is_file():
        raise FileNotFoundError(f"Cityscapes list file not found: {list_file}")
    samples = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ValueError(f"{list_file}:{number}: expected 'image_path [label_path]', got {len(fields)} fields")
        image_file = root / fields[0]
        samples.append(SegSample(image_file, root / fields[1] if len(fields) == 2 else None, _stem(image_file)))
    return samples


def discover_samples(root: str | Path, split: str, label_kind: str = "labelIds") -> list[SegSample]:
    """Samples of ``split`` in the standard layout, sorted by path. Without ``gtFine/<split>`` the
    samples are unlabelled; with it, every image needs its label file (missing ones are listed)."""
    if label_kind not in LABEL_SUFFIXES:
        raise ValueError(f"cityscapes label_kind: expected one of {sorted(LABEL_SUFFIXES)}, got {label_kind!r}")
    root = Path(root)
    image_root, label_root = root / "leftImg8bit" / split, root / "gtFine" / split
    images = sorted(image_root.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise FileNotFoundError(f"Cityscapes split {split!r}: no */*{IMAGE_SUFFIX} under {image_root}")
    labelled = label_root.is_dir()
    samples, missing = [], []
    for image_file in images:
        label_file = None
        if labelled:
            label_file = label_root / image_file.parent.name / (_stem(image_file) + LABEL_SUFFIXES[label_kind])
            if not label_file.is_file():
                missing.append(label_file)
        samples.append(SegSample(image_file, label_file, _stem(image_file)))
    if missing:
        listed = ", ".join(str(p) for p in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise FileNotFoundError(f"Cityscapes split {split!r}: {len(missing)} label file(s) missing: {listed}")
    return samples


def _stem(image_file: Path) -> str:
    """``frankfurt_000000_000294`` of ``frankfurt_000000_000294_leftImg8bit.png`` (any other name: its stem)."""
    name = image_file.name
    return name[: -len(IMAGE_SUFFIX)] if name.endswith(IMAGE_SUFFIX) else image_file.stem


class CityscapesDataset(LabelImageDataset):
    """Cityscapes samples of ``split`` from ``list_file`` (relative to ``root`` unless absolute) or the layout."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        train: bool,
        list_file: str | Path | None = None,
        label_kind: str = "labelIds",
        augment: SegAugmentConfig | None = None,
        seed: int | None = None,
    ) -> None:
        root = Path(root)
        if list_file is not None:
            list_path = Path(list_file) if Path(list_file).is_absolute() else root / list_file
            samples, source = read_list_file(list_path, root), str(list_path)
        else:
            samples, source = discover_samples(root, split, label_kind), f"{root} (split {split!r})"
        super().__init__(samples, CITYSCAPES_CLASSES, label_id_lut(), train, augment, seed, source,
                         label_description="Cityscapes labelIds")
        self._train_id_lut = train_id_lut()

    def label_table(self, index: int) -> tuple[np.ndarray, str]:
        """labelTrainIds files are read as trainIds, every other label file as labelIds (the official rule)."""
        label_file = self.samples[index].label_file
        if label_file is not None and label_file.name.endswith(LABEL_SUFFIXES["labelTrainIds"]):
            return self._train_id_lut, "Cityscapes labelTrainIds"
        return self.lut, self.label_description
