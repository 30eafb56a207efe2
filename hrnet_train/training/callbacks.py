"""Training callbacks: throughput/epoch-time logging and per-epoch dataset reseeding."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl

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
    """Calls ``train_dataset.set_epoch(epoch)`` before each epoch so augmentation draws depend only on
    (seed, epoch, worker): a resumed run reproduces the uninterrupted one."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dataset = getattr(trainer.datamodule, "train_dataset", None)
        if dataset is not None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(trainer.current_epoch)
