"""Typed validation of the resolved training config, run before anything heavy is imported or built.

Every section the training code reads is a frozen dataclass; ``validate_train_config`` converts the
resolved Hydra config into them, checking types (``trainer.max_epochs=abc`` is rejected), ranges,
unknown keys, paths and sizes, and raises ``ConfigError`` naming the field. This module imports no
torch/Lightning so a wrong command line fails in well under a second. Sections owned by other
packages (model spec, codec options, keypoint set, augmentation) are checked for the fields the
training needs and passed on as plain dicts; their builders validate the rest.
"""

from __future__ import annotations

import math
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from hrnet_train.cli_args import did_you_mean
from hrnet_train.pipeline_options import CROP_AUGMENTATIONS, check_pipeline, gpu_decode_available
from hrnet_train.plain import to_plain
from hrnet_train.seg_classes import seg_classes_from_mapping
from hrnet_train.sizes import InputSize

PRECISIONS = {"32": "32-true", "32-true": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
SCHEDULE_NAMES = ("multistep", "cosine", "flat_cosine", "constant", "poly")
OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
BOX_SOURCES = ("gt", "det")
NMS_MODES = ("oks", "soft", "none")
LOGGER_NAMES = ("tensorboard", "csv")
TASKS = ("pose", "face", "segmentation")
INSTANCE_KINDS = ("person", "face")  # what one annotation of a keypoint file is (data.instances)
# What a face run logs each validation (hrnet_train.evaluation.nme.STAT_NAMES): checkpoint monitors.
FACE_MONITORS = ("val/NME", "val/FR_0.08", "val/FR_0.10", "val/AUC_0.1", "val/loss")
# torch.compile modes (reduce-overhead = CUDA graphs: static shapes, which drop_last guarantees in training).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class ConfigError(ValueError):
    """A config value is missing, of the wrong type or out of range; the message names the field."""


MAX_AUTO_WORKERS = 8  # more loader processes stop paying off for HRNet crops (benchmarks/epoch.py on the H200)


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, e.g. a container's limit, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def auto_workers(cores: int) -> int:
    """Loader processes when none are configured: one per core but the one the training process needs."""
    return max(0, min(MAX_AUTO_WORKERS, cores - 1))


def loader_workers(num_workers: int | None) -> int:
    """Loader processes: a configured count capped at the machine's cores, or auto_workers() for None."""
    cores = available_cores()
    return auto_workers(cores) if num_workers is None else min(num_workers, cores)


@dataclass(frozen=True)
class TrainerConfig:
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 1
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: bool = False
    benchmark: bool | None = None
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    num_sanity_val_steps: int = 0
    limit_train_batches: int | float | None = None  # an integer is a batch count, a float a fraction (Lightning's rule)
    limit_val_batches: int | float | None = None
    channels_last: bool = False
    tf32: bool = False  # GPU only: fp32 convolutions/matmuls on TF32 tensor cores (runner._set_tf32)
    num_threads: int | None = None  # torch intra-op threads of the main process; null = torch default
    compile: str | None = None  # torch.compile mode of the training forward (COMPILE_MODES); null = eager
    enable_progress_bar: bool | None = None  # None: only when stderr is a terminal (see progress_bar)
    progress_refresh_rate: int = 1

    def check(self, prefix: str) -> TrainerConfig:
        _one_of(self.accelerator, ACCELERATORS, f"{prefix}.accelerator")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{prefix}.precision: expected one of {sorted(PRECISIONS)}, got {self.precision!r}")
        for name in ("devices", "num_nodes", "max_epochs", "accumulate_grad_batches", "check_val_every_n_epoch",
                     "log_every_n_steps", "progress_refresh_rate"):
            _at_least(getattr(self, name), 1, f"{prefix}.{name}")
        _at_least(self.num_sanity_val_steps, 0, f"{prefix}.num_sanity_val_steps")
        if self.num_threads is not None:
            _at_least(self.num_threads, 1, f"{prefix}.num_threads")
        if self.compile is not None:
            _one_of(self.compile, COMPILE_MODES, f"{prefix}.compile")
        if self.gradient_clip_val is not None:
            _at_least(self.gradient_clip_val, 0.0, f"{prefix}.gradient_clip_val")
        for name in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{prefix}.{name}: expected a fraction in (0, 1] or a batch count >= 1, got {value}")
        return self

    @property
    def lightning_precision(self) -> str:
        return PRECISIONS[self.precision]

    @property
    def uses_gpu(self) -> bool:
        return self.accelerator in ("gpu", "cuda")

    @property
    def progress_bar(self) -> bool:
        """The progress bar is drawn only on a terminal: piped output and log files get no escape codes."""
        return self.enable_progress_bar if self.enable_progress_bar is not None else sys.stderr.isatty()


class LoaderSettings:
    """What the data loaders of a data section read: batch sizes, ``num_workers`` and ``pin_memory`` (None = automatic)."""

    batch_size: int
    val_batch_size: int
    num_workers: int | None
    pin_memory: bool | None

    def check_loaders(self, prefix: str) -> None:
        for name in ("batch_size", "val_batch_size"):
            _at_least(getattr(self, name), 1, f"{prefix}.{name}")
        if self.num_workers is not None:
            _at_least(self.num_workers, 0, f"{prefix}.num_workers")

    def loader_workers(self) -> int:
        return loader_workers(self.num_workers)

    def pin_memory_for(self, uses_gpu: bool) -> bool:
        """Page-locked batches help only a GPU copy; on a CPU run they only cost memory."""
        return uses_gpu if self.pin_memory is None else bool(self.pin_memory) and uses_gpu


@dataclass(frozen=True)
class DataConfig(LoaderSettings):
    name: str
    root: str
    input_size: str
    batch_size: int = 32
    val_batch_size: int = 64
    num_workers: int | None = 0  # None: auto_workers() -- what the machine has, one core left to the trainer
    pin_memory: bool | None = False  # None: on with a GPU only
    persistent_workers: bool = False
    train_split: str = "train"
    val_split: str = "val"
    train_ann_file: str | None = None
    val_ann_file: str | None = None
    train_img_dir: str | None = None
    val_img_dir: str | None = None
    color_rgb: bool = True
    skip_corrupt: bool = False
    drop_invalid_boxes: bool = False
    generate_synthetic: bool = False
    synthetic: dict = field(default_factory=dict)
    lspet_source: str | None = None   # LSPET folder (joints.mat + images/) converted into root when missing
    augment: dict = field(default_factory=dict)
    pipeline: str = "cpu"  # training crops + targets: cpu (loader workers) | device (accelerator, batched)
    decode: str = "cpu"  # JPEG decode: cpu (loader workers) | gpu (nvJPEG via torchvision, device pipeline)
    # person: COCO person boxes; face: face landmark annotations (official face box, task=face); with
    # generate_synthetic it also picks the generator (synthetic people or synthetic faces).
    instances: str = "person"

    def check(self, prefix: str) -> DataConfig:
        _one_of(self.instances, INSTANCE_KINDS, f"{prefix}.instances")
        _size(self.input_size, f"{prefix}.input_size")
        self.check_loaders(prefix)
        crop_augmentations = [name for name in CROP_AUGMENTATIONS if self.augment.get(name)]
        try:
            check_pipeline(self.pipeline, self.decode, crop_augmentations)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.lspet_source is not None and not (Path(self.lspet_source).expanduser() / "joints.mat").is_file():
            raise ConfigError(f"{prefix}.lspet_source: no joints.mat in {self.lspet_source!r} (expected the LSPET folder)")
        if not self.generate_synthetic and self.lspet_source is None and not Path(self.root).expanduser().is_dir():
            raise ConfigError(f"{prefix}.root: data directory {self.root!r} does not exist")
        for name in ("train_ann_file", "val_ann_file"):
            value = getattr(self, name)
            if value is not None and not self.generate_synthetic and self.lspet_source is None and not self._resolve(value).is_file():
                raise ConfigError(f"{prefix}.{name}: annotation file {value!r} does not exist")
        return self

    @property
    def input_hw(self) -> InputSize:
        """The parsed size; the divisibility by the network's input_multiple is checked by check_model_section."""
        return InputSize.parse(self.input_size, "data.input_size")

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.root).expanduser() / path


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3  # LR at base_batch_size (the recipe's global batch)
    base_batch_size: int = 128
    scale_lr: bool = True  # linear scaling with the actual global batch
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, ...] = (0.9, 0.999)
    no_decay_norm_bias: bool = False  # no weight decay on norm weights/biases and on every bias (RTMPose's AdamW)
    head_lr_factor: float = 1.0  # LR of the model's head = factor x LR (e.g. 10 for a fresh head on a pretrained backbone)

    def check(self, prefix: str) -> OptimizerConfig:
        _one_of(self.name, OPTIMIZER_NAMES, f"{prefix}.name")
        if self.lr <= 0:
            raise ConfigError(f"{prefix}.lr: expected a positive learning rate, got {self.lr}")
        if self.head_lr_factor <= 0:
            raise ConfigError(f"{prefix}.head_lr_factor: expected a positive factor, got {self.head_lr_factor}")
        _at_least(self.base_batch_size, 1, f"{prefix}.base_batch_size")
        _at_least(self.weight_decay, 0.0, f"{prefix}.weight_decay")
        _at_least(self.momentum, 0.0, f"{prefix}.momentum")
        if len(self.betas) != 2 or not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ConfigError(f"{prefix}.betas: expected two values in [0, 1), got {list(self.betas)}")
        return self


