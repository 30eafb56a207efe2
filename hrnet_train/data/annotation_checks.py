"""What a valid COCO keypoint file, detection file or results file holds, checked where it is read.

pycocotools indexes whatever it is given: a repeated annotation id silently replaces the first, a
``null`` keypoint becomes NaN, a string score compares wrongly, a missing ``area`` drops the
annotation without a word. Each problem here names the file, the record (image id, annotation id or
entry index), the field and what was expected.

Two classes of problem:

- **structure** (:func:`check_structure`): the file cannot be indexed faithfully -- an image or
  annotation entry that is not an object, ids of the wrong type, repeated annotation ids, one image id
  listed with different files. Always an error: no record could be trusted to be the right one.
- **values** (:func:`keypoint_annotation_problems`, :func:`detection_problems`): one record is unusable
  -- its box (``INVALID_BOX``: not overlapping the image, empty, non-finite;
  :func:`~hrnet_train.geometry.box_problems`) or its other fields (``CORRUPT_ANNOTATION`` /
  ``CORRUPT_DETECTION``: a bbox that is not four numbers, a missing or negative ``area``, ``null`` or
  non-finite keypoints, visibility flags outside {0, 1, 2}, labelled joints more than one image size
  outside the image, a score that is not a finite number). The readers raise for them, or with
  ``drop_invalid_boxes`` (boxes) / ``skip_corrupt`` (the rest) skip and count them
  (:class:`~hrnet_train.data.skips.SkipCounts`).

Bound on coordinates: a labelled joint must lie within one image size of the image
(-W <= x <= 2W, -H <= y <= 2H). Annotators place joints slightly outside the frame (a hand cut off by
the border), never a whole image away; such values come from a unit or export error.

Speed: one Python loop over the records gathers their fields; the checks are numpy over all of them
(the full COCO val2017 file in a fraction of its JSON load time). Only when something is wrong does a
second pass locate it in the offending rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.data.skips import SkipCounts
from hrnet_train.geometry import box_problems
from hrnet_train.keypoints import KeypointSet

INVALID_BOX = "invalid box"
CORRUPT_ANNOTATION = "corrupt annotation"
CORRUPT_DETECTION = "corrupt detection"
VISIBILITY_FLAGS = (0, 1, 2)  # COCO: 0 unlabelled, 1 labelled but occluded, 2 labelled and visible
MISSING = object()  # a field absent from its record (told apart from an explicit null)


@dataclass(frozen=True)
class Problem:
    """Why one record cannot be used: its kind (which option skips it) and the reason, field first."""

    kind: str
    text: str


def is_integer_id(value: object) -> bool:
    """COCO ids are JSON integers (not strings, floats or booleans)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def numeric_rows(
    values: Sequence[Any], length: int, field: str, expected: str | None = None
) -> tuple[np.ndarray, dict[int, str]]:
    """``values`` (one list of ``length`` numbers per record) as an (N, length) float64 array, NaN in the
    rows that are not such a list, plus why for those rows (``expected`` describes the list, default
    "N numbers").

    The common case (every row fine) is one ``np.asarray``; numpy's own conversion would turn "1.5" or
    None into numbers or NaN silently, so the dtype it picks is what tells them apart.
    """
    try:
        array = np.asarray(values)
        if array.dtype.kind in "iuf" and array.shape == (len(values), length):
            return array.astype(np.float64, copy=False), {}
    except ValueError:  # ragged rows
        pass
    out = np.full((len(values), length), np.nan)
    problems: dict[int, str] = {}
    for row, value in enumerate(values):
        problem = _list_problem(value, length, field, expected or f"{length} numbers")
        if problem is None:
            out[row] = value
        else:
            problems[row] = problem
    return out, problems


def _list_problem(value: object, length: int, field: str, expected: str) -> str | None:
    if not isinstance(value, (list, tuple)):
        return f"{field} is {_show(value)}, expected a list of {expected}"
    if len(value) != length:
        return f"{field} has {len(value)} values, expected {expected}"
    for position, item in enumerate(value):
        if not _is_number(item):
            return f"{field}[{position}] is {_show(item)}, expected a number"
    return None


