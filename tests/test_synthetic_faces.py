"""Synthetic faces: determinism, 300-W layout and labels, variation, speed, dataset integration, mean-shape baseline."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hrnet_train.baselines.mean_shape import mean_face_shape, mean_shape_nme, mean_shape_predictions
from hrnet_train.codecs import create_codec
from hrnet_train.data.generated import MANIFEST_NAME
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.data.face_records import landmark_center_scale
from hrnet_train.data.synthetic_faces import (
    SyntheticFacesConfig,
    annotation_file,
    ensure_synthetic_faces,
    generate_faces,
    image_dir,
    sample_face,
    shape_face,
)
from hrnet_train.evaluation.nme import annotation_nme
from hrnet_train.keypoints import load_keypoint_set

F300W = load_keypoint_set("face300w68")


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_faces(tmp_path_factory.mktemp("faces"), SyntheticFacesConfig(num_train=80, num_val=40, seed=0))


def test_same_seed_same_bytes_other_seed_differs_parallel_equals_serial(tmp_path: Path) -> None:
    config = SyntheticFacesConfig(num_train=6, num_val=3, seed=5)
    first = _all_files(generate_faces(tmp_path / "a", config))
    assert len(first) == 6 + 3 + 2 + 1 and first == _all_files(generate_faces(tmp_path / "b", config))
    assert first == _all_files(generate_faces(tmp_path / "c", config, workers=2))
    other = _all_files(generate_faces(tmp_path / "d", replace(config, seed=6)))
    generated = [name for name in first if name != MANIFEST_NAME]
    assert sorted(other) == sorted(first) and all(other[name] != first[name] for name in generated)


def test_annotations_follow_the_300w_layout(small_faces: Path) -> None:
    content = json.loads(annotation_file(small_faces, "train").read_text())
    assert len(content["images"]) == 80 and len(content["annotations"]) == 80
    assert content["categories"][0]["keypoints"] == list(F300W.names)
    for ann in content["annotations"]:
        points = np.asarray(ann["keypoints"]).reshape(68, 3)
        assert np.all((points[:, :2] >= 0) & (points[:, :2] <= 127)) and set(points[:, 2]) <= {1.0, 2.0}
        center, scale = landmark_center_scale(points[:, :2])
        assert ann["center"] == center.tolist() and ann["scale"] == pytest.approx(scale, abs=1e-6)
    occluded = sum(any(v == 1 for v in ann["keypoints"][2::3]) for ann in content["annotations"])
    assert 0.1 * 80 < occluded < 0.6 * 80  # occluders cover part of the face in about a third of the images
    data = TopDownCocoDataset(annotation_file(small_faces, "val"), image_dir(small_faces, "val"), F300W,
                              create_codec("face", (128, 128)), train=False, instances="face")
    sample = data[0]
    assert len(data) == 40 and sample["image"].shape == (3, 128, 128) and sample["target"].shape == (68, 32, 32)


def test_frontal_template_has_the_300w_semantics() -> None:
    frontal = replace(sample_face(np.random.default_rng(0)), yaw=0.0, pitch=0.0, roll=0.0, mouth_open=0.0)
    points = shape_face(frontal, np.random.default_rng(1))[0].T
    x, y = points[:, 0], points[:, 1]
    # Image left = the subject's right: jaw_01, right brow, right eye (outer corner 36) lie left of their mirrors.
    assert x[0] < x[16] and x[17:22].mean() < x[22:27].mean() and x[36] < x[39] < x[42] < x[45]
    assert y[8] == y[:17].max() and y[27] < y[30] < y[33] < y[51] < y[57] < y[8]  # bridge, tip, base, lips, chin
    assert y[19] < y[37] and x[48] < x[51] < x[54]
    turned = shape_face(replace(frontal, yaw=30.0), np.random.default_rng(1))[0].T
    assert turned[30, 0] - turned[27, 0] > 0.1  # positive yaw moves the nose tip (high z) to the image right


def test_pose_and_expression_vary() -> None:
    faces = [sample_face(np.random.default_rng(i)) for i in range(2000)]
    yaw, roll = np.array([f.yaw for f in faces]), np.array([f.roll for f in faces])
    assert 12 < yaw.std() < 18 and np.abs(yaw).max() <= 40 and 8 < roll.std() < 12 and np.abs(roll).max() <= 30
    assert 0.3 < np.mean([f.mouth_open > 0 for f in faces]) < 0.5
    assert 0.05 < np.mean([min(f.eye_open) < 0.3 for f in faces]) < 0.15  # blinks


def test_generation_is_fast(tmp_path: Path) -> None:
    start = time.process_time()  # CPU time: the generation is single-process, and the machine may be shared
    generate_faces(tmp_path, SyntheticFacesConfig(num_train=150, num_val=50, seed=1))
    seconds = time.process_time() - start
    print(f"synthetic faces: {200 / seconds:.0f} images per CPU second")
    assert seconds < 6.0  # ~140 images per CPU second here: the default 3,300 images in ~25 s


def test_ensure_generates_once_and_regenerates_on_new_params(tmp_path: Path) -> None:
    root = ensure_synthetic_faces(tmp_path, num_train=4, num_val=2)
    stamp = annotation_file(root, "train").stat().st_mtime_ns
    assert ensure_synthetic_faces(tmp_path, num_train=4, num_val=2) == root
    assert annotation_file(root, "train").stat().st_mtime_ns == stamp
    ensure_synthetic_faces(tmp_path, num_train=5, num_val=2)
    assert len(json.loads(annotation_file(root, "train").read_text())["images"]) == 5
    with pytest.raises(ValueError, match="too small for faces 96 px wide"):
        SyntheticFacesConfig(image_size=(100, 128))
    with pytest.raises(ValueError, match="min_face_width <= max_face_width"):
        SyntheticFacesConfig(min_face_width=50, max_face_width=40)


def test_mean_shape_baseline(small_faces: Path) -> None:
    train, val = annotation_file(small_faces, "train"), annotation_file(small_faces, "val")
    mean_shape = mean_face_shape(train, F300W)
    assert mean_shape.shape == (68, 2) and mean_shape[36, 0] < 0 < mean_shape[45, 0]  # box-normalised, centred
    result = mean_shape_nme(train, val)
    print(f"mean-shape baseline on 80/40 faces: NME {100 * result.nme:.2f}%")
    assert 0.12 < result.nme < 0.35 and result.failure_rates[0.1] > 0.5
    # The same predictions scored directly; the truth itself scores 0.
    predictions = mean_shape_predictions(train, val, F300W)
    data = TopDownCocoDataset(val, image_dir(small_faces, "val"), F300W, create_codec("face", (128, 128)), train=False,
                              instances="face", check_files=False)
    assert annotation_nme(data.coco, F300W, predictions).nme == pytest.approx(result.nme)
    truth = {r.annotation_id: r.joints[:, :2] for r in data.records}
    assert annotation_nme(data.coco, F300W, truth).nme == 0.0
