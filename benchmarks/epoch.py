"""End-to-end training epoch on coco_mini train2017 for each data path: samples/s, and where the time goes.

Data paths (``--paths``), each the training datamodule's own loader (``PoseDataModule``: epoch-seeded
sampler, reference augmentation, legacy codec, 256x192, the data config's default worker count unless
``--workers`` is given), measured side by side in one process with the same model and mode:

* ``cpu`` (default ``data.pipeline=cpu``, the baseline): workers decode, crop, normalise, encode;
* ``device`` (``data.pipeline=device``): workers decode only; the batch is cropped and encoded on the
  device after the transfer (the datamodule's ``on_after_batch_transfer``);
* ``device+nvjpeg`` (``data.decode=gpu``): workers only read the JPEG bytes; nvJPEG decodes on the
  GPU (offered where CUDA and torchvision are).

Per path: the data pipeline alone (loader + transfer + device-side build, no model) and the real
epoch, with our timers around ``next(iterator)`` + transfer ("data wait"), the device-side build
("build") and the step. On CUDA, "GPU busy" is the GPU time between CUDA events around build + step
over the epoch's wall time, "nvml" the mean utilisation nvidia-smi reports (when pynvml is there),
and TFLOP/s counts 3 x forward FLOPs per sample against the machine peak measured in this run.
Epochs of the paths are interleaved over ``--rounds`` (median kept) so a busy machine hits all alike.
A "benchmark epoch" is ``--passes`` passes over the 86 coco_mini instances, so a GPU epoch reaches
a steady state.

    .venv/bin/python benchmarks/epoch.py [--quick] [--device cuda --workers 12] [--model hrnet_w32]
        [--paths cpu,device] [--mode channels_last+fused]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import add_device_args, machine_peaks, markdown_table, peak_table, setup_device, synchronize, time_callable
from lightning_fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import ConcatDataset
from train_step import INPUT_SIZE, MODES, SMALL_MODEL, Mode, make_train_step

from hrnet_train.codecs import create_codec
from hrnet_train.complexity import complexity_report
from hrnet_train.config_schema import DataConfig, EvalConfig
from hrnet_train.pipeline_options import gpu_decode_available
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.models import create_model
from hrnet_train.paths import shared_data_dir
from hrnet_train.training.datamodule import PoseDataModule

TRAIN_ANN = "annotations/person_keypoints_train2017_mini.json"
VAL_ANN = "annotations/person_keypoints_val2017_mini.json"
DEFAULT_WORKERS = DataConfig.__dataclass_fields__["num_workers"].default
PATHS = {"cpu": ("cpu", "cpu"), "device": ("device", "cpu"), "device+nvjpeg": ("device", "gpu")}  # (pipeline, decode)
BASELINE_PATH = "cpu"
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


class DataPath:
    """One data path: its loader, and the transfer + device-side build Lightning would apply to a batch."""

    def __init__(self, name: str, root: Path, batch_size: int, workers: int, passes: int, device: torch.device) -> None:
        pipeline, decode = PATHS[name]
        data = DataConfig(
            name="coco", root=str(root), input_size=f"{INPUT_SIZE[0]}x{INPUT_SIZE[1]}", batch_size=batch_size,
            num_workers=workers, pin_memory=device.type == "cuda", train_split="train2017", val_split="val2017",
            train_ann_file=TRAIN_ANN, val_ann_file=VAL_ANN, pipeline=pipeline, decode=decode,
        ).check("data")
        self.name = name
        self.device = device
        self.module = PoseDataModule(data, EvalConfig(), load_keypoint_set("coco17"), create_codec("legacy", INPUT_SIZE), seed=0)
        self.module.setup("fit")
        if passes > 1:
            self.module.train_dataset = ConcatDataset([self.module.train_dataset] * passes)
        self.loader = self.module.train_dataloader()

    def transfer(self, batch: dict) -> dict:
        """What Lightning does before the step's ``on_after_batch_transfer``."""
        batch = self.module.on_before_batch_transfer(batch, 0)
        return move_data_to_device(batch, self.device)

    def build(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self.module.on_after_batch_transfer(batch, 0)
        return batch["image"], batch["target"], batch["target_weight"]


class UtilisationSampler:
    """Mean ``torch.cuda.utilization()`` (nvml) sampled every 50 ms in a thread; None without pynvml / CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> UtilisationSampler:
        if self.device.type == "cuda" and importlib.util.find_spec("pynvml") is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(float(torch.cuda.utilization(self.device)))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def timed_epoch(path: DataPath, step: Step | None) -> dict[str, float]:
    """Iterate one epoch of ``path``: seconds in ``next()`` + transfer (``data``), in the device-side build
    (``build``) and in ``step`` (``compute``; 0 without one), the first batch's wait (``first``: worker
    start-up), ``samples``, ``total``, GPU-event seconds of build + step (``gpu``) and nvml utilisation."""
    device = path.device
    spent = {"data": 0.0, "build": 0.0, "compute": 0.0, "first": 0.0, "samples": 0.0, "gpu": 0.0}
    events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
    start = time.perf_counter()
    with UtilisationSampler(device) as utilisation:
        iterator = iter(path.loader)
        while True:
            wait_start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            batch = path.transfer(batch)
            synchronize(device)
            waited = time.perf_counter() - wait_start
            spent["data"] += waited
            if spent["samples"] == 0:
                spent["first"] = waited
            begin = _event(device)
            build_start = time.perf_counter()
            tensors = path.build(batch)
            synchronize(device)
            spent["build"] += time.perf_counter() - build_start
            spent["samples"] += len(tensors[0])
            if step is not None:
                compute_start = time.perf_counter()
                step(*tensors)
                synchronize(device)
                spent["compute"] += time.perf_counter() - compute_start
            if begin is not None:
                events.append((begin, _event(device)))
    spent["total"] = time.perf_counter() - start
    spent["gpu"] = sum(a.elapsed_time(b) for a, b in events) / 1000.0
    spent["nvml"] = utilisation.mean if utilisation.mean is not None else float("nan")
    return spent


def _event(device: torch.device) -> torch.cuda.Event | None:
    if device.type != "cuda":
        return None
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def median_epoch(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median samples/s (a whole run, so its shares stay consistent)."""
    ordered = sorted(runs, key=lambda spent: spent["samples"] / spent["total"])
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument("--root", type=Path, default=shared_data_dir() / "coco_mini")
    parser.add_argument("--model", default=None, help=f"default hrnet_w32 ({SMALL_MODEL} with --quick)")
    parser.add_argument(
        "--mode", default=None, help="training step mode (train_step.py syntax; default bf16+channels_last on CPU, "
        "channels_last+fused on GPU: what cpu.yaml / gpu.yaml train with)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 on CPU, 64 on GPU")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"DataLoader workers (data config default {DEFAULT_WORKERS})"
    )
    parser.add_argument(
        "--passes", type=int, default=None,
        help="passes over coco_mini per epoch (default 1 CPU, 32 GPU: 2752 samples = 43 full batches of 64)",
    )
    parser.add_argument("--paths", default=None, help=f"comma list of {list(PATHS)} (default: all this machine offers)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved epochs per path, median kept (default 3, quick 1)")
    args = parser.parse_args()
    device = setup_device(args)
    gpu = device.type == "cuda"
    model_name = args.model or (SMALL_MODEL if args.quick else "hrnet_w32")
    batch_size = args.batch_size or (64 if gpu else 8)
    passes = args.passes or (32 if gpu else 1)
    rounds = args.rounds or (1 if args.quick else 3)
    mode_name = args.mode or ("channels_last+fused" if gpu else "bf16+channels_last")
    mode = MODES.get(mode_name) or Mode.parse(mode_name)
    nvjpeg = gpu and gpu_decode_available()
    path_names = args.paths.split(",") if args.paths else [name for name in PATHS if nvjpeg or "nvjpeg" not in name]
    unknown = [name for name in path_names if name not in PATHS]
    if unknown:
        raise ValueError(f"--paths: unknown path(s) {unknown}, expected some of {list(PATHS)}")
    if gpu:  # trainer.tf32=true (gpu.yaml)
        torch.set_float32_matmul_precision("high")

    peaks = machine_peaks(device, quick=True)
    print("\nMachine peak, measured now (quick sizes):\n" + peak_table(peaks))
    with torch.device("meta"):
        train_gflops = 3 * complexity_report(create_model(model_name, num_joints=17), INPUT_SIZE)["gflops"]

    paths = {name: DataPath(name, args.root, batch_size, args.workers, passes, device) for name in path_names}
    step = make_train_step(model_name, mode, device)
    first = next(iter(paths[path_names[0]].loader))
    first_batch = paths[path_names[0]].build(paths[path_names[0]].transfer(first))
    step_seconds = time_callable(
        lambda: step(*first_batch), warmup=3 + (2 if mode.compile else 0) if gpu else 1,
        repeats=2 if args.quick else 5, device=device,
    )
    step_rate = batch_size / step_seconds

    loader_runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    epoch_runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, path in paths.items():
            loader_runs[name].append(timed_epoch(path, step=None))
            epoch_runs[name].append(timed_epoch(path, step=step))

    def rate(spent: dict[str, float]) -> float:
        return spent["samples"] / spent["total"]

    def steady(spent: dict[str, float]) -> str:
        samples_after_first = spent["samples"] - batch_size
        seconds = spent["total"] - spent["first"]
        return f"{samples_after_first / seconds:.1f}" if samples_after_first > 0 and seconds > 0 else "n/a"

    def share(spent: dict[str, float], key: str) -> str:
        return f"{100 * spent[key] / spent['total']:.0f}%"

    baseline = rate(median_epoch(epoch_runs[BASELINE_PATH])) if BASELINE_PATH in epoch_runs else None
    rows = [["training step alone (1 real batch, repeated)", f"{step_rate:.1f}", "-", "-", "-", "-", "100%", "-", "-", "-", "-"]]
    for name in paths:
        loader_only, epoch = median_epoch(loader_runs[name]), median_epoch(epoch_runs[name])
        achieved = train_gflops * rate(epoch) / 1000.0
        peak = peaks[mode.dtype]["peak"] / 1000.0
        rows.append([f"{name}: data pipeline alone (+ transfer, build)", f"{rate(loader_only):.1f}", steady(loader_only),
                     "-", f"{loader_only['first']:.2f}", "-", "-", "-", "-", "-", "-"])
        rows.append([
            f"{name}: end-to-end epoch", f"{rate(epoch):.1f}", steady(epoch),
            f"{rate(epoch) / baseline:.2f}x" if baseline else "-", f"{epoch['first']:.2f}",
            share(epoch, "data"), f"{share(epoch, 'build')} + {share(epoch, 'compute')}",
            share(epoch, "gpu") if gpu else "-", f"{epoch['nvml']:.0f}%" if gpu and epoch["nvml"] == epoch["nvml"] else "-",
            f"{achieved:.2f}", f"{100 * achieved / peak:.1f}% of {mode.dtype} {peak:.1f}",
        ])
    print(
        f"\n{model_name}, {mode_name}, batch {batch_size}, {args.workers} workers, "
        f"{int(median_epoch(epoch_runs[path_names[0]])['samples'])} samples/epoch ({passes} pass(es) over coco_mini "
        f"train2017), {device.type}; median of {rounds} interleaved epoch(s) per path"
    )
    print(markdown_table(
        ["what", "samples/s", "samples/s after 1st batch", f"vs {BASELINE_PATH}", "1st batch wait s", "data wait",
         "build + step", "GPU busy", "nvml", "TFLOP/s", "of peak"], rows,
    ))
    for name in paths:
        loader_rate = rate(median_epoch(loader_runs[name]))
        verdict = "keeps up" if loader_rate >= step_rate else "does NOT keep up"
        print(f"{name}: data pipeline alone {loader_rate:.1f} vs step alone {step_rate:.1f} samples/s: the pipeline "
              f"{verdict} ({loader_rate / step_rate:.2f}x)")


if __name__ == "__main__":
    main()
