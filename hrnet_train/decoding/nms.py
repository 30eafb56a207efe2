"""Pose non-maximum suppression by object keypoint similarity (OKS), as the official HRNet code.

Top-down inference predicts one pose per person box, and duplicate boxes around the same person
produce near-identical poses; OKS-NMS removes them per image before COCO evaluation (spec 6.3).
The OKS used here is the reference one: every joint counts (no visibility masking) and the area
is the mean of the two (padded-box) areas.
"""

from __future__ import annotations

import numpy as np

# COCO keypoint sigmas (pycocotools / spec 6.3), used when no keypoint set gives its own.
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0

SOFT_NMS_MAX_KEPT = 20  # the reference soft-OKS-NMS keeps at most 20 poses per image


def _sigmas_for(num_joints: int, sigmas: np.ndarray | None) -> np.ndarray:
    if sigmas is None:
        if num_joints != len(COCO_SIGMAS):
            raise ValueError(
                f"OKS needs per-joint sigmas: got {num_joints} joints and no sigmas (defaults are COCO's 17)"
            )
        return COCO_SIGMAS
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (num_joints,):
        raise ValueError(f"sigmas must have shape ({num_joints},), got {sigmas.shape}")
    return sigmas


def oks_iou(
    ref_keypoints: np.ndarray,
    ref_area: float,
    keypoints: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """OKS of one pose against M others: mean over all J joints of exp(-d^2 / (2 (2 sigma)^2 a)).

    ``ref_keypoints`` (J, >=2) and ``keypoints`` (M, J, >=2) hold x, y first (scores are ignored);
    ``a`` is the mean of the two areas plus machine epsilon, as the reference ``oks_iou``.
    """
    ref = np.asarray(ref_keypoints, dtype=np.float64)
    others = np.asarray(keypoints, dtype=np.float64)
    if others.ndim != 3 or ref.ndim != 2 or others.shape[1:2] != ref.shape[:1]:
        raise ValueError(f"oks_iou expects ref (J,2+) and others (M,J,2+); got {ref.shape} and {others.shape}")
    variances = (2.0 * _sigmas_for(ref.shape[0], sigmas)) ** 2
    mean_areas = (float(ref_area) + np.asarray(areas, dtype=np.float64)) / 2.0 + np.spacing(1)
    squared_dist = ((others[:, :, :2] - ref[None, :, :2]) ** 2).sum(axis=2)  # (M, J)
    e = squared_dist / variances[None, :] / mean_areas[:, None] / 2.0
    return np.exp(-e).mean(axis=1)


def _check_instances(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, ...]:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    n = len(scores)
    if keypoints.ndim != 3 or keypoints.shape[0] != n or areas.shape != (n,) or scores.shape != (n,):
        raise ValueError(
            f"NMS expects keypoints (N,J,2+), scores (N,), areas (N,); got {keypoints.shape}, "
            f"{scores.shape}, {areas.shape}"
        )
    return keypoints, scores, areas


def _descending(scores: np.ndarray) -> np.ndarray:
    # Reversed ascending argsort, as the reference: among equal scores the later instance comes
    # first. Kept for parity because ties are common (e.g. perfect GT-box predictions score 1).
    return np.argsort(scores)[::-1]


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS: keep the best pose, drop the others with OKS > ``thr`` against it, repeat.

    Returns the kept indices in keep order (best first), which is also the order results are
    written in, so COCOeval's tie-breaking among equal scores follows the reference.
    """
    keypoints, scores, areas = _check_instances(keypoints, scores, areas)
    order = _descending(scores)
    keep: list[int] = []
    while order.size > 0:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        overlap = oks_iou(keypoints[best], areas[best], keypoints[rest], areas[rest], sigmas)
        order = rest[overlap <= thr]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
    max_kept: int = SOFT_NMS_MAX_KEPT,
    update_scores: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-OKS-NMS: after each pick, decay the rest by exp(-oks^2 / thr) and re-sort.

    Nothing is removed by threshold; the decay only changes the order, and at most ``max_kept``
    poses survive. Returns (kept indices in pick order, their scores). The reference
    (``soft_oks_nms`` in HRNet's nms.py) reports the ORIGINAL scores, which is the default here;
    ``update_scores=True`` returns the decayed scores instead (what soft-NMS usually means).
    """
    keypoints, scores, areas = _check_instances(keypoints, scores, areas)
    order = _descending(scores)
    decayed = scores[order]
    keep: list[int] = []
    kept_scores: list[float] = []
    while order.size > 0 and len(keep) < max_kept:
        best = order[0]
        keep.append(int(best))
        kept_scores.append(float(decayed[0]))
        order, decayed = order[1:], decayed[1:]
        overlap = oks_iou(keypoints[best], areas[best], keypoints[order], areas[order], sigmas)
        decayed = decayed * np.exp(-(overlap**2) / thr)
        resort = _descending(decayed)
        order, decayed = order[resort], decayed[resort]
    keep_array = np.asarray(keep, dtype=np.int64)
    if update_scores:
        return keep_array, np.asarray(kept_scores, dtype=np.float64)
    return keep_array, scores[keep_array]
