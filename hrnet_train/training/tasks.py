"""What a task (pose, face, segmentation) contributes to a training run; the run itself is task-free.

:func:`hrnet_train.training.runner.run_training` prepares the data, builds the task's Lightning module
and data module through :data:`TASK_BUILDERS` (keyed by the config's ``task``), fits, re-evaluates the
best checkpoint and writes the report. A task module provides ``last_stats`` (the metrics of its last
validation), ``evaluated_model`` (the network validation and export use: the EMA copy when on) and
``scaled_lr(global_batch)``; its data module provides ``file_hashes()`` for the banner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl

import torch

from hrnet_train.baselines.mean_shape import mean_shape_nme
from hrnet_train.codecs import HeatmapCodec
from hrnet_train.config_schema import SEG_METRICS, ConfigError, SegTrainConfig, TrainConfig
from hrnet_train.data.skips import SkipCounts
from hrnet_train.evaluation.coco_metric import STAT_NAMES, format_stats_table
from hrnet_train.evaluation.nme import STAT_NAMES as NME_STAT_NAMES
from hrnet_train.evaluation.nme import format_nme_table
from hrnet_train.evaluation.seg_validation import stats_table
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.models import create_model
from hrnet_train.sizes import InputSize
from hrnet_train.training.checkpointing import checkpoint_hparams
from hrnet_train.training.datamodule import PoseDataModule
from hrnet_train.training.face_module import FaceLightningModule
from hrnet_train.training.fine_tune import BackboneFreeze, InitFromError, initialize_from
from hrnet_train.training.module import PoseLightningModule
from hrnet_train.training.seg_datamodule import SegDataModule
from hrnet_train.training.seg_module import SegLightningModule, load_initial_weights, segmentation_hparams
from hrnet_train.trained_model import CheckpointError, build_codec


@dataclass
class TrainingTask:
    """A task's parts of one run.

    ``stat_names``: the metrics read back from ``trainer.callback_metrics`` when the module's own
    ``last_stats`` did not come back (ddp_spawn validates in child processes). ``report_fields`` go into
    report.json; ``final_table(stats, label)`` is the final report's metrics table; ``describe`` the
    banner's task line; ``skipped()`` what ``data.skip_corrupt``/``data.drop_invalid_boxes`` left out.
    """

    name: str
    module: pl.LightningModule
    datamodule: pl.LightningDataModule
    input_size: InputSize
    stat_names: tuple[str, ...]
    final_table: Callable[[Mapping[str, float], str], str]
    describe: str
    init_summary: str = "from scratch"
    report_fields: dict[str, Any] = field(default_factory=dict)
    callbacks: list[pl.Callback] = field(default_factory=list)
    skipped: Callable[[], SkipCounts] = SkipCounts  # what the data options skipped, for the final report


@dataclass
class _KeypointParts:
    """What every top-down keypoint task (pose, face) builds the same way from the config."""

    input_size: InputSize
    keypoints: KeypointSet
    codec: HeatmapCodec
    model: torch.nn.Module
    datamodule: PoseDataModule
    init_summary: str
    callbacks: list[pl.Callback]


def _keypoint_parts(config: TrainConfig) -> _KeypointParts:
    input_size = config.data.input_hw
    keypoints = load_keypoint_set(config.keypoints)
    codec = build_codec(config.codec, input_size)
    model = create_model(config.model, num_joints=keypoints.num_joints)
    init_summary, callbacks = _initialise(model, config, lambda path: initialize_from(
        model, config.model, keypoints, codec.channels_per_joint, input_size, path, config.init_from_keypoints).summary())
    datamodule = PoseDataModule(config.data, config.eval, keypoints, codec, config.seed, uses_gpu=config.trainer.uses_gpu)
    return _KeypointParts(input_size, keypoints, codec, model, datamodule, init_summary, callbacks)


def _describe(parts: _KeypointParts) -> str:
    return (f"codec {parts.codec.name} (sigma {parts.codec.sigma})  keypoints {parts.keypoints.name} "
            f"({parts.keypoints.num_joints})")


def build_pose_task(config: TrainConfig, resolved: Mapping[str, Any]) -> TrainingTask:
    """Top-down keypoints on COCO-format data: heatmap codec targets, OKS AP (and PCK) validation."""
    parts = _keypoint_parts(config)
    hparams = checkpoint_hparams(resolved, parts.input_size, parts.keypoints.num_joints)
    module = PoseLightningModule(parts.model, config, parts.keypoints, parts.codec, hparams)
    box_source = "gt" if config.eval.boxes == "gt" else "detector"
    return TrainingTask(
        name="pose",
        module=module,
        datamodule=parts.datamodule,
        input_size=parts.input_size,
        stat_names=STAT_NAMES,
        final_table=lambda stats, label: format_stats_table({label: stats}, box_source),
        describe=_describe(parts),
        init_summary=parts.init_summary,
        report_fields={"boxes": config.eval.boxes, "flip_test": config.eval.flip_test},
        callbacks=parts.callbacks,
        skipped=parts.datamodule.skip_counts,
    )


def build_face_task(config: TrainConfig, resolved: Mapping[str, Any]) -> TrainingTask:
    """Facial landmarks (spec A): the top-down keypoint path on face annotations (official face box),
    NME with the keypoint set's normaliser, FR@0.08/0.10 and AUC@0.1 every validation (best checkpoint:
    ``val/NME``, lowest). The no-learning mean-shape baseline of the same splits is computed once
    (annotations only) and reported beside the model, so every face run says what it learned."""
    parts = _keypoint_parts(config)
    hparams = {**checkpoint_hparams(resolved, parts.input_size, parts.keypoints.num_joints), "task": "face"}
    module = FaceLightningModule(parts.model, config, parts.keypoints, parts.codec, hparams)
    datamodule = parts.datamodule
    baseline = mean_shape_nme(datamodule.train_ann, datamodule.val_ann, parts.keypoints).summary()
    baseline_label = "mean-shape baseline (no learning)"
    return TrainingTask(
        name="face",
        module=module,
        datamodule=datamodule,
        input_size=parts.input_size,
        stat_names=NME_STAT_NAMES,
        final_table=lambda stats, label: format_nme_table({label: stats, baseline_label: baseline}),
        describe=f"{_describe(parts)}  mean-shape baseline NME {100 * baseline['NME']:.2f}%",
        init_summary=parts.init_summary,
        report_fields={"flip_test": config.eval.flip_test, "mean_shape_NME": round(baseline["NME"], 6)},
        callbacks=parts.callbacks,
        skipped=datamodule.skip_counts,
    )


def build_segmentation_task(config: SegTrainConfig, resolved: Mapping[str, Any]) -> TrainingTask:
    """Semantic segmentation: class logits, cross-entropy (OHEM optional), confusion-matrix mIoU validation."""
    datamodule = SegDataModule(config.data, config.seed, uses_gpu=config.trainer.uses_gpu)
    classes = datamodule.classes
    model = create_model(config.model, num_classes=classes.num_classes)
    init_summary, callbacks = _initialise(model, config, lambda path: load_initial_weights(model, path, classes))
    crop = config.data.input_hw
    hparams = segmentation_hparams(resolved, classes, crop, model.spec.align_corners, config.eval)
    stat_names = (*SEG_METRICS, *(f"IoU_{name.replace(' ', '_')}" for name in classes.names))
    loss = f"{'OHEM ' if config.loss.ohem else ''}cross-entropy{' (class weights)' if classes.class_weights is not None else ''}"
    return TrainingTask(
        name="segmentation",
        module=SegLightningModule(model, config, classes, hparams),
        datamodule=datamodule,
        input_size=crop,
        stat_names=stat_names,
        final_table=lambda stats, label: stats_table(stats, classes, label),
        describe=f"classes {classes.name} ({classes.num_classes})  loss {loss}",
        init_summary=init_summary,
        report_fields={"classes": classes.name, "scales": list(config.eval.scales), "flip": config.eval.flip},
        callbacks=callbacks,
    )


def _initialise(
    network: torch.nn.Module, config: TrainConfig, init_from: Callable[[str], str],
) -> tuple[str, list[pl.Callback]]:
    """Where the weights start (init_from, an ImageNet backbone, or scratch), said in one line for the
    banner, and the backbone-freeze callback of a fine-tune. ``init_from(path)`` is the task's way to copy a
    source's weights into ``network``; it returns what it did."""
    callbacks: list[pl.Callback] = []
    if config.freeze_backbone_epochs:
        callbacks.append(BackboneFreeze(config.freeze_backbone_epochs, getattr(network, "head_name", "final_layer")))
    if config.init_from is not None:
        try:
            return init_from(config.init_from), callbacks
        except (InitFromError, CheckpointError, FileNotFoundError) as error:
            raise ConfigError(str(error)) from None
    loaded = getattr(network, "pretrained_load", None)
    if loaded is not None:
        return loaded.summary(), callbacks
    return ("from scratch (no model.pretrained: the reference recipe starts from ImageNet weights, "
            "expect lower scores on real data)"), callbacks


TASK_BUILDERS: dict[str, Callable[[TrainConfig, Mapping[str, Any]], TrainingTask]] = {
    "pose": build_pose_task, "face": build_face_task,
    "segmentation": build_segmentation_task,  # type: ignore[dict-item]  # takes the SegTrainConfig of its task
}


def build_task(config: TrainConfig, resolved: Mapping[str, Any]) -> TrainingTask:
    if config.task not in TASK_BUILDERS:
        raise ValueError(f"task: {config.task!r} has no training path (known: {', '.join(TASK_BUILDERS)})")
    return TASK_BUILDERS[config.task](config, resolved)