@dataclass(frozen=True)
class SchedulerConfig:
    """LR factor over training; see hrnet_train.training.schedules.lr_factor."""

    name: str = "multistep"
    milestones: tuple[int, ...] = (170, 200)
    gamma: float = 0.1
    # Reference quirk (spec 5.1): MultiStepLR stepped before each epoch -> drops one epoch early.
    reference_step_offset: bool = False
    warmup_iters: int = 0
    warmup_start_factor: float = 0.001
    min_lr_factor: float = 0.0
    flat_fraction: float = 0.5  # flat_cosine: share of the steps at the full LR before the cosine (RTMPose: 210 of 420 epochs)
    power: float = 0.9  # poly: lr = base * (1 - it / max_it) ** power (official segmentation, spec B.7)

    def check(self, prefix: str) -> SchedulerConfig:
        _one_of(self.name, SCHEDULE_NAMES, f"{prefix}.name")
        if self.power <= 0:
            raise ConfigError(f"{prefix}.power: expected a positive poly exponent, got {self.power}")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"{prefix}.milestones: must be increasing, got {list(self.milestones)}")
        _at_least(self.warmup_iters, 0, f"{prefix}.warmup_iters")
        for name in ("warmup_start_factor", "min_lr_factor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{prefix}.{name}: expected a value in [0, 1], got {value}")
        if not 0.0 <= self.flat_fraction < 1.0:
            raise ConfigError(f"{prefix}.flat_fraction: expected a fraction in [0, 1), got {self.flat_fraction}")
        return self


