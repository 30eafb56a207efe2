"""The demo CLI end to end: written media and keypoint files, propagation, smoothing, tracking, errors.

A tiny random HRNet checks the plumbing; the trained LSPET checkpoint (committed later at
``models/lspet_cpu/lspet_cpu.ckpt``) checks the real numbers: smoothing and id stability.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from test_estimator import write_tiny_checkpoint

from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.demo import load_config, main, run_demo
from hrnet_train.inference.detectors import boxes_from_poses
from hrnet_train.inference.smoothing import PoseSmoother, lag_frames, mean_error, motion_noise
from hrnet_train.inference.tracking import iou_matrix
from hrnet_train.models import create_model
from hrnet_train.paths import REPO_ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LSPET_CHECKPOINT = REPO_ROOT / "models" / "lspet_cpu" / "lspet_cpu.ckpt"
FPS = 30.0  # tfjs_pose_1.mp4


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("hrnet_tiny", num_joints=17, init="pytorch")
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", model, (128, 96))


@pytest.fixture(scope="module")
def lspet_checkpoint() -> Path:
    if not LSPET_CHECKPOINT.is_file():
        pytest.skip(f"trained LSPET checkpoint not committed yet: {LSPET_CHECKPOINT}")
    return LSPET_CHECKPOINT


def test_video_demo_writes_playable_mp4_json_and_csv(shared_data, tiny_checkpoint, tmp_path, capsys):
    video = shared_data / "videos" / "tfjs_pose_1.mp4"
    code = main([f"input={video}", f"ckpt={tiny_checkpoint}", f"output_dir={tmp_path}", "detector=full_image",
                 "max_frames=20", "progress=false"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "20 frames: detection" in stdout and "pose" in stdout and "drawing" in stdout and "FPS" in stdout
    capture = cv2.VideoCapture(str(tmp_path / "tfjs_pose_1.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    decoded = 0
    while (image := capture.read()[1]) is not None:
        assert image.shape == (576, 576, 3)
        decoded += 1
    capture.release()
    assert decoded == 20
    data = json.loads((tmp_path / "keypoints.json").read_text())
    assert data["keypoint_names"] == list(load_keypoint_set("coco17").names)
    assert [f["frame"] for f in data["frames"]] == list(range(20))
    assert data["frames"][3]["time_s"] == pytest.approx(0.1)
    assert all(len(f["persons"]) == 1 and f["persons"][0]["track_id"] == 0 for f in data["frames"])
    with open(tmp_path / "keypoints.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 * 17
    assert sorted({int(r["frame"]) for r in rows}) == list(range(20))
    first = data["frames"][0]["persons"][0]["keypoints"][0]
    assert [float(rows[0]["x"]), float(rows[0]["y"])] == pytest.approx(first[:2], abs=1e-3)


def test_propagated_boxes_and_smoothing_on_street(shared_data, tiny_checkpoint, tmp_path):
    cfg = load_config([f"input={shared_data / 'videos' / 'mmpose_demo_street.mp4'}", f"ckpt={tiny_checkpoint}",
                       f"output_dir={tmp_path}", "detector=hog", "detect_every=2", "progress=false", "save_media=false"])
    result = run_demo(cfg)
    assert len(result.frames) == 5 and result.times.frames == 5
    assert [p.name for p in result.outputs] == ["keypoints.json", "keypoints.csv"]
    assert len(result.frames[0]) >= 3  # HOG finds several pedestrians on frame 0
    for index in (1, 3):  # no detector on odd frames: boxes come from the previous frame's raw poses
        previous = [{**p, "keypoints": p["keypoints_raw"]} for p in result.frames[index - 1]]
        expected = boxes_from_poses(previous, (540, 960), 0.3, 0.1)
        shown = np.array([p["box"] for p in result.frames[index]])
        # every kept pose sits in one of the propagated boxes (OKS-NMS may drop duplicates)
        assert all(any(np.array_equal(box, row) for row in expected) for box in shown)
    # the demo's smoothing is the per-track One-Euro filter applied to the raw poses
    smoother = PoseSmoother(5.0, min_cutoff=1.0, beta=0.02, d_cutoff=1.0)
    for index, persons in enumerate(result.frames):
        ids = [p["track_id"] for p in persons]
        assert len(set(ids)) == len(ids)
        expected = smoother.update(index, ids, [p["keypoints_raw"] for p in persons])
        for person, points in zip(persons, expected):
            np.testing.assert_array_equal(person["keypoints"], points)


def test_image_folder_demo(shared_data, tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("astronaut.png", "yoga.jpg"):
        source = "skimage_astronaut.png" if name.startswith("astro") else "tfjs_pose_yoga.jpg"
        (folder / name).write_bytes((shared_data / "demo_images" / source).read_bytes())
    out = tmp_path / "out"
    assert main([f"input={folder}", f"ckpt={tiny_checkpoint}", f"output_dir={out}", "detector=full_image",
                 "progress=false"]) == 0
    annotated = cv2.imread(str(out / "yoga.jpg"))
    assert annotated.shape == (667, 1000, 3)
    data = json.loads((out / "keypoints.json").read_text())
    assert [f["name"] for f in data["frames"]] == ["astronaut.png", "yoga.jpg"]
    assert data["frames"][1]["time_s"] is None
    assert data["frames"][1]["persons"][0]["track_id"] is None  # still images are not tracked
    assert data["frames"][1]["persons"][0]["box"] == [0.0, 0.0, 1000.0, 667.0]
    assert main([f"input={folder}", f"ckpt={tiny_checkpoint}", f"output_dir={folder}", "progress=false"]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["astronaut.png", "yoga.jpg"]  # inputs untouched


@pytest.mark.parametrize(
    ("make_input", "extra", "message"),
    [
        (lambda d: d / "missing.mp4", [], "input not found: .*missing.mp4"),
        (lambda d: _write(d / "broken.mp4", b"not a video" * 50), [], "broken.mp4: cannot be opened or decoded"),
        (lambda d: _mkdir(d / "empty"), [], "empty: no image files"),
        (lambda d: d, ["colour=red"], "colour"),
        (lambda d: d, ["track=false"], "smooth=true needs track=true"),
        (lambda d: d, ["detect_every=0"], "detect_every: expected an integer >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_checkpoint, tmp_path, capsys, make_input, extra, message):
    target = make_input(tmp_path)
    code = main([f"input={target}", f"ckpt={tiny_checkpoint}", f"output_dir={tmp_path / 'out'}", *extra])
    assert code == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("hrnet_train.demo: error: ")
    assert __import__("re").search(message, stderr), stderr


def test_cli_process_exit_code_without_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "hrnet_train.demo", f"input={tmp_path / 'nope.jpg'}", "ckpt=x.ckpt"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr and "input not found" in completed.stderr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


# ---------------------------------------------------------------- trained LSPET model: real measurements


def _movenet_on_model_joints(shared_data: Path, names: tuple[str, ...]) -> tuple[np.ndarray, list[int]]:
    """MoveNet's (T, K, 2) reference for the model joints that have a COCO name, and their indices."""
    records = json.loads((shared_data / "videos" / "tfjs_pose_1.movenet_expected.json").read_text())
    joints = [index for index, name in enumerate(names) if name in records[0]]
    reference = np.array([[[frame[names[j]]["x"], frame[names[j]]["y"]] for j in joints] for frame in records])
    return reference, joints


