"""Device pipeline (data.pipeline=device): batched torch encoders equal the numpy codecs, the batched crop
equals cv2.warpAffine, device batches equal CPU batches drawn from the same stream, the switches are
validated, and training runs with it. ``--device cuda`` runs the parity tests on a GPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hrnet_train.codecs import CODECS, create_codec
from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.config_schema import ConfigError, check_codec_section, validate_train_config
from hrnet_train.data.coco import TopDownCocoDataset, resolve_coco_paths
from hrnet_train.data.device_pipeline import DeviceBatchTransform, collate_geometry, decode_jpeg_batch, is_geometry_batch
from hrnet_train.data.packed_images import invert_affine_batch, pack_images, warp_packed
from hrnet_train.pipeline_options import check_pipeline
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.training.schedules import build_optimizer

COCO17 = load_keypoint_set("coco17")
INPUT = (256, 192)
ENCODER_CASES = [
    ("legacy", {}, (256, 192), 2.0),
    ("legacy", {}, (384, 288), 3.0),
    ("legacy", {}, (256, 192), 1.5),  # non-integer 3 sigma: truncated window corners
    ("dark", {}, (256, 192), 2.0),
    ("udp", {}, (256, 192), 2.0),
    ("udp", {"target_type": "combined"}, (256, 192), 2.0),
]


def mini_train(coco_mini: Path) -> tuple[Path, Path]:
    return resolve_coco_paths(coco_mini, "train2017", ann_file="annotations/person_keypoints_train2017_mini.json")


def to_device(value, device: torch.device):
    """Move a (nested) batch to ``device`` as Lightning's transfer does."""
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    return value.to(device) if isinstance(value, torch.Tensor) else value


