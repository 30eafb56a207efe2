"""Training augmentation of the official top-down pipeline (spec 3.4 steps 2-5) plus optional extras.

The geometric part only *samples parameters* (center, scale, rotation, flip): the dataset then builds
one affine crop from them, so the same draws drive our pipeline and the reference re-implementation in
``benchmarks/data_pipeline.py``. Random numbers come from one numpy ``Generator`` passed in, drawn in the
reference order (half-body, scale, rotation, flip) so a seed reproduces a sample exactly.
``sampling="face"`` draws the official face recipe instead (spec A.9; ``FACE_AUGMENT``): no half-body,
scale x U(1-f, 1+f), rotation U(-r, r) with probability ``prob_rotation``, flip, in that order.

Options beyond the reference, all off by default (RTMPose, Jiang et al. 2023, uses each of them):

* ``scale_range`` / ``max_rotation``: RTMPose's draws (mmpose ``RandomBBoxTransform``): scale factor
  from a normal truncated to the range (mean its middle, sd half its width; RTMPose 0.6-1.4), rotation
  from a normal truncated to +-``max_rotation`` degrees with that sd (RTMPose 80), instead of the
  reference's clipped normals.
* box jitter (``prob_box_jitter``): the person box is enlarged by U(``box_jitter_scale``) and its
  centre moved by U(-s, s) x box size per axis (s = ``box_jitter_shift``) before the crop, so the
  model also sees loose, off-centre boxes as whole-frame crops and detector boxes give them.
* photometric and occlusion (albumentations ``CoarseDropout``) act on the uint8 crop after the warp;
  a joint under a hole keeps its label (the model learns to infer occluded joints).
* two stages (``stage2_epochs``, ``stage2``): the last N epochs use the ``stage2`` field overrides,
  e.g. gentler geometry and less dropout (RTMPose's last 30 of 420 epochs: rotation 60, scale
  0.75-1.25, no shift, dropout p 0.5); :meth:`AugmentConfig.for_epoch` picks the stage.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from hrnet_train.geometry import PIXEL_STD
from hrnet_train.keypoints import KeypointSet



SAMPLINGS = ("pose", "face")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation factors; defaults are the HRNet COCO yaml values (spec 3.4, 5.2)."""

    # "pose": the pose reference's draws (below); "face": the official face recipe's uniform draws (spec A.9).
    sampling: str = "pose"
    scale_factor: float = 0.35  # pose: s *= clip(N(0,1)*f + 1, 1-f, 1+f); face: s *= U(1-f, 1+f)
    rot_factor: float = 45.0  # pose: r = clip(N(0,1)*f, -2f, 2f) degrees; face: r = U(-f, f)
    prob_rotation: float = 0.6  # reference: random.random() <= 0.6
    flip: bool = True
    prob_flip: float = 0.5  # reference: random.random() <= 0.5
    prob_half_body: float = 0.3
    num_joints_half_body: int = 8  # half-body only when MORE than this many joints are labelled
    half_body_padding: float = 1.5
    # Reference picks the upper body when randn() < 0.5 (P ~ 0.69, spec 9.4); True makes it 50/50.
    half_body_fair_choice: bool = False
    # Photometric (albumentations, on the crop): brightness/contrast/hue jitter and Gaussian blur.
    photometric: bool = False
    brightness: float = 0.2
    contrast: float = 0.2
    hue: float = 0.02  # fraction of the hue circle
    prob_color: float = 0.5
    prob_blur: float = 0.1
    # Occlusion (albumentations CoarseDropout on the crop): min_holes..max_holes black rectangles.
    occlusion: bool = False
    prob_occlusion: float = 0.3
    min_holes: int = 1
    max_holes: int = 3
    min_hole_fraction: float = 0.05  # hole side as a fraction of the crop side (RTMPose: 0.2-0.4, one hole)
    max_hole_fraction: float = 0.25
    # RTMPose's truncated-normal draws instead of the reference's clipped ones (None = reference).
    scale_range: tuple[float, ...] | None = None  # [low, high] scale factors, e.g. [0.6, 1.4]
    max_rotation: float | None = None  # degrees, e.g. 80
    # Box jitter before the crop: box x U(box_jitter_scale), centre + U(-s, s) x box size (s = box_jitter_shift).
    prob_box_jitter: float = 0.0
    box_jitter_scale: tuple[float, ...] = (1.0, 1.0)
    box_jitter_shift: float = 0.0
    # Two stages: the last stage2_epochs epochs use these field overrides (e.g. {max_rotation: 60}).
    stage2_epochs: int = 0
    stage2: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"AugmentConfig.sampling: expected one of {SAMPLINGS}, got {self.sampling!r}")
        for name in ("scale_factor", "rot_factor", "half_body_padding", "brightness", "contrast", "hue", "box_jitter_shift"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("prob_rotation", "prob_flip", "prob_half_body", "prob_color", "prob_blur", "prob_occlusion", "prob_box_jitter"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name}: expected a probability in [0, 1], got {value}")
        if self.scale_factor >= 1.0:
            raise ValueError(f"AugmentConfig.scale_factor: must be < 1 (scale must stay positive), got {self.scale_factor}")
        if not 1 <= self.min_holes <= self.max_holes or not 0.0 < self.min_hole_fraction <= self.max_hole_fraction <= 1.0:
            raise ValueError(
                f"AugmentConfig: expected 1 <= min_holes <= max_holes and 0 < min_hole_fraction <= max_hole_fraction <= 1, "
                f"got {self.min_holes}, {self.max_holes}, {self.min_hole_fraction}, {self.max_hole_fraction}"
            )
        if self.scale_range is not None:
            object.__setattr__(self, "scale_range", _positive_range(self.scale_range, "scale_range"))
        object.__setattr__(self, "box_jitter_scale", _positive_range(self.box_jitter_scale, "box_jitter_scale"))
        if self.max_rotation is not None and not 0.0 <= self.max_rotation <= 180.0:
            raise ValueError(f"AugmentConfig.max_rotation: expected degrees in [0, 180], got {self.max_rotation}")
        if self.stage2_epochs < 0:
            raise ValueError(f"AugmentConfig.stage2_epochs: must be >= 0, got {self.stage2_epochs}")
        nested = sorted({"stage2", "stage2_epochs"} & set(self.stage2))
        if nested:
            raise ValueError(f"AugmentConfig.stage2: {nested} cannot be set inside stage2")
        if self.stage2:
            self._stage2_config()  # unknown keys and bad values fail now, not when stage 2 starts

    def _stage2_config(self) -> AugmentConfig:
        try:
            return replace(self, stage2_epochs=0, stage2={}, **self.stage2)
        except TypeError:
            known = {f.name for f in fields(self)} - {"stage2", "stage2_epochs"}
            raise ValueError(f"AugmentConfig.stage2: unknown key(s) {sorted(set(self.stage2) - known)}; known: {sorted(known)}") from None

    def for_epoch(self, epoch: int, max_epochs: int | None) -> AugmentConfig:
        """The settings in force in ``epoch`` (0-based) of ``max_epochs``: ``stage2`` applied in the last
        ``stage2_epochs`` epochs, else these (also when the run length is unknown, ``max_epochs`` None or < 1)."""
        if self.stage2_epochs == 0 or max_epochs is None or max_epochs < 1 or epoch < max_epochs - self.stage2_epochs:
            return self
        return self._stage2_config()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> AugmentConfig:
        """Build from a config mapping (Hydra node or dict); unknown keys are an error, not ignored."""
        if values is None:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"augment: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


def _positive_range(values: Sequence[float], name: str) -> tuple[float, float]:
    bounds = tuple(float(v) for v in values)
    if len(bounds) != 2 or not 0.0 < bounds[0] <= bounds[1]:
        raise ValueError(f"AugmentConfig.{name}: expected [low, high] with 0 < low <= high, got {list(values)}")
    return bounds  # type: ignore[return-value]


def truncated_normal(rng: np.random.Generator) -> float:
    """A standard normal draw truncated to [-1, 1] by resampling (not clipping, which would pile up
    mass at the bounds): the draw of mmpose's ``RandomBBoxTransform`` that RTMPose uses."""
    while True:
        value = float(rng.standard_normal())
        if -1.0 <= value <= 1.0:
            return value


# The official face recipe (spec A.9: SCALE_FACTOR 0.25, ROT_FACTOR 30, rotation p 0.6, FLIP true).
FACE_AUGMENT = AugmentConfig(sampling="face", scale_factor=0.25, rot_factor=30.0, prob_rotation=0.6, flip=True,
                             prob_flip=0.5, prob_half_body=0.0)


@dataclass(frozen=True)
class AugmentParams:
    """One sample's geometric augmentation: crop box (before flip), rotation in degrees, flip."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flip: bool


def half_body_box(
    joints: np.ndarray,
    visible: np.ndarray,
    keypoints: KeypointSet,
    aspect_ratio: float,
    padding: float,
    choose_upper: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Reference ``half_body_transform``: a box around the labelled upper or lower body joints.

    Joints outside ``upper_body_ids`` count as lower body (as in the reference). Computed in float32
    like the reference so the resulting crop matches it bit for bit. None when < 2 joints are selected.
    """
    labelled = visible > 0
    upper_mask = np.zeros(len(joints), dtype=bool)
    upper_mask[list(keypoints.upper_body_ids)] = True
    upper = joints[labelled & upper_mask]
    lower = joints[labelled & ~upper_mask]
    if choose_upper and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    selected = np.asarray(selected[:, :2], dtype=np.float32)
    center = selected.mean(axis=0)
    width, height = selected.max(axis=0) - selected.min(axis=0)
    if width > aspect_ratio * height:
        height = width / aspect_ratio
    elif width < aspect_ratio * height:
        width = height * aspect_ratio
    scale = np.array([width / PIXEL_STD, height / PIXEL_STD], dtype=np.float32) * padding
    return center.astype(np.float64), scale.astype(np.float64)


def sample_augmentation(
    rng: np.random.Generator,
    joints: np.ndarray,
    visible: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    keypoints: KeypointSet,
    config: AugmentConfig,
    aspect_ratio: float,
) -> AugmentParams:
    """Draw one sample's half-body / box jitter / scale / rotation / flip in the reference order (spec
    3.4 2-5; box jitter, off by default, draws nothing when off; face sampling: spec A.9, no half-body)."""
    center = np.array(center, dtype=np.float64)
    scale = np.array(scale, dtype=np.float64)
    if config.sampling == "face":
        scale = scale * float(rng.uniform(1.0 - config.scale_factor, 1.0 + config.scale_factor))
        rotation = float(rng.uniform(-config.rot_factor, config.rot_factor)) if rng.random() <= config.prob_rotation else 0.0
        return AugmentParams(center=center, scale=scale, rotation=rotation,
                             flip=bool(config.flip and rng.random() <= config.prob_flip))
    if int(np.sum(visible > 0)) > config.num_joints_half_body and rng.random() < config.prob_half_body:
        choose_upper = rng.random() < 0.5 if config.half_body_fair_choice else rng.standard_normal() < 0.5
        box = half_body_box(joints, visible, keypoints, aspect_ratio, config.half_body_padding, choose_upper)
        if box is not None:
            center, scale = box
    if config.prob_box_jitter > 0.0 and rng.random() < config.prob_box_jitter:
        scale = scale * rng.uniform(*config.box_jitter_scale)
        center = center + rng.uniform(-1.0, 1.0, 2) * config.box_jitter_shift * scale * PIXEL_STD
    sf, rf = config.scale_factor, config.rot_factor
    if config.scale_range is None:
        scale = scale * float(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    else:
        low, high = config.scale_range
        scale = scale * ((low + high) / 2.0 + truncated_normal(rng) * (high - low) / 2.0)
    rotation = 0.0
    if rng.random() <= config.prob_rotation:
        if config.max_rotation is None:
            rotation = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
        else:
            rotation = truncated_normal(rng) * config.max_rotation
    flip = bool(config.flip and rng.random() <= config.prob_flip)
    return AugmentParams(center=center, scale=scale, rotation=rotation, flip=flip)


def flip_joints(
    joints: np.ndarray, visible: np.ndarray, image_width: int, keypoints: KeypointSet, offset: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``fliplr_joints``: mirror x (W - offset - x; 1 = the pose reference's exact W-1-x, 0 = the
    official face code's W - x), swap left/right, zero unlabelled joints."""
    flipped = joints.copy()
    flipped[:, 0] = image_width - offset - flipped[:, 0]
    index = keypoints.flip_index
    flipped_visible = visible[index]
    flipped = flipped[index] * flipped_visible[:, None]
    return flipped, flipped_visible


def build_crop_augmentation(config: AugmentConfig):  # -> albumentations.Compose | None
    """The optional photometric/occlusion pipeline on the uint8 crop, or None when both are off.

    Built once per dataset; its randomness is bound to the dataset's Generator by
    :func:`bind_crop_augmentation_rng`.
    """
    if not (config.photometric or config.occlusion):
        return None
    import albumentations as A  # imported lazily: only needed when these options are on

    steps = []
    if config.photometric:
        steps += PhotometricJitter(config.brightness, config.contrast, config.hue, config.prob_color, config.prob_blur).steps()
    if config.occlusion:
        steps.append(
            A.CoarseDropout(
                num_holes_range=(config.min_holes, config.max_holes),
                hole_height_range=(config.min_hole_fraction, config.max_hole_fraction),
                hole_width_range=(config.min_hole_fraction, config.max_hole_fraction),
                fill=0,
                p=config.prob_occlusion,
            )
        )
    return A.Compose(steps)


@dataclass(frozen=True)
class PhotometricJitter:
    """Colour jitter (brightness/contrast/hue, no saturation) then a light Gaussian blur: the optional
    photometric augmentation of pose crops (flat fields of :class:`AugmentConfig`) and segmentation crops."""

    brightness: float = 0.2
    contrast: float = 0.2
    hue: float = 0.02  # fraction of the hue circle
    prob_color: float = 0.5
    prob_blur: float = 0.1

    def __post_init__(self) -> None:
        if min(self.brightness, self.contrast, self.hue) < 0 or not (0 <= self.prob_color <= 1 and 0 <= self.prob_blur <= 1):
            raise ValueError(f"photometric: factors must be >= 0 and probabilities in [0, 1], got {self}")

    def steps(self) -> list:
        """The albumentations transforms (imported lazily: only needed when this augmentation is on)."""
        import albumentations as A

        return [
            A.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=0.0, hue=self.hue,
                          p=self.prob_color),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.5, 1.5), p=self.prob_blur),
        ]


def bind_crop_augmentation_rng(pipeline: Any, rng: np.random.Generator) -> None:
    """Make albumentations draw from ``rng`` (and a python Random seeded from it) for reproducibility."""
    if pipeline is not None:
        pipeline.set_random_state(rng, random.Random(int(rng.integers(2**63))))
