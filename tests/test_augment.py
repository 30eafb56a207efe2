"""Reference augmentation: defaults, draw order, half-body box, flip of joints, optional albumentations."""

from __future__ import annotations

import numpy as np
import pytest

from hrnet_train.data.augment import (
    AugmentConfig,
    bind_crop_augmentation_rng,
    build_crop_augmentation,
    flip_joints,
    half_body_box,
    sample_augmentation,
)
from hrnet_train.keypoints import load_keypoint_set

COCO17 = load_keypoint_set("coco17")
ASPECT = 192 / 256


def standing_person() -> tuple[np.ndarray, np.ndarray]:
    """17 labelled COCO joints of an upright person, head at the top."""
    joints = np.array(
        [[100, 50], [95, 45], [105, 45], [90, 48], [110, 48], [80, 80], [120, 80], [75, 110], [125, 110],
         [72, 140], [128, 140], [88, 150], [112, 150], [86, 200], [114, 200], [85, 250], [115, 250]],
        dtype=np.float64,
    )
    return joints, np.ones(17)


def test_defaults_are_the_hrnet_coco_yaml_values() -> None:
    config = AugmentConfig()
    assert (config.scale_factor, config.rot_factor, config.prob_rotation) == (0.35, 45.0, 0.6)
    assert (config.flip, config.prob_flip, config.prob_half_body, config.num_joints_half_body) == (True, 0.5, 0.3, 8)
    assert (config.half_body_padding, config.half_body_fair_choice, config.photometric, config.occlusion) == (1.5, False, False, False)
    assert AugmentConfig.from_mapping({"rot_factor": 30}).rot_factor == 30
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rotation'\]"):
        AugmentConfig.from_mapping({"rotation": 30})
    with pytest.raises(ValueError, match="prob_flip: expected a probability"):
        AugmentConfig(prob_flip=1.5)


def test_draw_order_matches_reference() -> None:
    """Half-body off: randn (scale), random (rotate?), randn (angle), random (flip?) from one stream."""
    joints, visible = standing_person()
    config = AugmentConfig(prob_half_body=0.0)
    for seed in range(20):
        params = sample_augmentation(
            np.random.default_rng(seed), joints, visible, np.array([100.0, 150.0]), np.array([1.0, 4 / 3]), COCO17, config, ASPECT
        )
        replay = np.random.default_rng(seed)
        replay.random()  # the half-body coin is drawn (17 > 8 joints) even with probability 0
        factor = np.clip(replay.standard_normal() * 0.35 + 1, 0.65, 1.35)
        rotation = float(np.clip(replay.standard_normal() * 45, -90, 90)) if replay.random() <= 0.6 else 0.0
        flip = replay.random() <= 0.5
        assert np.array_equal(params.scale, np.array([1.0, 4 / 3]) * factor)
        assert (params.rotation, params.flip) == (rotation, flip)


def test_half_body_box_reference_formula() -> None:
    joints, visible = standing_person()
    center, scale = half_body_box(joints, visible, COCO17, ASPECT, 1.5, choose_upper=True)
    upper = joints[:11].astype(np.float32)
    assert np.array_equal(center, upper.mean(axis=0).astype(np.float64))
    width, height = upper.max(axis=0) - upper.min(axis=0)  # 56 x 95 -> widened to 95 * 0.75
    assert np.array_equal(scale, (np.array([height * np.float32(ASPECT) / 200, height / 200], dtype=np.float32) * 1.5).astype(np.float64))
    center_low, _ = half_body_box(joints, visible, COCO17, ASPECT, 1.5, choose_upper=False)
    assert np.allclose(center_low, joints[11:].mean(axis=0))
    # Only 2 labelled joints: no half-body box.
    sparse = np.zeros(17)
    sparse[[0, 15]] = 1
    assert half_body_box(joints, sparse, COCO17, ASPECT, 1.5, choose_upper=True) is None


def test_half_body_upper_choice_probability() -> None:
    """randn() < 0.5 picks the upper body ~69% of the time; the fair flag makes it 50%."""
    joints, visible = standing_person()
    center, scale = np.array([100.0, 150.0]), np.array([1.0, 4 / 3])
    upper_center_y = joints[:11, 1].mean()

    def upper_share(fair: bool) -> float:
        config = AugmentConfig(prob_half_body=1.0, half_body_fair_choice=fair)
        rng = np.random.default_rng(0)
        picks = [sample_augmentation(rng, joints, visible, center, scale, COCO17, config, ASPECT).center[1] == np.float32(upper_center_y) for _ in range(4000)]
        return float(np.mean(picks))

    assert upper_share(False) == pytest.approx(0.6915, abs=0.025)  # Phi(0.5)
    assert upper_share(True) == pytest.approx(0.5, abs=0.025)