def tricky_joints(rng: np.random.Generator, batch: int, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Joints inside, outside and on the rounding boundaries of the map (x/stride + 0.5 integral, negatives)."""
    joints = rng.uniform(-60, max(input_size) + 60, (batch, 17, 2))
    joints[: batch // 4] = np.round(joints[: batch // 4])
    joints[batch // 4: batch // 2] = np.round(joints[batch // 4: batch // 2] * 4) / 4 - 2
    visible = (rng.random((batch, 17)) > 0.2).astype(np.float64)
    return joints, visible


@pytest.mark.parametrize(("name", "options", "input_size", "sigma"), ENCODER_CASES)
def test_torch_encoder_equals_numpy_codec(name: str, options: dict, input_size, sigma: float, device: torch.device) -> None:
    codec = create_codec(name, input_size, sigma=sigma, **options)
    joints, visible = tricky_joints(np.random.default_rng(0), 48, input_size)
    expected = [codec.encode(j, v) for j, v in zip(joints, visible)]
    target, weight = codec.torch_encoder().to(device)(torch.from_numpy(joints).to(device), torch.from_numpy(visible).to(device))
    target, weight = target.cpu().numpy(), weight.cpu().numpy()
    expected_target = np.stack([t for t, _ in expected])
    assert target.dtype == np.float32 and target.shape == expected_target.shape
    assert np.array_equal(weight, np.stack([w for _, w in expected]))
    if name == "legacy":
        assert np.array_equal(target, expected_target)
    else:
        assert float(np.abs(target - expected_target).max()) <= 1e-6


def test_codec_without_torch_encoder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class CpuOnlyCodec(HeatmapCodec):
        name = "cpu_only"

        def __init__(self, input_size, post_process: bool = True, **options) -> None:  # legacy's options: the config's
            super().__init__(input_size, **options)

        def torch_decoder(self):  # pragma: no cover - not used
            raise NotImplementedError

        def encode(self, joints, visible):  # pragma: no cover - not used
            raise NotImplementedError

        def decode(self, heatmaps):  # pragma: no cover - not used
            raise NotImplementedError

    assert {n for n, c in CODECS.items() if c.has_torch_encoder()} >= {"legacy", "dark", "udp"}
    assert not CpuOnlyCodec.has_torch_encoder()
    with pytest.raises(NotImplementedError, match="'cpu_only' has no torch encoder.*use data.pipeline=cpu"):
        DeviceBatchTransform(CpuOnlyCodec(INPUT))
    monkeypatch.setitem(CODECS, "cpu_only", CpuOnlyCodec)
    config = validate_train_config(_train_config("data.pipeline=device", codec="cpu_only"))
    with pytest.raises(ConfigError, match="data.pipeline: device .* codec.name='cpu_only' has none"):
        check_codec_section(config)
    check_codec_section(validate_train_config(_train_config("data.pipeline=cpu", codec="cpu_only")))


def _train_config(*overrides: str, codec: str = "legacy") -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from hrnet_train.config_schema import register_resolvers
    from hrnet_train.paths import config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.run_dir = "/tmp/unused"
        cfg.codec.name = codec
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data.pipeline=gpu",), "data.pipeline: expected one of ['cpu', 'device'], got 'gpu'"),
        (("data.decode=nvjpeg",), "data.decode: expected one of ['cpu', 'gpu'], got 'nvjpeg'"),
        (("data.decode=gpu",), "data.decode: gpu decodes on the device, which needs data.pipeline=device"),
        (("data.pipeline=device", "data.decode=gpu"), "data.decode: gpu needs trainer.accelerator=gpu"),
        (("data.pipeline=device", "+data.augment.photometric=true"), "data.augment.photometric: photometric/occlusion"),
        (("trainer.compile=fast",), "trainer.compile: expected one of ['default', 'reduce-overhead'"),
    ],
)
def test_switches_are_validated_before_training(overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_train_config(_train_config(*overrides))
    assert message in str(error.value)


def test_dataset_refuses_crop_augmentation_in_device_mode(coco_mini: Path) -> None:
    from hrnet_train.data.augment import AugmentConfig

    ann_file, img_dir = mini_train(coco_mini)
    with pytest.raises(ValueError, match="data.augment.occlusion"):
        TopDownCocoDataset(ann_file, img_dir, COCO17, create_codec("legacy", INPUT), train=True, pipeline="device",
                           augment=AugmentConfig(occlusion=True))
    with pytest.raises(ValueError, match="data.pipeline: expected one of"):
        check_pipeline("gpu", "cpu")


def _crop_differences(samples: list[dict], crops: np.ndarray) -> tuple[float, float, float]:
    """(mean, max away from image borders, max everywhere) |device - cv2| in grey levels."""
    means, interior_max, overall_max = [], 0.0, 0.0
    for sample, crop in zip(samples, crops):
        image = sample["pixels"].numpy()
        if sample["mirror"]:
            image = cv2.flip(image, 1)
        matrix = sample["crop_matrix"].numpy()
        expected = cv2.warpAffine(image, matrix, (INPUT[1], INPUT[0]), flags=cv2.INTER_LINEAR).astype(np.float64)
        difference = np.abs(expected - crop)
        inverse = invert_affine_batch(torch.from_numpy(matrix)[None])[0].numpy()
        u, v = np.meshgrid(np.arange(INPUT[1]), np.arange(INPUT[0]))
        x = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
        y = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]
        height, width = image.shape[:2]
        interior = (x >= 1) & (x <= width - 2) & (y >= 1) & (y <= height - 2)  # all four taps inside the image
        means.append(difference[interior].mean())
        interior_max = max(interior_max, float(difference[interior].max()))
        overall_max = max(overall_max, float(difference.max()))
    return float(np.mean(means)), interior_max, overall_max


@pytest.mark.parametrize(("codec_name", "reduction"), [("legacy", 1), ("legacy", 4), ("udp", 1)])
def test_batched_crop_matches_cv2_warp_affine(coco_mini: Path, codec_name: str, reduction: int, device: torch.device) -> None:
    """Every coco_mini train crop (reference augmentation, both pixel conventions, reduced decode)."""
    ann_file, img_dir = mini_train(coco_mini)
    dataset = TopDownCocoDataset(ann_file, img_dir, COCO17, create_codec(codec_name, INPUT), train=True, seed=3,
                                 pipeline="device", max_decode_reduction=reduction)
    samples = [dataset.load_sample(i, np.random.default_rng(i)) for i in range(len(dataset))]
    flat, offsets, sizes = pack_images([sample["pixels"] for sample in samples])
    matrices = torch.stack([sample["crop_matrix"] for sample in samples])
    mirror = torch.tensor([sample["mirror"] for sample in samples])
    crops = warp_packed(*(t.to(device) for t in (flat, offsets, sizes, matrices)), INPUT, mirror.to(device)).cpu().numpy()
    assert any(sample["mirror"] for sample in samples) or reduction > 1
    mean, interior_max, overall_max = _crop_differences(samples, crops)
    print(f"\n{codec_name} reduce {reduction}: |device crop - cv2.warpAffine| mean {mean:.4f}, "
          f"max {interior_max:.0f} away from borders, {overall_max:.0f} everywhere (grey levels)")
    assert mean < 0.5 and interior_max <= 2


def test_warp_packed_handles_mixed_sizes_and_borders(device: torch.device) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((30, 50, 3), (47, 21, 3), (5, 9, 3))]
    matrices = np.array([
        [[1.0, 0.0, 3.5], [0.0, 1.0, -2.25]],  # shift: crop reaches past the right/top border
        cv2.getRotationMatrix2D((10.0, 20.0), 33.0, 1.7),
        [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]],  # upscale of a tiny image, mostly outside it
    ])
    flat, offsets, sizes = pack_images([torch.from_numpy(image) for image in images])
    mirror = torch.tensor([False, True, False])
    crops = warp_packed(*(t.to(device) for t in (flat, offsets, sizes, torch.from_numpy(matrices))), (40, 32),
                        mirror.to(device)).cpu().numpy()
    for image, matrix, flipped, crop in zip(images, matrices, mirror.tolist(), crops):
        source = cv2.flip(image, 1) if flipped else image
        expected = cv2.warpAffine(source, matrix, (32, 40), flags=cv2.INTER_LINEAR)
        assert float(np.abs(expected.astype(np.float64) - crop).max()) <= 1


def test_pack_images_rejects_other_layouts() -> None:
    with pytest.raises(ValueError, match="expected HxWx3 uint8 images"):
        pack_images([torch.zeros(3, 4, 5, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="2 matrices need offsets"):
        warp_packed(torch.zeros(12, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64), torch.ones(1, 2, dtype=torch.int64),
                    torch.zeros(2, 2, 3, dtype=torch.float64), (4, 4))


def _batches(dataset: TopDownCocoDataset, collate: Callable, indices: list[int]) -> dict:
    return collate([dataset.load_sample(i, np.random.default_rng([7, i])) for i in indices])


@pytest.mark.parametrize("codec_name", ["legacy", "dark", "udp"])
def test_device_batch_equals_cpu_batch(coco_mini: Path, codec_name: str, device: torch.device) -> None:
    """Same records, same random streams: targets/weights/meta identical, images within 1 grey level."""
    ann_file, img_dir = mini_train(coco_mini)
    codec = create_codec(codec_name, INPUT)
    cpu = TopDownCocoDataset(ann_file, img_dir, COCO17, codec, train=True, seed=5)
    on_device = TopDownCocoDataset(ann_file, img_dir, COCO17, codec, train=True, seed=5, pipeline="device")
    indices = list(range(0, len(cpu), 3))
    expected = _batches(cpu, torch.utils.data.default_collate, indices)
    geometry = to_device(_batches(on_device, collate_geometry, indices), device)
    assert is_geometry_batch(geometry) and not is_geometry_batch(expected)
    batch = DeviceBatchTransform(codec).to(device)(geometry)
    assert batch["image"].shape == expected["image"].shape and batch["image"].device.type == device.type
    if codec_name == "legacy":
        assert torch.equal(batch["target"].cpu(), expected["target"])
    else:
        assert float((batch["target"].cpu() - expected["target"]).abs().max()) <= 1e-6
    assert torch.equal(batch["target_weight"].cpu(), expected["target_weight"])
    grey_level = 1.0 / (255 * 0.224)  # one grey level in normalised units (the middle channel's std)
    image_difference = (batch["image"].cpu() - expected["image"]).abs()
    assert float(image_difference.max()) <= 1.03 * grey_level and float((image_difference > 0).float().mean()) < 0.02
    for key in ("center", "scale", "joints", "flipped", "rotation", "index"):
        assert torch.equal(batch["meta"][key].cpu(), expected["meta"][key]), key


def test_joint_weights_multiply_device_target_weights(coco_mini: Path) -> None:
    ann_file, img_dir = mini_train(coco_mini)
    codec = create_codec("legacy", INPUT)
    weights = np.array([1.0] * 7 + [1.2, 1.2, 1.5, 1.5] + [1.0] * 2 + [1.2, 1.2, 1.5, 1.5])
    weighted_set = load_keypoint_set({
        "names": COCO17.names, "flip_pairs": COCO17.flip_pairs, "upper_body": COCO17.upper_body_ids,
        "lower_body": COCO17.lower_body_ids, "skeleton": COCO17.skeleton, "sigmas": COCO17.sigmas.tolist(),
        "joint_weights": weights.tolist(),
    })
    cpu = TopDownCocoDataset(ann_file, img_dir, weighted_set, codec, train=True, seed=2, use_joint_weights=True)
    on_device = TopDownCocoDataset(ann_file, img_dir, weighted_set, codec, train=True, seed=2, pipeline="device")
    expected = _batches(cpu, torch.utils.data.default_collate, [0, 1, 2, 3])
    batch = DeviceBatchTransform(codec, joint_weights=weighted_set.joint_weights)(_batches(on_device, collate_geometry, [0, 1, 2, 3]))
    assert torch.equal(batch["target_weight"], expected["target_weight"])


def _cv2_decoder(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
    """Stands in for nvJPEG on a CPU-only machine: RGB CHW uint8, like torchvision's decode_jpeg."""
    images = [cv2.imdecode(data.numpy(), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) for data in encoded]
    return [torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1) for image in images]


