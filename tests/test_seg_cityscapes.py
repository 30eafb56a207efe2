"""Cityscapes label mapping on the synthetic Cityscapes-layout sample (every labelId 0..33 occurs there),
checked against its labelTrainIds files; list files vs folder discovery; palette; prediction files; errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet_train.data.seg_cityscapes import (
    CITYSCAPES_CLASSES,
    CityscapesDataset,
    label_id_lut,
    train_ids_to_label_ids,
    write_label_id_png,
)
from hrnet_train.image_io import read_image
from hrnet_train.seg_classes import IGNORE_LABEL

# Spec B.9: labelId of each trainId 0..18, and B.6 class weights.
SPEC_LABEL_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
SPEC_WEIGHTS = [0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539, 0.9843,
                1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507]


def _raw(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_table_is_the_spec_table() -> None:
    lut = label_id_lut()
    assert [int(np.flatnonzero(lut == t)[0]) for t in range(19)] == SPEC_LABEL_IDS
    ignored = [i for i in range(34) if i not in SPEC_LABEL_IDS]
    assert ignored == [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30]
    assert np.all(lut[ignored] == IGNORE_LABEL) and np.all(lut[34:] == -1)
    assert CITYSCAPES_CLASSES.num_classes == 19 and CITYSCAPES_CLASSES.names[11] == "person"
    np.testing.assert_allclose(CITYSCAPES_CLASSES.class_weights, SPEC_WEIGHTS, rtol=0, atol=1e-7)


@pytest.mark.parametrize("source", [{"list_file": "val.lst"}, {}, {"label_kind": "labelTrainIds"}])
def test_labels_match_the_label_train_ids_files(cityscapes_synthetic: Path, source: dict) -> None:
    dataset = CityscapesDataset(cityscapes_synthetic, "val", train=False, **source)
    assert [s.name for s in dataset.samples] == ["synthcity_000000_000019", "synthcity_000001_000019"]
    for index, sample in enumerate(dataset.samples):
        item = dataset[index]
        label_ids_file = cityscapes_synthetic / "gtFine" / "val" / "synthcity" / f"{sample.name}_gtFine_labelIds.png"
        raw = _raw(label_ids_file)
        assert set(np.unique(raw).tolist()) == set(range(34))  # the sample really covers every labelId
        expected = _raw(label_ids_file.with_name(f"{sample.name}_gtFine_labelTrainIds.png"))
        assert item["label"].dtype.is_floating_point is False
        np.testing.assert_array_equal(item["label"].numpy(), expected)
        assert tuple(item["image"].shape) == (3, *raw.shape) and (item["height"], item["width"]) == raw.shape


def test_inverse_table_restores_the_label_ids(cityscapes_synthetic: Path, tmp_path: Path) -> None:
    folder = cityscapes_synthetic / "gtFine" / "val" / "synthcity"
    label_ids = _raw(folder / "synthcity_000001_000019_gtFine_labelIds.png")
    train_ids = _raw(folder / "synthcity_000001_000019_gtFine_labelTrainIds.png")
    evaluated = train_ids != IGNORE_LABEL
    prediction = np.where(evaluated, train_ids, 0)  # a model predicts a class everywhere
    written = write_label_id_png(tmp_path / "pred" / "synthcity_000001_000019.png", prediction)
    restored = _raw(written)
    assert restored.dtype == np.uint8
    np.testing.assert_array_equal(restored[evaluated], label_ids[evaluated])
    assert np.all(restored[~evaluated] == 7)  # trainId 0 = road = labelId 7
    with pytest.raises(ValueError, match="255"):
        train_ids_to_label_ids(train_ids)


def test_palette_is_the_cityscapes_colours(cityscapes_synthetic: Path) -> None:
    """The sample is painted with the official colours +-16 grey levels of shading (its README)."""
    image = read_image(cityscapes_synthetic / "leftImg8bit" / "val" / "synthcity" / "synthcity_000000_000019_leftImg8bit.png")
    train_ids = _raw(cityscapes_synthetic / "gtFine" / "val" / "synthcity" / "synthcity_000000_000019_gtFine_labelTrainIds.png")
    for train_id, colour in enumerate(CITYSCAPES_CLASSES.palette):
        pixels = image[train_ids == train_id].astype(int)
        assert len(pixels) > 0
        assert np.abs(np.median(pixels, axis=0) - colour).max() <= 16, CITYSCAPES_CLASSES.names[train_id]


def _copy_sample(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_bad_input_raises_named_errors(cityscapes_synthetic: Path, tmp_path: Path) -> None:
    root = _copy_sample(cityscapes_synthetic, tmp_path / "cs")
    label_file = root / "gtFine" / "val" / "synthcity" / "synthcity_000001_000019_gtFine_labelIds.png"
    label = _raw(label_file)
    cv2.imwrite(str(label_file), np.where(np.arange(label.shape[1]) == 0, 34, label).astype(np.uint8))  # not a labelId
    dataset = CityscapesDataset(root, "val", train=False, list_file="val.lst")
    with pytest.raises(ValueError, match=r"synthcity_000001_000019_gtFine_labelIds.png: value\(s\) \[34\] are not Cityscapes labelIds \(expected values in 0..33\)"):
        dataset[1]
    cv2.imwrite(str(label_file), label[:, :-2])  # smaller than its image
    with pytest.raises(ValueError, match=r"label map is 510x256 .* is 512x256"):
        dataset[1]
    cv2.imwrite(str(label_file), np.dstack([label] * 3))  # a colour file
    with pytest.raises(ValueError, match="single-channel 8-bit"):
        dataset[1]
    label_file.unlink()
    with pytest.raises(FileNotFoundError, match="1 label file.*missing.*synthcity_000001_000019_gtFine_labelIds"):
        CityscapesDataset(root, "val", train=False)
    with pytest.raises(FileNotFoundError, match="no .*_leftImg8bit.png"):
        CityscapesDataset(root, "train", train=False)
    (root / "bad.lst").write_text("a.png b.png c.png\n")
    with pytest.raises(ValueError, match=r"bad.lst:1: expected 'image_path \[label_path\]', got 3 fields"):
        CityscapesDataset(root, "val", train=False, list_file="bad.lst")


def test_unlabelled_split_gives_ignore_labels(cityscapes_synthetic: Path, tmp_path: Path) -> None:
    root = _copy_sample(cityscapes_synthetic, tmp_path / "cs")
    shutil.rmtree(root / "gtFine")
    dataset = CityscapesDataset(root, "val", train=False)
    item = dataset[1]
    assert dataset.samples[1].label_file is None and bool((item["label"] == IGNORE_LABEL).all())
