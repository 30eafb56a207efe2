"""LSPET -> COCO conversion on the real joints.mat: layout, exact counts, boxes, loading as a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hrnet_train.codecs import create_codec
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.cli_args import UsageError
from hrnet_train.data.lspet import AREA_PER_BOX_AREA, ConversionSummary, convert_lspet, main


@pytest.fixture(scope="module")
def converted(lspet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ConversionSummary, Path]:
    out = tmp_path_factory.mktemp("lspet_coco")
    return convert_lspet(lspet_dir, out), out


def test_joints_mat_layout(lspet_dir: Path) -> None:
    joints = scipy.io.loadmat(lspet_dir / "joints.mat")["joints"]
    assert joints.shape == (14, 3, 10000)  # [joint, (x, y, flag), image]
    assert set(np.unique(joints[:, 2, :])) == {0.0, 1.0}
    # Flag 0 always comes with a coordinate <= 0 (outside the image).
    flag0 = joints[:, 2, :9000] == 0
    assert np.all((joints[:, 0, :9000][flag0] <= 0) | (joints[:, 1, :9000][flag0] <= 0))


def test_conversion_counts(converted, lspet_dir: Path) -> None:
    summary, out = converted
    joints = scipy.io.loadmat(lspet_dir / "joints.mat")["joints"]
    labelled = (joints[:, 2] > 0) & (joints[:, 0] > 0) & (joints[:, 1] > 0)  # (14, 10000)
    assert int(labelled[:, :8500].sum()) == 104612 and int(labelled[:, 8500:9000].sum()) == 6198
    assert summary.images == {"train": 8500, "val": 500}
    assert summary.annotations == {"train": 8500, "val": 500}
    assert summary.labelled_joints == {"train": 104612, "val": 6198}
    assert summary.dropped_persons == {"train": 0, "val": 0} and summary.missing_images == 0
    val = json.loads((out / "annotations" / "person_keypoints_val.json").read_text())
    assert [im["id"] for im in val["images"]][:2] == [8501, 8502] and val["images"][0]["file_name"] == "im08501.jpg"
    assert val["categories"][0]["keypoints"] == list(load_keypoint_set("lspet14").names)
    assert sum(a["num_keypoints"] for a in val["annotations"]) == 6198


def test_boxes_contain_labelled_joints(converted) -> None:
    _, out = converted
    data = json.loads((out / "annotations" / "person_keypoints_train.json").read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    for ann in data["annotations"][:2000]:
        k = np.asarray(ann["keypoints"], dtype=np.float64).reshape(14, 3)
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        assert x >= 0 and y >= 0 and x + w <= width - 1 + 1e-3 and y + h <= height - 1 + 1e-3
        inside = k[k[:, 2] == 2]
        clipped = (inside[:, 0] > width - 1) | (inside[:, 1] > height - 1)  # 2 joints in the file lie past the border
        assert np.all(inside[~clipped, 0] >= x - 1e-3) and np.all(inside[~clipped, 0] <= x + w + 1e-3)
        assert np.all(inside[~clipped, 1] >= y - 1e-3) and np.all(inside[~clipped, 1] <= y + h + 1e-3)
        assert ann["area"] == pytest.approx(w * h * AREA_PER_BOX_AREA, rel=1e-3, abs=0.01)
        assert set(np.unique(k[:, 2])) <= {0.0, 2.0} and np.all(k[k[:, 2] == 0, :2] == 0)


def test_converted_split_loads_with_lspet14(converted, lspet_dir: Path) -> None:
    _, out = converted
    lspet = load_keypoint_set("lspet14")
    dataset = TopDownCocoDataset(
        out / "annotations" / "person_keypoints_val.json", lspet_dir / "images", lspet,
        create_codec("legacy", (256, 192)), train=True, seed=0,
    )
    assert len(dataset) == 500
    sample = dataset[0]
    assert tuple(sample["target"].shape) == (14, 64, 48) and tuple(sample["image"].shape) == (3, 256, 192)
    assert float(sample["target_weight"].sum()) > 0


def test_cli_small_range(lspet_dir: Path, tmp_path: Path, capsys) -> None:
    main([f"src={lspet_dir}", f"output_dir={tmp_path}", "train_last=10", "val_last=15"])
    printed = capsys.readouterr().out
    assert "train: 10 images, 10 persons" in printed and "val: 5 images, 5 persons" in printed
    assert (tmp_path / "annotations" / "person_keypoints_train.json").is_file()
    with pytest.raises(UsageError, match="source: unknown option"):
        main(["source=x"])
    with pytest.raises(ValueError, match="train_last < val_last"):
        convert_lspet(lspet_dir, tmp_path, train_last=20, val_last=15)