@dataclass(frozen=True)
class DivergenceLimit:
    """The loss section's field every task shares: training stops (TrainingDiverged) when the loss exceeds
    this many times the run's first loss; null: only a non-finite loss stops it (training/divergence.py)."""

    divergence_factor: float | None = 1.0e4

    def check_divergence_factor(self, prefix: str) -> None:
        if self.divergence_factor is not None:
            _at_least(self.divergence_factor, 1.0, f"{prefix}.divergence_factor")


@dataclass(frozen=True)
class LossConfig(DivergenceLimit):
    use_target_weight: bool = True
    use_joint_weights: bool = False  # keypoint set's joint_weights (reference USE_DIFFERENT_JOINTS_WEIGHT)
    ohkm_topk: int | None = None

    def check(self, prefix: str) -> LossConfig:
        if self.ohkm_topk is not None:
            _at_least(self.ohkm_topk, 1, f"{prefix}.ohkm_topk")
        self.check_divergence_factor(prefix)
        return self


@dataclass(frozen=True)
class EMAConfig:
    enabled: bool = False
    decay: float = 0.999

    def check(self, prefix: str) -> EMAConfig:
        if not 0.0 < self.decay < 1.0:
            raise ConfigError(f"{prefix}.decay: expected a value in (0, 1), got {self.decay}")
        return self


@dataclass(frozen=True)
class EvalConfig:
    """How poses are predicted and post-processed for scoring: train.py's ``eval`` section and the same
    top-level keys of evaluate.py (one schema for both, so the two can never disagree)."""

    boxes: str = "gt"
    det_file: str | None = None
    det_score_thr: float = 0.0
    flip_test: bool | None = True  # evaluate.py: null = the model's own (trained_model.TrainedModel.flip_test)
    in_vis_thre: float = 0.2
    nms: str = "oks"
    oks_thre: float = 0.9
    soft_update_scores: bool = False  # soft-NMS: report the decayed scores (reference keeps the originals)
    num_vis_images: int = 8  # train.py only: validation crops in the TensorBoard prediction grid

    def check(self, prefix: str) -> EvalConfig:
        where = "" if prefix == "config" else f"{prefix}."
        _one_of(self.boxes, BOX_SOURCES, f"{where}boxes")
        _one_of(self.nms, NMS_MODES, f"{where}nms")
        if self.flip_test is None and where:
            raise ConfigError(f"{where}flip_test: expected true or false (null is evaluate.py's 'the model's own')")
        if self.boxes == "det":
            if self.det_file is None:
                raise ConfigError(f"{where}det_file: required when {where}boxes=det")
            if not Path(self.det_file).expanduser().is_file():
                raise ConfigError(f"{where}det_file: detection file {self.det_file!r} does not exist")
        for name in ("in_vis_thre", "oks_thre"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}{name}: expected a value in [0, 1], got {value}")
        _at_least(self.num_vis_images, 0, f"{where}num_vis_images")
        return self


@dataclass(frozen=True)
class LoggerConfig:
    name: str = "tensorboard"
    log_graph: bool = False

    def check(self, prefix: str) -> LoggerConfig:
        _one_of(self.name, LOGGER_NAMES, f"{prefix}.name")
        return self


