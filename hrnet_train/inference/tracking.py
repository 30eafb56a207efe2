"""Give each detected pose a track id that stays the same from frame to frame.

Tracking-by-pose in the spirit of PoseTrack baselines (Xiao et al., "Simple Baselines", ECCV 2018 use
box IoU / OKS flow similarity + greedy matching): similarity = ``iou_weight * IoU(box) +
(1 - iou_weight) * OKS(keypoints)`` between each pose and each live track's constant-velocity
prediction, solved globally with the Hungarian method. A pose whose best similarity is below
``min_similarity`` starts a new track; a track unseen for more than ``max_age`` frames is dropped, so a
person who disappears for a few frames keeps their id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# COCO keypoint sigmas (cocoapi, pycocotools/cocoeval.py, Ronchi & Perona 2017), nose first.
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0


def _pose_arrays(pose: Mapping, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(J, 3) keypoints and (4,) xywh box of one pose record, with errors naming the record."""
    if "keypoints" not in pose or "box" not in pose:
        raise ValueError(f"poses[{index}]: expected keys 'keypoints' (J, 3) and 'box' [x, y, w, h], got {sorted(pose)}")
    keypoints = np.asarray(pose["keypoints"], dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise ValueError(f"poses[{index}].keypoints: expected shape (J, 3) [x, y, score], got {keypoints.shape}")
    box = np.asarray(pose["box"], dtype=np.float64).ravel()
    if box.size not in (4, 5) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"poses[{index}].box: expected [x, y, w, h(, score)] with w, h > 0, got {box.tolist()}")
    return keypoints, box[:4]


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xywh boxes (N, 4) x (M, 4) -> (N, M)."""
    a = boxes_a[:, None, :]
    b = boxes_b[None, :, :]
    width = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / np.maximum(union, 1e-12)


def oks_matrix(
    keypoints_a: np.ndarray, keypoints_b: np.ndarray, areas_b: np.ndarray, sigmas: np.ndarray, min_score: float
) -> np.ndarray:
    """Pairwise object keypoint similarity (N, J, 3) x (M, J, 3) -> (N, M).

    COCO's formula exp(-d^2 / (2 s^2 (2 sigma)^2)) with s^2 = ``areas_b`` (the track's box area), averaged
    over joints whose score is at least ``min_score`` in both poses; 0 when no joint qualifies.
    """
    if keypoints_a.shape[1] != len(sigmas):
        raise ValueError(f"sigmas: {len(sigmas)} values for poses with {keypoints_a.shape[1]} joints")
    d2 = ((keypoints_a[:, None, :, :2] - keypoints_b[None, :, :, :2]) ** 2).sum(axis=-1)
    variances = (2.0 * sigmas) ** 2
    similarity = np.exp(-d2 / (2.0 * variances[None, None] * np.maximum(areas_b, 1e-12)[None, :, None]))
    valid = (keypoints_a[:, None, :, 2] >= min_score) & (keypoints_b[None, :, :, 2] >= min_score)
    count = valid.sum(axis=-1)
    return np.where(count > 0, (similarity * valid).sum(axis=-1) / np.maximum(count, 1), 0.0)


@dataclass
class _Track:
    track_id: int
    keypoints: np.ndarray  # (J, 3) at last_seen
    box: np.ndarray  # (4,) at last_seen
    velocity: np.ndarray  # (J, 2) px/frame of the keypoints (the box moves with their mean)
    last_seen: int

    def predicted(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints and box extrapolated at constant velocity to ``frame``."""
        gap = frame - self.last_seen
        keypoints = self.keypoints.copy()
        keypoints[:, :2] += self.velocity * gap
        box = self.box.copy()
        box[:2] += self.velocity.mean(axis=0) * gap
        return keypoints, box


