"""The instance record: one object (person or face) to crop, as the annotation rules produced it.

Kept apart from the readers that build records (``coco.gt_records``, ``coco.detection_records``,
``face_records.face_records``) so each of them can depend on it without depending on the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrnet_train.geometry import PIXEL_STD


@dataclass
class InstanceRecord:
    """One instance to crop. ``joints`` is (J, 3) [x, y, v] with v in {0, 1} (spec 3.1)."""

    image_id: int
    image_file: Path
    center: np.ndarray  # (2,) float64
    scale: np.ndarray  # (2,) float64, box size / 200 after aspect fix and x1.25
    joints: np.ndarray  # (J, 3) float64
    box_score: float  # 1.0 for GT boxes
    area: float  # annotation area (COCOeval); raw box area w*h for detector boxes
    bbox: np.ndarray  # (4,) xywh: clean_bbox for GT, raw for detections
    image_size: tuple[int, int]  # (height, width) from the annotation file
    annotation_id: int = -1  # -1 for detector boxes

    @property
    def padded_area(self) -> float:
        """Reference OKS-NMS area: the padded crop box (200 s_w)(200 s_h)."""
        return float(np.prod(self.scale * PIXEL_STD))
