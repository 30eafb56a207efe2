"""Generic image/label folders, class sets from config, and batching of different-size samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hrnet_train.data.seg_dataset import pad_collate
from hrnet_train.data.seg_folder import FolderSegDataset
from hrnet_train.normalization import normalize_image
from hrnet_train.seg_classes import IGNORE_LABEL, indexed_palette, make_seg_classes, seg_classes_from_mapping

CLASSES = seg_classes_from_mapping({"name": "toy", "names": ["background", "thing", "stuff"]})


def _write_pair(root: Path, stem: str, size: tuple[int, int], label_value: int = 1) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    image = np.full((*size, 3), 40, np.uint8)
    label = np.zeros(size, np.uint8)
    label[: size[0] // 2] = label_value
    cv2.imwrite(str(root / "images" / f"{stem}.jpg"), image)
    cv2.imwrite(str(root / "labels" / f"{stem}.png"), label)


def test_folder_pairs_images_and_labels(tmp_path: Path) -> None:
    _write_pair(tmp_path, "b", (20, 30), 2)
    _write_pair(tmp_path, "a", (16, 24), 1)
    dataset = FolderSegDataset(tmp_path / "images", tmp_path / "labels", CLASSES, train=False)
    assert [s.name for s in dataset.samples] == ["a", "b"]
    item = dataset[1]
    assert item["image"].shape == (3, 20, 30) and item["label"].dtype == torch.int64
    assert set(torch.unique(item["label"]).tolist()) == {0, 2}


def test_label_values_map_stored_values(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a", (16, 24), 255)  # a binary mask stored as 0/255
    binary = make_seg_classes("binary", ["background", "object"])
    dataset = FolderSegDataset(tmp_path / "images", tmp_path / "labels", binary, train=False, label_values={0: 0, 255: 1})
    assert set(torch.unique(dataset[0]["label"]).tolist()) == {0, 1}
    with pytest.raises(ValueError, match=r"value\(s\) \[255\] are not labels of class set 'toy' \(expected values in 0\)"):
        FolderSegDataset(tmp_path / "images", tmp_path / "labels", CLASSES, train=False, label_values={0: 0})[0]
    with pytest.raises(ValueError, match="label_values: 255 -> 7"):
        FolderSegDataset(tmp_path / "images", tmp_path / "labels", binary, train=False, label_values={255: 7})


def test_out_of_range_label_and_missing_pairs_raise(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a", (16, 24), 3)  # class 3 of a 3-class set
    with pytest.raises(ValueError, match=r"a.png: value\(s\) \[3\] are not labels of class set 'toy' \(expected values in 0..2, 255\)"):
        FolderSegDataset(tmp_path / "images", tmp_path / "labels", CLASSES, train=False)[0]
    _write_pair(tmp_path, "b", (16, 24))
    (tmp_path / "labels" / "b.png").unlink()
    cv2.imwrite(str(tmp_path / "labels" / "orphan.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"1 stem\(s\) without a file in .*labels: b; 1 stem\(s\) without a file in .*images: orphan"):
        FolderSegDataset(tmp_path / "images", tmp_path / "labels", CLASSES, train=False)
    with pytest.raises(FileNotFoundError, match="image directory not found"):
        FolderSegDataset(tmp_path / "nope", None, CLASSES, train=False)


def test_pad_collate_pads_with_black_and_ignore(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a", (16, 24))
    _write_pair(tmp_path, "b", (20, 18))
    dataset = FolderSegDataset(tmp_path / "images", tmp_path / "labels", CLASSES, train=False)
    batch = pad_collate([dataset[0], dataset[1]])
    assert batch["image"].shape == (2, 3, 20, 24) and batch["label"].shape == (2, 20, 24)
    black = torch.from_numpy(normalize_image(np.zeros((1, 1, 3), np.uint8)))[:, 0, 0]
    torch.testing.assert_close(batch["image"][0, :, 16:, :], black[:, None, None].expand(3, 4, 24))
    assert bool((batch["label"][0, 16:] == IGNORE_LABEL).all()) and bool((batch["label"][1, :, 18:] == IGNORE_LABEL).all())
    torch.testing.assert_close(batch["image"][1, :, :, :18], dataset[1]["image"])
    assert batch["index"].tolist() == [0, 1] and batch["height"].tolist() == [16, 20] and batch["name"] == ["a", "b"]


def test_class_sets_validate_their_fields() -> None:
    palette = indexed_palette(16)
    assert palette[1].tolist() == [128, 0, 0] and palette[15].tolist() == [192, 128, 128]  # VOC: aeroplane, person
    lip_like = make_seg_classes("lip", ["bg", "left_arm", "right_arm"], flip_pairs=[("left_arm", "right_arm")])
    assert lip_like.flip_pairs == ((1, 2),) and lip_like.flip_index.tolist() == [0, 2, 1]
    assert lip_like.flip_lut[IGNORE_LABEL] == IGNORE_LABEL and CLASSES.flip_lut is None
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weights'\]"):
        seg_classes_from_mapping({"names": ["a"], "weights": [1.0]})
    with pytest.raises(ValueError, match="'names'"):
        seg_classes_from_mapping({"name": "x"})
    with pytest.raises(ValueError, match="unique non-empty"):
        make_seg_classes("x", ["a", "a"])
    with pytest.raises(ValueError, match="expected 1..255 class names"):
        make_seg_classes("x", [str(i) for i in range(256)])
    with pytest.raises(ValueError, match="class_weights must be 2 positive"):
        make_seg_classes("x", ["a", "b"], class_weights=[1.0, 0.0])
    with pytest.raises(ValueError, match="palette must be 2 RGB triples"):
        make_seg_classes("x", ["a", "b"], palette=[(0, 0, 0)])
    with pytest.raises(ValueError, match="names unknown class 'c'"):
        make_seg_classes("x", ["a", "b"], flip_pairs=[("a", "c")])
    with pytest.raises(ValueError, match="each in one pair only"):
        make_seg_classes("x", ["a", "b", "c"], flip_pairs=[(0, 1), (1, 2)])
