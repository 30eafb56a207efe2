"""The one door through which a trained network comes back: checkpoint file -> :class:`TrainedModel`.

Evaluation, inference, export, the report, the complexity tool and training (fine-tuning, resume
checks) all load through :func:`load_trained_model`, so every one of them applies the same checks
and reads the file once. Two kinds of file come in:

* a checkpoint written by ``train.py``: everything needed to rebuild the network and read its
  output is in its ``hyper_parameters`` (task, model config, keypoint set, codec, input size, colour
  order); the EMA weights are used when the run kept them;
* a bare state dict (an official ``.pth``, ``{'state_dict': ...}`` or a ``module.``-prefixed DDP
  file): the caller names the architecture and the rest (keypoint set, codec, input size). Its task
  follows from the keypoint set: a face set (scored with NME) makes it a face model, with the official
  face codec and 256x256 input as defaults (the released ``HR18-*.pth``).

The ``task`` field (``pose`` for checkpoints written before it existed) decides what is rebuilt
besides the network: keypoint tasks (pose, face) get a keypoint set and a codec, segmentation its
class set. A bare state dict is a segmentation network when its architecture is one (a variant or
config with ``num_classes``, e.g. ``hrnet_w48_seg``); its class set is the caller's (default
Cityscapes, the official checkpoints' labels). Nothing here imports
Lightning, so inference stays light. Files are read with ``torch.load(weights_only=True)``: no code
runs from a pickle.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrnet_train.codecs import HeatmapCodec, create_codec
from hrnet_train.config_schema import validate_seg_data_config
from hrnet_train.data.seg_cityscapes import CITYSCAPES_CLASSES
from hrnet_train.data.seg_sources import seg_classes_of
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.models import create_model, get_model_entry, load_official_state_dict
from hrnet_train.models.loading import CheckpointError, check_weight_file, pickled_objects_hint
from hrnet_train.seg_classes import SegClasses, seg_classes_from_mapping
from hrnet_train.sizes import InputSize

KEYPOINT_TASKS = ("pose", "face")
SEGMENTATION_TASK = "segmentation"
TASKS = (*KEYPOINT_TASKS, SEGMENTATION_TASK)
DEFAULT_SEG_CLASSES = CITYSCAPES_CLASSES  # the labels of the official segmentation checkpoints (spec B.10)
DEFAULT_SEG_INPUT_SIZE = "1024x2048"  # the official Cityscapes test size (informational for a bare .pth)
DEFAULT_TASK = "pose"  # checkpoints written before the task field existed are pose checkpoints
DEFAULT_KEYPOINTS = "coco17"
DEFAULT_CODEC = {"name": "legacy", "sigma": 2.0}  # official checkpoints were trained with the reference codec
DEFAULT_INPUT_SIZE = "256x192"
# Official face checkpoints (HR18-*.pth): the official face codec at 256x256 (spec A.2, A.10-A.12).
FACE_DEFAULT_CODEC = {"name": "face", "sigma": 1.5}
FACE_INPUT_SIZE = "256x256"
EMA_PREFIX = "ema.model."
MODEL_PREFIX = "model."


@dataclass
class TrainedModel:
    """A network in eval mode plus everything needed to feed it and read its output."""

    network: nn.Module
    task: str
    input_size: InputSize
    color_rgb: bool
    keypoints: KeypointSet | None = None
    codec: HeatmapCodec | None = None
    classes: SegClasses | None = None  # segmentation: the label space of the logits' channels
    flip_test: bool = True
    hparams: dict[str, Any] = field(default_factory=dict)  # the checkpoint's hyper_parameters ({} for a .pth)
    source: dict[str, Any] = field(default_factory=dict)  # ckpt path, kind, model name, input size

    @property
    def model_name(self) -> str:
        return str(self.source.get("model"))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The file's content as a mapping (one ``torch.load``, ``weights_only=True``, on the CPU).

    Raises FileNotFoundError for a missing file and CheckpointError naming the file and what it is not
    for everything else that cannot be one: an empty file, an image or JSON file renamed ``.ckpt``, a
    zip archive cut short (a copy or download that stopped), a file torch cannot read (a pickled module,
    damage), a torch file holding something other than a mapping (a bare tensor) or a mapping without
    weights (no ``state_dict`` and no tensors).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    check_weight_file(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file; all mean the same here
        # A pickled module (the official face trainer's model_best.pth): say how to convert it.
        hint = f" -- it {pickled_objects_hint(error)}" if isinstance(error, pickle.UnpicklingError) else ""
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(error).__name__}: {_first_line(error)}){hint}") from None
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint: the torch file holds a {type(content).__name__}, not a mapping "
                              f"with a 'state_dict' or of weight names to tensors")
    state = content.get("state_dict", content)
    if not isinstance(state, Mapping) or not any(isinstance(value, torch.Tensor) for value in state.values()):
        keys = ", ".join(repr(key) for key in list(content)[:6]) or "none"
        raise CheckpointError(f"{path}: not a checkpoint: a mapping without weights (keys {keys}; no 'state_dict' "
                              f"mapping and no tensors)")
    return dict(content)


def is_training_checkpoint(content: Mapping[str, Any]) -> bool:
    """True for a file written by ``train.py`` (hyper_parameters with a model config, and a state dict)."""
    hparams = content.get("hyper_parameters")
    return isinstance(hparams, Mapping) and "model" in hparams and isinstance(content.get("state_dict"), Mapping)


def uses_ema_weights(content: Mapping[str, Any], prefer_ema: bool = True) -> bool:
    """Whether ``network_state_dict`` picks the EMA copy: asked for and present in the state dict."""
    return prefer_ema and any(key.startswith(EMA_PREFIX) for key in content["state_dict"])


def network_state_dict(content: Mapping[str, Any], prefer_ema: bool = True, label: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The bare network's weights from a training checkpoint: the EMA copy when it has one (and
    ``prefer_ema``), else the trained weights (``model.*`` keys without the prefix)."""
    state = content["state_dict"]
    prefix = EMA_PREFIX if uses_ema_weights(content, prefer_ema) else MODEL_PREFIX
    weights = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"{label}: state_dict has no '{prefix}*' keys (found e.g. {list(state)[:3]})")
    return weights


