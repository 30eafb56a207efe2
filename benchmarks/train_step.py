"""Training-step throughput (forward + JointsMSELoss + backward + Adam step) per execution mode.

Baseline = the reference way: eager, fp32, NCHW. Every mode runs in the same process on the same
random batch (inputs N(0,1), targets U(0,1), all joints visible), after warm-up steps; samples/s is
the batch size over the median step time. Achieved GFLOP/s counts TRUE training FLOPs =
3 x the forward FLOPs of ``hrnet_train.complexity`` (2 x true MACs; backward ~ 2 x forward, loss and
optimiser not counted), shown as a fraction of the machine peak measured in this run for the mode's
compute dtype (higher of a large matmul and a large 3x3 conv).

Modes: eager_fp32 (baseline), channels_last, bf16 (autocast), compile (torch.compile, fp32 NCHW),
bf16+channels_last, bf16+channels_last+compile (compile modes run by default on GPU only: on a
2-core CPU inductor compilation takes many minutes; ask for them with --modes). Lightning's ``precision=bf16-mixed`` and
``trainer.channels_last=true`` give the bf16+channels_last step.

    .venv/bin/python benchmarks/train_step.py [--quick] [--device cuda] [--batch-size N]
        [--models hrnet_tiny,hrnet_w32] [--modes eager_fp32,bf16+channels_last]
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
from hrnet_train.models import create_model
from hrnet_train.training.losses import JointsMSELoss

INPUT_SIZE = (256, 192)
NUM_JOINTS = 17
SMALL_MODEL = "hrnet_tiny"


@dataclass(frozen=True)
class Mode:
    name: str
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False

    @property
    def dtype(self) -> str:
        return "bf16" if self.bf16 else "fp32"


MODES = {
    mode.name: mode
    for mode in (
        Mode("eager_fp32"),
        Mode("channels_last", channels_last=True),
        Mode("bf16", bf16=True),
        Mode("compile", compile=True),
        Mode("bf16+channels_last", channels_last=True, bf16=True),
        Mode("bf16+channels_last+compile", channels_last=True, bf16=True, compile=True),
    )
}
BASELINE = "eager_fp32"


def prepare_model(model_name: str, mode: Mode, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A fresh model (seed 0) in ``mode``'s layout on ``device``: ``(module with the parameters, callable network)``."""
    torch.manual_seed(0)
    model = create_model(model_name, num_joints=NUM_JOINTS).to(device).train()
    model = model.to(memory_format=torch.channels_last if mode.channels_last else torch.contiguous_format)
    return model, (torch.compile(model) if mode.compile else model)


def make_train_step(
    model_name: str, mode: Mode, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """``step(images, targets, target_weights)``: one optimisation step (Adam, lr 1e-3) of a fresh model in ``mode``."""
    model, network = prepare_model(model_name, mode, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 on CPU, 64 on GPU")
    parser.add_argument(
        "--models", default=None, help=f"comma list (default {SMALL_MODEL},hrnet_w32; quick: {SMALL_MODEL})"
    )
    parser.add_argument(
        "--modes", default=None,
        help=f"comma list of {list(MODES)} (default: all on GPU; no compile on CPU or with --quick)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed steps per mode (default 5 CPU / 20 GPU; quick 2)"
    )
    args = parser.parse_args()
    device = setup_device(args)
    gpu = device.type == "cuda"
    batch_size = args.batch_size or (64 if gpu else 8)
    model_names = args.models.split(",") if args.models else ([SMALL_MODEL] if args.quick else [SMALL_MODEL, "hrnet_w32"])
    if args.modes:
        unknown = [m for m in args.modes.split(",") if m not in MODES]
        if unknown:
            raise ValueError(f"--modes: unknown mode(s) {unknown}, expected some of {list(MODES)}")
        mode_names = args.modes.split(",")
    else:
        mode_names = [m for m in MODES if not (MODES[m].compile and (args.quick or not gpu))]
    if BASELINE not in mode_names:
        mode_names.insert(0, BASELINE)
    repeats = args.repeats or (2 if args.quick else (20 if gpu else 5))
    warmup = 3 if gpu else 1  # compile modes get extra warm-up below (first call compiles)

    peaks = machine_peaks(device, args.quick)
    print("\nMachine peak, measured now:\n" + peak_table(peaks))

    for model_name in model_names:
        with torch.device("meta"):
            forward_gflops = complexity_report(create_model(model_name, num_joints=NUM_JOINTS), INPUT_SIZE)["gflops"]
        train_gflops = 3 * forward_gflops
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
        seconds_per_step = time_interleaved(steps, repeats, device)
        baseline_rate = batch_size / seconds_per_step[BASELINE]
        rows = []
        for mode_name, seconds in seconds_per_step.items():
            mode = MODES[mode_name]
            rate = batch_size / seconds
            achieved = train_gflops * rate
            peak = peaks[mode.dtype]["peak"]
            rows.append([
                mode_name, f"{rate:.2f}", f"{rate / baseline_rate:.2f}x", f"{seconds * 1000:.0f}",
                f"{achieved:.0f}", f"{100 * achieved / peak:.0f}% of {mode.dtype} {peak:.0f}",
                f"{memory_mib[mode_name]:.0f}",
            ])
        del steps
        memory_kind = "CUDA max allocated" if gpu else "peak RSS"
        print(
            f"\n{model_name} at {INPUT_SIZE[0]}x{INPUT_SIZE[1]}, batch {batch_size}, {device.type}: "
            f"forward {forward_gflops:.2f} true GFLOPs/sample, training counted as 3x = {train_gflops:.2f}; "
            f"median of {repeats} interleaved steps; memory = peak above the built model during warm-up"
        )
        print(markdown_table(
            ["mode", "samples/s", f"vs {BASELINE}", "ms/step", "GFLOP/s", "of peak", f"{memory_kind} MiB"], rows
        ))


if __name__ == "__main__":
    main()
