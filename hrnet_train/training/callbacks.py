"""Training callbacks: throughput/epoch-time logging, per-epoch dataset reseeding, a progress bar that
keeps stdout clean, wall time across resumed segments and a logging cadence for small epochs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from hrnet_train.training.step_logging import host_scalar


class ThroughputMonitor(pl.Callback):
    """Logs ``train/samples_per_s`` (all ranks together, on the progress bar) and ``train/epoch_time_s``.

    Samples/s is the running average since the start of the epoch, data loading included: per-step
    values swing wildly on a shared CPU, the average is what decides how long an epoch takes.
    """

    def __init__(self) -> None:
        self._epoch_start = 0.0
        self._samples = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._samples += len(batch["image"]) * trainer.world_size
        elapsed = time.perf_counter() - self._epoch_start
        if elapsed > 0:  # a host tensor: no wait for the GPU (step_logging)
            pl_module.log(
                "train/samples_per_s", host_scalar(self._samples / elapsed), on_step=True, on_epoch=False, prog_bar=True,
                batch_size=1,
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log("train/epoch_time_s", host_scalar(time.perf_counter() - self._epoch_start), on_step=False, on_epoch=True, batch_size=1)


class DatasetEpochSeeder(pl.Callback):
    """Calls ``train_dataset.set_epoch(epoch, max_epochs)`` before each epoch so augmentation draws depend
    only on (seed, epoch, worker) -- a resumed run reproduces the uninterrupted one -- and a two-stage
    augmentation switches in the right epoch; says so when the stage changes."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dataset = getattr(trainer.datamodule, "train_dataset", None)
        if dataset is None or not hasattr(dataset, "set_epoch"):
            return
        stage = getattr(dataset, "augment_stage", None)
        dataset.set_epoch(trainer.current_epoch, max_epochs=trainer.max_epochs)
        if getattr(dataset, "augment_stage", None) != stage:
            pl_module.print(f"augmentation: stage {dataset.augment_stage} from epoch {trainer.current_epoch}")


class StderrProgressBar(TQDMProgressBar):
    """Lightning's tqdm bars on stderr instead of stdout: stdout (and the run's log file, which copies
    it) then holds only text lines -- banner, epoch tables, the final report -- and no redraws."""

    @staticmethod
    def _on_stderr(make: Callable[[], Any]) -> Any:
        saved, sys.stdout = sys.stdout, sys.stderr  # Lightning's bars are built with file=sys.stdout
        try:
            return make()
        finally:
            sys.stdout = saved

    def init_sanity_tqdm(self) -> Any:
        return self._on_stderr(super().init_sanity_tqdm)

    def init_train_tqdm(self) -> Any:
        return self._on_stderr(super().init_train_tqdm)

    def init_validation_tqdm(self) -> Any:
        return self._on_stderr(super().init_validation_tqdm)


class TrainingClock(pl.Callback):
    """Training wall time summed over every segment of a run: the elapsed seconds travel in the
    checkpoints, so a run resumed from ``last.ckpt`` reports the time of all its parts (the part of an
    epoch lost to a crash is not counted; its work is redone)."""

    def __init__(self) -> None:
        self.previous = 0.0  # seconds of the segments before this one (restored from the checkpoint)
        self._start: float | None = None

    @property
    def total_seconds(self) -> float:
        return self.previous + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.previous, self._start = self.total_seconds, None

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.total_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous = float(state_dict.get("seconds", 0.0))


class LoggingCadence(pl.Callback):
    """Logs step metrics at least once per epoch: Lightning logs every ``log_every_n_steps`` optimiser
    steps counted across epochs, so with fewer batches per epoch than that (a small dataset) the loss
    and LR curves would get a point only every few epochs, or none in a short run."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = trainer.num_training_batches
        if isinstance(batches, int) and 0 < batches < trainer.log_every_n_steps:
            trainer.log_every_n_steps = batches
