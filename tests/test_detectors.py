"""Person detectors: HOG on real images, FullImage / GivenBoxes behaviour, box validation errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hrnet_train.inference.detectors import (
    FullImage,
    GivenBoxes,
    HogPeopleDetector,
    PersonDetector,
    box_nms,
    boxes_from_poses,
    create_detector,
    validate_boxes,
)


def _contains(box: np.ndarray, point: tuple[float, float]) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def test_hog_finds_yoga_person(shared_data):
    image = cv2.imread(str(shared_data / "demo_images" / "tfjs_pose_yoga.jpg"))
    boxes = HogPeopleDetector()(image)
    assert boxes.shape == (1, 5)
    # the man stands with his torso at x 450..550, y 300..470 (looked up in the image); the box must
    # cover the torso centre and overlap the person's extent x 240..755, y 235..640 by its majority
    box = boxes[0]
    assert _contains(box, (500, 380))
    inter_w = min(box[0] + box[2], 755) - max(box[0], 240)
    inter_h = min(box[1] + box[3], 640) - max(box[1], 235)
    assert inter_w * inter_h > 0.6 * box[2] * box[3]
    assert 0.5 < box[4] < 1.0


def test_hog_finds_several_people_in_street(shared_data):
    capture = cv2.VideoCapture(str(shared_data / "videos" / "mmpose_demo_street.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (540, 960, 3)
    boxes = HogPeopleDetector(hit_threshold=0.5)(frame)
    # body centres of the four nearest pedestrians of frame 0 (looked up in the image)
    people = [(478, 225), (525, 240), (635, 255), (840, 350)]
    found = sum(any(_contains(box, person) for box in boxes) for person in people)
    assert found >= 3, boxes
    assert len(boxes) >= 4
    assert np.all(np.diff(boxes[:, 4]) <= 0)  # best first


def test_hog_small_and_blank_images_give_no_boxes():
    assert HogPeopleDetector()(np.zeros((200, 100, 3), np.uint8)).shape == (0, 5)
    assert HogPeopleDetector()(np.full((100, 60, 3), 127, np.uint8)).shape == (0, 5)  # smaller than the window
    with pytest.raises(ValueError, match="scale_step: expected > 1"):
        HogPeopleDetector(scale_step=1.0)


def test_full_image_and_given_boxes():
    image = np.zeros((48, 64, 3), np.uint8)
    np.testing.assert_array_equal(FullImage()(image), [[0, 0, 64, 48, 1]])
    given = GivenBoxes([[1, 2, 10, 20], [5, 5, 3, 4]])
    np.testing.assert_array_equal(given(image), [[1, 2, 10, 20, 1], [5, 5, 3, 4, 1]])
    np.testing.assert_array_equal(GivenBoxes([1, 2, 3, 4, 0.5])(image), [[1, 2, 3, 4, 0.5]])
    assert GivenBoxes([])(image).shape == (0, 5)
    assert isinstance(create_detector("full_image"), PersonDetector)
    np.testing.assert_array_equal(create_detector("given", boxes=[[0, 0, 1, 1]])(image), [[0, 0, 1, 1, 1]])


def test_bad_boxes_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"boxes\[1\]: width and height must be positive"):
        GivenBoxes([[0, 0, 10, 10], [0, 0, -5, 10]])
    with pytest.raises(ValueError, match=r"expected shape \(N, 4\)"):
        GivenBoxes([[0, 0, 10]])
    with pytest.raises(ValueError, match=r"boxes\[0\]: non-finite"):
        GivenBoxes([[0, np.nan, 10, 10]])
    with pytest.raises(ValueError, match=r"image: expected a uint8 \(H, W, 3\) image array .* got uint8 \(10, 10\)"):
        FullImage()(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="unknown name 'yolo'"):
        create_detector("yolo")


def test_box_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10, 0.5], [1, 1, 10, 10, 0.9], [50, 50, 10, 10, 0.1]])
    np.testing.assert_array_equal(box_nms(boxes, 0.3), [1, 2])


def test_mediapipe_missing_names_the_extra():
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="make mediapipe-venv"):
            create_detector("mediapipe")
    else:
        pytest.skip("mediapipe is installed here; the missing-package message cannot be checked")


@pytest.mark.mediapipe
def test_mediapipe_detector_boxes_the_yoga_person(shared_data):
    """Runs in the mediapipe venv (`make mediapipe-venv`, `.venv-mediapipe/bin/pytest -m mediapipe`)."""
    detector = create_detector("mediapipe")
    try:
        boxes = detector(cv2.imread(str(shared_data / "demo_images" / "tfjs_pose_yoga.jpg")))
    finally:
        detector._landmarker.close()
    assert boxes.shape == (1, 5)
    x, y, w, h, _ = boxes[0]
    # The man spans about x 230-780 (hands to hands), y 240-670 (head to feet) in the 1000x667 image.
    assert 180 < x < 300 and 180 < y < 300 and 450 < w < 620 and 350 < h < 480


def test_boxes_from_poses_stay_on_the_image_when_keypoints_leave_it():
    # every confident keypoint right of a 64x48 frame: the propagated box must still overlap the image
    pose = {"keypoints": np.array([[70.0, 10.0, 0.9], [80.0, 30.0, 0.9]]), "box": [50, 0, 14, 40, 0.8]}
    (box,) = boxes_from_poses([pose], (48, 64))
    assert box[0] < 64 and box[2] >= 1 and box[3] >= 1 and box[4] == 0.8
    validate_boxes(box, "propagated", (48, 64))  # what the estimator checks
