"""Per-joint error analysis: where the AP goes, not just how much there is.

COCO AP folds every error into one number. Following the taxonomy of Ronchi & Perona, "Benchmarking
and Error Diagnosis in Multi-Instance Pose Estimation" (ICCV 2017; the coco-analyze tool), each
keypoint of a prediction matched to a person is classified by its keypoint similarity (ks, the
per-joint term of OKS):

* good: ks >= 0.85 against its own ground truth;
* jitter: 0.5 <= ks < 0.85 (right joint, imprecise);
* inversion: ks < 0.5, but ks >= 0.5 against the left/right partner joint of the same person;
* swap: ks < 0.5, but ks >= 0.5 against the same joint of another person in the image;
* miss: none of the above.

Predictions are matched to ground-truth persons greedily by OKS per image (highest pair first).
Works for any keypoint set: it only needs sigmas, names and flip pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.keypoints import KeypointSet
from hrnet_train.evaluation.coco_metric import load_coco, load_results

ERROR_CLASSES = ("good", "jitter", "inversion", "swap", "miss")
GOOD_KS = 0.85  # Ronchi & Perona 2017
CORRECT_KS = 0.5
MIN_MATCH_OKS = 0.1  # a pair below this OKS is no match (the lowest OKS threshold coco-analyze uses)


def keypoint_similarity(predicted: np.ndarray, target: np.ndarray, area: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Per-joint COCO similarity exp(-d^2 / (2 a (2 sigma)^2)), broadcast over leading dims.

    ``predicted``/``target`` (..., J, 2+), ``area`` broadcastable to (..., J); the machine epsilon
    on the area is pycocotools'.
    """
    squared = ((np.asarray(predicted)[..., :2] - np.asarray(target)[..., :2]) ** 2).sum(axis=-1)
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    return np.exp(-squared / variances / (np.asarray(area, dtype=np.float64) + np.spacing(1)) / 2.0)


@dataclass(frozen=True)
class InstanceMatch:
    """A prediction (index into the results list) matched to a ground-truth annotation."""

    image_id: int
    annotation_id: int
    result_index: int
    oks: float


