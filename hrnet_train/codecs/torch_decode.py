"""Heatmap decoding written in torch ops, so it runs on the accelerator and exports into an ONNX graph.

Each decoder mirrors one numpy codec's ``decode`` operation for operation (same argmax tie rule --
first index --, same border rules, same modulation kernel) and then maps heatmap pixels to INPUT-CROP
pixels with the factors of the codec's pixel convention (``HeatmapCodec.heatmap_to_input``):
``W_in / w`` in the reference "size" convention, ``(W_in - 1) / (w - 1)`` in the unit-length one.
A codec picks its decoder in ``torch_decoder()``.

Outputs are float32 keypoints (B, J, 2) in crop pixels and scores (B, J) = the raw heatmap value at
the integer peak (UDP combined: the disk channel there). Joints whose peak is <= 0 get the point
(0, 0) before the mapping, as in the reference ``get_max_preds``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec

_LOG_FLOOR = 1e-10  # same floor as hrnet_train.codecs.dark


def gaussian_kernel_1d(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """The 1-D kernel ``scipy.ndimage.gaussian_filter`` uses: radius int(truncate * sigma + 0.5), sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(torch.float32)


class SeparableGaussianBlur(nn.Module):
    """Per-map Gaussian blur with zero padding (scipy ``mode='constant', cval=0``) as two 1-D convolutions."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        kernel = gaussian_kernel_1d(sigma)
        self.radius = (len(kernel) - 1) // 2
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1), persistent=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        batch, joints, height, width = maps.shape
        single = maps.reshape(-1, 1, height, width)
        single = nn.functional.conv2d(single, self.kernel_x, padding=(0, self.radius))
        single = nn.functional.conv2d(single, self.kernel_y, padding=(self.radius, 0))
        return single.reshape(batch, joints, height, width)


def integer_peaks(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch ``argmax_peaks`` (first index wins ties, like numpy): x, y (each (B, J) int64), peak value (B, J)."""
    flat = maps.flatten(2)
    index = flat.argmax(dim=2, keepdim=True)
    values = flat.gather(2, index).squeeze(2)
    index = index.squeeze(2)
    width = maps.shape[-1]
    return index % width, torch.div(index, width, rounding_mode="floor"), values