def checkpoint_task(hparams: Mapping[str, Any]) -> str:
    task = str(hparams.get("task", DEFAULT_TASK))
    if task not in TASKS:
        raise CheckpointError(f"checkpoint task {task!r} is not one this version knows ({', '.join(TASKS)})")
    return task


def load_trained_model(
    path: str | os.PathLike,
    *,
    model: Mapping[str, Any] | str | None = None,
    keypoints: str | Mapping[str, Any] | KeypointSet | None = None,
    codec: Mapping[str, Any] | None = None,
    codec_overrides: Mapping[str, Any] | None = None,
    input_size: str | tuple[int, int] | InputSize | None = None,
    color_rgb: bool | None = None,
    prefer_ema: bool = True,
    classes: SegClasses | None = None,
) -> TrainedModel:
    """Rebuild the network stored in ``path`` with an exact key check.

    For a training checkpoint ``model`` must be None (the architecture is in the file);
    ``keypoints`` / ``codec`` replace the checkpoint's own (e.g. DARK decoding of a legacy-trained
    model), ``codec_overrides`` change single options (``flip_shift``, ``post_process``; None values
    ignored). For a bare state dict ``model`` names the architecture (a registered name or a model
    config mapping) and ``keypoints`` (default coco17), ``codec`` (default legacy), ``input_size``
    (default 256x192) and ``color_rgb`` (default True) describe it; a segmentation architecture takes
    ``classes`` (default Cityscapes) instead of keypoints and codec.
    Raises CheckpointError (a ValueError) naming the file and listing missing / unexpected /
    mis-shaped keys when the weights do not fit.
    """
    path = Path(path).expanduser()
    content = read_checkpoint(path)
    if is_training_checkpoint(content):
        if model is not None:
            raise CheckpointError(
                f"{path} is a train.py checkpoint (it names its own model {content['hyper_parameters'].get('model_name')!r}); "
                f"drop model=... or use init_from= to start a different architecture from it"
            )
        if checkpoint_task(content["hyper_parameters"]) == SEGMENTATION_TASK:
            _refuse_keypoint_options(path, keypoints, codec, codec_overrides)
            return _segmentation_from_checkpoint(path, content, prefer_ema)
        return _from_training_checkpoint(path, content, keypoints, codec, codec_overrides, prefer_ema)
    if model is None:
        raise CheckpointError(
            f"{path} is a plain state_dict (no hrnet-train hyper_parameters): name its architecture, e.g. model=hrnet_w32"
        )
    model_config = {"name": model} if isinstance(model, str) else dict(model)
    if is_segmentation_model(model_config):
        _refuse_keypoint_options(path, keypoints, codec, codec_overrides)
        return _segmentation_from_state_dict(path, content, model_config, classes, input_size)
    return _from_state_dict(path, content, model, keypoints, codec, codec_overrides, input_size, color_rgb)


def is_segmentation_model(model_config: Mapping[str, Any]) -> bool:
    """True when the architecture outputs class logits: ``num_classes`` in the config or its variant's defaults."""
    if model_config.get("num_classes") is not None:
        return True
    name = model_config.get("name")
    return name is not None and get_model_entry(str(name)).defaults.get("num_classes") is not None


