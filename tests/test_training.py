"""End-to-end training on a tiny synthetic set: checkpoints, TensorBoard scalars, AP, exact resume."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hrnet_train.codecs import create_codec
from hrnet_train.config_schema import register_resolvers, validate_train_config
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.paths import config_dir
from hrnet_train.trained_model import load_trained_model, read_checkpoint
from hrnet_train.training.datamodule import PoseDataModule
from hrnet_train.training.ema import ModelEMA
from hrnet_train.training.runner import _set_tf32, resolve_resume, run_training

register_resolvers()

SYNTHETIC = {"num_train": 12, "num_val": 4, "seed": 3, "image_size": "128x128", "min_person_height": 40.0, "workers": 1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_tiny")
    return ensure_synthetic_dataset(root, **SYNTHETIC)


def _config(root: Path, run_dir: Path, *overrides: str):
    base = [
        "model=hrnet_tiny",
        f"data.root={root}",
        "data.generate_synthetic=false",
        "data.input_size=128x96",
        "data.batch_size=8",
        "data.val_batch_size=16",
        "data.num_workers=0",
        "trainer.max_epochs=2",
        "trainer.precision=32",
        "trainer.channels_last=false",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "scheduler.warmup_iters=3",
        "eval.num_vis_images=4",
        *overrides,
    ]
    return compose_train_config(run_dir, base)


def compose_train_config(run_dir: Path, overrides: list[str]):
    """train.py's config composed from ``overrides`` with the run dir Hydra would set: (validated, resolved)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return validate_train_config(resolved), resolved


