"""One training run from a validated config: build everything, fit, evaluate the best checkpoint, report.

``train.py`` (Hydra) calls :func:`run_training` after validation; tests and notebooks call it directly
with a config from :func:`hrnet_train.config_schema.validate_train_config`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn

from hrnet_train.complexity import complexity_report
from hrnet_train.config_schema import ConfigError, TrainConfig
from hrnet_train.data.lspet import ensure_lspet_dataset
from hrnet_train.data.skips import SkipCounts
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.data.synthetic_faces import ensure_synthetic_faces
from hrnet_train.training.callbacks import (
    BestCheckpoint,
    DatasetEpochSeeder,
    LoggingCadence,
    StderrProgressBar,
    ThroughputMonitor,
    TrainingClock,
)
from hrnet_train.training.checkpointing import (
    CHECKPOINT_SUBDIR,
    LAST_CHECKPOINT,
    AtomicCheckpointIO,
    remove_orphan_temp_files,
    resolve_ckpt_path,
)
from hrnet_train.training.divergence import DivergenceGuard
from hrnet_train.training.tasks import TrainingTask, build_task
from hrnet_train.trained_model import CheckpointError, read_checkpoint, resume_mismatches

# LoggingCadence lowers log_every_n_steps to the batches of an epoch, so Lightning's advice is moot.
warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging interval")
RESOLVED_CONFIG_NAME = "config_resolved.yaml"
# data.generate_synthetic: the generator of the configured instances (data.synthetic are its parameters).
SYNTHETIC_GENERATORS = {"person": ensure_synthetic_dataset, "face": ensure_synthetic_faces}
REPORT_NAME = "report.json"


def run_training(config: TrainConfig, resolved: Mapping[str, Any], extra_callbacks: list[pl.Callback] | None = None) -> dict[str, Any]:
    """Train and evaluate; returns the report (final stats of the best checkpoint, complexity, timings).

    ``resolved`` is the plain resolved config (saved in the run dir and in every checkpoint).
    """
    start = time.perf_counter()
    if config.run_dir is None:
        raise ValueError("run_dir: required (train.py sets it to Hydra's output dir)")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    if config.trainer.num_threads is not None:
        torch.set_num_threads(config.trainer.num_threads)
    if config.trainer.uses_gpu:
        _set_tf32(config.trainer.tf32)
    _save_resolved_config(resolved, run_dir)

    ckpt_path = resolve_resume(config, resolved, run_dir)
    _check_init_from(config)
    _remove_orphan_temp_files(run_dir / CHECKPOINT_SUBDIR)
    data = config.data
    if data.generate_synthetic:
        SYNTHETIC_GENERATORS[getattr(data, "instances", "person")](data.root, **data.synthetic)  # segmentation: the people
    if getattr(data, "lspet_source", None) is not None:  # keypoint data only
        ensure_lspet_dataset(data.lspet_source, data.root)
    task = build_task(config, resolved)
    module, datamodule, input_size = task.module, task.datamodule, task.input_size
    try:  # the splits are read (and a split that cannot be trained on is refused) before Lightning starts
        datamodule.setup("fit")
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error)) from None

    checkpoint = _best_checkpoint(config, run_dir)
    clock = TrainingClock()
    callbacks: list[pl.Callback] = [
        checkpoint,
        *([_last_checkpoint(run_dir)] if config.callbacks.checkpoint.save_last else []),
        DivergenceGuard(config.loss.divergence_factor),
        ThroughputMonitor(),
        DatasetEpochSeeder(),
        clock,
        LoggingCadence(),
        *task.callbacks,
    ]
    if config.trainer.progress_bar:
        callbacks.append(StderrProgressBar(refresh_rate=config.trainer.progress_refresh_rate))
    if config.callbacks.early_stopping_patience is not None:
        callbacks.append(EarlyStopping(config.callbacks.checkpoint.monitor, patience=config.callbacks.early_stopping_patience, mode=config.callbacks.checkpoint.mode))
    callbacks.extend(extra_callbacks or [])
    logger = _build_logger(config, run_dir)
    trainer = _build_trainer(config, run_dir, logger, callbacks)

    _print_banner(config, task, trainer, ckpt_path, run_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - start

    best = checkpoint.best_model_path or None
    trainer.validate(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    # ddp_spawn validates in child processes: module attributes set there do not come back to this
    # process, only trainer.callback_metrics (float32) do.
    stats = dict(module.last_stats) or {
        name: float(trainer.callback_metrics.get(f"val/{name}", math.nan)) for name in task.stat_names  # nan: undefined
    }
    complexity = complexity_report(module.evaluated_model, input_size)
    report = {
        "task": task.name,
        "experiment": config.experiment_name,
        "run_dir": str(run_dir),
        "best_checkpoint": best,
        "last_checkpoint": str(run_dir / CHECKPOINT_SUBDIR / LAST_CHECKPOINT) if config.callbacks.checkpoint.save_last else None,
        **task.report_fields,
        "stats": stats,
        "model": config.model.get("name"),
        "input_size": str(input_size),
        "complexity": complexity,
        "epochs": _epochs_trained(trainer, run_dir),
        "fit_seconds": fit_seconds,
        # All segments of a resumed run (ddp_spawn trains in children: this process's fit time then).
        "train_seconds_total": clock.total_seconds or fit_seconds,
        "wall_seconds": time.perf_counter() - start,
        "skipped": dict(task.skipped()),
    }
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(_hparam_summary(config, input_size), {f"hp/{k}": v for k, v in stats.items()})
    _write_report(report, run_dir, task)
    return report


def resolve_resume(config: TrainConfig, resolved: Mapping[str, Any], run_dir: Path) -> str | None:
    """The checkpoint this run resumes (None for a new run), checked against the config before anything
    is built: a different model, keypoint set, input size or codec is one ConfigError naming them."""
    try:
        ckpt_path = resolve_ckpt_path(config.ckpt_path, run_dir)
        if ckpt_path is None:
            return None
        content = read_checkpoint(ckpt_path)
        differences = resume_mismatches(ckpt_path, resolved, content)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    except CheckpointError as error:
        raise ConfigError(f"ckpt_path: {error}") from None
    if differences:
        raise ConfigError(
            f"ckpt_path={ckpt_path} cannot be resumed by this config: " + "; ".join(differences)
            + ". Resuming continues the same run; to start this config from its weights use init_from=" + ckpt_path
        )
    _warn_if_horizon_changed(content, ckpt_path, config)
    return ckpt_path


def _check_init_from(config: TrainConfig) -> None:
    """An ``init_from`` file that is no checkpoint is one ConfigError before any data is generated or built
    (its weights are read again where they are copied)."""
    if config.init_from is None:
        return
    try:
        read_checkpoint(config.init_from)
    except (FileNotFoundError, CheckpointError) as error:
        raise ConfigError(f"init_from: {error}") from None


def _warn_if_horizon_changed(content: Mapping[str, Any], ckpt_path: str, config: TrainConfig) -> None:
    """Resuming with another ``trainer.max_epochs``: the LR schedule restored from the checkpoint keeps
    the horizon it was planned with (a cosine reaches its floor there), which the user should know."""
    schedulers = content.get("lr_schedulers") or [{}]
    planned = schedulers[0].get("max_epochs") if isinstance(schedulers[0], Mapping) else None
    requested = config.trainer.max_epochs
    if planned is not None and int(planned) != requested:
        rank_zero_warn(
            f"ckpt_path={ckpt_path}: the schedule horizon changed: the run was planned for trainer.max_epochs={planned}, "
            f"this resume asks for {requested}. The LR schedule ({config.scheduler.name}) comes back from the checkpoint "
            f"with its {planned}-epoch horizon while training runs to epoch {requested}; to plan a new schedule "
            f"start a new run from its weights (init_from={ckpt_path})"
        )


def _set_tf32(allowed: bool) -> None:
    """fp32 convolutions and matmuls on TF32 tensor cores (Ampere and newer) or in strict fp32.

    TF32 rounds the inputs to a 10-bit mantissa and accumulates in fp32: the speed of tensor cores
    without bf16's output rounding. Set in this process; spawned DDP workers (ddp_spawn) keep
    PyTorch's defaults, which already allow TF32 for cuDNN convolutions, almost all of HRNet's work.
    """
    torch.backends.cudnn.allow_tf32 = allowed
    torch.set_float32_matmul_precision("high" if allowed else "highest")


def _epochs_trained(trainer: pl.Trainer, run_dir: Path) -> int:
    """Epochs completed. ddp_spawn trains in child processes and leaves this process's loop at epoch 0;
    the count then comes from last.ckpt (written after every validation)."""
    last = run_dir / CHECKPOINT_SUBDIR / LAST_CHECKPOINT
    if trainer.current_epoch > 0 or not last.is_file():
        return trainer.current_epoch
    return int(read_checkpoint(last)["epoch"]) + 1


@rank_zero_only
def _remove_orphan_temp_files(directory: Path) -> None:
    removed = remove_orphan_temp_files(directory)
    if removed:
        print(f"removed {len(removed)} temporary checkpoint file(s) of an interrupted save in {directory}: "
              + ", ".join(p.name for p in removed), flush=True)


def _best_checkpoint(config: TrainConfig, run_dir: Path) -> ModelCheckpoint:
    """Top-k checkpoints by the monitored metric (val/AP, max): ``best-epochNNN.ckpt``."""
    options = config.callbacks.checkpoint
    return BestCheckpoint(
        dirpath=run_dir / CHECKPOINT_SUBDIR,
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=options.monitor,
        mode=options.mode,
        save_top_k=options.save_top_k,
        save_last=False,
        every_n_epochs=options.every_n_epochs,
    )


def _last_checkpoint(run_dir: Path) -> ModelCheckpoint:
    """``last.ckpt`` after every validation, whether or not it improved the best.

    A separate callback because Lightning 2.6's ``save_last`` only writes when a top-k file was saved
    in the same step, which would leave a stale last.ckpt to resume from.
    """
    return ModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_SUBDIR,
        filename=Path(LAST_CHECKPOINT).stem,
        monitor=None,
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
    )


def _build_logger(config: TrainConfig, run_dir: Path) -> Logger:
    if config.logger.name == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False, log_graph=config.logger.log_graph)


def _build_trainer(config: TrainConfig, run_dir: Path, logger: Logger, callbacks: list[pl.Callback]) -> pl.Trainer:
    t = config.trainer
    optional = {
        name: getattr(t, name)
        for name in ("limit_train_batches", "limit_val_batches", "gradient_clip_val", "benchmark")
        if getattr(t, name) is not None
    }
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.lightning_precision,
        max_epochs=t.max_epochs,
        accumulate_grad_batches=t.accumulate_grad_batches,
        deterministic=t.deterministic,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=t.num_sanity_val_steps,
        # SyncBatchNorm raises on CPU tensors (stack.md): only on GPUs.
        sync_batchnorm=t.uses_gpu and t.devices * t.num_nodes > 1,
        enable_progress_bar=t.progress_bar,
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        enable_model_summary=False,
        **optional,
    )


@rank_zero_only
def _save_resolved_config(resolved: Mapping[str, Any], run_dir: Path) -> None:
    (run_dir / RESOLVED_CONFIG_NAME).write_text(yaml.safe_dump(dict(resolved), sort_keys=False))


@rank_zero_only
def _print_banner(config: TrainConfig, task: TrainingTask, trainer: pl.Trainer, ckpt_path: str | None, run_dir: Path) -> None:
    global_batch = config.data.batch_size * trainer.world_size * trainer.accumulate_grad_batches
    opt = config.optimizer
    scaled = task.module.scaled_lr(global_batch)
    hashes = ", ".join(f"{k} {v}" for k, v in task.datamodule.file_hashes().items())
    lines = [
        f"run dir        : {run_dir}",
        f"experiment     : {config.experiment_name}  task {task.name}  model {config.model.get('name')}  input {task.input_size}"
        f"  {task.describe}",
        f"devices        : {trainer.world_size} x {config.trainer.accelerator} ({trainer.num_devices} per node, {trainer.num_nodes} node(s))"
        f"  precision {config.trainer.lightning_precision}  channels_last {config.trainer.channels_last}"
        f"  torch threads {torch.get_num_threads()}  data workers {config.data.loader_workers()}",
        f"global batch   : {global_batch} = {config.data.batch_size} per device x {trainer.world_size} x {trainer.accumulate_grad_batches} accumulation",
        f"learning rate  : {scaled:.6g} = {opt.lr:g} x {global_batch}/{opt.base_batch_size}" if opt.scale_lr
        else f"learning rate  : {scaled:.6g} (linear scaling off)",
        f"schedule       : {config.scheduler.name} {list(config.scheduler.milestones) if config.scheduler.name == 'multistep' else ''}"
        f"{f'flat {config.scheduler.flat_fraction:g} ' if config.scheduler.name == 'flat_cosine' else ''}"
        f" warmup {config.scheduler.warmup_iters} it, {config.trainer.max_epochs} epochs",
        f"optimizer      : {opt.name}, weight decay {opt.weight_decay:g}{' (none on norm/bias)' if opt.no_decay_norm_bias else ''}"
        f", head LR x {opt.head_lr_factor:g}, EMA {f'decay {config.ema.decay:g}' if config.ema.enabled else 'off'}",
        f"seed           : {config.seed}  deterministic {config.trainer.deterministic}",
        f"data           : {config.data.root}  sha256 {hashes}",
        f"weights        : {task.init_summary if ckpt_path is None else 'resumed from ' + ckpt_path}",
    ]
    print("\n".join(lines), flush=True)


def _hparam_summary(config: TrainConfig, input_size: tuple[int, int]) -> dict[str, Any]:
    return {
        "model": str(config.model.get("name")),
        "input_size": str(input_size),
        **({"codec": str(config.codec.get("name")), "sigma": float(config.codec.get("sigma", 0.0))} if config.codec else {}),
        "lr": config.optimizer.lr,
        "base_batch_size": config.optimizer.base_batch_size,
        "batch_size": config.data.batch_size,
        "max_epochs": config.trainer.max_epochs,
        "scheduler": config.scheduler.name,
        "precision": config.trainer.lightning_precision,
        "ema": config.ema.enabled,
        "seed": config.seed,
    }


@rank_zero_only
def _write_report(report: dict[str, Any], run_dir: Path, task: TrainingTask) -> None:
    (run_dir / REPORT_NAME).write_text(json.dumps(report, indent=2))
    c = report["complexity"]
    settings = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in task.report_fields.items())
    print(
        "\n=== final report ===\n"
        + task.final_table(report["stats"], f"{report['model']} {report['input_size']} (best ckpt)")
        + f"\n{settings + ', ' if settings else ''}{report['epochs']} epochs, best checkpoint "
        + (report["best_checkpoint"] or "none (no validation defined the monitored metric; the last weights were evaluated)")
        + f"\nparams {c['params'] / 1e6:.3f} M, {c['paper_gmacs']:.3f} GMACs (paper convention), "
        f"{c['true_gmacs']:.3f} GMACs (true), {c['gflops']:.3f} GFLOPs at {c['input_size']}"
        + f"\nwall time {report['wall_seconds']:.1f} s (fit {report['fit_seconds']:.1f} s)  -> {run_dir / REPORT_NAME}"
        + f"\n{SkipCounts(report['skipped']).summary()}",
        flush=True,
    )
