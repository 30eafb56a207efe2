"""NME / FR / AUC on hand-made cases, per-landmark table, CED plot, annotation-based NME on the 300W sample."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from hrnet_train.evaluation.nme import (
    annotation_nme,
    area_under_ced,
    cumulative_error_distribution,
    evaluate_nme,
    failure_rate,
    plot_ced,
)
from hrnet_train.keypoints import load_keypoint_set

F300W = load_keypoint_set("face300w68")
COFW = load_keypoint_set("cofw29")
AFLW = load_keypoint_set("aflw19")


def faces_300w() -> np.ndarray:
    """Two faces whose outer eye corners (36, 45) are 100 px apart."""
    truth = np.random.default_rng(0).uniform(0, 300, (2, 68, 2))
    truth[:, 36], truth[:, 45] = (100.0, 100.0), (200.0, 100.0)
    return truth


def test_nme_with_interocular_normaliser_by_hand() -> None:
    truth = faces_300w()
    predicted = truth.copy()
    predicted[0] += (3.0, 4.0)          # face 0: every point 5 px off -> 5 / 100 = 0.05
    predicted[1, 10] += (0.0, 68.0)     # face 1: one point 68 px off -> 68 / (68 * 100) = 0.01
    result = evaluate_nme(predicted, truth, F300W)
    assert result.per_image.tolist() == pytest.approx([0.05, 0.01]) and result.nme == pytest.approx(0.03)
    assert result.per_landmark[10] == pytest.approx((0.05 + 0.68) / 2) and result.per_landmark[0] == pytest.approx(0.025)
    assert result.failure_rates == {0.08: 0.0, 0.1: 0.0}
    # CED is 0.5 on [0.01, 0.05), 1 from 0.05: AUC = (0.5 * 0.04 + 0.05) / 0.1 = 0.7, plus at most half a step
    # of trapezoid error at each of the two jumps (they lie on grid points): <= 2 * 0.5 * 1e-4 / 0.1 = 1e-3.
    assert 0.7 <= result.auc <= 0.7 + 1e-3
    table = result.to_markdown()
    assert "| 10 jaw_11 | 36.50 |" in table and "| **all (2 faces)** | **3.00** |" in table and "| FR@0.08 | 0.00 |" in table


def test_cofw_and_aflw_normalisers_by_hand() -> None:
    truth = np.zeros((1, 29, 2))
    truth[0, 8], truth[0, 9] = (10.0, 50.0), (70.0, 130.0)  # |g8 - g9| = 100
    assert evaluate_nme(truth + (0.0, 2.0), truth, COFW).nme == pytest.approx(0.02)
    aflw = np.zeros((2, 19, 2))
    result = evaluate_nme(aflw + (6.0, 8.0), aflw, AFLW, box_sizes=np.array([200.0, 50.0]))
    assert result.per_image.tolist() == pytest.approx([0.05, 0.2]) and result.failure_rates == {0.08: 0.5, 0.1: 0.5}
    with pytest.raises(ValueError, match="normalised by the face box size: pass box_sizes"):
        evaluate_nme(aflw, aflw, AFLW)
    with pytest.raises(ValueError, match=r"normaliser is zero or undefined for face\(s\) \[0\]"):
        evaluate_nme(np.zeros((1, 29, 2)), np.zeros((1, 29, 2)), COFW)
    with pytest.raises(ValueError, match=r"expected predictions and ground truth of shape \(N, 68, 2\)"):
        evaluate_nme(np.zeros((1, 29, 2)), np.zeros((1, 29, 2)), F300W)


def test_failure_rates_and_auc_by_hand() -> None:
    per_image = np.array([0.02005, 0.05005, 0.09005, 0.12])
    assert failure_rate(per_image, 0.08) == 0.5 and failure_rate(per_image, 0.10) == 0.25
    grid, fractions = cumulative_error_distribution(per_image)
    assert len(grid) == 1001 and grid[-1] == 0.1
    assert fractions[200] == 0.0 and fractions[201] == 0.25 and fractions[500] == 0.25 and fractions[-1] == 0.75
    # Exact area: 0.25 * 0.03 + 0.5 * 0.04 + 0.75 * 0.00995 = 0.0349625; jumps at mid-steps make the trapezoid exact.
    assert area_under_ced(per_image) == pytest.approx(0.349625, abs=1e-12)
    assert area_under_ced(np.zeros(3)) == pytest.approx(1.0) and area_under_ced(np.full(3, 0.2)) == 0.0


def test_annotation_nme_on_the_300w_sample(faces: Path) -> None:
    ann_file = faces / "300w" / "test_300w.json"
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann_file))
    raw = {a["id"]: np.asarray(a["keypoints"]).reshape(-1, 3)[:, :2] for a in json.loads(ann_file.read_text())["annotations"]}
    predictions = {ann_id: points + (1.0, 0.0) for ann_id, points in raw.items()}  # 1 px off everywhere
    result = annotation_nme(coco, F300W, predictions)
    interocular = [np.linalg.norm(raw[i][36] - raw[i][45]) for i in sorted(raw)]
    assert result.per_image.tolist() == pytest.approx([1 / d for d in interocular])
    with pytest.raises(ValueError, match=r"no prediction for 1 face annotation\(s\), e.g. ids \[565\]"):
        annotation_nme(coco, F300W, {197: predictions[197]})
    with pytest.raises(ValueError, match="needs 'box_size' in every annotation"):
        annotation_nme(coco, AFLW, {i: p[:19] for i, p in predictions.items()})


def test_ced_plot_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = plot_ced({"model": rng.uniform(0.01, 0.06, 50), "mean shape": rng.uniform(0.05, 0.2, 50)}, tmp_path / "ced.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
