"""Config validation: bad fields fail fast (before torch/Lightning or any data) with a message that
names the field and a non-zero exit code; the composed default config passes the schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from hrnet_train.config_schema import (
    ConfigError,
    TrainConfig,
    check_codec_section,
    check_model_section,
    register_resolvers,
    validate_train_config,
)
from hrnet_train.paths import REPO_ROOT, config_dir

TRAIN_PY = REPO_ROOT / "train.py"
register_resolvers()


def _compose(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.run_dir = "/tmp/unused"  # ${hydra:runtime.output_dir} exists only inside a Hydra app
    return OmegaConf.to_container(cfg, resolve=True)


def _run_cli(*overrides: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TRAIN_PY), *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs: expected an integer, got 'abc'"),
        ("data.input_size=250x192", "data.input_size: 250x192 (height x width) must be divisible by 32"),
        ("data.root=/nonexistent/coco data.generate_synthetic=false", "data.root: data directory '/nonexistent/coco' does not exist"),
        ("model.name=hrnet_w999", "model.name: unknown model 'hrnet_w999'"),
        ("trainer.precision=8", "trainer.precision: expected one of"),
        ("data.pipeline=device +data.augment.photometric=true", "data.augment.photometric: photometric/occlusion"),
        ("data.pipeline=device data.decode=gpu", "data.decode: gpu needs trainer.accelerator=gpu"),
        ("codec.sigma=nan", "codec.sigma: expected a finite number, got nan"),  # was "arange: cannot compute length"
        ("optimizer.lr=inf", "optimizer.lr: expected a finite number, got inf"),  # was rc 0 with NaN weights
        ("codec.name=darkk", "codec.name: unknown codec 'darkk' (did you mean 'dark'?)"),
        ("codec=darkk", "codec=darkk: no such option in conf/codec (did you mean 'dark'?)"),
    ],
)
def test_cli_rejects_bad_field_before_training(override: str, message: str, tmp_path: Path) -> None:
    result = _run_cli(*override.split(), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained
    assert "GPU available" not in result.stdout + result.stderr  # Lightning never started


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
@pytest.mark.parametrize("override", ["trainer=gpu", "trainer.accelerator=cuda"])
def test_gpu_trainer_without_a_gpu_is_one_line_before_data_loading(override: str, tmp_path: Path) -> None:
    result = _run_cli(override, f"data.root={tmp_path / 'not_generated'}", tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.search(r"trainer.accelerator=(gpu|cuda): (no CUDA GPU is visible|this torch build .* has no CUDA)", result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "not_generated").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_evaluate_on_gpu_without_a_gpu_is_refused_before_loading(tmp_path: Path) -> None:
    from hrnet_train.evaluation.runner import run_from_config

    (tmp_path / "model.ckpt").write_bytes(b"never read")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[f"ckpt={tmp_path / 'model.ckpt'}", "accelerator=gpu", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^accelerator=gpu: (no CUDA GPU is visible|this torch build .* has no CUDA)"):
        run_from_config(cfg)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("codec.sigma=nan", "codec.sigma"),
        ("optimizer.lr=inf", "optimizer.lr"),
        ("optimizer.lr=-inf", "optimizer.lr"),
        ("optimizer.weight_decay=nan", "optimizer.weight_decay"),
        ("optimizer.momentum=inf", "optimizer.momentum"),
        ("optimizer.betas=[0.9,nan]", "optimizer.betas[1]"),
        ("trainer.gradient_clip_val=nan", "trainer.gradient_clip_val"),
        ("scheduler.gamma=inf", "scheduler.gamma"),
        ("loss.divergence_factor=inf", "loss.divergence_factor"),
        ("ema.decay=nan", "ema.decay"),
        ("eval.oks_thre=nan", "eval.oks_thre"),
        ("data.augment.rot_factor=inf", "data.augment.rot_factor"),
        ("keypoints.joint_weights.3=nan", "keypoints.joint_weights[3]"),
        ("keypoints.sigmas.0=inf", "keypoints.sigmas[0]"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{key}: expected a finite number")):
        validate_train_config(_compose(override))


def test_limit_batches_one_is_one_batch_not_the_whole_epoch() -> None:
    """Lightning reads an int as a batch count and a float as a fraction: 1 must not become 1.0 (100 %)."""
    trainer = validate_train_config(_compose("trainer.limit_train_batches=1", "trainer.limit_val_batches=0.5")).trainer
    assert (trainer.limit_train_batches, type(trainer.limit_train_batches)) == (1, int)
    assert (trainer.limit_val_batches, type(trainer.limit_val_batches)) == (0.5, float)


def test_codec_options_are_checked_with_the_config() -> None:
    config = validate_train_config(_compose("codec.sigma=0"))
    with pytest.raises(ConfigError, match="codec: codec legacy: sigma must be a finite number > 0, got 0"):
        check_codec_section(config)
    with pytest.raises(ConfigError, match="codec: codec 'legacy': bad options"):
        check_codec_section(validate_train_config(_compose("+codec.sigmaa=2")))


def test_cli_rejects_unknown_model_group(tmp_path: Path) -> None:
    result = _run_cli("model=nonexistent", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "model=nonexistent: no such option in conf/model; options: hrnet_tiny," in result.stderr


def test_cli_missing_data_root_for_coco(tmp_path: Path) -> None:
    result = _run_cli("experiment=coco_w32_256x192", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "data.root: missing mandatory value" in result.stderr


def test_default_config_is_valid_and_typed() -> None:
    config = validate_train_config(_compose())
    assert isinstance(config, TrainConfig)
    assert config.data.input_hw == (128, 96)
    assert config.trainer.lightning_precision == "bf16-mixed"
    assert config.data.generate_synthetic is True
    # the main job (`python train.py`): small HRNet, 6 epochs, one torch thread + one data worker
    assert (config.model["name"], config.trainer.max_epochs, config.trainer.num_threads, config.data.num_workers) == (
        "hrnet_w18_small_v1", 6, 1, 1
    )
    check_model_section(config)


@pytest.mark.parametrize(
    ("experiment", "model", "size", "lr", "base_batch", "global_batch"),
    [("coco_w32_256x192", "hrnet_w32", (256, 192), 1e-3, 128, 128), ("coco_w48_384x288", "hrnet_w48", (384, 288), 1e-3, 96, 96)],
)
def test_reference_experiments(experiment: str, model: str, size: tuple, lr: float, base_batch: int, global_batch: int, tmp_path: Path) -> None:
    config = validate_train_config(_compose(f"experiment={experiment}", f"data.root={tmp_path}"))
    assert (config.model["name"], config.data.input_hw) == (model, size)
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.base_batch_size) == ("adam", lr, base_batch)
    assert config.global_batch_size == global_batch
    assert (config.scheduler.name, config.scheduler.milestones, config.scheduler.reference_step_offset) == ("multistep", (170, 200), True)
    assert config.trainer.max_epochs == 210


def test_lspet_experiment_uses_14_joints(tmp_path: Path) -> None:
    # lspet_source=null: compose the experiment without needing the LSPET download (converted data in root).
    config = validate_train_config(_compose("experiment=lspet_cpu", f"data.root={tmp_path}", "data.lspet_source=null"))
    assert config.keypoints["name"] == "lspet14"
    assert config.trainer.lightning_precision == "bf16-mixed" and config.trainer.channels_last


def test_unknown_field_is_named() -> None:
    raw = _compose()
    raw["optimizer"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match="optimizer.learning_rate: unknown field"):
        validate_train_config(raw)
