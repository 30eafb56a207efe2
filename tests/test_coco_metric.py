"""COCO OKS metric against the oracle figures in shared/data/README.md, plus its input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrnet_train.evaluation.coco_metric import (
    BBOX_STAT_NAMES,
    STAT_NAMES,
    evaluate_coco_keypoints,
    format_stats_table,
    load_coco,
)
from hrnet_train.decoding.nms import COCO_SIGMAS

MINI_GT = "annotations/person_keypoints_val2017_mini.json"
MINI_RESULTS = "reference_results/yolo11n_pose_keypoints_val2017_mini_results.json"
TINY_GT = "annotations/person_keypoints_val2017_tiny.json"
TINY_RESULTS = "reference_results/yolo11n_pose_keypoints_val2017_tiny_results.json"


def _rounded(stats: dict[str, float]) -> list[float]:
    return [round(stats[name], 4) for name in STAT_NAMES]


def test_coco_mini_reference_results_match_oracle(coco_mini: Path) -> None:
    stats = evaluate_coco_keypoints(coco_mini / MINI_GT, coco_mini / MINI_RESULTS)
    assert list(stats) == list(STAT_NAMES)
    assert _rounded(stats) == [0.4525, 0.7081, 0.5776, 0.4294, 0.4934, 0.5132, 0.7647, 0.6176, 0.4882, 0.5382]


def test_coco_tiny_reference_results_match_oracle(coco_tiny: Path) -> None:
    stats = evaluate_coco_keypoints(coco_tiny / TINY_GT, coco_tiny / TINY_RESULTS)
    assert _rounded(stats) == [0.6977, 1.0, 0.9043, 0.6386, 0.7525, 0.7167, 1.0, 0.9167, 0.66, 0.7571]


def test_person_boxes_bbox_ap_matches_oracle(coco_mini: Path) -> None:
    dets = coco_mini / "person_detection_results/yolo11n_pose_person_dets_val2017_mini.json"
    stats = evaluate_coco_keypoints(coco_mini / MINI_GT, dets, iou_type="bbox")
    assert list(stats) == list(BBOX_STAT_NAMES)
    assert (round(stats["AP"], 4), round(stats["AP50"], 3)) == (0.4359, 0.562)


def test_list_input_is_not_mutated_and_explicit_coco_sigmas_change_nothing(coco_tiny: Path) -> None:
    gt = load_coco(coco_tiny / TINY_GT)
    results = json.loads((coco_tiny / TINY_RESULTS).read_text())
    keys_before = [sorted(r) for r in results]
    from_list = evaluate_coco_keypoints(gt, results, sigmas=COCO_SIGMAS)
    assert [sorted(r) for r in results] == keys_before  # loadRes would add area/id/bbox in place
    assert from_list == evaluate_coco_keypoints(gt, coco_tiny / TINY_RESULTS)
    # Wider sigmas forgive larger errors: strictly higher AP on the same predictions.
    assert evaluate_coco_keypoints(gt, results, sigmas=COCO_SIGMAS * 2)["AP"] > from_list["AP"]


def test_ground_truth_as_predictions_scores_perfect(coco_mini: Path) -> None:
    gt = load_coco(coco_mini / MINI_GT)
    perfect = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt.dataset["annotations"]
        if a["num_keypoints"] > 0 and not a["iscrowd"]
    ]
    assert len(perfect) == 68
    stats = evaluate_coco_keypoints(gt, perfect)
    assert stats["AP"] == 1.0 and stats["AR"] == 1.0


def test_clear_errors(coco_tiny: Path, tmp_path: Path) -> None:
    gt = load_coco(coco_tiny / TINY_GT)
    with pytest.raises(ValueError, match="no results to evaluate"):
        evaluate_coco_keypoints(gt, [])
    foreign = [{"image_id": 123456789, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}]
    with pytest.raises(ValueError, match="image_id 123456789, which is not in the ground truth"):
        evaluate_coco_keypoints(gt, foreign)
    with pytest.raises(ValueError, match="expected 3 x 17"):
        evaluate_coco_keypoints(gt, [{**foreign[0], "image_id": 785, "keypoints": [0.0] * 42}], sigmas=COCO_SIGMAS)
    with pytest.raises(ValueError, match="has no 'score' field"):
        evaluate_coco_keypoints(gt, [{"image_id": 785, "keypoints": [0.0] * 51}])
    with pytest.raises(FileNotFoundError, match="results file not found"):
        evaluate_coco_keypoints(gt, tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        evaluate_coco_keypoints(tmp_path / "missing_gt.json", [])
    not_a_list = tmp_path / "dict.json"
    not_a_list.write_text("{}")
    with pytest.raises(ValueError, match="expected a JSON list"):
        evaluate_coco_keypoints(gt, not_a_list)
    with pytest.raises(ValueError, match="iou_type"):
        evaluate_coco_keypoints(gt, foreign, iou_type="segm")


def test_table_is_labelled_with_box_source() -> None:
    stats = dict(zip(STAT_NAMES, np.linspace(0.1, 1.0, 10)))
    gt_table = format_stats_table({"w32_256x192": stats}, "gt")
    assert gt_table.splitlines()[0] == (
        "| run | GT-box AP | AP50 | AP75 | APm | APl | AR | AR50 | AR75 | ARm | ARl |"
    )
    assert gt_table.splitlines()[2] == (
        "| w32_256x192 | 0.1000 | 0.2000 | 0.3000 | 0.4000 | 0.5000 | 0.6000 | 0.7000 | 0.8000 | 0.9000 | 1.0000 |"
    )
    assert "| detector-box AP |" in format_stats_table({"r": stats}, "detector")
    with pytest.raises(ValueError, match="box_source"):
        format_stats_table({"r": stats}, "yolo")
    with pytest.raises(ValueError, match="lack"):
        format_stats_table({"r": {"AP": 0.5}}, "gt")
