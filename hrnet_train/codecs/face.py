"""The official HRNet face-landmark codec (HRNet-Facial-Landmark-Detection, spec A.10-A.12, D.8-D.13).

Geometry: ``h = 200 * scale`` (scale already x1.25 and augmented). Landmarks use the official
``get_transform``: ``u = R/h (x - cx) + R/2`` (same for y), then a rotation about the output centre,
content turning counter-clockwise for a positive angle; this is the reference "size" convention, so
``pixel_convention`` is ``"size"``. The IMAGE is cropped the official way (``crop``: a pre-shrink when
h/R >= 2, an integer window from ``transform_pixel``, padding, rotation about the canvas centre,
resize), written here as ONE affine warp (:meth:`FaceCodec.image_transform`, bilinear sampling, zero
fill) without the official min-max contrast stretch of the removed ``scipy.misc`` functions, as the
spec recommends (A.10, D.8). Not modelled: PIL's antialiasing filter when the resize shrinks, and the
official all-zero crop when the pre-shrunk image would be under 2 px.

Targets (``target="official"``, A.11): the landmark's heatmap cell is ``trunc(u / stride)`` (truncation,
not rounding: cell u stands for [u, u+1)); the (6 sigma + 1)-wide reference patch is pasted with its
corner at ``trunc(u - 3 sigma)``, so sigma 1.5 gives the asymmetric 10x10 patch and moves the peak one
cell right/down within 4 cells of the top/left border (D.9); sigma 1.0 (300W) is exact. Points the
dataset marks missing (annotation y <= 0) get an all-zero map. There are no target weights: every map,
empty or not, enters the loss (D.11), so ``target_weight`` is all ones. ``target="subpixel"`` (an
option, not official) puts an unbiased Gaussian at the exact position ``u - 0.5`` instead, for DARK.

Decoding (``decode="official"``, A.12): argmax, a quarter cell towards the higher neighbour where
1 <= px, py <= size-2, + 0.5, and :meth:`FaceCodec.to_image` maps back with the integer step of the
official ``transform_pixel`` (trunc, + 1): predictions are whole pixels, +0.5 px biased (D.10).
``decode="dark"``: DARK's modulated Taylor step (continuous, Zhang et al. CVPR 2020) + 0.5 and a
continuous back-projection.

Flip (D.13): the official code mirrors landmark x and the centre as ``W - x`` while the image is
reversed exactly (``np.fliplr``), so flipped samples carry a one-pixel label shift;
``flip="official"`` keeps that (``image_flip_offset`` 0), ``flip="exact"`` mirrors ``W - 1 - x`` like the
pose code (right for 0-based pixel-centre coordinates). The official recipe has no flip test; ``flip_back``
works as for the other codecs (``flip_shift`` off by default).
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec, argmax_peaks, coords_to_image, encode_inputs
from hrnet_train.codecs.dark import modulated_taylor_decode, subpixel_gaussian_targets
from hrnet_train.codecs.legacy import paste_patches, quarter_offset_signs, reference_gaussian_patch
from hrnet_train.geometry import PIXEL_STD, affine_points, invert_affine

FACE_TARGETS = ("official", "subpixel")
FACE_DECODES = ("official", "dark")
FACE_FLIPS = ("official", "exact")


def _box_side(scale: np.ndarray | float) -> float:
    """``h = 200 * scale``; the face code's scale is one number (a square box), s_w of a (2,) array."""
    return PIXEL_STD * float(np.ravel(scale)[0])


