"""Batched heatmap target encoding in torch ops, so targets are built on the accelerator (``data.pipeline=device``).

Each encoder mirrors one numpy codec's ``encode`` for a whole batch at once: joints (B, J, 2+) in
input-crop pixels and visibility (B, J) -> target (B, C*J, h, w) float32 and target_weight (B, J)
float32, with the same rules as the numpy code (truncation toward zero, the 3-sigma visibility
window, pasting only where the weight is > 0.5). Per-joint quantities (centres, windows, weights)
are computed in float64 like numpy, so the decisions that depend on them are identical; only the
per-pixel values of the sub-pixel Gaussians are formed in float32 (within 1e-6 of numpy).
A codec returns its encoder from ``torch_encoder()``.
"""

from __future__ import annotations

import torch
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.codecs.legacy import reference_gaussian_patch


def encoder_inputs(joints: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, J, 2) float64 joints and a fresh (B, J) float32 weight, checked against each other."""
    if joints.ndim != 3 or joints.shape[-1] < 2 or visible.shape != joints.shape[:2]:
        raise ValueError(
            f"torch encode: expected joints (B, J, 2) and visible (B, J), got {tuple(joints.shape)} and {tuple(visible.shape)}"
        )
    return joints[..., :2].to(torch.float64), visible.to(torch.float32).clone()


def _axes(heatmap_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row coordinates (float64) of a heatmap of (h, w)."""
    h, w = heatmap_size
    return torch.arange(w, dtype=torch.float64, device=device), torch.arange(h, dtype=torch.float64, device=device)


def _outside(mu_x: torch.Tensor, mu_y: torch.Tensor, reach: float, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """Joints whose window of half-size ``reach`` around (mu_x, mu_y) misses the map (numpy codecs' rule)."""
    h, w = heatmap_size
    return (mu_x - reach >= w) | (mu_y - reach >= h) | (mu_x + reach + 1 < 0) | (mu_y + reach + 1 < 0)


class LegacyEncoder(nn.Module):
    """``LegacyCodec.encode`` batched, bit-exact: integer-rounded centres, the reference float32 patch."""

    def __init__(self, codec: HeatmapCodec) -> None:
        super().__init__()
        self.heatmap_size = codec.heatmap_size
        self.tmp_size = codec.sigma * 3
        h, w = codec.heatmap_size
        self.stride_x = codec.input_size[1] / w
        self.stride_y = codec.input_size[0] / h
        self.register_buffer("patch", torch.from_numpy(reference_gaussian_patch(codec.sigma)), persistent=False)

    def forward(self, joints: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        joints, weight = encoder_inputs(joints, visible)
        size = self.patch.shape[0]
        mu_x = torch.trunc(joints[..., 0] / self.stride_x + 0.5)
        mu_y = torch.trunc(joints[..., 1] / self.stride_y + 0.5)
        ul_x, ul_y = torch.trunc(mu_x - self.tmp_size), torch.trunc(mu_y - self.tmp_size)
        br_x, br_y = torch.trunc(mu_x + self.tmp_size + 1), torch.trunc(mu_y + self.tmp_size + 1)
        # The legacy window test uses the integer corners, not the centre +- reach.
        outside = (ul_x >= self.heatmap_size[1]) | (ul_y >= self.heatmap_size[0]) | (br_x < 0) | (br_y < 0)
        weight = weight.masked_fill(outside, 0.0)
        cols, rows = _axes(self.heatmap_size, joints.device)
        # Patch index of every map row/column; valid inside the patch and before the exclusive corner br.
        row_offset = rows - ul_y[..., None]  # (B, J, h)
        col_offset = cols - ul_x[..., None]  # (B, J, w)
        row_ok = (row_offset >= 0) & (row_offset < size) & (rows < br_y[..., None])
        col_ok = (col_offset >= 0) & (col_offset < size) & (cols < br_x[..., None])
        row_index = row_offset.clamp(0, size - 1).long()
        col_index = col_offset.clamp(0, size - 1).long()
        values = self.patch[row_index[..., :, None], col_index[..., None, :]]  # (B, J, h, w)
        keep = row_ok[..., :, None] & col_ok[..., None, :] & (weight > 0.5)[..., None, None]
        return values.masked_fill(~keep, 0.0), weight


class _UnroundedCentreEncoder(nn.Module):
    """Shared part of the encoders with unrounded centres = joints x ``factor``: a joint whose window of
    half-size ``reach`` misses the map gets weight 0 (the numpy codecs' visibility rule)."""

    def __init__(self, codec: HeatmapCodec, factor: tuple[float, float], reach: float) -> None:
        super().__init__()
        self.heatmap_size = codec.heatmap_size
        self.factor_x, self.factor_y = (float(f) for f in factor)
        self.reach = float(reach)

    def centres(self, joints: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """mu_x, mu_y, weight (B, J) and the map's column / row coordinates, all float64 but the weight."""
        joints, weight = encoder_inputs(joints, visible)
        mu_x, mu_y = joints[..., 0] * self.factor_x, joints[..., 1] * self.factor_y
        weight = weight.masked_fill(_outside(mu_x, mu_y, self.reach, self.heatmap_size), 0.0)
        return (mu_x, mu_y, weight, *_axes(self.heatmap_size, joints.device))


class SubpixelGaussianEncoder(_UnroundedCentreEncoder):
    """``subpixel_gaussian_targets`` batched (DARK; UDP ``gaussian``): Gaussians at the unrounded centres."""

    def __init__(self, codec: HeatmapCodec, factor: tuple[float, float]) -> None:
        super().__init__(codec, factor, reach=3 * codec.sigma)
        self.sigma = codec.sigma

    def forward(self, joints: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_x, mu_y, weight, cols, rows = self.centres(joints, visible)
        denominator = 2 * self.sigma**2
        gx = torch.exp(-((cols - mu_x[..., None]) ** 2) / denominator).to(torch.float32)  # (B, J, w)
        gy = torch.exp(-((rows - mu_y[..., None]) ** 2) / denominator).to(torch.float32)  # (B, J, h)
        gy = gy * (weight > 0.5)[..., None]
        return gy[..., :, None] * gx[..., None, :], weight


class UdpCombinedEncoder(_UnroundedCentreEncoder):
    """``UdpCodec`` ``combined`` targets batched: disk of radius R and the offsets inside it, 3 channels per joint."""

    def __init__(self, codec: HeatmapCodec, factor: tuple[float, float]) -> None:
        super().__init__(codec, factor, reach=codec.radius)
        self.radius = codec.radius

    def forward(self, joints: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_x, mu_y, weight, cols, rows = self.centres(joints, visible)
        offset_x = ((mu_x[..., None] - cols) / self.radius)[..., None, :]  # (B, J, 1, w), float64 like numpy
        offset_y = ((mu_y[..., None] - rows) / self.radius)[..., :, None]  # (B, J, h, 1)
        disk = (offset_x**2 + offset_y**2 <= 1.0) & (weight > 0.5)[..., None, None]
        target = torch.stack(
            [disk.to(torch.float64), torch.where(disk, offset_x, 0.0), torch.where(disk, offset_y, 0.0)], dim=2
        ).to(torch.float32)  # (B, J, 3, h, w): joint-major channels 3k + {0, 1, 2}
        batch, num_joints = weight.shape
        return target.reshape(batch, num_joints * 3, *self.heatmap_size), weight