def test_scale_and_rotation_ranges() -> None:
    joints, visible = standing_person()
    rng = np.random.default_rng(1)
    draws = [sample_augmentation(rng, joints, visible, np.zeros(2), np.ones(2), COCO17, AugmentConfig(prob_half_body=0.0), ASPECT) for _ in range(3000)]
    factors = np.array([d.scale[0] for d in draws])
    rotations = np.array([d.rotation for d in draws])
    assert factors.min() == pytest.approx(0.65) and factors.max() == pytest.approx(1.35)
    assert rotations.min() == -90.0 and rotations.max() == 90.0
    assert np.mean(rotations == 0.0) == pytest.approx(0.4, abs=0.03)
    assert np.mean([d.flip for d in draws]) == pytest.approx(0.5, abs=0.03)


def test_flip_joints_mirrors_swaps_and_zeroes_unlabelled() -> None:
    joints, visible = standing_person()
    visible[3] = 0  # left ear unlabelled
    flipped, flipped_visible = flip_joints(joints, visible, 640, COCO17)
    assert np.array_equal(flipped[5], [639 - 120, 80])  # new left shoulder = mirrored right shoulder
    assert np.array_equal(flipped[0], [639 - 100, 50])
    assert flipped_visible[4] == 0 and np.array_equal(flipped[4], [0, 0])  # unlabelled left ear became right ear
    assert flipped_visible[3] == 1 and np.array_equal(flipped[3], [639 - 110, 48])


def test_crop_augmentation_optional_and_seeded() -> None:
    assert build_crop_augmentation(AugmentConfig()) is None
    pipeline = build_crop_augmentation(AugmentConfig(occlusion=True, prob_occlusion=1.0, photometric=True))
    crop = np.full((256, 192, 3), 200, dtype=np.uint8)
    outputs = []
    for _ in range(2):
        bind_crop_augmentation_rng(pipeline, np.random.default_rng(7))
        outputs.append(pipeline(image=crop)["image"])
    assert np.array_equal(outputs[0], outputs[1])
    assert (outputs[0] == 0).all(axis=2).sum() > 0  # at least one black hole


# Variance of a standard normal truncated to [-1, 1]: 1 - 2 phi(1) / (2 Phi(1) - 1) = 0.29116.
TRUNCATED_SD = 0.29116 ** 0.5


def _draws(config: AugmentConfig, n: int = 4000, seed: int = 1) -> list:
    joints, visible = standing_person()
    rng = np.random.default_rng(seed)
    return [sample_augmentation(rng, joints, visible, np.array([100.0, 150.0]), np.ones(2), COCO17, config, ASPECT) for _ in range(n)]


def test_rtmpose_scale_range_and_rotation_are_truncated_normals() -> None:
    draws = _draws(AugmentConfig(prob_half_body=0.0, scale_range=(0.6, 1.4), max_rotation=80.0))
    factors = np.array([d.scale[0] for d in draws])
    rotations = np.array([d.rotation for d in draws])
    # mean 1, sd 0.4 x 0.5396, inside [0.6, 1.4] and reaching both ends (resampled, not clipped: no mass at the bounds)
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and factors.min() < 0.62 and factors.max() > 1.38
    assert factors.mean() == pytest.approx(1.0, abs=0.01) and factors.std() == pytest.approx(0.4 * TRUNCATED_SD, abs=0.01)
    assert np.mean(factors == 0.6) == 0.0
    turned = rotations[rotations != 0.0]
    assert len(turned) / len(rotations) == pytest.approx(0.6, abs=0.03)  # prob_rotation as the reference
    assert np.abs(turned).max() <= 80.0 and turned.std() == pytest.approx(80 * TRUNCATED_SD, abs=2.0)