def _refuse_keypoint_options(path: Path, keypoints: Any, codec: Any, codec_overrides: Mapping[str, Any] | None) -> None:
    given = [name for name, value in (("keypoints", keypoints), ("codec", codec)) if value is not None]
    given += [name for name, value in dict(codec_overrides or {}).items() if value is not None]
    if given:
        raise CheckpointError(f"{path}: a segmentation network has no keypoint set or codec; drop {', '.join(given)}")


def _segmentation_from_checkpoint(path: Path, content: Mapping[str, Any], prefer_ema: bool) -> TrainedModel:
    hparams = dict(content["hyper_parameters"])
    classes = seg_classes_from_mapping(hparams["classes"])
    size = InputSize.parse(hparams["input_size"], f"{path}: hyper_parameters.input_size")
    network = create_model(hparams["model"], num_classes=classes.num_classes)
    _load_weights(network, network_state_dict(content, prefer_ema, str(path)), path)
    model_name = str(hparams.get("model_name", hparams["model"].get("name")))
    return TrainedModel(
        network=network.eval(), task=SEGMENTATION_TASK, input_size=size, color_rgb=True, classes=classes,
        flip_test=bool(dict(hparams.get("eval") or {}).get("flip", False)), hparams=hparams,
        source={"ckpt": str(path), "kind": "checkpoint", "model": model_name, "input_size": str(size)},
    )


def _segmentation_from_state_dict(
    path: Path, content: Mapping[str, Any], model_config: Mapping[str, Any], classes: SegClasses | None,
    input_size: str | tuple[int, int] | InputSize | None,
) -> TrainedModel:
    """An official segmentation ``.pth`` (plain, ``module.``- or FullModel ``model.``-prefixed; ``loss.*`` dropped)."""
    label_space = classes if classes is not None else DEFAULT_SEG_CLASSES
    network = create_model(model_config, num_classes=label_space.num_classes)
    size = InputSize.parse(input_size if input_size is not None else DEFAULT_SEG_INPUT_SIZE, "input_size")
    _load_weights(network, content, path)
    return TrainedModel(
        network=network.eval(), task=SEGMENTATION_TASK, input_size=size, color_rgb=True, classes=label_space,
        flip_test=False,
        source={"ckpt": str(path), "kind": "state_dict", "model": str(model_config.get("name")), "input_size": str(size)},
    )


def _from_training_checkpoint(
    path: Path, content: Mapping[str, Any], keypoints: Any, codec: Mapping[str, Any] | None,
    codec_overrides: Mapping[str, Any] | None, prefer_ema: bool,
) -> TrainedModel:
    hparams = dict(content["hyper_parameters"])
    task = checkpoint_task(hparams)
    size = InputSize.parse(hparams["input_size"], f"{path}: hyper_parameters.input_size")
    keypoint_set = load_keypoint_set(keypoints if keypoints is not None else hparams["keypoints"])
    network = create_model({**hparams["model"], "pretrained": None}, num_joints=keypoint_set.num_joints)
    _load_weights(network, network_state_dict(content, prefer_ema, str(path)), path)
    heatmap_codec = build_codec(codec if codec is not None else hparams["codec"], size, codec_overrides)
    model_name = str(hparams.get("model_name", hparams["model"].get("name")))
    return TrainedModel(
        network=network.eval(),
        task=task,
        input_size=size,
        color_rgb=bool(hparams.get("color_rgb", True)),
        keypoints=keypoint_set,
        codec=heatmap_codec,
        flip_test=bool(hparams.get("flip_test", True)),
        hparams=hparams,
        source={"ckpt": str(path), "kind": "checkpoint", "model": model_name, "input_size": str(size)},
    )


def _from_state_dict(
    path: Path, content: Mapping[str, Any], model: Mapping[str, Any] | str, keypoints: Any,
    codec: Mapping[str, Any] | None, codec_overrides: Mapping[str, Any] | None,
    input_size: str | tuple[int, int] | InputSize | None, color_rgb: bool | None,
) -> TrainedModel:
    model_config = {"name": model} if isinstance(model, str) else dict(model)
    keypoint_set = load_keypoint_set(keypoints if keypoints is not None else DEFAULT_KEYPOINTS)
    task = "face" if keypoint_set.nme_normalizer is not None else DEFAULT_TASK
    default_codec, default_size = (FACE_DEFAULT_CODEC, FACE_INPUT_SIZE) if task == "face" else (DEFAULT_CODEC, DEFAULT_INPUT_SIZE)
    network = create_model(model_config, num_joints=keypoint_set.num_joints)
    size = InputSize.parse(input_size if input_size is not None else default_size, "input_size")
    size.check_multiple(getattr(network, "input_multiple", 1), "input_size")
    _load_weights(network, content, path)
    heatmap_codec = build_codec(codec if codec is not None else default_codec, size, codec_overrides)
    return TrainedModel(
        network=network.eval(),
        task=task,
        input_size=size,
        color_rgb=True if color_rgb is None else bool(color_rgb),
        keypoints=keypoint_set,
        codec=heatmap_codec,
        flip_test=task != "face",  # the pose reference tests with flips, the official face code does not
        source={"ckpt": str(path), "kind": "state_dict", "model": str(model_config.get("name")), "input_size": str(size)},
    )


