"""The one image reader of datasets, evaluation, inference and the demo: strict decoding, one EXIF policy.

Strict: OpenCV returns None for an undecodable file, but for a JPEG whose entropy-coded data is
damaged it "succeeds" with grey or garbage blocks: libjpeg only prints "Corrupt JPEG data: ..." to
stderr, naming no file (Pillow drops the warning altogether). Training or evaluating on such a
picture corrupts results without a sign, so the C library's stderr is captured around each decode
(:func:`_decode_strict`) and any libjpeg warning makes the image an :class:`ImageReadError` that
names the file. A JPEG cut short is found before decoding (no end-of-image marker after its first
scan), which is also what the GPU path (:func:`read_jpeg_bytes`) relies on; bytes after a complete
image (padding, appended data) are allowed, as every decoder ignores them.

EXIF policy: by default the stored pixels, orientation tag ignored -- the reference's
``IMREAD_IGNORE_ORIENTATION`` (spec 3.4), and what COCO-style annotations refer to. ``exif_rotate=True``
applies the tag instead (a phone photo shown upright); whoever offers that says when it changed the
image (:func:`exif_orientation` reads the tag).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# Reference flags (spec 3.4 step 1): colour decode, EXIF orientation ignored (applied here when asked).
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
_JPEG_SOS = 0xDA
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a length field
# libjpeg's warnings (jerror.h JWRN_*) that mean the pixels are not the file's: damaged or missing data.
_LIBJPEG_CORRUPT = (b"Corrupt JPEG data", b"Premature end of JPEG file", b"Invalid SOS parameters",
                    b"Inconsistent progression sequence")
_EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the array operation that shows the image upright (as OpenCV's own EXIF handling).
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: a.transpose(1, 0, 2)[::-1],
}


class ImageReadError(ValueError):
    """A file exists but cannot be decoded as a complete, undamaged image."""


def read_image(path: str | Path, color_rgb: bool = True, reduce: int = 1, exif_rotate: bool = False) -> np.ndarray:
    """Decode ``path`` to a uint8 HxWx3 array (RGB if ``color_rgb`` else BGR; grey images get 3 channels).

    ``reduce`` in {1, 2, 4, 8} decodes a JPEG at 1/reduce of its size (see :func:`reduced_to_full`
    for how pixel coordinates relate). ``exif_rotate`` applies the EXIF orientation tag (default: the
    stored pixels, as the datasets and the reference read them). Raises FileNotFoundError for a missing
    file and :class:`ImageReadError` (a ValueError) for an empty, truncated, damaged or undecodable one.
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
    image = _decode_strict(data, flags, path)
    if color_rgb and not direct_rgb:
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    orientation = exif_orientation(data) if exif_rotate else 1
    return np.ascontiguousarray(_ORIENT[orientation](image)) if orientation in _ORIENT else image


