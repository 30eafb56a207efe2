"""Temporal smoothing of keypoints in videos, and the measures used to judge it.

The One-Euro filter (Casiez, Roussel & Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems", CHI 2012) is an exponential low-pass filter whose cutoff grows with
speed: slow joints get a low cutoff (less jitter), fast joints a high one (less lag). Parameters follow
the paper: ``min_cutoff`` (Hz) sets jitter at rest, ``beta`` how fast the cutoff rises with speed
(per px/s), ``d_cutoff`` (Hz) the cutoff of the speed estimate itself. The defaults (1 Hz, 0.02, 1 Hz)
were chosen on MoveNet's 30 fps trajectory of tfjs_pose_1.mp4: jitter -29 % at 0.85 frames of lag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _smoothing_factor(cutoff: np.ndarray | float, period: float) -> np.ndarray | float:
    """Exponential-smoothing weight of a first-order low-pass with ``cutoff`` Hz at sampling ``period`` s."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


class OneEuroFilter:
    """One-Euro filter over an array of coordinates (e.g. (J, 2)), each coordinate filtered independently."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0):
        for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if value <= 0:
                raise ValueError(f"{name}: expected a positive cutoff frequency in Hz, got {value}")
        if beta < 0:
            raise ValueError(f"beta: expected >= 0, got {beta}")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def __call__(self, values: np.ndarray, timestamp: float) -> np.ndarray:
        """Filter one sample taken at ``timestamp`` seconds; the first sample passes through unchanged."""
        values = np.asarray(values, dtype=np.float64)
        if self._value is None or self._time is None or self._speed is None:
            self._value, self._speed, self._time = values.copy(), np.zeros_like(values), timestamp
            return values.copy()
        if values.shape != self._value.shape:
            raise ValueError(f"values: shape {values.shape} differs from the filter's {self._value.shape}")
        period = timestamp - self._time
        if period <= 0:
            raise ValueError(f"timestamp: expected increasing times, got {timestamp} after {self._time}")
        speed = (values - self._value) / period
        self._speed = self._speed + _smoothing_factor(self.d_cutoff, period) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + _smoothing_factor(cutoff, period) * (values - self._value)
        self._time = timestamp
        return self._value.copy()


class PoseSmoother:
    """One One-Euro filter per track id over the (x, y) of its keypoints; scores pass through.

    Timestamps are ``frame_index / fps``. A track not updated for more than ``max_gap`` frames restarts
    its filter, so a reappearing person does not get dragged from their old position.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0,
                 max_gap: int = 5):
        if fps <= 0:
            raise ValueError(f"fps: expected > 0, got {fps}")
        self.fps = fps
        self.filter_options = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        OneEuroFilter(**self.filter_options)  # validate the parameters now, not at the first track
        self.max_gap = max_gap
        self._filters: dict[int, tuple[OneEuroFilter, int]] = {}

    def update(self, frame_index: int, track_ids: Sequence[int], keypoints: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Smoothed copies of each track's (J, >=2) keypoints at ``frame_index``."""
        if len(track_ids) != len(keypoints):
            raise ValueError(f"track_ids: {len(track_ids)} ids for {len(keypoints)} poses")
        smoothed = []
        for track_id, points in zip(track_ids, keypoints):
            points = np.asarray(points, dtype=np.float64)
            one_euro, last_frame = self._filters.get(track_id, (None, frame_index))
            if one_euro is None or frame_index - last_frame > self.max_gap:
                one_euro = OneEuroFilter(**self.filter_options)
            result = points.copy()
            result[:, :2] = one_euro(points[:, :2], frame_index / self.fps)
            self._filters[track_id] = (one_euro, frame_index)
            smoothed.append(result)
        self._filters = {k: v for k, v in self._filters.items() if frame_index - v[1] <= self.max_gap}
        return smoothed


def smooth_trajectory(points: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.02,
                      d_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter a whole (T, J, 2) trajectory of one person sampled at ``fps``."""
    one_euro = OneEuroFilter(min_cutoff, beta, d_cutoff)
    return np.stack([one_euro(frame, index / fps) for index, frame in enumerate(np.asarray(points, np.float64))])


def _check_trajectory(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 2:
        raise ValueError(f"{name}: expected a (T, J, 2) trajectory, got shape {points.shape}")
    return points


def motion_noise(points: np.ndarray) -> float:
    """Jitter: mean |second difference| of keypoint positions, in px/frame^2 (0 for constant velocity)."""
    points = _check_trajectory(points, "points")
    if len(points) < 3:
        raise ValueError(f"points: need at least 3 frames for a second difference, got {len(points)}")
    return float(np.linalg.norm(np.diff(points, n=2, axis=0), axis=-1).mean())


def mean_error(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean Euclidean distance (px) between corresponding keypoints of two (T, J, 2) trajectories."""
    points, reference = _check_trajectory(points, "points"), _check_trajectory(reference, "reference")
    if points.shape != reference.shape:
        raise ValueError(f"points: shape {points.shape} differs from reference {reference.shape}")
    return float(np.linalg.norm(points - reference, axis=-1).mean())


def lag_frames(smoothed: np.ndarray, raw: np.ndarray, max_shift: int = 5) -> float:
    """How many frames ``smoothed`` trails ``raw``, in [0, max_shift].

    The integer shift s minimising the mean squared distance |smoothed[t] - raw[t - s]|^2 is refined to
    sub-frame precision by a parabola through the errors at s - 1, s, s + 1 (a causal filter's lag is
    often a fraction of a frame; squared distances make the error locally quadratic in the shift).
    """
    smoothed, raw = _check_trajectory(smoothed, "smoothed"), _check_trajectory(raw, "raw")
    margin = max_shift + 1
    if smoothed.shape != raw.shape or len(raw) <= 2 * margin:
        raise ValueError(f"smoothed/raw: expected equal shapes with more than {2 * margin} frames, "
                         f"got {smoothed.shape} and {raw.shape}")
    shifts = np.arange(-1, max_shift + 2)
    frames = slice(margin, len(raw) - margin)  # the same frames at every shift
    errors = np.array([((smoothed[frames] - raw[margin - s: len(raw) - margin - s]) ** 2).sum(-1).mean()
                       for s in shifts])
    best = int(np.argmin(errors[1:-1])) + 1  # index into shifts, restricted to 0..max_shift
    left, centre, right = errors[best - 1: best + 2]
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature > 0 else 0.0
    return float(np.clip(shifts[best] + offset, 0.0, max_shift))
