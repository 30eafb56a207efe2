"""The synthetic people dataset: determinism, COCO format, label semantics, flip asymmetry and
the calibration of the no-learning mean-pose baseline."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from hrnet_train.cli_args import UsageError
from hrnet_train.data import synthetic
from hrnet_train.baselines.mean_pose import (
    evaluate_keypoint_results,
    mean_normalised_pose,
    mean_pose_baseline,
)
from hrnet_train.data.synthetic import (
    KP,
    SyntheticConfig,
    ensure_synthetic_dataset,
    generate_dataset,
    render_image,
    sample_appearance,
)

SIZE = (192, 256)  # (height, width): non-square, to catch x/y mix-ups


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 train / 30 val images, the size the baseline calibration test uses."""
    root = tmp_path_factory.mktemp("synthetic_small")
    return generate_dataset(root, SyntheticConfig(num_train=60, num_val=30, seed=0, image_size=SIZE))


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    config = SyntheticConfig(num_train=5, num_val=3, seed=7, image_size=SIZE)
    first = _all_files(generate_dataset(tmp_path / "a", config))
    second = _all_files(generate_dataset(tmp_path / "b", config))
    assert len(first) == 3 * (5 + 3) + 2 + 1  # images + person and part masks, two annotation files, manifest
    assert first == second
    other_config = SyntheticConfig(num_train=5, num_val=3, seed=8, image_size=SIZE)
    other = _all_files(generate_dataset(tmp_path / "c", other_config))
    assert sorted(other) == sorted(first)
    generated = [name for name in first if name != synthetic.MANIFEST_NAME]
    assert len(generated) == 26 and all(other[name] != first[name] for name in generated)


def test_parallel_generation_matches_serial(tmp_path: Path) -> None:
    config = SyntheticConfig(num_train=6, num_val=2, seed=3, image_size=SIZE)
    serial = _all_files(generate_dataset(tmp_path / "serial", config, workers=1))
    parallel = _all_files(generate_dataset(tmp_path / "parallel", config, workers=2))
    assert serial == parallel


@pytest.mark.parametrize(("split", "count", "first_id"), [("train", 60, 1), ("val", 30, 1_000_001)])
def test_annotations_are_valid_coco_keypoints(small_set: Path, split: str, count: int, first_id: int) -> None:
    coco = COCO(str(small_set / "annotations" / f"person_keypoints_{split}.json"))
    height, width = SIZE
    image_ids = sorted(coco.getImgIds())
    assert image_ids == list(range(first_id, first_id + count))
    assert coco.getCatIds() == [1]
    category = coco.loadCats(1)[0]
    assert category["keypoints"][:3] == ["nose", "left_eye", "right_eye"]
    assert len(category["keypoints"]) == 17 and [16, 14] in category["skeleton"] and len(category["skeleton"]) == 19
    for image in coco.loadImgs(image_ids):
        assert image["file_name"] == f"{image['id']:012d}.jpg"
        assert (image["width"], image["height"], image["license"]) == (width, height, 1)
        decoded = cv2.imread(str(small_set / "images" / split / image["file_name"]))
        assert decoded.shape == (height, width, 3)
    annotations = coco.loadAnns(coco.getAnnIds())
    per_image = np.bincount([coco.imgs[a["image_id"]]["id"] - first_id for a in annotations], minlength=count)
    assert per_image.min() >= 1 and per_image.max() <= synthetic.MAX_PEOPLE
    for ann in annotations:
        keypoints = np.asarray(ann["keypoints"]).reshape(17, 3)
        visibility = keypoints[:, 2]
        assert set(np.unique(visibility)) <= {0.0, 1.0, 2.0}
        assert ann["num_keypoints"] == int((visibility > 0).sum()) > 0
        assert (ann["category_id"], ann["iscrowd"]) == (1, 0)
        assert np.all(keypoints[visibility == 0, :2] == 0)
        labelled = keypoints[visibility > 0]
        assert np.all((labelled[:, 0] >= 0) & (labelled[:, 0] <= width - 1))
        assert np.all((labelled[:, 1] >= 0) & (labelled[:, 1] <= height - 1))
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and w > 0 and h > 0
        assert 0 < ann["area"] <= w * h


def test_labels_show_occlusion_and_truncation(small_set: Path) -> None:
    """The set must contain occluded (v=1) and truncated (v=0) joints, but mostly visible ones."""
    data = json.loads((small_set / "annotations" / "person_keypoints_train.json").read_text())
    visibility = np.array([a["keypoints"] for a in data["annotations"]]).reshape(-1, 17, 3)[:, :, 2]
    fractions = [(visibility == v).mean() for v in (0, 1, 2)]
    assert 0.005 < fractions[0] < 0.1
    assert 0.03 < fractions[1] < 0.25
    assert fractions[2] > 0.75


