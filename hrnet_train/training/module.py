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
import torch
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.config_schema import TrainConfig
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.decoding.instances import DecodedInstances
from hrnet_train.keypoints import KeypointSet
from hrnet_train.evaluation.coco_metric import format_stats_table
from hrnet_train.evaluation.validation import PoseValidation, gt_box_predictions, leave_out_unread, pose_metrics, secondary_stats_line
from hrnet_train.training.losses import build_loss
from hrnet_train.training.task_module import TaskLightningModule
from hrnet_train.training.visualization import prediction_grid


class PoseLightningModule(TaskLightningModule):
    """Wraps a pose network; ``hparams`` is the plain dict of :func:`checkpointing.checkpoint_hparams`.

    Other keypoint tasks subclass it and override :meth:`validation_metrics` and :meth:`metrics_table`.
    """

    TABLE_TAG = "val/AP_table"  # TensorBoard text tag of the metrics table

    def __init__(self, model: nn.Module, config: TrainConfig, keypoints: KeypointSet, codec: HeatmapCodec, hparams: Mapping[str, Any]) -> None:
        super().__init__(model, config, hparams)
        self.keypoints = keypoints
        self.codec = codec
        self.loss = build_loss(codec, config.loss, keypoints)
        self.validation = PoseValidation(codec, keypoints, config.eval)
        self._vis_batch: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ training

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        heatmaps = self(batch["image"])
        loss = self.loss(heatmaps, batch["target"], batch["target_weight"])
        self.log_training_loss(loss, len(batch["image"]))
        return loss

    # ------------------------------------------------------------------ validation

    def on_validation_epoch_start(self) -> None:
        self.validation.start()
        self._vis_batch = None

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
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
        return {"finite_outputs": torch.isfinite(heatmaps).all()}  # read by the DivergenceGuard

    def on_validation_epoch_end(self) -> None:
        # One row per val instance, gathered from every rank (DistributedSampler pads with repeats);
        # the count is logged so a run shows every instance was evaluated exactly once.
        instances = self.validation.gather(self.trainer.world_size)
        stats = self.validation_metrics(instances, self.trainer.datamodule.val_dataset)
        self.report_validation(stats, lambda label: self.metrics_table(stats, label),
                               counts={"num_instances": float(len(instances))})

    def validation_metrics(self, instances: DecodedInstances, dataset: TopDownCocoDataset) -> dict[str, float]:
        """The task's scores of one validation pass (pose: COCO OKS AP, plus PCK for LSPET-style sets)."""
        gt_box_poses = None
        if self.config.eval.boxes == "gt":  # one prediction per GT box, before NMS, as evaluate.py reports PCK
            gt_box_poses = gt_box_predictions(instances, [dataset.records[i].annotation_id for i in instances.indices])
        coco, results, _ = leave_out_unread(dataset.coco, self.validation.results(instances), instances, dataset.records)
        return pose_metrics(coco, results, self.keypoints, gt_box_poses)

    def metrics_table(self, stats: Mapping[str, float], label: str) -> str:
        """The printed (and TensorBoard text) table of one validation pass."""
        table = format_stats_table({label: stats}, "gt" if self.config.eval.boxes == "gt" else "detector")
        return "\n".join(filter(None, [table, secondary_stats_line(stats)]))

    def log_pictures(self, experiment: Any) -> None:
        """The metrics table as text and the prediction grid as an image."""
        experiment.add_text(self.TABLE_TAG, self.last_table, self.global_step)
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
