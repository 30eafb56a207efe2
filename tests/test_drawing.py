"""draw_poses: pixel-level checks of joints, limbs, thresholds, left/right colours and boxes."""

from __future__ import annotations

import numpy as np
import pytest

from hrnet_train.drawing import BOX_COLOR, CENTER_COLOR, LEFT_COLOR, RIGHT_COLOR, draw_poses

SKELETON = ((0, 1), (1, 2), (0, 2))
FLIP_PAIRS = ((1, 2),)  # joint 1 left, joint 2 right, joint 0 centre


def _pose(scores: tuple[float, float, float]) -> dict:
    keypoints = np.array([[50.0, 20.0, scores[0]], [20.0, 80.0, scores[1]], [80.0, 80.0, scores[2]]])
    return {"keypoints": keypoints, "box": [10.0, 10.0, 80.0, 80.0], "track_id": 3}


def test_joints_coloured_by_side_and_input_untouched():
    image = np.zeros((100, 100, 3), np.uint8)
    out = draw_poses(image, [_pose((1.0, 1.0, 1.0))], SKELETON, FLIP_PAIRS, threshold=0.3, radius=4)
    assert image.max() == 0  # drawing works on a copy
    assert tuple(out[20, 50]) == CENTER_COLOR
    assert tuple(out[80, 20]) == LEFT_COLOR
    assert tuple(out[80, 80]) == RIGHT_COLOR
    assert tuple(out[10, 40]) == BOX_COLOR  # top edge of the box
    assert tuple(out[80, 50]) == CENTER_COLOR  # limb 1-2 joins a left and a right joint: centre colour
    # full-score joint: radius 4 exactly
    assert tuple(out[20, 54]) == CENTER_COLOR and tuple(out[20, 56]) == (0, 0, 0)


def test_below_threshold_joint_and_its_limbs_not_drawn():
    image = np.zeros((100, 100, 3), np.uint8)
    out = draw_poses(image, [_pose((1.0, 0.1, 1.0))], SKELETON, FLIP_PAIRS, threshold=0.3, draw_boxes=False)
    assert tuple(out[80, 20]) == (0, 0, 0)  # joint 1 below threshold
    assert tuple(out[50, 35]) == (0, 0, 0)  # midpoint of limb 0-1
    assert tuple(out[80, 50]) == (0, 0, 0)  # midpoint of limb 1-2
    assert tuple(out[50, 65]) == CENTER_COLOR  # limb 0-2 (centre to right joint) is drawn
    assert out[10, 40].max() == 0  # no box


def test_joint_opacity_and_size_follow_score():
    image = np.full((100, 100, 3), 100, np.uint8)
    out = draw_poses(image, [_pose((0.5, 1.0, 1.0))], (), FLIP_PAIRS, threshold=0.3, radius=4, draw_boxes=False)
    # score 0.5: radius round(4 * 0.75) = 3, colour blended half-way with the grey background
    expected = np.round(0.5 * np.array(CENTER_COLOR) + 0.5 * 100)
    np.testing.assert_allclose(out[20, 50], expected, atol=1)
    np.testing.assert_allclose(out[20, 53], expected, atol=1)
    assert tuple(out[20, 54]) == (100, 100, 100)


def test_bad_inputs_raise():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match=r"poses\[0\].keypoints"):
        draw_poses(image, [{"keypoints": np.zeros((3, 2))}], SKELETON)
    with pytest.raises(ValueError, match=r"skeleton: limb \(0, 5\)"):
        draw_poses(image, [_pose((1.0, 1.0, 1.0))], ((0, 5),))
    with pytest.raises(ValueError, match="image: expected uint8 BGR"):
        draw_poses(np.zeros((10, 10), np.uint8), [], SKELETON)
