"""Face instances of a COCO-style face file, by the official HRNet face rules (spec A.7, A.9, A.11).

Per annotation of the face category (id 1 in mmpose's files and in :func:`write_face_coco`): the
landmarks; the face box from the annotation's ``center``/``scale`` (the HRNet CSV fields) or, when
absent, from the landmark extent with the official floor/ceil recipe; ``scale`` x 1.25 always (the
official loaders do it at load time). A landmark has a target when its y > 0 (the official rule;
COCO's v = 0 marks it missing too); the COFW occlusion flags (v = 1) do not matter, as in the
official code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.data.face_formats import FACE_CATEGORY_ID, landmark_box
from hrnet_train.data.records import InstanceRecord
from hrnet_train.keypoints import KeypointSet

FACE_BOX_PADDING = 1.25  # official: scale *= 1.25 in every face dataset's __getitem__


def landmark_center_scale(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The official face box of a set of landmarks (spec A.7; it reproduces the 300W/WFLW CSV fields):
    center = ((floor(x_min) + ceil(x_max)) / 2, (floor(y_min) + ceil(y_max)) / 2),
    scale = max(ceil(x_max) - floor(x_min), ceil(y_max) - floor(y_min)) / 200 (before the x 1.25)."""
    low = np.floor(points.min(axis=0))
    high = np.ceil(points.max(axis=0))
    return (low + high) / 2.0, float(np.max(high - low)) / 200.0


def face_box_center_scale(box: np.ndarray, padding: float = FACE_BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """The official face crop box of a given xywh face box (inference: a detector's or the user's box):
    its centre and a square side = max(w, h), as scale = side / 200 (both entries), x ``padding``."""
    x, y, w, h = (float(v) for v in np.ravel(box)[:4])
    return np.array([x + w / 2.0, y + h / 2.0]), np.full(2, max(w, h) / 200.0 * padding)


def face_records(
    coco: COCO, img_dir: str | Path, keypoints: KeypointSet, ann_file: str | Path = "<annotations>",
    padding: float = FACE_BOX_PADDING,
) -> list[InstanceRecord]:
    """Face instances in ``coco.getImgIds()`` order; annotations without any labelled landmark are skipped."""
    img_dir = Path(img_dir)
    expected = 3 * keypoints.num_joints
    records = []
    for image_id in coco.getImgIds():
        image = coco.imgs[image_id]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
            if ann["category_id"] != FACE_CATEGORY_ID:
                continue
            where = f"{ann_file}: image {image_id} annotation {ann['id']}"
            raw = ann.get("keypoints")
            if raw is None or len(raw) != expected:
                raise ValueError(
                    f"{where}: field keypoints: {'missing' if raw is None else f'{len(raw)} values'}, expected "
                    f"{expected} (3 x {keypoints.num_joints} landmarks of keypoint set {keypoints.name!r})"
                )
            joints = _landmark_values(raw, where, keypoints)
            labelled = (joints[:, 1] > 0) & (joints[:, 2] > 0)
            if not labelled.any():
                continue
            joints[:, 2] = labelled
            center, scale = _center_scale(ann, joints[labelled, :2], where)
            bbox = np.asarray(ann["bbox"], dtype=np.float64) if ann.get("bbox") else landmark_box(joints[labelled, :2])
            records.append(InstanceRecord(
                image_id=int(image_id),
                image_file=img_dir / image["file_name"],
                center=center,
                scale=np.full(2, scale * padding),
                joints=joints,
                box_score=1.0,
                area=float(ann.get("area", bbox[2] * bbox[3])),
                bbox=bbox,
                image_size=(int(image["height"]), int(image["width"])),
                annotation_id=int(ann["id"]),
            ))
    return records


def _landmark_values(raw: list, where: str, keypoints: KeypointSet) -> np.ndarray:
    """(J, 3) float64 landmarks; a null, string or non-finite value or a flag outside {0, 1, 2} is a
    ValueError naming the value's index (a NaN coordinate used to read as "missing": y > 0 is false)."""
    odd = next(((i, v) for i, v in enumerate(raw) if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if odd is not None:  # numpy would read null as nan and "12" as 12
        raise ValueError(f"{where}: keypoints[{odd[0]}] is {odd[1]!r} (a {type(odd[1]).__name__}), expected a number")
    values = np.asarray(raw, dtype=np.float64)
    not_finite = np.flatnonzero(~np.isfinite(values))
    if len(not_finite):
        raise ValueError(f"{where}: keypoints[{not_finite[0]}] is {values[not_finite[0]]}, expected a finite number")
    joints = values.reshape(-1, 3)
    flags = np.flatnonzero(~np.isin(joints[:, 2], (0.0, 1.0, 2.0)))
    if len(flags):
        j = int(flags[0])
        raise ValueError(f"{where}: keypoints[{3 * j + 2}], the visibility flag of landmark {j} "
                         f"({keypoints.names[j]}), is {joints[j, 2]:g}, expected 0, 1 or 2")
    return joints


def _center_scale(ann: dict, points: np.ndarray, where: str) -> tuple[np.ndarray, float]:
    """The annotation's ``center``/``scale`` when both are there, else the landmark-extent recipe."""
    if ann.get("center") is None or ann.get("scale") is None:
        return landmark_center_scale(points)
    center = np.asarray(ann["center"], dtype=np.float64).reshape(-1)
    scale = float(np.ravel(ann["scale"])[0])
    if center.shape != (2,) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"{where}: fields center/scale: expected [x, y] and a scale > 0, got {ann['center']!r}, {ann['scale']!r}")
    return center, scale
