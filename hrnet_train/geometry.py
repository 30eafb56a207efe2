"""Pure crop geometry: person box -> (center, scale) -> affine transforms between image, input crop and heatmap.

Two pixel conventions live here (Huang et al., "The Devil is in the Details", CVPR 2020):

* "size" convention of the official HRNet code (``lib/utils/transforms.py``, spec 3.5): an output of
  width W spans W pixels and the box centre maps to W/2. Kept bit-compatible for parity with the
  official checkpoints and numbers.
* "unit-length" (UDP) convention: an output of width W spans W-1 units between its first and last
  pixel centres and the box centre maps to (W-1)/2, so flipping a crop (x -> W-1-x) commutes with the
  transform and heatmap/input coordinates relate by (W_hm-1)/(W_in-1).

``scale`` is the box size in units of ``pixel_std`` (200 px), as in the reference (s_w, s_h).
Output sizes are ``(height, width)`` tuples like everywhere in this project.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

PIXEL_STD = 200.0


def box_to_center_scale(
    box_xywh: np.ndarray | list[float], aspect_ratio: float, pixel_std: float = PIXEL_STD, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``_xywh2cs`` (spec 3.2) for one box (4,) or many (N, 4).

    center = (x + w/2, y + h/2); the box is grown to ``aspect_ratio`` (= W/H of the network input),
    divided by ``pixel_std`` and padded. Like the reference, values are computed in float32 (so they
    match its numbers exactly) and returned as float64 arrays of shape (2,) or (N, 2).
    """
    boxes = np.asarray(box_xywh, dtype=np.float64)
    if boxes.shape[-1] != 4:
        raise ValueError(f"box_to_center_scale: expected xywh boxes of shape (4,) or (N, 4), got {boxes.shape}")
    x, y, w, h = (boxes[..., i] for i in range(4))
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1).astype(np.float32)
    wide = w > aspect_ratio * h
    tall = w < aspect_ratio * h
    w_fixed = np.where(tall, h * aspect_ratio, w)
    h_fixed = np.where(wide, w * 1.0 / aspect_ratio, h)
    scale = np.stack([w_fixed / pixel_std, h_fixed / pixel_std], axis=-1).astype(np.float32)
    scale = scale * np.float32(padding)
    return center.astype(np.float64), scale.astype(np.float64)


