"""Person detectors that feed the top-down pose estimator with boxes.

Every detector is a callable ``detector(image_bgr) -> (N, 5) float64 [x, y, w, h, score]`` (COCO xywh,
image pixels), so the estimator never depends on how boxes were found:

- ``GivenBoxes``: the user already knows the boxes (or reads them from a detection file).
- ``FullImage``: one person filling the frame (cropped photos, LSPET-style images).
- ``HogPeopleDetector``: Dalal & Triggs HOG + linear SVM (CVPR 2005) through ``cv2.HOGDescriptor`` with
  OpenCV's built-in INRIA people SVM. Works offline with no download.
- ``MediaPipePoseDetector``: boxes around MediaPipe's BlazePose landmarks (optional ``mediapipe`` extra).
- ``HaarFaceDetector``: FACE boxes for the face landmark models, Viola & Jones (CVPR 2001) through
  ``cv2.CascadeClassifier`` with the frontal-face cascade OpenCV ships in ``cv2.data``. Works offline.

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from hrnet_train.geometry import box_problems
from hrnet_train.image_io import check_image_array

BoxArray = np.ndarray  # (N, 5) float64 [x, y, w, h, score]

MEDIAPIPE_MODEL = Path("models") / "mediapipe" / "pose_landmarker_full_from_legacy.task"  # under shared data


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that turns a BGR uint8 image into person boxes ``(N, 5) [x, y, w, h, score]``."""

    def __call__(self, image_bgr: np.ndarray) -> BoxArray: ...