@pytest.mark.parametrize("color_rgb", [True, False])
def test_deferred_decode_gives_the_same_batch(coco_mini: Path, color_rgb: bool) -> None:
    """decode=gpu: workers hand over checked JPEG bytes; decoding them later gives the same training batch."""
    ann_file, img_dir = mini_train(coco_mini)
    codec = create_codec("legacy", INPUT)
    decoded = TopDownCocoDataset(ann_file, img_dir, COCO17, codec, train=True, seed=4, pipeline="device", color_rgb=color_rgb)
    deferred = TopDownCocoDataset(ann_file, img_dir, COCO17, codec, train=True, seed=4, pipeline="device", decode="gpu",
                                  color_rgb=color_rgb)
    indices = [0, 5, 9, 20]
    raw = _batches(deferred, collate_geometry, indices)
    assert "jpeg" in raw and "pixels" not in raw and raw["jpeg_lengths"].tolist() == [
        deferred.records[i].image_file.stat().st_size for i in indices
    ]
    transform = DeviceBatchTransform(codec)
    with pytest.raises(ValueError, match="run decode_jpeg_batch first"):
        transform(raw)
    later = transform(decode_jpeg_batch(raw, _cv2_decoder, color_rgb))
    expected = transform(_batches(decoded, collate_geometry, indices))
    for key in ("image", "target", "target_weight"):
        assert torch.equal(later[key], expected[key]), key


