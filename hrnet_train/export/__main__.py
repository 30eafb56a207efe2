"""``python -m hrnet_train.export key=value ...``: export a trained (or official, or random) model to ONNX.

From a training checkpoint (model, keypoints, codec and input size come from its hyper_parameters;
the EMA weights when it has them)::

    python -m hrnet_train.export ckpt=runs/x/checkpoints/best.ckpt output_dir=exported [codec=dark] [ema=false]

From a registered model name, randomly initialised or with an official ``.pth`` state dict::

    python -m hrnet_train.export model=hrnet_w32 weights=pose_hrnet_w32_256x192.pth input_size=256x192 \\
        num_joints=17 codec=legacy sigma=2 output_dir=exported

The file is ``<output_dir>/<name>.onnx`` (``name=`` default: the checkpoint's or weights' file stem, else
``<model>_<HxW>_<codec>``); an output that would replace an input file is refused. ``codec=`` with
``ckpt=`` swaps the decoding (e.g. DARK decoding of a legacy-trained model; same sigma).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from hrnet_train.cli_args import CommandLine, Option, UsageError, parse_bool, run_tool
from hrnet_train.codecs import create_codec
from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.export.onnx import DEFAULT_OPSET, OUTPUT_NAMES, export_onnx
from hrnet_train.sizes import InputSize
from hrnet_train.trained_model import load_trained_model

FORMATS = ("onnx",)
CHECKPOINT_ONLY = ("ckpt", "ema")
NAME_ONLY = ("model", "weights", "input_size", "num_joints", "head", "sigma")
COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.export",
    summary="Export a pose network with in-graph keypoint decoding to ONNX (input 'images' [B, 3, H, W]; "
            "outputs heatmaps, keypoints in input-crop pixels, scores).",
    options=(
        Option("ckpt", "a train.py checkpoint (model, codec, input size from it)"),
        Option("ema", "with ckpt: the EMA weights when the checkpoint has them", lambda v: parse_bool(v, "ema"), "true"),
        Option("model", "instead of ckpt: a registered model name"),
        Option("weights", "with model: an official-format .pth state dict (default: random init)"),
        Option("input_size", "with model: HxW", InputSize.parse, "256x192"),
        Option("num_joints", "with model: keypoints of the head", int, "17"),
        Option("head", "with model: v1 | v2 | v2_bias (default: the variant's own)"),
        Option("sigma", "with model: the codec's sigma", float, "2.0"),
        Option("codec", "decoding in the graph: legacy | dark | udp (default: the checkpoint's; legacy with model)"),
        Option("format", "export format", str, "onnx"),
        Option("output_dir", "folder of the exported file", str, "."),
        Option("name", "file name without suffix (default: from the source)"),
        Option("opset", "ONNX opset (>= 17)", int, str(DEFAULT_OPSET)),
    ),
    examples=(
        "python -m hrnet_train.export ckpt=models/lspet_cpu/lspet_cpu.ckpt output_dir=exported",
        "python -m hrnet_train.export model=hrnet_w32 weights=pose_hrnet_w32_256x192.pth input_size=256x192 output_dir=exported",
    ),
)


@dataclass(frozen=True)
class ExportSource:
    """What gets exported: the network in eval mode, its codec and metadata strings for the file."""

    network: nn.Module
    codec: HeatmapCodec
    metadata: dict[str, str]


def parse_arguments(argv: Sequence[str]) -> dict[str, Any]:
    """The command line as values; a source that is not exactly one of ckpt/model, options of the
    other source, an unknown format or a too old opset raise UsageError."""
    given = {arg.partition("=")[0] for arg in argv if "=" in arg}
    options = COMMAND_LINE.parse(argv)
    if (options["ckpt"] is None) == (options["model"] is None):
        raise UsageError("give exactly one of ckpt=<checkpoint> or model=<registered name>; see --help")
    other = NAME_ONLY if options["ckpt"] is not None else CHECKPOINT_ONLY
    clashing = sorted(given & set(other))
    if clashing:
        raise UsageError(f"{clashing} cannot be combined with {'ckpt' if options['ckpt'] is not None else 'model'}=")
    if options["format"] not in FORMATS:
        raise UsageError(f"format: must be one of {list(FORMATS)}, got {options['format']!r}")
    if options["opset"] < 17:
        raise UsageError(f"opset: must be >= 17, got {options['opset']}")
    return options


def source_from_checkpoint(path: str, prefer_ema: bool = True, codec_name: str | None = None) -> ExportSource:
    """Network and codec rebuilt from a training checkpoint's hyper_parameters."""
    trained = load_trained_model(path, prefer_ema=prefer_ema)
    codec = trained.codec
    if codec_name is not None and codec_name != codec.name:
        swapped = create_codec(codec_name, codec.input_size, sigma=codec.sigma, stride=codec.stride)
        joints = trained.keypoints.num_joints
        if swapped.output_shape(joints) != codec.output_shape(joints):
            raise ValueError(
                f"codec={codec_name}: decodes outputs of shape {swapped.output_shape(joints)}, this checkpoint's "
                f"head gives {codec.output_shape(joints)} ({codec.name}); only codecs of one output layout swap"
            )
        codec = swapped
    metadata = {
        "source": str(path),
        "model": trained.model_name,
        "keypoints": ",".join(trained.keypoints.names),
        "color_rgb": str(trained.color_rgb).lower(),
    }
    return ExportSource(trained.network, codec, metadata)


