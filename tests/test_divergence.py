"""A diverging run stops with a message naming step, epoch, LR and the batch's image ids; no checkpoint
ever holds non-finite weights (hrnet_train/training/divergence.py, the checkpoint writer's guard)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from test_training import SYNTHETIC, _config

from hrnet_train.config_schema import ConfigError
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.paths import REPO_ROOT
from hrnet_train.trained_model import read_checkpoint
from hrnet_train.training import divergence
from hrnet_train.training.divergence import DivergenceGuard, TrainingDiverged, non_finite_tensors
from hrnet_train.training.runner import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIVERGED = r"training diverged at global step (\d+) \(epoch (\d+), batch (\d+) of the epoch, learning rate ([^)]+)\); " \
           r"the batch held image ids \[([\d, ]+)\]"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic_diverge"), **SYNTHETIC)


def _assert_checkpoints_finite(run_dir: Path) -> None:
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        assert non_finite_tensors(read_checkpoint(path)["state_dict"]) == [], path


class PoisonBatch(pl.Callback):
    """Builds the batch the reproductions need: NaN targets in training batch ``batch_idx`` of epoch 0
    (what a NaN visibility flag becomes), remembering its image ids and the module."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx = batch_idx
        self.image_ids: list[int] = []
        self.module: pl.LightningModule | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.module = pl_module
        if trainer.current_epoch == 0 and batch_idx == self.batch_idx:
            batch["target_weight"][0, 0] = float("nan")
            self.image_ids = batch["meta"]["image_id"].tolist()


