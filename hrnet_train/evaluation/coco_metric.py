"""COCO OKS AP/AR through pycocotools, with the checks and labels that keep numbers honest.

pycocotools is the metric everybody reports, so it is used as is (spec 6.3); this module adds what
it lacks: clear errors for empty results or foreign image ids, custom sigmas for non-COCO keypoint
sets, silencing of its prints, and a table formatter that always says which boxes were used (AP
with ground-truth boxes is several points above AP with detector boxes and must never be mixed up).
Ground truth without a single labelled joint has no keypoint AP: pycocotools would report -1 as if it
were a result; here every stat is nan and the table prints "n/a" with the reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_train.data.annotation_checks import is_integer_id, number_problems, numeric_rows
from hrnet_train.data.coco import load_coco as load_annotation_file

STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
# COCOeval.summarize order for boxes (small objects and three maxDets recall values).
BBOX_STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"
)
IOU_TYPES = ("keypoints", "bbox")
# A results file scored as given was made with boxes this code did not choose: it gets its own label.
BOX_SOURCE_LABELS = {"gt": "GT-box AP", "detector": "detector-box AP", "results": "results-file AP"}
UNDEFINED_NOTE = "n/a: the ground truth (val split) has no labelled joints, so keypoint AP is undefined"


def _quiet(enabled: bool) -> contextlib.AbstractContextManager:
    return contextlib.redirect_stdout(io.StringIO()) if enabled else contextlib.nullcontext()


def load_coco(gt: COCO | str | Path) -> COCO:
    """A pycocotools COCO object from an object or an annotation file path (structure-checked by
    :func:`hrnet_train.data.coco.load_coco`, as every reader of annotation files)."""
    return gt if isinstance(gt, COCO) else load_annotation_file(gt)


def scored_instances(coco: COCO) -> int:
    """Ground-truth instances COCOeval scores keypoints against: non-crowd annotations with at least one
    labelled joint (``num_keypoints`` > 0, counted from the visibility flags where the field is absent)."""
    def labelled(ann: Mapping) -> int:
        return int(ann.get("num_keypoints", sum(1 for v in (ann.get("keypoints") or [])[2::3] if v > 0)))

    return sum(1 for ann in coco.dataset.get("annotations", []) if not ann.get("iscrowd", 0) and labelled(ann) > 0)


def _check_results(results: list[dict], source: str, coco_gt: COCO, iou_type: str, sigmas: np.ndarray | None) -> None:
    """Every result an object with an integer image id of the ground truth, a finite numeric score and
    3 x J finite numbers as keypoints (or four as bbox): a string score would sort wrongly and a null
    keypoint become NaN inside COCOeval, giving numbers that look like a result."""
    if not results:
        raise ValueError(f"{source}: no results to evaluate (empty list)")
    field = "keypoints" if iou_type == "keypoints" else "bbox"
    length = 4 if iou_type == "bbox" else None if sigmas is None else 3 * len(sigmas)
    scores, values = [], []
    for i, result in enumerate(results):  # the one pass over the results
        if not isinstance(result, dict):
            raise ValueError(f"{source}: result {i} is a {type(result).__name__}, expected an object")
        for key in ("image_id", "score", field):
            if key not in result:
                raise ValueError(f"{source}: result {i} has no '{key}' field")
        image_id = result["image_id"]
        if not is_integer_id(image_id):
            raise ValueError(f"{source}: result {i} has image_id {image_id!r} (a {type(image_id).__name__}), "
                             "expected an integer image id of the ground truth")
        if image_id not in coco_gt.imgs:
            raise ValueError(
                f"{source}: result {i} has image_id {image_id}, which is not in the ground truth"
            )
        scores.append(result["score"])
        values.append(result[field])
    _, problems = number_problems(scores, "score")
    if problems:
        row, text = next(iter(problems.items()))
        raise ValueError(f"{source}: result {row}: {text}")
    if length is None:
        return
    expected = f"3 x {length // 3} = {length} numbers" if field == "keypoints" else None
    array, problems = numeric_rows(values, length, field, expected)
    bad = np.nonzero(~np.isfinite(array).all(axis=1))[0]
    if problems or bad.size:
        row = min([*problems, *bad.tolist()])
        text = problems.get(row) or f"{field} holds a non-finite value ({float(array[row][~np.isfinite(array[row])][0])!r})"
        raise ValueError(f"{source}: result {row}: {text}")


def load_results(
    results: Sequence[Mapping] | str | Path,
    coco_gt: COCO,
    sigmas: np.ndarray | None = None,
    iou_type: str = "keypoints",
) -> list[dict]:
    """COCO result dicts from a list (copied: loadRes would add fields in place) or a JSON file,
    checked against ``coco_gt``: non-empty, required fields, known image ids, 3 x J keypoint values."""
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise FileNotFoundError(f"COCO results file not found: {path}")
        with open(path) as f:
            loaded = json.load(f)
        if not isinstance(loaded, list):
            raise ValueError(f"{path}: expected a JSON list of result dicts, got {type(loaded).__name__}")
        source = str(path)
    else:
        loaded, source = [dict(r) for r in results], "results list"
    _check_results(loaded, source, coco_gt, iou_type, sigmas)
    return loaded


def evaluate_coco_keypoints(
    gt: COCO | str | Path,
    results: Sequence[Mapping] | str | Path,
    sigmas: np.ndarray | Sequence[float] | None = None,
    iou_type: str = "keypoints",
    quiet: bool = True,
) -> dict[str, float]:
    """Run COCOeval and return its summary stats by name (``STAT_NAMES``, 10 values).

    ``sigmas`` replaces COCO's 17 keypoint sigmas for other keypoint sets; ``iou_type='bbox'``
    evaluates person boxes instead (12 values, ``BBOX_STAT_NAMES``). ``quiet`` swallows
    pycocotools' prints.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    coco_gt = load_coco(gt)
    sigma_array = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    result_list = load_results(results, coco_gt, sigma_array, iou_type)
    if iou_type == "keypoints" and scored_instances(coco_gt) == 0:
        return dict.fromkeys(STAT_NAMES, math.nan)  # UNDEFINED_NOTE; pycocotools would say -1
    with _quiet(quiet):
        coco_dt = coco_gt.loadRes(result_list)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if sigma_array is not None:
            evaluator.params.kpt_oks_sigmas = sigma_array
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    names = STAT_NAMES if iou_type == "keypoints" else BBOX_STAT_NAMES
    return {name: float(value) for name, value in zip(names, evaluator.stats, strict=True)}


