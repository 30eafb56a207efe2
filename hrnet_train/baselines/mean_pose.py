"""No-learning baseline: the training set's mean pose, stretched into each ground-truth box.

WHY: a dataset on which this scores high would not show that a model learned anything. The
synthetic dataset is calibrated so this baseline stays far below a trained model; the number is
also a floor that any training run must clear.

Each labelled keypoint (v > 0) of a training person is normalised to its box,
``((x - box_x) / box_w, (y - box_y) / box_h)``; the per-joint mean of those is placed into every
validation ground-truth box (all with score 1.0) and scored with COCO keypoint OKS AP.

CLI: ``python -m hrnet_train.baselines.mean_pose train_ann=TRAIN_JSON val_ann=VAL_JSON``.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_train.cli_args import CommandLine, Option, UsageError, run_tool

# The order of COCOeval.stats for iouType="keypoints".
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _load_coco(annotations: COCO | Path | str) -> COCO:
    if isinstance(annotations, COCO):
        return annotations
    path = Path(annotations)
    if not path.is_file():
        raise FileNotFoundError(f"COCO keypoint annotation file not found: {path}")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        return COCO(str(path))


def mean_normalised_pose(train: COCO | Path | str) -> np.ndarray:
    """(J, 2) per-joint mean of box-normalised labelled keypoints over the training persons."""
    coco = _load_coco(train)
    sums, counts = None, None
    for ann in coco.loadAnns(coco.getAnnIds(iscrowd=False)):
        x, y, w, h = ann["bbox"]
        if ann.get("num_keypoints", 0) == 0 or w <= 0 or h <= 0:
            continue
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        if sums is None:
            sums, counts = np.zeros((len(keypoints), 2)), np.zeros(len(keypoints))
        labelled = keypoints[:, 2] > 0
        sums[labelled] += (keypoints[labelled, :2] - (x, y)) / (w, h)
        counts[labelled] += 1
    if sums is None:
        raise ValueError("mean pose baseline: the training annotations hold no person with labelled keypoints")
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"mean pose baseline: joints {missing} are never labelled in the training annotations")
    return sums / counts[:, None]


def mean_pose_baseline(train_ann: COCO | Path | str, val_ann: COCO | Path | str) -> list[dict]:
    """COCO keypoint results: the training mean pose placed into every val GT box (score 1.0)."""
    mean_pose = mean_normalised_pose(train_ann)
    val = _load_coco(val_ann)
    results = []
    for ann in val.loadAnns(val.getAnnIds(iscrowd=False)):
        x, y, w, h = ann["bbox"]
        points = mean_pose * (w, h) + (x, y)
        keypoints = np.concatenate([points, np.ones((len(points), 1))], axis=1)
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": [round(float(v), 3) for v in keypoints.reshape(-1)], "score": 1.0})
    return results


def evaluate_keypoint_results(gt: COCO | Path | str, results: list[dict]) -> dict[str, float]:
    """COCO OKS AP/AR (pycocotools default sigmas) of ``results`` against ``gt``."""
    if not results:
        raise ValueError("keypoint evaluation: the results list is empty (pycocotools cannot score it)")
    coco_gt = _load_coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(KEYPOINT_STAT_NAMES, evaluator.stats)}


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.baselines.mean_pose",
    summary="The no-learning baseline: the training set's mean pose in every val GT box, scored with COCO OKS AP.",
    options=(Option("train_ann", "training COCO keypoint file", required=True),
             Option("val_ann", "validation COCO keypoint file", required=True)),
    examples=("python -m hrnet_train.baselines.mean_pose train_ann=data/synthetic/annotations/person_keypoints_train.json "
              "val_ann=data/synthetic/annotations/person_keypoints_val.json",),
)


def main(argv: Sequence[str] | None = None) -> None:
    args = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    try:
        results = mean_pose_baseline(args["train_ann"], args["val_ann"])
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    stats = evaluate_keypoint_results(args["val_ann"], results)
    print("mean-pose baseline: " + "  ".join(f"{name} {value:.3f}" for name, value in stats.items()))


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
