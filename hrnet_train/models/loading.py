"""Loading official checkpoints with a strict, explained key check.

The official ``tools/test.py`` loads with ``strict=False`` and silently keeps random weights for
anything that does not match (spec 9.9). Here a mismatch raises ValueError listing the missing,
unexpected and mis-shaped keys. Files are read with ``torch.load(weights_only=True)``: tensors and
plain containers only, never arbitrary pickled objects.

Layouts understood (pose spec 1.8; face/seg spec A.6, B.5, D.20): a plain state dict, a
``{'state_dict': ...}`` dict, DataParallel ``module.`` prefixes, and the segmentation trainer's
``FullModel`` state dict (``model.<key>`` plus the loss's ``loss.*`` buffers such as
``loss.criterion.weight``, the class weights, which are dropped). The face trainer's
``model_best.pth`` / ``checkpoint_{epoch}.pth`` pickle the whole module; they are refused with a
message saying how to convert them. ``.safetensors`` files (the format model hubs ship) are read with
the safetensors package, which stores tensors only.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# First dotted key components that the official trainer takes from the ImageNet checkpoint (spec 1.7).
HRNET_PRETRAINED_LAYERS = (
    "conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3", "transition3", "stage4",
)
_SHOWN = 10
# The official segmentation trainer saves FullModel(model, loss).state_dict() (face/seg spec B.5).
FULL_MODEL_PREFIX = "model."
FULL_MODEL_DROPPED = "loss."


def read_state_dict(
    source: str | Path | Mapping[str, torch.Tensor], strip_prefixes: Iterable[str] = ("module.",), label: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """``(state_dict, label)`` from a file or mapping: unwraps ``{'state_dict': ...}``, strips
    ``strip_prefixes`` (``module.`` of DataParallel checkpoints) from key starts, then unwraps the
    segmentation ``FullModel`` layout (every key under ``model.`` or ``loss.``: ``model.`` stripped,
    ``loss.*`` dropped). ``label`` names a mapping's origin in error messages (a file is named by
    its path)."""
    if isinstance(source, Mapping):
        label, obj = label or "state_dict", source
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{label}: checkpoint file not found")
        check_weight_file(path)
        obj = _load_safetensors(path) if path.suffix == ".safetensors" else _load_weights_only(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{label}: expected a state_dict (mapping of names to tensors), got {type(obj).__name__}")
    prefixes = tuple(strip_prefixes)
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{label}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        state[key] = value
    return _unwrap_full_model(state), label


class CheckpointError(ValueError):
    """A file is not a usable checkpoint, or does not fit what it is loaded into; the message names the file."""


# File signatures of what people pass by mistake (a renamed image, a results file), said by name.
FOREIGN_SIGNATURES = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
                      (b"{", "a JSON/text file"), (b"[", "a JSON/text file"))
TORCH_ZIP_SIGNATURE = b"PK\x03\x04"  # torch.save's default format is a zip archive


def check_weight_file(path: Path) -> None:
    """CheckpointError for files that cannot hold weights (empty, an image or JSON file renamed, a torch zip
    archive cut short), before torch's own less clear errors; every weight-file reader calls it first."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: not a checkpoint: the file is empty (0 bytes; a save or copy that never ran?)")
    with path.open("rb") as stream:
        head = stream.read(8)
    for signature, kind in FOREIGN_SIGNATURES:
        if head.lstrip().startswith(signature):
            raise CheckpointError(f"{path}: not a checkpoint: the file is {kind} ({size} bytes)")
    if head.startswith(TORCH_ZIP_SIGNATURE) and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: truncated or damaged checkpoint: the torch zip archive ({size} bytes) has no end "
                              f"record, as when a copy or download stopped early; copy the file again")