@dataclass(frozen=True)
class CheckpointConfig:
    monitor: str = "val/AP"
    mode: str = "max"
    save_top_k: int = 1
    save_last: bool = True
    every_n_epochs: int = 1

    def check(self, prefix: str) -> CheckpointConfig:
        _one_of(self.mode, ("max", "min"), f"{prefix}.mode")
        _at_least(self.save_top_k, -1, f"{prefix}.save_top_k")
        _at_least(self.every_n_epochs, 1, f"{prefix}.every_n_epochs")
        return self


@dataclass(frozen=True)
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping_patience: int | None = None

    def check(self, prefix: str) -> CallbacksConfig:
        if self.early_stopping_patience is not None:
            _at_least(self.early_stopping_patience, 1, f"{prefix}.early_stopping_patience")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """The validated training config (what train.py and the Lightning modules read)."""

    experiment_name: str
    seed: int
    model: dict
    keypoints: dict
    codec: dict
    data: DataConfig
    trainer: TrainerConfig
    optimizer: OptimizerConfig
    scheduler: SchedulerConfig
    loss: LossConfig
    ema: EMAConfig
    eval: EvalConfig
    logger: LoggerConfig
    callbacks: CallbacksConfig
    ckpt_path: str | None = None  # resume THIS run: its last.ckpt ("last") or a file of it
    init_from: str | None = None  # fine-tune: copy weights from a checkpoint/.pth, new schedule
    init_from_keypoints: str | None = None  # keypoint set of a bare .pth given to init_from (default coco17)
    freeze_backbone_epochs: int = 0  # with init_from: train only the head for this many epochs
    output_dir: str | None = None  # where a single run writes (Hydra's run dir); run_dir is what it became
    run_dir: str | None = None
    optimized_metric: str = "val/AP"  # what train.py returns to a Hydra sweeper (hparams_search)
    task: str = "pose"  # pose | face | segmentation: which training path (hrnet_train.training.tasks)

    def check(self, prefix: str) -> TrainConfig:
        _one_of(self.task, TASKS, "task")
        if self.task == "face":
            self._check_face()
        if self.ckpt_path is not None and self.init_from is not None:
            raise ConfigError("ckpt_path / init_from: give one -- ckpt_path resumes a run (same schedule), "
                              "init_from starts a new run from its weights")
        if self.init_from is not None and not Path(self.init_from).expanduser().is_file():
            raise ConfigError(f"init_from: checkpoint file {self.init_from!r} does not exist")
        if self.init_from is not None and self.model.get("pretrained") is not None:
            raise ConfigError("init_from / model.pretrained: give one (init_from copies the whole network)")
        _at_least(self.freeze_backbone_epochs, 0, "freeze_backbone_epochs")
        if self.freeze_backbone_epochs and self.init_from is None and self.model.get("pretrained") is None:
            raise ConfigError("freeze_backbone_epochs: only with init_from=<file> or model.pretrained=<file> "
                              "(a fresh backbone must train)")
        pretrained = self.model.get("pretrained")
        if pretrained is not None and not Path(str(pretrained)).expanduser().is_file():
            raise ConfigError(f"model.pretrained: ImageNet checkpoint {pretrained!r} does not exist")
        self.check_task_sections()
        return self

    def check_task_sections(self) -> None:
        """What the task's own sections need together (keypoint tasks: a codec, GPU decoding); other tasks override it."""
        if "name" not in self.codec:
            raise ConfigError("codec.name: missing (expected e.g. legacy, dark, udp)")
        if self.data.decode == "gpu":
            if not self.trainer.uses_gpu:
                raise ConfigError(f"data.decode: gpu needs trainer.accelerator=gpu, got {self.trainer.accelerator!r}")
            if not gpu_decode_available():
                raise ConfigError("data.decode: gpu decodes with torchvision's nvJPEG, and torchvision is not installed")

    def _check_face(self) -> None:
        """A face run needs face data, a keypoint set scored with NME, GT face boxes and an NME monitor."""
        if self.data.instances != "face":
            raise ConfigError(f"data.instances: task=face reads face annotations, set data.instances=face "
                              f"(got {self.data.instances!r})")
        if self.keypoints.get("nme_normalizer") is None:
            raise ConfigError(f"keypoints: task=face scores NME, and keypoint set {self.keypoints.get('name')!r} has no "
                              f"nme_normalizer (face sets: face300w68, wflw98, cofw29, aflw19)")
        if self.eval.boxes != "gt":
            raise ConfigError(f"eval.boxes: task=face crops the annotated face boxes, expected gt, got {self.eval.boxes!r}")
        for key, value in (("callbacks.checkpoint.monitor", self.callbacks.checkpoint.monitor),
                           ("optimized_metric", self.optimized_metric)):
            if value not in FACE_MONITORS:
                raise ConfigError(f"{key}: a face run logs {list(FACE_MONITORS)}, got {value!r} "
                                  f"(the face experiments set val/NME with mode min)")

    @property
    def global_batch_size(self) -> int:
        t = self.trainer
        return self.data.batch_size * t.devices * t.num_nodes * t.accumulate_grad_batches


