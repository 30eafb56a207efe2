"""Segmentation as a training task end to end: ``experiment=seg_synthetic_cpu`` on a small synthetic set beats
the all-background baseline, its checkpoint carries the task, class set, crop and align_corners and loads
alone, evaluate.py reproduces the training's final mIoU from that checkpoint, TensorBoard gets the
overlays, OHEM and the poly schedule come from the config, and fine-tuning starts from given weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_training import compose_train_config

from hrnet_train.config_schema import register_resolvers
from hrnet_train.data.seg_synthetic import synthetic_seg_dataset
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.evaluation.seg_runner import OVERLAYS_FILE, PREDICTIONS_DIR, TABLE_FILE
from hrnet_train.paths import config_dir
from hrnet_train.trained_model import load_trained_model, read_checkpoint, resume_mismatches
from hrnet_train.training.runner import run_training
from hrnet_train.training.tasks import build_task

register_resolvers()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64
SYNTHETIC = {"num_train": 96, "num_val": 6, "seed": 5, "image_size": f"{SIZE}x{SIZE}", "min_person_height": 32.0, "workers": 1}
# The quick run: the experiment's W18-Small-v1 on 96 images of 64x64 for 12 epochs (144 steps), fp32 for exact numbers.
QUICK = [f"data.crop_size={SIZE}x{SIZE}", f"data.augment.base_size={SIZE}", "data.batch_size=8", "data.val_batch_size=4",
         "data.num_workers=0", "trainer.max_epochs=12", "trainer.precision=32", "trainer.channels_last=false",
         "trainer.deterministic=true", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
         "trainer.check_val_every_n_epoch=4", "optimizer.lr=4e-3", "optimizer.base_batch_size=8",
         "scheduler.warmup_iters=6", "eval.num_vis_images=2"]


@pytest.fixture(scope="module")
def seg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("seg_synthetic"), **SYNTHETIC)


def _config(root: Path, run_dir: Path, *overrides: str):
    base = ["experiment=seg_synthetic_cpu", f"data.root={root}", "data.generate_synthetic=false", *QUICK, *overrides]
    return compose_train_config(run_dir, base)


@pytest.fixture(scope="module")
def quick_run(seg_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    run_dir = tmp_path_factory.mktemp("seg_run")
    config, resolved = _config(seg_root, run_dir)
    return run_training(config, resolved)


def _background_share(root: Path) -> float:
    """Labelled pixels that are background in the val split: the all-background prediction's IoU_background."""
    val = synthetic_seg_dataset(root, "val", train=False)
    labels = np.concatenate([val[i]["label"].numpy().ravel() for i in range(len(val))])
    labels = labels[labels != 255]
    return float((labels == 0).mean())


def test_quick_run_beats_the_all_background_baseline(quick_run: dict, seg_root: Path) -> None:
    stats = quick_run["stats"]
    baseline_miou = _background_share(seg_root) / 2  # background IoU = its share, person IoU 0
    assert quick_run["task"] == "segmentation" and quick_run["epochs"] == 12
    assert stats["IoU_person"] > 0.2 and stats["mIoU"] > baseline_miou + 0.1, (stats, baseline_miou)
    assert stats["num_pixels"] == sum(int((synthetic_seg_dataset(seg_root, "val", train=False)[i]["label"] != 255).sum())
                                      for i in range(SYNTHETIC["num_val"]))
    assert quick_run["complexity"]["params"] == 1_540_819 - 17 * (240 + 1)  # hrnet_w18_small_v1_seg: 19 classes (spec B.4) -> 2
    assert quick_run["input_size"] == f"{SIZE}x{SIZE}" and quick_run["model"] == "hrnet_w18_small_v1_seg"