class StopAfterEpoch(pl.Callback):
    """Simulates an interrupted run: stop once ``epochs`` epochs (incl. validation + checkpoint) are done."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_fit_writes_checkpoints_tensorboard_and_ap(tiny_root: Path, tmp_path: Path) -> None:
    config, resolved = _config(tiny_root, tmp_path / "run")
    report = run_training(config, resolved)

    checkpoints = tmp_path / "run" / "checkpoints"
    best = sorted(p.name for p in checkpoints.glob("best-epoch*.ckpt"))
    assert len(best) == 1 and (checkpoints / "last.ckpt").is_file()
    assert report["best_checkpoint"] == str(checkpoints / best[0])
    assert 0.0 <= report["stats"]["AP"] <= 1.0 and set(report["stats"]) >= {"AP", "AP50", "AR"}
    assert report["complexity"]["params"] == sum(p.numel() for p in load_trained_model(checkpoints / "last.ckpt").network.parameters())
    assert (tmp_path / "run" / "config_resolved.yaml").is_file()

    last = read_checkpoint(checkpoints / "last.ckpt")  # weights_only=True
    assert last["epoch"] == 1 and last["global_step"] == 2 * last["lr_schedulers"][0]["steps_per_epoch"]
    hp = last["hyper_parameters"]
    assert (hp["model_name"], hp["keypoints_name"], hp["input_size"], hp["codec"]["name"]) == ("hrnet_tiny", "coco17", [128, 96], "legacy")
    trained = load_trained_model(checkpoints / best[0])
    assert trained.task == "pose" and trained.input_size == (128, 96) and str(trained.input_size) == "128x96"
    assert trained.keypoints.num_joints == 17 and trained.codec.input_size == (128, 96) and trained.codec.heatmap_size == (32, 24)
    assert trained.network(torch.zeros(1, 3, 128, 96)).shape == (1, 17, 32, 24)

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/loss_epoch", "train/lr", "train/samples_per_s", "train/epoch_time_s", "val/AP", "val/AR", "val/loss"} <= scalars
    assert [e.step for e in events.Scalars("train/epoch_time_s")] != []
    assert "val/predictions_vs_gt" in events.Tags()["images"]


@pytest.mark.parametrize(("pipeline", "workers"), [("cpu", 0), ("device", 0), ("cpu", 1), ("cpu", 2)])
def test_resumed_run_matches_uninterrupted_run(tiny_root: Path, tmp_path: Path, pipeline: str, workers: int) -> None:
    """Killed after epoch 0 and resumed: the weights equal the uninterrupted run's, with loader workers too
    (Lightning creates a fit's first iterator before it restores the epoch: it must not draw epoch 0 again)."""
    schedule = ("scheduler.name=multistep", "scheduler.milestones=[1]", "scheduler.warmup_iters=0", f"data.pipeline={pipeline}",
                f"data.num_workers={workers}")
    full_config, full_resolved = _config(tiny_root, tmp_path / "full", *schedule)
    run_training(full_config, full_resolved)

    part_config, part_resolved = _config(tiny_root, tmp_path / "part", *schedule)
    run_training(part_config, part_resolved, extra_callbacks=[StopAfterEpoch(1)])
    interrupted = read_checkpoint(tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert interrupted["epoch"] == 0

    resumed_config, resumed_resolved = _config(tiny_root, tmp_path / "part", *schedule, "ckpt_path=last")
    run_training(resumed_config, resumed_resolved)

    full = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")
    resumed = read_checkpoint(tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == full["epoch"] == 1 and resumed["global_step"] == full["global_step"]
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert resumed["lr_schedulers"][0]["_last_lr"] == full["lr_schedulers"][0]["_last_lr"] == [pytest.approx(0.1 * 0.002 * 8 / 32)]


def test_resume_with_another_max_epochs_warns_that_the_horizon_changed(tiny_root: Path, tmp_path: Path) -> None:
    config, resolved = _config(tiny_root, tmp_path / "run", "trainer.max_epochs=1")
    run_training(config, resolved)
    longer, longer_resolved = _config(tiny_root, tmp_path / "run", "trainer.max_epochs=3", "ckpt_path=last")
    with pytest.warns(UserWarning, match=r"the schedule horizon changed: the run was planned for trainer.max_epochs=1, "
                                         r"this resume asks for 3. The LR schedule \(cosine\) comes back"):
        resolve_resume(longer, longer_resolved, tmp_path / "run")
    same, same_resolved = _config(tiny_root, tmp_path / "run", "trainer.max_epochs=1", "ckpt_path=last")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_resume(same, same_resolved, tmp_path / "run") == str(tmp_path / "run" / "checkpoints" / "last.ckpt")


def test_next_start_removes_orphan_temp_files(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orphan = tmp_path / "run" / "checkpoints" / ".last.ckpt.4f2kq1.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"the first half of a save killed with -9")
    config, resolved = _config(tiny_root, tmp_path / "run", "trainer.max_epochs=1")
    run_training(config, resolved)
    assert not orphan.exists() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert f"removed 1 temporary checkpoint file(s) of an interrupted save in {orphan.parent}: {orphan.name}" in capsys.readouterr().out


def test_train_loader_drops_the_partial_batch(tiny_root: Path, tmp_path: Path) -> None:
    config, _ = _config(tiny_root, tmp_path / "run", "data.num_workers=1", "data.persistent_workers=true")
    keypoints = load_keypoint_set(config.keypoints)
    codec = create_codec("legacy", config.data.input_hw)
    datamodule = PoseDataModule(config.data, config.eval, keypoints, codec, config.seed)
    datamodule.setup("fit")
    instances = len(datamodule.train_dataset)
    assert instances == 27  # synthetic set: 27 people, batches of 8 -> 3 full batches, 3 left out
    train = datamodule.train_dataloader()
    assert (len(train), train.drop_last, train.persistent_workers) == (3, True, False)  # fresh workers per epoch
    val = datamodule.val_dataloader()
    assert (val.drop_last, val.persistent_workers) == (False, True)
    too_big = PoseDataModule(replace(config.data, batch_size=28), config.eval, keypoints, codec, config.seed)
    too_big.setup("fit")
    with pytest.raises(ValueError, match="data.batch_size: 28 is larger than the 27 training instances"):
        too_big.train_dataloader()


def test_tf32_switch_sets_cudnn_and_matmul_precision() -> None:
    """trainer.tf32 (GPU runs only, applied by the runner): TF32 for cuDNN convs and fp32 matmuls, or strict fp32."""
    before = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    try:
        _set_tf32(True)
        assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == (True, "high")
        _set_tf32(False)
        assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == (False, "highest")
    finally:
        torch.backends.cudnn.allow_tf32 = before[0]
        torch.set_float32_matmul_precision(before[1])


def test_ema_update_follows_warmup_decay() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.fill_(3.0)
        model[1].running_mean.fill_(7.0)
    ema.update(model)  # n=0: decay = min(0.5, 1/10) = 0.1 -> 0.1*1 + 0.9*3
    assert torch.allclose(ema.model[0].weight, torch.full((1, 2), 2.8))
    assert ema.model[1].running_mean.item() == 7.0  # buffers are copied
    ema.update(model)  # n=1: decay = min(0.5, 2/11) -> 2.8 + (3 - 2.8) * 9/11
    assert torch.allclose(ema.model[0].weight, torch.full((1, 2), 2.8 * 2 / 11 + 3.0 * 9 / 11))
    assert not ema.train().model.training


def test_checkpoint_from_train_evaluates_on_coco_mini(tiny_root: Path, coco_mini: Path, tmp_path: Path) -> None:
    """train.py's checkpoint (synthetic data) runs through evaluate.py on real COCO images: every output
    is written and the settings come from the checkpoint (the AP itself is whatever it is)."""
    from hydra import compose, initialize_config_dir

    from hrnet_train.evaluation.report_writer import METRICS_FILE, RESULTS_FILE
    from hrnet_train.evaluation.runner import run_from_config
    from hrnet_train.paths import config_dir

    config, resolved = _config(tiny_root, tmp_path / "run", "trainer.max_epochs=1")
    report = run_training(config, resolved)
    overrides = [f"ckpt={report['best_checkpoint']}", f"data.root={coco_mini}",
                 "data.ann_file=annotations/person_keypoints_val2017_mini.json", "data.img_dir=images/val2017",
                 "num_workers=0", f"output_dir={tmp_path / 'eval'}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        metrics = run_from_config(compose(config_name="eval", overrides=overrides))
    assert (tmp_path / "eval" / RESULTS_FILE).is_file() and (tmp_path / "eval" / METRICS_FILE).is_file()
    assert metrics["throughput"]["instances"] == 68  # every coco_mini val person with keypoints
    assert (metrics["settings"]["model"], metrics["settings"]["input_size"]) == ("hrnet_tiny", "128x96")
    assert 0.0 <= metrics["stats"]["AP"] <= 1.0


# --------------------------------------------------------------------------- data.pipeline=device


class TargetRecorder(pl.Callback):
    """Keeps the targets of every training batch the module trained on."""

    def __init__(self) -> None:
        self.targets: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.targets.append(batch["target"].clone())


def test_device_pipeline_trains_on_the_cpu_path_stream(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit with data.pipeline=device trains on exactly the targets of the CPU path, batch for batch, and
    the training step logs no Python numbers (self.log would copy each to the device, a wait for the GPU);
    a device value reaches the progress bar only as a host copy on logging steps."""
    from hrnet_train.training.module import PoseLightningModule

    logged: list[tuple[str, object, dict]] = []
    original_log = PoseLightningModule.log

    def spy(self, name, value, *args, **kwargs):
        if self.trainer.training:
            logged.append((name, value, kwargs))
        return original_log(self, name, value, *args, **kwargs)

    monkeypatch.setattr(PoseLightningModule, "log", spy)
    targets = {}
    for pipeline in ("cpu", "device"):
        recorder = TargetRecorder()
        config, resolved = _config(tiny_root, tmp_path / pipeline, f"data.pipeline={pipeline}", "trainer.log_every_n_steps=2")
        report = run_training(config, resolved, extra_callbacks=[recorder])
        assert 0.0 <= report["stats"]["AP"] <= 1.0
        targets[pipeline] = recorder.targets
    assert len(targets["cpu"]) == len(targets["device"]) == 6  # 2 epochs x 3 batches
    for cpu_target, device_target in zip(targets["cpu"], targets["device"]):
        assert torch.equal(cpu_target, device_target)
    assert logged and all(isinstance(value, torch.Tensor) for _, value, _ in logged)
    bar_losses = [value for name, value, kwargs in logged if name == "loss"]
    assert len(bar_losses) == 2 * 3 and all(kwargs.get("prog_bar") for name, _, kwargs in logged if name == "loss")
    assert all(not value.requires_grad for value in bar_losses)  # logging steps 2, 4, 6 of each run


def test_datamodule_builds_device_batches(tiny_root: Path, tmp_path: Path) -> None:
    from hrnet_train.data.device_pipeline import is_geometry_batch

    config, _ = _config(tiny_root, tmp_path / "run", "data.pipeline=device")
    keypoints = load_keypoint_set(config.keypoints)
    datamodule = PoseDataModule(config.data, config.eval, keypoints, create_codec("legacy", config.data.input_hw), config.seed)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert is_geometry_batch(batch) and batch["pixels"].dtype == torch.uint8
    built = datamodule.on_after_batch_transfer(datamodule.on_before_batch_transfer(batch, 0), 0)
    assert built["image"].shape == (8, 3, 128, 96) and built["target"].shape == (8, 17, 32, 24)
    validation = next(iter(datamodule.val_dataloader()))
    assert datamodule.on_after_batch_transfer(validation, 0) is validation  # validation stays on the CPU path


def test_compile_switch_compiles_the_training_forward_only(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hrnet_train.models import create_model
    from hrnet_train.training.module import PoseLightningModule

    calls = []

    def fake_compile(function, mode):
        calls.append((function, mode))
        return lambda images: function(images) * 0.0  # tells compiled from eager calls apart

    monkeypatch.setattr(torch, "compile", fake_compile)
    config, _ = _config(tiny_root, tmp_path / "run", "trainer.compile=reduce-overhead")
    model = create_model(config.model, num_joints=17)
    module = PoseLightningModule(model, config, load_keypoint_set(config.keypoints), create_codec("legacy", config.data.input_hw), {})
    assert calls == [(model.forward, "reduce-overhead")]
    images = torch.randn(2, 3, 128, 96)
    assert not module(images).any()  # training forward: the compiled one
    assert module.validation.heatmaps(module.evaluated_model.eval(), images).any()  # validation: eager
    assert set(module.state_dict()) == {f"model.{key}" for key in model.state_dict()}  # checkpoints keep their keys


@pytest.mark.slow
def test_device_pipeline_reaches_the_cpu_path_ap(tmp_path: Path) -> None:
    """The accuracy claim: the default synthetic recipe, 3 epochs, reaches the same AP with either pipeline."""
    from hrnet_train.paths import data_dir

    root = ensure_synthetic_dataset(data_dir() / "synthetic", num_train=2000, num_val=200, seed=0, image_size="256x256",
                                    min_person_height=40.0, workers=2)
    ap = {}
    for pipeline in ("cpu", "device"):
        config, resolved = _config(
            root, tmp_path / pipeline, "model=hrnet_w18_small_v1", "data.batch_size=32", "data.val_batch_size=64",
            "data.num_workers=1", "trainer.max_epochs=3", "trainer.precision=bf16-mixed", "trainer.channels_last=true",
            "trainer.deterministic=false", "scheduler.warmup_iters=50", "trainer.log_every_n_steps=10",
            "trainer.enable_progress_bar=false", f"data.pipeline={pipeline}",
        )
        ap[pipeline] = run_training(config, resolved)["stats"]["AP"]
    print(f"\nsynthetic val AP after 3 epochs: cpu pipeline {ap['cpu']:.4f}, device pipeline {ap['device']:.4f}")
    assert ap["cpu"] > 0.3
    assert abs(ap["device"] - ap["cpu"]) <= 0.02


class SyncCounter(pl.Callback):
    """Collects synchronising CUDA calls (``torch.cuda.set_sync_debug_mode`` warnings, by Python call site)
    between consecutive training-batch starts: one window = a step, its logging, the next batch's transfer
    and build."""

    def __init__(self, recorded: list) -> None:
        self.recorded = recorded
        self.windows: list[tuple[int, list[str]]] = []  # (steps done when the window opened, call sites)
        self._opened: tuple[int, int] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._opened is not None:
            done, first = self._opened
            sites = [f"{w.filename}:{w.lineno}" for w in self.recorded[first:] if "synchronizing CUDA" in str(w.message)]
            self.windows.append((done, sites))
        self._opened = (trainer.global_step, len(self.recorded))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._opened = None  # the window holding validation is not a step window


def test_cuda_training_steps_do_not_wait_for_the_gpu(tiny_root: Path, tmp_path: Path, device: torch.device) -> None:
    """--device cuda: a fit with the device pipeline, pinned memory and fused Adam makes no synchronising
    CUDA call between two training steps, except on logging steps (and the first, warm-up, step)."""
    import warnings

    from hrnet_train.training.step_logging import is_logging_step

    if device.type != "cuda":
        pytest.skip("needs --device cuda")
    config, resolved = _config(
        tiny_root, tmp_path / "run", "trainer=gpu", "trainer.max_epochs=2", "trainer.precision=32",
        "trainer.deterministic=false", "trainer.enable_progress_bar=true", "trainer.progress_refresh_rate=1",
        "trainer.log_every_n_steps=4", "data.batch_size=4", "data.pipeline=device", "data.pin_memory=true",
        "eval.num_vis_images=0",
    )
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        counter = SyncCounter(recorded)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run_training(config, resolved, extra_callbacks=[counter])
        finally:
            torch.cuda.set_sync_debug_mode(0)
    quiet = [(done, sites) for done, sites in counter.windows if done > 0 and not is_logging_step(4, done + 1)]
    print(f"\nsynchronising CUDA calls per step window (steps done, count): {[(d, len(s)) for d, s in counter.windows]}")
    assert len(quiet) >= 6 and all(not sites for _, sites in quiet), quiet
