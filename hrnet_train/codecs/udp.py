"""UDP codec (Huang et al., "The Devil is in the Details: Delving into Unbiased Data Processing for
Human Pose Estimation", CVPR 2020).

Unit-length convention throughout: crops come from ``get_udp_transform`` and heatmap coordinates
relate to input-crop coordinates by (w_hm - 1) / (W_in - 1). In this convention flipping a crop
(x -> W_in - 1 - x) is exactly column reversal of its heatmaps, so no flip shift is needed.

Target types:
* ``gaussian`` (default): unbiased Gaussian at the exact sub-pixel position, decoded with the DARK
  modulated Taylor step (the combination used for UDP's Gaussian-heatmap results).
* ``combined``: the paper's classification + offset encoding. Per joint three channels
  (joint-major, channel 3k + {0, 1, 2}): a binary disk of radius R around the keypoint and, inside
  it, the offsets (x_k - x) / R and (y_k - y) / R. R = ``radius_factor`` * heatmap height
  (default 0.0546875, i.e. 3.5 px on a 64-high map, mmpose's UDP setting). Decoding: argmax of the
  Gaussian-blurred disk channel, plus R times the offsets read there. Under a flip the x-offset
  channel changes sign, which ``flip_back`` applies. Targets are (3J, h, w); target_weight stays (J,).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from torch import nn

from hrnet_train.codecs.base import ArrayT, HeatmapCodec, argmax_peaks, encode_inputs
from hrnet_train.codecs.dark import modulated_taylor_decode, subpixel_gaussian_targets

TARGET_TYPES = ("gaussian", "combined")


class UdpCodec(HeatmapCodec):
    """UDP: unit-length crop transform, unbiased Gaussian (or combined) targets, no flip shift.

    Options: ``target_type`` ("gaussian" | "combined"), ``radius_factor`` (combined disk radius as a
    fraction of the heatmap height), ``blur_sigma`` (decode-time blur, default = ``sigma``),
    ``flip_shift`` (default False; exists only for experiments).
    """

    name = "udp"
    pixel_convention = "unit"

    def __init__(
        self, input_size: tuple[int, int], sigma: float = 2.0, stride: int = 4, flip_shift: bool = False,
        target_type: str = "gaussian", radius_factor: float = 0.0546875, blur_sigma: float | None = None,
    ):
        super().__init__(input_size, sigma=sigma, stride=stride, flip_shift=flip_shift)
        if target_type not in TARGET_TYPES:
            raise ValueError(f"codec udp: target_type must be one of {TARGET_TYPES}, got {target_type!r}")
        if radius_factor <= 0:
            raise ValueError(f"codec udp: radius_factor must be > 0, got {radius_factor}")
        self.target_type = target_type
        self.channels_per_joint = 3 if target_type == "combined" else 1
        self.radius = float(radius_factor) * self.heatmap_size[0]
        self.blur_sigma = self.sigma if blur_sigma is None else float(blur_sigma)
        # Unit-length ratio between input and heatmap coordinates, per axis (x, y).
        self._input_to_heatmap = 1.0 / np.array(self.heatmap_to_input())

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, target_type={self.target_type!r})"

    def torch_decoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_decode import DarkDecoder, UdpCombinedDecoder

        return UdpCombinedDecoder(self) if self.target_type == "combined" else DarkDecoder(self)

    def torch_encoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_encode import SubpixelGaussianEncoder, UdpCombinedEncoder

        factor = tuple(self._input_to_heatmap)
        return UdpCombinedEncoder(self, factor) if self.target_type == "combined" else SubpixelGaussianEncoder(self, factor)

    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joints, weight = encode_inputs(joints, visible)
        centres = joints[:, :2] * self._input_to_heatmap
        if self.target_type == "gaussian":
            return subpixel_gaussian_targets(centres, weight, self.heatmap_size, self.sigma)
        return self._encode_combined(centres, weight.copy())

    def _encode_combined(self, centres: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.heatmap_size
        radius = self.radius
        mu_x, mu_y = centres[:, 0], centres[:, 1]
        outside = (mu_x - radius >= w) | (mu_y - radius >= h) | (mu_x + radius + 1 < 0) | (mu_y + radius + 1 < 0)
        weight[outside] = 0.0
        offset_x = (mu_x[:, None, None] - np.arange(w)[None, None, :]) / radius  # (J, 1, w)
        offset_y = (mu_y[:, None, None] - np.arange(h)[None, :, None]) / radius  # (J, h, 1)
        disk = (offset_x**2 + offset_y**2 <= 1.0) & (weight > 0.5)[:, None, None]
        target = np.zeros((len(centres), 3, h, w), dtype=np.float32)
        target[:, 0] = disk
        target[:, 1] = np.where(disk, offset_x, 0.0)
        target[:, 2] = np.where(disk, offset_y, 0.0)
        return target.reshape(len(centres) * 3, h, w), weight

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps = np.asarray(heatmaps)
        if self.target_type == "gaussian":
            return modulated_taylor_decode(heatmaps, self.blur_sigma)
        if heatmaps.ndim != 4 or heatmaps.shape[1] % 3:
            raise ValueError(f"decode (udp combined): expected (N, 3J, h, w), got {heatmaps.shape}")
        disks = heatmaps[:, 0::3].astype(np.float64)
        smoothed = gaussian_filter(disks, sigma=(0, 0, self.blur_sigma, self.blur_sigma), mode="constant", truncate=3.0)
        coords, _, positive = argmax_peaks(smoothed)
        n, j = coords.shape[:2]
        n_idx, j_idx = np.indices((n, j))
        px, py = coords[..., 0].astype(np.int64), coords[..., 1].astype(np.int64)
        maxvals = heatmaps[:, 0::3][n_idx, j_idx, py, px].astype(np.float32)
        offsets = np.stack(
            [heatmaps[:, 1::3][n_idx, j_idx, py, px], heatmaps[:, 2::3][n_idx, j_idx, py, px]], axis=-1
        ).astype(np.float64)
        coords += np.where(positive[..., None], self.radius * offsets, 0.0)
        return coords, maxvals

    def _fix_flipped_channels(self, flipped: ArrayT) -> ArrayT:
        if self.target_type == "combined":
            flipped[:, 1::3] = -flipped[:, 1::3]
        return flipped