# ---------------------------------------------------------------------------------------------------
# Segmentation (task: segmentation). Its run config is TrainConfig with the data, loss and eval sections
# replaced by the segmentation ones and without keypoint set or codec; validate_train_config picks the
# class by the config's ``task`` (TRAIN_CONFIGS), so no pose field is required for segmentation, and no
# segmentation field exists in a pose config.

SEG_DATASETS = ("synthetic", "cityscapes", "folder", "coco_person")
SEG_METRICS = ("mIoU", "pixel_acc", "mean_acc")  # logged as val/<name> by segmentation validation
CITYSCAPES_LABEL_KINDS = ("labelIds", "labelTrainIds")
# Fields that only one reader uses; the other readers refuse them when they are set.
SEG_DATASET_FIELDS = {
    "synthetic": ("generate_synthetic", "synthetic", "parts"),
    "cityscapes": ("train_list", "val_list", "label_kind"),
    "folder": ("classes", "image_dir", "label_dir", "label_suffix", "label_values"),
    "coco_person": ("train_ann_file", "val_ann_file", "train_img_dir", "val_img_dir", "person_images_only"),
}


@dataclass(frozen=True)
class SegDataConfig(LoaderSettings):
    """A segmentation data set: the reader (``dataset``), where its splits are, the training crop, the loaders.

    ``augment`` holds :class:`hrnet_train.data.seg_augment.SegAugmentConfig` fields other than the crop
    (default: the official recipe, spec B.7); its builder validates them. Training crops are
    ``crop_size``; validation and evaluation run on whole images.
    """

    name: str
    dataset: str
    root: str
    crop_size: str
    batch_size: int = 8
    val_batch_size: int = 1
    num_workers: int | None = 0
    pin_memory: bool | None = False
    persistent_workers: bool = False
    train_split: str = "train"
    val_split: str = "val"
    augment: dict = field(default_factory=dict)
    # synthetic: the generated people (hrnet_train.data.synthetic), person or body-part masks
    generate_synthetic: bool = False
    synthetic: dict = field(default_factory=dict)
    parts: bool = False
    # cityscapes: HRNet .lst files (relative to root), or None for the leftImg8bit/gtFine layout
    train_list: str | None = None
    val_list: str | None = None
    label_kind: str = "labelIds"
    # folder: <root>/<image_dir>/<split>/<stem>.jpg|png + <root>/<label_dir>/<split>/<stem><label_suffix>
    classes: dict = field(default_factory=dict)  # names (+ name, palette, class_weights, flip_pairs)
    image_dir: str = "images"
    label_dir: str = "labels"
    label_suffix: str = ".png"
    label_values: dict = field(default_factory=dict)  # stored value -> class id; {} = the ids as stored
    # coco_person: annotation files / image folders (None: the standard layout under root for the split)
    train_ann_file: str | None = None
    val_ann_file: str | None = None
    train_img_dir: str | None = None
    val_img_dir: str | None = None
    person_images_only: bool = False

    def check(self, prefix: str) -> SegDataConfig:
        _one_of(self.dataset, SEG_DATASETS, f"{prefix}.dataset")
        _size(self.crop_size, f"{prefix}.crop_size")
        self.check_loaders(prefix)
        defaults = SegDataConfig(name="", dataset="", root="", crop_size="")
        for dataset, names in SEG_DATASET_FIELDS.items():
            for name in names:
                if dataset != self.dataset and getattr(self, name) != getattr(defaults, name):
                    raise ConfigError(f"{prefix}.{name}: read by {prefix}.dataset={dataset} only (this is {self.dataset})")
        if not self.generate_synthetic and not Path(self.root).expanduser().is_dir():
            raise ConfigError(f"{prefix}.root: data directory {self.root!r} does not exist")
        _one_of(self.label_kind, CITYSCAPES_LABEL_KINDS, f"{prefix}.label_kind")
        if self.dataset == "folder":
            if not self.classes:
                raise ConfigError(f"{prefix}.classes: the folder dataset needs its classes, e.g. {prefix}.classes.names=[background,thing]")
            try:
                seg_classes_from_mapping(self.classes)
            except ValueError as error:
                raise ConfigError(f"{prefix}.classes: {str(error).removeprefix('classes: ')}") from None
        return self

    @property
    def input_hw(self) -> InputSize:
        """The training crop (what the model and the complexity figures of the run see)."""
        return InputSize.parse(self.crop_size, "data.crop_size")


