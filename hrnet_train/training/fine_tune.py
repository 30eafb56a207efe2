"""Starting a run from trained weights (``init_from=``), onto the same or another keypoint set.

Fine-tuning is not resuming: the weights are copied into this run's network and a new schedule starts
(fresh optimiser, epoch 0). The source is one of our checkpoints (its architecture, keypoint set and
codec are in its hyper_parameters) or a bare state dict such as an official ``.pth`` (it must fit this
run's architecture; ``init_from_keypoints`` names its keypoint set, COCO-17 by default).

The backbone must match exactly. The head's output layer is transferred **by joint name**: the output
channels of joints present in both keypoint sets are copied, the others keep the fresh
initialisation the head normally has (so a COCO-17 model fine-tuned to LSPET-14 keeps its 12 limb
joints, and the neck and head top start from scratch). A different input size is allowed: no weight
of a heatmap network depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.models import read_state_dict, resolve_spec
from hrnet_train.trained_model import build_codec, is_training_checkpoint, network_state_dict, read_checkpoint

DEFAULT_SOURCE_KEYPOINTS = "coco17"


class InitFromError(ValueError):
    """The init_from source cannot seed this run (other architecture, missing or mis-shaped weights)."""


@dataclass(frozen=True)
class InitFromReport:
    """What :func:`initialize_from` copied."""

    source: str
    source_model: str
    copied_tensors: int
    joints_copied: tuple[str, ...]
    joints_fresh: tuple[str, ...]
    notes: tuple[str, ...]

    def summary(self) -> str:
        lines = [f"init_from {self.source} ({self.source_model}): copied {self.copied_tensors} tensors; "
                 f"head by joint name: {len(self.joints_copied)} joints copied, {len(self.joints_fresh)} fresh"]
        if self.joints_fresh:
            lines.append(f"  fresh joints : {', '.join(self.joints_fresh)}")
        lines += [f"  note         : {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Source:
    state: dict[str, torch.Tensor]
    keypoints: KeypointSet
    channels_per_joint: int
    model_name: str
    model_config: dict[str, Any] | None  # None for a bare state dict (assumed to be this run's architecture)
    input_size: tuple[int, int] | None


def _read_source(path: Path, source_keypoints: str | None) -> _Source:
    content = read_checkpoint(path)
    if not is_training_checkpoint(content):
        state, _ = read_state_dict(content, label=str(path))
        keypoints = load_keypoint_set(source_keypoints or DEFAULT_SOURCE_KEYPOINTS)
        return _Source(state, keypoints, 1, "state_dict", None, None)
    if source_keypoints is not None:
        raise InitFromError(f"init_from_keypoints: {path} is a train.py checkpoint that names its own keypoint set; drop it")
    hparams = content["hyper_parameters"]
    codec = build_codec(hparams["codec"], tuple(hparams["input_size"]))
    return _Source(
        network_state_dict(content, prefer_ema=True, label=str(path)),
        load_keypoint_set(hparams["keypoints"]),
        codec.channels_per_joint,
        str(hparams.get("model_name", hparams["model"].get("name"))),
        dict(hparams["model"]),
        (int(hparams["input_size"][0]), int(hparams["input_size"][1])),
    )


def _architecture(model_config: dict[str, Any]) -> tuple[Any, ...]:
    """What decides the weights' layout: backbone spec and head choice (not the output count)."""
    arch, spec = resolve_spec(model_config.get("name"), model_config.get("spec"), model_config.get("arch"))
    return arch, spec, model_config.get("head", "v1"), model_config.get("head_name"), model_config.get("multi_scale_output")


