"""Face landmark metrics (spec A.8): NME, failure rates, the cumulative error distribution and its AUC.

Per image with L landmarks: NME = sum_l ||p_l - g_l|| / (L d), d the keypoint set's normaliser
(``KeypointSet.nme_normalizer``: the ground-truth distance of two landmarks, e.g. 300W's outer eye
corners 36/45, or AFLW's annotated ``box_size``). Every landmark counts (the official code has no
visibility weighting). The reported NME is the mean over images (x 100 in tables). FR@t = fraction of
images with NME > t (official: t = 0.08 and 0.10). CED(e) = fraction of images with NME <= e;
AUC@t = (1/t) * integral_0^t CED(e) de by the trapezoid rule on a grid of ``step`` (not computed by the
official code; the usual definition, spec A.8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.keypoints import KeypointSet

FAILURE_THRESHOLDS = (0.08, 0.10)
AUC_THRESHOLD = 0.1
CED_STEP = 1e-4


def normalizers(ground_truth: np.ndarray, keypoint_set: KeypointSet, box_sizes: np.ndarray | None = None) -> np.ndarray:
    """(N,) NME denominators of ground truth (N, L, 2) under the set's normaliser."""
    rule = keypoint_set.nme_normalizer
    if rule is None:
        raise ValueError(f"NME: keypoint set {keypoint_set.name!r} defines no nme_normalizer")
    if rule.uses_box_size:
        if box_sizes is None:
            raise ValueError(f"NME: keypoint set {keypoint_set.name!r} is normalised by the face box size: pass box_sizes")
        distance = np.asarray(box_sizes, dtype=np.float64).reshape(-1)
        if distance.shape != (len(ground_truth),):
            raise ValueError(f"NME: box_sizes has {distance.size} values for {len(ground_truth)} faces")
    else:
        first, second = rule.points
        distance = np.linalg.norm(ground_truth[:, first] - ground_truth[:, second], axis=1)
    bad = np.flatnonzero(~(distance > 0))
    if bad.size:
        raise ValueError(f"NME: normaliser is zero or undefined for face(s) {bad[:10].tolist()} (keypoint set {keypoint_set.name!r})")
    return distance


