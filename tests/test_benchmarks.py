"""Benchmark scripts: the reference-path re-implementations agree with ours, and every ``--quick`` run
prints its table (run as the user would, in a subprocess, on 1 thread so a busy machine stays fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from _common import markdown_table, measure_peak_gflops, time_callable  # noqa: E402
from eval import INPUT_SIZE, reference_final_preds, reference_flip_back  # noqa: E402

from hrnet_train.codecs import create_codec  # noqa: E402
from hrnet_train.keypoints import load_keypoint_set  # noqa: E402
from hrnet_train.decoding.instances import decode_batch  # noqa: E402


def run_script(name: str, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick", "--threads", "1", *args],
        capture_output=True, text=True, timeout=120, cwd=BENCHMARKS.parent,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def table_rows(output: str, first_cell: str | None = None, columns: int | None = None) -> list[list[str]]:
    """Cells of the markdown rows (optionally only those starting with ``first_cell`` / of ``columns`` cells)."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in output.splitlines() if line.startswith("| ")]
    return [
        row for row in rows
        if (first_cell is None or row[0] == first_cell) and (columns is None or len(row) == columns)
    ]


def test_reference_flip_back_equals_legacy_codec() -> None:
    keypoints = load_keypoint_set("coco17")
    codec = create_codec("legacy", INPUT_SIZE)
    heatmaps = np.random.default_rng(0).random((3, 17, 64, 48), dtype=np.float32)
    expected = codec.flip_back(heatmaps.copy(), keypoints.flip_index)
    np.testing.assert_array_equal(reference_flip_back(heatmaps.copy(), keypoints.flip_pairs), expected)


def test_reference_final_preds_equals_our_decode() -> None:
    rng = np.random.default_rng(1)
    heatmaps = rng.random((4, 17, 64, 48), dtype=np.float32)
    heatmaps[0, 0] = 0.0  # a flat map: coordinates (0, 0) -> only the affine offset
    heatmaps[1, 2, 0, 5] = 5.0  # a border peak: no quarter offset
    centers = rng.uniform(100, 500, (4, 2))
    scales = rng.uniform(0.5, 3.0, (4, 2))
    meta = {"center": centers, "scale": scales, "image_id": np.arange(4), "index": np.arange(4), "score": np.ones(4)}
    ours = decode_batch(heatmaps, meta, create_codec("legacy", INPUT_SIZE)).keypoints
    np.testing.assert_allclose(reference_final_preds(heatmaps, centers, scales), ours, rtol=0, atol=1e-3)


def test_time_callable_returns_the_median() -> None:
    durations = iter([0.0, 0.03, 0.001, 0.002])  # warm-up, then three timed calls
    import time

    assert 0.001 <= time_callable(lambda: time.sleep(next(durations)), warmup=1, repeats=3) < 0.01


def test_markdown_table_layout() -> None:
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_measure_peak_gflops_reports_both_kernels() -> None:
    peak = measure_peak_gflops(torch.float32, "cpu", quick=True)
    assert set(peak) == {"matmul", "conv", "peak"}
    assert peak["peak"] == max(peak["matmul"], peak["conv"]) > 0


def test_machine_peak_quick_prints_both_dtypes() -> None:
    output = run_script("machine_peak.py")
    for dtype in ("fp32", "bf16"):
        (row,) = table_rows(output, dtype)
        assert float(row[3]) == max(float(row[1]), float(row[2])) > 0


def test_train_step_quick_table() -> None:
    output = run_script("train_step.py")
    rows = table_rows(output, columns=8)[1:]  # the step table, without its header
    # quick: the small model only, the eager modes, eager fp32 first as the baseline
    assert [r[0] for r in rows] == ["eager_fp32", "channels_last", "bf16", "bf16+channels_last"]
    assert rows[0][3] == "1.00x" and {r[1] for r in rows} == {"8"}
    assert all(float(r[2]) > 0 for r in rows)
    assert "training counted as 3x = 1.06" in output  # hrnet_tiny: 0.35 forward GFLOPs at 256x192


def test_train_step_modes_parse_from_tokens() -> None:
    from train_step import Mode

    mode = Mode.parse("bf16+channels_last+fused+compile:reduce-overhead")
    assert (mode.bf16, mode.channels_last, mode.fused, mode.compile, mode.dtype) == (True, True, True, "reduce-overhead", "bf16")
    assert Mode.parse("compile").compile == "default" and Mode.parse("eager_fp32") == Mode("eager_fp32")
    with pytest.raises(ValueError, match="unknown token 'compile:fast'"):
        Mode.parse("channels_last+compile:fast")


def test_eval_quick_table() -> None:
    output = run_script("eval.py")
    rows = table_rows(output, "hrnet_tiny")
    # (no flip: 3 paths, flip: 5 paths) x 2 batch sizes
    assert len(rows) == 16
    assert [r[5] for r in rows if r[3] == "reference (fp32, numpy loops)"] == ["1.00x"] * 4


@pytest.mark.slow
def test_epoch_quick_table(coco_mini: Path) -> None:
    output = run_script("epoch.py", "--root", str(coco_mini))
    (cpu,) = table_rows(output, "cpu: end-to-end epoch")
    (device,) = table_rows(output, "device: end-to-end epoch")  # both data paths side by side, cpu the baseline
    assert float(cpu[1]) > 0 and float(device[1]) > 0 and cpu[3] == "1.00x"
    assert "80 samples/epoch" in output  # 86 coco_mini train instances, batches of 8, drop_last
    assert output.count("the pipeline keeps up") + output.count("the pipeline does NOT keep up") == 2


def test_image_decode_quick_table(coco_mini: Path) -> None:
    output = run_script("image_decode.py", "--root", str(coco_mini))
    (strict,) = table_rows(output, "read_image (strict)")
    assert float(strict[1]) > 0 and float(strict[2]) > 0  # ms per image, ratio to the previous reader
    ((copies, refused, silent),) = table_rows(output, columns=3)[1:]
    assert int(copies) == 12 and int(refused.split()[0]) + int(silent.split()[0]) == 12


def test_annotation_checks_quick_table(shared_data: Path) -> None:
    completed = subprocess.run([sys.executable, str(BENCHMARKS / "annotation_checks.py"), "--quick"],
                               capture_output=True, text=True, timeout=120, cwd=BENCHMARKS.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (values,) = table_rows(completed.stdout, "value check (checked_annotations)")
    assert float(values[1]) > 0 and "10000 annotations" in completed.stdout
