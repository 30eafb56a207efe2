"""Person segmentation from COCO instance masks on coco_mini (real images), checked against pycocotools'
own ``annToMask`` union computed here; crowd regions are ignore (255)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from hrnet_train.data.seg_coco_person import COCO_PERSON_CLASSES, CocoPersonSegDataset
from hrnet_train.seg_classes import IGNORE_LABEL

CROWD_IMAGE_ID = 217285  # the val2017 image of coco_mini with a crowd annotation


@pytest.fixture(scope="module")
def val_files(coco_mini: Path) -> tuple[Path, Path]:
    return coco_mini / "annotations" / "person_keypoints_val2017_mini.json", coco_mini / "images" / "val2017"


def test_label_is_the_union_of_person_masks_with_crowd_ignored(val_files: tuple[Path, Path]) -> None:
    ann_file, img_dir = val_files
    dataset = CocoPersonSegDataset(ann_file, img_dir, train=False)
    assert len(dataset) == 39 and dataset.classes is COCO_PERSON_CLASSES
    coco = COCO(str(ann_file))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=CROWD_IMAGE_ID))
    person = np.zeros((427, 640), dtype=bool)
    crowd = np.zeros_like(person)
    for ann in anns:
        target = crowd if ann["iscrowd"] else person
        target |= coco.annToMask(ann) > 0
    item = dataset[dataset.image_ids.index(CROWD_IMAGE_ID)]
    label = item["label"].numpy()
    assert tuple(item["image"].shape) == (3, 427, 640) and item["name"] == "000000217285"
    np.testing.assert_array_equal(label == 1, person)
    np.testing.assert_array_equal(label == IGNORE_LABEL, crowd & ~person)
    np.testing.assert_array_equal(label == 0, ~person & ~crowd)
    # Measured on this image: 13 non-crowd persons and one crowd region.
    assert sum(not a["iscrowd"] for a in anns) == 13 and sum(a["iscrowd"] for a in anns) == 1
    assert [(label == v).sum() for v in (0, 1, IGNORE_LABEL)] == [124_458, 54_125, 94_697]


def test_every_image_matches_pycocotools(val_files: tuple[Path, Path]) -> None:
    """Label pixels of all 39 images equal the annToMask unions (the dataset merges RLEs instead)."""
    ann_file, img_dir = val_files
    dataset = CocoPersonSegDataset(ann_file, img_dir, train=False)
    coco = dataset.coco
    for image_id in dataset.image_ids:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        person = np.zeros((coco.imgs[image_id]["height"], coco.imgs[image_id]["width"]), dtype=bool)
        for ann in anns:
            if not ann["iscrowd"]:
                person |= coco.annToMask(ann) > 0
        np.testing.assert_array_equal(dataset.person_label(image_id) == 1, person)


def test_bad_annotations_raise_named_errors(val_files: tuple[Path, Path], tmp_path: Path) -> None:
    ann_file, img_dir = val_files
    data = json.loads(ann_file.read_text())
    first = data["images"][0]
    first["width"] += 1  # annotated size differs from the JPEG
    data["annotations"][0]["segmentation"] = []
    bad_ann = data["annotations"][0]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    dataset = CocoPersonSegDataset(broken, img_dir, train=False)
    with pytest.raises(ValueError, match=rf"decoded {first['width'] - 1}x{first['height']} \(WxH\), but .*broken.json gives image {first['id']}"):
        dataset[dataset.image_ids.index(first["id"])]
    with pytest.raises(ValueError, match=rf"image {bad_ann['image_id']} annotation {bad_ann['id']}: person annotation has no 'segmentation'"):
        dataset.person_label(bad_ann["image_id"])
    with pytest.raises(FileNotFoundError, match="39 image file"):
        CocoPersonSegDataset(ann_file, tmp_path, train=False)
