"""Error taxonomy (good/jitter/inversion/swap/miss), per-joint breakdown, torso PCK and the gallery."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.evaluation.analysis import ERROR_CLASSES, analyze_errors
from hrnet_train.evaluation.coco_metric import load_coco
from hrnet_train.evaluation.gallery import GT_COLOR, PRED_COLOR, render_worst_gallery
from hrnet_train.evaluation.pck import torso_pck

COCO17 = load_keypoint_set("coco17")
LSPET14 = load_keypoint_set("lspet14")
# 17 joints on a 60-px grid: far enough apart that no joint passes for a neighbour (ks < 0.5).
LAYOUT = np.array([[100.0 + 60 * (k % 6), 100.0 + 60 * (k // 6)] for k in range(17)])
AREA = 10000.0


def _annotation(ann_id: int, image_id: int, points: np.ndarray, labelled: np.ndarray) -> dict:
    keypoints = np.concatenate([points * labelled[:, None], 2.0 * labelled[:, None]], axis=1)
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": AREA,
        "bbox": [float(points[:, 0].min()), float(points[:, 1].min()), 300.0, 120.0],
        "keypoints": keypoints.ravel().tolist(), "num_keypoints": int(labelled.sum()),
    }  # fmt: skip


def _hand_built() -> tuple[COCO, list[dict]]:
    person_a, person_b = LAYOUT, LAYOUT + [1000.0, 0.0]
    b_labelled = np.ones(17)
    b_labelled[16] = 0  # B's right ankle is unlabelled: never counted
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 2000, "height": 1000}, {"id": 2, "width": 500, "height": 500}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            _annotation(11, 1, person_a, np.ones(17)),
            _annotation(12, 1, person_b, b_labelled),
            _annotation(21, 2, LAYOUT, np.ones(17)),  # no prediction: unmatched
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    pred_a = person_a.copy()
    pred_a[9] += [10.0, 0.0]  # left wrist 10 px off: ks 0.72 -> jitter
    pred_a[10] = person_a[9]  # right wrist on the left wrist -> inversion
    pred_a[15] = person_b[15]  # left ankle on B's left ankle -> swap
    pred_a[0] += [0.0, 500.0]  # nose nowhere -> miss
    far_away = LAYOUT + [5000.0, 5000.0]

    def result(points: np.ndarray, score: float) -> dict:
        keypoints = np.concatenate([points, np.ones((17, 1))], axis=1)
        return {"image_id": 1, "category_id": 1, "keypoints": keypoints.ravel().tolist(), "score": score}

    return coco, [result(far_away, 0.9), result(pred_a, 0.8), result(person_b, 0.7)]


def test_error_classes_on_hand_built_poses() -> None:
    coco, results = _hand_built()
    analysis = analyze_errors(coco, results, COCO17)
    assert analysis.totals == {"good": 29, "jitter": 1, "inversion": 1, "swap": 1, "miss": 1}
    expected_class = {0: "miss", 9: "jitter", 10: "inversion", 15: "swap"}
    for joint, name in expected_class.items():
        assert analysis.counts[joint, ERROR_CLASSES.index(name)] == 1, COCO17.names[joint]
    assert analysis.counts[16].tolist() == [1, 0, 0, 0, 0]  # only A's right ankle is labelled
    assert (analysis.num_unmatched_gt, analysis.num_unmatched_results) == (1, 1)
    # Greedy by OKS: the perfect pair (B, OKS 1) is taken first.
    assert [(m.annotation_id, m.result_index) for m in analysis.matches] == [(12, 2), (11, 1)]
    assert analysis.matches[0].oks == 1.0
    assert analysis.matches[1].oks == pytest.approx((13 + np.exp(-100 / (2 * AREA * (2 * 0.062) ** 2))) / 17, abs=1e-6)
    assert [m.annotation_id for m in analysis.worst(1)] == [11]
    np.testing.assert_allclose(analysis.accuracy[[0, 9, 10, 15, 16]], [0.5, 1.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(analysis.mean_normalized_error[[0, 9]], [500 / 100 / 2, 10 / 100 / 2])
    table = analysis.to_markdown()
    assert "| nose | 2 | 50.0 | 2.5000 | 50.0 | 0.0 | 0.0 | 0.0 | 50.0 |" in table
    assert "2 matched persons, 1 unmatched ground-truth persons, 1 unmatched predictions" in table


def test_error_breakdown_of_reference_results(coco_mini: Path) -> None:
    results = coco_mini / "reference_results/yolo11n_pose_keypoints_val2017_mini_results.json"
    analysis = analyze_errors(coco_mini / "annotations/person_keypoints_val2017_mini.json", results, COCO17)
    assert analysis.totals == {"good": 378, "jitter": 167, "inversion": 7, "swap": 1, "miss": 82}
    assert (len(analysis.matches), analysis.num_unmatched_gt, analysis.num_unmatched_results) == (64, 4, 165)
    assert int(analysis.counts.sum()) == 635
    assert round(analysis.worst(1)[0].oks, 4) == 0.144


def test_worst_gallery_png(coco_mini: Path, tmp_path: Path) -> None:
    gt = load_coco(coco_mini / "annotations/person_keypoints_val2017_mini.json")
    results = load_results_list(coco_mini)
    analysis = analyze_errors(gt, results, COCO17)
    out = render_worst_gallery(analysis, gt, results, coco_mini / "images/val2017", COCO17, tmp_path / "g.png", n=6)
    grid = cv2.imread(str(out))
    assert grid.shape == (2 * 256, 4 * 192, 3)
    first_tile = grid[:256, :192]
    assert (first_tile == GT_COLOR).all(axis=2).sum() > 20
    assert (first_tile == PRED_COLOR).all(axis=2).sum() > 20
    assert (grid[256:, 2 * 192 :] == 0).all()  # 6 tiles in a 4-column grid: two blank tiles
    with pytest.raises(FileNotFoundError, match=r"gallery: image file not found: .* \(image id"):
        render_worst_gallery(analysis, gt, results, tmp_path, COCO17, tmp_path / "h.png", n=1)


def load_results_list(coco_mini: Path) -> list[dict]:
    import json

    return json.loads((coco_mini / "reference_results/yolo11n_pose_keypoints_val2017_mini_results.json").read_text())


def test_torso_pck_counts_only_visible_joints_of_valid_persons() -> None:
    gt = np.tile(np.array([[30.0 * k, 0.0] for k in range(14)]), (3, 1, 1))  # torso |j9 - j2| = 210
    visible = np.ones((3, 14))
    pred = gt.copy()
    pred[0, 0] += [43.0, 0.0]  # beyond 0.2 x 210 = 42: wrong
    pred[0, 13] += [0.0, 41.9]  # within: right
    visible[1, 9] = 0  # person 1 lacks its left shoulder: not evaluated at all
    pred[1] += 1000.0
    visible[2, 5] = 0  # an unlabelled joint is never counted
    pred[2, 5] += 1000.0
    pred[2, 12] += [50.0, 0.0]  # neck wrong
    result = torso_pck(pred, gt, visible, LSPET14)
    assert result.num_persons == 2
    assert result.counts.tolist() == [2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert result.per_joint[[0, 5, 12, 13]].tolist() == [0.5, 1.0, 0.5, 1.0]
    assert result.limbs == 22 / 23
    assert result.all_joints == 25 / 27
    assert "| limbs (12 joints) | 95.7 | 23 |" in result.to_markdown()
    with pytest.raises(ValueError, match="not in keypoint set"):
        torso_pck(pred, gt, visible, LSPET14, limb_joints=("elbow",))
    with pytest.raises(ValueError, match="torso_pck expects"):
        torso_pck(pred[:, :13], gt, visible, LSPET14)
