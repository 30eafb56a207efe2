"""Segmentation pictures: label maps in a class palette, blended over the image, as one PNG panel.

A panel is image | image + ground truth | image + prediction side by side, with a legend of the
classes that occur. Ignored pixels (255) stay unblended in the overlays (and are ``IGNORE_COLOR`` in
:func:`colorize`), so what the metric skips is visible. Only OpenCV is used. Colours are RGB throughout
(the palette's convention); :func:`save_panel` converts for writing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hrnet_train.seg_classes import IGNORE_LABEL, SegClasses

IGNORE_COLOR = (255, 255, 255)  # RGB white
LEGEND_ROW = 18  # px per legend line


def colorize(labels: np.ndarray, classes: SegClasses) -> np.ndarray:
    """(H, W) class ids / 255 -> (H, W, 3) uint8 RGB in the class palette (255 -> IGNORE_COLOR)."""
    labels = np.asarray(labels).astype(np.int64)
    if not np.all((labels >= 0) & ((labels < classes.num_classes) | (labels == IGNORE_LABEL))):
        raise ValueError(f"colorize: label values outside 0..{classes.num_classes - 1} and {IGNORE_LABEL}")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: classes.num_classes] = classes.palette
    table[IGNORE_LABEL] = IGNORE_COLOR
    return table[labels]


def blend(image: np.ndarray, labels: np.ndarray, classes: SegClasses, alpha: float = 0.5) -> np.ndarray:
    """RGB ``image`` with the coloured ``labels`` laid over it at opacity ``alpha`` (255 left unblended)."""
    if image.shape[:2] != np.shape(labels) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"blend: expected a uint8 (H, W, 3) image of the label size {np.shape(labels)}, got {image.shape}")
    colours = colorize(labels, classes).astype(np.float32)
    mixed = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    ignored = np.asarray(labels) == IGNORE_LABEL
    mixed[ignored] = image[ignored]
    return np.ascontiguousarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8))


def overlay_panel(
    image: np.ndarray,
    label: np.ndarray | None,
    prediction: np.ndarray | None,
    classes: SegClasses,
    alpha: float = 0.5,
) -> np.ndarray:
    """uint8 RGB panel: image | GT overlay | prediction overlay (absent ones left out) + a legend strip."""
    views = [np.array(image, order="C")] + [blend(image, m, classes, alpha) for m in (label, prediction) if m is not None]
    titles = ["image"] + [t for t, m in (("ground truth", label), ("prediction", prediction)) if m is not None]
    for view, title in zip(views, titles):
        cv2.putText(view, title, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(view, title, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    panel = np.concatenate(views, axis=1)
    present = sorted({int(v) for m in (label, prediction) if m is not None for v in np.unique(m)} - {IGNORE_LABEL})
    return np.concatenate([panel, _legend(present, classes, panel.shape[1])], axis=0)


def _legend(class_ids: list[int], classes: SegClasses, width: int) -> np.ndarray:
    """Swatch + name of each class id, wrapped into rows of ``width`` px (white background)."""
    entry_width = 150
    per_row = max(1, width // entry_width)
    rows = max(1, -(-len(class_ids) // per_row))
    strip = np.full((rows * LEGEND_ROW + 4, width, 3), 255, dtype=np.uint8)
    for slot, class_id in enumerate(class_ids):
        row, col = divmod(slot, per_row)
        x, y = col * entry_width + 5, row * LEGEND_ROW + 4
        colour = tuple(int(c) for c in classes.palette[class_id])
        cv2.rectangle(strip, (x, y), (x + 12, y + 12), colour, -1)
        cv2.rectangle(strip, (x, y), (x + 12, y + 12), (0, 0, 0), 1)
        cv2.putText(strip, f"{class_id} {classes.names[class_id]}"[:20], (x + 17, y + 11),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def save_panel(path: str | Path, panel: np.ndarray) -> Path:
    """Write an RGB panel as PNG (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write overlay PNG: {path}")
    return path