def _show(value: object) -> str:
    """A value as the JSON file spells it, with its type when that is what is wrong."""
    if value is None:
        return "null"
    return f"{value!r} (a {type(value).__name__})" if not _is_number(value) else repr(value)


def number_problems(values: Sequence[Any], field: str, minimum: float | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """``values`` as a float64 array (NaN where not a number) and the rows that are not finite numbers
    (>= ``minimum`` when given), with why; :data:`MISSING` marks an absent field."""
    try:
        array = np.asarray(values)
        numeric = array.dtype.kind in "iuf" and array.shape == (len(values),)
    except ValueError:
        numeric = False
    if numeric:
        array = array.astype(np.float64, copy=False)
    else:
        array = np.array([value if _is_number(value) else np.nan for value in values], dtype=np.float64)
    bad = ~np.isfinite(array) | (array < minimum if minimum is not None else False)
    bound = "" if minimum is None else f" >= {minimum:g}"
    problems = {}
    for row in np.nonzero(bad)[0]:
        value = values[row]
        shown = f"the '{field}' field is missing" if value is MISSING else f"{field} is {_show(value)}"
        problems[int(row)] = f"{shown}, expected a finite number{bound}"
    return array, problems


# --------------------------------------------------------------------------- structure


def check_structure(dataset: Mapping[str, Any], source: str | Path) -> None:
    """Raise ValueError for a COCO annotation file that cannot be indexed faithfully (see module doc).

    Images listed twice with the same file and size are accepted (some exports repeat the entry per
    annotation); with a different file or size, which one the annotations mean is unknown.
    """
    seen_images: dict[int, tuple] = {}
    for position, image in enumerate(dataset["images"]):
        if not isinstance(image, dict):
            raise ValueError(f"{source}: images[{position}] is {_show(image)}, expected an object with id, file_name, width, height")
        absent = [k for k in ("id", "file_name", "width", "height") if k not in image]
        if absent:
            raise ValueError(f"{source}: image entry {image.get('id', '?')} lacks field(s) {absent}")
        image_id = image["id"]
        if not is_integer_id(image_id):
            raise ValueError(f"{source}: images[{position}].id is {_show(image_id)}, expected an integer image id")
        for side in ("width", "height"):
            if not _is_number(image[side]) or not image[side] >= 1:
                raise ValueError(f"{source}: image {image_id}: {side} is {_show(image[side])}, expected a number >= 1")
        entry = (image["file_name"], image["width"], image["height"])
        if seen_images.setdefault(image_id, entry) != entry:
            raise ValueError(f"{source}: image id {image_id} is listed twice with different files or sizes: "
                             f"{seen_images[image_id]} and {entry} (expected one entry per image id)")
    seen_annotations: dict[int, int] = {}
    for position, ann in enumerate(dataset["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{source}: annotations[{position}] is {_show(ann)}, expected an object")
        absent = [k for k in ("id", "image_id", "bbox", "category_id") if k not in ann]
        if absent:
            raise ValueError(f"{source}: annotation {ann.get('id', '?')} lacks field(s) {absent}")
        for key in ("id", "image_id"):
            if not is_integer_id(ann[key]):
                raise ValueError(f"{source}: annotations[{position}].{key} is {_show(ann[key])}, expected an integer id")
        first = seen_annotations.setdefault(ann["id"], position)
        if first != position:
            raise ValueError(f"{source}: annotation id {ann['id']} is used twice (annotations[{first}] and "
                             f"annotations[{position}]; expected unique ids -- pycocotools would keep only the last)")


# --------------------------------------------------------------------------- values


def keypoint_annotation_problems(coco: COCO, category_id: int, keypoints: KeypointSet) -> dict[int, Problem]:
    """Annotation id -> its first problem, over the annotations of ``category_id`` on listed images.

    Keypoint values are checked where the list has 3 x J entries (a missing or wrong-length list is
    the instance reader's error, with its export hints); crowd annotations are checked too, since
    COCOeval uses their boxes and areas.
    """
    ids, sizes, boxes, areas, lists, listed = [], [], [], [], [], []
    expected = 3 * keypoints.num_joints
    for ann in coco.dataset["annotations"]:  # the one pass over the annotations
        image = coco.imgs.get(ann["image_id"])
        if ann["category_id"] != category_id or image is None:
            continue
        raw = ann.get("keypoints")
        fits = isinstance(raw, list) and len(raw) == expected
        ids.append(ann["id"])
        sizes.append((image["height"], image["width"]))
        boxes.append(ann["bbox"])
        areas.append(ann.get("area", MISSING))
        lists.append(raw if fits else [0] * expected)
        listed.append(fits)
    if not ids:
        return {}
    size = np.asarray(sizes, dtype=np.float64)
    found: dict[int, Problem] = {}

    def note(rows: Iterable[int], kind: str, text: Callable[[int], str]) -> None:
        for row in rows:
            found.setdefault(int(row), Problem(kind, text(int(row))))

    bbox, bbox_problems = numeric_rows(boxes, 4, "bbox")
    note(bbox_problems, CORRUPT_ANNOTATION, bbox_problems.__getitem__)
    _, area_problems = number_problems(areas, "area", minimum=0.0)
    note(area_problems, CORRUPT_ANNOTATION, area_problems.__getitem__)
    values, value_problems = numeric_rows(lists, expected, "keypoints")
    note(value_problems, CORRUPT_ANNOTATION, value_problems.__getitem__)
    joints = values.reshape(len(ids), keypoints.num_joints, 3)
    usable = np.asarray(listed) & np.isfinite(joints).all(axis=(1, 2))
    non_finite = np.asarray(listed) & ~usable & ~np.isin(np.arange(len(ids)), list(value_problems))
    note(np.nonzero(non_finite)[0], CORRUPT_ANNOTATION, lambda row: _first_non_finite(values[row]))
    flags = joints[..., 2]
    bad_flag = usable & ~np.isin(flags, VISIBILITY_FLAGS).all(axis=1)
    note(np.nonzero(bad_flag)[0], CORRUPT_ANNOTATION, lambda row: _bad_flag(flags[row], keypoints))
    height, width = size[:, None, 0], size[:, None, 1]
    x, y = joints[..., 0], joints[..., 1]
    far = (flags > 0) & ((x < -width) | (x > 2 * width) | (y < -height) | (y > 2 * height))
    far_rows = usable & ~bad_flag & far.any(axis=1)
    note(np.nonzero(far_rows)[0], CORRUPT_ANNOTATION, lambda row: _far_joint(joints[row], far[row], size[row], keypoints))
    unusable_boxes = {**_nothing_left_after_clean_bbox(bbox, size), **box_problems(bbox, size)}
    note([row for row in unusable_boxes if row not in bbox_problems], INVALID_BOX,
         lambda row: f"bbox: {unusable_boxes[row]}")
    return {int(ids[row]): problem for row, problem in sorted(found.items())}


def _first_non_finite(values: np.ndarray) -> str:
    position = int(np.nonzero(~np.isfinite(values))[0][0])
    return f"keypoints[{position}] is {float(values[position])!r}, expected a finite number"


def _bad_flag(flags: np.ndarray, keypoints: KeypointSet) -> str:
    joint = int(np.nonzero(~np.isin(flags, VISIBILITY_FLAGS))[0][0])
    return (f"keypoints[{3 * joint + 2}], the visibility flag of joint {joint} ({keypoints.names[joint]}), is "
            f"{flags[joint]:g}, expected 0, 1 or 2")


def _far_joint(joints: np.ndarray, far: np.ndarray, size: np.ndarray, keypoints: KeypointSet) -> str:
    joint = int(np.nonzero(far)[0][0])
    height, width = size
    return (f"keypoints: labelled joint {joint} ({keypoints.names[joint]}) at ({joints[joint, 0]:g}, "
            f"{joints[joint, 1]:g}) lies more than one image size outside the {width:g}x{height:g} image "
            f"(expected {-width:g} <= x <= {2 * width:g}, {-height:g} <= y <= {2 * height:g})")


def _nothing_left_after_clean_bbox(boxes: np.ndarray, sizes: np.ndarray) -> dict[int, str]:
    """Boxes that overlap the image yet start inside its last pixel row or column: the reference's
    ``clean_bbox`` (clip to [0, W-1] x [0, H-1] with its 1-px shrink) leaves nothing of them."""
    x, y = boxes[:, 0], boxes[:, 1]
    height, width = sizes[:, 0], sizes[:, 1]
    rows = np.nonzero(np.isfinite(boxes).all(axis=1) & ((x > width - 1) | (y > height - 1)))[0]
    return {int(row): f"box {boxes[row].tolist()} starts in the last pixel row or column of the "
                      f"{width[row]:g}x{height[row]:g} image: nothing is left of it after clipping" for row in rows}


def detection_problems(
    detections: Sequence[Any], coco: COCO, category_id: int, score_thr: float
) -> tuple[np.ndarray, np.ndarray, dict[int, Problem]]:
    """The entries of a detection results file to use (spec 3.3: category ``category_id``, score >=
    ``score_thr``), their (N, 4) boxes, and entry index -> problem.

    Every entry must be an object with an integer ``image_id``, ``category_id``, ``bbox`` and a finite
    number as ``score``; a used entry's bbox must be four numbers overlapping its image. An image id
    absent from ``coco`` is left to the caller (a wrong pairing of files, not a bad entry).
    """
    found: dict[int, Problem] = {}
    image_sizes, wanted, boxes, scores = [], [], [], []
    for index, det in enumerate(detections):  # the one pass over the entries
        if not isinstance(det, dict):
            found[index] = Problem(CORRUPT_DETECTION, f"entry is {_show(det)}, expected an object")
            det = {}
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in det]
        if missing:
            found.setdefault(index, Problem(CORRUPT_DETECTION, f"lacks field(s) {missing}"))
        image_id = det.get("image_id")
        if not missing and not is_integer_id(image_id):
            found[index] = Problem(CORRUPT_DETECTION, f"image_id is {_show(image_id)}, expected an integer image id "
                                                      "of the annotation file")
        image = coco.imgs.get(image_id) if is_integer_id(image_id) else None
        image_sizes.append((np.nan, np.nan) if image is None else (image["height"], image["width"]))
        wanted.append(det.get("category_id") == category_id and index not in found)
        boxes.append(det.get("bbox"))
        scores.append(det.get("score", MISSING))
    score, score_problems = number_problems(scores, "score")
    for index, text in score_problems.items():
        found.setdefault(index, Problem(CORRUPT_DETECTION, text))
    used = np.nonzero(np.asarray(wanted, dtype=bool) & (score >= score_thr))[0]
    bbox, bbox_problems = numeric_rows([boxes[i] for i in used], 4, "bbox")
    for row, text in bbox_problems.items():
        found.setdefault(int(used[row]), Problem(CORRUPT_DETECTION, text))
    for row, text in box_problems(bbox, np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2)[used]).items():
        if row not in bbox_problems:
            found.setdefault(int(used[row]), Problem(INVALID_BOX, f"bbox: {text}"))
    return used, bbox, dict(sorted(found.items()))


