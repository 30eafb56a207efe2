"""Inference throughput (crops/s) of network + in-graph decoding, side by side per runtime.

    .venv/bin/python benchmarks/inference.py            # small variant and hrnet_w32, batch 1 and 32
    .venv/bin/python benchmarks/inference.py --quick    # hrnet_tiny only, few iterations (smoke run)

Runtimes: eager fp32, eager fp32 channels_last, bf16 autocast, torch.compile, onnxruntime (the
exported graph). Every runtime runs the same thing a deployment runs: images -> heatmaps ->
decoded crop keypoints (``PoseModelWithDecoder``). Each cell: warm-up calls (torch.compile's
compilation is timed separately), then ``repeats`` timed runs of ``iterations`` calls; the table
shows the median run, and the ratio against eager fp32 at the same model and batch size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hrnet_train.codecs import create_codec
from hrnet_train.export.onnx import PoseModelWithDecoder, export_onnx
from hrnet_train.codecs.torch_decode import create_decoder
from hrnet_train.models import create_model
from hrnet_train.sizes import InputSize

RUNTIMES = ("eager fp32", "channels_last", "bf16 autocast", "torch.compile", "onnxruntime")


@dataclass(frozen=True)
class Measurement:
    model: str
    batch: int
    runtime: str
    crops_per_s: float
    ms_per_batch: float
    setup_s: float


def time_runs(call: Callable[[], object], batch: int, warmup: int, iterations: int, repeats: int) -> tuple[float, float]:
    """Median crops/s and ms per call over ``repeats`` runs of ``iterations`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            call()
        per_call.append((time.perf_counter() - start) / iterations)
    median = statistics.median(per_call)
    return batch / median, 1000.0 * median


def torch_runner(module: torch.nn.Module, images: torch.Tensor, runtime: str) -> Callable[[], object]:
    if runtime == "channels_last":
        module = module.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if runtime == "torch.compile":
        module = torch.compile(module)

    def call() -> object:
        with torch.inference_mode():
            if runtime == "bf16 autocast":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(images)
            return module(images)

    return call


def onnx_runner(module: PoseModelWithDecoder, codec, images: np.ndarray, folder: Path) -> Callable[[], object]:
    import onnxruntime as ort

    path = export_onnx(module.network, codec, folder / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"images": images})


def measure_model(
    name: str, input_size: tuple[int, int], batches: list[int], runtimes: list[str], warmup: int, iterations: int, repeats: int
) -> list[Measurement]:
    torch.manual_seed(0)
    codec = create_codec("legacy", input_size)
    results = []
    for runtime in runtimes:
        module = PoseModelWithDecoder(create_model(name, num_joints=17), create_decoder(codec)).eval()
        with tempfile.TemporaryDirectory() as folder:
            for batch in batches:
                images = torch.randn(batch, 3, *input_size)
                start = time.perf_counter()
                if runtime == "onnxruntime":
                    call = onnx_runner(module, codec, images.numpy(), Path(folder))
                else:
                    call = torch_runner(module, images, runtime)
                call()  # first call: compilation / session warm-up, reported as setup time
                setup = time.perf_counter() - start
                crops, ms = time_runs(call, batch, warmup, iterations, repeats)
                results.append(Measurement(name, batch, runtime, crops, ms, setup))
                print(f"  {name} batch {batch:>3} {runtime:<14} {crops:9.1f} crops/s  (setup {setup:.1f} s)", flush=True)
    return results


def markdown_table(results: list[Measurement]) -> str:
    baseline = {(r.model, r.batch): r.crops_per_s for r in results if r.runtime == "eager fp32"}
    lines = [
        "| model | batch | runtime | crops/s | ms/batch | vs eager fp32 | setup s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: (r.model, r.batch, RUNTIMES.index(r.runtime))):
        ratio = r.crops_per_s / baseline[(r.model, r.batch)] if (r.model, r.batch) in baseline else float("nan")
        lines.append(
            f"| {r.model} | {r.batch} | {r.runtime} | {r.crops_per_s:.1f} | {r.ms_per_batch:.1f} | {ratio:.2f}x | {r.setup_s:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hrnet_tiny only, 1 warm-up call, 3 runs of 2 calls")
    parser.add_argument("--models", nargs="+", default=None, help="default: hrnet_w18_small_v1 hrnet_w32")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--input-size", default="256x192", help="HEIGHTxWIDTH")
    parser.add_argument("--threads", type=int, default=None, help="torch/onnxruntime intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models or (["hrnet_tiny"] if args.quick else ["hrnet_w18_small_v1", "hrnet_w32"])
    warmup, iterations, repeats = (1, 2, 3) if args.quick else (3, 5, 5)
    input_size = InputSize.parse(args.input_size, "--input-size")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.input_size}, "
          f"{repeats} runs x {iterations} calls after {warmup} warm-up", flush=True)
    results = []
    for name in models:
        results += measure_model(name, input_size, args.batches, args.runtimes, warmup, iterations, repeats)
    print()
    print(markdown_table(results))


if __name__ == "__main__":
    main()