def test_nan_target_stops_at_its_batch_naming_the_image_ids(tiny_root: Path, tmp_path: Path) -> None:
    poison = PoisonBatch(batch_idx=1)
    config, resolved = _config(tiny_root, tmp_path / "run")
    with pytest.raises(TrainingDiverged, match=DIVERGED) as raised:
        run_training(config, resolved, extra_callbacks=[poison])
    step, epoch, batch, lr, ids = re.search(DIVERGED, str(raised.value)).groups()
    assert (int(step), int(epoch), int(batch)) == (1, 0, 1) and float(lr) > 0
    assert [int(i) for i in ids.split(", ")] == poison.image_ids
    assert "the loss is nan" in str(raised.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # diverged inside epoch 0: nothing written


def test_nan_gradients_with_clipping_stop_before_the_optimiser_step(tiny_root: Path, tmp_path: Path) -> None:
    poison = PoisonBatch(batch_idx=0)
    config, resolved = _config(tiny_root, tmp_path / "run", "trainer.gradient_clip_val=1.0")
    with pytest.raises(TrainingDiverged, match=r"global step 0 .*: the gradient norm is nan"):
        run_training(config, resolved, extra_callbacks=[poison])
    assert non_finite_tensors(poison.module.state_dict()) == []  # the step that would spread NaN never ran


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_lr_1e3_stops_and_leaves_only_finite_checkpoints(tiny_root: Path, tmp_path: Path, optimizer: str) -> None:
    """SGD reaches NaN; Adam stays finite at 10^4+ times its first loss (loss.divergence_factor)."""
    config, resolved = _config(tiny_root, tmp_path / "run", "optimizer.lr=1e3", f"optimizer.name={optimizer}",
                               "trainer.max_epochs=4")
    with pytest.raises(TrainingDiverged, match=DIVERGED):
        run_training(config, resolved)
    _assert_checkpoints_finite(tmp_path / "run")


def test_lr_inf_past_the_schema_stops_instead_of_writing_nan_weights(tiny_root: Path, tmp_path: Path) -> None:
    """The schema refuses lr=inf (test_config); a config built in code that bypasses it still stops."""
    config, resolved = _config(tiny_root, tmp_path / "run")
    config = replace(config, optimizer=replace(config.optimizer, lr=math.inf))
    with pytest.raises(TrainingDiverged, match=r"learning rate inf"):
        run_training(config, resolved)
    _assert_checkpoints_finite(tmp_path / "run")


def copy_dataset(source: Path, root: Path, edit: Callable[[str, dict], None]) -> Path:
    """A copy of a generated dataset's annotation files (images linked) after ``edit(split, coco)``."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(source / "images")
    for split in ("train", "val"):
        coco = json.loads((source / "annotations" / f"person_keypoints_{split}.json").read_text())
        edit(split, coco)
        # Python's json writes NaN as a bare token, as a careless exporter does.
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(coco))
    return root


def test_weights_that_turned_non_finite_stop_before_validation(tiny_root: Path, tmp_path: Path) -> None:
    """One step per epoch at lr=inf: the step's loss was finite, its update was not; the weights check
    before validation (and before any checkpoint) stops the run."""
    config, resolved = _config(tiny_root, tmp_path / "run", "trainer.limit_train_batches=1")
    config = replace(config, optimizer=replace(config.optimizer, lr=math.inf))
    with pytest.raises(TrainingDiverged, match=r"training diverged: non-finite weights after global step 0 .*: \d+ of \d+ tensors"):
        run_training(config, resolved)
    assert list((tmp_path / "run" / "checkpoints").glob("*.ckpt")) == []


class HugeWeights(pl.Callback):
    """After the last training batch of epoch 0, stem weights of 1e30 and head weights of 1e20: every
    weight finite, the heatmaps not (about 1e46)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == trainer.num_training_batches - 1:
            with torch.no_grad():
                pl_module.model.conv1.weight.fill_(1e30)
                getattr(pl_module.model, pl_module.model.head_name).weight.fill_(1e20)


def test_finite_weights_with_non_finite_validation_outputs_stop_before_the_metrics(tiny_root: Path, tmp_path: Path) -> None:
    """What SGD at lr=1e3 can reach: every weight finite, the validation heatmaps not. The run stops
    before the metrics (which would refuse the NaN keypoints) and before any checkpoint."""
    config, resolved = _config(tiny_root, tmp_path / "run", "trainer.max_epochs=1")
    with pytest.raises(TrainingDiverged, match=DIVERGED + r".*outputs on the validation set are non-finite"):
        run_training(config, resolved, extra_callbacks=[HugeWeights()])
    assert list((tmp_path / "run" / "checkpoints").glob("*.ckpt")) == []


def test_nan_visibility_in_a_coco_file_never_trains(tiny_root: Path, tmp_path: Path) -> None:
    """One annotation whose visibility flag is NaN (a copy of the small COCO file): refused where it is
    read, naming the annotation, or -- without that check -- stopped at the batch holding its image."""
    poisoned: dict = {}

    def poison(split: str, coco: dict) -> None:
        if split == "train":
            poisoned.update(next(a for a in coco["annotations"] if max(a["keypoints"][2::3]) > 0))
            first_labelled = next(i for i in range(2, len(poisoned["keypoints"]), 3) if poisoned["keypoints"][i] > 0)
            annotation = next(a for a in coco["annotations"] if a["id"] == poisoned["id"])
            annotation["keypoints"][first_labelled] = float("nan")

    root = copy_dataset(tiny_root, tmp_path / "data", poison)
    config, resolved = _config(root, tmp_path / "run", "trainer.max_epochs=1")
    with pytest.raises((ConfigError, TrainingDiverged)) as raised:
        run_training(config, resolved)
    message = str(raised.value)
    if isinstance(raised.value, TrainingDiverged):
        assert str(poisoned["image_id"]) in re.search(DIVERGED, message).group(5).split(", ")
    else:
        assert str(poisoned["id"]) in message and "person_keypoints_train.json" in message
    _assert_checkpoints_finite(tmp_path / "run")


def test_train_cli_exits_1_with_the_message_and_no_traceback(tiny_root: Path, tmp_path: Path) -> None:
    overrides = ["model=hrnet_tiny", f"data.root={tiny_root}", "data.generate_synthetic=false", "data.batch_size=8",
                 "data.num_workers=0", "trainer.max_epochs=2", "trainer.precision=32", "logger=csv",
                 "optimizer.name=sgd", "optimizer.lr=1e3", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *overrides], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert re.search("train.py: " + DIVERGED, done.stderr), done.stderr[-3000:]
    _assert_checkpoints_finite(tmp_path / "run")


def test_device_flags_are_read_on_logging_steps_and_name_the_first_bad_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU the per-step flags wait on the device until a logging step (no host wait per step); the
    message still names the first bad step, its LR and image ids (simulated here with CPU tensors)."""
    monkeypatch.setattr(divergence, "readable_at_once", lambda flag: False)
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision)
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.01}])
    trainer = SimpleNamespace(strategy=strategy, optimizers=[optimizer], log_every_n_steps=4, current_epoch=0,
                              global_step=0, gradient_clip_val=None, global_rank=0)
    guard = DivergenceGuard(loss_factor=None)
    losses = [0.5, float("nan"), 0.4]  # step 1 is bad; steps 0-2 are not logging steps
    for step, loss in enumerate(losses):
        trainer.global_step = step
        guard.on_train_batch_start(trainer, None, {"meta": {"image_id": torch.tensor([10 * step, 10 * step + 1])}}, step)
        trainer.global_step = step + 1
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step)
    trainer.global_step = 3
    guard.on_train_batch_start(trainer, None, {"meta": {"image_id": torch.tensor([30])}}, 3)
    trainer.global_step = 4  # a logging step: the pending flags are read
    with pytest.raises(TrainingDiverged, match=r"at global step 1 \(epoch 0, batch 1 of the epoch, learning rate 0.01\); "
                                               r"the batch held image ids \[10, 11\] \(2 samples\): the loss is nan"):
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.3)}, None, 3)


def test_non_finite_tensors_names_only_the_bad_floats() -> None:
    state = {"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")]), "steps": torch.tensor(3), "c": torch.tensor(float("nan"))}
    assert non_finite_tensors(state) == ["b", "c"]
