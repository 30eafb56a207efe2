"""PoseEstimator with a tiny random HRNet: batching, geometry, flip test, detectors, checkpoints, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from hrnet_train.codecs import create_codec
from hrnet_train.normalization import normalize_image
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.geometry import box_to_center_scale
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.inference.detectors import FullImage, GivenBoxes, HogPeopleDetector
from hrnet_train.inference.estimator import PoseEstimator
from hrnet_train.models import create_model

INPUT_SIZE = (96, 64)  # (height, width): HRNet needs multiples of 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    # PyTorch's default init gives varied heatmaps; the official N(0, 0.001) init gives near-flat ones
    return create_model("hrnet_tiny", num_joints=17, init="pytorch").eval()


@pytest.fixture(scope="module")
def estimator(model) -> PoseEstimator:
    return PoseEstimator(model, create_codec("legacy", INPUT_SIZE), load_keypoint_set("coco17"), max_batch=4)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((120, 90, 3), (200, 160, 3), (80, 100, 3))]


def _boxes() -> list[np.ndarray]:
    return [np.array([[5, 5, 40, 80, 0.9], [30, 20, 50, 90, 0.8], [0, 0, 90, 120, 0.5]]),
            np.array([[10, 20, 100, 150]]), np.zeros((0, 4))]


def test_batched_predict_equals_per_image_predict(estimator):
    # 4 crops (+4 mirrored) over 3 images with max_batch=4: crops of different images share passes
    batched = estimator.predict(_images(), boxes=_boxes())
    assert [len(people) for people in batched] == [3, 1, 0]
    for image, boxes, people in zip(_images(), _boxes(), batched):
        (alone,) = estimator.predict(image, boxes=boxes)
        for person, reference in zip(people, alone, strict=True):
            np.testing.assert_array_equal(person["keypoints"], reference["keypoints"])
            assert person["score"] == reference["score"]
    person = batched[1][0]
    assert person["keypoints"].shape == (17, 3) and person["box"].tolist() == [10, 20, 100, 150, 1]


def test_keypoints_stay_in_the_crop_and_follow_the_box(estimator):
    image = _images()[1]
    box = np.array([40.0, 30.0, 60.0, 90.0])
    (people,) = estimator.predict(image, boxes=box)
    points = people[0]["keypoints"][:, :2]
    center, scale = box_to_center_scale(box, INPUT_SIZE[1] / INPUT_SIZE[0])  # crop = 1.25 x box, 64:96 aspect
    half = scale * 100.0
    assert np.all(points >= center - half) and np.all(points <= center + half), points
    # moving the picture and the box together by whole pixels moves every keypoint by the same amount
    dx, dy = 17, 9
    shifted = np.zeros_like(image)
    shifted[dy:, dx:] = image[:-dy, :-dx]
    (moved,) = estimator.predict(shifted, boxes=box + [dx, dy, 0, 0])
    np.testing.assert_allclose(moved[0]["keypoints"][:, :2] - [dx, dy], points, atol=1e-3)
    np.testing.assert_allclose(moved[0]["keypoints"][:, 2], people[0]["keypoints"][:, 2], atol=1e-5)


def test_flip_test_equals_the_evaluation_path(model, estimator):
    image = _images()[1]
    box = np.array([10.0, 20.0, 100.0, 150.0])
    (people,) = estimator.predict(image, boxes=box, return_heatmaps=True)
    codec, keypoints = estimator.codec, estimator.keypoints
    center, scale = box_to_center_scale(box, INPUT_SIZE[1] / INPUT_SIZE[0])
    crop = cv2.warpAffine(image, codec.crop_transform(center, scale), INPUT_SIZE[::-1], flags=cv2.INTER_LINEAR)
    pixels = torch.from_numpy(normalize_image(crop[..., ::-1].copy()))[None]  # BGR image, RGB model
    expected = flip_test(model, pixels, codec, keypoints.flip_index).numpy()
    np.testing.assert_allclose(people[0]["heatmaps"], expected[0], atol=1e-6)
    coords, maxvals = codec.decode(expected)
    np.testing.assert_allclose(people[0]["keypoints"][:, :2], codec.to_image(coords, center[None], scale[None])[0])
    # rescoring: box score 1 x mean of the keypoint scores above 0.2
    confident = maxvals[0][maxvals[0] > 0.2]
    assert people[0]["score"] == pytest.approx(confident.mean() if confident.size else 0.0, rel=1e-6)
    no_flip = PoseEstimator(model, codec, keypoints, flip_test=False)
    (plain,) = no_flip.predict(image, boxes=box, return_heatmaps=True)
    np.testing.assert_allclose(plain[0]["heatmaps"], model(pixels).detach().numpy()[0], atol=1e-6)
    assert not np.allclose(plain[0]["heatmaps"], people[0]["heatmaps"])


def test_flip_test_one_merged_pass_equals_two_passes(model):
    """flip_test runs images + mirrors in one forward pass; in eval mode that is per-sample, so it
    equals the two-pass flip test (up to a kernel picked for the other batch size: last-ulp level)."""
    codec, flip_index = create_codec("legacy", INPUT_SIZE), load_keypoint_set("coco17").flip_index
    images = torch.from_numpy(np.random.default_rng(2).standard_normal((3, 3, *INPUT_SIZE), dtype=np.float32))
    with torch.no_grad():
        two_passes = (model(images) + codec.flip_back(model(torch.flip(images, dims=[3])), flip_index)) / 2.0
    merged = flip_test(model, images, codec, flip_index)
    assert merged.shape == (3, 17, 24, 16)
    torch.testing.assert_close(merged, two_passes, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(codec.decode(merged.numpy())[0], codec.decode(two_passes.numpy())[0])
    chunked = flip_test(model, images, codec, flip_index, max_batch=5)  # passes of 2 + 2 images (4 inputs), 1 + 1
    torch.testing.assert_close(chunked, two_passes, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="max_batch must be >= 2"):
        flip_test(model, images, codec, flip_index, max_batch=1)
    training = create_model("hrnet_tiny", num_joints=17).train()  # BN would mix each image with its mirror
    with pytest.raises(ValueError, match="training mode"):
        flip_test(training, images, codec, flip_index)


def test_channel_order_paths_and_default_full_image_box(estimator, tmp_path):
    image = _images()[0]
    (bgr,) = estimator.predict(image)
    (rgb,) = estimator.predict(np.ascontiguousarray(image[..., ::-1]), channel_order="rgb")
    np.testing.assert_array_equal(bgr[0]["keypoints"], rgb[0]["keypoints"])
    np.testing.assert_array_equal(bgr[0]["box"], [0, 0, 90, 120, 1])  # no boxes, no detector: the whole image
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), image)
    from_file, from_array = estimator.predict([path, image])
    np.testing.assert_array_equal(from_file[0]["keypoints"], from_array[0]["keypoints"])


def test_detector_paths_run_offline(estimator, shared_data):
    yoga = cv2.imread(str(shared_data / "demo_images" / "tfjs_pose_yoga.jpg"))
    hog = HogPeopleDetector()
    (people,) = estimator.predict(yoga, detector=hog)
    np.testing.assert_array_equal([p["box"] for p in people], hog(yoga))
    assert len(people) == 1
    assert estimator.predict(np.zeros((300, 200, 3), np.uint8), detector=hog) == [[]]  # nobody found: no error
    (full,) = estimator.predict(yoga, detector=FullImage())
    np.testing.assert_array_equal(full[0]["box"], [0, 0, 1000, 667, 1])
    (given,) = estimator.predict(yoga, detector=GivenBoxes([[400, 200, 130, 250, 0.7]]))
    assert given[0]["box"].tolist() == [400, 200, 130, 250, 0.7]
    assert given[0]["score"] <= 0.7  # box score x mean keypoint score (maxvals of this model stay below 1)


def test_bad_inputs_raise_clear_errors(estimator, tmp_path):
    image = _images()[0]
    with pytest.raises(FileNotFoundError, match="image file not found: .*missing.jpg"):
        estimator.predict(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match=r"boxes\[1\]: expected shape \(N, 4\)"):
        estimator.predict([image, image], boxes=[[[0, 0, 10, 10]], [[0, 0, 10]]])
    with pytest.raises(ValueError, match=r"boxes\[0\]: width and height must be positive"):
        estimator.predict(image, boxes=[[0, 0, 0, 10]])
    with pytest.raises(ValueError, match=r"boxes: expected one box array per image \(2 images\), got 1"):
        estimator.predict([image, image], boxes=[[[0, 0, 10, 10]]])
    with pytest.raises(ValueError, match="give boxes or a detector, not both"):
        estimator.predict(image, boxes=[[0, 0, 10, 10]], detector=FullImage())
    with pytest.raises(ValueError, match=r"images\[1\]: expected a uint8 \(H, W, 3\) image array .* got float32"):
        estimator.predict([image, image.astype(np.float32)])
    with pytest.raises(ValueError, match="channel_order: expected one of"):
        estimator.predict(image, channel_order="bgra")
    with pytest.raises(ValueError, match="precision: expected one of"):
        PoseEstimator(estimator.model, estimator.codec, estimator.keypoints, precision="16")


def write_tiny_checkpoint(path: Path, model: torch.nn.Module, input_size: tuple[int, int]) -> Path:
    """A checkpoint shaped like the trainer's: ``model.*`` weights + ``checkpoint_hparams`` (coco17, legacy)."""
    from hrnet_train.models import model_config
    from hrnet_train.paths import config_dir
    from hrnet_train.training.checkpointing import checkpoint_hparams

    config = {
        "model": model_config("hrnet_tiny"),
        "keypoints": yaml.safe_load((config_dir() / "keypoints" / "coco17.yaml").read_text()),
        "codec": yaml.safe_load((config_dir() / "codec" / "legacy.yaml").read_text()),
        "data": {"color_rgb": True},
        "eval": {"flip_test": True},
    }
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": checkpoint_hparams(config, input_size, 17)}, path)
    return path