def test_lspet_smoothing_reduces_noise_with_little_lag(shared_data, lspet_checkpoint, tmp_path):
    cfg = load_config([f"input={shared_data / 'videos' / 'tfjs_pose_1.mp4'}", f"ckpt={lspet_checkpoint}",
                       f"output_dir={tmp_path}", "detector=full_image", "progress=false", "save_media=false"])
    result = run_demo(cfg)
    names = load_keypoint_set("lspet14").names
    reference, joints = _movenet_on_model_joints(shared_data, names)
    assert len(joints) == 12  # the limb joints; LSPET's neck and head top have no COCO counterpart
    assert len(result.frames) == len(reference) == 120
    assert all(len(persons) == 1 for persons in result.frames)
    raw = np.stack([persons[0]["keypoints_raw"][joints, :2] for persons in result.frames])
    smoothed = np.stack([persons[0]["keypoints"][joints, :2] for persons in result.frames])
    height = float(np.mean(reference[:, :, 1].max(axis=1) - reference[:, :, 1].min(axis=1)))
    raw_error, smooth_error = mean_error(raw, reference), mean_error(smoothed, reference)
    raw_noise, smooth_noise = motion_noise(raw), motion_noise(smoothed)
    lag = lag_frames(smoothed, raw)
    print(f"LSPET on tfjs_pose_1: error {raw_error:.2f} -> {smooth_error:.2f} px (person {height:.0f} px), "
          f"noise {raw_noise:.3f} -> {smooth_noise:.3f} px/frame^2, lag {lag:.2f} frames")
    # The joints are mapped right and the model sees the person. Whole-frame crops show this 218-px
    # person at about a third of the scale the committed model was trained on (tight LSPET person
    # boxes): the model of issue 14 (EMA weights) misses by 51 px = 0.235 x the height here, the one
    # before it by 73 px (0.335), the first 128x96 model trained on looser boxes by 44 px.
    assert raw_error < 0.25 * height
    assert smooth_noise < 0.8 * raw_noise
    assert lag < 1.5
    assert smooth_error < raw_error + 1.0


def count_id_switches(frames: list[list[dict]], min_iou: float = 0.5) -> int:
    """Poses of consecutive frames whose boxes overlap by ``min_iou`` (matched one-to-one) but differ in id."""
    switches = 0
    for before, after in zip(frames, frames[1:]):
        if not before or not after:
            continue
        iou = iou_matrix(np.array([p["box"][:4] for p in before]), np.array([p["box"][:4] for p in after]))
        for row, col in zip(*linear_sum_assignment(-iou)):
            switches += bool(iou[row, col] >= min_iou and before[row]["track_id"] != after[col]["track_id"])
    return switches


def test_count_id_switches():
    box = np.array([0.0, 0.0, 10.0, 20.0, 1.0])
    frames = [[{"box": box, "track_id": 0}, {"box": box + [50, 0, 0, 0, 0], "track_id": 1}],
              [{"box": box + [50, 1, 0, 0, 0], "track_id": 1}, {"box": box + [1, 0, 0, 0, 0], "track_id": 0}],
              [{"box": box + [51, 1, 0, 0, 0], "track_id": 0}]]
    assert count_id_switches(frames) == 1  # the right person took id 0 in the last frame


def test_lspet_ids_stay_stable_on_street(shared_data, lspet_checkpoint, tmp_path):
    cfg = load_config([f"input={shared_data / 'videos' / 'mmpose_demo_street.mp4'}", f"ckpt={lspet_checkpoint}",
                       f"output_dir={tmp_path}", "detector=hog", "progress=false", "save_media=false"])
    result = run_demo(cfg)
    assert len(result.frames) == 5 and len(result.frames[0]) >= 3
    switches = count_id_switches(result.frames)
    print(f"LSPET on street: {sum(map(len, result.frames))} poses, {switches} id switches")
    assert switches == 0
