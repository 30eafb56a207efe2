"""The official HRNet (MSRA) heatmap codec, bit-exact with the reference formulas (spec 3.5, 3.6, 6.1, 6.2).

Kept as the default because the official checkpoints and numbers were produced with it, quirks
included: integer-rounded Gaussian centres, quarter-pixel sign decoding and the one-pixel flip shift
(spec section 9, items 1-2). The reference loops over joints in Python; here encoding scatters all
joints' Gaussian windows at once and decoding gathers all peaks at once, with identical results.
"""

from __future__ import annotations

import numpy as np

from torch import nn

from hrnet_train.codecs.base import HeatmapCodec, argmax_peaks, encode_inputs


def reference_gaussian_patch(sigma: float) -> np.ndarray:
    """The reference's (6 sigma + 1)^2 float32 Gaussian window (peak 1 at index ``size // 2``).

    Built with the same float32 operations as ``generate_target`` so every value matches it bit for bit.
    """
    size = 2 * (3 * sigma) + 1
    x = np.arange(0, size, 1, np.float32)
    y = x[:, np.newaxis]
    centre = size // 2
    return np.exp(-((x - centre) ** 2 + (y - centre) ** 2) / (2 * sigma**2))


def paste_patches(
    patch: np.ndarray,
    upper_left: tuple[np.ndarray, np.ndarray],
    bottom_right: tuple[np.ndarray, np.ndarray],
    paste: np.ndarray,
    shape: tuple[int, int, int],
) -> np.ndarray:
    """All joints' windows of the reference ``generate_target`` at once: ``patch`` with its index (0, 0)
    at ``upper_left`` (x, y per joint), cut at ``bottom_right`` (exclusive) and at the map border, for
    the joints where ``paste``; the other maps stay zero. Returns a float32 (J, h, w) array."""
    num_joints, h, w = shape
    (ul_x, ul_y), (br_x, br_y) = upper_left, bottom_right
    target = np.zeros(shape, dtype=np.float32)
    if paste.any():
        offsets = np.arange(patch.shape[0])
        rows = (ul_y[paste, None] + offsets).astype(np.int64)  # (P, L)
        cols = (ul_x[paste, None] + offsets).astype(np.int64)
        row_ok = (rows >= 0) & (rows < h) & (rows < br_y[paste, None])
        col_ok = (cols >= 0) & (cols < w) & (cols < br_x[paste, None])
        keep = row_ok[:, :, None] & col_ok[:, None, :]
        joint_ids = np.flatnonzero(paste)
        flat_index = (joint_ids[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]
        values = np.broadcast_to(patch, keep.shape)
        target.reshape(-1)[flat_index[keep]] = values[keep]
    return target


class LegacyCodec(HeatmapCodec):
    """Reference MSRA codec: size-convention crops, integer Gaussian centres, quarter-offset decoding.

    Options: ``flip_shift`` (reference SHIFT_HEATMAP, default True), ``post_process`` (reference
    TEST.POST_PROCESS quarter offset, default True).
    """

    name = "legacy"

    def __init__(
        self, input_size: tuple[int, int], sigma: float = 2.0, stride: int = 4, flip_shift: bool = True,
        post_process: bool = True,
    ):
        super().__init__(input_size, sigma=sigma, stride=stride, flip_shift=flip_shift)
        self.post_process = bool(post_process)
        self._patch = reference_gaussian_patch(self.sigma)

    def torch_decoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_decode import LegacyDecoder

        return LegacyDecoder(self)

    def torch_encoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_encode import LegacyEncoder

        return LegacyEncoder(self)

    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joints, weight = encode_inputs(joints, visible)
        num_joints = len(joints)
        h, w = self.heatmap_size
        tmp_size = self.sigma * 3
        # feat_stride = image_size / heatmap_size, per axis, as in the reference.
        stride_x = self.input_size[1] / w
        stride_y = self.input_size[0] / h
        # np.trunc reproduces Python int(): truncation toward zero (int(-0.7) == 0).
        mu_x = np.trunc(joints[:, 0] / stride_x + 0.5)
        mu_y = np.trunc(joints[:, 1] / stride_y + 0.5)
        ul_x, ul_y = np.trunc(mu_x - tmp_size), np.trunc(mu_y - tmp_size)
        br_x, br_y = np.trunc(mu_x + tmp_size + 1), np.trunc(mu_y + tmp_size + 1)
        outside = (ul_x >= w) | (ul_y >= h) | (br_x < 0) | (br_y < 0)
        weight[outside] = 0.0
        target = paste_patches(self._patch, (ul_x, ul_y), (br_x, br_y), weight > 0.5, (num_joints, h, w))
        return target, weight

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps = np.asarray(heatmaps)
        coords, maxvals, _ = argmax_peaks(heatmaps)
        if self.post_process:
            coords += 0.25 * quarter_offset_signs(heatmaps, coords)
        return coords, maxvals


def quarter_offset_signs(heatmaps: np.ndarray, coords: np.ndarray, lowest: int = 2) -> np.ndarray:
    """Reference POST_PROCESS: sign of the neighbour differences around each integer peak, (N, J, 2).

    Zero where the rounded peak is not inside ``lowest`` <= px <= w-2 and the same for py: the pose
    reference skips px = 1 / py = 1 as well (``lowest`` 2), the face reference only the border (1).
    Differences are taken in the heatmaps' own dtype, like the reference.
    """
    n, j, h, w = heatmaps.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    inside = (px >= lowest) & (px < w - 1) & (py >= lowest) & (py < h - 1)
    px_c = np.clip(px, 1, w - 2)
    py_c = np.clip(py, 1, h - 2)
    n_idx, j_idx = np.indices((n, j))
    dx = heatmaps[n_idx, j_idx, py_c, px_c + 1] - heatmaps[n_idx, j_idx, py_c, px_c - 1]
    dy = heatmaps[n_idx, j_idx, py_c + 1, px_c] - heatmaps[n_idx, j_idx, py_c - 1, px_c]
    signs = np.stack([np.sign(dx), np.sign(dy)], axis=-1).astype(np.float64)
    signs[~inside] = 0.0
    return signs
