"""A PNG contact sheet of the worst-predicted persons: ground truth in green, prediction in red.

Numbers say how often a model fails; a look at its worst cases says why (occlusion, crowding,
truncation, left/right confusion). Only OpenCV is used, so it runs wherever evaluation runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO

from hrnet_train.drawing import draw_skeleton
from hrnet_train.image_io import read_image
from hrnet_train.keypoints import KeypointSet
from hrnet_train.evaluation.analysis import ErrorAnalysis, InstanceMatch

GT_COLOR = (0, 200, 0)  # BGR green
PRED_COLOR = (0, 0, 230)  # BGR red
CONTEXT = 1.25  # crop = GT box grown by 25 % (the model's own padding)


def _tile_transform(bbox: Sequence[float], tile_hw: tuple[int, int]) -> np.ndarray:
    """Affine image -> tile that fits the padded box, centred, with the tile's aspect ratio."""
    x, y, w, h = (float(v) for v in bbox)
    tile_h, tile_w = tile_hw
    factor = min(tile_w / max(w * CONTEXT, 1.0), tile_h / max(h * CONTEXT, 1.0))
    cx, cy = x + w / 2.0, y + h / 2.0
    return np.array([[factor, 0.0, tile_w / 2.0 - factor * cx], [0.0, factor, tile_h / 2.0 - factor * cy]])


def render_tile(
    image: np.ndarray,
    annotation: Mapping,
    predicted: np.ndarray,
    keypoint_set: KeypointSet,
    caption: str,
    tile_hw: tuple[int, int] = (256, 192),
) -> np.ndarray:
    """One person: crop around the GT box, GT joints (labelled ones) and all predicted joints drawn."""
    trans = _tile_transform(annotation["bbox"], tile_hw)
    tile = cv2.warpAffine(image, trans, (tile_hw[1], tile_hw[0]), flags=cv2.INTER_LINEAR)
    gt = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)

    def to_tile(points: np.ndarray) -> np.ndarray:
        return points[:, :2] @ trans[:, :2].T + trans[:, 2]

    draw_skeleton(tile, to_tile(gt), gt[:, 2] > 0, keypoint_set.skeleton, GT_COLOR, radius=3, thickness=2)
    draw_skeleton(tile, to_tile(predicted), np.ones(len(predicted), dtype=bool), keypoint_set.skeleton, PRED_COLOR,
                  radius=3, thickness=2)
    cv2.rectangle(tile, (0, 0), (tile_hw[1] - 1, 18), (0, 0, 0), -1)
    cv2.putText(tile, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def render_worst_gallery(
    analysis: ErrorAnalysis,
    coco_gt: COCO,
    results: Sequence[Mapping],
    img_dir: str | Path,
    keypoint_set: KeypointSet,
    out_path: str | Path,
    n: int = 16,
    columns: int = 4,
    tile_hw: tuple[int, int] = (256, 192),
) -> Path:
    """Write a grid PNG of the ``n`` matched persons with the lowest OKS (worst first) and return its path.

    ``results`` must be the list ``analysis`` was computed from (matches index into it).
    """
    worst: list[InstanceMatch] = analysis.worst(n)
    if not worst:
        raise ValueError("render_worst_gallery: the analysis has no matched persons to show")
    img_dir = Path(img_dir)
    tiles = []
    for match in worst:
        path = img_dir / coco_gt.imgs[match.image_id]["file_name"]
        try:  # the stored pixels, which the keypoints refer to (cv2.imread would apply EXIF rotation)
            image = read_image(path, color_rgb=False)
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"gallery: {error} (image id {match.image_id})") from None
        predicted = np.asarray(results[match.result_index]["keypoints"], dtype=np.float64).reshape(-1, 3)
        caption = f"OKS {match.oks:.2f}  image {match.image_id}"
        tiles.append(render_tile(image, coco_gt.anns[match.annotation_id], predicted, keypoint_set, caption, tile_hw))
    columns = min(columns, len(tiles))
    blank = np.zeros_like(tiles[0])
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        rows.append(np.concatenate(row + [blank] * (columns - len(row)), axis=1))
    grid = np.concatenate(rows, axis=0)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), grid):
        raise OSError(f"gallery: could not write {out_path}")
    return out_path
