"""Segmentation training augmentation of the official recipe (spec B.7), plus optional photometric jitter.

Per sample, in this order (the official ``BaseDataset.gen_sample`` / ``multi_scale_aug`` / ``rand_crop``):

1. multi-scale: s = 0.5 + randint(0, scale_factor) / 10 (inclusive: 17 values 0.5 .. 2.1 for 16); the
   long side becomes int(base_size * s + 0.5), the short side int(short * long_new / long + 0.5)
   (aspect kept); image bilinear, label nearest;
2. pad bottom/right to at least the crop size (image 0 = black before normalisation, label 255) and
   crop at uniform integer offsets (x first, then y, as the official draws them);
3. horizontal flip with probability ``prob_flip``; with flip pairs (LIP's arms/legs/shoes) the label
   ids of each pair are swapped.

Pad-then-crop is done as crop-then-pad (the same pixels, without allocating the padded image), so the
optional photometric jitter (off by default; the official recipe has none) sees only real pixels.
All draws come from the numpy Generator passed in (see ``SegmentationDataset.sample_rng``), in the
official order: scale, crop x, crop y, flip (then the photometric stream).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import cv2
import numpy as np

from hrnet_train.data.augment import PhotometricJitter, bind_crop_augmentation_rng
from hrnet_train.seg_classes import IGNORE_LABEL
from hrnet_train.sizes import InputSize


@dataclass(frozen=True)
class SegAugmentConfig:
    """Defaults: the HRNet W48 Cityscapes yaml (crop 512x1024, BASE_SIZE 2048, SCALE_FACTOR 16, FLIP)."""

    crop_size: InputSize | None = InputSize(512, 1024)  # (height, width); None = no pad/crop
    multi_scale: bool = True
    base_size: int = 2048  # long side at scale 1
    scale_factor: int = 16  # s = 0.5 + randint(0, scale_factor) / 10
    flip: bool = True
    prob_flip: float = 0.5
    photometric: PhotometricJitter | None = None  # None = off (the official recipe)

    def __post_init__(self) -> None:
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", InputSize.parse(self.crop_size, field="seg_augment.crop_size"))
        if self.base_size < 1 or self.scale_factor < 0:
            raise ValueError(
                f"seg_augment: base_size must be >= 1 and scale_factor >= 0, got {self.base_size}, {self.scale_factor}"
            )
        if not 0.0 <= self.prob_flip <= 1.0:
            raise ValueError(f"seg_augment.prob_flip: expected a probability in [0, 1], got {self.prob_flip}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SegAugmentConfig:
        """From a config mapping: ``crop_size`` as "HxW", [H, W] or null; ``photometric`` as false/null,
        true (default jitter) or a mapping of :class:`PhotometricJitter` fields. Unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"seg_augment: unknown key(s) {unknown}; known: {sorted(known)}")
        jitter = values.get("photometric")
        if isinstance(jitter, bool) or jitter is None:
            values["photometric"] = PhotometricJitter() if jitter else None
        else:
            try:
                values["photometric"] = PhotometricJitter(**dict(jitter))
            except TypeError as error:
                raise ValueError(f"seg_augment.photometric: {error}") from None
        return replace(cls(), **values)


def sample_scale(rng: np.random.Generator, scale_factor: int) -> float:
    """Official random scale: 0.5 + randint(0, scale_factor) / 10, both ends included."""
    return 0.5 + int(rng.integers(0, scale_factor + 1)) / 10.0


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(H, W) with the long side ``long_side`` and the aspect kept, rounded like the official code."""
    if height > width:
        return long_side, int(width * long_side / height + 0.5)
    return int(height * long_side / width + 0.5), long_side


def resize_pair(image: np.ndarray, label: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the long side is ``long_side``: image bilinear, label nearest (spec B.7)."""
    height, width = resized_shape(*label.shape, long_side)
    if (height, width) == label.shape:
        return image, label
    return (
        cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR),
        cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST),
    )


def crop_offsets(rng: np.random.Generator, shape: tuple[int, int], crop: InputSize) -> tuple[int, int]:
    """(x, y) of a uniform random crop of the image padded to at least ``crop`` (x drawn first)."""
    padded_h, padded_w = max(shape[0], crop.height), max(shape[1], crop.width)
    x = int(rng.integers(0, padded_w - crop.width + 1))
    y = int(rng.integers(0, padded_h - crop.height + 1))
    return x, y


def pad_bottom_right(array: np.ndarray, size: InputSize, value: int) -> np.ndarray:
    """``array`` padded with ``value`` at the bottom/right to exactly ``size`` (it must not be larger)."""
    height, width = array.shape[:2]
    if (height, width) == tuple(size):
        return array
    out = np.full((size.height, size.width, *array.shape[2:]), value, dtype=array.dtype)
    out[:height, :width] = array
    return out


class SegAugmenter:
    """Applies a :class:`SegAugmentConfig` to (uint8 RGB image, uint8 label) pairs.

    ``flip_lut`` (:attr:`SegClasses.flip_lut`) relabels flipped maps; None leaves labels as they are.
    """

    def __init__(self, config: SegAugmentConfig, flip_lut: np.ndarray | None = None) -> None:
        self.config = config
        self.flip_lut = flip_lut
        self.photometric = None
        if config.photometric is not None:
            import albumentations as A

            self.photometric = A.Compose(config.photometric.steps())

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        config = self.config
        if config.multi_scale:
            scale = sample_scale(rng, config.scale_factor)
            image, label = resize_pair(image, label, int(config.base_size * scale + 0.5))
        if config.crop_size is not None:
            x, y = crop_offsets(rng, label.shape, config.crop_size)
            height, width = config.crop_size
            image, label = image[y : y + height, x : x + width], label[y : y + height, x : x + width]
        flip = config.flip and rng.random() < config.prob_flip
        if self.photometric is not None:
            bind_crop_augmentation_rng(self.photometric, rng)
            image = self.photometric(image=np.ascontiguousarray(image))["image"]
        if config.crop_size is not None:
            image = pad_bottom_right(image, config.crop_size, 0)
            label = pad_bottom_right(label, config.crop_size, IGNORE_LABEL)
        if flip:  # after padding, as the official flips the padded crop
            image, label = image[:, ::-1], label[:, ::-1]
            if self.flip_lut is not None:
                label = self.flip_lut[label]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
