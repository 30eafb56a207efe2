"""Torso-normalised PCK, the usual protocol for LSP/LSPET single-person crops.

COCO OKS needs a person area that LSPET does not annotate; PCK instead scales the error by the
person's torso: a joint is correct when it lies within alpha x |left shoulder - right hip| of the
ground truth (alpha 0.2, "PCK@0.2", as in the LSP literature). Only joints labelled visible count,
and only persons with both torso joints visible (otherwise the scale is undefined).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.keypoints import KeypointSet

TORSO_JOINTS = ("left_shoulder", "right_hip")
# LSPET's 12 limb joints: all but neck and head top.
LSPET_LIMB_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip


@dataclass(frozen=True)
class PCKResult:
    """Per-joint and pooled PCK; pooled values count every evaluated joint once."""

    alpha: float
    joint_names: tuple[str, ...]
    per_joint: np.ndarray  # (J,) fraction correct, NaN where no joint was evaluated
    counts: np.ndarray  # (J,) evaluated joints
    limb_ids: tuple[int, ...]
    limbs: float  # pooled over the limb joints
    all_joints: float  # pooled over every joint
    num_persons: int  # persons with a valid torso

    def to_markdown(self, digits: int = 1) -> str:
        """Per-joint table with the pooled limb and all-joint rows, in percent."""
        pct = f"PCK@{self.alpha:g}"
        lines = [f"| joint | {pct} (%) | n |", "|---|---|---|"]
        for name, value, count in zip(self.joint_names, self.per_joint, self.counts, strict=True):
            lines.append(f"| {name} | {100 * value:.{digits}f} | {count} |")
        limb_count = int(self.counts[list(self.limb_ids)].sum())
        lines.append(f"| limbs ({len(self.limb_ids)} joints) | {100 * self.limbs:.{digits}f} | {limb_count} |")
        total = int(self.counts.sum())
        lines.append(f"| all ({len(self.joint_names)} joints) | {100 * self.all_joints:.{digits}f} | {total} |")
        return "\n".join(lines)


def _ids(keypoint_set: KeypointSet, names: Sequence[str], what: str) -> list[int]:
    unknown = [n for n in names if n not in keypoint_set.names]
    if unknown:
        raise ValueError(f"{what}: joint(s) {unknown} not in keypoint set {keypoint_set.name} {keypoint_set.names}")
    return [keypoint_set.names.index(n) for n in names]


def torso_pck(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    keypoint_set: KeypointSet,
    alpha: float = 0.2,
    torso_joints: tuple[str, str] = TORSO_JOINTS,
    limb_joints: Sequence[str] = LSPET_LIMB_JOINTS,
) -> PCKResult:
    """PCK@alpha of predictions (N, J, 2) against ground truth (N, J, 2) with visibility (N, J)."""
    predictions = np.asarray(predictions, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    visible = np.asarray(visible) > 0
    j = keypoint_set.num_joints
    shapes_ok = predictions.shape == ground_truth.shape and predictions.shape[1:] == (j, 2)
    if not shapes_ok or visible.shape != predictions.shape[:2]:
        raise ValueError(
            f"torso_pck expects predictions and ground_truth (N,{j},2) and visible (N,{j}); got "
            f"{predictions.shape}, {ground_truth.shape}, {visible.shape}"
        )
    first, second = _ids(keypoint_set, torso_joints, "torso_joints")
    limb_ids = _ids(keypoint_set, limb_joints, "limb_joints")
    torso = np.linalg.norm(ground_truth[:, first] - ground_truth[:, second], axis=1)
    valid_person = visible[:, first] & visible[:, second] & (torso > 0)
    evaluated = visible & valid_person[:, None]
    distance = np.linalg.norm(predictions - ground_truth, axis=2)
    correct = evaluated & (distance <= alpha * torso[:, None])
    counts = evaluated.sum(axis=0)
    hits = correct.sum(axis=0)
    per_joint = np.divide(hits, counts, out=np.full(j, np.nan), where=counts > 0)

    def pooled(ids: list[int]) -> float:
        total = counts[ids].sum()
        return float(hits[ids].sum() / total) if total > 0 else float("nan")

    return PCKResult(
        alpha=alpha,
        joint_names=keypoint_set.names,
        per_joint=per_joint,
        counts=counts,
        limb_ids=tuple(limb_ids),
        limbs=pooled(limb_ids),
        all_joints=pooled(list(range(j))),
        num_persons=int(valid_person.sum()),
    )


def _ground_truth_persons(coco: COCO, num_joints: int) -> list[dict]:
    """Non-crowd annotations with at least one labelled joint, in annotation-id order."""
    persons = []
    for ann in coco.loadAnns(coco.getAnnIds(iscrowd=False)):
        values = ann.get("keypoints") or []
        if len(values) == 3 * num_joints and max(values[2::3]) > 0:
            persons.append(ann)
    return persons


def annotation_pck(
    coco: COCO, keypoint_set: KeypointSet, predictions: Mapping[int, np.ndarray], alpha: float = 0.2
) -> PCKResult:
    """Torso PCK over every labelled ground-truth person; ``predictions`` maps annotation id -> (J, 2+).

    A person without a prediction counts all its visible joints as wrong (so a detector that misses
    a person cannot raise the score).
    """
    j = keypoint_set.num_joints
    persons = _ground_truth_persons(coco, j)
    if not persons:
        raise ValueError("PCK: the ground truth has no person with labelled keypoints")
    truth = np.array([p["keypoints"] for p in persons], dtype=np.float64).reshape(-1, j, 3)
    predicted = np.full((len(persons), j, 2), np.nan)
    for row, person in enumerate(persons):
        if person["id"] in predictions:
            predicted[row] = np.asarray(predictions[person["id"]], dtype=np.float64).reshape(j, -1)[:, :2]
    return torso_pck(predicted, truth[:, :, :2], truth[:, :, 2] > 0, keypoint_set, alpha)


def pck_applies(keypoint_set: KeypointSet) -> bool:
    """Single-person LSPET-style sets (torso and limb joints named as in LSPET) get PCK by default."""
    needed = set(TORSO_JOINTS) | set(LSPET_LIMB_JOINTS)
    return keypoint_set.name.startswith("lspet") and needed <= set(keypoint_set.names)
