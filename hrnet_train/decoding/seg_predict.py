"""Segmentation test-time inference: single scale, and the official multi-scale + flip (spec B.8, D.16).

The network returns logits at 1/4 resolution (or a list of outputs, whose last one is used, as
``TEST.OUTPUT_INDEX -1``). :func:`window_scores` is the official ``inference``: logits upsampled
(bilinear, ``align_corners`` as the model was trained) to the input size, averaged with the
flipped-back logits of the flipped input when ``flip``, then **exp** (not softmax). For each scale s,
:func:`multi_scale_scores` resizes the normalised image so its long side is int(base_size * s + 0.5)
(bilinear, align_corners False: the same taps as the official ``cv2.resize`` INTER_LINEAR of the float
image), runs the whole image when s <= 1 and window-sized tiles otherwise (stride = window, the last
row/column shifted back to end at the border, overlaps averaged), upsamples the map to the input size
and **sums** over scales; the argmax of that sum is the prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from hrnet_train.data.seg_augment import resized_shape

Network = Callable[[torch.Tensor], Any]


def network_logits(network: Network, images: torch.Tensor) -> torch.Tensor:
    """float32 logits of ``images`` (the last output of a multi-output network such as HRNet-OCR)."""
    output = network(images)
    return (output[-1] if isinstance(output, (list, tuple)) else output).float()


def upsample_logits(logits: torch.Tensor, size: Sequence[int], align_corners: bool) -> torch.Tensor:
    """Bilinear resize of (N, K, h, w) maps to ``size`` (H, W), as the loss and the evaluation do (B.3)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)


def window_scores(
    network: Network,
    images: torch.Tensor,
    flip: bool = False,
    flip_index: Sequence[int] | None = None,
    align_corners: bool = False,
) -> torch.Tensor:
    """exp of the (flip-averaged) logits at the input size: the official ``inference``.

    ``flip_index`` (:attr:`SegClasses.flip_index`) swaps the channels of left/right classes in the
    flipped prediction (LIP); None when no class changes meaning under a flip.
    """
    size = images.shape[-2:]
    logits = upsample_logits(network_logits(network, images), size, align_corners)
    if flip:
        flipped = upsample_logits(network_logits(network, images.flip(-1)), size, align_corners).flip(-1)
        if flip_index is not None:
            flipped = flipped[:, torch.as_tensor(flip_index, device=flipped.device)]
        logits = 0.5 * (logits + flipped)
    return logits.exp()


def sliding_window_scores(
    network: Network,
    images: torch.Tensor,
    window: Sequence[int],
    flip: bool = False,
    flip_index: Sequence[int] | None = None,
    align_corners: bool = False,
) -> torch.Tensor:
    """:func:`window_scores` over tiles of ``window`` (H, W) at stride = window, averaged where they overlap.

    rows = ceil((H - h) / h) + 1 (likewise columns); a tile that would pass the border is shifted back
    to end on it, and an image smaller than the window is one (smaller) tile.
    """
    height, width = images.shape[-2:]
    tile_h, tile_w = (int(v) for v in window)
    rows = max(math.ceil((height - tile_h) / tile_h), 0) + 1
    cols = max(math.ceil((width - tile_w) / tile_w), 0) + 1
    total: torch.Tensor | None = None
    count = torch.zeros((1, 1, height, width), device=images.device)
    for row in range(rows):
        for col in range(cols):
            y1, x1 = min(row * tile_h + tile_h, height), min(col * tile_w + tile_w, width)
            y0, x0 = max(y1 - tile_h, 0), max(x1 - tile_w, 0)
            scores = window_scores(network, images[..., y0:y1, x0:x1], flip, flip_index, align_corners)
            if total is None:
                total = scores.new_zeros((images.shape[0], scores.shape[1], height, width))
            total[..., y0:y1, x0:x1] += scores
            count[..., y0:y1, x0:x1] += 1
    assert total is not None  # at least one tile
    return total / count


def multi_scale_scores(
    network: Network,
    images: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    base_size: int | None = None,
    window: Sequence[int] | None = None,
    flip_index: Sequence[int] | None = None,
    align_corners: bool = False,
) -> torch.Tensor:
    """Sum over ``scales`` of the exp-logit maps at the input size, (N, K, H, W) float32.

    ``images`` are normalised (N, 3, H, W) of one size. ``base_size`` is the long side at scale 1
    (official Cityscapes: 2048; None = the input's own long side). ``window`` (H, W) is the tile of
    scales above 1 (official: ``TEST.IMAGE_SIZE``, 1024x2048); None runs every scale on the whole image.
    """
    if images.ndim != 4 or images.shape[1] != 3 or 0 in images.shape[2:] or not images.is_floating_point():
        raise ValueError(f"multi_scale_scores: expected normalised images (N, 3, H, W), float, H and W >= 1, "
                         f"got {images.dtype} {tuple(images.shape)}")
    if not scales or min(scales) <= 0:
        raise ValueError(f"multi_scale_scores: scales must be positive numbers, got {list(scales)}")
    height, width = images.shape[-2:]
    base = max(height, width) if base_size is None else int(base_size)
    total: torch.Tensor | None = None
    for scale in scales:
        size = resized_shape(height, width, int(base * scale + 0.5))
        resized = images if size == (height, width) else F.interpolate(
            images, size=size, mode="bilinear", align_corners=False
        )
        if scale <= 1.0 or window is None:
            scores = window_scores(network, resized, flip, flip_index, align_corners)
        else:
            scores = sliding_window_scores(network, resized, window, flip, flip_index, align_corners)
        scores = upsample_logits(scores, (height, width), align_corners)
        total = scores if total is None else total + scores
    return total  # type: ignore[return-value]