def test_from_checkpoint_lightning_and_official(model, estimator, tmp_path):
    lightning = write_tiny_checkpoint(tmp_path / "run.ckpt", model, INPUT_SIZE)
    official = tmp_path / "official.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, official)
    image = _images()[1]
    (expected,) = estimator.predict(image)
    for loaded in (PoseEstimator.from_checkpoint(lightning),
                   PoseEstimator.from_checkpoint(official, model="hrnet_tiny", input_size="96x64")):
        assert loaded.codec.input_size == INPUT_SIZE and loaded.flip_test and loaded.keypoints.num_joints == 17
        (people,) = loaded.predict(image)
        np.testing.assert_array_equal(people[0]["keypoints"], expected[0]["keypoints"])
    bf16 = PoseEstimator.from_checkpoint(lightning, precision="bf16")
    (people,) = bf16.predict(image)
    assert people[0]["keypoints"].dtype == np.float64 and np.isfinite(people[0]["keypoints"]).all()
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*nothing.ckpt"):
        PoseEstimator.from_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(ValueError, match="needs input_size"):
        PoseEstimator.from_checkpoint(official, model="hrnet_tiny")
    with pytest.raises(ValueError, match="official.pth: does not match HRNet"):
        PoseEstimator.from_checkpoint(official, model="hrnet_w18_small_v1", input_size="96x64")
