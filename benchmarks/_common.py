"""Shared measurement helpers for the benchmark scripts: timing, peak memory, machine peak, tables.

Every benchmark reports its throughput next to the machine's MEASURED peak (large matmul and large
3x3 convolution, fp32 and bf16, same process), so numbers taken on a busy shared machine stay
comparable as fractions of what the machine delivered at that moment.

Run ``python benchmarks/machine_peak.py`` for the peak table alone.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timers measure it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_callable(
    fn: Callable[[], object], warmup: int = 1, repeats: int = 5, device: torch.device | str = "cpu"
) -> float:
    """Median wall time of ``fn()`` in seconds after ``warmup`` untimed calls.

    The median (not the mean) because other processes share the cores and produce outliers.
    """
    if repeats < 1:
        raise ValueError(f"time_callable: repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int = 5, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Median wall time in seconds of each (already warmed-up) callable, calling them in turn.

    Round-robin order spreads load changes on a shared machine over all candidates alike, so their
    ratios stay fair even when the absolute numbers drift.
    """
    if repeats < 1:
        raise ValueError(f"time_interleaved: repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# --------------------------------------------------------------------------- machine peak


def _matmul_case(size: int, dtype: torch.dtype, device: torch.device) -> tuple[Callable[[], object], float]:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return (lambda: torch.mm(a, b)), 2.0 * size**3


def _conv_case(
    batch: int, channels: int, hw: tuple[int, int], dtype: torch.dtype, device: torch.device
) -> tuple[Callable[[], object], float]:
    """3x3 stride-1 conv, channels_last (the layout oneDNN/cuDNN run fastest)."""
    x = torch.randn(batch, channels, *hw, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    flops = 2.0 * batch * channels * channels * 9 * hw[0] * hw[1]
    return (lambda: F.conv2d(x, w, padding=1)), flops


def measure_peak_gflops(
    dtype: torch.dtype | str, device: torch.device | str = "cpu", quick: bool = False
) -> dict[str, float]:
    """Achieved GFLOP/s of a large matmul and a large 3x3 convolution in ``dtype`` on ``device``.

    Sizes: matmul 2048^2 on CPU (4096^2 on GPU); conv 256->256 channels, 64x48, batch 32 on CPU
    (batch 256 on GPU). ``quick`` halves the work per call and repeats less. Returns
    ``{"matmul": ..., "conv": ..., "peak": max of the two}``. On CUDA the fp32 conv runs in TF32
    (PyTorch's default ``cudnn.allow_tf32``), as the models' fp32 convolutions do; the fp32 matmul
    does not (``matmul.allow_tf32`` is off by default), so there the conv sets the fp32 peak.
    """
    dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    device = torch.device(device)
    gpu = device.type == "cuda"
    matmul_size = 4096 if gpu else (1024 if quick else 2048)
    conv_batch = 256 if gpu else (8 if quick else 32)
    repeats = 10 if gpu else (2 if quick else 5)
    results = {}
    with torch.no_grad():
        for name, (fn, flops) in {
            "matmul": _matmul_case(matmul_size, dtype, device),
            "conv": _conv_case(conv_batch, 256, (64, 48), dtype, device),
        }.items():
            seconds = time_callable(fn, warmup=2 if gpu else 1, repeats=repeats, device=device)
            results[name] = flops / seconds / 1e9
    results["peak"] = max(results["matmul"], results["conv"])
    return results


def machine_peaks(device: torch.device | str = "cpu", quick: bool = False) -> dict[str, dict[str, float]]:
    """``measure_peak_gflops`` for fp32 and bf16: ``{"fp32": {...}, "bf16": {...}}``."""
    return {name: measure_peak_gflops(dtype, device, quick) for name, dtype in DTYPES.items()}


def peak_table(peaks: dict[str, dict[str, float]]) -> str:
    rows = [[name, f"{p['matmul']:.0f}", f"{p['conv']:.0f}", f"{p['peak']:.0f}"] for name, p in peaks.items()]
    return markdown_table(["dtype", "matmul GFLOP/s", "3x3 conv GFLOP/s", "peak (higher)"], rows)


# --------------------------------------------------------------------------- memory


@dataclass
class PeakMemory:
    """Peak memory of a code block, in MiB above what was in use when it started.

    GPU: ``torch.cuda.max_memory_allocated`` (tensors only). CPU: the process's peak resident set
    (``VmHWM``), reset through ``/proc/self/clear_refs`` when the kernel allows it; otherwise
    ``ru_maxrss``, which cannot be reset and so only shows blocks that raise the lifetime peak.
    """

    mib: float = 0.0
    resettable: bool = True


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def track_peak_memory(device: torch.device | str) -> Iterator[PeakMemory]:
    device = torch.device(device)
    result = PeakMemory()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        synchronize(device)
        result.mib = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    import ctypes
    import gc
    import resource

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc: hand freed heap back so RSS starts low
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    result.resettable = _reset_hwm()
    start_kib = _status_kib("VmRSS")
    start_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield result
    if result.resettable:
        result.mib = (_status_kib("VmHWM") - start_kib) / 1024
    else:
        result.mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_maxrss) / 1024


# --------------------------------------------------------------------------- modes and output


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` (what Lightning's ``bf16-mixed`` does), or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--quick`` and ``--threads``, the same in every script."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--quick", action="store_true", help="small model, few repeats: a smoke run in seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")


def setup_device(args: argparse.Namespace) -> torch.device:
    """Validate ``--device``, apply ``--threads`` and print what the numbers were measured on."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available in this torch build/machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu or cuda[:N], got {args.device!r}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} torch threads"
    print(f"torch {torch.__version__}, device: {name}")
    return device
