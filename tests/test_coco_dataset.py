"""COCO top-down dataset: reference instance rules, det boxes, bit-exact samples, flip, seeding."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hrnet_train.codecs import create_codec
from hrnet_train.data.augment import AugmentConfig
from hrnet_train.data.coco import TopDownCocoDataset, resolve_coco_paths, seed_worker
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.geometry import get_affine_transform

COCO17 = load_keypoint_set("coco17")
CODEC = create_codec("legacy", (256, 192), sigma=2.0)
NO_RANDOM_GEOMETRY = dict(scale_factor=0.0, prob_rotation=0.0, prob_half_body=0.0)


def mini(coco_mini: Path, split: str) -> tuple[Path, Path]:
    return resolve_coco_paths(coco_mini, split, ann_file=f"annotations/person_keypoints_{split}_mini.json")


def expected_instance_count(ann_file: Path) -> int:
    """The reference rules (spec 3.1) re-counted straight from the JSON."""
    data = json.loads(ann_file.read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    count = 0
    for ann in data["annotations"]:
        width, height = sizes[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(width - 1, x1 + max(0, w - 1)), min(height - 1, y1 + max(0, h - 1))
        if ann["iscrowd"] or ann["category_id"] != 1 or not (ann["area"] > 0 and x2 >= x1 and y2 >= y1):
            continue
        count += max(ann["keypoints"]) > 0
    return count


@pytest.mark.parametrize(
    ("which", "split", "count"), [("mini", "val2017", 68), ("mini", "train2017", 86), ("tiny", "val2017", 12)]
)
def test_gt_instance_counts_follow_reference_rules(coco_mini: Path, coco_tiny: Path, which: str, split: str, count: int) -> None:
    if which == "mini":
        ann_file, img_dir = mini(coco_mini, split)
    else:
        ann_file, img_dir = resolve_coco_paths(coco_tiny, split, ann_file="annotations/person_keypoints_val2017_tiny.json")
    dataset = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=False)
    assert expected_instance_count(ann_file) == count
    assert len(dataset) == count
    # Crowd and keypoint-less annotations exist in these files and are excluded.
    assert len(dataset.coco.anns) > count
    assert all(r.joints.shape == (17, 3) and set(np.unique(r.joints[:, 2])) <= {0.0, 1.0} for r in dataset.records)


def test_detection_records_threshold(coco_tiny: Path, coco_mini: Path) -> None:
    ann_file, img_dir = resolve_coco_paths(coco_tiny, "val2017", ann_file="annotations/person_keypoints_val2017_tiny.json")
    det_file = coco_tiny / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person_tiny.json"
    all_boxes = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=False, boxes="det", det_file=det_file)
    confident = TopDownCocoDataset(
        ann_file, img_dir, COCO17, CODEC, train=False, boxes="det", det_file=det_file, det_score_thr=0.5
    )
    assert (len(all_boxes), len(confident)) == (118, 18)
    assert min(r.box_score for r in confident.records) >= 0.5
    record = confident.records[0]
    assert np.array_equal(record.joints[:, :2], np.zeros((17, 2))) and np.all(record.joints[:, 2] == 1)
    det_mini = coco_mini / "person_detection_results" / "yolo11n_pose_person_dets_val2017_mini.json"
    ann_mini, img_mini = mini(coco_mini, "val2017")
    dets = TopDownCocoDataset(ann_mini, img_mini, COCO17, CODEC, train=False, boxes="det", det_file=det_mini, det_score_thr=0.3)
    assert len(dets) == 56  # of 229 boxes


def test_resolve_coco_paths_layouts(tmp_path: Path, coco_tiny: Path) -> None:
    ann = coco_tiny / "annotations" / "person_keypoints_val2017_tiny.json"
    standard = tmp_path / "standard"
    (standard / "annotations").mkdir(parents=True)
    (standard / "annotations" / "person_keypoints_val2017.json").symlink_to(ann)
    (standard / "val2017").symlink_to(coco_tiny / "images" / "val2017")
    assert resolve_coco_paths(standard, "val2017") == (
        standard / "annotations" / "person_keypoints_val2017.json", standard / "val2017"
    )
    official = tmp_path / "official"
    (official / "images").mkdir(parents=True)
    (official / "annotations").mkdir()
    (official / "annotations" / "person_keypoints_val2017.json").symlink_to(ann)
    (official / "images" / "val2017").symlink_to(coco_tiny / "images" / "val2017")
    assert resolve_coco_paths(official, "val2017")[1] == official / "images" / "val2017"
    assert resolve_coco_paths(tmp_path, "val2017", ann_file=ann, img_dir="standard/val2017") == (ann, standard / "val2017")
    with pytest.raises(FileNotFoundError) as error:
        resolve_coco_paths(tmp_path / "nowhere", "train2017")
    message = str(error.value)
    for tried in ("annotations/person_keypoints_train2017.json", "images/train2017", "nowhere/train2017"):
        assert tried in message


def test_val_sample_bit_exact_against_independent_computation(coco_mini: Path) -> None:
    ann_file, img_dir = mini(coco_mini, "val2017")
    dataset = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=False)
    index = 5
    record, sample = dataset.records[index], dataset[index]
    ann = dataset.coco.anns[record.annotation_id]
    image_info = dataset.coco.imgs[record.image_id]
    # center/scale from the clean box, float32 like the reference _xywh2cs.
    x, y, w, h = ann["bbox"]
    x1, y1 = max(0, x), max(0, y)
    bw = min(image_info["width"] - 1, x1 + max(0, w - 1)) - x1
    bh = min(image_info["height"] - 1, y1 + max(0, h - 1)) - y1
    center = np.array([x1 + bw * 0.5, y1 + bh * 0.5], dtype=np.float32)
    if bw > 0.75 * bh:
        bh = bw / 0.75
    elif bw < 0.75 * bh:
        bw = bh * 0.75
    scale = np.array([bw / 200, bh / 200], dtype=np.float32) * 1.25
    assert np.array_equal(record.center, center.astype(np.float64))
    assert np.array_equal(record.scale, scale.astype(np.float64))
    trans = get_affine_transform(center, scale, 0.0, (256, 192))
    raw = cv2.cvtColor(cv2.imread(str(record.image_file), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)
    crop = cv2.warpAffine(raw, trans, (192, 256), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    expected_image = ((crop - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)
    np.testing.assert_allclose(sample["image"].numpy(), expected_image, atol=2e-6)
    # Target: the reference per-joint Gaussian loop written out here.
    joints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    visible = np.minimum(joints[:, 2], 1)
    target = np.zeros((17, 64, 48), dtype=np.float32)
    weight = visible.astype(np.float32)
    grid = np.arange(13, dtype=np.float32)  # float32 throughout, as the reference
    g = np.exp(-((grid[None, :] - 6) ** 2 + (grid[:, None] - 6) ** 2) / (2 * 2**2))
    for j in range(17):
        if visible[j] == 0:
            continue
        px = np.dot(trans, [joints[j, 0], joints[j, 1], 1.0])
        mx, my = int(px[0] / 4 + 0.5), int(px[1] / 4 + 0.5)
        ul, br = (int(mx - 6), int(my - 6)), (int(mx + 7), int(my + 7))
        if ul[0] >= 48 or ul[1] >= 64 or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        target[j, max(0, ul[1]) : min(br[1], 64), max(0, ul[0]) : min(br[0], 48)] = g[
            max(0, -ul[1]) : min(br[1], 64) - ul[1], max(0, -ul[0]) : min(br[0], 48) - ul[0]
        ]
    assert int(weight.sum()) == 13  # this annotation has 13 labelled joints, all inside the crop
    assert np.array_equal(sample["target"].numpy(), target)
    assert np.array_equal(sample["target_weight"].numpy(), weight)
    meta = sample["meta"]
    assert meta["image_id"] == record.image_id and meta["rotation"] == 0.0 and meta["score"] == 1.0
    assert meta["gt_area"] == ann["area"]
    assert meta["area"] == pytest.approx(float(scale[0]) * 200 * float(scale[1]) * 200)


def test_flip_mirrors_joints_and_swaps_pairs(coco_mini: Path) -> None:
    ann_file, img_dir = mini(coco_mini, "train2017")
    plain = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=True, seed=0, augment=AugmentConfig(flip=False, **NO_RANDOM_GEOMETRY))
    flipped = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=True, seed=0, augment=AugmentConfig(prob_flip=1.0, **NO_RANDOM_GEOMETRY))
    flip_index = COCO17.flip_index
    for index in (0, 7, 30):
        a, b = plain[index], flipped[index]
        assert b["meta"]["flipped"] and not a["meta"]["flipped"]
        ja, jb = a["meta"]["joints"], b["meta"]["joints"]
        assert np.array_equal(jb[:, 2], ja[flip_index, 2])
        labelled = jb[:, 2] > 0
        # size convention, r = 0: x_crop -> W_in - x_crop under an image flip
        np.testing.assert_allclose(jb[labelled, 0], 192 - ja[flip_index][labelled, 0], atol=1e-3)
        np.testing.assert_allclose(jb[labelled, 1], ja[flip_index][labelled, 1], atol=1e-9)
        # the left shoulder (5) of the flipped sample is the right shoulder (6) of the plain one
        if ja[6, 2] > 0:
            assert jb[5, 0] == pytest.approx(192 - ja[6, 0], abs=1e-3)


def test_seeding_reproduces_and_varies(coco_mini: Path) -> None:
    ann_file, img_dir = mini(coco_mini, "train2017")

    def make(seed: int) -> TopDownCocoDataset:
        return TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=True, seed=seed)

    def draws(dataset: TopDownCocoDataset) -> list[tuple]:
        return [(float(s["meta"]["scale"][0]), s["meta"]["rotation"], s["meta"]["flipped"]) for s in (dataset[i] for i in range(6))]

    first, again, other = make(3), make(3), make(4)
    epoch0 = draws(first)
    assert epoch0 == draws(again)
    assert epoch0 != draws(other)
    first.set_epoch(1)
    assert draws(first) != epoch0
    first.set_epoch(0)
    assert draws(first) == epoch0
    first.reseed(worker_id=1)
    worker1 = draws(first)
    first.reseed(worker_id=2)
    assert worker1 != draws(first) and worker1 != epoch0


def test_dataloader_workers_are_seeded_reproducibly(coco_tiny: Path) -> None:
    ann_file, img_dir = resolve_coco_paths(coco_tiny, "val2017", ann_file="annotations/person_keypoints_val2017_tiny.json")
    dataset = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=True, seed=11)

    def run() -> torch.Tensor:
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2, worker_init_fn=seed_worker)
        return torch.cat([batch["meta"]["scale"] for batch in loader])

    scales = run()
    assert torch.equal(scales, run())
    # Worker streams differ from the main-process stream (worker ids are offset by one).
    main_scales = torch.stack([torch.as_tensor(dataset[i]["meta"]["scale"]) for i in range(len(dataset))])
    assert not torch.equal(scales, main_scales)


def test_joint_weights_and_custom_keypoint_count(coco_tiny: Path) -> None:
    ann_file, img_dir = resolve_coco_paths(coco_tiny, "val2017", ann_file="annotations/person_keypoints_val2017_tiny.json")
    weighted = load_keypoint_set({
        "names": COCO17.names, "flip_pairs": COCO17.flip_pairs, "upper_body": COCO17.upper_body_ids,
        "lower_body": COCO17.lower_body_ids, "skeleton": COCO17.skeleton, "sigmas": COCO17.sigmas.tolist(),
        "joint_weights": [1.0] * 7 + [1.2, 1.2, 1.5, 1.5] + [1.0] * 2 + [1.2, 1.2, 1.5, 1.5],
    })
    plain = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=False)[0]["target_weight"].numpy()
    scaled = TopDownCocoDataset(ann_file, img_dir, weighted, CODEC, train=False, use_joint_weights=True)[0]["target_weight"].numpy()
    assert np.array_equal(scaled, plain * weighted.joint_weights)
    lspet = load_keypoint_set("lspet14")
    with pytest.raises(ValueError, match="lists 17 keypoints, keypoint set 'lspet14' has 14"):
        TopDownCocoDataset(ann_file, img_dir, lspet, create_codec("legacy", (256, 192)), train=False)


def test_reduced_decode_keeps_targets(coco_mini: Path) -> None:
    ann_file, img_dir = mini(coco_mini, "train2017")
    full = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=True, seed=5)
    reduced = TopDownCocoDataset(ann_file, img_dir, COCO17, CODEC, train=True, seed=5, max_decode_reduction=4)
    used = 0
    for index in range(len(full)):
        a, b = full.load_sample(index, np.random.default_rng(index)), reduced.load_sample(index, np.random.default_rng(index))
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["target_weight"], b["target_weight"])
        if reduced._decode_factor(a["meta"]["scale"]) > 1:
            used += 1
            # same geometry: the crops agree up to the different pre-filtering (mean abs diff in normalised units)
            assert float((a["image"] - b["image"]).abs().mean()) < 0.15
    assert used >= 5