def test_box_jitter_enlarges_and_shifts_the_box() -> None:
    config = AugmentConfig(prob_half_body=0.0, scale_factor=0.0, prob_rotation=0.0, flip=False,
                           prob_box_jitter=0.5, box_jitter_scale=(1.5, 2.0), box_jitter_shift=0.1)
    draws = _draws(config)
    ratio = np.array([d.scale[0] for d in draws])
    shift = np.array([d.center - [100.0, 150.0] for d in draws])
    jittered = ratio > 1.0
    assert np.mean(jittered) == pytest.approx(0.5, abs=0.03)
    assert ratio[jittered].min() >= 1.5 and ratio[jittered].max() <= 2.0 and ratio[jittered].mean() == pytest.approx(1.75, abs=0.01)
    assert (shift[~jittered] == 0).all()
    # centre moves by U(-0.1, 0.1) x the enlarged box (200 x scale px) on each axis
    limit = 0.1 * 200 * ratio[jittered]
    assert (np.abs(shift[jittered]) <= limit[:, None] + 1e-9).all()
    assert np.abs(shift[jittered] / limit[:, None]).max() > 0.99


def test_new_options_are_reproducible_by_seed_and_off_by_default() -> None:
    strong = AugmentConfig(scale_range=(0.6, 1.4), max_rotation=80.0, prob_box_jitter=0.3,
                           box_jitter_scale=(1.0, 1.6), box_jitter_shift=0.16)
    first, again, other = _draws(strong, 50, seed=5), _draws(strong, 50, seed=5), _draws(strong, 50, seed=6)
    key = lambda draws: [(tuple(d.center), tuple(d.scale), d.rotation, d.flip) for d in draws]  # noqa: E731
    assert key(first) == key(again) and key(first) != key(other)
    defaults = AugmentConfig()
    assert (defaults.scale_range, defaults.max_rotation, defaults.prob_box_jitter, defaults.stage2_epochs) == (None, None, 0.0, 0)
    assert (defaults.min_holes, defaults.min_hole_fraction) == (1, 0.05)  # the previous fixed CoarseDropout bounds


def test_coarse_dropout_hole_sizes_follow_the_config() -> None:
    """RTMPose's dropout: one hole of 20-40 % of each side on every crop."""
    pipeline = build_crop_augmentation(AugmentConfig(occlusion=True, prob_occlusion=1.0, min_holes=1, max_holes=1,
                                                     min_hole_fraction=0.2, max_hole_fraction=0.4))
    bind_crop_augmentation_rng(pipeline, np.random.default_rng(3))
    crop = np.full((192, 160, 3), 255, dtype=np.uint8)
    for _ in range(20):
        holes = (pipeline(image=crop)["image"] == 0).all(axis=2)
        rows, cols = np.flatnonzero(holes.any(axis=1)), np.flatnonzero(holes.any(axis=0))
        assert holes.sum() == len(rows) * len(cols)  # one rectangle
        assert 0.2 * 192 - 1 <= len(rows) <= 0.4 * 192 + 1 and 0.2 * 160 - 1 <= len(cols) <= 0.4 * 160 + 1


def test_two_stages_switch_for_the_last_epochs() -> None:
    config = AugmentConfig.from_mapping({"max_rotation": 80.0, "prob_occlusion": 1.0, "stage2_epochs": 2,
                                         "stage2": {"max_rotation": 60.0, "prob_occlusion": 0.5, "scale_range": [0.75, 1.25]}})
    stages = [config.for_epoch(epoch, 10) for epoch in range(10)]
    assert all(s is config for s in stages[:8])
    assert [(s.max_rotation, s.prob_occlusion, s.scale_range, s.stage2_epochs) for s in stages[8:]] == [(60.0, 0.5, (0.75, 1.25), 0)] * 2
    assert config.for_epoch(9, None) is config and config.for_epoch(9, -1) is config  # run length unknown: stage 1
    with pytest.raises(ValueError, match=r"stage2: unknown key\(s\) \['rotation'\]"):
        AugmentConfig.from_mapping({"stage2_epochs": 1, "stage2": {"rotation": 3}})
    with pytest.raises(ValueError, match=r"stage2: \['stage2_epochs'\] cannot be set inside stage2"):
        AugmentConfig(stage2={"stage2_epochs": 3})
    with pytest.raises(ValueError, match="prob_occlusion: expected a probability"):
        AugmentConfig(stage2={"prob_occlusion": 2.0})  # stage-2 values are checked up front
    with pytest.raises(ValueError, match="scale_range: expected \\[low, high\\]"):
        AugmentConfig(scale_range=(1.4, 0.6))
