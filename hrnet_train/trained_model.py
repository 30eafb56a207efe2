"""The one door through which a trained network comes back: checkpoint file -> :class:`TrainedModel`.

Evaluation, inference, export, the report, the complexity tool and training (fine-tuning, resume
checks) all load through :func:`load_trained_model`, so every one of them applies the same checks
and reads the file once. Two kinds of file come in:

* a checkpoint written by ``train.py``: everything needed to rebuild the network and read its
  output is in its ``hyper_parameters`` (task, model config, keypoint set, codec, input size, colour
  order); the EMA weights are used when the run kept them;
* a bare state dict (an official ``.pth``, ``{'state_dict': ...}`` or a ``module.``-prefixed DDP
  file): the caller names the architecture and the rest (keypoint set, codec, input size).

The ``task`` field (``pose`` for checkpoints written before it existed) decides what is rebuilt
besides the network: keypoint tasks (pose, face) get a keypoint set and a codec. Nothing here imports
Lightning, so inference stays light. Files are read with ``torch.load(weights_only=True)``: no code
runs from a pickle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrnet_train.codecs import HeatmapCodec, create_codec
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.models import create_model, load_official_state_dict
from hrnet_train.sizes import InputSize

KEYPOINT_TASKS = ("pose", "face")
TASKS = KEYPOINT_TASKS
DEFAULT_TASK = "pose"  # checkpoints written before the task field existed are pose checkpoints
DEFAULT_KEYPOINTS = "coco17"
DEFAULT_CODEC = {"name": "legacy", "sigma": 2.0}  # official checkpoints were trained with the reference codec
EMA_PREFIX = "ema.model."
MODEL_PREFIX = "model."


class CheckpointError(ValueError):
    """A file is not a usable checkpoint, or does not fit what it is loaded into; the message names the file."""


@dataclass
class TrainedModel:
    """A network in eval mode plus everything needed to feed it and read its output."""

    network: nn.Module
    task: str
    input_size: InputSize
    color_rgb: bool
    keypoints: KeypointSet | None = None
    codec: HeatmapCodec | None = None
    flip_test: bool = True
    hparams: dict[str, Any] = field(default_factory=dict)  # the checkpoint's hyper_parameters ({} for a .pth)
    source: dict[str, Any] = field(default_factory=dict)  # ckpt path, kind, model name, input size

    @property
    def model_name(self) -> str:
        return str(self.source.get("model"))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The file's content as a mapping (one ``torch.load``, ``weights_only=True``, on the CPU).

    Raises FileNotFoundError for a missing file and CheckpointError naming the file for anything that
    is not a mapping of tensors/plain values (a results JSON, a pickled module, a truncated file).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file; all mean the same here
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(error).__name__}: {_first_line(error)})") from None
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{path}: expected a checkpoint or state_dict (a mapping), got {type(content).__name__}")
    return dict(content)


def is_training_checkpoint(content: Mapping[str, Any]) -> bool:
    """True for a file written by ``train.py`` (hyper_parameters with a model config, and a state dict)."""
    hparams = content.get("hyper_parameters")
    return isinstance(hparams, Mapping) and "model" in hparams and isinstance(content.get("state_dict"), Mapping)


def network_state_dict(content: Mapping[str, Any], prefer_ema: bool = True, label: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The bare network's weights from a training checkpoint: the EMA copy when it has one (and
    ``prefer_ema``), else the trained weights (``model.*`` keys without the prefix)."""
    state = content["state_dict"]
    use_ema = prefer_ema and any(k.startswith(EMA_PREFIX) for k in state)
    prefix = EMA_PREFIX if use_ema else MODEL_PREFIX
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
) -> TrainedModel:
    """Rebuild the network stored in ``path`` with an exact key check.

    For a training checkpoint ``model`` must be None (the architecture is in the file);
    ``keypoints`` / ``codec`` replace the checkpoint's own (e.g. DARK decoding of a legacy-trained
    model), ``codec_overrides`` change single options (``flip_shift``, ``post_process``; None values
    ignored). For a bare state dict ``model`` names the architecture (a registered name or a model
    config mapping) and ``keypoints`` (default coco17), ``codec`` (default legacy), ``input_size``
    (default 256x192) and ``color_rgb`` (default True) describe it.
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
        return _from_training_checkpoint(path, content, keypoints, codec, codec_overrides, prefer_ema)
    if model is None:
        raise CheckpointError(
            f"{path} is a plain state_dict (no hrnet-train hyper_parameters): name its architecture, e.g. model=hrnet_w32"
        )
    return _from_state_dict(path, content, model, keypoints, codec, codec_overrides, input_size, color_rgb)


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
    network = create_model(model_config, num_joints=keypoint_set.num_joints)
    size = InputSize.parse(input_size if input_size is not None else "256x192", "input_size")
    size.check_multiple(getattr(network, "input_multiple", 1), "input_size")
    _load_weights(network, content, path)
    heatmap_codec = build_codec(codec if codec is not None else DEFAULT_CODEC, size, codec_overrides)
    return TrainedModel(
        network=network.eval(),
        task=DEFAULT_TASK,
        input_size=size,
        color_rgb=True if color_rgb is None else bool(color_rgb),
        keypoints=keypoint_set,
        codec=heatmap_codec,
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


def resume_mismatches(path: str | os.PathLike, resolved_config: Mapping[str, Any]) -> list[str]:
    """The settings in which the training checkpoint ``path`` differs from this run's resolved config:
    model (name and spec), keypoint set, input size, codec. Empty when it can be resumed.

    Read before anything heavy is built, so resuming with another run's checkpoint is one message, not
    pages of Lightning size mismatches. Raises CheckpointError for a file that is not a train.py checkpoint.
    """
    from hrnet_train.models import resolve_spec

    content = read_checkpoint(path)
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