@dataclass(frozen=True)
class SegLossConfig(DivergenceLimit):
    """Cross-entropy with ignore 255 and the class set's weights (Cityscapes: always, spec B.6); OHEM optional."""

    ohem: bool = False
    ohem_thresh: float = 0.9  # official LOSS.OHEMTHRES
    ohem_min_kept: int = 131072  # official LOSS.OHEMKEEP (a quarter of one 512x1024 crop)

    def check(self, prefix: str) -> SegLossConfig:
        if not 0.0 <= self.ohem_thresh <= 1.0:
            raise ConfigError(f"{prefix}.ohem_thresh: expected a probability in [0, 1], got {self.ohem_thresh}")
        _at_least(self.ohem_min_kept, 1, f"{prefix}.ohem_min_kept")
        self.check_divergence_factor(prefix)
        return self


@dataclass(frozen=True)
class SegEvalConfig:
    """How class maps are predicted: train.py's ``eval`` section of segmentation runs and evaluate.py's
    ``seg`` section. Defaults: the official single-scale test; multi-scale + flip as options (spec B.8)."""

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    base_size: int | None = None  # long side at scale 1 (official Cityscapes 2048); None = the image's own
    window: str | None = None  # HxW tiles for scales > 1 (official 1024x2048); None = the whole image
    num_vis_images: int = 4  # overlay panels: TensorBoard every epoch / evaluate.py's overlays PNG

    def check(self, prefix: str) -> SegEvalConfig:
        where = f"{prefix}."
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"{where}scales: expected positive scale factors, got {list(self.scales)}")
        if self.base_size is not None:
            _at_least(self.base_size, 1, f"{where}base_size")
        if self.window is not None:
            _size(self.window, f"{where}window")
        _at_least(self.num_vis_images, 0, f"{where}num_vis_images")
        return self

    @property
    def window_hw(self) -> InputSize | None:
        return None if self.window is None else InputSize.parse(self.window, "window")


@dataclass(frozen=True, kw_only=True)
class SegTrainConfig(TrainConfig):
    """The validated training config of ``task: segmentation`` (the sections not replaced here are TrainConfig's)."""

    data: SegDataConfig
    loss: SegLossConfig = field(default_factory=SegLossConfig)
    eval: SegEvalConfig = field(default_factory=SegEvalConfig)
    keypoints: dict = field(default_factory=dict)  # must stay empty: no keypoint set
    codec: dict = field(default_factory=dict)  # must stay empty: no heatmap codec

    def check_task_sections(self) -> None:
        for name, what in (("keypoints", "keypoint set"), ("codec", "heatmap codec")):
            if getattr(self, name):
                raise ConfigError(f"{name}: a segmentation run has no {what} (the segmentation experiments drop the "
                                  f"group: override /{name}: null)")
        allowed = [f"val/{name}" for name in SEG_METRICS]
        _one_of(self.callbacks.checkpoint.monitor, allowed, "callbacks.checkpoint.monitor")
        _one_of(self.optimized_metric, allowed, "optimized_metric")
        if self.init_from_keypoints is not None:
            raise ConfigError("init_from_keypoints: a keypoint-model setting; segmentation init_from copies a network "
                              "with the same class list")


TRAIN_CONFIGS: dict[str, type[TrainConfig]] = {"segmentation": SegTrainConfig}  # other tasks: TrainConfig


EVAL_PRECISIONS = {"32": "32-true", "32-true": "32-true", "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed"}


