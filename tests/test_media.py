"""Frame sources (image, folder, video) and writers (mp4, JSON, CSV), with their error messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet_train.inference.media import (
    CSV_COLUMNS,
    VideoReader,
    VideoWriter,
    iter_frames,
    write_keypoints_csv,
    write_keypoints_json,
)


def test_video_roundtrip_through_mp4(shared_data, tmp_path):
    reader = VideoReader(shared_data / "videos" / "tfjs_pose_1.mp4")
    assert reader.size == (576, 576) and reader.fps == pytest.approx(30.0) and reader.frame_count == 120
    frames = []
    for frame in reader:
        frames.append(frame)
        if len(frames) == 12:
            break
    assert [f.index for f in frames] == list(range(12)) and frames[3].time_s == pytest.approx(0.1)
    output = tmp_path / "out" / "clip.mp4"
    with VideoWriter(output, fps=reader.fps) as writer:
        for frame in frames:
            writer.write(frame.image)
    assert writer.frames_written == 12
    capture = cv2.VideoCapture(str(output))
    assert capture.isOpened()
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    decoded = []
    while (image := capture.read()[1]) is not None:
        decoded.append(image)
    capture.release()
    assert len(decoded) == 12 and decoded[0].shape == (576, 576, 3)
    # lossy codec, but the content must be the same picture
    assert np.abs(decoded[5].astype(int) - frames[5].image.astype(int)).mean() < 6.0


def test_iter_frames_over_image_folder_and_video(shared_data, tmp_path):
    image = cv2.imread(str(shared_data / "demo_images" / "skimage_astronaut.png"))
    for name in ("b.png", "a.jpg", "c.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"text" if name.endswith(".txt") else cv2.imencode(Path(name).suffix.lower(), image)[1].tobytes())
    names = [f.name for f in iter_frames(tmp_path)]
    assert names == ["a.jpg", "b.png", "c.PNG"]
    (single,) = list(iter_frames(tmp_path / "b.png"))
    np.testing.assert_array_equal(single.image, image)
    assert single.time_s is None
    grey = list(iter_frames(shared_data / "demo_images" / "skimage_camera.png"))[0].image
    assert grey.shape == (512, 512, 3)
    video = list(iter_frames(shared_data / "videos" / "mmpose_demo_street.mp4"))
    assert len(video) == 5 and video[-1].name == "frame_000004" and video[-1].time_s == pytest.approx(0.8)


def test_input_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"{empty}: no image files"):
        list(iter_frames(empty))
    with pytest.raises(FileNotFoundError, match="input not found: .*missing.mp4"):
        list(iter_frames(tmp_path / "missing.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match=f"{broken}: cannot be opened or decoded"):
        list(iter_frames(broken))
    bad_image = tmp_path / "bad.jpg"
    bad_image.write_bytes(b"nope")
    with pytest.raises(ValueError, match=f"cannot decode image .*: {bad_image}"):
        list(iter_frames(bad_image))
    with VideoWriter(tmp_path / "v.mp4", fps=10) as writer:
        writer.write(np.zeros((32, 48, 3), np.uint8))
        with pytest.raises(ValueError, match="frame 1 is 32x32 .*expected 48x32"):
            writer.write(np.zeros((32, 32, 3), np.uint8))


def _frames() -> list[list[dict]]:
    pose = {"keypoints": np.array([[1.0, 2.0, 0.9], [3.0, 4.0, 0.5]]), "box": [0, 0, 10, 20, 0.8], "score": 0.7,
            "track_id": 4}
    return [[pose, {**pose, "track_id": None, "box": None}], []]


def test_json_writer(tmp_path):
    path = tmp_path / "kp.json"
    write_keypoints_json(path, _frames(), ["nose", "neck"], fps=25.0)
    data = json.loads(path.read_text())
    assert data["keypoint_names"] == ["nose", "neck"]
    assert [f["frame"] for f in data["frames"]] == [0, 1] and data["frames"][1]["persons"] == []
    first = data["frames"][0]["persons"][0]
    assert first == {"track_id": 4, "box": [0.0, 0.0, 10.0, 20.0], "score": 0.7,
                     "keypoints": [[1.0, 2.0, 0.9], [3.0, 4.0, 0.5]]}
    assert data["frames"][0]["persons"][1]["track_id"] is None and data["frames"][1]["time_s"] == 0.04
    with pytest.raises(ValueError, match=r"frames\[0\]\[0\].keypoints: expected shape \(3, 3\)"):
        write_keypoints_json(path, _frames(), ["a", "b", "c"])


def test_csv_writer(tmp_path):
    path = tmp_path / "kp.csv"
    write_keypoints_csv(path, _frames(), ["nose", "neck"])
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 2 * 2  # frame 0: 2 persons x 2 joints, frame 1: none
    assert rows[1] == ["0", "0", "4", "0", "nose", "1.000", "2.000", "0.9000"]
    assert rows[4] == ["0", "1", "", "1", "neck", "3.000", "4.000", "0.5000"]