def box_problems(boxes: np.ndarray, image_sizes: np.ndarray | Sequence[int] | None = None) -> dict[int, str]:
    """Rows of (N, >=4) xywh ``boxes`` that no crop can be made from, each with why.

    The one box check of ground-truth, detector and API boxes (vectorised: a whole COCO split at once).
    A box is refused for a non-finite value, a width or height <= 0 (:func:`box_to_center_scale` would
    give a zero scale, i.e. a degenerate crop) and, given ``image_sizes`` ((height, width), one for all
    rows or (N, 2)), for not overlapping its image on any side: the reference's clipping moves a box left
    of or above the image onto its border (x=0 / y=0) and crops pixels that show another place.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)
    x, y, w, h = (boxes[:, i] for i in range(4))
    finite = np.isfinite(boxes).all(axis=1)
    empty = finite & ~((w > 0) & (h > 0))
    problems: dict[int, str] = {}
    for row in np.nonzero(~finite)[0]:
        problems[int(row)] = f"non-finite value in {boxes[row].tolist()}"
    for row in np.nonzero(empty)[0]:
        problems[int(row)] = f"width and height must be positive, got w={w[row]}, h={h[row]}"
    if image_sizes is not None:
        height, width = np.broadcast_to(np.asarray(image_sizes, dtype=np.float64), (len(boxes), 2)).T
        sides = {"right of": x >= width, "below": y >= height, "left of": x + w <= 0, "above": y + h <= 0}
        outside = finite & ~empty & np.logical_or.reduce(list(sides.values()))
        for row in np.nonzero(outside)[0]:
            side = next(name for name, hit in sides.items() if hit[row])
            problems[int(row)] = (f"box {boxes[row, :4].tolist()} lies wholly {side} the "
                                  f"{width[row]:g}x{height[row]:g} image (expected some overlap with it)")
    return dict(sorted(problems.items()))


def _perpendicular_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Third point of the reference construction: b + (a - b) rotated by +90 degrees (float32)."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(
    center: np.ndarray | list[float],
    scale: np.ndarray | list[float] | float,
    rot: float,
    output_size_hw: tuple[int, int],
    shift: tuple[float, float] | np.ndarray = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Reference ``get_affine_transform`` (size convention, spec 3.5): 2x3 float64 image -> output.

    Three point pairs: the centre goes to (W/2, H/2); the centre plus the rotated vector
    (0, -200 s_w/2) goes to (W/2, H/2 - W/2); the third point completes a right angle. Only s_w is
    used (the aspect ratio is fixed by the box). Points are float32 and solved by
    ``cv2.getAffineTransform`` like the reference, so the matrices are identical to it.
    ``shift`` moves the source centre by ``shift * 200 s``; ``inv`` returns output -> image.
    """
    out_h, out_w = output_size_hw
    if np.ndim(scale) == 0:
        scale = [scale, scale]
    center32 = np.asarray(center, dtype=np.float32)
    box = np.asarray(scale, dtype=np.float32) * np.float32(PIXEL_STD)
    offset = box * np.asarray(shift, dtype=np.float32)
    theta = np.pi * rot / 180.0
    half = box[0] * np.float32(-0.5)
    src_dir = np.array([-half * np.sin(theta), half * np.cos(theta)], dtype=np.float64)

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center32 + offset
    src[1] = center32 + src_dir + offset
    src[2] = _perpendicular_point(src[0], src[1])
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = np.array([out_w * 0.5, out_h * 0.5]) + np.array([0.0, out_w * -0.5], dtype=np.float32)
    dst[2] = _perpendicular_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def get_udp_transform(
    center: np.ndarray | list[float],
    scale: np.ndarray | list[float],
    rot: float,
    output_size_hw: tuple[int, int],
    inv: bool = False,
) -> np.ndarray:
    """Unit-length (UDP) crop transform, 2x3 float64, written from Huang et al. 2020 (sec. 3/4).

    The box of width 200 s_w around ``center`` is measured in unit length and mapped onto the
    output's unit length (W-1, H-1):  out = R(-rot) (p - center) * ((W-1)/(200 s_w), (H-1)/(200 s_h))
    + ((W-1)/2, (H-1)/2). The rotation sense matches ``get_affine_transform`` (a positive ``rot``
    turns the crop window the same way), so augmentation configs mean the same for both conventions.
    """
    out_h, out_w = output_size_hw
    sx = (out_w - 1.0) / (float(scale[0]) * PIXEL_STD)
    sy = (out_h - 1.0) / (float(scale[1]) * PIXEL_STD)
    theta = np.deg2rad(rot)
    cos, sin = np.cos(theta), np.sin(theta)
    # Forward linear part: diag(sx, sy) @ R(-theta), R(t) = [[cos t, -sin t], [sin t, cos t]].
    linear = np.array([[sx * cos, sx * sin], [-sy * sin, sy * cos]])
    cx, cy = float(center[0]), float(center[1])
    translation = np.array([(out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0]) - linear @ np.array([cx, cy])
    forward = np.concatenate([linear, translation[:, None]], axis=1)
    return invert_affine(forward) if inv else forward


def invert_affine(trans: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (float64)."""
    linear_inv = np.linalg.inv(trans[:, :2])
    return np.concatenate([linear_inv, -(linear_inv @ trans[:, 2])[:, None]], axis=1)


def affine_points(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points (..., 2); float64 result.

    Written as a*x + b*y + c term by term (the reference's ``np.dot(t, [x, y, 1])``) so that the
    summation order, and hence the last bit, is the same.
    """
    pts = np.asarray(points, dtype=np.float64)
    x, y = pts[..., 0], pts[..., 1]
    out_x = trans[0, 0] * x + trans[0, 1] * y + trans[0, 2]
    out_y = trans[1, 0] * x + trans[1, 1] * y + trans[1, 2]
    return np.stack([out_x, out_y], axis=-1)


def transform_preds(
    coords: np.ndarray, center: np.ndarray, scale: np.ndarray, output_size_hw: tuple[int, int]
) -> np.ndarray:
    """Reference ``transform_preds``: map (J, 2) points from an output of ``output_size_hw`` (usually
    the heatmap) back to the image with the inverse size-convention transform (rotation 0)."""
    trans = get_affine_transform(center, scale, 0.0, output_size_hw, inv=True)
    return affine_points(coords, trans)


def transform_preds_udp(
    coords: np.ndarray, center: np.ndarray, scale: np.ndarray, output_size_hw: tuple[int, int]
) -> np.ndarray:
    """UDP counterpart of ``transform_preds``: inverse unit-length transform built for ``output_size_hw``."""
    return affine_points(coords, get_udp_transform(center, scale, 0.0, output_size_hw, inv=True))
