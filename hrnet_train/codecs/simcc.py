"""SimCC coordinate classification (Li et al., "SimCC: a Simple Coordinate Classification Perspective
for Human Pose Estimation", ECCV 2022), under the same codec interface as the heatmap codecs.

Each joint's x and y are classified separately into ``split_ratio`` bins per input pixel: the
network (head ``simcc``) outputs per joint one row of ``x_bins + y_bins`` logits, x first, so the
output is one tensor (N, J, x_bins + y_bins) that the flip test can average and DDP can gather like
heatmaps. Targets are Gaussian-smoothed labels (the paper's label smoothing), each axis normalised to
a probability distribution over its bins, learned with a KL-divergence loss
(``hrnet_train.training.losses.SimCCKLLoss``; the codec names it in ``loss_name``).

"Heatmap pixels" of this codec are bins: ``heatmap_size`` is (y_bins, x_bins) and ``decode`` returns
bin coordinates, so ``to_image`` and the exported decoder map them back like any heatmap codec. The
crop uses the unit-length convention of UDP (Huang et al. CVPR 2020): bin b of an axis of n bins is
input pixel b (W_in - 1) / (n - 1). In that convention the flip test is an exact reversal of the x
logits (measured in tests/test_simcc.py); in the size convention it would be off by split_ratio - 1
bins, which is why SimCC does not use it. ``sigma`` is in bins (RTMPose, Jiang et al. 2023, uses
4.9 / 5.66 bins for x / y at 256x192 with split ratio 2).

Decoding: softmax per axis, then the argmax bin (default) or the expectation over all bins
(``decoding="soft_argmax"``, integral regression; pulled towards the centre when the distribution
has heavy tails). Score: the smaller of the two axes' peak probabilities, divided by the peak of the
label (1 / (sigma sqrt(2 pi))), so a prediction equal to its training label scores about 1 like a
heatmap peak and the reference rescoring threshold (0.2) keeps its meaning.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from hrnet_train.codecs.base import ArrayT, HeatmapCodec, _copy, _reverse_columns, _take_channels, encode_inputs
from hrnet_train.codecs.torch_decode import HeatmapDecoder

DECODINGS = ("argmax", "soft_argmax")
_LOG_FLOOR = 1e-30  # log of a zero label probability, for target_as_output


def simcc_bins(input_size: tuple[int, int], split_ratio: float) -> tuple[int, int]:
    """(x_bins, y_bins) of an (H, W) input: round(W k), round(H k)."""
    height, width = input_size
    return round(width * split_ratio), round(height * split_ratio)


class SimCCCodec(HeatmapCodec):
    """SimCC labels and decoding; options ``split_ratio`` (bins per input pixel, paper default 2.0),
    ``decoding`` ("argmax" | "soft_argmax"), ``flip_shift`` (default False; one bin right, experiments only)."""

    name = "simcc"
    pixel_convention = "unit"
    loss_name = "simcc_kl"

    def __init__(
        self, input_size: tuple[int, int], sigma: float = 5.0, split_ratio: float = 2.0, decoding: str = "argmax",
        flip_shift: bool = False,
    ):
        super().__init__(input_size, sigma=sigma, stride=1, flip_shift=flip_shift)
        if split_ratio <= 0:
            raise ValueError(f"codec simcc: split_ratio must be > 0, got {split_ratio}")
        if decoding not in DECODINGS:
            raise ValueError(f"codec simcc: decoding must be one of {DECODINGS}, got {decoding!r}")
        self.split_ratio = float(split_ratio)
        self.decoding = decoding
        self.x_bins, self.y_bins = simcc_bins(self.input_size, self.split_ratio)
        if min(self.x_bins, self.y_bins) < 2:
            raise ValueError(f"codec simcc: split_ratio {split_ratio} leaves fewer than 2 bins for {self.input_size}")
        self.heatmap_size = (self.y_bins, self.x_bins)
        self.stride = 1.0 / self.split_ratio  # input pixels per bin (bins are finer than the input)
        self._input_to_bins = 1.0 / np.array(self.heatmap_to_input())
        self.label_peak = 1.0 / (self.sigma * math.sqrt(2.0 * math.pi))

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, split_ratio={self.split_ratio}, decoding={self.decoding!r})"

    def output_shape(self, num_joints: int) -> tuple[int, ...]:
        return (num_joints, self.x_bins + self.y_bins)

    def torch_decoder(self) -> nn.Module:
        return SimCCDecoder(self)

    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints (J, 2) in input-crop px -> labels (J, x_bins + y_bins) float32, each axis summing to 1
        (0 for weight-0 joints); a joint whose bin position lies outside either axis gets weight 0."""
        joints, weight = encode_inputs(joints, visible)
        centres = joints[:, :2] * self._input_to_bins
        limits = np.array([self.x_bins - 1, self.y_bins - 1], dtype=np.float64)
        outside = ((centres < -1e-9) | (centres > limits + 1e-9)).any(axis=1)  # the crop's own border pixels are in
        weight[outside] = 0.0
        labels = np.concatenate(
            [self._axis_labels(centres[:, 0], self.x_bins), self._axis_labels(centres[:, 1], self.y_bins)], axis=1
        ).astype(np.float32)
        labels[~(weight > 0.5)] = 0.0
        return labels, weight

    def _axis_labels(self, centres: np.ndarray, bins: int) -> np.ndarray:
        """Gaussians over an axis' bins centred at the exact sub-bin position, normalised to sum 1."""
        gauss = np.exp(-((np.arange(bins)[None, :] - centres[:, None]) ** 2) / (2.0 * self.sigma**2))
        total = gauss.sum(axis=1, keepdims=True)
        return np.divide(gauss, total, out=np.zeros_like(gauss), where=total > 0)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, J, x_bins + y_bins) -> coords (N, J, 2) float64 in bins, scores (N, J) float32."""
        logits = np.asarray(heatmaps, dtype=np.float64)
        if logits.ndim != 3 or logits.shape[2] != self.x_bins + self.y_bins:
            raise ValueError(f"decode (simcc): expected (N, J, {self.x_bins + self.y_bins}) logits, got {logits.shape}")
        px, py = _softmax(logits[..., : self.x_bins]), _softmax(logits[..., self.x_bins :])
        if self.decoding == "argmax":
            coords = np.stack([px.argmax(axis=2), py.argmax(axis=2)], axis=-1).astype(np.float64)
        else:
            coords = np.stack([px @ np.arange(self.x_bins), py @ np.arange(self.y_bins)], axis=-1)
        scores = np.minimum(px.max(axis=2), py.max(axis=2)) / self.label_peak
        return coords, scores.astype(np.float32)

    def target_as_output(self, target: np.ndarray) -> np.ndarray:
        """Logits whose softmax is the label: its log (a zero probability becomes log 1e-30)."""
        return np.log(np.maximum(np.asarray(target, dtype=np.float64), _LOG_FLOOR))

    def flip_back(self, heatmaps: ArrayT, flip_index: np.ndarray) -> ArrayT:
        """Swap left/right joints and reverse the x logits (the y logits do not change under a
        horizontal flip); ``flip_shift`` then moves the x logits one bin right (bin 0 keeps its value)."""
        flipped = _take_channels(heatmaps, self._flip_channels(np.asarray(flip_index)))
        flipped[..., : self.x_bins] = _copy(_reverse_columns(flipped[..., : self.x_bins]))
        if self.flip_shift:
            flipped[..., 1 : self.x_bins] = _copy(flipped[..., : self.x_bins - 1])
        return flipped


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class SimCCDecoder(HeatmapDecoder):
    """``SimCCCodec.decode`` in torch ops (ONNX: Softmax, ArgMax, ReduceMax, MatMul); argmax takes the
    first of equal bins like numpy. Computed in float32 (the numpy codec in float64)."""

    def __init__(self, codec: SimCCCodec) -> None:
        super().__init__(codec)
        self.x_bins = codec.x_bins
        self.soft = codec.decoding == "soft_argmax"
        self.label_peak = codec.label_peak
        self.register_buffer("x_positions", torch.arange(codec.x_bins, dtype=torch.float32), persistent=False)
        self.register_buffer("y_positions", torch.arange(codec.y_bins, dtype=torch.float32), persistent=False)

    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        px = torch.softmax(heatmaps[..., : self.x_bins], dim=-1)
        py = torch.softmax(heatmaps[..., self.x_bins :], dim=-1)
        if self.soft:
            x, y = px @ self.x_positions, py @ self.y_positions
        else:
            x, y = px.argmax(dim=-1).to(heatmaps.dtype), py.argmax(dim=-1).to(heatmaps.dtype)
        scores = torch.minimum(px.amax(dim=-1), py.amax(dim=-1)) / self.label_peak
        return torch.stack([x, y], dim=-1), scores
