"""Keypoint sets: shipped configs carry the reference numbers; bad configs report every problem at once."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from hrnet_train.keypoints import KeypointSet, load_keypoint_set

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


def test_coco17_matches_reference_numbers() -> None:
    kps = load_keypoint_set("coco17")
    assert kps.num_joints == 17 and kps.names[0] == "nose" and kps.names[16] == "right_ankle"
    assert kps.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert kps.flip_index.tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert kps.upper_body_ids == tuple(range(11)) and kps.lower_body_ids == tuple(range(11, 17))
    np.testing.assert_allclose(kps.sigmas, COCO_SIGMAS, rtol=0, atol=1e-15)
    assert kps.sigmas.dtype == np.float64 and kps.joint_weights.dtype == np.float32
    assert kps.joint_weights.tolist() == [1.0] * 17
    np.testing.assert_array_equal(
        kps.reference_joint_weights, np.array([1, 1, 1, 1, 1, 1, 1, 1.2, 1.2, 1.5, 1.5, 1, 1, 1.2, 1.2, 1.5, 1.5], np.float32)
    )
    assert len(kps.skeleton) == 19 and (15, 13) in kps.skeleton  # COCO skeleton [16, 14] 1-based


def test_lspet14_order_flip_and_sigmas() -> None:
    kps = load_keypoint_set("lspet14")
    assert kps.names == (
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
        "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
    )
    assert kps.flip_index.tolist() == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13]
    assert kps.lower_body_ids == (0, 1, 2, 3, 4, 5) and kps.upper_body_ids == tuple(range(6, 14))
    np.testing.assert_allclose(kps.sigmas, [.089, .087, .107, .107, .087, .089, .062, .072, .079, .079, .072, .062, .079, .107])


def _valid_spec() -> dict:
    return {
        "names": ["a", "left", "right"],
        "flip_pairs": [["left", "right"]],
        "upper_body": ["a"],
        "lower_body": [1, 2],
        "skeleton": [[0, "left"], ["a", 2]],
        "sigmas": [0.1, 0.2, 0.3],
    }


def test_ids_and_names_resolve_identically_and_defaults() -> None:
    by_names = load_keypoint_set(_valid_spec())
    spec = _valid_spec() | {"flip_pairs": [[1, 2]], "upper_body": [0], "skeleton": [[0, 1], [0, 2]]}
    by_ids = load_keypoint_set(OmegaConf.create(spec))
    for field in ("names", "flip_pairs", "upper_body_ids", "lower_body_ids", "skeleton"):
        assert getattr(by_names, field) == getattr(by_ids, field)
    assert by_names.name == "custom" and by_names.joint_weights.tolist() == [1.0, 1.0, 1.0]
    assert by_names.reference_joint_weights is None
    assert load_keypoint_set(by_names) is by_names
    assert isinstance(by_names, KeypointSet)
    with pytest.raises(ValueError):
        by_names.sigmas[0] = 1.0  # read-only, shared safely


def test_every_inconsistency_is_reported_in_one_error() -> None:
    spec = {
        "names": ["a", "b", "b", "c"],
        "flip_pairs": [[0, 7], ["a", "c"], ["c", "b"], ["nope", 1]],
        "upper_body": [0, 1, 9],
        "lower_body": [1, 3],
        "skeleton": [[0, 1, 2]],
        "sigmas": [0.1, 0.2],
        "joint_weights": [1, 1, 1, 1, 1],
        "colour": "red",
    }
    with pytest.raises(ValueError) as info:
        load_keypoint_set(spec)
    message = str(info.value)
    for expected in (
        "unknown field(s) ['colour']",
        "duplicate joint name(s) ['b']",
        "flip_pairs[0][1]: id 7 out of range 0..3",
        "flip_pairs[2]: joint 'c' already paired in flip_pairs[1]",
        "flip_pairs[3][0]: unknown joint name 'nope'",
        "upper_body[2]: id 9 out of range 0..3",
        "joint(s) in both halves ['b']",
        "skeleton[0]: expected a pair",
        "sigmas: expected 4 values (one per name), got 2",
        "joint_weights: expected 4 values (one per name), got 5",
    ):
        assert expected in message, f"missing {expected!r} in:\n{message}"


def test_missing_fields_and_unknown_set() -> None:
    with pytest.raises(ValueError, match=r"missing field\(s\) \['flip_pairs'\]"):
        load_keypoint_set({k: v for k, v in _valid_spec().items() if k != "flip_pairs"})
    with pytest.raises(FileNotFoundError, match="mpii99.*available.*coco17"):
        load_keypoint_set("mpii99")
