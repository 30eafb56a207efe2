"""Face samples through TopDownCocoDataset: official box rules, crop, targets, face augmentation and flip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet_train.codecs import create_codec
from hrnet_train.codecs.face import official_face_transform, official_image_transform
from hrnet_train.data.augment import FACE_AUGMENT, AugmentConfig, sample_augmentation
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.data.face_formats import read_face_json
from hrnet_train.data.face_records import landmark_center_scale
from hrnet_train.geometry import affine_points
from hrnet_train.image_io import read_image
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.normalization import normalize_image

F300W = load_keypoint_set("face300w68")
WFLW = load_keypoint_set("wflw98")
COFW = load_keypoint_set("cofw29")
CODEC = create_codec("face", (256, 256), sigma=1.0)


def dataset(folder: Path, name: str, keypoints, train: bool = False, **kwargs) -> TopDownCocoDataset:
    return TopDownCocoDataset(folder / name, folder, keypoints, kwargs.pop("codec", CODEC), train=train,
                              instances="face", augment=FACE_AUGMENT, seed=0, **kwargs)


@pytest.mark.parametrize(("folder", "name", "keypoints"), [("300w", "test_300w.json", F300W), ("wflw", "test_wflw.json", WFLW)])
def test_landmark_extent_recipe_reproduces_the_csv_fields(faces: Path, folder: str, name: str, keypoints) -> None:
    for face in read_face_json(faces / folder / name, keypoints):
        center, scale = landmark_center_scale(face.landmarks)
        assert center.tolist() == face.center.tolist() and scale == pytest.approx(face.scale, abs=1e-12)


def test_records_take_center_scale_from_the_file_or_the_landmarks(faces: Path) -> None:
    w300 = dataset(faces / "300w", "test_300w.json", F300W)
    assert len(w300) == 2 and w300.records[0].annotation_id == 197
    assert w300.records[0].center.tolist() == [489.5, 503.5] and w300.records[0].scale.tolist() == [2.385 * 1.25] * 2
    assert w300.records[0].joints[:, 2].tolist() == [1.0] * 68
    cofw = dataset(faces / "cofw", "test_cofw.json", COFW, codec=create_codec("face", (256, 256)))
    landmarks = np.asarray(json.loads((faces / "cofw" / "test_cofw.json").read_text())["annotations"][0]["keypoints"])
    center, scale = landmark_center_scale(landmarks.reshape(-1, 3)[:, :2])
    assert cofw.records[0].center.tolist() == center.tolist() and cofw.records[0].scale[0] == scale * 1.25
    assert len(dataset(faces / "wflw", "test_wflw.json", WFLW)) == 4


def test_val_sample_is_the_official_crop_and_targets(faces: Path) -> None:
    data = dataset(faces / "300w", "test_300w.json", F300W)
    sample = data[0]
    record = data.records[0]
    image = read_image(faces / "300w" / "indoor_029.png")
    warp = official_image_transform(record.center, record.scale, 256, 0.0, image.shape[:2])
    expected = normalize_image(cv2.warpAffine(image, warp, (256, 256), flags=cv2.INTER_LINEAR))
    assert np.array_equal(sample["image"].numpy(), expected)
    crop = affine_points(record.joints[:, :2], official_face_transform(record.center, record.scale, 256))
    assert np.allclose(sample["meta"]["joints"][:, :2], crop) and sample["target_weight"].tolist() == [1.0] * 68
    target, _ = CODEC.encode(crop, np.ones(68))
    assert np.array_equal(sample["target"].numpy(), target)
    # The peak of landmark 0 sits at trunc(T64(x)) (spec A.11).
    u, v = np.trunc(affine_points(record.joints[0, :2], official_face_transform(record.center, record.scale, 64)))
    assert sample["target"][0, int(v), int(u)] == 1.0


def test_face_sampling_draws_the_official_recipe() -> None:
    assert (FACE_AUGMENT.scale_factor, FACE_AUGMENT.rot_factor, FACE_AUGMENT.prob_rotation) == (0.25, 30.0, 0.6)
    joints, visible = np.zeros((68, 2)), np.ones(68)
    for seed in range(30):
        params = sample_augmentation(np.random.default_rng(seed), joints, visible, np.array([50.0, 60.0]),
                                     np.array([1.0, 1.0]), F300W, FACE_AUGMENT, 1.0)
        replay = np.random.default_rng(seed)  # scale U(.75, 1.25), rotation coin then U(-30, 30), flip coin
        factor = replay.uniform(0.75, 1.25)
        rotation = replay.uniform(-30, 30) if replay.random() <= 0.6 else 0.0
        assert params.scale.tolist() == [factor, factor] and params.rotation == rotation
        assert params.flip == (replay.random() <= 0.5)
    with pytest.raises(ValueError, match="sampling: expected one of"):
        AugmentConfig(sampling="hands")


@pytest.mark.parametrize("flip", ["official", "exact"])
def test_flip_mirrors_with_the_codec_convention_and_swaps_pairs(faces: Path, flip: str) -> None:
    codec = create_codec("face", (256, 256), flip=flip)
    always_flip = AugmentConfig(sampling="face", scale_factor=0.0, prob_rotation=0.0, prob_flip=1.0)
    data = TopDownCocoDataset(faces / "300w" / "test_300w.json", faces / "300w", F300W, codec, train=True,
                              instances="face", augment=always_flip, seed=0)
    sample = data[0]
    record = data.records[0]
    width = record.image_size[1]
    offset = 0.0 if flip == "official" else 1.0
    mirrored = record.joints[F300W.flip_index, :2].copy()
    mirrored[:, 0] = width - offset - mirrored[:, 0]
    center = np.array([width - offset - record.center[0], record.center[1]])
    assert sample["meta"]["flipped"] and sample["meta"]["center"].tolist() == center.tolist()
    expected = affine_points(mirrored, official_face_transform(center, record.scale, 256))
    assert np.allclose(sample["meta"]["joints"][:, :2], expected)
    # jaw_01 (the subject's right ear) of the flipped face is the original jaw_17, mirrored.
    assert mirrored[0, 0] == width - offset - record.joints[16, 0]


def test_missing_points_get_empty_maps_but_keep_their_weight(faces: Path, tmp_path: Path) -> None:
    content = json.loads((faces / "300w" / "test_300w.json").read_text())
    content["annotations"][0]["keypoints"][3 * 5 + 1] = 0.0  # landmark 5: y = 0 -> missing (official rule)
    (tmp_path / "missing.json").write_text(json.dumps(content))
    data = TopDownCocoDataset(tmp_path / "missing.json", faces / "300w", F300W, CODEC, train=False, instances="face")
    sample = data[0]
    assert data.records[0].joints[5, 2] == 0.0 and not sample["target"][5].any() and sample["target"][4].any()
    assert sample["target_weight"].tolist() == [1.0] * 68


def test_face_dataset_errors(faces: Path) -> None:
    with pytest.raises(ValueError, match=r"annotation 197: field keypoints: 204 values, expected 294 \(3 x 98 landmarks"):
        dataset(faces / "300w", "test_300w.json", WFLW)
    with pytest.raises(ValueError, match="instances must be one of .*face: boxes='gt'"):
        dataset(faces / "300w", "test_300w.json", F300W, boxes="det", det_file="x.json")
    with pytest.raises(ValueError, match="lists 0 keypoints"):  # the pose rules keep their category check
        TopDownCocoDataset(faces / "300w" / "test_300w.json", faces / "300w", F300W, CODEC, train=False)


@pytest.mark.parametrize(("index", "value", "message"), [
    (3 * 7 + 1, float("nan"), r"keypoints\[22\] is nan, expected a finite number"),  # read as "missing" before
    (3 * 7, None, r"keypoints\[21\] is None \(a NoneType\), expected a number"),
    (3 * 7, "12.5", r"keypoints\[21\] is '12.5' \(a str\), expected a number"),
    (3 * 7 + 2, 3, r"keypoints\[23\], the visibility flag of landmark 7 \(.+\), is 3, expected 0, 1 or 2"),
])
def test_bad_landmark_values_are_named(faces: Path, tmp_path: Path, index: int, value, message: str) -> None:
    content = json.loads((faces / "300w" / "test_300w.json").read_text())
    content["annotations"][0]["keypoints"][index] = value
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=rf"bad.json: image \d+ annotation \d+: {message}"):
        TopDownCocoDataset(tmp_path / "bad.json", faces / "300w", F300W, CODEC, train=False, instances="face")
