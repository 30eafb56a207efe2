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

from hrnet_train.config_schema import ConfigError, TrainConfig
from hrnet_train.data.skips import SkipCounts
from hrnet_train.evaluation.coco_metric import STAT_NAMES, format_stats_table
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.models import create_model
from hrnet_train.sizes import InputSize
from hrnet_train.training.checkpointing import checkpoint_hparams
from hrnet_train.training.datamodule import PoseDataModule
from hrnet_train.training.fine_tune import BackboneFreeze, InitFromError, initialize_from
from hrnet_train.training.module import PoseLightningModule
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


def build_pose_task(config: TrainConfig, resolved: Mapping[str, Any]) -> TrainingTask:
    """Top-down keypoints on COCO-format data: heatmap codec targets, OKS AP (and PCK) validation."""
    input_size = config.data.input_hw
    keypoints = load_keypoint_set(config.keypoints)
    codec = build_codec(config.codec, input_size)
    model = create_model(config.model, num_joints=keypoints.num_joints)
    init_summary, callbacks = _initialise(model, config, keypoints, codec.channels_per_joint, input_size)
    datamodule = PoseDataModule(config.data, config.eval, keypoints, codec, config.seed, uses_gpu=config.trainer.uses_gpu)
    module = PoseLightningModule(model, config, keypoints, codec, checkpoint_hparams(resolved, input_size, keypoints.num_joints))
    box_source = "gt" if config.eval.boxes == "gt" else "detector"
    return TrainingTask(
        name="pose",
        module=module,
        datamodule=datamodule,
        input_size=input_size,
        stat_names=STAT_NAMES,
        final_table=lambda stats, label: format_stats_table({label: stats}, box_source),
        describe=f"codec {codec.name} (sigma {codec.sigma})  keypoints {keypoints.name} ({keypoints.num_joints})",
        init_summary=init_summary,
        report_fields={"boxes": config.eval.boxes, "flip_test": config.eval.flip_test},
        callbacks=callbacks,
        skipped=datamodule.skip_counts,
    )


def _initialise(
    network: torch.nn.Module, config: TrainConfig, keypoints: KeypointSet, channels_per_joint: int, input_size: InputSize,
) -> tuple[str, list[pl.Callback]]:
    """Where the weights start (init_from, an ImageNet backbone, or scratch), said in one line for the
    banner, and the backbone-freeze callback of a fine-tune."""
    callbacks: list[pl.Callback] = []
    if config.freeze_backbone_epochs:
        callbacks.append(BackboneFreeze(config.freeze_backbone_epochs, getattr(network, "head_name", "final_layer")))
    if config.init_from is not None:
        try:
            report = initialize_from(network, config.model, keypoints, channels_per_joint, input_size,
                                     config.init_from, config.init_from_keypoints)
        except (InitFromError, CheckpointError, FileNotFoundError) as error:
            raise ConfigError(str(error)) from None
        return report.summary(), callbacks
    loaded = getattr(network, "pretrained_load", None)
    if loaded is not None:
        return loaded.summary(), callbacks
    return ("from scratch (no model.pretrained: the reference recipe starts from ImageNet weights, "
            "expect a lower AP on real data)"), callbacks


TASK_BUILDERS: dict[str, Callable[[TrainConfig, Mapping[str, Any]], TrainingTask]] = {"pose": build_pose_task}


def build_task(config: TrainConfig, resolved: Mapping[str, Any]) -> TrainingTask:
    if config.task not in TASK_BUILDERS:
        raise ValueError(f"task: {config.task!r} has no training path (known: {', '.join(TASK_BUILDERS)})")
    return TASK_BUILDERS[config.task](config, resolved)
