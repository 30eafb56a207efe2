"""What ``data.skip_corrupt`` / ``data.drop_invalid_boxes`` skip leaves a run's numbers and is said at its
end: evaluate.py leaves a skipped image out of ground truth and predictions alike and its metrics table
says so; train.py's final report prints the same summary line. Damaged files are copies of coco_tiny
(and of the synthetic set) written to tmp_path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from test_image_reader import damaged
from test_training import _config

from hrnet_train.data.coco import load_coco, without
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.evaluation.coco_metric import evaluate_coco_keypoints
from hrnet_train.evaluation.report_writer import RESULTS_FILE, TABLE_FILE
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.models import create_model
from hrnet_train.paths import REPO_ROOT, config_dir
from hrnet_train.training.runner import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_GT = "annotations/person_keypoints_val2017_tiny.json"
FAST = ["model=hrnet_tiny", "data.input_size=128x96", "accelerator=cpu", "batch_size=16"]
DAMAGED_ID, DAMAGED_NAME = 785, "000000000785.jpg"


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "hrnet_tiny_random.pth"
    torch.save(create_model("hrnet_tiny", num_joints=17).state_dict(), path)
    return path


@pytest.fixture()
def damaged_tiny(tmp_path: Path, coco_tiny: Path) -> Path:
    """coco_tiny with image 785's compressed data overwritten (it decodes, with libjpeg's warning)."""
    root = tmp_path / "coco_tiny"
    shutil.copytree(coco_tiny, root)
    image = root / "images" / "val2017" / DAMAGED_NAME
    image.chmod(0o644)
    image.write_bytes(damaged(image.read_bytes()))
    return root


def evaluate(root: Path, out: Path, ckpt: Path, *extra: str) -> dict:
    overrides = [f"ckpt={ckpt}", *FAST, f"data.root={root}", f"data.ann_file={TINY_GT}", "data.img_dir=images/val2017",
                 f"output_dir={out}", *extra]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return run_from_config(compose(config_name="eval", overrides=overrides))


@pytest.mark.parametrize("workers", [0, 1])
def test_evaluate_skip_corrupt_leaves_the_image_out_of_gt_and_predictions(damaged_tiny, tiny_pth, tmp_path, workers) -> None:
    out = tmp_path / "eval"
    metrics = evaluate(damaged_tiny, out, tiny_pth, "data.skip_corrupt=true", f"num_workers={workers}")
    assert metrics["skipped"] == {"corrupt image": 1} and metrics["skipped_image_ids"] == [DAMAGED_ID]
    assert "skipped: 1 corrupt image (left out of the evaluation" in (out / TABLE_FILE).read_text()
    results = json.loads((out / RESULTS_FILE).read_text())
    assert DAMAGED_ID not in {r["image_id"] for r in results}
    # scored against the ground truth without the skipped image: its person is not counted as missed
    full = load_coco(damaged_tiny / TINY_GT)
    assert full.getAnnIds(imgIds=[DAMAGED_ID])  # the image has a person that would count as missed
    assert metrics["stats"] == evaluate_coco_keypoints(without(full, image_ids=[DAMAGED_ID]), results)


def test_evaluate_without_the_option_names_the_image_and_the_option(damaged_tiny, tiny_pth, tmp_path) -> None:
    with pytest.raises(ValueError, match=rf"Corrupt JPEG data.*{DAMAGED_NAME} \(image id {DAMAGED_ID}.*data.skip_corrupt=true"):
        evaluate(damaged_tiny, tmp_path / "eval", tiny_pth, "num_workers=0")


def test_evaluate_py_names_a_damaged_image_in_one_line_with_loader_workers(damaged_tiny, tiny_pth, tmp_path) -> None:
    """A worker's error reaches the main process wrapped in the worker's traceback; the CLI prints its message."""
    args = [f"ckpt={tiny_pth}", *FAST, f"data.root={damaged_tiny}", f"data.ann_file={TINY_GT}",
            "data.img_dir=images/val2017", "num_workers=1", f"output_dir={tmp_path / 'out'}"]
    done = subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 1
    failure = [line for line in done.stderr.splitlines() if line.startswith("evaluate.py: failed: ")]
    assert len(failure) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"{DAMAGED_NAME} (image id {DAMAGED_ID}" in failure[0] and "data.skip_corrupt=true" in failure[0]


def test_evaluate_counts_missing_images_and_invalid_boxes(coco_tiny, tiny_pth, tmp_path) -> None:
    root = tmp_path / "coco_tiny"
    shutil.copytree(coco_tiny, root)
    (root / "images" / "val2017" / DAMAGED_NAME).unlink()
    gt = root / TINY_GT
    data = json.loads(gt.read_text())
    data["annotations"][1]["bbox"] = [-80.0, 10.0, 50.0, 50.0]  # image 40083: wholly left of the image
    gt.chmod(0o644)
    gt.write_text(json.dumps(data))
    metrics = evaluate(root, tmp_path / "eval", tiny_pth, "num_workers=0", "data.skip_corrupt=true",
                       "data.drop_invalid_boxes=true")
    assert metrics["skipped"] == {"invalid box": 1, "missing image": 1}
    assert "skipped: 1 invalid box, 1 missing image" in (tmp_path / "eval" / TABLE_FILE).read_text()
    assert metrics["throughput"]["instances"] == 12 - 2


def test_training_reports_what_was_skipped(tmp_path, capsys) -> None:
    root = ensure_synthetic_dataset(tmp_path / "synthetic", num_train=8, num_val=2, seed=3, image_size="128x128",
                                    min_person_height=40.0, workers=1)
    train_ann = root / "annotations" / "person_keypoints_train.json"
    data = json.loads(train_ann.read_text())
    data["annotations"][0]["keypoints"][2] = float("nan")  # a NaN visibility flag
    train_ann.write_text(json.dumps(data))
    first_image = root / "images" / "train" / data["images"][1]["file_name"]
    first_image.write_bytes(first_image.read_bytes()[:200])
    config, resolved = _config(root, tmp_path / "run", "trainer.max_epochs=1", "data.batch_size=4",
                               "data.skip_corrupt=true", "data.num_workers=1")
    report = run_training(config, resolved)
    assert report["skipped"] == {"corrupt annotation": 1, "corrupt image": 1}
    assert "skipped: 1 corrupt annotation, 1 corrupt image" in capsys.readouterr().out


def test_train_py_names_a_damaged_image_in_one_line(tmp_path) -> None:
    """Without data.skip_corrupt a damaged training image met by a loader worker ends the run with exit 1
    and one line naming the file and the option (no worker traceback)."""
    root = ensure_synthetic_dataset(tmp_path / "synthetic", num_train=8, num_val=2, seed=3, image_size="128x128",
                                    min_person_height=40.0, workers=1)
    data = json.loads((root / "annotations" / "person_keypoints_train.json").read_text())
    name = data["images"][1]["file_name"]
    image = root / "images" / "train" / name
    image.write_bytes(image.read_bytes()[:200])
    args = ["model=hrnet_tiny", f"data.root={root}", "data.generate_synthetic=false", "data.input_size=128x96",
            "data.batch_size=4", "data.num_workers=1", "trainer.max_epochs=1", "trainer.precision=32",
            "trainer.num_threads=1", f"output_dir={tmp_path / 'run'}"]
    done = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 1, done.stderr[-2000:]
    failure = [line for line in done.stderr.splitlines() if line.startswith("train.py: failed: ")]
    assert len(failure) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert name in failure[0] and "data.skip_corrupt=true" in failure[0]