def format_stats_table(rows: Mapping[str, Mapping[str, float]], box_source: str, digits: int = 4) -> str:
    """Markdown table of COCO stats, one row per run, with the box source in the AP column header.

    ``box_source`` is ``'gt'`` or ``'detector'``; the header reads "GT-box AP" or "detector-box AP"
    so a table can never be read as the other kind. An undefined (nan) stat is written "n/a", and a
    table with an undefined AP ends with :data:`UNDEFINED_NOTE`.
    """
    if box_source not in BOX_SOURCE_LABELS:
        raise ValueError(f"box_source must be one of {tuple(BOX_SOURCE_LABELS)}, got {box_source!r}")
    if not rows:
        raise ValueError("format_stats_table needs at least one row")
    headers = ["run", BOX_SOURCE_LABELS[box_source], *STAT_NAMES[1:]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for run, stats in rows.items():
        missing = [name for name in STAT_NAMES if name not in stats]
        if missing:
            raise ValueError(f"stats of run {run!r} lack {missing}")
        lines.append("| " + " | ".join([run, *(_cell(stats[name], digits) for name in STAT_NAMES)]) + " |")
    if any(math.isnan(stats["AP"]) for stats in rows.values()):
        lines.append(UNDEFINED_NOTE)
    return "\n".join(lines)


def _cell(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
