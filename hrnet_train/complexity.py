"""Parameters, MACs/FLOPs and CPU latency of the model zoo, with the counting convention stated.

Three numbers, because "GFLOPs" in pose papers is ambiguous:

* ``paper_gmacs`` -- the official counter (``get_model_summary``, spec 2.3): for every conv,
  ``weight.numel() x output spatial size`` (Linear: ``weight.numel()`` per sample), summed and
  divided by ``2**30``. These are multiply-accumulates, not FLOPs, in binary giga units; bias, BN,
  ReLU, upsampling and additions are not counted. For ``ConvTranspose2d`` the formula multiplies
  by the OUTPUT size, which overcounts a stride-2 deconvolution 4x (this is why PoseResNet looks
  more expensive than it is). The official README's "GFLOPs" column is this number.
* ``true_gmacs`` -- the same layers counted correctly (transposed convs by their INPUT size), in
  1e9 units.
* ``gflops`` -- ``2 x true_gmacs`` (one multiply + one add per MAC).

Reproduced official table (paper GMACs; the README's values in brackets):
HRNet-W32 28.5M, 7.12 [7.1] at 256x192, 16.02 [16.0] at 384x288; HRNet-W48 63.6M, 14.61 [14.6],
32.88 [32.9]; pose_resnet_50/101/152 34.0M/53.0M/68.6M, 8.99/12.38/15.76 at 256x192 [README
8.9/12.4/15.7: two truncated, one rounded] and 20.23/27.85/35.47 at 384x288 [README 20.0/27.9/35.3,
which are the 256x192 values x 2.25 rather than a count at 384x288].

HRNetV2 (face/seg spec A.5, B.4; true GMACs, paper GMACs in brackets): hrnet_w18_face 9,662,528
params and 4.69 [4.37] at 256x256 with 98 landmarks (68: 4.66, 29: 4.62, 19: 4.61); the face
README's "9.3M / 4.3 GFLOPs" is not reproduced by any count (4.3 is the paper figure truncated at
best; 9.66M parameters are 9.21 Mi). Segmentation at 1024x2048, 19 classes: hrnet_w48_seg 747.5
[696.2, the seg README's "GFLOPs" 696.2], hrnet_w18_small_v1_seg 33.4 [31.1, README 31.1],
hrnet_w18_small_v2_seg 76.9 [71.6, README 71.6], hrnet_w18_seg 147.4 [137.3] -- so the seg
README uses the pose README's convention, which is ``paper_gmacs`` here.

CLI (``key=value`` arguments)::

    python -m hrnet_train.complexity model=hrnet_w32 input_size=256x192
    python -m hrnet_train.complexity --all                 # every variant at 256x192 and 384x288
    python -m hrnet_train.complexity model=hrnet_tiny latency=true batch_sizes=1,8
    python -m hrnet_train.complexity model=hrnet_w32 head=v2 spec.stage3.num_modules=2
    python -m hrnet_train.complexity model=hrnet_w18_face input_size=256x256 num_joints=68
    python -m hrnet_train.complexity model=hrnet_w48_seg input_size=1024x2048 num_classes=19
    python -m hrnet_train.complexity ckpt=models/lspet_cpu/lspet_cpu.ckpt   # a checkpoint's own network

``head``, ``num_joints`` and ``num_classes`` default to the variant's own (create_model's rules).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from hrnet_train.cli_args import CommandLine, Option, UsageError, int_list, parse_bool, run_tool
from hrnet_train.models import create_model, list_models
from hrnet_train.sizes import InputSize

DEFAULT_INPUT_SIZES = ((256, 192), (384, 288))


def count_macs(model: nn.Module, input_size: tuple[int, int]) -> tuple[int, int]:
    """``(paper_macs, true_macs)`` per image for one forward pass of a ``[1, 3, H, W]`` input.

    Runs on the model's device; build the model under ``torch.device("meta")`` to count without
    computing anything.
    """
    paper = 0
    true = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        nonlocal paper, true
        weight_numel = module.weight.numel()
        if isinstance(module, nn.Linear):
            per_sample = output.numel() // output.shape[0] * module.in_features
            paper += weight_numel
            true += per_sample
            return
        out_spatial = output.shape[2:].numel()
        paper += weight_numel * out_spatial
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            # each input pixel is multiplied by the whole (in, out/groups, k, k) kernel once
            true += weight_numel * inputs[0].shape[2:].numel()
        else:
            true += weight_numel * out_spatial

    counted = (nn.modules.conv._ConvNd, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return paper, true


def complexity_report(model: nn.Module, input_size: tuple[int, int] = (256, 192)) -> dict[str, Any]:
    """Params and MACs of ``model`` at ``input_size`` (height, width); see the module docstring."""
    paper, true = count_macs(model, input_size)
    return {
        "input_size": str(InputSize.parse(input_size)),
        "params": sum(p.numel() for p in model.parameters()),
        "paper_gmacs": paper / 2**30,
        "true_gmacs": true / 1e9,
        "gflops": 2 * true / 1e9,
    }


def measure_latency(
    model: nn.Module,
    input_size: tuple[int, int] = (256, 192),
    batch_sizes: Sequence[int] = (1, 32),
    warmup: int = 2,
    repeats: int = 5,
) -> dict[int, float]:
    """Median wall time in milliseconds of one eval-mode forward pass per batch size, on the
    model's device (CPU unless moved). Uses the threads torch is configured with."""
    device = next(model.parameters()).device
    if device.type == "meta":
        raise ValueError("measure_latency: the model is on the meta device; build it on a real device")
    was_training = model.training
    model.eval()
    results: dict[int, float] = {}
    try:
        with torch.inference_mode():
            for batch in batch_sizes:
                x = torch.randn(batch, 3, *input_size, device=device)
                for _ in range(warmup):
                    model(x)
                times = []
                for _ in range(repeats):
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    start = time.perf_counter()
                    model(x)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    times.append((time.perf_counter() - start) * 1000)
                results[batch] = statistics.median(times)
    finally:
        model.train(was_training)
    return results


