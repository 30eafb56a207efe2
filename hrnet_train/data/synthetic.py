"""Synthetic people: a seedable generator of a COCO-format keypoint dataset.

WHY: ``make train`` must work on a fresh machine without downloads, so the default dataset is
drawn here. Each image holds 1-4 articulated figures (kinematic skeleton with random joint
angles) over a textured background, labelled with the 17 COCO keypoints in COCO order and
COCO visibility semantics:

* ``v=2`` the joint is drawn and not covered by anything else,
* ``v=1`` the joint is inside the image but covered (by an occluder box, another person, an own
  limb that does not meet at that joint, or an ear turned away),
* ``v=0`` the joint lies outside the image (truncation); then ``x = y = 0``.

Left limbs are always drawn in warm hues (red/orange) and right limbs in cool hues
(blue/cyan), so a horizontally flipped figure looks different and flip augmentation must swap
the left/right labels. The figures face the camera: the person's left side is on the image's
right when upright.

``bbox`` is the tight box around the whole drawn figure (including parts hidden by others),
clipped to the image; ``area`` is the pixel count of that figure's silhouette inside the image
(a segmentation area, as COCO's ``area`` is, which OKS uses as the object scale).

Segmentation masks (so a CPU segmentation run has an embedded dataset too) come from the same label
maps the visibility test uses, written as extra 8-bit PNGs beside the JPEGs: ``masks/<split>/<stem>.png``
(0 background, 1 person) and ``part_masks/<split>/<stem>.png`` (0 background, 1 + index in ``PARTS``).
Both hold 255 (ignore) on the dark anti-aliased outlines, where the picture shows neither side of an edge
clearly. Drawing them consumes no random numbers: images and annotations are the same bytes as without.

Every image is generated from its own ``numpy`` Generator seeded with ``(seed, split, index)``,
so the output is byte-identical for the same parameters and images can be generated in parallel.

CLI: ``python -m hrnet_train.data.synthetic output_dir=data/synthetic num_train=2000 num_val=200
seed=0 image_size=256x256 workers=1`` (``--help`` lists the options).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from hrnet_train.cli_args import CommandLine, Option, UsageError, parse_bool, run_tool
from hrnet_train.data.generated import (
    MANIFEST_NAME,
    SPLIT_ID_OFFSET,
    SPLITS,
    GeneratedLayout,
    check_split_sizes,
    map_jobs,
    write_jpeg,
    write_png,
)
from hrnet_train.paths import data_dir
from hrnet_train.sizes import InputSize

# Bump whenever the drawing or sampling changes: the manifest then no longer matches and
# ensure_synthetic_dataset regenerates.
GENERATOR_VERSION = 1
# Bump when only the mask files change (their rendering or format): the manifest then triggers a
# regeneration while GENERATOR_VERSION, which the annotation JSON records, stays the same.
MASKS_VERSION = 1

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# The COCO person category's limb list (1-based keypoint indices), as in person_keypoints_*.json.
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
KP = {name: index for index, name in enumerate(COCO_KEYPOINT_NAMES)}

# Body part ids (label-map codes). A joint is visible when the pixel under it shows one of the
# parts that meet at that joint (JOINT_PARTS), belonging to the same person.
PARTS = (
    "torso", "neck", "head", "left_ear", "right_ear",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm", "left_hand", "right_hand",
    "left_thigh", "right_thigh", "left_shank", "right_shank", "left_foot", "right_foot",
)
PART = {name: index for index, name in enumerate(PARTS)}


def _joint_parts() -> dict[int, frozenset[int]]:
    """For each keypoint, the body parts that meet at it (what a visible joint shows)."""
    head = PART["head"]
    joint_parts = {KP["nose"]: frozenset({head}), KP["left_eye"]: frozenset({head}),
                   KP["right_eye"]: frozenset({head})}
    for side in ("left", "right"):
        joint_parts[KP[f"{side}_ear"]] = frozenset({head, PART[f"{side}_ear"]})
        joint_parts[KP[f"{side}_shoulder"]] = frozenset({PART["torso"], PART["neck"], PART[f"{side}_upper_arm"]})
        joint_parts[KP[f"{side}_elbow"]] = frozenset({PART[f"{side}_upper_arm"], PART[f"{side}_forearm"]})
        joint_parts[KP[f"{side}_wrist"]] = frozenset({PART[f"{side}_forearm"], PART[f"{side}_hand"]})
        joint_parts[KP[f"{side}_hip"]] = frozenset({PART["torso"], PART[f"{side}_thigh"]})
        joint_parts[KP[f"{side}_knee"]] = frozenset({PART[f"{side}_thigh"], PART[f"{side}_shank"]})
        joint_parts[KP[f"{side}_ankle"]] = frozenset({PART[f"{side}_shank"], PART[f"{side}_foot"]})
    return joint_parts


JOINT_PARTS = _joint_parts()
LABELS_PER_PERSON = 32  # label code = person slot * 32 + part + 1 (0 = background)
OCCLUDER_LABEL = 255
# Mask files: directory per kind under the dataset root; 255 marks outline pixels (ignored in losses/metrics).
PERSON_MASK_DIR, PART_MASK_DIR = "masks", "part_masks"
LAYOUT = GeneratedLayout("person_keypoints", extra_files=((PERSON_MASK_DIR, ".png"), (PART_MASK_DIR, ".png")))
MASK_IGNORE = 255
# Outline pixels: those the figure's 1-px dark outline (drawn anti-aliased, +0.5 px) covers beyond its fill.
OUTLINE_REACH = 1.5
PEOPLE_COUNT_PROBS = (0.35, 0.3, 0.2, 0.15)  # probability of 1, 2, 3, 4 people in an image
MAX_PEOPLE = len(PEOPLE_COUNT_PROBS)
# Standing height (head top to ankle) of the smallest figures: their boxes are ~40-45 px tall and
# their silhouettes ~32^2 px, the smallest persons COCO labels with keypoints (no area < 32^2).
DEFAULT_MIN_PERSON_HEIGHT = 56.0

# Segment lengths as fractions of standing height, rounded from the Drillis & Contini (1966)
# proportions tabulated in D. A. Winter, "Biomechanics and Motor Control of Human Movement".
TORSO_LEN, NECK_LEN, HEAD_RADIUS = 0.30, 0.05, 0.07
SHOULDER_HALF_WIDTH, HIP_HALF_WIDTH = 0.12, 0.085
UPPER_ARM_LEN, FOREARM_LEN, THIGH_LEN, SHANK_LEN = 0.186, 0.146, 0.245, 0.246

# OpenCV hue (0..180) ranges: left = warm, right = cool, for the whole dataset.
LEFT_HUES, RIGHT_HUES = (0.0, 18.0), (98.0, 122.0)
SUBPIXEL_BITS = 4  # cv2 drawing precision: 1/16 pixel
_SCALE = float(1 << SUBPIXEL_BITS)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that determines the generated bytes (stored in the manifest)."""

    num_train: int = 2000
    num_val: int = 200
    seed: int = 0
    image_size: tuple[int, int] = (256, 256)  # (height, width)
    min_person_height: float = DEFAULT_MIN_PERSON_HEIGHT  # standing height in px

    def __post_init__(self) -> None:
        check_split_sizes("synthetic", self.num_train, self.num_val)
        height, width = self.image_size
        if min(height, width) < 2 * self.min_person_height:
            raise ValueError(
                f"synthetic image_size: {height}x{width} is too small for people of at least "
                f"{self.min_person_height:g} px (need both sides >= {2 * self.min_person_height:g})"
            )

    def manifest(self) -> dict:
        params = asdict(self)
        params["image_size"] = str(InputSize.parse(self.image_size))
        return {"generator_version": GENERATOR_VERSION, "masks_version": MASKS_VERSION, **params}