def official_face_transform(center: np.ndarray, scale: np.ndarray | float, size: int, rot: float = 0.0) -> np.ndarray:
    """The official face ``get_transform`` as a 2x3 float64 image -> output matrix (spec A.10).

    ``u = size/h * x + size * (0.5 - cx/h)`` (same for y); with ``rot`` (degrees) the result is then
    rotated about (size/2, size/2) by -rot with [[cos, -sin], [sin, cos]] (image axes, y down).
    """
    h = _box_side(scale)
    cx, cy = (float(v) for v in np.ravel(center)[:2])
    matrix = np.array([[size / h, 0.0, size * (0.5 - cx / h)], [0.0, size / h, size * (0.5 - cy / h)], [0.0, 0.0, 1.0]])
    if rot != 0:
        theta = math.radians(-rot)
        cos, sin = math.cos(theta), math.sin(theta)
        half = size / 2.0
        to_origin = np.array([[1.0, 0.0, -half], [0.0, 1.0, -half], [0.0, 0.0, 1.0]])
        back = np.array([[1.0, 0.0, half], [0.0, 1.0, half], [0.0, 0.0, 1.0]])
        rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        matrix = back @ rotation @ to_origin @ matrix
    return matrix[:2]


def official_image_transform(
    center: np.ndarray, scale: np.ndarray | float, size: int, rot: float, image_size: tuple[int, int]
) -> np.ndarray:
    """The official face ``crop`` (spec A.10 steps 1-6) as one 2x3 float64 image -> crop affine.

    Built as crop pixel -> source pixel (0-based pixel centres), composed right to left: PIL's bilinear
    resize of the window (crop pixel o samples window position (o + 0.5) * extent / size - 0.5), the
    ``pad`` border cut after rotating, the rotation about the padded canvas centre ((n - 1) / 2, content
    counter-clockwise for positive ``rot`` as PIL's ``rotate``), the window origin ``ul - pad`` and, when
    h / size >= 2, the pre-shrink of the whole image to floor(H / sf) x floor(W / sf) with the centre and
    scale divided by sf (the official shortcut, issue #63); then inverted.
    """
    height, width = image_size
    center = np.asarray(center, dtype=np.float64).reshape(-1)[:2]
    scale = float(np.ravel(scale)[0])
    source = np.eye(3)  # (shrunk) image pixel -> original image pixel
    factor = _box_side(scale) / size
    if factor >= 2:
        shrunk_w, shrunk_h = math.floor(width / factor), math.floor(height / factor)
        if shrunk_w >= 2 and shrunk_h >= 2:
            rx, ry = width / shrunk_w, height / shrunk_h  # PIL resize: pixel i samples (i + 0.5) * r - 0.5
            source = np.array([[rx, 0.0, 0.5 * rx - 0.5], [0.0, ry, 0.5 * ry - 0.5], [0.0, 0.0, 1.0]])
            center, scale = center / factor, scale / factor
    inverse = invert_affine(official_face_transform(center, scale, size))
    # transform_pixel(pt, invert): trunc(T^-1(pt - 1)) + 1 for pt = (0, 0) and (size, size).
    upper_left = np.trunc(affine_points(np.array([-1.0, -1.0]), inverse)) + 1
    bottom_right = np.trunc(affine_points(np.array([size - 1.0, size - 1.0]), inverse)) + 1
    extent = bottom_right - upper_left
    pad = int(np.linalg.norm(extent) / 2 - float(extent[1]) / 2) if rot != 0 else 0
    resize = np.array([[extent[0] / size, 0.0, 0.5 * extent[0] / size - 0.5 + pad],
                       [0.0, extent[1] / size, 0.5 * extent[1] / size - 0.5 + pad], [0.0, 0.0, 1.0]])
    middle = (extent + 2 * pad - 1) / 2.0
    theta = math.radians(rot)
    cos, sin = math.cos(theta), math.sin(theta)
    rotation = np.array([[cos, -sin, middle[0] - cos * middle[0] + sin * middle[1]],
                         [sin, cos, middle[1] - sin * middle[0] - cos * middle[1]], [0.0, 0.0, 1.0]])
    origin = np.array([[1.0, 0.0, upper_left[0] - pad], [0.0, 1.0, upper_left[1] - pad], [0.0, 0.0, 1.0]])
    crop_to_image = source @ origin @ rotation @ resize
    return invert_affine(crop_to_image[:2])


