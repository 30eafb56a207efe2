"""LightningModule of semantic segmentation: pixel-wise cross-entropy training, confusion-matrix mIoU validation.

Training: logits at 1/4 resolution upsampled to the crop's labels, cross-entropy with ignore 255 and the
class set's weights (Cityscapes: always, spec B.6), OHEM as an option (``loss=seg_ohem``). Validation
runs the evaluation loop of evaluate.py (:class:`~hrnet_train.evaluation.seg_validation.SegValidation`)
on whole val images, gathered across DDP ranks with every image counted once, so ``val/mIoU`` is the
number a user reports and selects the best checkpoint. ``model.spec.align_corners`` is read once and
used by the loss, the validation and (through the checkpoint) every later inference.

The checkpoint's ``hyper_parameters`` (:func:`segmentation_hparams`) carry ``task: segmentation``, the
model config, the class set, the crop size and align_corners as plain values, so the file loads alone
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hrnet_train.config_schema import SegEvalConfig, SegTrainConfig
from hrnet_train.evaluation.miou import SegScores, iou_table
from hrnet_train.evaluation.seg_validation import SegValidation, overlay_sheet, seg_stats
from hrnet_train.models import load_official_state_dict
from hrnet_train.plain import to_plain
from hrnet_train.seg_classes import SegClasses, seg_classes_from_mapping, seg_classes_to_mapping
from hrnet_train.sizes import InputSize
from hrnet_train.trained_model import (
    SEGMENTATION_TASK,
    CheckpointError,
    is_training_checkpoint,
    network_state_dict,
    read_checkpoint,
)
from hrnet_train.training.seg_losses import SegCrossEntropyLoss
from hrnet_train.training.task_module import TaskLightningModule


def segmentation_hparams(
    resolved_config: Mapping[str, Any], classes: SegClasses, crop_size: InputSize, align_corners: bool,
    settings: SegEvalConfig,
) -> dict[str, Any]:
    """What a segmentation checkpoint must carry to be rebuilt and used without the config tree (builtins only)."""
    model = dict(resolved_config["model"])
    return {
        "task": SEGMENTATION_TASK,
        "model_name": str(model.get("name")),
        "model": model,
        "classes_name": classes.name,
        "classes": seg_classes_to_mapping(classes),
        "num_classes": classes.num_classes,
        "input_size": [int(crop_size[0]), int(crop_size[1])],
        "align_corners": bool(align_corners),
        "color_rgb": True,
        "eval": to_plain({"scales": list(settings.scales), "flip": settings.flip, "base_size": settings.base_size,
                          "window": settings.window}),
        "config": dict(resolved_config),
    }


def load_initial_weights(network: nn.Module, path: str, classes: SegClasses) -> str:
    """``init_from`` for segmentation: copy every weight of a train.py checkpoint (its EMA copy when kept)
    or an official-format ``.pth`` into ``network``, strictly (same architecture and class count; a
    checkpoint of ours must also have the same class names). Returns the banner's line."""
    content = read_checkpoint(path)
    if is_training_checkpoint(content):
        hparams = content["hyper_parameters"]
        if hparams.get("task") != SEGMENTATION_TASK:
            raise CheckpointError(f"init_from: {path} is a {hparams.get('task', 'pose')} checkpoint, this run segments")
        source = seg_classes_from_mapping(hparams["classes"])
        if source.names != classes.names:
            raise CheckpointError(f"init_from: {path} predicts {source.name} {list(source.names)}, this run "
                                  f"{classes.name} {list(classes.names)}: the class lists must be the same")
        state, kind = network_state_dict(content, prefer_ema=True, label=path), f"{hparams.get('model_name')} checkpoint"
    else:
        state, kind = content, "state dict"
    try:
        load_official_state_dict(network, state, label=path)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    return f"init_from {path} ({kind}): all {len(network.state_dict())} tensors copied (strict)"


class SegLightningModule(TaskLightningModule):
    """Wraps a segmentation network; ``hparams`` is :func:`segmentation_hparams`'s dict."""

    def __init__(self, model: nn.Module, config: SegTrainConfig, classes: SegClasses, hparams: Mapping[str, Any]) -> None:
        super().__init__(model, config, hparams)
        self.classes = classes
        align_corners = bool(model.spec.align_corners)
        loss = config.loss
        self.loss = SegCrossEntropyLoss(
            class_weights=classes.class_weights, align_corners=align_corners, ohem=loss.ohem,
            ohem_thresh=loss.ohem_thresh, ohem_min_kept=loss.ohem_min_kept,
        )
        self.validation = SegValidation(classes, config.eval, align_corners)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]), batch["label"])
        self.log_training_loss(loss, len(batch["image"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.validation.start()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        network = self.evaluated_model
        self.validation.add(lambda images: network(self._prepare(images)), batch)

    def on_validation_epoch_end(self) -> None:
        scores = SegScores.from_confusion(self.validation.gather(self.trainer.world_size))
        self.report_validation(seg_stats(scores, self.classes), lambda label: f"{label}:\n{iou_table(scores, self.classes.names)}")

    def log_pictures(self, experiment: Any) -> None:
        """IoU table as text and image | ground truth | prediction overlays."""
        experiment.add_text("val/IoU_table", self.last_table, self.global_step)
        sheet = overlay_sheet(self.validation.vis, self.classes)
        if sheet is not None:
            experiment.add_image("val/overlays", sheet, self.global_step, dataformats="HWC")
