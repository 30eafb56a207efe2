"""``python -m hrnet_train.export key=value ...``: export a trained (or official, or random) model to ONNX.

From a training checkpoint (model, keypoints, codec and input size come from its hyper_parameters;
the EMA weights when it has them)::

    python -m hrnet_train.export ckpt=runs/x/checkpoints/best.ckpt out=pose.onnx [codec=dark] [ema=false]

From a registered model name, randomly initialised or with an official ``.pth`` state dict::

    python -m hrnet_train.export model=hrnet_w32 weights=pose_hrnet_w32_256x192.pth input_size=256x192 \\
        num_joints=17 codec=legacy sigma=2 out=pose.onnx

``codec=`` with ``ckpt=`` swaps the decoding (e.g. DARK decoding of a legacy-trained model; same sigma).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hrnet_train.codecs import create_codec
from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.export.onnx import DEFAULT_OPSET, OUTPUT_NAMES, export_onnx
from hrnet_train.sizes import InputSize
from hrnet_train.trained_model import load_trained_model

FORMATS = ("onnx",)
CHECKPOINT_ONLY = ("ckpt", "ema")
NAME_ONLY = ("model", "weights", "input_size", "num_joints", "head", "sigma")
COMMON = ("codec", "format", "out", "opset")


@dataclass(frozen=True)
class ExportSource:
    """What gets exported: the network in eval mode, its codec and metadata strings for the file."""

    network: nn.Module
    codec: HeatmapCodec
    metadata: dict[str, str]


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """``key=value`` tokens -> dict; unknown keys, repeats and a missing ``out`` raise ValueError."""
    known = set(CHECKPOINT_ONLY + NAME_ONLY + COMMON)
    options: dict[str, str] = {}
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep or key not in known:
            raise ValueError(f"export: expected key=value with key in {sorted(known)}, got {token!r}")
        if key in options:
            raise ValueError(f"export: {key} given twice")
        options[key] = value
    if "out" not in options:
        raise ValueError("export: out=<file.onnx> is required")
    if ("ckpt" in options) == ("model" in options):
        raise ValueError("export: give exactly one of ckpt=<checkpoint> or model=<registered name>")
    source_keys = NAME_ONLY if "ckpt" in options else CHECKPOINT_ONLY
    clashing = sorted(set(options) & set(source_keys))
    if clashing:
        raise ValueError(f"export: {clashing} cannot be combined with {'ckpt' if 'ckpt' in options else 'model'}=")
    if options.get("format", "onnx") not in FORMATS:
        raise ValueError(f"export: format must be one of {list(FORMATS)}, got {options['format']!r}")
    return options


def _parse_bool(value: str, field: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ValueError(f"export: {field} must be true or false, got {value!r}")
    return lowered in ("true", "1")


def source_from_checkpoint(path: str, prefer_ema: bool = True, codec_name: str | None = None) -> ExportSource:
    """Network and codec rebuilt from a training checkpoint's hyper_parameters."""
    trained = load_trained_model(path, prefer_ema=prefer_ema)
    codec = trained.codec
    if codec_name is not None and codec_name != codec.name:
        codec = create_codec(codec_name, codec.input_size, sigma=codec.sigma, stride=codec.stride)
    metadata = {
        "source": str(path),
        "model": trained.model_name,
        "keypoints": ",".join(trained.keypoints.names),
        "color_rgb": str(trained.color_rgb).lower(),
    }
    return ExportSource(trained.network, codec, metadata)


def source_from_name(
    model: str, input_size: tuple[int, int], num_joints: int = 17, head: str = "v1", codec_name: str = "legacy",
    sigma: float = 2.0, weights: str | None = None,
) -> ExportSource:
    """A registered model, randomly initialised or loaded from an official / bare state dict file."""
    from hrnet_train.models import create_model, load_official_state_dict

    network = create_model(model, num_joints=num_joints, head=head)
    if weights is not None:
        load_official_state_dict(network, weights)
    codec = create_codec(codec_name, input_size, sigma=sigma)
    metadata = {"source": weights or "random init", "model": model, "color_rgb": "true"}
    return ExportSource(network.eval(), codec, metadata)


def resolve_source(options: dict[str, str]) -> ExportSource:
    if "ckpt" in options:
        return source_from_checkpoint(
            options["ckpt"], prefer_ema=_parse_bool(options.get("ema", "true"), "ema"), codec_name=options.get("codec")
        )
    try:
        num_joints = int(options.get("num_joints", "17"))
        sigma = float(options.get("sigma", "2.0"))
    except ValueError as error:
        raise ValueError(f"export: num_joints must be an integer and sigma a number ({error})") from None
    return source_from_name(
        options["model"],
        InputSize.parse(options.get("input_size", "256x192"), "input_size"),
        num_joints=num_joints,
        head=options.get("head", "v1"),
        codec_name=options.get("codec", "legacy"),
        sigma=sigma,
        weights=options.get("weights"),
    )


def main(argv: Sequence[str] | None = None) -> Path:
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    source = resolve_source(options)
    path = export_onnx(
        source.network, source.codec, options["out"], opset=int(options.get("opset", DEFAULT_OPSET)), metadata=source.metadata
    )
    codec = source.codec
    print(
        f"wrote {path}: input 'images' [B, 3, {InputSize(*codec.input_size)}], outputs {list(OUTPUT_NAMES)}; "
        f"codec {codec.name}, keypoints in input-crop pixels"
    )
    return path


if __name__ == "__main__":
    main()
