"""What the Lightning module of every task shares: network, optimiser + LR schedule, EMA, logging, plain hyper_parameters.

A task's module (pose: :mod:`~hrnet_train.training.module`, segmentation:
:mod:`~hrnet_train.training.seg_module`) adds its loss, training step and validation; the run
(:mod:`~hrnet_train.training.runner`) reads ``last_stats``, ``evaluated_model`` and ``scaled_lr`` of either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from hrnet_train.config_schema import TrainConfig
from hrnet_train.plain import to_plain
from hrnet_train.training.ema import ModelEMA
from hrnet_train.training.schedules import StepwiseLR, build_optimizer, parameter_groups, scale_lr
from hrnet_train.training.step_logging import host_scalar, is_logging_step


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
        # Only the training forward is compiled: validation (eval mode, other batch sizes, the EMA copy)
        # stays eager, so the compiled graph sees one static shape (drop_last) and CUDA graphs
        # (mode reduce-overhead) apply. A compiled bound method is no submodule: checkpoints keep their keys.
        mode = config.trainer.compile
        self._compiled_forward = None if mode is None else torch.compile(self.model.forward, mode=mode)
        self.last_stats: dict[str, float] = {}
        self.last_table = ""
        self._ema_step = -1

    # ------------------------------------------------------------------ training

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        # Both ways explicit: device-pipeline batches arrive as channels-last views (a no-op for CPU batches).
        return images.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        network = self._compiled_forward or self.model
        return network(self._prepare(images))

    def log_training_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """``train/loss`` and ``train/lr`` without a wait for the GPU in the step (step_logging): the loss stays
        a device tensor off the progress bar, the LR is a host tensor, and the bar gets a host copy of the
        loss on logging steps."""
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/lr", host_scalar(self.optimizers().param_groups[0]["lr"]), on_step=True, on_epoch=False,
                 batch_size=batch_size)
        if is_logging_step(self.trainer.log_every_n_steps, steps_done=self.global_step + 1):
            self.log("loss", loss.detach().cpu(), on_step=True, on_epoch=False, prog_bar=True, logger=False, batch_size=batch_size)

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
        groups = parameter_groups(self.model, opt.weight_decay, opt.no_decay_norm_bias, opt.head_lr_factor)
        optimizer = build_optimizer(
            opt.name, groups, self.scaled_lr(self.global_batch_size()), opt.weight_decay, opt.momentum, opt.betas,
            fused=self.device.type == "cuda",
        )
        max_epochs = self.trainer.max_epochs
        steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches) // max_epochs)
        scheduler = StepwiseLR(optimizer, self.config.scheduler, steps_per_epoch, max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # ------------------------------------------------------------------ validation

    def report_validation(self, stats: Mapping[str, float], table: Callable[[str], str],
                          counts: Mapping[str, float] | None = None) -> None:
        """Keep and log ``stats`` as ``val/<name>`` (``counts`` are logged only), make the table
        (``table(label)``), and on rank 0 print it and draw :meth:`log_pictures`.

        The re-evaluation of the best checkpoint after fit (trainer.validate) is not an epoch: its numbers
        reach callback_metrics (the runner's report) but not the logger's curves, and its table says so.
        """
        final = self.trainer.state.fn == "validate"
        self.last_stats = dict(stats)
        # An undefined (nan) metric is not logged: no curve point, and "best" is not chosen by it (BestCheckpoint).
        logged = {f"val/{name}": value for name, value in {**stats, **(counts or {})}.items() if not math.isnan(value)}
        self.log_dict(logged, on_step=False, on_epoch=True, logger=not final)
        self.last_table = table("best checkpoint" if final else f"epoch {self.current_epoch}")
        if self.trainer.is_global_zero and not self.trainer.sanity_checking and not final:
            self.print(self.last_table)
            experiment = getattr(self.logger, "experiment", None)
            if hasattr(experiment, "add_image"):  # TensorBoard only; CSV has no text or image types
                self.log_pictures(experiment)

    def log_pictures(self, experiment: Any) -> None:
        """The task's validation table and pictures in TensorBoard (``experiment`` is its SummaryWriter)."""

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning stores an AttributeDict; a plain dict keeps the file loadable with weights_only=True.
        checkpoint["hyper_parameters"] = to_plain(dict(self.hparams))
