"""Evaluation throughput (crops/s): our batched evaluation path vs the reference path, same process.

Both paths turn a batch of crops into image-pixel keypoints (N, J, 3) with the legacy codec at
256x192; random crops (values do not change the cost) with plausible centers/scales.

* reference (written here from spec 6.1/6.2): eager fp32 NCHW under ``no_grad``; flip test as a
  second forward pass, ``flip_back`` in numpy on the CPU (column reversal, a Python loop swapping
  each flip pair, the one-pixel shift); vectorised argmax as ``get_max_preds``, then the Python
  loop over every instance and joint for the quarter offset and over every instance and joint for
  the inverse affine (``get_final_preds`` / ``transform_preds``).
* ours: the shipped path, ``hrnet_train.decoding.instances`` (``flip_test``: one forward pass on
  the batch concatenated with its mirror, then ``decode_batch``: vectorised decode and back-projection)
  under ``inference_mode`` (what Lightning validation uses), in (a) fp32 NCHW -- isolates the
  decode/flip gain -- and (b) bf16 autocast + channels_last.
* ablation: (a) and (b) with the flip test as two forward passes (the batch, then its mirror), to show
  what the merged pass buys.

fp32 "ours" must reproduce the reference keypoints (checked before timing). bf16 is not compared:
with untrained weights the heatmaps are nearly flat and any rounding moves the argmax anywhere
(bf16 accuracy is an AP question, answered by training).

    .venv/bin/python benchmarks/eval.py [--quick] [--device cuda] [--models hrnet_tiny,hrnet_w32]
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import numpy as np
import torch
from _common import add_device_args, autocast, machine_peaks, markdown_table, peak_table, setup_device, time_interleaved

from hrnet_train.codecs import create_codec
from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.complexity import complexity_report
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.geometry import get_affine_transform
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.decoding.instances import decode_batch
from hrnet_train.models import create_model

INPUT_SIZE = (256, 192)
SMALL_MODEL = "hrnet_tiny"
EvalPath = Callable[[torch.Tensor, dict], np.ndarray]
REFERENCE = "reference (fp32, numpy loops)"


# --------------------------------------------------------------------------- reference path


def reference_flip_back(heatmaps: np.ndarray, flip_pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Reference ``flip_back`` + SHIFT_HEATMAP on a numpy (N, J, h, w) array."""
    flipped = heatmaps[:, :, :, ::-1]
    for left, right in flip_pairs:
        tmp = flipped[:, left, :, :].copy()
        flipped[:, left, :, :] = flipped[:, right, :, :]
        flipped[:, right, :, :] = tmp
    flipped = flipped.copy()
    flipped[:, :, :, 1:] = flipped.copy()[:, :, :, :-1]
    return flipped


