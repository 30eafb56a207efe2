"""A grid image of validation crops with predicted (red) and ground-truth (green) joints for TensorBoard.

A glance at this grid catches what AP alone hides: left/right swaps, a constant offset, collapsed
predictions. Joints are decoded from the heatmaps with the run's codec, in input-crop pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GT_COLOR = (0, 200, 0)
PRED_COLOR = (230, 30, 30)


def denormalize(images: np.ndarray, color_rgb: bool = True) -> np.ndarray:
    """(N,3,H,W) normalised float -> (N,H,W,3) RGB uint8."""
    pixels = images.transpose(0, 2, 3, 1) * IMAGENET_STD + IMAGENET_MEAN
    pixels = np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return pixels if color_rgb else pixels[..., ::-1]


def draw_pose(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, skeleton: Sequence[tuple[int, int]], color) -> None:
    """Draw limbs and joints in place; ``joints`` (J,2) in image pixels, ``visible`` (J,) bool."""
    for a, b in skeleton:
        if visible[a] and visible[b]:
            pa = tuple(int(round(v)) for v in joints[a])
            pb = tuple(int(round(v)) for v in joints[b])
            cv2.line(image, pa, pb, color, 1, cv2.LINE_AA)
    for (x, y), shown in zip(joints, visible, strict=True):
        if shown:
            cv2.circle(image, (int(round(x)), int(round(y))), 2, color, -1, cv2.LINE_AA)


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
    crops = denormalize(images, color_rgb).copy()
    for crop, pred, gt, vis in zip(crops, pred_joints, gt_joints, gt_visible, strict=True):
        draw_pose(crop, gt, vis, skeleton, GT_COLOR)
        draw_pose(crop, pred, np.ones(len(pred), dtype=bool), skeleton, PRED_COLOR)
    count, height, width = crops.shape[:3]
    rows = -(-count // columns)
    grid = np.zeros((rows * height, min(columns, count) * width, 3), dtype=np.uint8)
    for i, crop in enumerate(crops):
        r, c = divmod(i, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = crop
    return grid