@dataclass(frozen=True)
class Shape:
    """One filled drawing primitive of a figure, in image pixels.

    kind: "capsule" (points p0, p1; radii r0, r1: a tapered limb with round ends),
    "circle" (points c; radii r), "polygon" (points = the convex outline; radii unused),
    "half_ellipse" (points c, direction of its top; radii (across, along)): hair on the head.
    """

    kind: str
    part: int
    color: tuple[int, int, int]
    points: np.ndarray
    radii: tuple[float, ...] = ()


@dataclass
class Figure:
    keypoints: np.ndarray  # (17, 2) float64 image pixels
    hidden: np.ndarray  # (17,) bool: covered by construction (an ear turned away)
    shapes: list[Shape]
    outline: tuple[int, int, int]


@dataclass(frozen=True)
class PersonLabel:
    keypoints: np.ndarray  # (17, 3) float64 [x, y, v]
    bbox: tuple[float, float, float, float]
    area: float


def _direction(angle_deg: float) -> np.ndarray:
    """Unit vector; 0 deg points down the image (+y), 90 deg to the right (+x), 180 deg up."""
    angle = np.deg2rad(angle_deg)
    return np.array([np.sin(angle), np.cos(angle)])


def _hsv_to_bgr(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    pixel = np.array([[[hue, saturation, value]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0])


def _lighter(color: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(int(round(c + (255 - c) * amount)) for c in color)


@dataclass(frozen=True)
class Appearance:
    """Per-person colours (BGR). Left/right limb hues come from the dataset-wide ranges."""

    left_limb: tuple[int, int, int]
    right_limb: tuple[int, int, int]
    torso: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shoe: tuple[int, int, int]
    outline: tuple[int, int, int]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Random colours for one person; left limbs warm, right limbs cool (flip must matter)."""
    left = _hsv_to_bgr(rng.uniform(*LEFT_HUES), rng.uniform(170, 255), rng.uniform(170, 255))
    right = _hsv_to_bgr(rng.uniform(*RIGHT_HUES), rng.uniform(170, 255), rng.uniform(150, 255))
    torso = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(30, 200), rng.uniform(60, 230))
    skin = _hsv_to_bgr(rng.uniform(6, 18), rng.uniform(60, 160), rng.uniform(90, 240))
    hair = _hsv_to_bgr(rng.uniform(5, 25), rng.uniform(40, 200), rng.uniform(15, 90))
    grey = int(rng.integers(20, 70))
    shoe = (grey, grey, grey)
    dark = int(rng.integers(5, 35))
    return Appearance(left, right, torso, skin, hair, shoe, (dark, dark, dark))


@dataclass(frozen=True)
class Pose:
    """Joint angles in degrees (see _direction) and shape factors of one figure."""

    lean: float  # whole-body rotation
    head_tilt: float
    face_turn: float  # -0.45..0.45: face features shift along the head's right axis
    width_factor: float  # cos(body yaw): narrows shoulders and hips
    arm_abduction: tuple[float, float]  # (left, right), 0 = hanging, 90 = sideways, 180 = up
    elbow_flex: tuple[float, float]  # signed
    arm_length_factor: tuple[float, float]  # < 1: foreshortened towards the camera
    hip_abduction: tuple[float, float]
    knee_flex: tuple[float, float]  # signed
    thigh_length_factor: tuple[float, float]
    shank_absolute: tuple[float | None, float | None]  # sitting: shank angle relative to the body, not the thigh


POSE_MODES = ("stand", "action", "arms_up", "sit", "crouch", "free")
POSE_MODE_PROBS = (0.3, 0.28, 0.1, 0.12, 0.06, 0.14)


def _signed(rng: np.random.Generator, low: float, high: float, inward_prob: float = 0.5) -> float:
    """A flexion magnitude in [low, high] bending inward (+) with the given probability."""
    magnitude = rng.uniform(low, high)
    return magnitude if rng.random() < inward_prob else -magnitude


def sample_pose(rng: np.random.Generator) -> Pose:
    """A plausible random pose from a mixture of activities (keeps the mean-pose baseline weak)."""
    mode = POSE_MODES[rng.choice(len(POSE_MODES), p=POSE_MODE_PROBS)]
    lean_draw = rng.random()
    if lean_draw < 0.78:
        lean = rng.normal(0.0, 6.0)
    elif lean_draw < 0.96:
        lean = rng.uniform(-40.0, 40.0)
    else:
        lean = rng.uniform(-110.0, 110.0)
    arm_abduction: list[float] = []
    elbow_flex: list[float] = []
    hip_abduction: list[float] = []
    knee_flex: list[float] = []
    thigh_factor: list[float] = []
    shank_absolute: list[float | None] = []
    arm_factor = [rng.uniform(0.55, 1.0) if rng.random() < 0.2 else 1.0 for _ in range(2)]
    for _ in range(2):
        if mode == "stand":
            arm_abduction.append(rng.uniform(5, 40))
            elbow_flex.append(_signed(rng, 0, 35, 0.7))
        elif mode == "arms_up":
            arm_abduction.append(rng.uniform(100, 178) if rng.random() < 0.8 else rng.uniform(0, 60))
            elbow_flex.append(_signed(rng, 0, 110, 0.6))
        elif mode == "free":
            arm_abduction.append(rng.uniform(-40, 180))
            elbow_flex.append(_signed(rng, 0, 150))
        else:
            arm_abduction.append(rng.uniform(-30, 110))
            elbow_flex.append(_signed(rng, 0, 130, 0.6))
        if mode == "sit":
            hip_abduction.append(rng.uniform(10, 55))
            thigh_factor.append(rng.uniform(0.25, 0.6))
            knee_flex.append(0.0)
            shank_absolute.append(rng.normal(0.0, 12.0))
        elif mode == "crouch":
            hip_abduction.append(rng.uniform(45, 95))
            thigh_factor.append(rng.uniform(0.6, 0.95))
            knee_flex.append(0.0)
            shank_absolute.append(rng.uniform(-10, 30))
        elif mode == "free":
            hip_abduction.append(rng.uniform(-25, 90))
            thigh_factor.append(rng.uniform(0.5, 1.0))
            knee_flex.append(_signed(rng, 0, 140))
            shank_absolute.append(None)
        elif mode == "action":
            hip_abduction.append(rng.uniform(-15, 45))
            thigh_factor.append(rng.uniform(0.8, 1.0))
            knee_flex.append(_signed(rng, 0, 80, 0.7))
            shank_absolute.append(None)
        else:
            hip_abduction.append(rng.uniform(0, 18))
            thigh_factor.append(1.0)
            knee_flex.append(_signed(rng, 0, 15, 0.7))
            shank_absolute.append(None)
    return Pose(
        lean=float(lean),
        head_tilt=float(rng.normal(0.0, 12.0)),
        face_turn=float(rng.uniform(-0.45, 0.45)),
        width_factor=float(np.cos(np.deg2rad(rng.uniform(0, 55)))),
        arm_abduction=(arm_abduction[0], arm_abduction[1]),
        elbow_flex=(elbow_flex[0], elbow_flex[1]),
        arm_length_factor=(arm_factor[0], arm_factor[1]),
        hip_abduction=(hip_abduction[0], hip_abduction[1]),
        knee_flex=(knee_flex[0], knee_flex[1]),
        thigh_length_factor=(thigh_factor[0], thigh_factor[1]),
        shank_absolute=(shank_absolute[0], shank_absolute[1]),
    )


def build_figure(pose: Pose, appearance: Appearance, height: float, rng: np.random.Generator) -> Figure:
    """Keypoints and drawing primitives of one figure with its pelvis at the origin.

    ``height`` is the standing height in pixels; proportions vary +-8% per person.
    """
    def jitter() -> float:
        return float(rng.uniform(0.92, 1.08))

    h = height
    kps = np.zeros((len(COCO_KEYPOINT_NAMES), 2))
    hidden = np.zeros(len(COCO_KEYPOINT_NAMES), dtype=bool)
    body_down = _direction(pose.lean)
    body_up = -body_down
    body_right = _direction(pose.lean + 90.0)  # the person's left side (front-facing figure)
    pelvis = np.zeros(2)
    neck = pelvis + TORSO_LEN * h * jitter() * body_up
    shoulder_half = SHOULDER_HALF_WIDTH * h * jitter() * pose.width_factor
    hip_half = HIP_HALF_WIDTH * h * jitter() * pose.width_factor
    shoulder_drop = 0.03 * h * body_down
    arm_radius, leg_radius = 0.05 * h * jitter(), 0.066 * h * jitter()
    minimum_radius = 1.2

    def radius(value: float) -> float:
        return max(value, minimum_radius)

    shapes_legs: list[Shape] = []
    shapes_arms: dict[str, list[Shape]] = {}
    limb_color = {"left": appearance.left_limb, "right": appearance.right_limb}
    for side_index, (side, sign) in enumerate((("left", 1.0), ("right", -1.0))):
        color = limb_color[side]
        # Legs.
        hip = pelvis + sign * hip_half * body_right
        thigh_angle = pose.lean + sign * pose.hip_abduction[side_index]
        knee = hip + THIGH_LEN * h * jitter() * pose.thigh_length_factor[side_index] * _direction(thigh_angle)
        absolute = pose.shank_absolute[side_index]
        if absolute is None:
            shank_angle = thigh_angle - sign * pose.knee_flex[side_index]
        else:
            shank_angle = pose.lean + sign * absolute
        ankle = knee + SHANK_LEN * h * jitter() * _direction(shank_angle)
        toe = ankle + 0.06 * h * _direction(shank_angle - sign * 35.0)
        kps[KP[f"{side}_hip"]], kps[KP[f"{side}_knee"]], kps[KP[f"{side}_ankle"]] = hip, knee, ankle
        shapes_legs += [
            Shape("capsule", PART[f"{side}_thigh"], color, np.stack([hip, knee]),
                  (radius(leg_radius), radius(0.82 * leg_radius))),
            Shape("capsule", PART[f"{side}_shank"], _lighter(color, 0.35), np.stack([knee, ankle]),
                  (radius(0.78 * leg_radius), radius(0.6 * leg_radius))),
            Shape("capsule", PART[f"{side}_foot"], appearance.shoe, np.stack([ankle, toe]),
                  (radius(0.55 * leg_radius), radius(0.5 * leg_radius))),
        ]
        # Arms.
        shoulder = neck + sign * shoulder_half * body_right + shoulder_drop
        upper_angle = pose.lean + sign * pose.arm_abduction[side_index]
        arm_factor = pose.arm_length_factor[side_index]
        elbow = shoulder + UPPER_ARM_LEN * h * jitter() * arm_factor * _direction(upper_angle)
        fore_angle = upper_angle - sign * pose.elbow_flex[side_index]
        wrist = elbow + FOREARM_LEN * h * jitter() * arm_factor * _direction(fore_angle)
        hand_radius = radius(0.034 * h)
        hand = wrist + 0.6 * hand_radius * _direction(fore_angle)
        kps[KP[f"{side}_shoulder"]], kps[KP[f"{side}_elbow"]], kps[KP[f"{side}_wrist"]] = shoulder, elbow, wrist
        shapes_arms[side] = [
            Shape("capsule", PART[f"{side}_upper_arm"], color, np.stack([shoulder, elbow]),
                  (radius(arm_radius), radius(0.85 * arm_radius))),
            Shape("capsule", PART[f"{side}_forearm"], _lighter(color, 0.35), np.stack([elbow, wrist]),
                  (radius(0.8 * arm_radius), radius(0.62 * arm_radius))),
            Shape("circle", PART[f"{side}_hand"], appearance.skin, hand[None], (hand_radius,)),
        ]

    # Torso: a convex quad from just outside the shoulders to just outside the hips.
    shoulder_out = radius(0.7 * arm_radius) * body_right
    hip_out = radius(0.8 * leg_radius) * body_right
    torso = np.stack([
        kps[KP["left_shoulder"]] + shoulder_out - 0.4 * shoulder_drop,
        kps[KP["left_hip"]] + hip_out,
        kps[KP["right_hip"]] - hip_out,
        kps[KP["right_shoulder"]] - shoulder_out - 0.4 * shoulder_drop,
    ])

    # Head: tilted relative to the torso; face features shift with the face turn.
    head_angle = pose.lean + 180.0 + pose.head_tilt
    head_up = _direction(head_angle)
    head_right = _direction(head_angle - 90.0)
    head_radius = radius(HEAD_RADIUS * h * jitter())
    head_center = neck + (NECK_LEN * h + 0.9 * head_radius) * head_up
    turn = pose.face_turn
    kps[KP["nose"]] = head_center + head_radius * (0.6 * turn * head_right - 0.12 * head_up)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        kps[KP[f"{side}_eye"]] = head_center + head_radius * ((sign * 0.38 + 0.6 * turn) * head_right + 0.22 * head_up)
        kps[KP[f"{side}_ear"]] = head_center + head_radius * ((sign * 0.95 + 0.3 * turn) * head_right + 0.05 * head_up)
    # Turning the face towards the image right (turn > 0) hides the person's left ear behind the head.
    hidden[KP["left_ear"]] = turn > 0.3
    hidden[KP["right_ear"]] = turn < -0.3
    ear_radius = radius(0.3 * head_radius)
    feature_radius = max(0.12 * head_radius, 0.6)
    head_shapes = [Shape("capsule", PART["neck"], appearance.skin, np.stack([neck, head_center]),
                         (radius(0.5 * head_radius), radius(0.5 * head_radius)))]
    for side in ("left", "right"):
        if not hidden[KP[f"{side}_ear"]]:
            head_shapes.append(Shape("circle", PART[f"{side}_ear"], limb_color[side], kps[KP[f"{side}_ear"]][None],
                                     (ear_radius,)))
    dark_skin = tuple(int(c * 0.6) for c in appearance.skin)
    head_shapes += [
        Shape("circle", PART["head"], appearance.skin, head_center[None], (head_radius,)),
        # Hair: the upper half of an ellipse centred above the eyes, so the head's top is visible.
        Shape("half_ellipse", PART["head"], appearance.hair, np.stack([head_center + 0.32 * head_radius * head_up,
                                                                       head_up]), (head_radius, 0.75 * head_radius)),
        Shape("circle", PART["head"], appearance.outline, kps[KP["left_eye"]][None], (feature_radius,)),
        Shape("circle", PART["head"], appearance.outline, kps[KP["right_eye"]][None], (feature_radius,)),
        Shape("circle", PART["head"], dark_skin, kps[KP["nose"]][None], (feature_radius,)),
    ]

    arm_order = ("left", "right") if rng.random() < 0.5 else ("right", "left")
    shapes = (shapes_legs + [Shape("polygon", PART["torso"], appearance.torso, torso)] + head_shapes
              + shapes_arms[arm_order[0]] + shapes_arms[arm_order[1]])
    return Figure(kps, hidden, shapes, appearance.outline)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _SCALE).astype(np.int32)


def _fixed_radius(value: float) -> int:
    return max(int(round(value * _SCALE)), 1)


def _draw_shape(canvas: np.ndarray, shape: Shape, color, grow: float, line_type: int) -> None:
    """Fill one primitive (enlarged by ``grow`` px: used for the dark outline) on ``canvas``."""
    if shape.kind == "capsule":
        (p0, p1), (r0, r1) = shape.points, shape.radii
        r0, r1 = r0 + grow, r1 + grow
        axis = p1 - p0
        length = float(np.hypot(*axis))
        if length > 1e-6:
            normal = np.array([-axis[1], axis[0]]) / length
            quad = np.stack([p0 + r0 * normal, p1 + r1 * normal, p1 - r1 * normal, p0 - r0 * normal])
            cv2.fillConvexPoly(canvas, _fixed(quad), color, line_type, SUBPIXEL_BITS)
        for center, r in ((p0, r0), (p1, r1)):
            cv2.circle(canvas, tuple(_fixed(center)), _fixed_radius(r), color, -1, line_type, SUBPIXEL_BITS)
    elif shape.kind == "circle":
        cv2.circle(canvas, tuple(_fixed(shape.points[0])), _fixed_radius(shape.radii[0] + grow), color, -1,
                   line_type, SUBPIXEL_BITS)
    elif shape.kind == "half_ellipse":
        center, up = shape.points
        # cv2.ellipse angles: rotate the unrotated top half (180..360 deg) so that it faces ``up``.
        rotation = 180.0 - float(np.rad2deg(np.arctan2(up[0], up[1])))
        axes = (_fixed_radius(shape.radii[0] + grow), _fixed_radius(shape.radii[1] + grow))
        cv2.ellipse(canvas, tuple(_fixed(center)), axes, rotation, 180, 360, color, -1, line_type, SUBPIXEL_BITS)
    elif shape.kind == "polygon":
        points = _fixed(shape.points)
        if grow > 0:
            thickness = max(int(round(2 * grow)), 1)
            cv2.polylines(canvas, [points], True, color, thickness, line_type, SUBPIXEL_BITS)
        cv2.fillConvexPoly(canvas, points, color, line_type, SUBPIXEL_BITS)
    else:
        raise ValueError(f"synthetic shape: unknown kind {shape.kind!r}")


def textured_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Gradient + blotchy low-frequency noise + random shapes/stripes + grain (BGR uint8)."""
    height, width = size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.float32(np.cos(angle)) * np.linspace(0, 1, width, dtype=np.float32)[None, :]
            + np.float32(np.sin(angle)) * np.linspace(0, 1, height, dtype=np.float32)[:, None])
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    color_a, color_b = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    image = color_a + ramp[..., None] * (color_b - color_a)
    # Blotches: mostly brightness, some colour, so the figures stay the most saturated things.
    cells = int(rng.integers(3, 10))
    brightness = rng.normal(0.0, rng.uniform(8, 30), size=(cells, cells, 1))
    tint = rng.normal(0.0, rng.uniform(3, 15), size=(cells, cells, 3))
    blotches = (brightness + tint).astype(np.float32)
    image += cv2.resize(blotches, (width, height), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(0, 4)
        x0, y0 = int(rng.integers(-width // 4, width)), int(rng.integers(-height // 4, height))
        extent = int(rng.integers(min(height, width) // 10, min(height, width) // 2))
        if kind == 0:
            cv2.rectangle(image, (x0, y0), (x0 + extent, y0 + int(rng.integers(5, extent + 6))), color, -1)
        elif kind == 1:
            cv2.circle(image, (x0, y0), extent // 2, color, -1, cv2.LINE_AA)
        elif kind == 2:
            x1, y1 = x0 + int(rng.integers(-extent, extent + 1)), y0 + int(rng.integers(-extent, extent + 1))
            cv2.line(image, (x0, y0), (x1, y1), color, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            _stripes(image, rng, (x0, y0, extent, extent), color)
    # Luminance grain (one channel, broadcast): sensor-like and a third of the random numbers.
    grain = rng.standard_normal(size=(height, width, 1), dtype=np.float32) * np.float32(rng.uniform(2, 9))
    image = np.clip(image + grain, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))


def _stripes(image: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int], color) -> None:
    x0, y0, box_w, box_h = box
    period = int(rng.integers(4, 14))
    horizontal = rng.random() < 0.5
    for offset in range(0, box_h if horizontal else box_w, period):
        if horizontal:
            cv2.line(image, (x0, y0 + offset), (x0 + box_w, y0 + offset), color, max(period // 3, 1))
        else:
            cv2.line(image, (x0 + offset, y0), (x0 + offset, y0 + box_h), color, max(period // 3, 1))


def _place(keypoints_extent: tuple[np.ndarray, np.ndarray], size: tuple[int, int], truncate: bool,
           rng: np.random.Generator) -> np.ndarray:
    """Offset that puts a figure with the given (min, max) extent into the image (or across its border)."""
    (low, high), (height, width) = keypoints_extent, size
    offset = np.zeros(2)
    for axis, limit in ((0, width), (1, height)):
        span = high[axis] - low[axis]
        if truncate:
            # Up to ~45% of the span may fall outside on one side.
            start = rng.uniform(-0.45 * span, limit - 0.55 * span)
        elif span < limit:
            start = rng.uniform(0, limit - span)
        else:
            start = (limit - span) / 2 + rng.uniform(-0.1, 0.1) * (span - limit)
        offset[axis] = start - low[axis]
    return offset


def _figure_extent(figure: Figure) -> tuple[np.ndarray, np.ndarray]:
    lows, highs = [], []
    for shape in figure.shapes:
        reach = max(shape.radii) if shape.radii and shape.kind != "polygon" else 0.0
        centres = shape.points[:1] if shape.kind == "half_ellipse" else shape.points
        lows.append(centres.min(axis=0) - reach)
        highs.append(centres.max(axis=0) + reach)
    return np.min(lows, axis=0), np.max(highs, axis=0)


def _translate(figure: Figure, offset: np.ndarray) -> Figure:
    shapes = [
        Shape(s.kind, s.part, s.color,
              np.stack([s.points[0] + offset, s.points[1]]) if s.kind == "half_ellipse" else s.points + offset,
              s.radii)
        for s in figure.shapes
    ]
    return Figure(figure.keypoints + offset, figure.hidden, shapes, figure.outline)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True)
class Scene:
    """One rendered image with its keypoint labels and segmentation masks."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    people: list[PersonLabel]  # the people that show, in drawing order
    person_mask: np.ndarray  # (H, W) uint8: 0 background, 1 person, MASK_IGNORE on outlines
    part_mask: np.ndarray  # (H, W) uint8: 0 background, 1 + PARTS index, MASK_IGNORE on outlines


def render_image(rng: np.random.Generator, size: tuple[int, int],
                 min_person_height: float = DEFAULT_MIN_PERSON_HEIGHT) -> Scene:
    """Draw one scene: background, 1-4 people (nearer = larger = drawn later), maybe occluders."""
    height, width = size
    image = textured_background(rng, size)
    label_map = np.zeros(size, dtype=np.uint8)
    # The same labels drawn with each shape grown by its outline: where the two maps differ, the
    # pixel shows an outline (see segmentation_masks).
    outline_map = np.zeros(size, dtype=np.uint8)
    num_people = 1 + int(rng.choice(MAX_PEOPLE, p=PEOPLE_COUNT_PROBS))
    max_height = min(height, width) * (0.95 if num_people == 1 else 0.75 if num_people == 2 else 0.6)
    max_height = max(max_height, min_person_height * 1.5)
    heights = np.sort(np.exp(rng.uniform(np.log(min_person_height), np.log(max_height), size=num_people)))
    figures: list[Figure] = []
    silhouettes: list[np.ndarray] = []
    placed_boxes: list[np.ndarray] = []
    for slot, person_height in enumerate(heights):
        figure = build_figure(sample_pose(rng), sample_appearance(rng), float(person_height), rng)
        extent = _figure_extent(figure)
        truncate = rng.random() < 0.25
        for _attempt in range(8):
            offset = _place(extent, size, truncate, rng)
            box = np.concatenate([extent[0] + offset, extent[1] + offset])
            if all(_box_iou(box, other) < 0.3 for other in placed_boxes):
                break
        placed_boxes.append(box)
        figure = _translate(figure, offset)
        silhouette = np.zeros(size, dtype=np.uint8)
        for shape in figure.shapes:
            _draw_shape(image, shape, figure.outline, 1.0, cv2.LINE_AA)
            _draw_shape(image, shape, shape.color, 0.0, cv2.LINE_AA)
            code = slot * LABELS_PER_PERSON + shape.part + 1
            _draw_shape(label_map, shape, code, 0.0, cv2.LINE_8)
            _draw_shape(outline_map, shape, code, OUTLINE_REACH, cv2.LINE_8)
            _draw_shape(silhouette, shape, 1, 0.0, cv2.LINE_8)
        figures.append(figure)
        silhouettes.append(silhouette)
    for _ in range(int(rng.choice([0, 1, 2], p=[0.6, 0.28, 0.12]))):
        corners = _draw_occluder(image, placed_boxes[int(rng.integers(len(placed_boxes)))], rng)
        for canvas in (label_map, outline_map):
            cv2.rectangle(canvas, corners[:2], corners[2:], OCCLUDER_LABEL, -1)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 0.9))
    labels = [_label_person(slot, figure, silhouette, label_map)
              for slot, (figure, silhouette) in enumerate(zip(figures, silhouettes)) if silhouette.any()]
    person_mask, part_mask = segmentation_masks(label_map, outline_map)
    return Scene(image, labels, person_mask, part_mask)


def segmentation_masks(label_map: np.ndarray, outline_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(person mask, part mask) from the fill and outline-grown label maps (codes as ``label_map``).

    A pixel is ignored (MASK_IGNORE) in the person mask where the maps disagree on person vs not
    (the outer outline), in the part mask wherever they disagree (also outlines between parts or people).
    Occluders are background.
    """
    person = (label_map != 0) & (label_map != OCCLUDER_LABEL)
    person_grown = (outline_map != 0) & (outline_map != OCCLUDER_LABEL)
    person_mask = np.where(person != person_grown, MASK_IGNORE, person).astype(np.uint8)
    part = np.where(person, (label_map.astype(np.int16) - 1) % LABELS_PER_PERSON + 1, 0)
    part_mask = np.where(label_map != outline_map, MASK_IGNORE, part).astype(np.uint8)
    return person_mask, part_mask


def _draw_occluder(image: np.ndarray, person_box: np.ndarray,
                   rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A textured rectangle over part of a person (its joints there become v=1); returns its corners."""
    x0, y0, x1, y1 = person_box
    span = max(x1 - x0, y1 - y0)
    occ_w, occ_h = rng.uniform(0.2, 0.5, size=2) * span
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    corners = (int(cx - occ_w / 2), int(cy - occ_h / 2), int(cx + occ_w / 2), int(cy + occ_h / 2))
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    cv2.rectangle(image, corners[:2], corners[2:], color, -1)
    if rng.random() < 0.5:
        stripe_color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        box = (corners[0], corners[1], corners[2] - corners[0], corners[3] - corners[1])
        _stripes(image, rng, box, stripe_color)
        cv2.rectangle(image, corners[:2], corners[2:], color, 2)
    return corners


def _label_person(slot: int, figure: Figure, silhouette: np.ndarray, label_map: np.ndarray) -> PersonLabel:
    height, width = label_map.shape
    keypoints = np.zeros((len(COCO_KEYPOINT_NAMES), 3))
    for joint, (x, y) in enumerate(np.round(figure.keypoints, 2)):
        if not (0.0 <= x <= width - 1 and 0.0 <= y <= height - 1):
            continue  # truncated: v=0, x=y=0
        code = int(label_map[int(round(y)), int(round(x))])
        owner, part = divmod(code - 1, LABELS_PER_PERSON)
        visible = (not figure.hidden[joint] and code not in (0, OCCLUDER_LABEL) and owner == slot
                   and part in JOINT_PARTS[joint])
        keypoints[joint] = (x, y, 2.0 if visible else 1.0)
    ys, xs = np.nonzero(silhouette)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    bbox = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    return PersonLabel(keypoints, bbox, float(len(xs)))


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def _generate_one(args: tuple[SyntheticConfig, str, int, Path]) -> tuple[dict, list[PersonLabel]]:
    """Render, write and describe image ``index`` of ``split`` (picklable for worker processes)."""
    config, split, index, root = args
    image_id = SPLIT_ID_OFFSET[split] + index + 1
    scene = render_image(_image_rng(config.seed, split, index), config.image_size, config.min_person_height)
    file_name = write_jpeg(scene.image, image_dir(root, split), image_id, "synthetic")
    write_png(scene.person_mask, mask_dir(root, split), image_id, "synthetic")
    write_png(scene.part_mask, mask_dir(root, split, parts=True), image_id, "synthetic")
    height, width = config.image_size
    record = {"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 1}
    return record, scene.people


def image_dir(root: Path, split: str) -> Path:
    """Folder of the JPEGs of ``split``."""
    return LAYOUT.image_dir(Path(root), split)


def mask_dir(root: Path, split: str, parts: bool = False) -> Path:
    """Folder of the person masks (or, with ``parts``, the body-part masks) of ``split``; one PNG per image stem."""
    return Path(root) / (PART_MASK_DIR if parts else PERSON_MASK_DIR) / split


def coco_person_category() -> dict:
    """The COCO person category with keypoint names and the 1-based skeleton."""
    return {"supercategory": "person", "id": 1, "name": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": [list(limb) for limb in COCO_SKELETON]}


def generate_split(root: Path, split: str, config: SyntheticConfig, workers: int = 1) -> Path:
    """Write ``images/<split>/*.jpg``, the mask PNGs and ``annotations/person_keypoints_<split>.json``;
    return the JSON path."""
    count = config.num_train if split == "train" else config.num_val
    for folder, _ in LAYOUT.per_image_dirs(root, split):
        folder.mkdir(parents=True, exist_ok=True)
    results = map_jobs(_generate_one, [(config, split, index, root) for index in range(count)], workers)
    images, annotations = [], []
    annotation_id = SPLIT_ID_OFFSET[split]
    for record, people in results:
        images.append(record)
        for person in people:
            annotation_id += 1
            annotations.append({
                "id": annotation_id, "image_id": record["id"], "category_id": 1, "iscrowd": 0,
                "bbox": [round(v, 2) for v in person.bbox], "area": round(person.area, 2),
                "num_keypoints": int((person.keypoints[:, 2] > 0).sum()),
                "keypoints": [round(float(v), 2) for v in person.keypoints.reshape(-1)],
            })
    dataset = {
        "info": {"description": "hrnet-train synthetic people", "version": str(GENERATOR_VERSION),
                 "seed": config.seed, "split": split},
        "licenses": [{"id": 1, "name": "CC0 1.0 (generated)",
                      "url": "https://creativecommons.org/publicdomain/zero/1.0/"}],
        "images": images, "annotations": annotations, "categories": [coco_person_category()],
    }
    return LAYOUT.write_annotations(root, split, dataset)


def generate_dataset(root: Path, config: SyntheticConfig, workers: int = 1) -> Path:
    """(Re)generate the whole dataset under ``root``; the manifest is written last."""
    return LAYOUT.generate(root, config.manifest(), lambda split: generate_split(Path(root), split, config, workers))


def _is_complete(root: Path, config: SyntheticConfig) -> bool:
    return LAYOUT.is_complete(root, config.manifest(), {"train": config.num_train, "val": config.num_val})


def ensure_synthetic_dataset(root: Path | str | None = None, num_train: int = 2000, num_val: int = 200,
                             seed: int = 0, image_size: tuple[int, int] | str = (256, 256),
                             min_person_height: float = DEFAULT_MIN_PERSON_HEIGHT, workers: int = 1) -> Path:
    """Return ``root`` holding the synthetic dataset, generating it only when missing or stale.

    Stale = the manifest's parameters (or generator version) differ, or files are missing.
    ``root`` defaults to ``data/synthetic`` in the checkout.
    """
    root = Path(root) if root is not None else data_dir() / "synthetic"
    config = SyntheticConfig(num_train=num_train, num_val=num_val, seed=seed,
                             image_size=InputSize.parse(image_size, field="synthetic image_size"),
                             min_person_height=float(min_person_height))
    if not _is_complete(root, config):
        generate_dataset(root, config, workers)
    return root


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.data.synthetic",
    summary="Generate the synthetic people dataset (COCO keypoint JSON + JPEGs), byte-identical for the same options.",
    options=(
        Option("output_dir", "dataset folder (default: the data dir's synthetic/)"),
        Option("num_train", "train images", int, "2000"),
        Option("num_val", "val images", int, "200"),
        Option("seed", "generator seed", int, "0"),
        Option("image_size", "HxW", lambda v: InputSize.parse(v, "image_size"), "256x256"),
        Option("min_person_height", "smallest figure in pixels", float, str(DEFAULT_MIN_PERSON_HEIGHT)),
        Option("workers", "generator processes", int, "1"),
        Option("force", "regenerate even when up to date", lambda v: parse_bool(v, "force"), "false"),
    ),
    examples=("python -m hrnet_train.data.synthetic output_dir=data/synthetic num_train=2000 num_val=200 workers=2",),
)


def main(argv: Sequence[str] | None = None) -> None:
    args = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    root = Path(args["output_dir"] or data_dir() / "synthetic")
    try:
        config = SyntheticConfig(
            num_train=args["num_train"], num_val=args["num_val"], seed=args["seed"], image_size=args["image_size"],
            min_person_height=args["min_person_height"],
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    start = time.perf_counter()
    if args["force"] or not _is_complete(root, config):
        generate_dataset(root, config, args["workers"])
        print(f"synthetic: wrote {config.num_train} train + {config.num_val} val images to {root} "
              f"in {time.perf_counter() - start:.1f} s")
    else:
        print(f"synthetic: {root} is up to date ({MANIFEST_NAME} matches)")


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