def complexity_table(
    names: Iterable[str],
    input_sizes: Iterable[tuple[int, int]] = DEFAULT_INPUT_SIZES,
    head: str | None = None,
    spec_overrides: dict[str, Any] | None = None,
    num_joints: int | None = None,
    num_classes: int | None = None,
    latency_batch_sizes: Sequence[int] = (),
    warmup: int = 2,
    repeats: int = 5,
) -> str:
    """Markdown table, one row per (model, input size). Counting happens on the meta device;
    a real model is built only when latency columns are requested. ``None`` arguments: the variant's."""
    kwargs: dict[str, Any] = {"head": head, "num_joints": num_joints, "num_classes": num_classes}
    if spec_overrides:
        kwargs["spec"] = spec_overrides
    models = []
    for name in names:
        with torch.device("meta"):
            models.append((name, create_model(name, **kwargs)))
    real = {name: create_model(name, **kwargs) for name, _ in models} if latency_batch_sizes else {}
    return _table(models, list(input_sizes), latency_batch_sizes, warmup, repeats, real)


def _table(
    models: Sequence[tuple[str, nn.Module]], sizes: Sequence[tuple[int, int]], latency_batch_sizes: Sequence[int],
    warmup: int, repeats: int, real: dict[str, nn.Module] | None = None,
) -> str:
    """Rows of ``(name, model)`` at each size; latency on ``real[name]`` (default: the model itself)."""
    header = ["model", "input", "params (M)", "paper GMACs (conv, /2^30)", "true GMACs (1e9)", "GFLOPs (2xMAC)"]
    header += [f"CPU ms b{b}" for b in latency_batch_sizes]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, model in models:
        for size in sizes:
            report = complexity_report(model, size)
            row = [name, report["input_size"], f"{report['params'] / 1e6:.2f}", f"{report['paper_gmacs']:.2f}",
                   f"{report['true_gmacs']:.2f}", f"{report['gflops']:.2f}"]
            if latency_batch_sizes:
                timed = (real or {}).get(name, model)
                latency = measure_latency(timed, size, latency_batch_sizes, warmup, repeats)
                row += [f"{latency[b]:.1f}" for b in latency_batch_sizes]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _parse_scalar(value: str) -> Any:
    """CLI value for a spec override: int, list of ints ``[2,2]`` / ``2,2``, or a string."""
    text = value.strip().strip("[]")
    parts = [p.strip() for p in text.split(",")]
    if all(p.lstrip("-").isdigit() for p in parts if p) and text:
        numbers = [int(p) for p in parts]
        return numbers if ("," in value or value.strip().startswith("[")) else numbers[0]
    return value


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.complexity",
    summary="Params, MACs/GFLOPs (paper and true conventions) and optionally CPU latency of registered models "
            "or of a checkpoint's network, as a markdown table.",
    options=(
        Option("model", "registered model name(s), comma-separated, or 'all'", lambda v: v.split(",")),
        Option("ckpt", "a train.py checkpoint: its network at its input size"),
        Option("input_size", "HxW size(s), comma-separated", lambda v: [InputSize.parse(s) for s in v.split(",")],
               "256x192,384x288"),
        Option("head", "head of the registered models (default: each variant's own)"),
        Option("num_joints", "keypoint heads: output joints (default: the variant's)", int),
        Option("num_classes", "segmentation heads: classes (default: the variant's)", int),
        Option("latency", "also measure CPU latency", lambda v: parse_bool(v, "latency"), "false"),
        Option("batch_sizes", "latency batch sizes", int_list, "1,32"),
        Option("warmup", "latency warm-up passes", int, "2"),
        Option("repeats", "latency timed passes", int, "5"),
    ),
    examples=(
        "python -m hrnet_train.complexity model=hrnet_w32 input_size=256x192",
        "python -m hrnet_train.complexity --all",
        "python -m hrnet_train.complexity ckpt=models/lspet_cpu/lspet_cpu.ckpt latency=true batch_sizes=1",
        "python -m hrnet_train.complexity model=hrnet_w32 head=v2 spec.stage3.num_modules=2",
        "python -m hrnet_train.complexity model=hrnet_w48_seg input_size=1024x2048 num_classes=19",
    ),
    prefixes=("spec.",),
    flags={"--all": ("model", "all")},
)