@dataclass(frozen=True)
class ErrorAnalysis:
    """Per-joint breakdown over matched keypoints whose ground truth is labelled."""

    joint_names: tuple[str, ...]
    counts: np.ndarray  # (J, 5) int, columns in ERROR_CLASSES order
    accuracy: np.ndarray  # (J,) fraction with ks >= 0.5 (NaN if the joint never occurs)
    mean_normalized_error: np.ndarray  # (J,) mean distance / sqrt(GT area) (NaN if never occurs)
    matches: tuple[InstanceMatch, ...]
    num_unmatched_gt: int  # persons with labelled keypoints no prediction was matched to
    num_unmatched_results: int  # predictions matched to nobody

    @property
    def totals(self) -> dict[str, int]:
        return {name: int(n) for name, n in zip(ERROR_CLASSES, self.counts.sum(axis=0), strict=True)}

    @property
    def shares(self) -> dict[str, float]:
        """Fraction of all classified keypoints in each class (0 for every class when there are none)."""
        totals = self.totals
        overall = sum(totals.values())
        return {name: count / overall if overall else 0.0 for name, count in totals.items()}

    def worst(self, n: int) -> list[InstanceMatch]:
        """The ``n`` matches with the lowest OKS, worst first."""
        return sorted(self.matches, key=lambda m: (m.oks, m.image_id, m.annotation_id))[:n]

    def to_markdown(self, digits: int = 1) -> str:
        """Per-joint table: n, accuracy, normalised error and error-class shares, in percent."""
        header = ["joint", "n", "ks>=0.5 (%)", "mean err / sqrt(area)", *(f"{c} (%)" for c in ERROR_CLASSES)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        rows = list(zip(self.joint_names, self.counts, self.accuracy, self.mean_normalized_error, strict=True))
        total = self.counts.sum(axis=0)
        all_accuracy = (total[0] + total[1]) / max(total.sum(), 1)
        for name, counts, accuracy, error in rows:
            shares = 100.0 * counts / max(counts.sum(), 1)
            cells = [name, str(int(counts.sum())), f"{100 * accuracy:.{digits}f}", f"{error:.4f}"]
            lines.append("| " + " | ".join(cells + [f"{s:.{digits}f}" for s in shares]) + " |")
        shares = 100.0 * total / max(total.sum(), 1)
        cells = ["all", str(int(total.sum())), f"{100 * all_accuracy:.{digits}f}", ""]
        lines.append("| " + " | ".join(cells + [f"{s:.{digits}f}" for s in shares]) + " |")
        lines.append("")
        lines.append(
            f"{len(self.matches)} matched persons, {self.num_unmatched_gt} unmatched ground-truth persons, "
            f"{self.num_unmatched_results} unmatched predictions"
        )
        return "\n".join(lines)


def _ground_truth(coco: COCO, image_id: int, num_joints: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Annotation ids, keypoints (G, J, 3) and areas (G,) of the evaluable persons of an image."""
    anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)) if a.get("num_keypoints", 0) > 0]
    for a in anns:
        if len(a.get("keypoints", [])) != 3 * num_joints:
            raise ValueError(
                f"ground truth image {image_id} annotation {a['id']}: {len(a.get('keypoints', []))} keypoint "
                f"values, expected 3 x {num_joints}"
            )
    keypoints = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), num_joints, 3)
    return [a["id"] for a in anns], keypoints, np.array([a["area"] for a in anns], dtype=np.float64)


def _greedy_pairs(oks: np.ndarray, min_oks: float) -> list[tuple[int, int]]:
    """(prediction, person) pairs, highest OKS first, each used once, OKS >= ``min_oks``."""
    remaining = oks.copy()
    pairs = []
    while remaining.size:
        d, g = np.unravel_index(np.argmax(remaining), remaining.shape)
        if remaining[d, g] < min_oks:
            break
        pairs.append((int(d), int(g)))
        remaining[d, :] = -np.inf
        remaining[:, g] = -np.inf
    return pairs


def _classify(
    predicted: np.ndarray, own: int, gt: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, flip_index: np.ndarray
) -> np.ndarray:
    """Error class id (index into ERROR_CLASSES) per joint of one matched prediction, (J,)."""
    labelled = gt[:, :, 2] > 0  # (G, J)
    own_ks = keypoint_similarity(predicted, gt[own], areas[own], sigmas)
    partner = gt[own, flip_index]
    has_partner = (flip_index != np.arange(len(flip_index))) & labelled[own, flip_index]
    partner_ks = keypoint_similarity(predicted, partner, areas[own], sigmas[flip_index])
    inverted = has_partner & (partner_ks >= CORRECT_KS)
    others = np.arange(len(gt)) != own
    other_ks = keypoint_similarity(predicted[None], gt[others], areas[others, None], sigmas)  # (G-1, J)
    swapped = ((other_ks >= CORRECT_KS) & labelled[others]).any(axis=0)
    return np.select(
        [own_ks >= GOOD_KS, own_ks >= CORRECT_KS, inverted, swapped], [0, 1, 2, 3], default=4
    )


def analyze_errors(
    gt: COCO | str | Path,
    results: Sequence[Mapping] | str | Path,
    keypoint_set: KeypointSet,
    min_oks: float = MIN_MATCH_OKS,
) -> ErrorAnalysis:
    """Match ``results`` to the ground truth per image and classify every labelled matched keypoint."""
    coco = load_coco(gt)
    sigmas = np.asarray(keypoint_set.sigmas, dtype=np.float64)
    result_list = load_results(results, coco, sigmas)
    j = keypoint_set.num_joints
    flip_index = keypoint_set.flip_index
    by_image: dict[int, list[int]] = {}
    for i, result in enumerate(result_list):
        by_image.setdefault(int(result["image_id"]), []).append(i)

    counts = np.zeros((j, len(ERROR_CLASSES)), dtype=np.int64)
    correct = np.zeros(j)
    error_sum = np.zeros(j)
    matches: list[InstanceMatch] = []
    unmatched_gt = unmatched_results = 0
    for image_id in coco.getImgIds():
        ann_ids, gt_keypoints, areas = _ground_truth(coco, image_id, j)
        result_ids = by_image.get(image_id, [])
        predicted = np.array([result_list[i]["keypoints"] for i in result_ids], dtype=np.float64).reshape(-1, j, 3)
        labelled = gt_keypoints[:, :, 2] > 0
        ks = keypoint_similarity(predicted[:, None], gt_keypoints[None], areas[None, :, None], sigmas)  # (D, G, J)
        oks = (ks * labelled[None]).sum(axis=2) / np.maximum(labelled.sum(axis=1), 1)[None]
        pairs = _greedy_pairs(oks, min_oks)
        unmatched_gt += len(ann_ids) - len(pairs)
        unmatched_results += len(result_ids) - len(pairs)
        for d, g in pairs:
            matches.append(InstanceMatch(image_id, ann_ids[g], result_ids[d], float(oks[d, g])))
            classes = _classify(predicted[d], g, gt_keypoints, areas, sigmas, flip_index)
            seen = labelled[g]
            np.add.at(counts, (np.flatnonzero(seen), classes[seen]), 1)
            correct += seen & (ks[d, g] >= CORRECT_KS)
            distance = np.linalg.norm(predicted[d, :, :2] - gt_keypoints[g, :, :2], axis=1)
            error_sum += np.where(seen, distance / np.sqrt(areas[g]), 0.0)
    occurrences = counts.sum(axis=1)
    nan = np.full(j, np.nan)
    return ErrorAnalysis(
        joint_names=keypoint_set.names,
        counts=counts,
        accuracy=np.divide(correct, occurrences, out=nan.copy(), where=occurrences > 0),
        mean_normalized_error=np.divide(error_sum, occurrences, out=nan.copy(), where=occurrences > 0),
        matches=tuple(matches),
        num_unmatched_gt=unmatched_gt,
        num_unmatched_results=unmatched_results,
    )
