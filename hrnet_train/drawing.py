"""Drawing keypoints: the one skeleton drawer behind the demo, the TensorBoard grid, the worst-case
gallery and the dataset browser.

:func:`draw_skeleton` draws limbs and joints of one pose in place (one colour, or one per limb/joint,
optional per-joint opacity); the callers only choose colours. :func:`draw_poses` is the demo style:
left limbs/joints orange, right ones blue, centre ones green (the common pose-demo convention), so a
left/right swap is visible at a glance; a joint's circle grows and becomes more opaque with its score;
joints under ``threshold`` and limbs touching them are not drawn, because low-score joints are guesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

LEFT_COLOR = (0, 128, 255)  # BGR orange
RIGHT_COLOR = (255, 128, 0)  # BGR blue
CENTER_COLOR = (0, 200, 0)  # BGR green
BOX_COLOR = (0, 255, 255)  # BGR yellow


def joint_sides(num_joints: int, flip_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """(J,) side per joint: -1 left, +1 right, 0 centre, from (left, right) flip pairs."""
    sides = np.zeros(num_joints, dtype=np.int64)
    for left, right in flip_pairs:
        if not (0 <= left < num_joints and 0 <= right < num_joints):
            raise ValueError(f"flip_pairs: pair ({left}, {right}) is out of range for {num_joints} joints")
        sides[left], sides[right] = -1, 1
    return sides


def _side_color(side: int) -> tuple[int, int, int]:
    return LEFT_COLOR if side < 0 else RIGHT_COLOR if side > 0 else CENTER_COLOR


def _blend_circle(image: np.ndarray, center: tuple[int, int], radius: int, color: tuple[int, int, int],
                  alpha: float) -> None:
    """Draw a filled circle with opacity ``alpha`` by blending only the circle's bounding square."""
    x, y = center
    x0, y0 = max(x - radius, 0), max(y - radius, 0)
    x1, y1 = min(x + radius + 1, image.shape[1]), min(y + radius + 1, image.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    region = image[y0:y1, x0:x1]
    mask = np.zeros(region.shape[:2], dtype=np.uint8)
    cv2.circle(mask, (x - x0, y - y0), radius, 255, -1, cv2.LINE_8)
    painted = np.empty_like(region)
    painted[:] = color
    blended = cv2.addWeighted(painted, alpha, region, 1.0 - alpha, 0.0)
    region[mask > 0] = blended[mask > 0]


Color = tuple[int, int, int]


def draw_skeleton(
    canvas: np.ndarray,
    points: np.ndarray,
    shown: np.ndarray,
    skeleton: Sequence[tuple[int, int]],
    limb_colors: Color | Sequence[Color],
    joint_colors: Color | Sequence[Color] | None = None,
    radius: int | Sequence[int] = 2,
    thickness: int = 1,
    joint_alpha: Sequence[float] | None = None,
) -> None:
    """Draw limbs (between shown joints) then joints of one pose onto ``canvas`` in place.

    ``points`` (J, 2) in canvas pixels, ``shown`` (J,) bool. A colour is one (3,) tuple or one per
    limb / per joint; ``joint_colors`` defaults to the limb colour. ``radius`` is one value or one per
    joint; ``joint_alpha`` (per joint, in [0, 1]) blends the joint circles instead of painting them.
    Raises ValueError for a limb that names a joint outside the pose.
    """
    num_joints = len(points)
    pixels = np.round(np.nan_to_num(np.asarray(points, dtype=np.float64)[:, :2])).astype(np.int64)
    per_limb = _per_item(limb_colors, len(skeleton))
    per_joint = _per_item(limb_colors if joint_colors is None else joint_colors, num_joints)
    radii = [int(radius)] * num_joints if np.ndim(radius) == 0 else [int(r) for r in radius]  # type: ignore[arg-type]
    for (a, b), color in zip(skeleton, per_limb, strict=True):
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ValueError(f"skeleton: limb ({a}, {b}) is out of range for {num_joints} joints")
        if shown[a] and shown[b]:
            cv2.line(canvas, tuple(pixels[a].tolist()), tuple(pixels[b].tolist()), color, thickness, cv2.LINE_AA)
    for joint in np.flatnonzero(shown):
        center = tuple(pixels[joint].tolist())
        if joint_alpha is None:
            cv2.circle(canvas, center, radii[joint], per_joint[joint], -1, cv2.LINE_AA)
        else:
            _blend_circle(canvas, center, radii[joint], per_joint[joint], float(joint_alpha[joint]))


def _per_item(colors: Color | Sequence[Color], count: int) -> list[Color]:
    if len(colors) == 3 and all(np.isscalar(c) for c in colors):  # one colour for everything
        return [tuple(int(c) for c in colors)] * count  # type: ignore[misc]
    listed = [tuple(int(c) for c in color) for color in colors]  # type: ignore[union-attr]
    if len(listed) != count:
        raise ValueError(f"draw_skeleton: {len(listed)} colours for {count} items")
    return listed  # type: ignore[return-value]


def draw_poses(
    image: np.ndarray,
    poses: Sequence[Mapping],
    skeleton: Sequence[tuple[int, int]],
    flip_pairs: Sequence[tuple[int, int]] = (),
    threshold: float = 0.3,
    radius: int = 4,
    thickness: int = 2,
    draw_boxes: bool = True,
) -> np.ndarray:
    """Return a copy of a BGR ``image`` with every pose drawn.

    Each pose is a mapping with ``keypoints`` (J, 3) [x, y, score] in image pixels and optionally
    ``box`` [x, y, w, h(, score)] and ``track_id``. A joint's radius is ``radius * (0.5 + 0.5 * score)``
    and its opacity its score (both clipped to [0, 1]).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 BGR (H, W, 3), got {image.dtype} {image.shape}")
    canvas = image.copy()
    for index, pose in enumerate(poses):
        keypoints = np.asarray(pose["keypoints"], dtype=np.float64)
        if keypoints.ndim != 2 or keypoints.shape[1] != 3:
            raise ValueError(f"poses[{index}].keypoints: expected shape (J, 3) [x, y, score], got {keypoints.shape}")
        sides = joint_sides(len(keypoints), flip_pairs)
        shown = (keypoints[:, 2] >= threshold) & np.isfinite(keypoints).all(axis=1)
        if pose.get("box") is not None and draw_boxes:
            x, y, w, h = (float(v) for v in np.asarray(pose["box"]).ravel()[:4])
            cv2.rectangle(canvas, (round(x), round(y)), (round(x + w), round(y + h)), BOX_COLOR, 1, cv2.LINE_8)
            if pose.get("track_id") is not None:
                cv2.putText(canvas, f"id {pose['track_id']}", (round(x), max(round(y) - 4, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOR, 1, cv2.LINE_AA)
        if not shown.any():
            continue
        limb_colors = [_side_color(sides[a] if 0 <= a < len(sides) and 0 <= b < len(sides) and sides[a] == sides[b] else 0)
                       for a, b in skeleton]
        scores = np.clip(keypoints[:, 2], 0.0, 1.0)
        draw_skeleton(
            canvas, keypoints[:, :2], shown, skeleton, limb_colors,
            joint_colors=[_side_color(side) for side in sides],
            radius=[max(1, round(radius * (0.5 + 0.5 * score))) for score in scores],
            thickness=thickness, joint_alpha=scores,
        )
    return canvas