class FaceCodec(HeatmapCodec):
    """Official face codec (module docstring): square input, sigma 1.5 (300W: 1.0), stride 4.

    Options: ``target`` ("official" | "subpixel"), ``decode`` ("official" | "dark"), ``flip``
    ("official": x -> W - x | "exact": x -> W - 1 - x), ``blur_sigma`` (DARK modulation kernel,
    default = ``sigma``), ``flip_shift`` (test-time flip alignment, default off: no official flip test).
    """

    name = "face"

    def __init__(
        self, input_size: tuple[int, int], sigma: float = 1.5, stride: int = 4, flip_shift: bool = False,
        target: str = "official", decode: str = "official", flip: str = "official", blur_sigma: float | None = None,
    ):
        super().__init__(input_size, sigma=sigma, stride=stride, flip_shift=flip_shift)
        if self.input_size[0] != self.input_size[1]:
            raise ValueError(f"codec face: the official face crop is square, got input_size {self.input_size[0]}x{self.input_size[1]}")
        for option, value, allowed in (("target", target, FACE_TARGETS), ("decode", decode, FACE_DECODES),
                                       ("flip", flip, FACE_FLIPS)):
            if value not in allowed:
                raise ValueError(f"codec face: {option} must be one of {allowed}, got {value!r}")
        self.target = target
        self.decode_mode = decode
        self.flip = flip
        self.image_flip_offset = 0.0 if flip == "official" else 1.0
        self.blur_sigma = self.sigma if blur_sigma is None else float(blur_sigma)
        self._patch = reference_gaussian_patch(self.sigma)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, target={self.target!r}, decode={self.decode_mode!r}, flip={self.flip!r})"

    def crop_transform(self, center: np.ndarray, scale: np.ndarray, rot: float = 0.0, inv: bool = False) -> np.ndarray:
        forward = official_face_transform(center, scale, self.input_size[0], rot)
        return invert_affine(forward) if inv else forward

    def image_transform(
        self, center: np.ndarray, scale: np.ndarray, rot: float = 0.0, image_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        if image_size is None:
            raise ValueError("codec face: image_transform needs the image size (height, width) for the official pre-shrink")
        return official_image_transform(center, scale, self.input_size[0], rot, image_size)

    def to_image(self, coords: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        size = self.heatmap_size[0]
        points = coords_to_image(
            coords, centers, scales, lambda c, s: invert_affine(official_face_transform(c, s, size))
        )
        if self.decode_mode == "official":
            points = np.trunc(points) + 1.0  # transform_pixel: astype(int) + 1
        return points

    def torch_decoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_decode import FaceDarkDecoder, FaceDecoder

        return FaceDarkDecoder(self) if self.decode_mode == "dark" else FaceDecoder(self)

    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joints, has_target = encode_inputs(joints, visible)
        h, w = self.heatmap_size
        weight = np.ones(len(joints), dtype=np.float32)
        if self.target == "subpixel":
            target, _ = subpixel_gaussian_targets(joints[:, :2] / self.stride - 0.5, has_target, (h, w), self.sigma)
            return target, weight
        tmp_size = self.sigma * 3
        u, v = np.trunc(joints[:, 0] / self.stride), np.trunc(joints[:, 1] / self.stride)
        ul_x, ul_y = np.trunc(u - tmp_size), np.trunc(v - tmp_size)
        br_x, br_y = np.trunc(u + tmp_size + 1), np.trunc(v + tmp_size + 1)
        outside = (ul_x >= w) | (ul_y >= h) | (br_x < 0) | (br_y < 0)
        paste = (has_target > 0.5) & ~outside
        return paste_patches(self._patch, (ul_x, ul_y), (br_x, br_y), paste, (len(joints), h, w)), weight

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps = np.asarray(heatmaps)
        if self.decode_mode == "dark":
            coords, maxvals = modulated_taylor_decode(heatmaps, self.blur_sigma)
            return coords + 0.5, maxvals
        coords, maxvals, positive = argmax_peaks(heatmaps)
        coords += 0.25 * quarter_offset_signs(heatmaps, coords, lowest=1) + 0.5
        coords[~positive] = -0.5  # get_preds zeroes the 1-based peak, then + 0.5
        return coords, maxvals