class Tracker:
    """Online multi-person pose tracker: call ``update(poses)`` once per frame, get one id per pose.

    ``poses`` are mappings with ``keypoints`` (J, 3) [x, y, score] and ``box`` [x, y, w, h] in image
    pixels (the estimator's output). Ids are integers from 0 in order of first appearance, never reused.
    """

    def __init__(
        self,
        sigmas: np.ndarray | Sequence[float] = COCO_SIGMAS,
        iou_weight: float = 0.5,
        min_similarity: float = 0.2,
        max_age: int = 10,
        min_keypoint_score: float = 0.2,
        velocity_smoothing: float = 0.5,
    ):
        if not 0.0 <= iou_weight <= 1.0:
            raise ValueError(f"iou_weight: expected a value in [0, 1], got {iou_weight}")
        if max_age < 0:
            raise ValueError(f"max_age: expected >= 0 frames, got {max_age}")
        if not 0.0 <= velocity_smoothing < 1.0:
            raise ValueError(f"velocity_smoothing: expected a value in [0, 1), got {velocity_smoothing}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.iou_weight = iou_weight
        self.min_similarity = min_similarity
        self.max_age = max_age
        self.min_keypoint_score = min_keypoint_score
        self.velocity_smoothing = velocity_smoothing
        self.frame = -1
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def active_ids(self) -> list[int]:
        """Ids of tracks still kept (seen within the last ``max_age`` frames)."""
        return [track.track_id for track in self._tracks]

    def _similarity(self, keypoints: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N poses, M live tracks) similarity against the tracks' predictions for the current frame."""
        predictions = [track.predicted(self.frame) for track in self._tracks]
        track_keypoints = np.stack([p[0] for p in predictions])
        track_boxes = np.stack([p[1] for p in predictions])
        iou = iou_matrix(boxes, track_boxes)
        oks = oks_matrix(keypoints, track_keypoints, track_boxes[:, 2] * track_boxes[:, 3], self.sigmas,
                         self.min_keypoint_score)
        return self.iou_weight * iou + (1.0 - self.iou_weight) * oks

    def update(self, poses: Sequence[Mapping]) -> list[int]:
        """Assign track ids to this frame's poses (same order as ``poses``)."""
        parsed = [_pose_arrays(pose, index) for index, pose in enumerate(poses)]
        ids = [-1] * len(parsed)
        self.frame += 1
        if parsed and self._tracks:
            keypoints = np.stack([p[0] for p in parsed])
            boxes = np.stack([p[1] for p in parsed])
            if keypoints.shape[1] != self._tracks[0].keypoints.shape[0]:
                raise ValueError(
                    f"poses: {keypoints.shape[1]} joints per pose, but tracks hold {self._tracks[0].keypoints.shape[0]}"
                )
            similarity = self._similarity(keypoints, boxes)
            rows, cols = linear_sum_assignment(-similarity)
            for row, col in zip(rows, cols):
                if similarity[row, col] >= self.min_similarity:
                    ids[row] = self._tracks[col].track_id
                    self._refresh(self._tracks[col], *parsed[row])
        for index, (keypoints_i, box_i) in enumerate(parsed):
            if ids[index] < 0:
                track = _Track(self._next_id, keypoints_i, box_i, np.zeros((len(keypoints_i), 2)), self.frame)
                self._tracks.append(track)
                ids[index] = track.track_id
                self._next_id += 1
        self._tracks = [t for t in self._tracks if self.frame - t.last_seen <= self.max_age]
        return ids

    def _refresh(self, track: _Track, keypoints: np.ndarray, box: np.ndarray) -> None:
        """Move a matched track to its new pose; velocity is an exponential average of per-frame motion."""
        gap = self.frame - track.last_seen
        measured = (keypoints[:, :2] - track.keypoints[:, :2]) / gap
        track.velocity = self.velocity_smoothing * track.velocity + (1.0 - self.velocity_smoothing) * measured
        track.keypoints, track.box, track.last_seen = keypoints, box, self.frame