def checkpoint_table(ckpt: str, latency_batch_sizes: Sequence[int] = (), warmup: int = 2, repeats: int = 5) -> str:
    """The table row of a checkpoint's own network at the checkpoint's input size."""
    from hrnet_train.trained_model import load_trained_model

    trained = load_trained_model(ckpt)
    return _table([(trained.model_name, trained.network)], [trained.input_size], latency_batch_sizes, warmup, repeats)


def table_options(argv: Sequence[str]) -> dict[str, Any]:
    """Command line -> keyword arguments of :func:`complexity_table` (or ``ckpt`` + latency options)."""
    args = COMMAND_LINE.parse(argv)
    if (args["model"] is None) == (args["ckpt"] is None):
        raise UsageError("give model=<name>[,<name>...] (or --all) or ckpt=<checkpoint>, not both; see --help")
    latency = args["batch_sizes"] if args["latency"] else []
    timing = {"latency_batch_sizes": latency, "warmup": args["warmup"], "repeats": args["repeats"]}
    if args["ckpt"] is not None:
        return {"ckpt": args["ckpt"], **timing}
    spec: dict[str, Any] = {}
    for key, value in args.items():
        if key.startswith("spec."):
            *parents, leaf = key.split(".")[1:]
            node = spec
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = _parse_scalar(value)
    names = list_models() if args["model"] == ["all"] else args["model"]
    return {"names": names, "input_sizes": args["input_size"] or list(DEFAULT_INPUT_SIZES), "head": args["head"],
            "num_joints": args["num_joints"], "num_classes": args["num_classes"], "spec_overrides": spec or None, **timing}


def main(argv: Sequence[str] | None = None) -> None:
    options = table_options(sys.argv[1:] if argv is None else argv)
    try:
        table = checkpoint_table(**options) if "ckpt" in options else complexity_table(**options)
    except (ValueError, FileNotFoundError) as error:  # an unknown model, a bad spec field or checkpoint
        raise UsageError(str(error)) from None
    print(table)


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
