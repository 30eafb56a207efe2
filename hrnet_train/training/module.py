"""LightningModule: heatmap regression training and COCO OKS AP validation.

Validation runs the real evaluation path (flip test, codec decoding, rescoring, OKS-NMS,
pycocotools) so ``val/AP`` is the number a user reports, and it selects the best checkpoint.
Everything evaluation/inference needs to rebuild the model is stored in ``hyper_parameters`` as
plain dicts/strings (the checkpoint loads with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.config_schema import TrainConfig
from hrnet_train.keypoints import KeypointSet
from hrnet_train.plain import to_plain
from hrnet_train.evaluation.coco_metric import format_stats_table
from hrnet_train.evaluation.validation import (
    PoseValidation,
    gt_box_predictions,
    leave_out_unread,
    pose_metrics,
    secondary_stats_line,
)
from hrnet_train.training.step_logging import host_scalar, is_logging_step
from hrnet_train.training.ema import ModelEMA
from hrnet_train.training.losses import build_loss
from hrnet_train.training.schedules import StepwiseLR, build_optimizer, parameter_groups, scale_lr
from hrnet_train.training.visualization import prediction_grid


class PoseLightningModule(pl.LightningModule):
    """Wraps a pose network; ``hparams`` is the plain dict of :func:`checkpointing.checkpoint_hparams`."""

    def __init__(self, model: nn.Module, config: TrainConfig, keypoints: KeypointSet, codec: HeatmapCodec, hparams: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.keypoints = keypoints
        self.codec = codec
        self.save_hyperparameters(dict(hparams))
        self.loss = build_loss(codec, config.loss, keypoints)
        self.channels_last = config.trainer.channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEMA(model, config.ema.decay) if config.ema.enabled else None
        # Only the training forward is compiled: validation (eval mode, other batch sizes, the EMA copy)
        # stays eager, so the compiled graph sees one static shape (drop_last) and CUDA graphs
        # (mode reduce-overhead) apply. A compiled bound method is no submodule: checkpoints keep their keys.
        mode = config.trainer.compile
        self._compiled_forward = None if mode is None else torch.compile(self.model.forward, mode=mode)
        self.validation = PoseValidation(codec, keypoints, config.eval)
        self.last_stats: dict[str, float] = {}
        self.last_table = ""
        self._vis_batch: dict[str, np.ndarray] | None = None
        self._ema_step = -1

    # ------------------------------------------------------------------ training

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        # Both ways explicit: device-pipeline batches arrive as channels-last views (a no-op for CPU batches).
        return images.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        network = self._compiled_forward or self.model
        return network(self._prepare(images))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        heatmaps = self(batch["image"])
        loss = self.loss(heatmaps, batch["target"], batch["target_weight"])
        size = len(batch["image"])
        # No wait for the GPU in the step (step_logging): the loss stays a device tensor off the
        # progress bar, the LR is a host tensor, and the bar gets a host copy of the loss on logging steps.
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=size)
        self.log("train/lr", host_scalar(self.optimizers().param_groups[0]["lr"]), on_step=True, on_epoch=False, batch_size=size)
        if is_logging_step(self.trainer.log_every_n_steps, steps_done=self.global_step + 1):
            self.log("loss", loss.detach().cpu(), on_step=True, on_epoch=False, prog_bar=True, logger=False, batch_size=size)
        return loss

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

    def on_validation_epoch_start(self) -> None:
        self.validation.start()
        self._vis_batch = None

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        images = self._prepare(batch["image"])
        heatmaps = self.validation.heatmaps(self.evaluated_model, images)
        if self.config.eval.boxes == "gt":  # with detector boxes the targets are dummies (spec 9.15)
            loss = self.loss(heatmaps, batch["target"], batch["target_weight"])
            self.log("val/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(images))
        self.validation.add(heatmaps, batch["meta"])
        if batch_idx == 0 and self.config.eval.num_vis_images > 0:
            n = self.config.eval.num_vis_images
            self._vis_batch = {
                "images": batch["image"][:n].float().cpu().numpy(),
                "heatmaps": heatmaps[:n].cpu().numpy(),
                "targets": batch["target"][:n].float().cpu().numpy(),
                "weights": batch["target_weight"][:n].float().cpu().numpy(),
            }

    def on_validation_epoch_end(self) -> None:
        # One row per val instance, gathered from every rank (DistributedSampler pads with repeats);
        # the count is logged so a run shows every instance was evaluated exactly once.
        instances = self.validation.gather(self.trainer.world_size)
        dataset = self.trainer.datamodule.val_dataset
        gt_box_poses = None
        if self.config.eval.boxes == "gt":  # one prediction per GT box, before NMS, as evaluate.py reports PCK
            gt_box_poses = gt_box_predictions(instances, [dataset.records[i].annotation_id for i in instances.indices])
        coco, results, _ = leave_out_unread(dataset.coco, self.validation.results(instances), instances, dataset.records)
        stats = pose_metrics(coco, results, self.keypoints, gt_box_poses)
        self.last_stats = stats
        # The re-evaluation of the best checkpoint after fit (trainer.validate) is not an epoch: its numbers
        # reach callback_metrics (the runner's report) but not the logger's curves, and its table says so.
        final = self.trainer.state.fn == "validate"
        self.log_dict({f"val/{name}": value for name, value in stats.items()}, on_step=False, on_epoch=True, logger=not final)
        self.log("val/num_instances", float(len(instances)), on_step=False, on_epoch=True, logger=not final)
        box_source = "gt" if self.config.eval.boxes == "gt" else "detector"
        label = "best checkpoint" if final else f"epoch {self.current_epoch}"
        self.last_table = "\n".join(filter(None, [format_stats_table({label: stats}, box_source), secondary_stats_line(stats)]))
        if self.trainer.is_global_zero and not self.trainer.sanity_checking and not final:
            self.print(self.last_table)
            self._log_to_tensorboard()

    def _log_to_tensorboard(self) -> None:
        """AP table as text and the prediction grid as an image (TensorBoard only; CSV has no such types)."""
        experiment = getattr(self.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        experiment.add_text("val/AP_table", self.last_table, self.global_step)
        if self._vis_batch is None:
            return
        vis = self._vis_batch
        stride = np.array(self.codec.heatmap_to_input())
        pred, _ = self.codec.decode(vis["heatmaps"])
        gt, _ = self.codec.decode(self.codec.target_as_output(vis["targets"]))
        grid = prediction_grid(
            vis["images"], pred * stride, gt * stride, vis["weights"] > 0, self.keypoints.skeleton, color_rgb=self.config.data.color_rgb
        )
        experiment.add_image("val/predictions_vs_gt", grid, self.global_step, dataformats="HWC")

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning stores an AttributeDict; a plain dict keeps the file loadable with weights_only=True.
        checkpoint["hyper_parameters"] = to_plain(dict(self.hparams))