def sample(maps: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """maps[b, j, y[b, j], x[b, j]] for (B, J) index tensors (callers keep them inside the map)."""
    flat_index = (y * maps.shape[-1] + x).unsqueeze(2)
    return maps.flatten(2).gather(2, flat_index).squeeze(2)


class HeatmapDecoder(nn.Module, ABC):
    """Base: integer peak + codec-specific sub-pixel step, then heatmap px -> input-crop px."""

    def __init__(self, codec: HeatmapCodec) -> None:
        super().__init__()
        ratio = codec.heatmap_to_input()
        self.register_buffer("heatmap_to_input", torch.tensor(ratio, dtype=torch.float32), persistent=False)
        self.codec_name = codec.name

    @abstractmethod
    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C*J, h, w) float32 -> coords (B, J, 2) in heatmap px, scores (B, J)."""

    def forward(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coords, scores = self.heatmap_coords(heatmaps.float())
        return coords * self.heatmap_to_input, scores


class LegacyDecoder(HeatmapDecoder):
    """Reference decoding: argmax plus 0.25 px towards the higher neighbour (POST_PROCESS), only where
    the peak lies strictly inside 1 < px < w-1 and 1 < py < h-1 (px = 1 / py = 1 excluded as in the reference)."""

    def __init__(self, codec: HeatmapCodec) -> None:
        super().__init__(codec)
        self.post_process = codec.post_process

    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        px, py, maxvals = integer_peaks(heatmaps)
        positive = maxvals > 0
        px = torch.where(positive, px, torch.zeros_like(px))
        py = torch.where(positive, py, torch.zeros_like(py))
        coords = torch.stack([px, py], dim=-1).to(heatmaps.dtype)
        if not self.post_process:
            return coords, maxvals
        return coords + 0.25 * quarter_offset_signs(heatmaps, px, py, lowest=2), maxvals


def quarter_offset_signs(heatmaps: torch.Tensor, px: torch.Tensor, py: torch.Tensor, lowest: int) -> torch.Tensor:
    """Torch ``codecs.legacy.quarter_offset_signs``: (B, J, 2) signs of the neighbour differences at the
    integer peak, zero unless ``lowest`` <= px, py <= size - 2 (pose reference 2, face reference 1)."""
    h, w = heatmaps.shape[-2:]
    inside = (px >= lowest) & (px < w - 1) & (py >= lowest) & (py < h - 1)
    x = px.clamp(1, w - 2)
    y = py.clamp(1, h - 2)
    dx = sample(heatmaps, x + 1, y) - sample(heatmaps, x - 1, y)
    dy = sample(heatmaps, x, y + 1) - sample(heatmaps, x, y - 1)
    signs = torch.stack([torch.sign(dx), torch.sign(dy)], dim=-1)
    return torch.where(inside.unsqueeze(-1), signs, torch.zeros_like(signs))


class DarkDecoder(HeatmapDecoder):
    """DARK (Zhang et al. CVPR 2020): blur, rescale to the raw peak, log, one Newton step at the argmax.

    Same rules as ``codecs.dark.modulated_taylor_decode``: the step applies only where the peak is
    positive, has a neighbour on every side and the Hessian is negative definite. Computed in float32
    (the numpy codec uses float64); tests bound the difference.
    """

    def __init__(self, codec: HeatmapCodec) -> None:
        super().__init__(codec)
        self.blur = SeparableGaussianBlur(codec.blur_sigma)

    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        px, py, maxvals = integer_peaks(heatmaps)
        positive = maxvals > 0
        px = torch.where(positive, px, torch.zeros_like(px))
        py = torch.where(positive, py, torch.zeros_like(py))
        blurred = self.blur(heatmaps)
        blurred_max = blurred.flatten(2).amax(dim=2)
        raw_max = heatmaps.flatten(2).amax(dim=2)
        has_mass = blurred_max > 0
        ratio = torch.where(has_mass, raw_max / torch.where(has_mass, blurred_max, torch.ones_like(blurred_max)),
                            torch.ones_like(raw_max))
        log_maps = torch.log(torch.clamp(blurred * ratio[..., None, None], min=_LOG_FLOOR))

        h, w = heatmaps.shape[-2:]
        inside = positive & (px >= 1) & (px <= w - 2) & (py >= 1) & (py <= h - 2)
        x = px.clamp(1, w - 2)
        y = py.clamp(1, h - 2)

        def at(dy: int, dx: int) -> torch.Tensor:
            return sample(log_maps, x + dx, y + dy)

        centre, right, left, down, up = at(0, 0), at(0, 1), at(0, -1), at(1, 0), at(-1, 0)
        grad_x = 0.5 * (right - left)
        grad_y = 0.5 * (down - up)
        hxx = right - 2 * centre + left
        hyy = down - 2 * centre + up
        hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
        det = hxx * hyy - hxy * hxy
        maximum = inside & (det > 0) & (hxx < 0)
        safe_det = torch.where(maximum, det, torch.ones_like(det))
        step_x = torch.where(maximum, -(hyy * grad_x - hxy * grad_y) / safe_det, torch.zeros_like(det))
        step_y = torch.where(maximum, -(hxx * grad_y - hxy * grad_x) / safe_det, torch.zeros_like(det))
        coords = torch.stack([px.to(heatmaps.dtype) + step_x, py.to(heatmaps.dtype) + step_y], dim=-1)
        return coords, maxvals


class UdpCombinedDecoder(HeatmapDecoder):
    """UDP combined target (Huang et al. CVPR 2020): argmax of the blurred disk channel, plus R times
    the offset channels read there; score = raw disk value at that pixel (``codecs.udp`` rules)."""

    def __init__(self, codec: HeatmapCodec) -> None:
        super().__init__(codec)
        self.blur = SeparableGaussianBlur(codec.blur_sigma)
        self.radius = codec.radius

    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        disks, offset_x, offset_y = heatmaps[:, 0::3], heatmaps[:, 1::3], heatmaps[:, 2::3]
        px, py, smoothed_max = integer_peaks(self.blur(disks))
        positive = (smoothed_max > 0).unsqueeze(-1)
        px = torch.where(smoothed_max > 0, px, torch.zeros_like(px))
        py = torch.where(smoothed_max > 0, py, torch.zeros_like(py))
        scores = sample(disks, px, py)
        offsets = torch.stack([sample(offset_x, px, py), sample(offset_y, px, py)], dim=-1)
        coords = torch.stack([px, py], dim=-1).to(heatmaps.dtype)
        return coords + torch.where(positive, self.radius * offsets, torch.zeros_like(offsets)), scores


class FaceDecoder(HeatmapDecoder):
    """Official face decoding (``codecs.face``, spec A.12) up to the crop: argmax, a quarter pixel towards
    the higher neighbour where 1 <= px, py <= size-2, then + 0.5 (the official target truncates, so a cell
    stands for the interval [u, u+1)); maps without a positive peak give -0.5. The official integer
    back-projection (trunc + 1 in image pixels) is an image-space step left to ``FaceCodec.to_image``."""

    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        px, py, maxvals = integer_peaks(heatmaps)
        coords = torch.stack([px, py], dim=-1).to(heatmaps.dtype)
        coords = coords + 0.25 * quarter_offset_signs(heatmaps, px, py, lowest=1) + 0.5
        return torch.where((maxvals > 0).unsqueeze(-1), coords, torch.full_like(coords, -0.5)), maxvals


class FaceDarkDecoder(DarkDecoder):
    """DARK refinement for the face codec: the Taylor-refined peak + 0.5 (cell u stands for [u, u+1))."""

    def heatmap_coords(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coords, maxvals = super().heatmap_coords(heatmaps)
        return coords + 0.5, maxvals


def create_decoder(codec: HeatmapCodec) -> HeatmapDecoder:
    """The torch decoder that reproduces ``codec.decode`` (+ the heatmap -> crop mapping)."""
    return codec.torch_decoder()
