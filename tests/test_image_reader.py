"""The one image reader (hrnet_train/image_io.py): strict decoding, one EXIF policy for datasets, the API
and the demo, and clear errors for images the API cannot use. Damaged files are copies of real COCO
JPEGs written to tmp_path."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_estimator import estimator, model, write_tiny_checkpoint  # noqa: F401 -- estimator, model: fixtures

from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.demo import main as demo_main
from hrnet_train.image_io import ImageReadError, exif_orientation, read_image, read_jpeg_bytes
from hrnet_train.inference.detectors import FullImage
from hrnet_train.decoding.seg_predict import multi_scale_scores
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COCO17 = load_keypoint_set("coco17")
IMAGE_ID = 785
IMAGE_NAME = "000000000785.jpg"




def jpeg_bytes(coco_tiny: Path) -> bytes:
    return (coco_tiny / "images" / "val2017" / IMAGE_NAME).read_bytes()


def damaged(data: bytes) -> bytes:
    """64 bytes of the entropy-coded data overwritten: libjpeg warns "Corrupt JPEG data" and decodes anyway."""
    scan = data.find(b"\xff\xda")
    out = bytearray(data)
    out[scan + 2000 : scan + 2064] = bytes(range(64))
    return bytes(out)


def with_orientation(data: bytes, orientation: int) -> bytes:
    """The picture re-encoded with an EXIF Orientation tag (what a phone camera writes)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_corrupt_entropy_data_is_refused_where_opencv_and_pillow_decode_it(coco_tiny, tmp_path) -> None:
    bad = tmp_path / IMAGE_NAME
    bad.write_bytes(damaged(jpeg_bytes(coco_tiny)))
    assert cv2.imdecode(np.fromfile(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # what used to be trained on
    Image.open(bad).load()  # Pillow loads it too
    with pytest.raises(ImageReadError, match=rf"corrupt image data \(libjpeg: Corrupt JPEG data: .*\): .*{IMAGE_NAME}"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="Corrupt JPEG data"):
        read_image(bad, reduce=4)  # the reduced decode of training is just as strict


def test_trailing_bytes_are_not_truncation_and_truncation_is_found(coco_tiny, tmp_path) -> None:
    data = jpeg_bytes(coco_tiny)
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 8192 + b"appended by some tool")  # more than the old 4 KiB tail search
    np.testing.assert_array_equal(read_image(padded), read_image(coco_tiny / "images" / "val2017" / IMAGE_NAME))
    assert read_jpeg_bytes(padded).size == len(data) + 8192 + 21
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    for reader in (read_image, read_jpeg_bytes):
        with pytest.raises(ImageReadError, match=r"truncated JPEG .*cut.jpg"):
            reader(cut)
    headers_only = tmp_path / "headers.jpg"
    headers_only.write_bytes(data[:300])
    with pytest.raises(ImageReadError, match=r"broken JPEG .*headers.jpg"):
        read_image(headers_only)


def test_exif_rotation_is_opencvs_for_every_orientation(coco_tiny, tmp_path) -> None:
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.jpg"
        path.write_bytes(with_orientation(jpeg_bytes(coco_tiny), orientation))
        assert exif_orientation(path) == orientation
        stored = read_image(path, color_rgb=False)
        assert stored.shape == (425, 640, 3)  # default: the stored pixels, as the reference reads them
        np.testing.assert_array_equal(read_image(path, color_rgb=False, exif_rotate=True), cv2.imread(str(path)))
    assert exif_orientation(coco_tiny / "images" / "val2017" / IMAGE_NAME) == 1


def test_api_and_evaluation_agree_on_an_exif_rotated_jpeg(coco_tiny, tmp_path, model, estimator) -> None:
    img_dir = tmp_path / "images"
    shutil.copytree(coco_tiny / "images" / "val2017", img_dir)
    rotated = img_dir / IMAGE_NAME
    rotated.write_bytes(with_orientation(rotated.read_bytes(), 6))
    codec = estimator.codec
    dataset = TopDownCocoDataset(coco_tiny / "annotations" / "person_keypoints_val2017_tiny.json", img_dir, COCO17,
                                 codec, train=False)
    index = next(i for i, r in enumerate(dataset.records) if r.image_id == IMAGE_ID)
    sample = dataset[index]
    heatmaps = flip_test(model, sample["image"][None], codec, COCO17.flip_index).detach().numpy()
    coords, _ = codec.decode(heatmaps)
    evaluated = codec.to_image(coords, sample["meta"]["center"][None], sample["meta"]["scale"][None])[0]
    box = dataset.records[index].bbox
    (api,) = estimator.predict(rotated, boxes=box)
    np.testing.assert_allclose(api[0]["keypoints"][:, :2], evaluated, atol=1e-3)
    (upright,) = estimator.predict(rotated, boxes=box, exif_rotate=True)  # asked for: another picture
    assert np.abs(upright[0]["keypoints"][:, :2] - evaluated).max() > 10.0


def test_api_refuses_truncated_and_damaged_images_with_the_file_name(coco_tiny, tmp_path, estimator) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg_bytes(coco_tiny)[:20000])
    with pytest.raises(ImageReadError, match=r"truncated JPEG .*cut.jpg"):
        estimator.predict(cut)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(damaged(jpeg_bytes(coco_tiny)))
    with pytest.raises(ImageReadError, match=r"Corrupt JPEG data.*bad.jpg"):
        estimator.predict([coco_tiny / "images" / "val2017" / IMAGE_NAME, bad])


