"""Person and body-part masks of the synthetic people generator: the JPEGs and COCO JSON stay the bytes
of the generator before masks existed, and the masks agree with the keypoint labels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet_train.data import synthetic
from hrnet_train.data.seg_synthetic import SYNTHETIC_PART_CLASSES, SYNTHETIC_PERSON_CLASSES, synthetic_seg_dataset
from hrnet_train.data.synthetic import (
    JOINT_PARTS,
    MASK_IGNORE,
    SyntheticConfig,
    ensure_synthetic_dataset,
    generate_dataset,
    mask_dir,
)

CONFIG = SyntheticConfig(num_train=3, num_val=2, seed=5, image_size=(192, 256))
# sha256 of what the generator wrote for CONFIG before it wrote masks (commit 57f6cbd, OpenCV 4.x JPEG
# encoder). A mismatch after an OpenCV upgrade alone would mean the encoder changed, not the generator.
BEFORE_MASKS = {
    "annotations/person_keypoints_train.json": "16c75ed0682c9351099b285f24602c32999bb8c90b62543bfb6ca77276eb0dd6",
    "annotations/person_keypoints_val.json": "b7bacbb1b940a00ea86c74bdc689e2fc88411e52f8972e0ac84bfc695addd795",
    "images/train/000000000001.jpg": "82ad42c4ca242c9549572378d148d08e76485d8053695ae5488a7329cce734ee",
    "images/train/000000000002.jpg": "f1eafd586c7db8597eb0f51fda727f44a8b243450a56008dc1d0bd3782f03094",
    "images/train/000000000003.jpg": "8016d1fa62c610c996cfd0b10c3703e74aded39dea37cdba670f931756b8857c",
    "images/val/000001000001.jpg": "f5a3b2667ac87b40ba7518ea2a5ae0f9740689988c57a61a5d8137430fb64bc8",
    "images/val/000001000002.jpg": "e61a1d2b3542900db0744a22b1381acf2bcce19507d15b0de827264051e5a402",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synthetic_masks"), CONFIG)


def test_images_and_annotations_are_the_bytes_from_before_masks(generated: Path) -> None:
    for name, digest in BEFORE_MASKS.items():
        assert hashlib.sha256((generated / name).read_bytes()).hexdigest() == digest, name
    assert sorted(str(p.relative_to(generated)) for p in generated.glob("images/*/*")) == sorted(
        n for n in BEFORE_MASKS if n.startswith("images/")
    )


def test_masks_agree_with_the_keypoint_labels(generated: Path) -> None:
    for split in synthetic.SPLITS:
        data = json.loads((generated / "annotations" / f"person_keypoints_{split}.json").read_text())
        for image in data["images"]:
            stem = Path(image["file_name"]).stem
            person = cv2.imread(str(mask_dir(generated, split) / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            parts = cv2.imread(str(mask_dir(generated, split, parts=True) / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            assert person.shape == parts.shape == (image["height"], image["width"]) and person.dtype == np.uint8
            assert set(np.unique(person)) <= {0, 1, MASK_IGNORE}
            assert set(np.unique(parts)) <= set(range(len(synthetic.PARTS) + 1)) | {MASK_IGNORE}
            sure = (person != MASK_IGNORE) & (parts != MASK_IGNORE)
            np.testing.assert_array_equal((person == 1)[sure], (parts > 0)[sure])  # one silhouette, two label sets
            anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
            inside_a_box = np.zeros_like(person, dtype=bool)
            for ann in anns:
                x, y, w, h = (int(round(v)) for v in ann["bbox"])
                inside_a_box[y : y + h, x : x + w] = True
                for joint, (jx, jy, visible) in enumerate(np.asarray(ann["keypoints"]).reshape(-1, 3)):
                    if visible == 2:  # drawn and unoccluded: the pixel shows one of the joint's parts
                        px, py = int(round(jx)), int(round(jy))
                        assert person[py, px] in (1, MASK_IGNORE)
                        assert parts[py, px] in {p + 1 for p in JOINT_PARTS[joint]} | {MASK_IGNORE}
            assert np.all(inside_a_box[person == 1])
            assert 0 < (person == 1).sum() <= sum(a["area"] for a in anns)


def test_ensure_regenerates_missing_masks_with_identical_images(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    ensure_synthetic_dataset(root, num_train=2, num_val=1, seed=0, image_size="128x160")
    image = root / "images" / "train" / "000000000001.jpg"
    before = image.read_bytes()
    mask = mask_dir(root, "train", parts=True) / "000000000001.png"
    mask.unlink()
    ensure_synthetic_dataset(root, num_train=2, num_val=1, seed=0, image_size="128x160")
    assert mask.is_file() and image.read_bytes() == before
    assert json.loads((root / synthetic.MANIFEST_NAME).read_text())["masks_version"] == synthetic.MASKS_VERSION


def test_segmentation_datasets_read_the_masks(generated: Path) -> None:
    person = synthetic_seg_dataset(generated, "val", train=False)
    parts = synthetic_seg_dataset(generated, "val", train=False, parts=True)
    assert len(person) == len(parts) == 2 and person.classes is SYNTHETIC_PERSON_CLASSES
    stored = cv2.imread(str(mask_dir(generated, "val", parts=True) / "000001000001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(parts[0]["label"].numpy(), stored)
    assert set(np.unique(person[0]["label"].numpy())) == {0, 1, MASK_IGNORE}
    assert len(SYNTHETIC_PART_CLASSES.flip_pairs) == 7 and SYNTHETIC_PART_CLASSES.num_classes == 18
    left, right = SYNTHETIC_PART_CLASSES.names.index("left_hand"), SYNTHETIC_PART_CLASSES.names.index("right_hand")
    assert SYNTHETIC_PART_CLASSES.flip_lut[left] == right and SYNTHETIC_PART_CLASSES.flip_index[right] == left
