"""What the Lightning module of every task shares: network, optimiser + LR schedule, EMA, plain hyper_parameters.

A task's module (pose: :mod:`~hrnet_train.training.module`, segmentation:
:mod:`~hrnet_train.training.seg_module`) adds its loss, training step and validation; the run
(:mod:`~hrnet_train.training.runner`) reads ``last_stats``, ``evaluated_model`` and ``scaled_lr`` of either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from hrnet_train.config_schema import TrainConfig
from hrnet_train.plain import to_plain
from hrnet_train.training.ema import ModelEMA
from hrnet_train.training.schedules import StepwiseLR, build_optimizer, scale_lr


class TaskLightningModule(pl.LightningModule):
    """Wraps a network; ``hparams`` is the plain dict a checkpoint needs to be read back alone."""

    def __init__(self, model: nn.Module, config: TrainConfig, hparams: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(dict(hparams))
        self.channels_last = config.trainer.channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEMA(model, config.ema.decay) if config.ema.enabled else None
        self.last_stats: dict[str, float] = {}
        self._ema_step = -1

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self._prepare(images))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # One EMA update per optimiser step (several batches per step with gradient accumulation).
        if self.ema is not None and self.global_step != self._ema_step:
            self.ema.update(self.model)
            self._ema_step = self.global_step

    @property
    def evaluated_model(self) -> nn.Module:
        """The weights validation and export use: the EMA copy when EMA is on."""
        return self.ema.model if self.ema is not None else self.model

    def global_batch_size(self) -> int:
        trainer = self.trainer
        return self.config.data.batch_size * trainer.world_size * trainer.accumulate_grad_batches

    def scaled_lr(self, global_batch: int) -> float:
        opt = self.config.optimizer
        return scale_lr(opt.lr, global_batch, opt.base_batch_size) if opt.scale_lr else opt.lr

    def configure_optimizers(self) -> dict[str, Any]:
        opt = self.config.optimizer
        optimizer = build_optimizer(
            opt.name, self.model.parameters(), self.scaled_lr(self.global_batch_size()), opt.weight_decay, opt.momentum, opt.betas
        )
        max_epochs = self.trainer.max_epochs
        steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches) // max_epochs)
        scheduler = StepwiseLR(optimizer, self.config.scheduler, steps_per_epoch, max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning stores an AttributeDict; a plain dict keeps the file loadable with weights_only=True.
        checkpoint["hyper_parameters"] = to_plain(dict(self.hparams))
