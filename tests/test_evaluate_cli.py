"""evaluate.py end to end: official-format .pth files, detector boxes, results files, format_only, DDP.

The network is a randomly initialised ``hrnet_tiny`` saved as a bare state_dict (the official
checkpoint format) at 128x96, so a run takes seconds on a CPU; its AP is meaningless, so the tests
check counts, settings, files and that the written numbers are what the metric code gives for the
written results. The results-file mode reproduces the documented YOLO oracle stats exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from hrnet_train.config_schema import ConfigError
from hrnet_train.evaluation.coco_metric import STAT_NAMES, evaluate_coco_keypoints
from hrnet_train.evaluation.report_writer import METRICS_FILE, RESULTS_FILE
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.models import create_model
from hrnet_train.paths import REPO_ROOT, config_dir

MINI_GT = "annotations/person_keypoints_val2017_mini.json"
TINY_GT = "annotations/person_keypoints_val2017_tiny.json"
TINY_DETS = "person_detection_results/COCO_val2017_detections_AP_H_56_person_tiny.json"
YOLO_MINI = "reference_results/yolo11n_pose_keypoints_val2017_mini_results.json"
# shared/data/README.md: COCOeval stats of the YOLO11n-pose results on coco_mini val.
YOLO_MINI_STATS = [0.4525, 0.7081, 0.5776, 0.4294, 0.4934, 0.5132, 0.7647, 0.6176, 0.4882, 0.5382]
FAST = ["model=hrnet_tiny", "data.input_size=128x96", "num_workers=0", "accelerator=cpu", "batch_size=16"]


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "hrnet_tiny_random.pth"
    # DataParallel-style keys: evaluate.py must strip the "module." prefix.
    state = {f"module.{k}": v for k, v in create_model("hrnet_tiny", num_joints=17).state_dict().items()}
    torch.save(state, path)
    return path


def _run(overrides: list[str]) -> dict | None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=overrides)
    return run_from_config(cfg)


def _coco_args(root: Path, ann: str) -> list[str]:
    return [f"data.root={root}", f"data.ann_file={ann}", "data.img_dir=images/val2017"]


def test_state_dict_on_coco_mini_writes_every_output(
    coco_mini: Path, tiny_pth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = _run([f"ckpt={tiny_pth}", *FAST, *_coco_args(coco_mini, MINI_GT), f"output_dir={tmp_path}"])
    printed = capsys.readouterr().out
    assert metrics == json.loads((tmp_path / METRICS_FILE).read_text())
    assert list(metrics["stats"]) == list(STAT_NAMES)
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    # The written stats are the metric of the written results file.
    assert metrics["stats"] == evaluate_coco_keypoints(coco_mini / MINI_GT, results)
    assert metrics["throughput"]["instances"] == 68  # every GT person with keypoints
    settings = metrics["settings"]
    assert (settings["kind"], settings["model"], settings["input_size"], settings["boxes"]) == (
        "state_dict", "hrnet_tiny", "128x96", "gt"
    )
    assert settings["flip_test"] is True
    assert settings["codec"] == {"name": "legacy", "flip_shift": True, "sigma": 2.0, "post_process": True}
    assert settings["postprocess"] == {"in_vis_thre": 0.2, "nms": "oks", "oks_thre": 0.9, "soft_update_scores": False}
    assert "| run | GT-box AP | AP50 |" in printed and "| error class | keypoints | share (%) |" in printed
    analysis = (tmp_path / "error_analysis.md").read_text()
    assert analysis.count("\n| left_ankle |") == 1 and "## Error classes" in analysis
    gallery = cv2.imread(metrics["gallery"])
    matched = sum(metrics["error_classes"].values()) > 0
    assert matched and gallery is not None and gallery.shape[0] % 256 == 0 and gallery.shape[1] % 192 == 0
    assert "pck" not in metrics  # COCO is multi-person: no torso PCK by default


def test_results_file_mode_reproduces_yolo_oracle(coco_mini: Path, tmp_path: Path) -> None:
    metrics = _run([f"results={coco_mini / YOLO_MINI}", f"data.ann_file={coco_mini / MINI_GT}", f"output_dir={tmp_path}"])
    assert [round(metrics["stats"][name], 4) for name in STAT_NAMES] == YOLO_MINI_STATS
    assert metrics["box_source"] == "results-file AP"  # the file's boxes are not ours to name
    assert sum(metrics["error_classes"].values()) > 0
    assert "gallery" not in metrics  # no image dir given


def test_an_output_that_is_an_input_is_refused_before_any_work(coco_mini: Path, tmp_path: Path) -> None:
    """results=<out>/keypoint_results.json output_dir=<out> (or the GT file named like an output): refused, file kept."""
    results = tmp_path / RESULTS_FILE
    results.write_bytes((coco_mini / YOLO_MINI).read_bytes())
    with pytest.raises(ConfigError, match=f"output {results} is the results file itself; choose another output_dir"):
        _run([f"results={results}", f"data.ann_file={coco_mini / MINI_GT}", f"output_dir={tmp_path}"])
    gt = tmp_path / METRICS_FILE
    gt.write_bytes((coco_mini / MINI_GT).read_bytes())
    with pytest.raises(ConfigError, match="metrics.json is the annotation file itself"):
        _run([f"results={coco_mini / YOLO_MINI}", f"data.ann_file={gt}", f"output_dir={tmp_path}"])
    assert results.read_bytes() == (coco_mini / YOLO_MINI).read_bytes() and gt.read_bytes() == (coco_mini / MINI_GT).read_bytes()


def test_detector_boxes_on_coco_tiny(coco_tiny: Path, tiny_pth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _run(
        [f"ckpt={tiny_pth}", *FAST, *_coco_args(coco_tiny, TINY_GT), "boxes=det", f"det_file={coco_tiny / TINY_DETS}",
         "det_score_thr=0.5", "nms=soft", "flip_test=false", f"output_dir={tmp_path}"]
    )
    assert metrics["throughput"]["instances"] == 18  # detections with score >= 0.5 (of 118)
    assert metrics["box_source"] == "detector-box AP"
    assert (metrics["settings"]["postprocess"]["nms"], metrics["settings"]["flip_test"]) == ("soft", False)
    assert "| run | detector-box AP |" in capsys.readouterr().out
    # Soft-NMS keeps every box (it only decays scores).
    assert len(json.loads((tmp_path / RESULTS_FILE).read_text())) == 18


def test_format_only_writes_results_and_no_metrics(coco_tiny: Path, tiny_pth: Path, tmp_path: Path) -> None:
    _run([f"ckpt={tiny_pth}", *FAST, *_coco_args(coco_tiny, TINY_GT), "boxes=det", f"det_file={coco_tiny / TINY_DETS}",
          "det_score_thr=0.5", "flip_test=false", "format_only=true", f"output_dir={tmp_path}"])
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert len(results) == 18 and all(len(r["keypoints"]) == 51 for r in results)  # OKS-NMS keeps all 18 here
    assert not (tmp_path / METRICS_FILE).exists()


def _evaluate_py(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "evaluate.py"), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def test_wrong_keys_give_a_listing_error_and_exit_code(coco_tiny: Path, tmp_path: Path) -> None:
    state = create_model("hrnet_tiny", num_joints=17).state_dict()
    state["head.renamed.weight"] = state.pop("final_layer.weight")  # one missing, one unexpected key
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    done = _evaluate_py([f"ckpt={bad}", *FAST, *_coco_args(coco_tiny, TINY_GT), f"output_dir={tmp_path / 'out'}"])
    assert done.returncode == 2, done.stderr  # bad input found before inference
    assert f"{bad}: does not match HRNet" in done.stderr
    assert "missing (1)" in done.stderr and "unexpected (1):\n    head.renamed.weight" in done.stderr
    assert not (tmp_path / "out" / RESULTS_FILE).exists()


@pytest.mark.slow  # two fresh processes (gloo): about 60 s on a loaded 2-core machine
def test_two_process_ddp_gathers_without_duplicates(coco_tiny: Path, tiny_pth: Path, tmp_path: Path) -> None:
    # 55 detections (score >= 0.1): an odd count, so DistributedSampler pads rank 1 with a duplicate.
    common = [f"ckpt={tiny_pth}", *FAST, "batch_size=1", *_coco_args(coco_tiny, TINY_GT), "boxes=det",
              f"det_file={coco_tiny / TINY_DETS}", "det_score_thr=0.1", "gallery_size=0"]
    single = _run([*common, f"output_dir={tmp_path / 'one'}"])
    done = _evaluate_py([*common, "devices=2", f"output_dir={tmp_path / 'two'}"], timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    double = json.loads((tmp_path / "two" / METRICS_FILE).read_text())
    assert (single["throughput"]["instances"], double["throughput"]["instances"]) == (55, 55)
    assert double["throughput"]["world_size"] == 2
    assert double["stats"] == single["stats"]
    one = json.loads((tmp_path / "one" / RESULTS_FILE).read_text())
    two = json.loads((tmp_path / "two" / RESULTS_FILE).read_text())
    assert two == one


def test_lightning_checkpoint_brings_its_model_codec_and_size(coco_tiny: Path, tmp_path: Path) -> None:
    # The layout PoseLightningModule checkpoints have: "model."-prefixed weights + checkpoint_hparams.
    from hrnet_train.training.checkpointing import checkpoint_hparams

    model_cfg = {"name": "hrnet_tiny", "head": "v1"}
    keypoints = yaml.safe_load((config_dir() / "keypoints" / "coco17.yaml").read_text())
    resolved = {"model": model_cfg, "keypoints": keypoints, "codec": {"name": "udp", "sigma": 2.0},
                "data": {"color_rgb": True}, "eval": {"flip_test": True}}
    torch.manual_seed(0)
    state = {f"model.{k}": v for k, v in create_model(model_cfg, num_joints=17).state_dict().items()}
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": checkpoint_hparams(resolved, (64, 64), 17)}, ckpt)
    metrics = _run([f"ckpt={ckpt}", "num_workers=0", "accelerator=cpu", *_coco_args(coco_tiny, TINY_GT),
                    "gallery_size=0", f"output_dir={tmp_path / 'out'}"])
    settings = metrics["settings"]
    assert (settings["kind"], settings["model"], settings["input_size"]) == ("checkpoint", "hrnet_tiny", "64x64")
    assert settings["codec"] == {"name": "udp", "flip_shift": False, "sigma": 2.0}
    assert metrics["throughput"]["instances"] == 12