def validate_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]], field: str = "boxes", image_size: tuple[int, int] | None = None
) -> BoxArray:
    """Return boxes as ``(N, 5)`` float64; 4-column input gets score 1.

    Raises ValueError naming ``field`` and the offending row for a wrong shape, values that are not
    numbers, and what :func:`~hrnet_train.geometry.box_problems` refuses (non-finite, width/height <= 0,
    and with ``image_size`` (height, width) a box wholly outside the image), because a silently-empty
    or off-image crop gives keypoints that look fine and mean nothing.
    """
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected numbers [x, y, w, h(, score)] per box, got {boxes!r}") from None
    if array.size == 0:
        return np.zeros((0, 5), dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise ValueError(f"{field}: expected shape (N, 4) [x, y, w, h] or (N, 5) [x, y, w, h, score], got {array.shape}")
    problems = box_problems(array, image_size)
    if problems:
        row, problem = next(iter(problems.items()))
        raise ValueError(f"{field}[{row}]: {problem}")
    if array.shape[1] == 4:
        array = np.concatenate([array, np.ones((len(array), 1))], axis=1)
    return array


class GivenBoxes:
    """Returns the same user-supplied boxes for every image (a fixed camera, or boxes from a file)."""

    def __init__(self, boxes: np.ndarray | Sequence[Sequence[float]]):
        self.boxes = validate_boxes(boxes)

    def __call__(self, image_bgr: np.ndarray) -> BoxArray:
        check_image_array(image_bgr, "image")
        return self.boxes.copy()


class FullImage:
    """One person whose box is the whole frame: for images already cropped around a single person."""

    def __call__(self, image_bgr: np.ndarray) -> BoxArray:
        check_image_array(image_bgr, "image")
        height, width = image_bgr.shape[:2]
        return np.array([[0.0, 0.0, float(width), float(height), 1.0]])


def _padded_box(points: np.ndarray, padding: float, image_size: tuple[int, int]) -> list[float]:
    """xywh around (N, 2) ``points`` grown by ``padding`` x its width/height on each side, on the image
    ((height, width)): it starts inside it and is at least 1 px wide and high, also when every point
    lies beyond the border or on one line, so the estimator's box check never sees it empty or off-image."""
    height, width = image_size
    low, high = points.min(axis=0), points.max(axis=0)
    pad = (high - low) * padding
    low = np.clip(low - pad, 0.0, [width - 1.0, height - 1.0])
    size = np.maximum(np.minimum(high + pad, [width, height]) - low, 1.0)
    return [float(low[0]), float(low[1]), float(size[0]), float(size[1])]


def boxes_from_poses(
    poses: Sequence[Mapping], image_size: tuple[int, int], min_keypoint_score: float = 0.3, padding: float = 0.1
) -> BoxArray:
    """Boxes for the next video frame from this frame's poses, so the detector can skip frames.

    Each box is the extent of the pose's keypoints scoring at least ``min_keypoint_score``, grown by
    ``padding`` x its width/height on every side (keypoints stop at joints, the body goes a bit further)
    and clipped to the image (``image_size`` = (height, width)); it keeps the pose's box score, which
    would otherwise decay frame after frame through rescoring. A pose with fewer than two confident
    keypoints keeps its previous box.
    """
    boxes = []
    for pose in poses:
        keypoints = np.asarray(pose["keypoints"], dtype=np.float64)
        previous = np.asarray(pose["box"], dtype=np.float64).ravel()
        confident = keypoints[keypoints[:, 2] >= min_keypoint_score, :2]
        if len(confident) < 2:
            boxes.append(previous[:5])
            continue
        boxes.append([*_padded_box(confident, padding, image_size), previous[4] if previous.size > 4 else 1.0])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 5)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xywh box with each of ``boxes`` (M, >=4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y2 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def box_nms(boxes: BoxArray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on xywh+score rows; returns kept row indices, best first."""
    order = np.argsort(-boxes[:, 4], kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


_HOG_WINDOW = (128, 64)  # (height, width) of OpenCV's default people window
_HOG_STRIDE = (8, 8)  # window stride = one cell, the finest grid the default descriptor allows


class HogPeopleDetector:
    """Multi-scale HOG people detector (OpenCV's default INRIA people SVM) with box NMS.

    OpenCV's own grouping (``groupThreshold``) is switched off: it drops isolated hits and returns
    averaged boxes, while greedy NMS keeps the best window of each person and its margin as score.
    ``scale_step`` is the image pyramid ratio (OpenCV's default 1.05 is thorough; 1.1 halves the work),
    ``upscale`` enlarges the image first so people shorter than the 128-px window can be found,
    ``max_side`` shrinks large frames for speed. ``score`` is the logistic of the SVM margin: monotonic in
    the margin, in (0, 1) like other detectors' scores, but not a calibrated probability.
    """

    def __init__(
        self,
        hit_threshold: float = 0.0,
        scale_step: float = 1.1,
        upscale: float = 1.0,
        max_side: int | None = 1024,
        nms_iou: float = 0.3,
        max_detections: int = 50,
    ):
        if scale_step <= 1.0:
            raise ValueError(f"scale_step: expected > 1, got {scale_step}")
        if upscale <= 0:
            raise ValueError(f"upscale: expected > 0, got {upscale}")
        self.hit_threshold = hit_threshold
        self.scale_step = scale_step
        self.upscale = upscale
        self.max_side = max_side
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        if not hasattr(cv2, "HOGDescriptor"):  # OpenCV 5 moved HOG to opencv_contrib
            raise ImportError(f"HogPeopleDetector needs cv2.HOGDescriptor, which OpenCV {cv2.__version__} lacks: "
                              "install opencv-python-headless<5 (the project's pin)")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image_bgr: np.ndarray) -> BoxArray:
        check_image_array(image_bgr, "image")
        factor = self.upscale
        if self.max_side is not None:
            factor = min(factor, self.max_side / max(image_bgr.shape[:2]))
        height, width = round(image_bgr.shape[0] * factor), round(image_bgr.shape[1] * factor)
        if height < _HOG_WINDOW[0] or width < _HOG_WINDOW[1]:
            return np.zeros((0, 5), dtype=np.float64)
        resized = image_bgr if factor == 1.0 else cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
        rects, margins = self._hog.detectMultiScale(
            np.ascontiguousarray(resized), hitThreshold=self.hit_threshold, winStride=_HOG_STRIDE,
            scale=self.scale_step, groupThreshold=0,
        )
        if len(rects) == 0:
            return np.zeros((0, 5), dtype=np.float64)
        boxes = np.concatenate(
            [np.asarray(rects, dtype=np.float64).reshape(-1, 4) / factor, np.asarray(margins, dtype=np.float64).reshape(-1, 1)],
            axis=1,
        )
        boxes = boxes[box_nms(boxes, self.nms_iou)[: self.max_detections]]
        boxes[:, 4] = 1.0 / (1.0 + np.exp(-boxes[:, 4]))
        return boxes


FRONTAL_FACE_CASCADE = "haarcascade_frontalface_default.xml"  # in cv2.data.haarcascades (Intel licence, OpenCV)


class HaarFaceDetector:
    """Frontal faces with OpenCV's Haar cascade: square boxes from about the brows to the chin, which the
    face estimator turns into the official face crop (centre, longer side x1.25).

    ``scale_factor`` is the pyramid ratio, ``min_neighbors`` how many overlapping hits a face needs,
    ``min_size`` the smallest face side in pixels, ``max_side`` shrinks large frames first. ``score`` is
    the logistic of the cascade's last-stage weight: monotonic, not a calibrated probability.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24, max_side: int | None = 1024):
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor: expected > 1, got {scale_factor}")
        if min_neighbors < 0 or min_size < 1:
            raise ValueError(f"min_neighbors >= 0 and min_size >= 1 expected, got {min_neighbors}, {min_size}")
        path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / FRONTAL_FACE_CASCADE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ImportError(f"HaarFaceDetector: OpenCV's face cascade {path} could not be loaded "
                              "(opencv-python(-headless) ships it in cv2.data)")
        self.scale_factor, self.min_neighbors, self.min_size, self.max_side = scale_factor, min_neighbors, min_size, max_side

    def __call__(self, image_bgr: np.ndarray) -> BoxArray:
        check_image_array(image_bgr, "image")
        factor = 1.0 if self.max_side is None else min(1.0, self.max_side / max(image_bgr.shape[:2]))
        grey = cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2GRAY)
        if factor < 1.0:
            grey = cv2.resize(grey, (round(grey.shape[1] * factor), round(grey.shape[0] * factor)), interpolation=cv2.INTER_AREA)
        rects, _, weights = self._cascade.detectMultiScale3(
            cv2.equalizeHist(grey), scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True,
        )
        if len(rects) == 0:
            return np.zeros((0, 5), dtype=np.float64)
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / factor
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1, 1)))
        result = np.concatenate([boxes, scores], axis=1)
        return result[np.argsort(-result[:, 4], kind="stable")]