def source_from_name(
    model: str, input_size: tuple[int, int], num_joints: int = 17, head: str | None = None, codec_name: str = "legacy",
    sigma: float = 2.0, weights: str | None = None,
) -> ExportSource:
    """A registered model, randomly initialised or loaded from an official / bare state dict file."""
    from hrnet_train.models import create_model, load_official_state_dict

    network = create_model(model, num_joints=num_joints, head=head)
    InputSize.parse(input_size).check_multiple(getattr(network, "input_multiple", 1), "input_size")
    if weights is not None:
        load_official_state_dict(network, weights)
    codec = create_codec(codec_name, input_size, sigma=sigma)
    metadata = {"source": weights or "random init", "model": model, "color_rgb": "true"}
    return ExportSource(network.eval(), codec, metadata)


def resolve_source(options: dict[str, Any]) -> ExportSource:
    if options["ckpt"] is not None:
        return source_from_checkpoint(options["ckpt"], prefer_ema=options["ema"], codec_name=options["codec"])
    return source_from_name(
        options["model"], options["input_size"], num_joints=options["num_joints"], head=options["head"],
        codec_name=options["codec"] or "legacy", sigma=options["sigma"], weights=options["weights"],
    )


def output_path(options: dict[str, Any], codec: HeatmapCodec) -> Path:
    """``<output_dir>/<name>.onnx``; refuses a path that is one of the input files."""
    source = options["ckpt"] or options["weights"]
    default = Path(source).stem if source else f"{options['model']}_{InputSize(*codec.input_size)}_{codec.name}"
    path = Path(options["output_dir"]).expanduser() / f"{options['name'] or default}.onnx"
    for key in ("ckpt", "weights"):
        if options[key] is not None and Path(options[key]).expanduser().resolve() == path.resolve():
            raise UsageError(f"output {path} is the {key} file itself; choose another output_dir or name")
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        source = resolve_source(options)
        path = output_path(options, source.codec)
    except (ValueError, FileNotFoundError) as error:  # an unfit checkpoint or a wrong model name: before any work
        raise UsageError(str(error)) from None
    export_onnx(source.network, source.codec, path, opset=options["opset"], metadata=source.metadata)
    codec = source.codec
    print(
        f"wrote {path}: input 'images' [B, 3, {InputSize(*codec.input_size)}], outputs {list(OUTPUT_NAMES)}; "
        f"codec {codec.name}, keypoints in input-crop pixels"
    )
    return path


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
