"""DARK codec (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose Estimation", CVPR 2020).

Encoding: an unbiased Gaussian centred at the exact sub-pixel position x / stride (not rounded).
Decoding: "distribution modulation" (blur each map with a Gaussian of the training sigma, rescale it
to the original peak value), then log, then a second-order Taylor step at the integer argmax:
    mu = m - H^-1 g,  g and H the gradient and Hessian of log(heatmap) at the peak m
(paper eq. 2-5). Log of a Gaussian is quadratic, so the step is exact for well-formed maps.

Crops use the reference (size) pixel convention, like legacy. In that convention a flipped crop's
maps, flipped back, sit 0.75 heatmap px left of the unflipped ones; the one-pixel shift leaves +0.25
instead, so DARK keeps the reference shift on by default, as the mmpose DARK configs do
(``shift_heatmap=True``). Measured in tests/test_codecs.py.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from torch import nn

from hrnet_train.codecs.base import HeatmapCodec, argmax_peaks, encode_inputs

_LOG_FLOOR = 1e-10


def subpixel_gaussian_targets(
    centres: np.ndarray, weight: np.ndarray, heatmap_size: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Un-normalised Gaussians (peak 1 at the exact centre) over the whole map, all joints at once.

    ``centres`` (J, 2) in heatmap pixels. A joint whose 3-sigma window lies fully outside the map
    gets weight 0 and an empty map (the reference's visibility rule, applied to the unrounded centre);
    maps are written only where the weight is > 0.5. Returns float32 target (J, h, w) and weight (J,).
    """
    h, w = heatmap_size
    weight = weight.copy()
    reach = 3 * sigma
    mu_x, mu_y = centres[:, 0], centres[:, 1]
    outside = (mu_x - reach >= w) | (mu_y - reach >= h) | (mu_x + reach + 1 < 0) | (mu_y + reach + 1 < 0)
    weight[outside] = 0.0
    gx = np.exp(-((np.arange(w)[None, :] - mu_x[:, None]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((np.arange(h)[None, :] - mu_y[:, None]) ** 2) / (2 * sigma**2))
    target = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
    target[~(weight > 0.5)] = 0.0
    return target, weight


def modulated_taylor_decode(heatmaps: np.ndarray, blur_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """DARK decoding of (N, J, h, w) maps -> coords (N, J, 2) float64 heatmap px, maxvals (N, J) float32.

    The integer argmax and maxval come from the raw maps (as in the reference); the sub-pixel step
    uses the modulated log-maps. The step is applied only where the Hessian is negative definite (a
    true local maximum) and the peak has a neighbour on every side; otherwise the integer peak stays.
    """
    coords, maxvals, positive = argmax_peaks(heatmaps)
    n, j, h, w = heatmaps.shape
    maps = heatmaps.astype(np.float64)
    blurred = gaussian_filter(maps, sigma=(0, 0, blur_sigma, blur_sigma), mode="constant", cval=0.0, truncate=3.0)
    raw_max = maps.reshape(n, j, -1).max(axis=2)
    blurred_max = blurred.reshape(n, j, -1).max(axis=2)
    ratio = np.divide(raw_max, blurred_max, out=np.ones_like(raw_max), where=blurred_max > 0)
    log_maps = np.log(np.maximum(blurred * ratio[..., None, None], _LOG_FLOOR))

    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = positive & (px >= 1) & (px <= w - 2) & (py >= 1) & (py <= h - 2)
    x = np.clip(px, 1, w - 2)
    y = np.clip(py, 1, h - 2)
    n_idx, j_idx = np.indices((n, j))

    def at(dy: int, dx: int) -> np.ndarray:
        return log_maps[n_idx, j_idx, y + dy, x + dx]

    centre = at(0, 0)
    grad_x = 0.5 * (at(0, 1) - at(0, -1))
    grad_y = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = at(0, 1) - 2 * centre + at(0, -1)
    hyy = at(1, 0) - 2 * centre + at(-1, 0)
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    maximum = inside & (det > 0) & (hxx < 0)
    safe_det = np.where(maximum, det, 1.0)
    step_x = -(hyy * grad_x - hxy * grad_y) / safe_det
    step_y = -(hxx * grad_y - hxy * grad_x) / safe_det
    coords[..., 0] += np.where(maximum, step_x, 0.0)
    coords[..., 1] += np.where(maximum, step_y, 0.0)
    return coords, maxvals


class DarkCodec(HeatmapCodec):
    """DARK: sub-pixel Gaussian targets + modulated Taylor decoding, reference (size) crop convention.

    Options: ``flip_shift`` (default True, see module docstring), ``blur_sigma`` (modulation kernel
    sigma, default = training ``sigma`` as in the paper).
    """

    name = "dark"

    def __init__(
        self, input_size: tuple[int, int], sigma: float = 2.0, stride: int = 4, flip_shift: bool = True,
        blur_sigma: float | None = None,
    ):
        super().__init__(input_size, sigma=sigma, stride=stride, flip_shift=flip_shift)
        self.blur_sigma = self.sigma if blur_sigma is None else float(blur_sigma)

    def torch_decoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_decode import DarkDecoder

        return DarkDecoder(self)

    def torch_encoder(self) -> nn.Module:
        from hrnet_train.codecs.torch_encode import SubpixelGaussianEncoder

        return SubpixelGaussianEncoder(self, (1.0 / self.stride, 1.0 / self.stride))

    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joints, weight = encode_inputs(joints, visible)
        return subpixel_gaussian_targets(joints[:, :2] / self.stride, weight, self.heatmap_size, self.sigma)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return modulated_taylor_decode(np.asarray(heatmaps), self.blur_sigma)
