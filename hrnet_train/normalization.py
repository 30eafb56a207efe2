"""Network input normalisation: ImageNet mean/std, the one definition every path uses.

HRNet's reference pipeline (spec 3.4) feeds ``ToTensor`` + ``Normalize(ImageNet mean, std)`` crops;
training, evaluation, inference, export metadata and the visualisations all read the constants
here, so a change of normalisation cannot leave one path behind.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only for the batched device path
    import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# x/255 then (x - mean)/std folded into one multiply-add per channel (float32, in place).
_NORM_GAIN = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
_NORM_BIAS = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)


def normalize_image(crop: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 3xHxW, (x/255 - mean)/std per channel as one in-place multiply-add.

    Equals ToTensor + Normalize up to float32 rounding (max abs difference ~5e-7).
    """
    out = np.empty((3, *crop.shape[:2]), dtype=np.float32)
    for channel in range(3):
        np.multiply(crop[:, :, channel], _NORM_GAIN[channel], out=out[channel], dtype=np.float32)
        out[channel] += _NORM_BIAS[channel]
    return out


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Torch counterpart of :func:`normalize_image` for a batch: (B, H, W, 3) grey levels -> (B, 3, H, W) float32.

    Same float32 multiply, then add, per channel as the numpy path, so equal pixels give equal
    values. The result is a channels-last view (no copy), the layout the models train fastest in.
    """
    import torch

    gain, bias = _torch_constants(pixels.device)
    return (pixels.to(torch.float32) * gain + bias).permute(0, 3, 1, 2)


@functools.cache
def _torch_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gain and bias on ``device``, copied there once (a copy per batch would wait for the GPU)."""
    import torch

    return torch.as_tensor(_NORM_GAIN, device=device), torch.as_tensor(_NORM_BIAS, device=device)


def denormalize(images: np.ndarray) -> np.ndarray:
    """Normalised float (3, H, W) or (N, 3, H, W) -> uint8 (H, W, 3) / (N, H, W, 3), channels kept in order."""
    images = np.asarray(images, dtype=np.float32)
    channels_last = np.moveaxis(images, -3, -1)
    pixels = channels_last * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)


def normalization_metadata() -> dict[str, list[float]]:
    """Mean/std as plain lists (for export metadata)."""
    return {"mean": [float(v) for v in IMAGENET_MEAN], "std": [float(v) for v in IMAGENET_STD]}