def initialize_from(
    network: nn.Module,
    model_config: dict[str, Any],
    keypoints: KeypointSet,
    channels_per_joint: int,
    input_size: tuple[int, int],
    path: str | Path,
    source_keypoints: str | None = None,
) -> InitFromReport:
    """Copy the weights of ``path`` into ``network`` (this run's model, built from ``model_config`` for
    ``keypoints``), transferring the head by joint name. Raises InitFromError naming both sides when
    the architectures differ or a backbone tensor is missing or mis-shaped."""
    path = Path(path).expanduser()
    source = _read_source(path, source_keypoints)
    run_name = str(model_config.get("name"))
    if source.model_config is not None and _architecture(source.model_config) != _architecture(model_config):
        raise InitFromError(
            f"init_from: {path} holds a {source.model_name} network (spec and head of its checkpoint), this run trains "
            f"{run_name}: init_from copies weights into the same architecture. Train model={source.model_name}, or start "
            f"{run_name} from an ImageNet backbone with model.pretrained=<file>"
        )
    head = getattr(network, "head_name", "final_layer")
    target = network.state_dict()
    body_missing = [k for k in target if not k.startswith(head + ".") and k not in source.state]
    body_shapes = [f"{k}: source {tuple(source.state[k].shape)} vs this run {tuple(v.shape)}"
                   for k, v in target.items() if not k.startswith(head + ".") and k in source.state and source.state[k].shape != v.shape]
    if body_missing or body_shapes:
        listing = "; ".join((body_missing + body_shapes)[:8])
        raise InitFromError(
            f"init_from: {path} ({source.model_name}) does not fit this run's {run_name}: "
            f"{len(body_missing)} missing and {len(body_shapes)} mis-shaped backbone tensors ({listing})"
        )
    copied = {k: source.state[k] for k in target if not k.startswith(head + ".")}
    notes = []
    if source.input_size is not None and tuple(source.input_size) != tuple(input_size):
        notes.append(f"input size {source.input_size[0]}x{source.input_size[1]} (source) -> {input_size[0]}x{input_size[1]} "
                     f"(this run): the weights do not depend on it")
    names_copied, names_fresh = _transfer_head(target, source, keypoints, channels_per_joint, head, copied, notes)
    network.load_state_dict(copied, strict=False)
    return InitFromReport(str(path), source.model_name, len(copied), names_copied, names_fresh, tuple(notes))


def _transfer_head(
    target: dict[str, torch.Tensor], source: _Source, keypoints: KeypointSet, channels_per_joint: int, head: str,
    copied: dict[str, torch.Tensor], notes: list[str],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Fill ``copied`` with the head tensors: shared layers as they are, output rows by joint name."""
    src_index = {name: i for i, name in enumerate(source.keypoints.names)}
    shared = [name for name in keypoints.names if name in src_index]
    out_rows, src_rows = keypoints.num_joints * channels_per_joint, source.keypoints.num_joints * source.channels_per_joint
    if channels_per_joint != source.channels_per_joint:
        notes.append(f"the codecs differ in channels per joint ({source.channels_per_joint} -> {channels_per_joint}): "
                     "the output layer starts fresh")
        shared = []
    for key, tensor in target.items():
        if not key.startswith(head + ".") or key not in source.state:
            continue
        original = source.state[key]
        if tensor.shape[:1] == (out_rows,) and original.shape[:1] == (src_rows,) and tensor.shape[1:] == original.shape[1:]:
            rows = tensor.clone()
            for name in shared:
                t, s = keypoints.names.index(name), src_index[name]
                rows[t * channels_per_joint:(t + 1) * channels_per_joint] = original[s * channels_per_joint:(s + 1) * channels_per_joint]
            copied[key] = rows
        elif original.shape == tensor.shape:
            copied[key] = original
        else:
            notes.append(f"{key}: source {tuple(original.shape)} vs this run {tuple(tensor.shape)}: kept fresh")
    fresh = tuple(name for name in keypoints.names if name not in shared)
    return tuple(shared), fresh


class BackboneFreeze(pl.Callback):
    """Trains only the head for the first ``epochs`` epochs of a fine-tune: the backbone's parameters get
    no gradient and its BatchNorm layers keep their running statistics (eval mode), then everything trains."""

    def __init__(self, epochs: int, head_name: str) -> None:
        self.epochs = epochs
        self.head_name = head_name

    def _backbone(self, pl_module: pl.LightningModule) -> list[nn.Module]:
        network = pl_module.model
        return [module for name, module in network.named_children() if name != self.head_name]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        for module in self._backbone(pl_module):
            module.requires_grad_(not frozen)
            if frozen:
                module.eval()
