"""Image reading for the data pipeline: the reference's decode flags, clear errors, optional reduced decode.

OpenCV returns ``None`` for a missing or unreadable file and silently returns a grey-filled image for a
truncated JPEG (libjpeg only prints "Premature end of JPEG file"). Training on such a picture corrupts
targets without any sign, so truncated JPEGs are detected here from the missing end-of-image marker.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Reference flags (spec 3.4 step 1): colour decode, EXIF orientation ignored.
_BASE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
# OpenCV >= 4.10 can decode straight to RGB (same pixels as BGR + cvtColor, one pass less); full size only.
_RGB_FLAGS = getattr(cv2, "IMREAD_COLOR_RGB", None)
# libjpeg DCT-domain downscaling: decodes directly at 1/2, 1/4 or 1/8 of the size (much cheaper).
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
# A JPEG may carry padding after its end-of-image marker; look for the marker in this many tail bytes.
# Entropy-coded data byte-stuffs 0xFF, so the marker cannot appear there by accident.
_EOI_SEARCH_BYTES = 4096


class ImageReadError(ValueError):
    """A file exists but cannot be decoded as a complete image."""


def read_image(path: str | Path, color_rgb: bool = True, reduce: int = 1) -> np.ndarray:
    """Decode ``path`` to a uint8 HxWx3 array (RGB if ``color_rgb`` else BGR).

    ``reduce`` in {1, 2, 4, 8} decodes a JPEG at 1/reduce of its size (see :func:`reduced_to_full`
    for how pixel coordinates relate). Raises FileNotFoundError for a missing file and
    :class:`ImageReadError` (a ValueError) for an empty, truncated or undecodable one.
    """
    if reduce not in _REDUCED_FLAGS:
        raise ValueError(f"read_image: reduce must be one of {sorted(_REDUCED_FLAGS)}, got {reduce}")
    path = Path(path)
    data = _read_checked(path)
    direct_rgb = color_rgb and reduce == 1 and _RGB_FLAGS is not None
    if direct_rgb:
        flags = _RGB_FLAGS | cv2.IMREAD_IGNORE_ORIENTATION
    else:
        flags = _BASE_FLAGS if reduce == 1 else (_REDUCED_FLAGS[reduce] | cv2.IMREAD_IGNORE_ORIENTATION)
    image = cv2.imdecode(data, flags)
    if image is None:
        raise ImageReadError(f"cannot decode image (not a supported image format or corrupt): {path}")
    if color_rgb and not direct_rgb:
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    return image


def read_jpeg_bytes(path: str | Path) -> np.ndarray:
    """The encoded bytes of a complete JPEG file (uint8, 1-D), for decoding elsewhere (nvJPEG on the GPU).

    Same checks as :func:`read_image` short of decoding; anything but a JPEG is an ImageReadError
    because the GPU decoder reads JPEG only.
    """
    path = Path(path)
    data = _read_checked(path)
    if data[:2].tobytes() != _JPEG_SOI:
        raise ImageReadError(f"not a JPEG file (data.decode=gpu decodes JPEG only): {path}")
    return data


def _read_checked(path: Path) -> np.ndarray:
    """File bytes, refusing a missing, empty or truncated-JPEG file with a message naming it."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except IsADirectoryError:
        raise ImageReadError(f"image path is a directory, not a file: {path}") from None
    if data.size == 0:
        raise ImageReadError(f"image file is empty: {path}")
    buffer = data.tobytes()
    if buffer[:2] == _JPEG_SOI and _JPEG_EOI not in buffer[-_EOI_SEARCH_BYTES:]:
        raise ImageReadError(f"truncated JPEG (no end-of-image marker): {path}")
    return data


def reduced_to_full(reduce: int) -> np.ndarray:
    """3x3 affine taking pixel coordinates of a ``reduce``-times reduced decode to full-image pixels.

    libjpeg's scaled IDCT makes reduced pixel i the average of full pixels reduce*i .. reduce*i+reduce-1,
    whose centre is reduce*i + (reduce-1)/2. Composing a full-image crop transform with this matrix
    samples the reduced image at the same scene points (only the pre-filtering differs: box average
    instead of the bilinear taps on full-resolution pixels).
    """
    offset = (reduce - 1) / 2.0
    return np.array([[reduce, 0.0, offset], [0.0, reduce, offset], [0.0, 0.0, 1.0]], dtype=np.float64)