def reference_final_preds(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Reference ``get_max_preds`` + quarter offset + ``transform_preds`` -> (N, J, 3) x, y, maxval."""
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, joints, -1)
    idx = np.argmax(flat, 2).reshape(batch, joints, 1)
    maxvals = np.amax(flat, 2).reshape(batch, joints, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % width
    preds[:, :, 1] = np.floor(preds[:, :, 1] / width)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    for n in range(batch):
        for p in range(joints):
            hm = heatmaps[n][p]
            px, py = int(np.floor(preds[n][p][0] + 0.5)), int(np.floor(preds[n][p][1] + 0.5))
            if 1 < px < width - 1 and 1 < py < height - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                preds[n][p] += np.sign(diff) * 0.25
    out = preds.copy()
    for n in range(batch):
        trans = get_affine_transform(centers[n], scales[n], 0, (height, width), inv=True)
        for p in range(joints):
            point = np.array([preds[n][p][0], preds[n][p][1], 1.0])
            out[n][p] = np.dot(trans, point)[:2]
    return np.concatenate([out, maxvals], axis=2)


def reference_path(model: torch.nn.Module, device: torch.device, keypoints: KeypointSet, flip: bool) -> EvalPath:
    def run(images: torch.Tensor, meta: dict) -> np.ndarray:
        with torch.no_grad():
            output = model(images)
            if flip:
                flipped = model(torch.flip(images, dims=[3]))
                flipped = torch.from_numpy(reference_flip_back(flipped.cpu().numpy(), keypoints.flip_pairs).copy()).to(device)
                output = (output + flipped) * 0.5
        return reference_final_preds(output.cpu().numpy(), meta["center"], meta["scale"])

    return run


# --------------------------------------------------------------------------- our path


def ours_path(
    model: torch.nn.Module, device: torch.device, keypoints: KeypointSet, codec: HeatmapCodec, flip: bool,
    bf16: bool, channels_last: bool, two_flip_passes: bool = False,
) -> EvalPath:
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def forward(images: torch.Tensor) -> torch.Tensor:
        if not flip:
            return model(images)
        if not two_flip_passes:
            return flip_test(model, images, codec, keypoints.flip_index)
        mirrored = model(torch.flip(images, dims=[3]))
        return (model(images) + codec.flip_back(mirrored, keypoints.flip_index)) / 2.0

    def run(images: torch.Tensor, meta: dict) -> np.ndarray:
        with torch.inference_mode(), autocast(device, bf16):
            heatmaps = forward(images.contiguous(memory_format=layout)).float()
        return decode_batch(heatmaps, meta, codec).keypoints

    return run


# --------------------------------------------------------------------------- benchmark


def random_crops(count: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, dict]:
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.standard_normal((count, 3, *INPUT_SIZE), dtype=np.float32)).to(device)
    meta = {
        "image_id": np.arange(count), "index": np.arange(count), "score": np.ones(count),
        "center": rng.uniform(100, 500, (count, 2)), "scale": rng.uniform(0.5, 3.0, (count, 2)),
    }
    return images, meta


def per_batch(path: EvalPath, images: torch.Tensor, meta: dict, batch_size: int) -> Callable[[], np.ndarray]:
    """Run ``path`` over all crops in batches of ``batch_size``; returns the concatenated keypoints."""

    def run() -> np.ndarray:
        parts = []
        for start in range(0, len(images), batch_size):
            chunk = {key: value[start : start + batch_size] for key, value in meta.items()}
            parts.append(path(images[start : start + batch_size], chunk))
        return np.concatenate(parts)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument("--models", default=None, help=f"comma list (default {SMALL_MODEL},hrnet_w32; quick: {SMALL_MODEL})")
    parser.add_argument("--batch-sizes", default="1,32", help="comma list (default 1,32)")
    parser.add_argument("--crops", type=int, default=None, help="crops per timed pass (default 32 CPU / 256 GPU; quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes per path (default 3 CPU / 5 GPU; quick 1)")
    args = parser.parse_args()
    device = setup_device(args)
    gpu = device.type == "cuda"
    model_names = args.models.split(",") if args.models else ([SMALL_MODEL] if args.quick else [SMALL_MODEL, "hrnet_w32"])
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    crops = args.crops or (8 if args.quick else (256 if gpu else 32))
    repeats = args.repeats or (1 if args.quick else (5 if gpu else 3))
    keypoints = load_keypoint_set("coco17")
    codec = create_codec("legacy", INPUT_SIZE)
    images, meta = random_crops(crops, device)

    peaks = machine_peaks(device, args.quick)
    print("\nMachine peak, measured now:\n" + peak_table(peaks))

    rows = []
    for model_name in model_names:
        torch.manual_seed(0)
        reference_model = create_model(model_name, num_joints=keypoints.num_joints).to(device).eval()
        ours_model = copy.deepcopy(reference_model).to(memory_format=torch.channels_last)
        forward_gflops = complexity_report(reference_model, INPUT_SIZE)["gflops"]
        for flip in (False, True):
            paths = {
                REFERENCE: reference_path(reference_model, device, keypoints, flip),
                "ours fp32 NCHW": ours_path(reference_model, device, keypoints, codec, flip, bf16=False, channels_last=False),
                "ours bf16+channels_last": ours_path(ours_model, device, keypoints, codec, flip, bf16=True, channels_last=True),
            }
            if flip:
                paths["ablation: fp32 NCHW, two flip passes"] = ours_path(
                    reference_model, device, keypoints, codec, flip, bf16=False, channels_last=False, two_flip_passes=True
                )
                paths["ablation: bf16+cl, two flip passes"] = ours_path(
                    ours_model, device, keypoints, codec, flip, bf16=True, channels_last=True, two_flip_passes=True
                )
            for batch_size in batch_sizes:
                runs = {name: per_batch(path, images, meta, batch_size) for name, path in paths.items()}
                outputs = {name: run() for name, run in runs.items()}  # warm-up and correctness
                reference = outputs[REFERENCE]
                fp32_error = np.abs(outputs["ours fp32 NCHW"] - reference).max()
                if fp32_error > 1e-3:
                    raise AssertionError(f"{model_name}: ours fp32 keypoints differ from the reference by {fp32_error:.3g}")
                seconds = time_interleaved(runs, repeats, device)
                base = crops / seconds[REFERENCE]
                for name, value in seconds.items():
                    rate = crops / value
                    gflops = forward_gflops * (2 if flip else 1) * rate
                    rows.append([
                        model_name, str(min(batch_size, crops)), "yes" if flip else "no", name, f"{rate:.1f}",
                        f"{rate / base:.2f}x", f"{gflops:.0f}",
                    ])
    print(f"\n{crops} random crops per pass, {INPUT_SIZE[0]}x{INPUT_SIZE[1]}, median of {repeats} interleaved passes, "
          f"{device.type}; GFLOP/s counts forward true FLOPs (x2 with flip)")
    print(markdown_table(
        ["model", "batch", "flip", "path", "crops/s", "vs reference", "GFLOP/s"], rows
    ))


if __name__ == "__main__":
    main()
