"""Splits without a single labelled joint: a train split is refused naming its file; a val split has no
AP (n/a, not pycocotools' -1) and chooses no "best" checkpoint by it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_divergence import copy_dataset
from test_training import SYNTHETIC, _config

from hrnet_train.config_schema import ConfigError
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.evaluation.coco_metric import UNDEFINED_NOTE, evaluate_coco_keypoints, format_stats_table, load_coco
from hrnet_train.training.runner import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic_unlabelled"), **SYNTHETIC)


def _unlabel(only: str):
    """An edit for copy_dataset: every visibility flag of split ``only`` set to 0 (coordinates kept)."""
    def edit(split: str, coco: dict) -> None:
        if split == only:
            for annotation in coco["annotations"]:
                annotation["keypoints"][2::3] = [0] * (len(annotation["keypoints"]) // 3)
                annotation["num_keypoints"] = 0
    return edit


def test_train_split_without_labelled_joints_is_refused_naming_the_file(tiny_root: Path, tmp_path: Path) -> None:
    root = copy_dataset(tiny_root, tmp_path / "data", _unlabel("train"))
    config, resolved = _config(root, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"person_keypoints_train.json: no training instance has a labelled joint "
                                          r"\(0 of 27 instances with a visibility flag > 0\)"):
        run_training(config, resolved)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_val_split_without_labelled_joints_reports_na_and_no_best(tiny_root: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_dataset(tiny_root, tmp_path / "data", _unlabel("val"))
    config, resolved = _config(root, tmp_path / "run", "trainer.max_epochs=1")
    report = run_training(config, resolved)
    assert math.isnan(report["stats"]["AP"]) and report["best_checkpoint"] is None
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "run" / "checkpoints").glob("best*")) == []
    out = capsys.readouterr().out
    assert "| epoch 0 | n/a |" in out and UNDEFINED_NOTE in out and "-1.0000 | 0.0000" not in out
    assert "best checkpoint none (no validation defined the monitored metric" in out


def test_metric_of_ground_truth_without_labelled_joints_is_undefined(tiny_root: Path, tmp_path: Path) -> None:
    root = copy_dataset(tiny_root, tmp_path / "data", _unlabel("val"))
    coco = load_coco(root / "annotations" / "person_keypoints_val.json")
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in coco.dataset["annotations"]]
    stats = evaluate_coco_keypoints(coco, results)
    assert all(math.isnan(value) for value in stats.values())
    table = format_stats_table({"run": stats}, "gt")
    assert "| run | n/a | n/a |" in table and table.endswith(UNDEFINED_NOTE)