@dataclass(frozen=True)
class EvaluateConfig:
    """The validated evaluate.py config. The prediction/post-processing keys are top-level on the
    command line (``boxes=det``) and validated by the same :class:`EvalConfig` as training's."""

    output_dir: str
    data: dict
    eval: EvalConfig
    ckpt: str | None = None
    results: str | None = None
    model: dict | None = None
    keypoints: dict | None = None
    codec: dict | None = None
    flip_shift: bool | None = None  # null: the codec's own (legacy: the reference 1-px shift)
    post_process: bool | None = None  # null: the codec's own (legacy: the reference quarter offset)
    format_only: bool = False
    batch_size: int = 32
    num_workers: int | None = None  # None: auto_workers() of the machine's cores
    num_threads: int | None = 1  # torch intra-op threads (None: torch's default)
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32"
    gallery_size: int = 16
    pck: bool | None = None
    pck_alpha: float = 0.2
    seg: SegEvalConfig = field(default_factory=SegEvalConfig)  # segmentation checkpoints only
    save_predictions: bool = False  # segmentation: one class-map PNG per image (Cityscapes: labelIds)

    def check(self, prefix: str) -> EvaluateConfig:
        if (self.ckpt is None) == (self.results is None):
            raise ConfigError("ckpt / results: give exactly one of ckpt=<.ckpt or .pth file> or results=<COCO results json>")
        if self.ckpt is not None and not Path(self.ckpt).expanduser().is_file():
            raise ConfigError(f"ckpt: checkpoint file {self.ckpt!r} does not exist")
        if self.results is not None:
            if not Path(self.results).expanduser().is_file():
                raise ConfigError(f"results: results file {self.results!r} does not exist")
            if self.format_only:
                raise ConfigError("format_only=true with results=<file>: nothing to do (the results file exists)")
        _one_of(self.accelerator, ACCELERATORS, "accelerator")
        _one_of(self.precision, EVAL_PRECISIONS, "precision")
        for name in ("batch_size", "devices"):
            _at_least(getattr(self, name), 1, name)
        if self.num_workers is not None:
            _at_least(self.num_workers, 0, "num_workers")
        if self.num_threads is not None:
            _at_least(self.num_threads, 1, "num_threads")
        _at_least(self.gallery_size, 0, "gallery_size")
        if not 0.0 < self.pck_alpha <= 1.0:
            raise ConfigError(f"pck_alpha: expected a value in (0, 1], got {self.pck_alpha}")
        return self

    def loader_workers(self) -> int:
        return loader_workers(self.num_workers)

    @property
    def lightning_precision(self) -> str:
        return EVAL_PRECISIONS[self.precision]


def validate_evaluate_config(cfg: Mapping[str, Any]) -> EvaluateConfig:
    """Check evaluate.py's resolved config; raises ConfigError naming the first offending field."""
    plain = _to_plain(cfg, throw_on_missing=False)  # data.root may stay ??? when data.ann_file names the split
    check_finite_numbers(plain)
    shared = {f.name for f in fields(EvalConfig)}
    plain["eval"] = _build(EvalConfig, {k: plain.pop(k) for k in list(plain) if k in shared}, "")
    return _build(EvaluateConfig, plain, "")


def validate_seg_data_config(raw: Mapping[str, Any]) -> SegDataConfig:
    """A segmentation data section on its own (evaluate.py's ``data``); raises ConfigError naming the field."""
    return _build(SegDataConfig, dict(raw), "data.")


def register_resolvers() -> None:
    """OmegaConf resolvers the config tree uses: ``${hrnet_data_dir:}`` = the checkout's data/ folder,
    ``${hrnet_shared_data_dir:}`` = the shared real data (``../shared/data`` or ``$HRNET_SHARED_DATA``),
    ``${hrnet_models_dir:}`` = the checkout's committed models/."""
    from omegaconf import OmegaConf

    from hrnet_train.paths import data_dir, models_dir, shared_data_dir

    OmegaConf.register_new_resolver("hrnet_data_dir", lambda: str(data_dir()), replace=True)
    OmegaConf.register_new_resolver("hrnet_shared_data_dir", lambda: str(shared_data_dir()), replace=True)
    OmegaConf.register_new_resolver("hrnet_models_dir", lambda: str(models_dir()), replace=True)


def validate_train_config(cfg: Mapping[str, Any], known_models: typing.Collection[str] | None = None) -> TrainConfig:
    """Check the resolved config (plain dict or OmegaConf) and return typed sections.

    ``known_models``: model names the registry offers; when given, ``model.name`` must be one of them.
    Raises ConfigError naming the first offending field.
    """
    plain = _to_plain(cfg)
    check_finite_numbers(plain)
    config = _build(TRAIN_CONFIGS.get(str(plain.get("task")), TrainConfig), plain, "")
    if known_models is not None:
        name = config.model.get("name")
        if name not in known_models:
            raise ConfigError(f"model.name: unknown model {name!r} (known: {sorted(known_models)})")
    return config


def check_finite_numbers(node: Any, key: str = "") -> None:
    """Raise ConfigError naming the first ``nan``/``inf`` anywhere in the config (typed fields and the
    plain sections alike: codec sigma, keypoint weights, augmentation factors).

    No setting of this project means "infinite" (a missing limit is ``null``), and a non-finite number
    otherwise surfaces far from its cause: ``codec.sigma=nan`` as "arange: cannot compute length" while
    the targets are built, ``optimizer.lr=inf`` as a finished run with NaN weights.
    """
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{key or 'config'}: expected a finite number, got {node}")
    if isinstance(node, Mapping):
        for name, value in node.items():
            check_finite_numbers(value, _join(key, str(name)))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_finite_numbers(value, f"{key}[{i}]")