def exif_orientation(source: str | Path | np.ndarray | bytes) -> int:
    """The EXIF Orientation tag of an image file or its bytes: 1 (as stored) to 8; 1 when absent.

    A file Pillow cannot parse, or a value outside 1-8, counts as 1: nothing is known to rotate.
    """
    data = source.tobytes() if isinstance(source, np.ndarray) else source
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else Path(data)) as image:
            value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def check_image_array(image: object, field: str) -> np.ndarray:
    """``image`` as the pipelines take it -- a uint8 (H, W, 3) array with H, W >= 1 -- or a ValueError
    naming ``field``, what was expected and what it got (a 0x0 array would otherwise fail deep inside
    OpenCV or give an empty box)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{field}: expected a uint8 (H, W, 3) image array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape[:2]:
        raise ValueError(f"{field}: expected a uint8 (H, W, 3) image array with H, W >= 1, got {image.dtype} {image.shape}")
    return image


def read_jpeg_bytes(path: str | Path) -> np.ndarray:
    """The encoded bytes of a complete JPEG file (uint8, 1-D), for decoding elsewhere (nvJPEG on the GPU).

    Same checks as :func:`read_image` short of decoding (so damaged entropy-coded data is the GPU
    decoder's to notice); anything but a JPEG is an ImageReadError because the GPU decoder reads JPEG only.
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
    buffer = memoryview(data)
    if buffer[:2] == _JPEG_SOI:
        scan = _first_scan(buffer)
        if scan is None:
            raise ImageReadError(f"broken JPEG (its headers are damaged or cut short before any image data): {path}")
        if buffer[-2:] != _JPEG_EOI and bytes(buffer[scan:]).rfind(_JPEG_EOI) < 0:
            raise ImageReadError(f"truncated JPEG (no end-of-image marker after the image data): {path}")
    return data


def _first_scan(buffer: memoryview) -> int | None:
    """Offset of the first scan's entropy-coded data, found by walking the marker segments; None when
    the headers end (or break off) before a scan starts.

    The end-of-image marker must come after it: earlier, an embedded EXIF thumbnail has its own; from
    there on, byte stuffing keeps 0xFF 0xD9 out of scan data, so only the image's end (or bytes appended
    after it) can hold one.
    """
    offset = 2
    while offset + 4 <= len(buffer):
        if buffer[offset] != 0xFF:
            return None
        marker = buffer[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
        elif marker in _JPEG_STANDALONE:
            offset += 2
        else:
            end = offset + 2 + int.from_bytes(buffer[offset + 2 : offset + 4], "big")
            if marker == _JPEG_SOS:
                return end
            offset = end
    return None


# ------------------------------------------------------------------ strict decode

_capture_lock = threading.Lock()
_capture_file: BinaryIO | None = None  # this process's anonymous file that stderr points at during a decode


def _reset_capture() -> None:
    """A forked process (a DataLoader worker) gets its own lock and capture file."""
    global _capture_lock, _capture_file
    _capture_lock, _capture_file = threading.Lock(), None


os.register_at_fork(after_in_child=_reset_capture)


def _decode_strict(data: np.ndarray, flags: int, path: Path) -> np.ndarray:
    """``cv2.imdecode`` with libjpeg's warnings turned into an ImageReadError naming ``path``.

    libjpeg writes its warnings with fprintf(stderr) from C, out of Python's reach, so file descriptor 2
    points at a temporary file for the length of the decode. The lock keeps captures of threads in one
    process apart (decodes there run one at a time; loader workers are processes, each with its own);
    anything else written to stderr meanwhile is written back to it afterwards.
    """
    global _capture_file
    with _capture_lock:
        if _capture_file is None:
            _capture_file = tempfile.TemporaryFile(buffering=0)
        capture = _capture_file.fileno()
        saved = os.dup(2)
        os.dup2(capture, 2)
        try:
            image = cv2.imdecode(data, flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        written = os.lseek(capture, 0, os.SEEK_CUR)
        captured = b""
        if written:
            os.lseek(capture, 0, os.SEEK_SET)
            captured = os.read(capture, written)
            os.ftruncate(capture, 0)
            os.lseek(capture, 0, os.SEEK_SET)
    lines = captured.splitlines(keepends=True)
    warnings = [line.decode(errors="replace").strip() for line in lines if line.startswith(_LIBJPEG_CORRUPT)]
    others = b"".join(line for line in lines if not line.startswith(_LIBJPEG_CORRUPT))
    if others:
        os.write(2, others)
    if warnings:
        raise ImageReadError(f"corrupt image data (libjpeg: {'; '.join(dict.fromkeys(warnings))}): {path}")
    if image is None:
        raise ImageReadError(f"cannot decode image (not a supported image format or corrupt): {path}")
    return image


def reduced_to_full(reduce: int) -> np.ndarray:
    """3x3 affine taking pixel coordinates of a ``reduce``-times reduced decode to full-image pixels.

    libjpeg's scaled IDCT makes reduced pixel i the average of full pixels reduce*i .. reduce*i+reduce-1,
    whose centre is reduce*i + (reduce-1)/2. Composing a full-image crop transform with this matrix
    samples the reduced image at the same scene points (only the pre-filtering differs: box average
    instead of the bilinear taps on full-resolution pixels). It assumes no EXIF rotation.
    """
    offset = (reduce - 1) / 2.0
    return np.array([[reduce, 0.0, offset], [0.0, reduce, offset], [0.0, 0.0, 1.0]], dtype=np.float64)