@pytest.mark.parametrize(
    ("image", "got"),
    [
        (np.zeros((0, 0, 3), np.uint8), r"uint8 \(0, 0, 3\)"),
        (np.zeros((0, 40, 3), np.uint8), r"uint8 \(0, 40, 3\)"),
        (np.zeros((30, 40), np.uint8), r"uint8 \(30, 40\)"),
        (np.zeros((30, 40, 4), np.uint8), r"uint8 \(30, 40, 4\)"),
        (np.zeros((30, 40, 3), np.float64), r"float64 \(30, 40, 3\)"),
        ([[1, 2, 3]], "got list"),
    ],
)
def test_unusable_arrays_get_a_value_error_saying_what_was_expected(estimator, image, got) -> None:
    with pytest.raises(ValueError, match=rf"images\[0\]: expected a uint8 \(H, W, 3\) image array.* {got}"):
        estimator.predict([image])
    if isinstance(image, np.ndarray):
        with pytest.raises(ValueError, match=rf"image: expected a uint8 \(H, W, 3\) image array.* {got}"):
            FullImage()(image)


def test_empty_segmentation_input_gets_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"expected normalised images \(N, 3, H, W\), float, H and W >= 1, got .*\(1, 3, 0, 0\)"):
        multi_scale_scores(torch.nn.Identity(), torch.zeros(1, 3, 0, 0))


def test_api_refuses_boxes_outside_the_image(estimator) -> None:
    image = np.zeros((120, 90, 3), np.uint8)
    with pytest.raises(ValueError, match=r"boxes\[0\]: box \[-50.0, 10.0, 40.0, 40.0\] lies wholly left of the 90x120 image"):
        estimator.predict(image, boxes=[[-50, 10, 40, 40]])
    with pytest.raises(ValueError, match=r"boxes\[1\]: .* lies wholly below the 90x120 image"):
        estimator.predict(image, boxes=[[0, 0, 10, 10], [0, 120, 10, 10]])
    with pytest.raises(ValueError, match=r"boxes: expected numbers"):
        estimator.predict(image, boxes=[["a", 0, 10, 10]])


def test_demo_fails_on_a_truncated_image_and_says_what_it_did_with_exif(coco_tiny, tmp_path, capsys) -> None:
    torch.manual_seed(0)
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt", create_model("hrnet_tiny", num_joints=17, init="pytorch"),
                                 (128, 96))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_phone.jpg").write_bytes(with_orientation(jpeg_bytes(coco_tiny), 6))
    (folder / "b_cut.jpg").write_bytes(jpeg_bytes(coco_tiny)[:20000])
    common = [f"ckpt={ckpt}", "detector=full_image", "progress=false"]
    assert demo_main([f"input={folder / 'b_cut.jpg'}", f"output_dir={tmp_path / 'one'}", *common]) == 2
    assert "error: truncated JPEG" in capsys.readouterr().err
    out = tmp_path / "out"
    assert demo_main([f"input={folder}", f"output_dir={out}", *common]) == 1
    captured = capsys.readouterr()
    assert "a_phone.jpg: EXIF orientation 6 not applied (exif_rotate=false)" in captured.out
    assert "failed: truncated JPEG" in captured.err and "b_cut.jpg" in captured.err
    frames = json.loads((out / "keypoints.json").read_text())["frames"]
    assert [f["name"] for f in frames] == ["a_phone.jpg"]  # the image before the failure keeps its keypoints
    assert frames[0]["persons"][0]["box"] == [0.0, 0.0, 640.0, 425.0]  # the stored pixels
    assert demo_main([f"input={folder / 'a_phone.jpg'}", f"output_dir={out}", "exif_rotate=true", *common]) == 0
    assert "EXIF orientation 6 applied (exif_rotate=true)" in capsys.readouterr().out
    assert json.loads((out / "keypoints.json").read_text())["frames"][0]["persons"][0]["box"] == [0.0, 0.0, 425.0, 640.0]
