"""Crop pixels -> image pixels: the few lines a consumer of the exported ONNX model needs.

The exported graph returns keypoints in INPUT-CROP pixels. A crop is the box ``center`` +/- 100 *
``scale`` (``scale`` in units of 200 px, reference convention) resized to the input size (H, W) with
no rotation at inference, so going back is one scale and one shift per crop. The two pixel
conventions (see ``hrnet_train/geometry.py``; every codec declares its ``pixel_convention``, and the
exported file stores it as metadata):

* ``size`` (legacy, dark; reference ``get_affine_transform``; only s_w is used):
  ``x = cx + (x_crop - W/2) * 200 s_w / W``,  ``y = cy + (y_crop - H/2) * 200 s_w / W``
* ``unit`` (udp; unit length, ``get_udp_transform``):
  ``x = cx + (x_crop - (W-1)/2) * 200 s_w / (W-1)``,  ``y = cy + (y_crop - (H-1)/2) * 200 s_h / (H-1)``

This equals ``codec.to_image(keypoints_crop / heatmap_to_input, centers, scales)`` up to the
reference's float32 rounding of the affine matrix (tests/test_export.py bounds the difference).
The face codec is in the ``size`` convention with a square box; its official decoding
(``decode=official``, exported metadata ``image_rounding: trunc_plus_one``) then takes
``trunc(x) + 1`` of the image coordinates, as the official ``transform_pixel`` does (``trunc_plus_one``).
"""

from __future__ import annotations

import numpy as np

from hrnet_train.codecs import CODECS
from hrnet_train.codecs.base import PIXEL_CONVENTIONS
from hrnet_train.geometry import PIXEL_STD


def backproject(
    keypoints_crop: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    input_size: tuple[int, int],
    codec: str,
    trunc_plus_one: bool = False,
) -> np.ndarray:
    """(N, J, 2) crop-pixel keypoints + per-crop centers (N, 2), scales (N, 2) -> (N, J, 2) image pixels.

    ``input_size`` is the network input (height, width); ``codec`` is a codec name (its declared pixel
    convention is used) or a convention itself (``"size"`` / ``"unit"``). ``trunc_plus_one``: the
    official face decoding's integer step (module docstring).
    """
    points = np.asarray(keypoints_crop, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    if points.ndim != 3 or points.shape[-1] != 2 or not len(points) == len(centers) == len(scales):
        raise ValueError(
            f"backproject: expected keypoints (N, J, 2), centers (N, 2), scales (N, 2); "
            f"got {points.shape}, {centers.shape}, {scales.shape}"
        )
    height, width = (float(v) for v in input_size)
    box_w, box_h = PIXEL_STD * scales[:, 0], PIXEL_STD * scales[:, 1]
    convention = codec if codec in PIXEL_CONVENTIONS else getattr(CODECS.get(codec), "pixel_convention", None)
    if convention == "size":
        origin = np.array([width / 2.0, height / 2.0])
        step = np.stack([box_w / width, box_w / width], axis=-1)
    elif convention == "unit":
        origin = np.array([(width - 1.0) / 2.0, (height - 1.0) / 2.0])
        step = np.stack([box_w / (width - 1.0), box_h / (height - 1.0)], axis=-1)
    else:
        raise ValueError(f"backproject: unknown codec {codec!r}, expected a codec name ({sorted(CODECS)}) "
                         f"or a pixel convention {list(PIXEL_CONVENTIONS)}")
    image = centers[:, None, :] + (points - origin) * step[:, None, :]
    return np.trunc(image) + 1.0 if trunc_plus_one else image
