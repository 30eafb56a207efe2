"""Training-step throughput (forward + JointsMSELoss + backward + Adam step) per execution mode.

Baseline = the reference way: eager, fp32, NCHW. Every mode runs in the same process on the same
random batch (inputs N(0,1), targets U(0,1), all joints visible), after warm-up steps; samples/s is
the batch size over the median step time. Achieved GFLOP/s counts TRUE training FLOPs =
3 x the forward FLOPs of ``hrnet_train.complexity`` (2 x true MACs; backward ~ 2 x forward, loss and
optimiser not counted), shown as a fraction of the machine peak measured in this run for the mode's
compute dtype (higher of a large matmul and a large 3x3 conv).

Modes are ``+``-joined tokens (see :class:`Mode`): eager_fp32 (baseline), channels_last, bf16
(autocast), fused (fused Adam, what training uses on CUDA), compile / compile:MODE (torch.compile;
reduce-overhead = CUDA graphs, possible because the shapes are static). By default the CPU runs the
eager modes (inductor compiles for many minutes on 2 cores), a GPU also fused Adam and the compile
modes on the channels_last layout in TF32 and bf16 (GPU_MODES). ``--batch-sizes 64,128,256`` adds one
table per batch size. Lightning's ``precision=bf16-mixed``, ``trainer.channels_last=true`` and
``trainer.compile=MODE`` give the corresponding steps.

    .venv/bin/python benchmarks/train_step.py [--quick] [--device cuda] [--batch-sizes 64,128,256]
        [--models hrnet_tiny,hrnet_w32] [--modes eager_fp32,channels_last+fused+compile:reduce-overhead]
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _common import (
    add_device_args,
    autocast,
    machine_peaks,
    markdown_table,
    peak_table,
    setup_device,
    time_callable,
    time_interleaved,
    track_peak_memory,
)

from hrnet_train.complexity import complexity_report
from hrnet_train.config_schema import COMPILE_MODES
from hrnet_train.models import create_model
from hrnet_train.training.losses import JointsMSELoss
from hrnet_train.training.schedules import build_optimizer, scale_lr

INPUT_SIZE = (256, 192)
NUM_JOINTS = 17
SMALL_MODEL = "hrnet_tiny"


@dataclass(frozen=True)
class Mode:
    """An execution mode, named by ``+``-joined tokens: ``channels_last``, ``bf16`` (autocast), ``fused``
    (fused Adam kernel), ``compile`` or ``compile:MODE`` (torch.compile mode); ``eager_fp32`` = none."""

    name: str
    channels_last: bool = False
    bf16: bool = False
    compile: str | None = None  # torch.compile mode ("default", "reduce-overhead" = CUDA graphs, ...)
    fused: bool = False

    @property
    def dtype(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    @classmethod
    def parse(cls, name: str) -> Mode:
        if name == BASELINE:
            return cls(name)
        flags: dict[str, object] = {}
        for token in name.split("+"):
            kind, _, option = token.partition(":")
            if token in ("channels_last", "bf16", "fused"):
                flags[token] = True
            elif kind == "compile" and (not option or option in COMPILE_MODES):
                flags["compile"] = option or "default"
            else:
                raise ValueError(
                    f"--modes: unknown token {token!r} in {name!r}; use channels_last, bf16, fused, compile or "
                    f"compile:MODE with MODE in {list(COMPILE_MODES)}, joined by '+' (or {BASELINE})"
                )
        return cls(name, **flags)


BASELINE = "eager_fp32"
CPU_MODES = ("eager_fp32", "channels_last", "bf16", "bf16+channels_last")
# GPU: the eager modes, fused Adam, then compile per mode on the best eager layout (channels_last; TF32 or bf16).
GPU_MODES = CPU_MODES + (
    "channels_last+fused", "compile", "channels_last+fused+compile", "channels_last+fused+compile:reduce-overhead",
    "channels_last+fused+compile:max-autotune-no-cudagraphs", "bf16+channels_last+fused+compile",
    "bf16+channels_last+fused+compile:reduce-overhead",
)
MODES = {name: Mode.parse(name) for name in GPU_MODES}


def prepare_model(model_name: str, mode: Mode, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A fresh model (seed 0) in ``mode``'s layout on ``device``: ``(module with the parameters, callable network)``."""
    torch.manual_seed(0)
    model = create_model(model_name, num_joints=NUM_JOINTS).to(device).train()
    model = model.to(memory_format=torch.channels_last if mode.channels_last else torch.contiguous_format)
    return model, (torch.compile(model, mode=mode.compile) if mode.compile else model)