def _to_plain(cfg: Any, throw_on_missing: bool = True) -> dict:
    """The resolved config as a dict; a missing (``???``) or unresolvable value becomes a ConfigError naming it."""
    try:
        from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        return dict(to_plain(cfg))
    try:
        return dict(to_plain(cfg, throw_on_missing=throw_on_missing))
    except MissingMandatoryValue as error:
        key = error.full_key
        raise ConfigError(f"{key}: missing mandatory value (???); set it, e.g. {key}=...") from None
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        raise ConfigError(f"{getattr(error, 'full_key', None) or 'config'}: {message}") from None


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{_join(prefix, unknown[0])}: unknown field (known fields: {sorted(names)})")
    values = {}
    for f in fields(cls):
        key = _join(prefix, f.name)
        if f.name in raw:
            values[f.name] = _convert(raw[f.name], hints[f.name], key)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{key}: missing")
    return cls(**values).check(prefix.rstrip(".") or "config")


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        exact = next((option for option in options if type(value) is option), options[0])  # int | float keeps an int
        return _convert(value, exact, key)
    if value is None or (isinstance(value, str) and value == "???"):
        raise ConfigError(f"{key}: missing (expected {_describe(hint)})")
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return value if isinstance(value, hint) else _build(hint, value, key + ".")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"config_schema: unsupported annotation {hint!r} for {key}")  # a bug in this module


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}{name}" if prefix.endswith(".") or not prefix else f"{prefix}.{name}"


def _size(value: str, key: str) -> InputSize:
    """``value`` parsed as HxW; ConfigError naming ``key`` otherwise."""
    try:
        return InputSize.parse(value, key)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _at_least(value: float, minimum: float, key: str) -> None:
    if value < minimum:
        raise ConfigError(f"{key}: expected a value >= {minimum}, got {value}")


def _one_of(value: str, allowed: typing.Iterable[str], key: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}: expected one of {list(allowed)}, got {value!r}")


def check_model_section(config: TrainConfig) -> None:
    """Resolve ``model.name``/``model.spec`` against the model registry (imports torch, not Lightning)
    and check that the input size suits the network's strides. Raises ConfigError naming the field."""
    from hrnet_train.models.registry import list_models, resolve_spec

    model = config.model
    name = model.get("name")
    if name is not None and name not in list_models():
        raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(list_models())})")
    try:
        _, spec = resolve_spec(name, model.get("spec"), model.get("arch"))
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None
    try:
        config.data.input_hw.check_multiple(spec.input_multiple, "data.input_size", f"model {name}: input_multiple")
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_codec_section(config: TrainConfig) -> None:
    """Build the codec once from ``codec.*`` and the input size (imports torch, not Lightning), so a
    mistyped name (``codec.name=darkk``: "did you mean") or a bad option fails before any data is
    built; with ``data.pipeline=device`` the codec must have a batched torch encoder. Raises ConfigError."""
    from hrnet_train.codecs import CODECS, create_codec

    options = dict(config.codec)
    if not options:  # a task without a heatmap codec (segmentation): nothing to build
        return
    name = options.pop("name")
    codec = CODECS.get(name)
    if codec is None:
        raise ConfigError(f"codec.name: unknown codec {name!r}{did_you_mean(str(name), CODECS)}; "
                          f"known: {', '.join(sorted(CODECS))}")
    try:
        create_codec(name, config.data.input_hw, **options)
    except ValueError as error:
        raise ConfigError(f"codec: {error}") from None
    if config.data.pipeline == "device" and not codec.has_torch_encoder():
        with_encoder = sorted(name for name, cls in CODECS.items() if cls.has_torch_encoder())
        raise ConfigError(
            f"data.pipeline: device builds targets with the codec's torch encoder, and codec.name="
            f"{config.codec['name']!r} has none (codecs with one: {with_encoder}); use data.pipeline=cpu"
        )


def check_accelerator(accelerator: str, devices: int, prefix: str = "trainer.", cpu_setting: str = "trainer=cpu") -> None:
    """``accelerator=gpu``/``cuda`` needs that many CUDA GPUs visible to this process (imports torch).

    Checked with the config, so a machine without a GPU (or a CPU-only torch wheel) gets one line
    before any data is built instead of Lightning's traceback after it; ``cpu_setting`` is the advice.
    Raises ConfigError.
    """
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    if torch.version.cuda is None:
        raise ConfigError(f"{prefix}accelerator={accelerator}: this torch build ({torch.__version__}) has no CUDA "
                          f"support; run on the CPU ({cpu_setting}) or install a CUDA build of torch")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible == 0:
        raise ConfigError(f"{prefix}accelerator={accelerator}: no CUDA GPU is visible to this process "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use {cpu_setting}")
    if devices > visible:
        raise ConfigError(f"{prefix}devices={devices}: only {visible} CUDA GPU(s) visible to this process")
