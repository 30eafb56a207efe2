"""Typed validation of the resolved training config, run before anything heavy is imported or built.

Every section the training code reads is a frozen dataclass; ``validate_train_config`` converts the
resolved Hydra config into them, checking types (``trainer.max_epochs=abc`` is rejected), ranges,
unknown keys, paths and sizes, and raises ``ConfigError`` naming the field. This module imports no
torch/Lightning so a wrong command line fails in well under a second. Sections owned by other
packages (model spec, codec options, keypoint set, augmentation) are checked for the fields the
training needs and passed on as plain dicts; their builders validate the rest.
"""

from __future__ import annotations

import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from hrnet_train.pipeline_options import CROP_AUGMENTATIONS, check_pipeline, gpu_decode_available
from hrnet_train.plain import to_plain
from hrnet_train.sizes import InputSize

PRECISIONS = {"32": "32-true", "32-true": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
SCHEDULE_NAMES = ("multistep", "cosine", "flat_cosine", "constant")
OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
BOX_SOURCES = ("gt", "det")
NMS_MODES = ("oks", "soft", "none")
LOGGER_NAMES = ("tensorboard", "csv")
TASKS = ("pose", "face", "segmentation")
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
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
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


@dataclass(frozen=True)
class DataConfig:
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

    def check(self, prefix: str) -> DataConfig:
        try:
            InputSize.parse(self.input_size, f"{prefix}.input_size")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for name in ("batch_size", "val_batch_size"):
            _at_least(getattr(self, name), 1, f"{prefix}.{name}")
        if self.num_workers is not None:
            _at_least(self.num_workers, 0, f"{prefix}.num_workers")
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

    def loader_workers(self) -> int:
        """Loader processes: the configured count capped at the machine's cores, or auto_workers() for None."""
        cores = available_cores()
        return auto_workers(cores) if self.num_workers is None else min(self.num_workers, cores)

    def pin_memory_for(self, uses_gpu: bool) -> bool:
        """Page-locked batches help only a GPU copy; on a CPU run they only cost memory."""
        return uses_gpu if self.pin_memory is None else bool(self.pin_memory) and uses_gpu

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
        if len(self.betas) != 2:
            raise ConfigError(f"{prefix}.betas: expected two values, got {list(self.betas)}")
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

    def check(self, prefix: str) -> SchedulerConfig:
        _one_of(self.name, SCHEDULE_NAMES, f"{prefix}.name")
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
class LossConfig:
    use_target_weight: bool = True
    use_joint_weights: bool = False  # keypoint set's joint_weights (reference USE_DIFFERENT_JOINTS_WEIGHT)
    ohkm_topk: int | None = None

    def check(self, prefix: str) -> LossConfig:
        if self.ohkm_topk is not None:
            _at_least(self.ohkm_topk, 1, f"{prefix}.ohkm_topk")
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
    flip_test: bool = True
    in_vis_thre: float = 0.2
    nms: str = "oks"
    oks_thre: float = 0.9
    soft_update_scores: bool = False  # soft-NMS: report the decayed scores (reference keeps the originals)
    num_vis_images: int = 8  # train.py only: validation crops in the TensorBoard prediction grid

    def check(self, prefix: str) -> EvalConfig:
        where = "" if prefix == "config" else f"{prefix}."
        _one_of(self.boxes, BOX_SOURCES, f"{where}boxes")
        _one_of(self.nms, NMS_MODES, f"{where}nms")
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
        if "name" not in self.codec:
            raise ConfigError("codec.name: missing (expected e.g. legacy, dark, udp)")
        if self.data.decode == "gpu":
            if not self.trainer.uses_gpu:
                raise ConfigError(f"data.decode: gpu needs trainer.accelerator=gpu, got {self.trainer.accelerator!r}")
            if not gpu_decode_available():
                raise ConfigError("data.decode: gpu decodes with torchvision's nvJPEG, and torchvision is not installed")
        return self

    @property
    def global_batch_size(self) -> int:
        t = self.trainer
        return self.data.batch_size * t.devices * t.num_nodes * t.accumulate_grad_batches


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
    num_workers: int | None = 0
    num_threads: int | None = 1  # torch intra-op threads (None: torch's default)
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32"
    gallery_size: int = 16
    pck: bool | None = None
    pck_alpha: float = 0.2

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

    @property
    def lightning_precision(self) -> str:
        return EVAL_PRECISIONS[self.precision]


def validate_evaluate_config(cfg: Mapping[str, Any]) -> EvaluateConfig:
    """Check evaluate.py's resolved config; raises ConfigError naming the first offending field."""
    plain = _to_plain(cfg, throw_on_missing=False)  # data.root may stay ??? when data.ann_file names the split
    shared = {f.name for f in fields(EvalConfig)}
    plain["eval"] = _build(EvalConfig, {k: plain.pop(k) for k in list(plain) if k in shared}, "")
    return _build(EvaluateConfig, plain, "")


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
    config = _build(TrainConfig, plain, "")
    if known_models is not None:
        name = config.model.get("name")
        if name not in known_models:
            raise ConfigError(f"model.name: unknown model {name!r} (known: {sorted(known_models)})")
    return config


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
        return _convert(value, options[0], key)
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
    """With ``data.pipeline=device`` the codec must have a batched torch encoder (imports torch, not
    Lightning); an unknown codec name is left to the codec factory's error. Raises ConfigError."""
    from hrnet_train.codecs import CODECS

    codec = CODECS.get(config.codec.get("name"))
    if config.data.pipeline == "device" and codec is not None and not codec.has_torch_encoder():
        with_encoder = sorted(name for name, cls in CODECS.items() if cls.has_torch_encoder())
        raise ConfigError(
            f"data.pipeline: device builds targets with the codec's torch encoder, and codec.name="
            f"{config.codec['name']!r} has none (codecs with one: {with_encoder}); use data.pipeline=cpu"
        )