def make_train_step(
    model_name: str, mode: Mode, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """``step(images, targets, target_weights)``: one optimisation step (Adam, lr 1e-3) of a fresh model in ``mode``.

    No host synchronisation inside (no ``.item()``), as in training.
    """
    model, network = prepare_model(model_name, mode, device)
    optimizer = build_optimizer("adam", model.parameters(), 1e-3, fused=mode.fused)
    loss_fn = JointsMSELoss(use_target_weight=True)
    layout = torch.channels_last if mode.channels_last else torch.contiguous_format

    def step(images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, mode.bf16):
            loss = loss_fn(network(images.contiguous(memory_format=layout)), targets, weights)
        loss.backward()
        optimizer.step()

    return step


def random_batch(batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images N(0,1), targets U(0,1), every joint visible: the cost of a step does not depend on values."""
    generator = torch.Generator().manual_seed(0)
    heatmap_size = (INPUT_SIZE[0] // 4, INPUT_SIZE[1] // 4)
    images = torch.randn(batch_size, 3, *INPUT_SIZE, generator=generator)
    targets = torch.rand(batch_size, NUM_JOINTS, *heatmap_size, generator=generator)
    return images.to(device), targets.to(device), torch.ones(batch_size, NUM_JOINTS, device=device)


def parse_modes(text: str | None, gpu: bool, quick: bool) -> list[str]:
    """Mode names to run, the baseline first (default: CPU_MODES, or GPU_MODES on a GPU without --quick)."""
    if text:
        names = text.split(",")
        for name in names:
            MODES.setdefault(name, Mode.parse(name))
    else:
        names = list(GPU_MODES if gpu and not quick else CPU_MODES)
    return names if BASELINE in names else [BASELINE, *names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument(
        "--batch-sizes", default=None, help="comma list, one table each (default 8 on CPU, 64 on GPU; e.g. 64,128,256)"
    )
    parser.add_argument(
        "--models", default=None, help=f"comma list (default {SMALL_MODEL},hrnet_w32; quick: {SMALL_MODEL})"
    )
    parser.add_argument(
        "--modes", default=None,
        help=f"comma list of modes such as {list(GPU_MODES)} (default: the eager ones on CPU or with --quick, all on GPU)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed steps per mode (default 5 CPU / 20 GPU; quick 2)"
    )
    args = parser.parse_args()
    device = setup_device(args)
    gpu = device.type == "cuda"
    if gpu:  # what trainer.tf32=true (gpu.yaml) sets: TF32 for matmuls too, not only cuDNN convolutions
        torch.set_float32_matmul_precision("high")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [64 if gpu else 8]
    model_names = args.models.split(",") if args.models else ([SMALL_MODEL] if args.quick else [SMALL_MODEL, "hrnet_w32"])
    mode_names = parse_modes(args.modes, gpu, args.quick)
    repeats = args.repeats or (2 if args.quick else (20 if gpu else 5))
    warmup = 3 if gpu else 1  # compile modes get extra warm-up below (first call compiles)

    peaks = machine_peaks(device, args.quick)
    print("\nMachine peak, measured now:\n" + peak_table(peaks))

    for model_name in model_names:
        with torch.device("meta"):
            forward_gflops = complexity_report(create_model(model_name, num_joints=NUM_JOINTS), INPUT_SIZE)["gflops"]
        train_gflops = 3 * forward_gflops
        baseline_rate = None
        for batch_size in batch_sizes:
            seconds_per_step, memory_mib = measure_modes(model_name, mode_names, batch_size, device, warmup, repeats)
            baseline_rate = baseline_rate or batch_size / seconds_per_step[BASELINE]
            rows = []
            for mode_name, seconds in seconds_per_step.items():
                mode = MODES[mode_name]
                rate = batch_size / seconds
                achieved = train_gflops * rate
                peak = peaks[mode.dtype]["peak"]
                rows.append([
                    mode_name, str(batch_size), f"{rate:.2f}", f"{rate / baseline_rate:.2f}x", f"{seconds * 1000:.0f}",
                    f"{achieved:.0f}", f"{100 * achieved / peak:.0f}% of {mode.dtype} {peak:.0f}",
                    f"{memory_mib[mode_name]:.0f}",
                ])
            memory_kind = "CUDA max allocated" if gpu else "peak RSS"
            print(
                f"\n{model_name} at {INPUT_SIZE[0]}x{INPUT_SIZE[1]}, batch {batch_size}, {device.type}: "
                f"forward {forward_gflops:.2f} true GFLOPs/sample, training counted as 3x = {train_gflops:.2f}; "
                f"median of {repeats} interleaved steps; memory = peak above the built model during warm-up; "
                f"ratios vs {BASELINE} at batch {batch_sizes[0]}; the COCO recipe's LR at this batch with linear "
                f"scaling (optimizer.scale_lr): {scale_lr(1e-3, batch_size, 128):.2e}"
            )
            print(markdown_table(
                ["mode", "batch", "samples/s", f"vs {BASELINE}", "ms/step", "GFLOP/s", "of peak", f"{memory_kind} MiB"], rows
            ))


def measure_modes(
    model_name: str, mode_names: list[str], batch_size: int, device: torch.device, warmup: int, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of every mode (interleaved) and each mode's warm-up peak memory (MiB)."""
    batch = random_batch(batch_size, device)
    steps: dict[str, Callable[[], None]] = {}
    memory_mib: dict[str, float] = {}
    for mode_name in mode_names:
        mode = MODES[mode_name]
        step = make_train_step(model_name, mode, device)
        steps[mode_name] = functools.partial(step, *batch)
        with track_peak_memory(device) as memory:  # warm-up: first steps allocate Adam state / compile
            time_callable(steps[mode_name], warmup + (2 if mode.compile else 0), 1, device)
        memory_mib[mode_name] = memory.mib
    return time_interleaved(steps, repeats, device), memory_mib


if __name__ == "__main__":
    main()