_SKIP_HINTS = {
    INVALID_BOX: "drop_invalid_boxes=True, data.drop_invalid_boxes=true in a run, skips such boxes",
    CORRUPT_ANNOTATION: "skip_corrupt=True, data.skip_corrupt=true in a run, skips such annotations",
    CORRUPT_DETECTION: "skip_corrupt=True, data.skip_corrupt=true in a run, skips such entries",
}


def resolve_problems(
    problems: Mapping[int, Problem], describe: Callable[[int], str], drop_invalid_boxes: bool, skip_corrupt: bool,
    skips: SkipCounts,
) -> set[int]:
    """Raise a ValueError for the first problem that no option skips (``describe(key)`` names the file
    and record); otherwise count every problem in ``skips`` and return their keys, to be left out."""
    skipping = {INVALID_BOX: drop_invalid_boxes, CORRUPT_ANNOTATION: skip_corrupt, CORRUPT_DETECTION: skip_corrupt}
    refused = [(key, problem) for key, problem in problems.items() if not skipping[problem.kind]]
    if refused:
        key, problem = refused[0]
        more = f"; {len(refused) - 1} more record(s) with problems" if len(refused) > 1 else ""
        raise ValueError(f"{describe(key)}: {problem.text} ({_SKIP_HINTS[problem.kind]}{more})")
    for problem in problems.values():
        skips.add(problem.kind)
    return set(problems)
