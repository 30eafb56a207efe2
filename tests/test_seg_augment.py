"""Segmentation augmentation (spec B.7): scale set, resize rounding, pad/crop, flip with label swaps,
photometric option, and reproducibility of samples from (seed, epoch, index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet_train.data.augment import PhotometricJitter
from hrnet_train.data.seg_augment import SegAugmentConfig, SegAugmenter, resized_shape, sample_scale
from hrnet_train.data.seg_synthetic import SYNTHETIC_PART_CLASSES, synthetic_seg_dataset
from hrnet_train.data.synthetic import SyntheticConfig, generate_dataset
from hrnet_train.seg_classes import IGNORE_LABEL
from hrnet_train.sizes import InputSize


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seg_synthetic")
    return generate_dataset(root, SyntheticConfig(num_train=6, num_val=2, seed=1, image_size=(128, 160)))


def _image_and_label(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose pixels encode their position, and a label of horizontal bands 0..4."""
    ys, xs = np.mgrid[:height, :width]
    image = np.stack([ys % 256, xs % 256, (ys + xs) % 256], axis=-1).astype(np.uint8)
    return image, (ys * 5 // height).astype(np.uint8)


def test_scales_are_the_17_official_values() -> None:
    rng = np.random.default_rng(0)
    drawn = {round(sample_scale(rng, 16), 6) for _ in range(2000)}
    assert drawn == {round(0.5 + k / 10, 6) for k in range(17)}
    assert {round(sample_scale(rng, 11), 6) for _ in range(2000)} == {round(0.5 + k / 10, 6) for k in range(12)}


def test_resized_shape_keeps_aspect_with_official_rounding() -> None:
    assert resized_shape(1024, 2048, int(2048 * 0.5 + 0.5)) == (512, 1024)
    assert resized_shape(1024, 2048, int(2048 * 1.7 + 0.5)) == (1741, 3482)  # 3481.6 + 0.5 -> 3482, 1024*3482/2048
    assert resized_shape(375, 500, 700) == (525, 700)  # 525.0 exactly
    assert resized_shape(500, 333, 700) == (700, 466)  # 466.2 + 0.5 -> 466 (tall image: height is the long side)


def test_small_image_is_padded_bottom_right_with_black_and_ignore() -> None:
    image, label = _image_and_label(100, 150)
    config = SegAugmentConfig(crop_size=(128, 256), multi_scale=False, flip=False)
    out_image, out_label = SegAugmenter(config)(image, label, np.random.default_rng(0))
    assert out_image.shape == (128, 256, 3) and out_label.shape == (128, 256)
    np.testing.assert_array_equal(out_image[:100, :150], image)  # smaller in both sides: offset (0, 0)
    np.testing.assert_array_equal(out_label[:100, :150], label)
    assert np.all(out_image[100:] == 0) and np.all(out_image[:, 150:] == 0)
    assert np.all(out_label[100:] == IGNORE_LABEL) and np.all(out_label[:, 150:] == IGNORE_LABEL)


def test_crop_then_pad_equals_the_official_pad_then_crop() -> None:
    image, label = _image_and_label(90, 300)
    crop = InputSize(128, 200)
    config = SegAugmentConfig(crop_size=crop, multi_scale=False, flip=False)
    for seed in range(20):
        out_image, out_label = SegAugmenter(config)(image, label, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)  # the official: pad to >= crop, x = randint, y = randint, slice
        padded_image = np.zeros((128, 300, 3), np.uint8)
        padded_image[:90] = image
        padded_label = np.full((128, 300), IGNORE_LABEL, np.uint8)
        padded_label[:90] = label
        x, y = int(rng.integers(0, 300 - 200 + 1)), int(rng.integers(0, 1))
        np.testing.assert_array_equal(out_image, padded_image[y : y + 128, x : x + 200])
        np.testing.assert_array_equal(out_label, padded_label[y : y + 128, x : x + 200])


def test_flip_mirrors_the_padded_crop_and_swaps_label_pairs() -> None:
    image, label = _image_and_label(60, 80)
    label[:, :40] = 6  # left_upper_arm = PARTS index 5 -> class 6
    label[:, 40:] = 7  # right_upper_arm -> class 7
    config = SegAugmentConfig(crop_size=(64, 96), multi_scale=False, prob_flip=1.0)
    out_image, out_label = SegAugmenter(config, SYNTHETIC_PART_CLASSES.flip_lut)(image, label, np.random.default_rng(0))
    assert np.all(out_label[:, :16] == IGNORE_LABEL) and np.all(out_image[:, :16] == 0)  # padding ends up left
    np.testing.assert_array_equal(out_image[:60, 16:], image[:, ::-1])
    assert np.all(out_label[:60, 16:56] == 6) and np.all(out_label[:60, 56:] == 7)  # mirrored and swapped: 7 6 -> 6 7
    assert np.all(out_label[60:] == IGNORE_LABEL)


def test_multi_scale_label_keeps_its_values() -> None:
    image, label = _image_and_label(64, 96)
    config = SegAugmentConfig(crop_size=None, base_size=96, flip=False)
    sizes = set()
    for seed in range(30):
        out_image, out_label = SegAugmenter(config)(image, label, np.random.default_rng(seed))
        assert set(np.unique(out_label)) <= set(np.unique(label))  # nearest: no mixed labels
        assert out_image.shape[:2] == out_label.shape and max(out_label.shape) in {int(96 * (0.5 + k / 10) + 0.5) for k in range(17)}
        sizes.add(out_label.shape)
    assert len(sizes) > 5


def test_samples_reproduce_from_seed_epoch_and_index(synthetic_root: Path) -> None:
    dataset = synthetic_seg_dataset(synthetic_root, "train", train=True, seed=7)
    assert dataset.augmenter.config.crop_size == (128, 160) and dataset.augmenter.config.base_size == 160
    first = [dataset[i] for i in (3, 1)]
    again = [dataset[i] for i in (1, 3)][::-1]  # other order: same samples
    for a, b in zip(first, again):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    same_seed = synthetic_seg_dataset(synthetic_root, "train", train=True, seed=7)[3]
    assert torch.equal(same_seed["image"], first[0]["image"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[3]["image"], first[0]["image"])
    other_seed = synthetic_seg_dataset(synthetic_root, "train", train=True, seed=8)[3]
    assert not torch.equal(other_seed["image"], first[0]["image"])
    assert first[0]["label"].dtype == torch.int64 and first[0]["image"].shape == (3, 128, 160)


def test_photometric_option_changes_pixels_reproducibly(synthetic_root: Path) -> None:
    config = SegAugmentConfig.from_mapping(
        {"crop_size": "128x160", "base_size": 160, "photometric": {"prob_color": 1.0, "prob_blur": 1.0}}
    )
    plain = synthetic_seg_dataset(synthetic_root, "train", train=True, seed=3,
                                  augment=SegAugmentConfig(crop_size=(128, 160), base_size=160))[2]
    jittered = [synthetic_seg_dataset(synthetic_root, "train", train=True, seed=3, augment=config)[2] for _ in range(2)]
    assert torch.equal(jittered[0]["image"], jittered[1]["image"])
    assert torch.equal(jittered[0]["label"], plain["label"])  # geometry draws come first, unchanged
    assert not torch.equal(jittered[0]["image"], plain["image"])


def test_config_from_mapping_and_errors() -> None:
    config = SegAugmentConfig.from_mapping({"crop_size": "64x128", "scale_factor": 11})
    assert config.crop_size == InputSize(64, 128) and config.scale_factor == 11 and config.base_size == 2048
    assert SegAugmentConfig.from_mapping({"crop_size": None}).crop_size is None
    assert SegAugmentConfig.from_mapping({"photometric": True}).photometric == PhotometricJitter()
    assert SegAugmentConfig.from_mapping({"photometric": False}).photometric is None
    with pytest.raises(ValueError, match="seg_augment.photometric: .*'saturation'"):
        SegAugmentConfig.from_mapping({"photometric": {"saturation": 0.1}})
    with pytest.raises(ValueError, match="photometric: factors must be >= 0"):
        PhotometricJitter(prob_blur=2.0)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['scale'\]"):
        SegAugmentConfig.from_mapping({"scale": 2})
    with pytest.raises(ValueError, match="prob_flip"):
        SegAugmentConfig(prob_flip=1.5)
    with pytest.raises(ValueError, match="crop_size"):
        SegAugmentConfig(crop_size="512by1024")