def open_pose_landmarker(model_path: str | Path | None, num_poses: int, min_detection_confidence: float,
                         min_presence_confidence: float | None = None) -> tuple[object, object]:
    """``(mediapipe module, PoseLandmarker)`` in IMAGE mode from a ``.task`` bundle (default: the shared data's).

    mediapipe is optional (it replaces the headless OpenCV build), so it is imported only here, with a
    message naming the extra when it is missing. Callers own the landmarker and must ``close()`` it.
    """
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as error:
        raise ImportError(
            "MediaPipe needs the optional 'mediapipe' package: install the extra "
            "(pip install 'hrnet-train[mediapipe]') in its own venv with `make mediapipe-venv`"
        ) from error
    if model_path is None:
        from hrnet_train.paths import shared_data_dir

        model_path = shared_data_dir() / MEDIAPIPE_MODEL
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"MediaPipe pose model (.task) not found: {model_path}")
    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE,
        num_poses=num_poses,
        min_pose_detection_confidence=min_detection_confidence,
        **({} if min_presence_confidence is None else {"min_pose_presence_confidence": min_presence_confidence}),
    )
    return mp, vision.PoseLandmarker.create_from_options(options)


class MediaPipePoseDetector:
    """Person boxes from MediaPipe PoseLandmarker (BlazePose): the padded extent of its landmarks."""

    def __init__(self, model_path: str | Path | None = None, num_poses: int = 5, min_confidence: float = 0.5,
                 padding: float = 0.1):
        self._mp, self._landmarker = open_pose_landmarker(model_path, num_poses, min_confidence)
        self.padding = padding

    def __call__(self, image_bgr: np.ndarray) -> BoxArray:
        check_image_array(image_bgr, "image")
        height, width = image_bgr.shape[:2]
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        boxes = []
        for landmarks in result.pose_landmarks:
            xy = np.array([[p.x * width, p.y * height] for p in landmarks])
            presence = np.array([p.visibility or 0.0 for p in landmarks])
            boxes.append([*_padded_box(xy, self.padding, (height, width)), float(presence.mean())])
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 5)


_DETECTORS: dict[str, Callable[..., PersonDetector]] = {
    "given": GivenBoxes,
    "full_image": FullImage,
    "hog": HogPeopleDetector,
    "mediapipe": MediaPipePoseDetector,
    "haar_face": HaarFaceDetector,
}


def create_detector(name: str, **kwargs) -> PersonDetector:
    """Build a detector by name: ``given`` (boxes=...), ``full_image``, ``hog``, ``mediapipe``, ``haar_face``."""
    try:
        factory = _DETECTORS[name]
    except KeyError:
        raise ValueError(f"detector: unknown name {name!r}, expected one of {sorted(_DETECTORS)}") from None
    return factory(**kwargs)
