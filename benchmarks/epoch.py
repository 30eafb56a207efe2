"""End-to-end training epoch on coco_mini train2017: samples/s, and where the time goes.

The DataLoader is the training datamodule's own (``PoseDataModule.train_dataloader``: epoch-seeded
sampler, reference augmentation, legacy codec, 256x192) with the data config's default worker count
unless ``--workers`` is given. Three measurements in one process, same model and mode:

1. training step alone: one real batch, repeated (the GPU/CPU compute rate);
2. data pipeline alone: the loader iterated and each batch copied to the device, no model;
3. the real epoch: our own timers around ``next(iterator)`` + device copy ("data wait") and around
   the step ("compute"), which shows whether the step ever waits for data.

The pipeline keeps up when (2) >= (1). A "benchmark epoch" is ``--passes`` passes over the 86
coco_mini instances (ConcatDataset), so a GPU epoch has enough batches to reach a steady state.

    .venv/bin/python benchmarks/epoch.py [--quick] [--device cuda --workers 16] [--model hrnet_w32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from _common import add_device_args, machine_peaks, markdown_table, peak_table, setup_device, synchronize, time_callable
from torch.utils.data import ConcatDataset
from train_step import INPUT_SIZE, MODES, SMALL_MODEL, make_train_step

from hrnet_train.codecs import create_codec
from hrnet_train.config_schema import DataConfig, EvalConfig
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.paths import shared_data_dir
from hrnet_train.training.datamodule import PoseDataModule

TRAIN_ANN = "annotations/person_keypoints_train2017_mini.json"
VAL_ANN = "annotations/person_keypoints_val2017_mini.json"
DEFAULT_WORKERS = DataConfig.__dataclass_fields__["num_workers"].default


def build_loader(root: Path, batch_size: int, workers: int, passes: int) -> torch.utils.data.DataLoader:
    data = DataConfig(
        name="coco", root=str(root), input_size=f"{INPUT_SIZE[0]}x{INPUT_SIZE[1]}", batch_size=batch_size,
        num_workers=workers, train_split="train2017", val_split="val2017", train_ann_file=TRAIN_ANN, val_ann_file=VAL_ANN,
    ).check("data")
    module = PoseDataModule(data, EvalConfig(), load_keypoint_set("coco17"), create_codec("legacy", INPUT_SIZE), seed=0)
    module.setup("fit")
    if passes > 1:
        module.train_dataset = ConcatDataset([module.train_dataset] * passes)
    return module.train_dataloader()


def to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(batch[key].to(device, non_blocking=True) for key in ("image", "target", "target_weight"))


def timed_epoch(
    loader: Iterable[dict], device: torch.device, step: Callable[..., None] | None
) -> dict[str, float]:
    """Iterate one epoch; ``data`` = seconds in ``next()`` + device copy, ``compute`` = seconds in ``step``
    (0 without one), ``first`` = wait for the first batch (worker start-up), ``samples``, ``total``."""
    spent = {"data": 0.0, "compute": 0.0, "first": 0.0, "samples": 0.0}
    start = time.perf_counter()
    iterator = iter(loader)
    while True:
        wait_start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        tensors = to_device(batch, device)
        synchronize(device)
        waited = time.perf_counter() - wait_start
        spent["data"] += waited
        if spent["samples"] == 0:
            spent["first"] = waited
        spent["samples"] += len(tensors[0])
        if step is not None:
            compute_start = time.perf_counter()
            step(*tensors)
            synchronize(device)
            spent["compute"] += time.perf_counter() - compute_start
    spent["total"] = time.perf_counter() - start
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument("--root", type=Path, default=shared_data_dir() / "coco_mini")
    parser.add_argument("--model", default=None, help=f"default hrnet_w32 ({SMALL_MODEL} with --quick)")
    parser.add_argument("--mode", default="bf16+channels_last", choices=list(MODES), help="training step mode")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 on CPU, 64 on GPU")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"DataLoader workers (data config default {DEFAULT_WORKERS})"
    )
    parser.add_argument(
        "--passes", type=int, default=None,
        help="passes over coco_mini per epoch (default 1 CPU, 32 GPU: 2752 samples = 43 full batches of 64)",
    )
    args = parser.parse_args()
    device = setup_device(args)
    gpu = device.type == "cuda"
    model_name = args.model or (SMALL_MODEL if args.quick else "hrnet_w32")
    batch_size = args.batch_size or (64 if gpu else 8)
    passes = args.passes or (32 if gpu else 1)
    mode = MODES[args.mode]

    peaks = machine_peaks(device, quick=True)
    print("\nMachine peak, measured now (quick sizes):\n" + peak_table(peaks))

    loader = build_loader(args.root, batch_size, args.workers, passes)
    step = make_train_step(model_name, mode, device)
    first_batch = to_device(next(iter(loader)), device)
    step_seconds = time_callable(
        lambda: step(*first_batch), warmup=3 if gpu else 1, repeats=2 if args.quick else 5, device=device
    )
    step_rate = len(first_batch[0]) / step_seconds

    loader_only = timed_epoch(loader, device, step=None)
    epoch = timed_epoch(loader, device, step=step)

    def steady(spent: dict[str, float]) -> str:
        samples_after_first = spent["samples"] - batch_size
        seconds = spent["total"] - spent["first"]
        return f"{samples_after_first / seconds:.1f}" if samples_after_first > 0 and seconds > 0 else "n/a"

    loader_rate = loader_only["samples"] / loader_only["total"]
    rows = [
        ["training step alone (1 real batch, repeated)", f"{step_rate:.1f}", f"{step_rate:.1f}", "-", "100%"],
        ["data pipeline alone (loader + device copy)", f"{loader_rate:.1f}", steady(loader_only),
         f"{loader_only['first']:.2f}", "-"],
        ["end-to-end epoch", f"{epoch['samples'] / epoch['total']:.1f}", steady(epoch), f"{epoch['first']:.2f}",
         f"{100 * epoch['compute'] / epoch['total']:.0f}%"],
    ]
    print(
        f"\n{model_name}, {args.mode}, batch {batch_size}, {args.workers} workers, {int(epoch['samples'])} samples/epoch "
        f"({passes} pass(es) over coco_mini train2017), {device.type}"
    )
    print(markdown_table(["what", "samples/s", "samples/s after 1st batch", "1st batch wait s", "time in step"], rows))
    other = epoch["total"] - epoch["data"] - epoch["compute"]
    share = {key: 100 * epoch[key] / epoch["total"] for key in ("data", "compute")}
    print(
        f"\nepoch time {epoch['total']:.2f} s = data wait {epoch['data']:.2f} s ({share['data']:.0f}%) "
        f"+ step {epoch['compute']:.2f} s ({share['compute']:.0f}%) + other (iterator start-up, bookkeeping) {other:.2f} s"
    )
    verdict = "keeps up" if loader_rate >= step_rate else "does NOT keep up"
    print(f"data pipeline alone {loader_rate:.1f} vs step alone {step_rate:.1f} samples/s: the pipeline {verdict} "
          f"({loader_rate / step_rate:.2f}x)")


if __name__ == "__main__":
    main()
