"""Annotations are validated where they are read (hrnet_train/data/annotation_checks.py): COCO keypoint
files, detection files and results files. Every case is a corrupted copy of coco_tiny's real file:
without an option it is a ValueError naming file, record, field and what was expected; with
``drop_invalid_boxes`` / ``skip_corrupt`` the record is skipped, counted and gone from the ground truth."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from hrnet_train.codecs import create_codec
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.evaluation.coco_metric import evaluate_coco_keypoints
from hrnet_train.keypoints import load_keypoint_set

COCO17 = load_keypoint_set("coco17")
CODEC = create_codec("legacy", (256, 192))
ANN_ID, IMAGE_ID = 442619, 785  # the first annotation of coco_tiny, on a 640x425 image
DET_FILE = "person_detection_results/COCO_val2017_detections_AP_H_56_person_tiny.json"


def dataset(ann: Path, img_dir: Path, **kwargs) -> TopDownCocoDataset:
    return TopDownCocoDataset(ann, img_dir, COCO17, CODEC, train=False, **kwargs)


def first(data: dict) -> dict:
    return data["annotations"][0]


def set_keypoint(position: int, value: object) -> Callable[[dict], None]:
    return lambda data: first(data)["keypoints"].__setitem__(position, value)


def set_field(name: str, value: object) -> Callable[[dict], None]:
    return lambda data: first(data).__setitem__(name, value)


CORRUPT_ANNOTATIONS = [
    ("visibility 3", set_keypoint(2, 3), r"keypoints\[2\], the visibility flag of joint 0 \(nose\), is 3, expected 0, 1 or 2"),
    ("visibility NaN", set_keypoint(5, math.nan), r"keypoints\[5\] is nan, expected a finite number"),
    ("x infinite", set_keypoint(0, math.inf), r"keypoints\[0\] is inf, expected a finite number"),
    ("null keypoint", set_keypoint(4, None), r"keypoints\[4\] is null, expected a number"),
    ("string keypoint", set_keypoint(3, "12"), r"keypoints\[3\] is '12' \(a str\), expected a number"),
    ("joint far outside", set_keypoint(0, 5000.0),
     r"keypoints: labelled joint 0 \(nose\) at \(5000, 81\) lies more than one image size outside the 640x425 image "
     r"\(expected -640 <= x <= 1280, -425 <= y <= 850\)"),
    ("bbox of 3 numbers", set_field("bbox", [1.0, 2.0, 3.0]), r"bbox has 3 values, expected 4 numbers"),
    ("bbox a string", set_field("bbox", "1,2,3,4"), r"bbox is '1,2,3,4' \(a str\), expected a list of 4 numbers"),
    ("area missing", lambda data: first(data).pop("area"), r"the 'area' field is missing, expected a finite number >= 0"),
    ("area a string", set_field("area", "big"), r"area is 'big' \(a str\), expected a finite number >= 0"),
]
INVALID_BOXES = [
    ("zero width", [100.0, 50.0, 0.0, 80.0], r"width and height must be positive, got w=0.0, h=80.0"),
    ("negative height", [100.0, 50.0, 40.0, -8.0], r"width and height must be positive, got w=40.0, h=-8.0"),
    ("non-finite", [100.0, math.nan, 40.0, 80.0], r"non-finite value in \[100.0, nan, 40.0, 80.0\]"),
    ("left of the image", [-60.0, 50.0, 40.0, 80.0], r"lies wholly left of the 640x425 image"),
    ("above the image", [100.0, -100.0, 40.0, 80.0], r"lies wholly above the 640x425 image"),
    ("below the image", [100.0, 425.0, 40.0, 80.0], r"lies wholly below the 640x425 image"),
    ("in the last pixel column", [639.5, 50.0, 40.0, 80.0], r"starts in the last pixel row or column"),
]


@pytest.mark.parametrize(("case", "corrupt", "message"), CORRUPT_ANNOTATIONS, ids=[c[0] for c in CORRUPT_ANNOTATIONS])
def test_corrupt_annotation_is_named_or_skipped_and_counted(coco_tiny_copy, case, corrupt, message) -> None:
    data, ann, img_dir = coco_tiny_copy
    corrupt(data)
    ann.write_text(json.dumps(data))  # Python's json writes NaN/Infinity as the JSON extensions many tools emit
    with pytest.raises(ValueError, match=rf"ann.json: image {IMAGE_ID} annotation {ANN_ID}: {message} \(skip_corrupt=True"):
        dataset(ann, img_dir)
    tolerant = dataset(ann, img_dir, skip_corrupt=True)
    assert tolerant.skip_counts().summary() == "skipped: 1 corrupt annotation"
    assert ANN_ID not in tolerant.coco.anns and len(tolerant) == 12 - 1  # gone from GT and instances alike


@pytest.mark.parametrize(("case", "bbox", "message"), INVALID_BOXES, ids=[c[0] for c in INVALID_BOXES])
def test_invalid_box_is_named_or_dropped_and_counted(coco_tiny_copy, case, bbox, message) -> None:
    data, ann, img_dir = coco_tiny_copy
    first(data)["bbox"] = bbox
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"annotation {ANN_ID}: bbox: .*{message}.* \(drop_invalid_boxes=True"):
        dataset(ann, img_dir)
    tolerant = dataset(ann, img_dir, drop_invalid_boxes=True)
    assert tolerant.skip_counts().summary() == "skipped: 1 invalid box"
    assert ANN_ID not in tolerant.coco.anns and len(tolerant) == 12 - 1


def test_several_problems_are_counted_by_kind_and_the_first_is_named(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    data["annotations"][0]["bbox"] = [-60.0, 50.0, 40.0, 80.0]
    data["annotations"][1]["keypoints"][2] = 7
    data["annotations"][2]["bbox"] = [10.0, 10.0, 0.0, 0.0]
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"annotation {ANN_ID}: bbox: .* lies wholly left .*; 2 more record\(s\) with problems"):
        dataset(ann, img_dir)
    with pytest.raises(ValueError, match=r"annotation 198196: keypoints\[2\], the visibility flag .* is 7"):
        dataset(ann, img_dir, drop_invalid_boxes=True)
    both = dataset(ann, img_dir, drop_invalid_boxes=True, skip_corrupt=True)
    assert both.skip_counts().summary() == "skipped: 2 invalid boxes, 1 corrupt annotation"


@pytest.mark.parametrize(
    ("case", "corrupt", "message"),
    [
        ("duplicate annotation id", lambda d: d["annotations"].append(copy.deepcopy(first(d))),
         rf"annotation id {ANN_ID} is used twice \(annotations\[0\] and annotations\[14\]"),
        ("image id listed with another file", lambda d: d["images"].append({**d["images"][0], "file_name": "other.jpg"}),
         rf"image id {IMAGE_ID} is listed twice with different files or sizes"),
        ("image entry not an object", lambda d: d["images"].append("000000000785.jpg"),
         r"images\[4\] is '000000000785.jpg' \(a str\), expected an object"),
        ("image id a string", lambda d: d["images"][0].__setitem__("id", "785"),
         r"images\[0\].id is '785' \(a str\), expected an integer image id"),
        ("annotation image_id a float", set_field("image_id", 785.0),
         r"annotations\[0\].image_id is 785.0, expected an integer id"),
        ("annotation not an object", lambda d: d["annotations"].append(None), r"annotations\[14\] is null, expected an object"),
        ("image width not a number", lambda d: d["images"][0].__setitem__("width", "640"),
         rf"image {IMAGE_ID}: width is '640' \(a str\), expected a number >= 1"),
    ],
)
def test_broken_file_structure_is_always_an_error(coco_tiny_copy, case, corrupt, message) -> None:
    data, ann, img_dir = coco_tiny_copy
    corrupt(data)
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"ann.json: {message}"):
        dataset(ann, img_dir, skip_corrupt=True, drop_invalid_boxes=True)


def test_what_the_reference_keeps_is_kept(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    data["images"].append(dict(data["images"][0]))  # a repeated identical entry, as some exports write
    crowd = copy.deepcopy(data["annotations"][3])  # num_keypoints 0 (all-zero keypoints)
    crowd.update(id=1, iscrowd=1)
    data["annotations"].append(crowd)
    ann.write_text(json.dumps(data))
    checked = dataset(ann, img_dir)
    assert checked.skip_counts().summary() == "skipped: nothing"
    assert len(checked.coco.anns) == 15 and len(checked) == 12  # crowd and keypoint-less annotations stay in the GT


def det_copy(coco_tiny_copy, coco_tiny: Path, corrupt: Callable[[list], None]) -> tuple[Path, Path, Path]:
    data, ann, img_dir = coco_tiny_copy
    ann.write_text(json.dumps(data))
    detections = json.loads((coco_tiny / DET_FILE).read_text())
    corrupt(detections)
    det = ann.with_name("dets.json")
    det.write_text(json.dumps(detections))
    return ann, img_dir, det


@pytest.mark.parametrize(
    ("case", "corrupt", "kind", "message"),
    [
        ("score a string", lambda d: d[3].__setitem__("score", "0.9"), "corrupt detection", r"score is '0.9' \(a str\), expected a finite number"),
        ("score NaN", lambda d: d[3].__setitem__("score", math.nan), "corrupt detection", r"score is nan, expected a finite number"),
        ("image_id a string", lambda d: d[3].__setitem__("image_id", "785"), "corrupt detection",
         r"image_id is '785' \(a str\), expected an integer image id of the annotation file"),
        ("entry not an object", lambda d: d.__setitem__(3, [1, 2]), "corrupt detection", r"entry is \[1, 2\] \(a list\), expected an object"),
        ("bbox of 3 numbers", lambda d: d[3].__setitem__("bbox", [1, 2, 3]), "corrupt detection", r"bbox has 3 values, expected 4 numbers"),
        ("zero-size box", lambda d: d[3].__setitem__("bbox", [10.0, 10.0, 0.0, 5.0]), "invalid box",
         r"bbox: width and height must be positive"),
        ("box left of the image", lambda d: d[3].__setitem__("bbox", [-90.0, 10.0, 50.0, 5.0]), "invalid box",
         r"bbox: box \[-90.0, 10.0, 50.0, 5.0\] lies wholly left of the"),
    ],
)
def test_bad_detection_entry_is_named_or_skipped_and_counted(coco_tiny_copy, coco_tiny, case, corrupt, kind, message) -> None:
    ann, img_dir, det = det_copy(coco_tiny_copy, coco_tiny, corrupt)
    with pytest.raises(ValueError, match=rf"dets.json: entry 3: {message}"):
        dataset(ann, img_dir, boxes="det", det_file=det)
    option = {"drop_invalid_boxes": True} if kind == "invalid box" else {"skip_corrupt": True}
    tolerant = dataset(ann, img_dir, boxes="det", det_file=det, **option)
    assert tolerant.skip_counts().summary() == f"skipped: 1 {kind}"
    assert len(tolerant) == 118 - 1


@pytest.mark.parametrize(
    ("case", "corrupt", "message"),
    [
        ("score a string", lambda r: r.__setitem__("score", "0.9"), r"result 0: score is '0.9' \(a str\), expected a finite number"),
        ("image_id a string", lambda r: r.__setitem__("image_id", "785"), r"result 0 has image_id '785' \(a str\), expected an integer"),
        ("null keypoint", lambda r: r["keypoints"].__setitem__(4, None), r"result 0: keypoints\[4\] is null, expected a number"),
        ("NaN keypoint", lambda r: r["keypoints"].__setitem__(4, math.nan), r"result 0: keypoints holds a non-finite value \(nan\)"),
        ("keypoints too short", lambda r: r.__setitem__("keypoints", [0.0] * 48), r"result 0: keypoints has 48 values, expected 3 x 17 = 51 numbers"),
    ],
)
def test_bad_results_file_entry_is_named(coco_tiny, tmp_path, case, corrupt, message) -> None:
    results = json.loads((coco_tiny / "reference_results" / "yolo11n_pose_keypoints_val2017_tiny_results.json").read_text())
    corrupt(results[0])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=rf"results.json: {message}"):
        evaluate_coco_keypoints(coco_tiny / "annotations" / "person_keypoints_val2017_tiny.json", path,
                                sigmas=COCO17.sigmas)
