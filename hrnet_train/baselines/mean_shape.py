"""No-learning face baseline: the training set's mean shape placed into each validation face box, scored with NME.

WHY: a trained landmark model must beat this by a wide margin to show that it learned anything (the
synthetic face set is calibrated against it). The face box is the official one the model's crop is
built from (``center``/``scale`` of the annotation, else the floor/ceil landmark box; spec A.7):
each training face's landmarks are normalised as ``(p - center) / (200 * scale)``, the per-landmark
mean is mapped back into every validation face's box.

CLI: ``python -m hrnet_train.baselines.mean_shape TRAIN_JSON VAL_JSON [KEYPOINT_SET]`` (default face300w68).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.data.coco import load_coco
from hrnet_train.data.face_records import face_records
from hrnet_train.data.records import InstanceRecord
from hrnet_train.evaluation.nme import NMEResult, annotation_nme
from hrnet_train.keypoints import KeypointSet, load_keypoint_set


def _faces(annotations: COCO | Path | str, keypoints: KeypointSet) -> tuple[COCO, list[InstanceRecord]]:
    """The file and its face records with the unpadded official box (no images are read here)."""
    coco = annotations if isinstance(annotations, COCO) else load_coco(annotations)
    return coco, face_records(coco, ".", keypoints, padding=1.0)


def mean_face_shape(train: COCO | Path | str, keypoints: KeypointSet) -> np.ndarray:
    """(L, 2) mean of the box-normalised training landmarks ((p - center) / (200 scale))."""
    _, records = _faces(train, keypoints)
    if not records:
        raise ValueError("mean shape baseline: the training annotations hold no face with labelled landmarks")
    shapes = np.stack([(r.joints[:, :2] - r.center) / (200.0 * r.scale[0]) for r in records])
    return shapes.mean(axis=0)


def mean_shape_predictions(train: COCO | Path | str, val: COCO | Path | str, keypoints: KeypointSet) -> dict[int, np.ndarray]:
    """Annotation id -> (L, 2): the training mean shape in every validation face box."""
    mean_shape = mean_face_shape(train, keypoints)
    _, records = _faces(val, keypoints)
    return {r.annotation_id: r.center + mean_shape * (200.0 * r.scale[0]) for r in records}


def mean_shape_nme(train: COCO | Path | str, val: COCO | Path | str, keypoints: KeypointSet | str = "face300w68") -> NMEResult:
    """NME / FR / AUC of the mean-shape baseline on ``val``."""
    keypoints = load_keypoint_set(keypoints)
    coco, _ = _faces(val, keypoints)
    return annotation_nme(coco, keypoints, mean_shape_predictions(train, coco, keypoints))


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) not in (2, 3):
        raise SystemExit("usage: python -m hrnet_train.baselines.mean_shape TRAIN_JSON VAL_JSON [KEYPOINT_SET]")
    result = mean_shape_nme(args[0], args[1], args[2] if len(args) == 3 else "face300w68")
    print("mean-shape baseline: " + "  ".join(f"{name} {100 * value:.2f}%" for name, value in result.summary().items()))


if __name__ == "__main__":
    main()
