"""A grid image of validation crops with predicted (red) and ground-truth (green) joints for TensorBoard.

A glance at this grid catches what AP alone hides: left/right swaps, a constant offset, collapsed
predictions. Joints are decoded from the heatmaps with the run's codec, in input-crop pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hrnet_train.drawing import draw_skeleton
from hrnet_train.normalization import denormalize

GT_COLOR = (0, 200, 0)
PRED_COLOR = (230, 30, 30)


def prediction_grid(
    images: np.ndarray,
    pred_joints: np.ndarray,
    gt_joints: np.ndarray,
    gt_visible: np.ndarray,
    skeleton: Sequence[tuple[int, int]],
    columns: int = 4,
    color_rgb: bool = True,
) -> np.ndarray:
    """HWC uint8 grid: each crop with GT (green) then prediction (red) drawn on top."""
    crops = denormalize(images)
    crops = np.ascontiguousarray(crops if color_rgb else crops[..., ::-1])
    for crop, pred, gt, vis in zip(crops, pred_joints, gt_joints, gt_visible, strict=True):
        draw_skeleton(crop, gt, vis, skeleton, GT_COLOR)
        draw_skeleton(crop, pred, np.ones(len(pred), dtype=bool), skeleton, PRED_COLOR)
    count, height, width = crops.shape[:3]
    rows = -(-count // columns)
    grid = np.zeros((rows * height, min(columns, count) * width, 3), dtype=np.uint8)
    for i, crop in enumerate(crops):
        r, c = divmod(i, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = crop
    return grid