def landmark_errors(
    predictions: np.ndarray, ground_truth: np.ndarray, keypoint_set: KeypointSet, box_sizes: np.ndarray | None = None
) -> np.ndarray:
    """(N, L) point-to-point errors divided by each face's normaliser."""
    predictions = np.asarray(predictions, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    expected = (keypoint_set.num_joints, 2)
    if predictions.shape != ground_truth.shape or predictions.shape[1:] != expected:
        raise ValueError(f"NME: expected predictions and ground truth of shape (N, {expected[0]}, 2), got "
                         f"{predictions.shape} and {ground_truth.shape}")
    distance = normalizers(ground_truth, keypoint_set, box_sizes)
    return np.linalg.norm(predictions - ground_truth, axis=2) / distance[:, None]


def failure_rate(per_image: np.ndarray, threshold: float) -> float:
    """Fraction of faces whose NME exceeds ``threshold``."""
    return float(np.mean(np.asarray(per_image) > threshold))


def cumulative_error_distribution(
    per_image: np.ndarray, threshold: float = AUC_THRESHOLD, step: float = CED_STEP
) -> tuple[np.ndarray, np.ndarray]:
    """(errors, fractions): the grid 0, step, ..., threshold and the fraction of faces with NME <= each."""
    grid = np.linspace(0.0, threshold, int(round(threshold / step)) + 1)
    ordered = np.sort(np.asarray(per_image, dtype=np.float64))
    return grid, np.searchsorted(ordered, grid, side="right") / len(ordered)


def area_under_ced(per_image: np.ndarray, threshold: float = AUC_THRESHOLD, step: float = CED_STEP) -> float:
    """AUC@threshold: trapezoid integral of the CED over [0, threshold], divided by threshold."""
    grid, fractions = cumulative_error_distribution(per_image, threshold, step)
    spacing = grid[1] - grid[0]
    return float(spacing * (fractions.sum() - 0.5 * (fractions[0] + fractions[-1])) / threshold)


@dataclass(frozen=True)
class NMEResult:
    """NME figures of one evaluation; fractions, not percent (tables print percent)."""

    keypoint_set: str
    landmark_names: tuple[str, ...]
    per_image: np.ndarray  # (N,) NME per face
    per_landmark: np.ndarray  # (L,) mean normalised error per landmark
    failure_rates: dict[float, float]
    auc: float
    auc_threshold: float

    @property
    def nme(self) -> float:
        return float(self.per_image.mean())

    def summary(self) -> dict[str, float]:
        """``{"NME": ..., "FR@0.08": ..., "FR@0.1": ..., "AUC@0.1": ...}`` (fractions)."""
        rates = {f"FR@{t:g}": value for t, value in self.failure_rates.items()}
        return {"NME": self.nme, **rates, f"AUC@{self.auc_threshold:g}": self.auc}

    def to_markdown(self, digits: int = 2) -> str:
        """Per-landmark table (mean normalised error in %), then the summary rows."""
        lines = ["| landmark | NME (%) |", "|---|---|"]
        lines += [f"| {k} {name} | {100 * value:.{digits}f} |"
                  for k, (name, value) in enumerate(zip(self.landmark_names, self.per_landmark, strict=True))]
        lines.append(f"| **all ({len(self.per_image)} faces)** | **{100 * self.nme:.{digits}f}** |")
        lines += [f"| {name} | {100 * value:.{digits}f} |" for name, value in self.summary().items() if name != "NME"]
        return "\n".join(lines)


def evaluate_nme(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    keypoint_set: KeypointSet,
    box_sizes: np.ndarray | None = None,
    failure_thresholds: Sequence[float] = FAILURE_THRESHOLDS,
    auc_threshold: float = AUC_THRESHOLD,
) -> NMEResult:
    """NME, FR and AUC of predictions (N, L, 2) against ground truth (N, L, 2), in the same pixels."""
    errors = landmark_errors(predictions, ground_truth, keypoint_set, box_sizes)
    if len(errors) == 0:
        raise ValueError("NME: no faces to evaluate")
    per_image = errors.mean(axis=1)
    return NMEResult(
        keypoint_set=keypoint_set.name,
        landmark_names=keypoint_set.names,
        per_image=per_image,
        per_landmark=errors.mean(axis=0),
        failure_rates={float(t): failure_rate(per_image, t) for t in failure_thresholds},
        auc=area_under_ced(per_image, auc_threshold),
        auc_threshold=float(auc_threshold),
    )


def annotation_nme(coco: COCO, keypoint_set: KeypointSet, predictions: Mapping[int, np.ndarray], **options) -> NMEResult:
    """NME over every face annotation of ``coco`` (ids in order); ``predictions`` maps annotation id ->
    (L, 2+) image points. AFLW's ``box_size`` is read from the annotations. Every face needs a prediction."""
    annotations = coco.loadAnns(sorted(coco.getAnnIds(iscrowd=False)))
    missing = [ann["id"] for ann in annotations if ann["id"] not in predictions]
    if missing:
        raise ValueError(f"NME: no prediction for {len(missing)} face annotation(s), e.g. ids {missing[:5]}")
    truth = np.array([np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2] for ann in annotations])
    predicted = np.array([np.asarray(predictions[ann["id"]], dtype=np.float64)[:, :2] for ann in annotations])
    box_sizes = None
    if keypoint_set.nme_normalizer is not None and keypoint_set.nme_normalizer.uses_box_size:
        absent = [ann["id"] for ann in annotations if "box_size" not in ann]
        if absent:
            raise ValueError(f"NME: keypoint set {keypoint_set.name!r} needs 'box_size' in every annotation; "
                             f"missing in ids {absent[:5]}")
        box_sizes = np.array([float(ann["box_size"]) for ann in annotations])
    return evaluate_nme(predicted, truth, keypoint_set, box_sizes, **options)


def plot_ced(curves: Mapping[str, np.ndarray], path: str | Path, threshold: float = AUC_THRESHOLD) -> Path:
    """Write a CED plot (PNG) of one or more per-face NME arrays, labelled with their NME and AUC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    for label, per_image in curves.items():
        grid, fractions = cumulative_error_distribution(per_image, threshold)
        auc = area_under_ced(per_image, threshold)
        axis.plot(100 * grid, 100 * fractions,
                  label=f"{label} (NME {100 * np.mean(per_image):.2f}%, AUC@{threshold:g} {auc:.3f})")
    axis.set_xlabel("NME (%)")
    axis.set_ylabel("faces with NME <= x (%)")
    axis.set_xlim(0, 100 * threshold)
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("Cumulative error distribution")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
