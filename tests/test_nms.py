"""OKS, OKS-NMS, soft-OKS-NMS, rescoring and the per-image result builder on hand-built poses.

With 4 joints of sigma 0.1 and area 10,000 the reference OKS of two poses offset by d pixels in
every joint is exp(-d^2 / (2 * 0.2^2 * 10000)) = exp(-d^2 / 800): a shift of 5 px gives 0.969
(> 0.9, suppressed), a shift of 10 px gives 0.882 (kept).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_train.decoding.nms import COCO_SIGMAS, oks_iou, oks_nms, soft_oks_nms
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.decoding.instances import DecodedInstances, PostprocessConfig
from hrnet_train.decoding.rescoring import rescore

SIGMAS4 = np.full(4, 0.1)
AREA = 10000.0
BASE = np.array([[10.0, 10.0], [50.0, 10.0], [10.0, 90.0], [50.0, 90.0]])


def pose(shift: float, offset: float = 0.0) -> np.ndarray:
    return BASE + np.array([shift + offset, 0.0])


def test_oks_iou_closed_form_and_identity() -> None:
    others = np.stack([pose(0), pose(5), pose(10), pose(1000)])
    oks = oks_iou(pose(0), AREA, others, np.full(4, AREA), SIGMAS4)
    expected = np.exp(-np.array([0.0, 25.0, 100.0, 1e6]) / 800.0)
    np.testing.assert_allclose(oks, expected, rtol=1e-12)
    assert oks[0] == 1.0


def test_oks_iou_uses_mean_area_and_ignores_scores() -> None:
    # Areas 5,000 and 15,000 average to 10,000: same OKS as above; a third (score) column is ignored.
    with_scores = np.concatenate([pose(5), np.full((4, 1), 0.3)], axis=1)[None]
    oks = oks_iou(np.concatenate([pose(0), np.ones((4, 1))], axis=1), 5000.0, with_scores, np.array([15000.0]), SIGMAS4)
    np.testing.assert_allclose(oks, [np.exp(-25.0 / 800.0)], rtol=1e-12)


def test_oks_iou_coco_default_sigmas_per_joint() -> None:
    ref = np.zeros((17, 2))
    other = np.zeros((1, 17, 2))
    other[0, 0] = (3.0, 4.0)  # only the nose moves by 5 px
    oks = oks_iou(ref, 400.0, other, np.array([400.0]))
    nose_e = 25.0 / (2 * 0.026) ** 2 / (400.0 + np.spacing(1)) / 2
    np.testing.assert_allclose(oks, [(16 + np.exp(-nose_e)) / 17], rtol=1e-12)
    assert COCO_SIGMAS.shape == (17,)


def test_oks_iou_rejects_mismatched_sigmas() -> None:
    with pytest.raises(ValueError, match="sigmas must have shape"):
        oks_iou(pose(0), AREA, pose(0)[None], np.array([AREA]), np.full(3, 0.1))
    with pytest.raises(ValueError, match="no sigmas"):
        oks_iou(pose(0), AREA, pose(0)[None], np.array([AREA]))


def test_oks_nms_keeps_expected_set_in_score_order() -> None:
    keypoints = np.stack([pose(0), pose(5), pose(300), pose(310), pose(600)])
    scores = np.array([0.90, 0.95, 0.50, 0.40, 0.10])
    keep = oks_nms(keypoints, scores, np.full(5, AREA), thr=0.9, sigmas=SIGMAS4)
    # 1 beats its 5-px twin 0; 3 is 10 px from 2 (OKS 0.882 <= 0.9) and survives.
    np.testing.assert_array_equal(keep, [1, 2, 3, 4])
    assert keep.dtype == np.int64


def test_oks_nms_drops_only_above_threshold() -> None:
    keypoints = np.stack([pose(0), pose(10)])
    oks = float(np.exp(-100.0 / 800.0))
    kept_above = oks_nms(keypoints, np.array([1.0, 0.5]), np.full(2, AREA), thr=oks + 1e-9, sigmas=SIGMAS4)
    kept_below = oks_nms(keypoints, np.array([1.0, 0.5]), np.full(2, AREA), thr=oks - 1e-9, sigmas=SIGMAS4)
    np.testing.assert_array_equal(kept_above, [0, 1])
    np.testing.assert_array_equal(kept_below, [0])


def test_oks_nms_ties_prefer_later_instance_like_the_reference() -> None:
    keypoints = np.stack([pose(0), pose(1), pose(400)])
    keep = oks_nms(keypoints, np.ones(3), np.full(3, AREA), sigmas=SIGMAS4)
    np.testing.assert_array_equal(keep, [2, 1])


def test_oks_nms_empty() -> None:
    assert oks_nms(np.zeros((0, 4, 3)), np.zeros(0), np.zeros(0), sigmas=SIGMAS4).size == 0


def test_soft_oks_nms_reorders_and_keeps_original_scores_by_default() -> None:
    keypoints = np.stack([pose(0), pose(0), pose(1000)])
    scores = np.array([0.9, 0.8, 0.7])
    keep, kept_scores = soft_oks_nms(keypoints, scores, np.full(3, AREA), thr=0.9, sigmas=SIGMAS4)
    np.testing.assert_array_equal(keep, [0, 2, 1])
    np.testing.assert_array_equal(kept_scores, [0.9, 0.7, 0.8])
    _, decayed = soft_oks_nms(keypoints, scores, np.full(3, AREA), thr=0.9, sigmas=SIGMAS4, update_scores=True)
    # 1 duplicates 0 exactly (OKS 1): 0.8 * exp(-1/0.9); 2 is far from everything (OKS ~ 0).
    np.testing.assert_allclose(decayed, [0.9, 0.7, 0.8 * np.exp(-1.0 / 0.9)], rtol=1e-12)


def test_soft_oks_nms_keeps_at_most_twenty() -> None:
    keypoints = np.stack([pose(400.0 * i) for i in range(25)])
    keep, _ = soft_oks_nms(keypoints, np.linspace(1.0, 0.5, 25), np.full(25, AREA), sigmas=SIGMAS4)
    np.testing.assert_array_equal(keep, np.arange(20))


def test_rescore_mean_of_confident_joints_times_box_score() -> None:
    maxvals = np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.15], [0.3, 0.3, 0.3]], dtype=np.float32)
    scores = rescore(maxvals, np.array([0.8, 1.0, 0.5]), in_vis_thre=0.2)
    # 0.2 itself is not above the threshold, so the second instance has no confident joint.
    # The mean is a float32 running sum divided in float32, as the reference computes it.
    first = (np.float32(0.5) + np.float32(0.9)) / np.float32(2)
    third = (np.float32(0.3) + np.float32(0.3) + np.float32(0.3)) / np.float32(3)
    np.testing.assert_array_equal(scores, [float(first) * 0.8, 0.0, float(third) * 0.5])
    with pytest.raises(ValueError, match="box_scores"):
        rescore(maxvals, np.ones(2))


def _instances(keypoints: np.ndarray, maxvals: np.ndarray, box_scores, image_ids, indices) -> DecodedInstances:
    n = len(keypoints)
    stacked = np.concatenate([keypoints, maxvals[..., None]], axis=2).astype(np.float32)
    side = np.sqrt(AREA) / 200.0  # scale so that the padded-box area is AREA
    return DecodedInstances(
        keypoints=stacked,
        centers=np.zeros((n, 2)),
        scales=np.full((n, 2), side),
        box_scores=np.asarray(box_scores, dtype=np.float64),
        image_ids=np.asarray(image_ids, dtype=np.int64),
        indices=np.asarray(indices, dtype=np.int64),
    )


def test_results_rescore_then_nms_per_image() -> None:
    keypoints = np.stack([pose(0), pose(5), pose(0), pose(300)])
    maxvals = np.array([[0.9, 0.9, 0.9, 0.1], [0.6, 0.6, 0.6, 0.6], [0.5, 0.5, 0.5, 0.5], [0.4, 0.4, 0.4, 0.4]])
    # Box scores 0.5 / 1.0: rescored 0.45 (0.9 x 0.5) vs 0.6, so instance 1 wins over its twin 0.
    # Instance 2 is in another image, so 0's pose there does not suppress it.
    instances = _instances(keypoints, maxvals, [0.5, 1.0, 1.0, 1.0], [7, 7, 9, 7], [0, 1, 2, 3])
    results = instances.to_coco_results(SIGMAS4)
    expected = [(7, pytest.approx(0.6)), (7, pytest.approx(0.4)), (9, pytest.approx(0.5))]
    assert [(r["image_id"], r["score"]) for r in results] == expected
    assert results[0]["keypoints"] == pytest.approx(np.concatenate([pose(5), np.full((4, 1), 0.6)], 1).ravel().tolist())
    assert all(r["category_id"] == 1 for r in results)
    unsuppressed = instances.to_coco_results(SIGMAS4, PostprocessConfig(nms="none"))
    assert len(unsuppressed) == 4
    assert unsuppressed[0]["score"] == pytest.approx(0.45)


def test_postprocess_config_rejects_unknown_nms() -> None:
    with pytest.raises(ValueError, match="nms must be one of"):
        PostprocessConfig(nms="greedy")


def test_deduplicate_and_gathered_arrays() -> None:
    keypoints = np.stack([pose(0), pose(100), pose(200), pose(300)])
    instances = _instances(keypoints, np.ones((4, 4)), np.ones(4), [1, 2, 3, 1], [3, 1, 2, 1])
    unique = instances.deduplicate()
    np.testing.assert_array_equal(unique.indices, [1, 2, 3])
    np.testing.assert_array_equal(unique.image_ids, [2, 3, 1])
    # An all-gather returns (world, N, ...) arrays; from_arrays flattens the rank dimension.
    gathered = {k: torch.as_tensor(np.stack([v[:2], v[2:]])) for k, v in instances.as_arrays().items()}
    rebuilt = DecodedInstances.from_arrays(gathered)
    for key, value in instances.as_arrays().items():
        np.testing.assert_array_equal(getattr(rebuilt, key), value)


def test_flip_test_averages_with_flipped_back_prediction() -> None:
    class MirrorCodec:
        def flip_back(self, heatmaps: torch.Tensor, flip_index: np.ndarray) -> torch.Tensor:
            return torch.flip(heatmaps, dims=[3])[:, torch.as_tensor(flip_index)]

    images = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 4)
    model = lambda x: [x * 0, x[:, :2] * 2]  # noqa: E731 - intermediate outputs: the last one counts
    averaged = flip_test(model, images, MirrorCodec(), np.array([1, 0]))
    # flip_back(model(flip(x))) = 2 * x with channels 0 and 1 swapped.
    expected = (images[:, :2] * 2 + images[:, [1, 0]] * 2) / 2
    torch.testing.assert_close(averaged, expected)