def test_gpu_decoder_needs_cuda() -> None:
    from hrnet_train.data.gpu_decode import nvjpeg_decoder

    with pytest.raises(ValueError, match="data.decode: gpu decodes with nvJPEG on a CUDA device"):
        nvjpeg_decoder(torch.device("cpu"))


def test_fused_adam_is_asked_for_only_when_told() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert build_optimizer("adam", params, 1e-3).defaults["fused"] is None  # CPU: PyTorch's default path
    assert build_optimizer("adamw", params, 1e-3, fused=True).defaults["fused"] is True
    assert not build_optimizer("sgd", params, 1e-3, fused=True).defaults.get("fused")


def test_nvjpeg_decode_matches_the_cpu_decoder(coco_mini: Path, device: torch.device) -> None:
    """--device cuda with torchvision: nvJPEG-decoded batches give the same targets, and images within the
    two JPEG decoders' difference (IDCT and chroma upsampling differ; no exact equality expected)."""
    from hrnet_train.data.gpu_decode import nvjpeg_decoder
    from hrnet_train.pipeline_options import gpu_decode_available

    if device.type != "cuda" or not gpu_decode_available():
        pytest.skip("needs --device cuda and torchvision (nvJPEG)")
    ann_file, img_dir = mini_train(coco_mini)
    codec = create_codec("legacy", INPUT)
    decoded = TopDownCocoDataset(ann_file, img_dir, COCO17, codec, train=True, seed=4, pipeline="device")
    deferred = TopDownCocoDataset(ann_file, img_dir, COCO17, codec, train=True, seed=4, pipeline="device", decode="gpu")
    indices = list(range(0, len(decoded), 2))
    transform = DeviceBatchTransform(codec).to(device)
    on_gpu = transform(to_device(decode_jpeg_batch(_batches(deferred, collate_geometry, indices), nvjpeg_decoder(device)), device))
    expected = transform(to_device(_batches(decoded, collate_geometry, indices), device))
    assert torch.equal(on_gpu["target"], expected["target"]) and torch.equal(on_gpu["target_weight"], expected["target_weight"])
    grey_levels = (on_gpu["image"] - expected["image"]).abs() * (255 * 0.224)
    print(f"\nnvJPEG vs cv2 decode, crops: mean {float(grey_levels.mean()):.3f}, max {float(grey_levels.max()):.1f} grey levels")
    assert float(grey_levels.mean()) < 2.0