def _load_weights_only(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: {pickled_objects_hint(error)}") from None


def pickled_objects_hint(error: pickle.UnpicklingError) -> str:
    """What a weights-only load failure means for a checkpoint and how to convert the file (the official
    face trainer pickles whole modules)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    what = f" ({found.group(1)})" if found else ""
    return (
        f"holds pickled Python objects{what}, not only tensors -- e.g. a whole nn.Module, as the "
        "official face trainer's model_best.pth and checkpoint_{epoch}.pth. Only weights are loaded "
        "(torch.load weights_only=True). Where you trust the file, convert it once: "
        "torch.save(torch.load(path, weights_only=False).state_dict(), 'weights.pth') "
        "(for checkpoint_*.pth take ['state_dict'].state_dict())"
    )


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .safetensors file ({error})") from None


def _unwrap_full_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's entries of a segmentation ``FullModel`` state dict; other dicts unchanged."""
    wrapped = all(k.startswith((FULL_MODEL_PREFIX, FULL_MODEL_DROPPED)) for k in state)
    if not state or not wrapped or not any(k.startswith(FULL_MODEL_PREFIX) for k in state):
        return state
    return {k[len(FULL_MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(FULL_MODEL_PREFIX)}


def _listing(title: str, items: list[str]) -> str:
    shown = "\n    ".join(items[:_SHOWN])
    more = f"\n    ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"  {title} ({len(items)}):\n    {shown}{more}"


def _shape_mismatches(model_state: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> list[str]:
    return [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in model_state.items()
        if k in state and state[k].shape != v.shape
    ]


def load_official_state_dict(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    strip_prefixes: Iterable[str] = ("module.",),
    label: str | None = None,
) -> None:
    """Load every weight of ``model`` from an official (or our own) checkpoint; exact key set required.

    Raises ValueError naming the source with the first 10 missing / unexpected / mis-shaped keys
    and their counts.
    """
    state, label = read_state_dict(source, strip_prefixes, label)
    model_state = model.state_dict()
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    mismatched = _shape_mismatches(model_state, state)
    if missing or unexpected or mismatched:
        sections = [
            _listing(title, items)
            for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
            if items
        ]
        raise ValueError(f"{label}: does not match {type(model).__name__}:\n" + "\n".join(sections))
    model.load_state_dict(state, strict=True)


# Prefixes other frameworks put before the backbone's own keys (DataParallel; mmpose/mmdet models).
PRETRAINED_PREFIXES = ("module.", "backbone.")


@dataclass(frozen=True)
class BackboneLoad:
    """What :func:`load_pretrained_backbone` did: loaded model keys, checkpoint keys it left out (the
    classifier, extra fuse layers, a detector's neck...) and model keys that kept their fresh init."""

    source: str
    loaded: tuple[str, ...]
    ignored: tuple[str, ...]
    fresh: tuple[str, ...]

    def summary(self) -> str:
        """One line: counts, and the top-level modules ignored / kept fresh."""
        def modules(keys: Iterable[str]) -> str:
            names = sorted({k.split(".", 1)[0] if not k.startswith("stage4.") else ".".join(k.split(".")[:4]) for k in keys})
            return ", ".join(names) if names else "none"

        return (f"pretrained backbone {self.source}: loaded {len(self.loaded)} tensors; ignored {len(self.ignored)} "
                f"({modules(self.ignored)}); fresh init kept by {len(self.fresh)} ({modules(self.fresh)})")


def load_pretrained_backbone(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    layers: Iterable[str] = HRNET_PRETRAINED_LAYERS,
    strip_prefixes: Iterable[str] = PRETRAINED_PREFIXES,
) -> BackboneLoad:
    """Initialise the backbone from an ImageNet checkpoint, as the official trainer does (spec 1.7).

    Takes the checkpoint keys whose first component is in ``layers`` (``('*',)`` = all) and that the
    model has; the classification net's extra keys (``incre_modules``, ``downsamp_modules``, its
    ``final_layer`` and ``classifier``, the multi-scale ``stage4.<last>.fuse_layers.{1,2,3}`` of a
    single-scale model) are ignored. Unlike the official ``strict=False`` load it raises ValueError
    when a model key under ``layers`` is absent or mis-shaped, listing them. Accepts ``.pth``/``.pt``
    (weights only) and ``.safetensors``, with or without a ``module.``/``backbone.`` prefix.
    """
    state, label = read_state_dict(source, strip_prefixes)
    layers = tuple(layers)

    def wanted(key: str) -> bool:
        return layers[:1] == ("*",) or key.split(".", 1)[0] in layers

    model_state = model.state_dict()
    selected = {k: v for k, v in state.items() if wanted(k) and k in model_state}
    missing = [k for k in model_state if wanted(k) and k not in state]
    mismatched = _shape_mismatches(model_state, selected)
    if missing or mismatched:
        sections = [_listing(t, items) for t, items in (("missing", missing), ("shape mismatch", mismatched)) if items]
        raise ValueError(f"{label}: cannot initialise the backbone of {type(model).__name__}:\n" + "\n".join(sections))
    model.load_state_dict(selected, strict=False)
    return BackboneLoad(
        source=label,
        loaded=tuple(sorted(selected)),
        ignored=tuple(sorted(k for k in state if k not in selected)),
        fresh=tuple(sorted(k for k in model_state if k not in selected)),
    )
