"""The segmentation sample contract: image file + label map -> normalised image tensor + int64 label map.

Every segmentation dataset (Cityscapes, a generic image/label folder, COCO person masks, the synthetic
people) is a :class:`SegmentationDataset`: a subclass only says where its samples are and how a label
map is made (:meth:`SegmentationDataset.read_label`); reading, the size check, augmentation, seeding
and normalisation are here once. A sample is::

    {"image": float32 (3, H, W) ImageNet-normalised RGB, "label": int64 (H, W) class ids or 255,
     "index": dataset index, "name": file stem (for writing predictions),
     "height"/"width": the original image size (before augmentation or batch padding)}

Randomness: sample ``index`` of epoch ``e`` draws from ``default_rng([seed, e, index])``, so it is the
same whatever the worker count or order (call :meth:`~SegmentationDataset.set_epoch` before each epoch;
with persistent workers the epoch set in the main process does not reach the workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hrnet_train.data.seg_augment import SegAugmentConfig, SegAugmenter
from hrnet_train.image_io import read_image
from hrnet_train.normalization import IMAGENET_MEAN, IMAGENET_STD, normalize_image
from hrnet_train.seg_classes import IGNORE_LABEL, SegClasses


@dataclass(frozen=True)
class SegSample:
    """One image and (None for unlabelled splits such as a test set) its label file."""

    image_file: Path
    label_file: Path | None
    name: str


class SegmentationDataset(torch.utils.data.Dataset):
    """Base of the segmentation datasets. ``train`` applies ``augment`` (default: the official
    Cityscapes recipe, spec B.7); evaluation samples are the full image, unchanged.

    ``seed=None`` takes ``torch.initial_seed()`` at construction (so ``seed_everything`` controls it).
    """

    def __init__(
        self,
        samples: Sequence[SegSample],
        classes: SegClasses,
        train: bool,
        augment: SegAugmentConfig | None = None,
        seed: int | None = None,
        source: str = "<dataset>",
    ) -> None:
        if not samples:
            raise ValueError(f"{source}: no samples (empty split)")
        self.samples = list(samples)
        self.classes = classes
        self.train = train
        self.source = source
        self.augmenter = SegAugmenter(augment or SegAugmentConfig(), classes.flip_lut) if train else None
        self.seed = int(torch.initial_seed() % 2**63) if seed is None else int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int, max_epochs: int | None = None) -> None:
        """Select the random stream of ``epoch`` (call before each epoch's DataLoader iteration).

        ``max_epochs`` is the epoch seeder's protocol (pose datasets switch augmentation stages with it);
        segmentation augmentation has one stage, so it does not change anything here."""
        self.epoch = int(epoch)

    def sample_rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __len__(self) -> int:
        return len(self.samples)

    def read_image(self, index: int) -> np.ndarray:
        """uint8 (H, W, 3) RGB (the official pipeline reads BGR and flips to RGB, spec B.7)."""
        return read_image(self.samples[index].image_file, color_rgb=True)

    def read_label(self, index: int, image_size: tuple[int, int]) -> np.ndarray:
        """uint8 (H, W) class ids / 255 of sample ``index``; ``image_size`` (H, W) is the decoded image's."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.read_image(index)
        label = self.read_label(index, image.shape[:2])
        if label.shape != image.shape[:2]:
            sample = self.samples[index]
            raise ValueError(
                f"{sample.label_file or self.source}: label map is {label.shape[1]}x{label.shape[0]} (WxH), "
                f"its image {sample.image_file} is {image.shape[1]}x{image.shape[0]}; they must match"
            )
        height, width = label.shape
        if self.augmenter is not None:
            image, label = self.augmenter(image, label, self.sample_rng(index))
        return {
            "image": torch.from_numpy(normalize_image(image)),
            "label": torch.from_numpy(label.astype(np.int64)),
            "index": index,
            "name": self.samples[index].name,
            "height": height,
            "width": width,
        }


class LabelImageDataset(SegmentationDataset):
    """Samples whose labels are single-channel 8-bit PNGs, mapped to class ids by a 256-entry table.

    ``lut[v]`` is the class id (or 255) of stored value v, -1 for a value that must not occur (an error
    naming the file and the values, described by ``label_description``). Unlabelled samples
    (``label_file`` None) get an all-ignore map.
    """

    def __init__(
        self,
        samples: Sequence[SegSample],
        classes: SegClasses,
        lut: np.ndarray,
        train: bool,
        augment: SegAugmentConfig | None = None,
        seed: int | None = None,
        source: str = "<dataset>",
        label_description: str = "class ids",
    ) -> None:
        super().__init__(samples, classes, train, augment, seed, source)
        if lut.shape != (256,):
            raise ValueError(f"{source}: label lookup table must have 256 entries, got shape {lut.shape}")
        self.lut = lut.astype(np.int16)
        self.label_description = label_description

    def label_table(self, index: int) -> tuple[np.ndarray, str]:
        """(lookup table, what its valid values are) for sample ``index`` (subclasses may choose per file)."""
        return self.lut, self.label_description

    def read_label(self, index: int, image_size: tuple[int, int]) -> np.ndarray:
        label_file = self.samples[index].label_file
        if label_file is None:
            return np.full(image_size, IGNORE_LABEL, dtype=np.uint8)
        stored = read_label_png(label_file)
        lut, description = self.label_table(index)
        mapped = lut[stored]
        if mapped.min() < 0:
            bad = np.unique(stored[mapped < 0])
            raise ValueError(
                f"{label_file}: value(s) {bad[:10].tolist()} are not {description} "
                f"(expected values in {_ranges(np.flatnonzero(lut >= 0))})"
            )
        return mapped.astype(np.uint8)


def read_label_png(path: Path) -> np.ndarray:
    """A label PNG as stored: uint8 (H, W). Colour, 16-bit or unreadable files raise naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f"{path}: cannot decode the label image (not a PNG or corrupt)")
    if label.ndim != 2 or label.dtype != np.uint8:
        channels = 1 if label.ndim == 2 else label.shape[2]
        raise ValueError(
            f"{path}: expected a single-channel 8-bit label map, got {channels} channel(s) of {label.dtype} "
            f"(a colour visualisation or an instance-id file?)"
        )
    return label


def _ranges(values: np.ndarray) -> str:
    """``0..18, 255`` for sorted integers."""
    parts, start = [], None
    for position, value in enumerate(values):
        if start is None:
            start = value
        if position + 1 == len(values) or values[position + 1] != value + 1:
            parts.append(f"{start}" if start == value else f"{start}..{value}")
            start = None
    return ", ".join(parts)


def pad_collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples of different sizes: images padded bottom/right with black (the normalised value of
    0, as training pads), labels with 255 so padding counts in no loss or metric.

    Equal-size samples give the default collate's batch. Padding changes what the network sees near
    the border, so exact single-image numbers want batch size 1.
    """
    height = max(s["image"].shape[1] for s in samples)
    width = max(s["image"].shape[2] for s in samples)
    black = torch.from_numpy(-IMAGENET_MEAN / IMAGENET_STD)[:, None, None]
    images = black.expand(len(samples), 3, height, width).clone()
    labels = torch.full((len(samples), height, width), IGNORE_LABEL, dtype=torch.int64)
    for slot, sample in enumerate(samples):
        h, w = sample["label"].shape
        images[slot, :, :h, :w] = sample["image"]
        labels[slot, :h, :w] = sample["label"]
    batch: dict[str, Any] = {"image": images, "label": labels}
    for key in ("index", "height", "width"):
        batch[key] = torch.tensor([s[key] for s in samples], dtype=torch.int64)
    batch["name"] = [s["name"] for s in samples]
    return batch
