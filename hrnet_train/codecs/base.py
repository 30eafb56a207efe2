"""The heatmap codec interface: how keypoints become training targets and heatmaps become keypoints.

A codec owns one pixel convention end to end (crop transform, target encoding, peak decoding, flip
alignment, mapping back to the image), so datasets, models and evaluation never mix conventions;
mixing them is what costs AP (spec section 9). The convention is declared once per codec class
(``pixel_convention``: ``"size"`` = the reference's, ``"unit"`` = UDP's unit length, see
``hrnet_train/geometry.py``); crop and back-projection transforms, the heatmap -> crop-pixel ratio
and the NumPy back-projection of exported keypoints all follow from it. Each codec also returns its
torch decoder (``torch_decoder()``, for the GPU and ONNX), where it has one its batched torch
encoder (``torch_encoder()``, for ``data.pipeline=device``), and names its training loss
(``loss_name``, built by ``hrnet_train.training.losses.build_loss``), so adding a codec touches its
own file. The network output a codec reads need not be heatmaps (SimCC reads per-joint logit rows):
``output_shape`` says what it expects per crop, and ``target_as_output`` turns a training target into
the output that decodes to it (the codec oracle's "perfect model").
Encoding/decoding are plain numpy; ``flip_back`` also accepts torch tensors (flip test runs on model outputs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from hrnet_train.geometry import get_affine_transform, get_udp_transform

if TYPE_CHECKING:  # torch is only needed by callers that pass tensors
    import torch
    from torch import nn

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")
PIXEL_CONVENTIONS = ("size", "unit")


class HeatmapCodec(ABC):
    """Common state and the flip/argmax helpers shared by all codecs.

    ``input_size`` and ``heatmap_size`` are (height, width); ``stride`` is input/heatmap (4 for HRNet).
    ``channels_per_joint`` is 1 for plain heatmaps (3 for UDP's combined heatmap + offsets).
    """

    name: str = "base"
    channels_per_joint: int = 1
    pixel_convention: str = "size"  # "size" (reference get_affine_transform) | "unit" (UDP unit length)
    # Training flips mirror image coordinates as x -> W - image_flip_offset - x: 1 is the exact mirror of
    # 0-based pixel centres (the reference pose code); the face codec can keep the official face code's 0.
    image_flip_offset: float = 1.0
    loss_name: str = "joints_mse"  # hrnet_train.training.losses.LOSSES key

    def __init__(self, input_size: tuple[int, int], sigma: float = 2.0, stride: int = 4, flip_shift: bool = False):
        height, width = (int(v) for v in input_size)
        if height % stride or width % stride:
            raise ValueError(f"codec {self.name}: input_size {height}x{width} must be divisible by stride {stride}")
        if sigma <= 0:
            raise ValueError(f"codec {self.name}: sigma must be > 0, got {sigma}")
        self.input_size = (height, width)
        self.heatmap_size = (height // stride, width // stride)
        self.stride = stride
        self.sigma = float(sigma)
        self.flip_shift = bool(flip_shift)

    def __repr__(self) -> str:
        h, w = self.input_size
        return f"{type(self).__name__}(input_size={h}x{w}, sigma={self.sigma}, flip_shift={self.flip_shift})"

    def crop_transform(self, center: np.ndarray, scale: np.ndarray, rot: float = 0.0, inv: bool = False) -> np.ndarray:
        """Image -> input-crop affine (2x3 float64; ``inv``: crop -> image) in this codec's convention."""
        return convention_transform(self.pixel_convention, center, scale, rot, self.input_size, inv)

    def image_transform(
        self, center: np.ndarray, scale: np.ndarray, rot: float = 0.0, image_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Image -> input-crop affine (2x3) used to warp the image (of ``image_size`` (H, W)): the joint
        transform itself, except for codecs whose reference crops the pixels differently (face)."""
        return self.crop_transform(center, scale, rot)

    def to_image(self, coords: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Heatmap-pixel coords (N, J, 2) + per-instance center (N, 2), scale (N, 2) -> image pixels (N, J, 2)."""
        return coords_to_image(
            coords, centers, scales,
            lambda c, s: convention_transform(self.pixel_convention, c, s, 0.0, self.heatmap_size, inv=True),
        )

    def heatmap_to_input(self) -> tuple[float, float]:
        """(x, y) factors from heatmap pixels to input-crop pixels: ``W_in / w`` in the size convention
        (an output of width W is centred at W/2), ``(W_in - 1) / (w - 1)`` in the unit-length one."""
        (in_h, in_w), (h, w) = self.input_size, self.heatmap_size
        if self.pixel_convention == "unit":
            return (in_w - 1.0) / (w - 1.0), (in_h - 1.0) / (h - 1.0)
        return in_w / w, in_h / h

    def output_shape(self, num_joints: int) -> tuple[int, ...]:
        """The network output this codec decodes, per crop: (C*J, h, w) heatmaps."""
        return (self.channels_per_joint * num_joints, *self.heatmap_size)

    def target_as_output(self, target: np.ndarray) -> np.ndarray:
        """The network output that decodes like ``target`` (heatmaps: the target itself)."""
        return target

    @abstractmethod
    def torch_decoder(self) -> nn.Module:
        """A torch module reproducing ``decode`` + the heatmap -> crop-pixel mapping (GPU, ONNX export)."""

    def torch_encoder(self) -> nn.Module:
        """A torch module reproducing ``encode`` for a batch: (joints (B, J, 2+), visible (B, J)) ->
        (target (B, C*J, h, w), target_weight (B, J)). Codecs without one train on the CPU path only."""
        raise NotImplementedError(
            f"codec {self.name!r} has no torch encoder, so it cannot build targets on the device: "
            f"use data.pipeline=cpu"
        )

    @classmethod
    def has_torch_encoder(cls) -> bool:
        """Whether the codec overrides ``torch_encoder`` (checked by the config before any data is built)."""
        return cls.torch_encoder is not HeatmapCodec.torch_encoder

    @abstractmethod
    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """joints (J, 2) in input-crop pixels, visible (J,) in {0, 1} -> target (C*J, h, w) float32,
        target_weight (J,) float32 (0 for invisible joints and joints too far outside the map)."""

    @abstractmethod
    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, C*J, h, w) -> coords (N, J, 2) float64 in heatmap pixels, maxvals (N, J) float32."""

    def flip_back(self, heatmaps: ArrayT, flip_index: np.ndarray) -> ArrayT:
        """Align maps predicted on a horizontally flipped crop with the unflipped crop.

        Reverses columns, swaps left/right channels (channel k takes joint ``flip_index[k]``) and,
        when ``flip_shift``, moves the maps one pixel right (column k takes column k-1, column 0
        keeps its value; the reference SHIFT_HEATMAP). Works on (N, C*J, h, w) numpy or torch.
        """
        channels = self._flip_channels(np.asarray(flip_index))
        flipped = _take_channels(_reverse_columns(heatmaps), channels)
        flipped = self._fix_flipped_channels(flipped)
        if self.flip_shift:
            flipped[..., 1:] = _copy(flipped[..., :-1])
        return flipped

    def _flip_channels(self, flip_index: np.ndarray) -> np.ndarray:
        """Channel permutation for ``channels_per_joint`` channels per joint, laid out joint-major."""
        per = self.channels_per_joint
        return (flip_index[:, None] * per + np.arange(per)[None, :]).reshape(-1)

    def _fix_flipped_channels(self, flipped: ArrayT) -> ArrayT:
        """Hook for channels whose values change under a flip (UDP x-offsets); identity by default."""
        return flipped


def convention_transform(
    convention: str, center: np.ndarray, scale: np.ndarray, rot: float, output_size: tuple[int, int], inv: bool = False
) -> np.ndarray:
    """The 2x3 crop affine of a pixel convention (``"size"`` or ``"unit"``) for an output of (H, W)."""
    if convention == "size":
        return get_affine_transform(center, scale, rot, output_size, inv=inv)
    if convention == "unit":
        return get_udp_transform(center, scale, rot, output_size, inv=inv)
    raise ValueError(f"pixel convention: expected one of {list(PIXEL_CONVENTIONS)}, got {convention!r}")


def encode_inputs(joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joints as float64 (J, 2+) and a fresh float32 (J,) weight array, checked against each other."""
    joints = np.asarray(joints, dtype=np.float64)
    weight = np.array(visible, dtype=np.float32).reshape(-1)
    if joints.ndim != 2 or joints.shape[1] < 2 or len(joints) != len(weight):
        raise ValueError(f"encode: expected joints (J, 2) and visible (J,), got {joints.shape} and {weight.shape}")
    return joints, weight


def argmax_peaks(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference ``get_max_preds`` vectorised: integer peak (x = idx mod w, y = idx // w), its value, and
    a mask of maps whose peak is > 0 (coords of the others are set to 0, as in the reference).

    Returns coords (N, J, 2) float64, maxvals (N, J) float32, positive (N, J) bool.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"decode: expected heatmaps of shape (N, J, h, w), got {heatmaps.shape}")
    n, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, j, h * w)
    index = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, index[..., None], axis=2)[..., 0].astype(np.float32)
    positive = maxvals > 0
    coords = np.stack([index % w, index // w], axis=-1).astype(np.float64)
    coords[~positive] = 0.0
    return coords, maxvals, positive


def _reverse_columns(heatmaps: ArrayT) -> ArrayT:
    if isinstance(heatmaps, np.ndarray):
        return heatmaps[..., ::-1]
    return heatmaps.flip(-1)


def _take_channels(heatmaps: ArrayT, channels: np.ndarray) -> ArrayT:
    if isinstance(heatmaps, np.ndarray):
        return heatmaps[:, channels].copy()
    import torch

    return heatmaps[:, torch.as_tensor(channels, device=heatmaps.device)].clone()


def _copy(values: ArrayT) -> ArrayT:
    return values.copy() if isinstance(values, np.ndarray) else values.clone()


def coords_to_image(coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, inverse_transform) -> np.ndarray:
    """Map (N, J, 2) heatmap coords to the image with ``inverse_transform(center, scale) -> 2x3`` per instance.

    One small matrix per instance (not per joint); the points themselves are mapped vectorised.
    """
    coords = np.asarray(coords, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    if coords.ndim != 3 or coords.shape[-1] != 2 or len(coords) != len(centers) or len(coords) != len(scales):
        raise ValueError(
            f"to_image: expected coords (N, J, 2), centers (N, 2), scales (N, 2); got {coords.shape}, "
            f"{centers.shape}, {scales.shape}"
        )
    matrices = np.stack([inverse_transform(c, s) for c, s in zip(centers, scales)]) if len(coords) else np.zeros((0, 2, 3))
    x, y = coords[..., 0], coords[..., 1]
    out_x = matrices[:, 0, 0, None] * x + matrices[:, 0, 1, None] * y + matrices[:, 0, 2, None]
    out_y = matrices[:, 1, 0, None] * x + matrices[:, 1, 1, None] * y + matrices[:, 1, 2, None]
    return np.stack([out_x, out_y], axis=-1)