def test_left_limbs_are_warm_and_right_limbs_cool() -> None:
    """Flip must matter: left/right limb colours come from disjoint hue families (BGR order)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        look = sample_appearance(rng)
        assert look.left_limb[2] > look.left_limb[0] + 60  # red > blue
        assert look.right_limb[0] > look.right_limb[2] + 60  # blue > red
    # And in rendered images: the middle of each visible upper arm of larger figures.
    red_minus_blue = {"left": [], "right": []}
    for index in range(40):
        scene = render_image(synthetic._image_rng(0, "train", index), (256, 256))
        image = scene.image
        for person in scene.people:
            if person.bbox[3] < 60:
                continue
            for side in ("left", "right"):
                shoulder, elbow = person.keypoints[KP[f"{side}_shoulder"]], person.keypoints[KP[f"{side}_elbow"]]
                if shoulder[2] == 2 and elbow[2] == 2:
                    x, y = np.round((shoulder[:2] + elbow[:2]) / 2).astype(int)
                    blue, _, red = image[y, x].astype(int)
                    red_minus_blue[side].append(red - blue)
    left, right = np.array(red_minus_blue["left"]), np.array(red_minus_blue["right"])
    assert len(left) > 40 and len(right) > 40
    assert (left > 0).mean() > 0.9 and (right < 0).mean() > 0.9


def test_figures_face_the_camera() -> None:
    """COCO left = the person's left: on the image's right for an upright front-facing figure."""
    people = [person for index in range(20)
              for person in render_image(synthetic._image_rng(0, "train", index), (256, 256)).people]
    mean = _mean_normalised_pose(people)
    assert mean[KP["left_shoulder"], 0] > mean[KP["right_shoulder"], 0]
    assert mean[KP["left_hip"], 0] > mean[KP["right_hip"], 0]
    assert mean[KP["nose"], 1] < mean[KP["left_hip"], 1]


def _mean_normalised_pose(people: list[synthetic.PersonLabel]) -> np.ndarray:
    points = []
    for person in people:
        x, y, w, h = person.bbox
        points.append((person.keypoints[:, :2] - (x, y)) / (w, h))
    return np.mean(points, axis=0)


def test_mean_pose_baseline_stays_far_below_a_trained_model(small_set: Path) -> None:
    train_ann = small_set / "annotations" / "person_keypoints_train.json"
    val_ann = small_set / "annotations" / "person_keypoints_val.json"
    mean_pose = mean_normalised_pose(train_ann)
    assert mean_pose.shape == (17, 2)
    assert mean_pose[KP["left_ankle"], 1] > mean_pose[KP["left_knee"], 1] > mean_pose[KP["left_hip"], 1]
    results = mean_pose_baseline(train_ann, val_ann)
    assert len(results) == len(COCO(str(val_ann)).getAnnIds())
    stats = evaluate_keypoint_results(val_ann, results)
    # Measured 0.025 AP on the default 2000/200 set; real COCO val gives ~0.000 for this baseline.
    assert 0.0 <= stats["AP"] < 0.1
    assert 0.02 < stats["AP50"] < 0.4  # some standing figures do match the mean pose loosely


def test_ensure_generates_once_and_regenerates_on_new_params(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "keep.txt").write_text("not ours")
    assert ensure_synthetic_dataset(root, num_train=4, num_val=2, seed=0, image_size="128x160") == root
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["image_size"] == "128x160" and manifest["num_train"] == 4
    image = root / "images" / "train" / "000000000001.jpg"
    stamp = image.stat().st_mtime_ns
    ensure_synthetic_dataset(root, num_train=4, num_val=2, seed=0, image_size=(128, 160))
    assert image.stat().st_mtime_ns == stamp  # up to date: nothing rewritten
    image.unlink()
    ensure_synthetic_dataset(root, num_train=4, num_val=2, seed=0, image_size=(128, 160))
    assert image.is_file()  # a missing file triggers regeneration
    ensure_synthetic_dataset(root, num_train=3, num_val=2, seed=0, image_size=(128, 160))
    assert len(list((root / "images" / "train").iterdir())) == 3  # stale images removed
    assert (root / "notes" / "keep.txt").read_text() == "not ours"


def test_bad_parameters_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_size"):
        SyntheticConfig(image_size=(64, 256))
    with pytest.raises(ValueError, match="num_val"):
        SyntheticConfig(num_val=-1)
    with pytest.raises(UsageError, match="key=value"):
        synthetic.main([f"output_dir={tmp_path}", "num_train"])
    with pytest.raises(UsageError, match="num_trian: unknown option \\(did you mean 'num_train'\\?\\)"):
        synthetic.main([f"output_dir={tmp_path}", "num_trian=3"])
    with pytest.raises(ValueError, match="empty"):
        evaluate_keypoint_results(tmp_path / "missing.json", [])
