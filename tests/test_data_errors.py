"""Bad input to the COCO pipeline raises errors that name the file and the image/annotation id."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from hrnet_train.codecs import create_codec
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.image_io import ImageReadError, read_image
from hrnet_train.keypoints import load_keypoint_set

COCO17 = load_keypoint_set("coco17")
CODEC = create_codec("legacy", (256, 192))


def write(path: Path, content: object) -> Path:
    path.write_text(json.dumps(content))
    return path


def dataset(ann: Path, img_dir: Path, **kwargs) -> TopDownCocoDataset:
    return TopDownCocoDataset(ann, img_dir, COCO17, CODEC, train=False, **kwargs)


def test_missing_image_file(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    (img_dir / "000000000785.jpg").unlink()
    write(ann, data)
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) missing .*image 785: .*000000000785.jpg"):
        dataset(ann, img_dir)
    lazy = dataset(ann, img_dir, check_files=False)
    index = next(i for i, r in enumerate(lazy.records) if r.image_id == 785)
    with pytest.raises(FileNotFoundError, match=r"000000000785.jpg \(image id 785, annotation 442619"):
        lazy[index]
    assert len(dataset(ann, img_dir, skip_corrupt=True)) == 12 - 1  # image 785 holds one instance


def test_truncated_jpeg(coco_tiny_copy, caplog) -> None:
    data, ann, img_dir = coco_tiny_copy
    path = img_dir / "000000000785.jpg"
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        read_image(path)
    write(ann, data)
    strict = dataset(ann, img_dir)
    index = next(i for i, r in enumerate(strict.records) if r.image_id == 785)
    with pytest.raises(ValueError, match=r"truncated JPEG .*000000000785.jpg \(image id 785"):
        strict[index]
    tolerant = dataset(ann, img_dir, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="hrnet_train.data.coco"):
        sample = tolerant[index]
    assert sample["meta"]["image_id"] != 785
    assert tolerant.unreadable.nonzero().flatten().tolist() == [index]
    assert "000000000785.jpg" in caplog.text and "1 records skipped" in caplog.text
    assert tolerant.skip_counts().summary() == "skipped: 1 corrupt image"


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"cannot decode .*x.jpg"):
        read_image(tmp_path / "x.jpg")
    with pytest.raises(ImageReadError, match=r"empty: .*empty.jpg"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(FileNotFoundError, match="image file not found"):
        read_image(tmp_path / "absent.jpg")


def test_wrong_keypoint_count(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    bad = copy.deepcopy(data)
    bad["annotations"][0]["keypoints"] = bad["annotations"][0]["keypoints"][:-3]
    write(ann, bad)
    ann_id, image_id = bad["annotations"][0]["id"], bad["annotations"][0]["image_id"]
    with pytest.raises(ValueError, match=rf"ann.json: image {image_id} annotation {ann_id}: keypoint list has 48 values, expected 51"):
        dataset(ann, img_dir)


def test_box_outside_image(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    bad = copy.deepcopy(data)
    target = bad["annotations"][0]
    target["bbox"] = [5000.0, 10.0, 50.0, 80.0]
    write(ann, bad)
    with pytest.raises(ValueError, match=rf"annotation {target['id']}: bbox: box \[5000.0, 10.0, 50.0, 80.0\] lies wholly right of"):
        dataset(ann, img_dir)
    assert len(dataset(ann, img_dir, drop_invalid_boxes=True)) == 12 - 1


def test_empty_split(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    empty = dict(data, annotations=[a for a in data["annotations"] if max(a["keypoints"]) == 0])
    write(ann, empty)
    with pytest.raises(ValueError, match=r"ann.json: no person instances to use \(empty split\)"):
        dataset(ann, img_dir)


def test_annotation_file_not_coco(coco_tiny_copy) -> None:
    data, ann, img_dir = coco_tiny_copy
    write(ann, [{"image_id": 785, "bbox": [0, 0, 1, 1], "score": 1.0, "category_id": 1}])
    with pytest.raises(ValueError, match=r"ann.json: not a COCO annotation file: .* got a JSON list"):
        dataset(ann, img_dir)
    write(ann, {"images": data["images"]})
    with pytest.raises(ValueError, match=r"missing or non-list key\(s\) \['annotations'\]"):
        dataset(ann, img_dir)
    ann.write_text("{broken")
    with pytest.raises(ValueError, match="ann.json: not valid JSON"):
        dataset(ann, img_dir)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        dataset(ann.with_name("absent.json"), img_dir)


def test_bad_detection_file(coco_tiny_copy, tmp_path: Path) -> None:
    data, ann, img_dir = coco_tiny_copy
    write(ann, data)
    dets = write(tmp_path / "dets.json", {"image_id": 785})
    with pytest.raises(ValueError, match="dets.json: expected a JSON list"):
        dataset(ann, img_dir, boxes="det", det_file=dets)
    write(dets, [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}])
    with pytest.raises(ValueError, match="dets.json: entry 0 refers to image 99, absent from the annotations"):
        dataset(ann, img_dir, boxes="det", det_file=dets)
    with pytest.raises(ValueError, match=r"boxes must be 'gt' or 'det' \(with det_file"):
        dataset(ann, img_dir, boxes="det")