def test_checkpoint_carries_the_task_and_loads_alone(quick_run: dict) -> None:
    content = read_checkpoint(quick_run["best_checkpoint"])  # weights_only=True
    hp = content["hyper_parameters"]
    assert (hp["task"], hp["model_name"], hp["classes_name"], hp["num_classes"]) == (
        "segmentation", "hrnet_w18_small_v1_seg", "synthetic_person", 2)
    assert hp["classes"]["names"] == ["background", "person"] and hp["input_size"] == [SIZE, SIZE]
    assert hp["align_corners"] is False and hp["eval"] == {"scales": [1.0], "flip": False, "base_size": None, "window": None}
    assert content["lr_schedulers"][0]["name"] == "poly"
    trained = load_trained_model(quick_run["best_checkpoint"])
    assert trained.task == "segmentation" and trained.classes.names == ("background", "person")
    assert trained.keypoints is None and trained.codec is None and trained.input_size == (SIZE, SIZE)
    assert trained.network(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 2, SIZE // 4, SIZE // 4)


def test_evaluate_py_reproduces_the_training_mIoU(quick_run: dict, seg_root: Path, tmp_path: Path) -> None:
    """The same val split, single scale, through evaluate.py: the numbers of the training's final validation."""
    overrides = [f"ckpt={quick_run['best_checkpoint']}", "data=seg_synthetic", f"data.root={seg_root}",
                 "data.generate_synthetic=false", "data.val_batch_size=4", "num_workers=0", "accelerator=cpu",
                 "save_predictions=true", f"output_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        metrics = run_from_config(compose(config_name="eval", overrides=overrides))
    for name in ("mIoU", "pixel_acc", "IoU_person", "num_pixels"):
        assert metrics["stats"][name] == pytest.approx(quick_run["stats"][name], abs=1e-9), name
    assert json.loads((tmp_path / "metrics.json").read_text())["stats"] == metrics["stats"]
    assert metrics["throughput"]["images"] == SYNTHETIC["num_val"] and (tmp_path / TABLE_FILE).is_file()
    overlays = cv2.imread(str(tmp_path / OVERLAYS_FILE))
    assert overlays.shape[1] == 3 * SIZE and overlays.shape[0] > 4 * SIZE  # 4 panels of image | truth | prediction
    written = sorted((tmp_path / PREDICTIONS_DIR).glob("*.png"))
    assert len(written) == SYNTHETIC["num_val"]
    assert set(np.unique(cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED))) <= {0, 1}  # class ids


def test_tensorboard_gets_curves_and_overlays(quick_run: dict) -> None:
    events = EventAccumulator(str(Path(quick_run["run_dir"]) / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"train/loss_step", "train/lr", "val/mIoU", "val/IoU_person", "val/pixel_acc"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/mIoU")] != [] and "val/overlays" in events.Tags()["images"]
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs[-1] < 0.2 * max(lrs)  # poly decays towards 0 over the run


def test_ohem_and_fine_tuning_come_from_the_config(seg_root: Path, quick_run: dict, tmp_path: Path) -> None:
    config, resolved = _config(seg_root, tmp_path, "loss=seg_ohem", "loss.ohem_min_kept=5000",
                               f"init_from={quick_run['best_checkpoint']}")
    task = build_task(config, resolved)
    loss = task.module.loss
    assert (loss.ohem, loss.ohem_thresh, loss.ohem_min_kept, loss.class_weights) == (True, 0.9, 5000, None)
    started = task.module.model.state_dict()
    trained = load_trained_model(quick_run["best_checkpoint"]).network.state_dict()
    assert all(torch.equal(started[k], trained[k]) for k in trained)


def test_resume_checks_compare_task_classes_and_crop(quick_run: dict, seg_root: Path, tmp_path: Path) -> None:
    _, same = _config(seg_root, tmp_path)
    assert resume_mismatches(quick_run["best_checkpoint"], same) == []
    _, other = _config(seg_root, tmp_path, "data.crop_size=32x32", "data.parts=true")
    assert resume_mismatches(quick_run["best_checkpoint"], other) == [
        "classes synthetic_person (2) vs synthetic_parts (18)", f"data.crop_size {SIZE}x{SIZE} vs 32x32"]
    pose = {**same, "task": "pose"}
    assert resume_mismatches(quick_run["best_checkpoint"], pose) == ["task segmentation (checkpoint) vs pose (this run)"]
