"""Tracker: ids stay stable through crossings and short disappearances (synthetic trajectories)."""

from __future__ import annotations

import numpy as np
import pytest

from hrnet_train.inference.tracking import COCO_SIGMAS, Tracker, iou_matrix, oks_matrix

# a standing person's 17 COCO joints relative to the box's top-left corner, box 40 x 100 px
_TEMPLATE = np.array(
    [[20, 8], [22, 6], [18, 6], [25, 8], [15, 8], [30, 25], [10, 25], [34, 45], [6, 45], [36, 62], [4, 62],
     [27, 55], [13, 55], [27, 75], [13, 75], [27, 95], [13, 95]], dtype=np.float64
)


def _pose(x: float, y: float, rng: np.random.Generator | None = None, noise: float = 0.0) -> dict:
    points = _TEMPLATE + [x, y]
    if rng is not None:
        points = points + rng.normal(0.0, noise, points.shape)
    return {"keypoints": np.concatenate([points, np.ones((17, 1))], axis=1), "box": [x, y, 40.0, 100.0]}


def test_crossing_people_keep_their_ids():
    rng = np.random.default_rng(0)
    tracker = Tracker()
    history = []
    for frame in range(40):
        walker_right = _pose(10 + 6 * frame, 50, rng, 1.0)  # left -> right
        # right -> left, 5 px lower: they pass each other between frames 19 and 20, where each one's box
        # overlaps the other's previous box more than its own (a tracker without motion swaps them here)
        walker_left = _pose(247 - 6 * frame, 55, rng, 1.0)
        order = [walker_right, walker_left] if frame % 2 else [walker_left, walker_right]  # detector order varies
        ids = tracker.update(order)
        history.append(ids if frame % 2 else ids[::-1])  # as [walker_right, walker_left]
    assert history[0] == [1, 0]  # frame 0 lists the left-walker first, so it got id 0
    assert all(ids == [1, 0] for ids in history), history


def test_person_missing_for_a_few_frames_keeps_id_and_new_person_gets_new_id():
    tracker = Tracker(max_age=5)
    for frame in range(10):
        assert tracker.update([_pose(100 + 3 * frame, 80), _pose(400, 80)]) == [0, 1]
    for frame in range(10, 14):  # person 0 occluded for 4 frames, still walking
        assert tracker.update([_pose(400, 80)]) == [1]
    assert tracker.active_ids == [0, 1]
    # reappears where constant velocity puts them (3 px/frame)
    assert tracker.update([_pose(100 + 3 * 14, 80), _pose(400, 80)]) == [0, 1]
    # somebody new far away gets the next id
    assert tracker.update([_pose(100 + 3 * 15, 80), _pose(400, 80), _pose(700, 300)]) == [0, 1, 2]


def test_track_dropped_after_max_age():
    tracker = Tracker(max_age=2)
    assert tracker.update([_pose(100, 100)]) == [0]
    for _ in range(3):
        assert tracker.update([]) == []
    assert tracker.active_ids == []
    assert tracker.update([_pose(100, 100)]) == [1]  # ids are never reused


def test_similarity_measures():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10]], dtype=np.float64)
    np.testing.assert_allclose(iou_matrix(boxes, boxes), [[1, 50 / 150], [50 / 150, 1]])
    pose = _pose(0, 0)["keypoints"][None]
    assert oks_matrix(pose, pose, np.array([4000.0]), COCO_SIGMAS, 0.2)[0, 0] == pytest.approx(1.0)
    hidden = pose.copy()
    hidden[0, :, 2] = 0.0
    assert oks_matrix(hidden, pose, np.array([4000.0]), COCO_SIGMAS, 0.2)[0, 0] == 0.0
    shifted = pose.copy()
    shifted[0, :, 0] += 10.0  # d^2 = 100 for every joint
    expected = np.exp(-100.0 / (2 * 4000.0 * (2 * COCO_SIGMAS) ** 2)).mean()
    assert oks_matrix(shifted, pose, np.array([4000.0]), COCO_SIGMAS, 0.2)[0, 0] == pytest.approx(expected)


def test_bad_pose_records_raise():
    tracker = Tracker()
    with pytest.raises(ValueError, match=r"poses\[0\]: expected keys"):
        tracker.update([{"keypoints": np.zeros((17, 3))}])
    with pytest.raises(ValueError, match=r"poses\[0\].keypoints: expected shape \(J, 3\)"):
        tracker.update([{"keypoints": np.zeros((17, 2)), "box": [0, 0, 1, 1]}])
    with pytest.raises(ValueError, match=r"poses\[0\].box"):
        tracker.update([{"keypoints": np.zeros((17, 3)), "box": [0, 0, -1, 1]}])
