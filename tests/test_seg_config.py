"""Segmentation configs: the experiments compose into the segmentation schema (no keypoint set or codec,
segmentation data/loss/eval sections), the Cityscapes recipe is the official one (spec B.7), and a field
of the other task, of another dataset reader or a pose metric is refused naming it, before training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from hrnet_train.config_schema import (
    ConfigError,
    EvalConfig,
    LossConfig,
    SegEvalConfig,
    SegLossConfig,
    SegTrainConfig,
    TrainConfig,
    check_model_section,
    register_resolvers,
    validate_evaluate_config,
    validate_train_config,
)
from hrnet_train.data.seg_sources import seg_augment_config, seg_classes_of
from hrnet_train.paths import REPO_ROOT, config_dir

register_resolvers()
# Spec B.6: Cityscapes class weights by trainId.
CITYSCAPES_WEIGHTS = [0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539, 0.9843,
                      1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507]


def _compose_cfg(*overrides: str, config_name: str = "train") -> DictConfig:
    """The composed config as train.py validates it (``???`` still a missing value)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    if config_name == "train":
        with open_dict(cfg):
            cfg.run_dir = "/tmp/unused"
    return cfg


def _compose(*overrides: str, config_name: str = "train") -> dict:
    return OmegaConf.to_container(_compose_cfg(*overrides, config_name=config_name), resolve=True)


def test_synthetic_experiment_is_a_segmentation_config_without_pose_sections() -> None:
    raw = _compose("experiment=seg_synthetic_cpu")
    assert "keypoints" not in raw and "codec" not in raw
    config = validate_train_config(raw)
    assert isinstance(config, SegTrainConfig) and (config.keypoints, config.codec) == ({}, {})
    assert isinstance(config.loss, SegLossConfig) and isinstance(config.eval, SegEvalConfig)
    assert (config.model["name"], config.data.dataset, config.data.input_hw) == ("hrnet_w18_small_v1_seg", "synthetic", (128, 128))
    assert (config.scheduler.name, config.scheduler.power, config.callbacks.checkpoint.monitor) == ("poly", 0.9, "val/mIoU")
    assert seg_classes_of(config.data).names == ("background", "person")
    check_model_section(config)


def test_pose_config_keeps_its_sections_and_refuses_segmentation_fields() -> None:
    config = validate_train_config(_compose())
    assert type(config) is TrainConfig and isinstance(config.loss, LossConfig) and isinstance(config.eval, EvalConfig)
    assert config.loss == LossConfig() and config.eval == EvalConfig()  # the loss/eval groups hold the old defaults
    with pytest.raises(ConfigError, match="loss.ohem: unknown field"):
        validate_train_config(_compose("loss=seg_ce"))


def test_cityscapes_experiment_is_the_official_recipe(tmp_path: Path) -> None:
    config = validate_train_config(_compose("experiment=cityscapes_w48", f"data.root={tmp_path}"))
    assert (config.model["name"], config.data.input_hw, config.seed) == ("hrnet_w48_seg", (512, 1024), 304)
    opt = config.optimizer
    assert (opt.name, opt.lr, opt.momentum, opt.weight_decay, opt.base_batch_size) == ("sgd", 0.01, 0.9, 5e-4, 12)
    assert (config.scheduler.name, config.scheduler.power, config.scheduler.warmup_iters) == ("poly", 0.9, 0)
    assert config.trainer.max_epochs == 484 and config.global_batch_size == 12  # 3 per GPU x 4 GPUs
    assert (config.trainer.devices, config.trainer.strategy, config.trainer.uses_gpu) == (4, "ddp", True)  # SyncBN on
    augment = seg_augment_config(config.data)
    assert (augment.crop_size, augment.base_size, augment.scale_factor, augment.flip) == ((512, 1024), 2048, 16, True)
    assert (config.eval.scales, config.eval.flip, config.loss.ohem) == ((1.0,), False, False)
    np.testing.assert_allclose(seg_classes_of(config.data).class_weights, CITYSCAPES_WEIGHTS, atol=1e-7)
    assert config.trainer.lightning_precision == "32-true"


def test_coco_mini_person_experiment_uses_the_shared_files(coco_mini: Path) -> None:
    config = validate_train_config(_compose("experiment=coco_mini_person_cpu"))
    assert (config.data.dataset, config.data.root) == ("coco_person", str(coco_mini))
    assert config.data.val_ann_file == "annotations/person_keypoints_val2017_mini.json"
    assert seg_classes_of(config.data).names == ("background", "person") and config.eval.scales == (0.5,)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["keypoints=coco17"], "keypoints: a segmentation run has no keypoint set"),
        (["+data.label_kind=labelTrainIds"], "data.label_kind: read by data.dataset=cityscapes only (this is synthetic)"),
        (["callbacks.checkpoint.monitor=val/AP"], "callbacks.checkpoint.monitor: expected one of ['val/mIoU'"),
        (["eval.scales=[0.0]"], "eval.scales: expected positive scale factors"),
        (["loss.ohem_thresh=1.5"], "loss.ohem_thresh: expected a probability in [0, 1]"),
        (["data=seg_folder", "data.root=/tmp", "data.classes.names=[a,a]"], "data.classes: class set 'custom': class names must be unique"),
        (["data=seg_folder", "data.root=/tmp"], "data.classes.names: missing mandatory value"),
    ],
)
def test_wrong_fields_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_train_config(_compose_cfg("experiment=seg_synthetic_cpu", *overrides))
    assert message in str(raised.value)


def test_a_pose_field_in_a_segmentation_run_is_unknown() -> None:
    raw = _compose("experiment=seg_synthetic_cpu")
    raw["loss"]["ohkm_topk"] = 8
    with pytest.raises(ConfigError, match="loss.ohkm_topk: unknown field"):
        validate_train_config(raw)


def test_evaluate_seg_section_is_validated() -> None:
    raw = {**_compose(config_name="eval"), "ckpt": str(REPO_ROOT / "train.py")}  # any existing file
    assert validate_evaluate_config(raw).seg == SegEvalConfig()  # conf/eval.yaml: the official single-scale test
    raw["seg"] = {**raw["seg"], "window": "1024"}
    with pytest.raises(ConfigError, match="seg.window: expected 'HEIGHTxWIDTH'"):
        validate_evaluate_config(raw)


def test_cli_exits_2_before_training(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "experiment=seg_synthetic_cpu", "+data.label_kind=labelTrainIds",
         f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "data.label_kind: read by data.dataset=cityscapes only" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