def _load_weights(network: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        load_official_state_dict(network, state, label=str(path))
    except ValueError as error:
        raise CheckpointError(str(error)) from None


def build_codec(config: Mapping[str, Any], input_size: InputSize | tuple[int, int], overrides: Mapping[str, Any] | None = None) -> HeatmapCodec:
    """A codec from its config (``name`` + options; keys starting with ``_`` ignored) with ``overrides``
    applied (None values ignored)."""
    options = {k: v for k, v in dict(config).items() if not str(k).startswith("_")}
    options.update({k: v for k, v in dict(overrides or {}).items() if v is not None})
    if "name" not in options:
        raise ValueError(f"codec: config has no 'name' (expected one of the codecs in conf/codec/), got {sorted(options)}")
    return create_codec(options.pop("name"), tuple(input_size), **options)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "no details"


def resume_mismatches(
    path: str | os.PathLike, resolved_config: Mapping[str, Any], content: Mapping[str, Any] | None = None,
) -> list[str]:
    """The settings in which the training checkpoint ``path`` differs from this run's resolved config:
    model (name and spec), keypoint set, input size, codec. Empty when it can be resumed.

    Read before anything heavy is built, so resuming with another run's checkpoint is one message, not
    pages of Lightning size mismatches. ``content``: the file as :func:`read_checkpoint` returned it,
    when the caller has read it already. Raises CheckpointError for a file that is not a train.py checkpoint.
    """
    from hrnet_train.models import resolve_spec

    content = read_checkpoint(path) if content is None else content
    if not is_training_checkpoint(content):
        raise CheckpointError(f"{path}: not a train.py checkpoint (no hyper_parameters); to start from its weights use init_from=")
    hparams = content["hyper_parameters"]
    saved_model, run_model = dict(hparams["model"]), dict(resolved_config["model"])

    def architecture(model: Mapping[str, Any]) -> tuple[Any, ...]:
        return (*resolve_spec(model.get("name"), model.get("spec"), model.get("arch")), model.get("head", "v1"))

    differences = []
    if saved_model.get("name") != run_model.get("name") or architecture(saved_model) != architecture(run_model):
        differences.append(f"model {saved_model.get('name')} (checkpoint) vs {run_model.get('name')} (this run)"
                           + (" with a different spec or head" if saved_model.get("name") == run_model.get("name") else ""))
    saved_task, run_task = checkpoint_task(hparams), str(resolved_config.get("task", DEFAULT_TASK))
    if saved_task != run_task:
        return [*differences, f"task {saved_task} (checkpoint) vs {run_task} (this run)"]
    if run_task == SEGMENTATION_TASK:
        return [*differences, *_segmentation_resume_mismatches(hparams, resolved_config)]
    saved_names, run_names = list(hparams["keypoints"].get("names", [])), list(resolved_config["keypoints"].get("names", []))
    if saved_names != run_names:
        differences.append(f"keypoints {hparams['keypoints'].get('name')} ({len(saved_names)} joints) vs "
                           f"{resolved_config['keypoints'].get('name')} ({len(run_names)} joints)")
    run_size = InputSize.parse(resolved_config["data"]["input_size"])
    if InputSize.parse(hparams["input_size"]) != run_size:
        differences.append(f"data.input_size {InputSize.parse(hparams['input_size'])} vs {run_size}")
    saved_codec = {k: v for k, v in dict(hparams["codec"]).items() if not str(k).startswith("_")}
    run_codec = {k: v for k, v in dict(resolved_config["codec"]).items() if not str(k).startswith("_")}
    if saved_codec != run_codec:
        differences.append(f"codec {saved_codec} vs {run_codec}")
    return differences


def _segmentation_resume_mismatches(hparams: Mapping[str, Any], resolved_config: Mapping[str, Any]) -> list[str]:
    """Class list and training crop of a segmentation checkpoint vs this run's data section."""
    data = validate_seg_data_config(resolved_config["data"])
    saved, run = seg_classes_from_mapping(hparams["classes"]), seg_classes_of(data)
    differences = []
    if saved.names != run.names:
        differences.append(f"classes {saved.name} ({saved.num_classes}) vs {run.name} ({run.num_classes})")
    if InputSize.parse(hparams["input_size"]) != data.input_hw:
        differences.append(f"data.crop_size {InputSize.parse(hparams['input_size'])} vs {data.input_hw}")
    return differences
