"""SimCC coordinate classification: codec round trip and its mean error, labels, scores, flip alignment,
the head's shapes and options, the KL loss (hand-computed), ONNX parity, and training steps that lower the loss."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hrnet_train.codecs import create_codec
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.export import OUTPUT_NAMES, export_onnx
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.models import create_model
from hrnet_train.training.losses import JointsMSELoss, SimCCKLLoss, build_loss
from hrnet_train.config_schema import LossConfig

INPUT = (192, 160)  # the LSPET recipe's size: 320 x bins, 384 y bins at split ratio 2
LSPET = load_keypoint_set("lspet14")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bin_points(codec, n: int, margin: float, seed: int = 2024) -> np.ndarray:
    """Seeded sub-bin positions (x, y) at least ``margin`` bins from either end of each axis."""
    rng = np.random.default_rng(seed)
    return rng.uniform([margin, margin], [codec.x_bins - 1 - margin, codec.y_bins - 1 - margin], (n, 2))


def _round_trip_error(codec, margin: float) -> np.ndarray:
    """Euclidean error (bins) of decode(target_as_output(encode(p))) for 300 seeded points."""
    points = _bin_points(codec, 300, margin)
    target, weight = codec.encode(points * codec.heatmap_to_input(), np.ones(len(points)))
    assert weight.tolist() == [1.0] * len(points)
    coords, _ = codec.decode(codec.target_as_output(target)[None])
    return np.linalg.norm(coords[0] - points, axis=1)


def test_round_trip_error_argmax_and_soft_argmax() -> None:
    argmax = _round_trip_error(create_codec("simcc", INPUT, sigma=5.0), margin=2.0)
    soft = _round_trip_error(create_codec("simcc", INPUT, sigma=5.0, decoding="soft_argmax"), margin=25.0)
    print(f"simcc round trip: argmax mean {argmax.mean():.4f} max {argmax.max():.4f} bins "
          f"({argmax.mean() / 2:.4f} input px); soft-argmax mean {soft.mean():.2e} bins")
    # Argmax = the nearest bin: mean distance of a uniform point to the nearest grid point is 0.3826.
    assert 0.34 < argmax.mean() < 0.42 and argmax.max() <= math.sqrt(0.5) + 1e-9
    # The expectation of a sampled Gaussian 5 sigma from the ends is its centre (up to the float32 labels).
    assert soft.max() < 1e-5


def test_labels_weights_and_scores() -> None:
    codec = create_codec("simcc", INPUT, sigma=4.0)
    assert (codec.x_bins, codec.y_bins, codec.heatmap_size, codec.output_shape(14)) == (320, 384, (384, 320), (14, 704))
    joints = np.array([[80.0, 96.0], [-1.0, 50.0], [100.0, 191.0], [100.0, 191.5], [20.0, 20.0]])
    target, weight = codec.encode(joints, np.array([1, 1, 1, 1, 0]))
    assert target.dtype == np.float32 and target.shape == (5, 704)
    assert weight.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]  # inside = [0, H - 1] (unit length): y 191 in, 191.5 out
    np.testing.assert_allclose(target[[0, 2], :320].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(target[[0, 2], 320:].sum(axis=1), 1.0, rtol=1e-6)
    assert not target[[1, 3, 4]].any()
    # Bin of input pixel x: x (x_bins - 1) / (W - 1); the label's peak sits at the nearest bin.
    assert target[0, :320].argmax() == round(80 * 319 / 159) and target[0, 320:].argmax() == round(96 * 383 / 191)
    _, scores = codec.decode(codec.target_as_output(target[:1])[None])
    assert scores[0, 0] == pytest.approx(1.0, abs=0.01)  # the label's own peak is the unit of the score
    _, flat = codec.decode(np.zeros((1, 1, 704)))
    assert flat[0, 0] == pytest.approx(4.0 * math.sqrt(2 * math.pi) / 384, rel=1e-6)  # min of 1/320 and 1/384


def test_factory_config_and_errors() -> None:
    import yaml

    from hrnet_train.paths import config_dir

    options = yaml.safe_load((config_dir() / "codec" / "simcc.yaml").read_text())
    codec = create_codec(input_size=(256, 192), **options)
    assert (codec.name, codec.split_ratio, codec.sigma, codec.pixel_convention, codec.loss_name) == ("simcc", 2.0, 5.0, "unit", "simcc_kl")
    with pytest.raises(ValueError, match="decoding must be one of"):
        create_codec("simcc", INPUT, decoding="mean")
    with pytest.raises(ValueError, match="split_ratio must be > 0"):
        create_codec("simcc", INPUT, split_ratio=0)
    with pytest.raises(ValueError, match=r"expected \(N, J, 704\) logits"):
        create_codec("simcc", INPUT).decode(np.zeros((1, 14, 48, 40)))


@pytest.mark.parametrize("decoding", ["argmax", "soft_argmax"])
def test_flip_back_aligns_exactly(decoding: str) -> None:
    """Labels of a crop and of its mirror (x -> W - 1 - x, left/right swapped), the latter flipped back:
    both decode to the same point (unit-length convention: no shift needed)."""
    codec = create_codec("simcc", INPUT, sigma=4.0, decoding=decoding)
    flip_index = LSPET.flip_index
    joints = np.random.default_rng(7).uniform([20, 20], [139, 171], (14, 2))
    mirrored = np.stack([INPUT[1] - 1 - joints[:, 0], joints[:, 1]], 1)[flip_index]
    plain = codec.target_as_output(codec.encode(joints, np.ones(14))[0])[None]
    flipped = codec.target_as_output(codec.encode(mirrored, np.ones(14))[0])[None]
    back = codec.flip_back(flipped, flip_index)
    np.testing.assert_allclose(back, plain, atol=1e-9)
    assert np.array_equal(codec.decode(back)[0], codec.decode(plain)[0])
    back_torch = codec.flip_back(torch.from_numpy(flipped), flip_index)
    assert isinstance(back_torch, torch.Tensor) and np.array_equal(back_torch.numpy(), back)
    shifted = create_codec("simcc", INPUT, sigma=4.0, flip_shift=True).flip_back(flipped, flip_index)
    expected = codec.decode(plain)[0] + [1.0, 0.0] if decoding == "argmax" else None
    if expected is not None:  # the shift moves the x logits one bin right, y untouched
        assert np.array_equal(create_codec("simcc", INPUT, sigma=4.0).decode(shifted)[0], expected)


def test_to_image_inverts_the_crop() -> None:
    """Image point -> crop (unit convention) -> bins -> to_image recovers the point."""
    codec = create_codec("simcc", INPUT)
    centers, scales = np.array([[320.0, 240.0], [100.5, 80.25]]), np.array([[0.9, 1.08], [0.45, 0.54]])
    points = np.random.default_rng(11).uniform(50, 300, (2, 5, 2))
    bins = []
    for center, scale, p in zip(centers, scales, points):
        crop = codec.crop_transform(center, scale)
        bins.append((p @ crop[:, :2].T + crop[:, 2]) / np.array(codec.heatmap_to_input()))
    np.testing.assert_allclose(codec.to_image(np.array(bins), centers, scales), points, atol=1e-9)


def test_head_shapes_parameters_and_options() -> None:
    model = create_model("hrnet_tiny", num_joints=14, head="simcc", head_options={"input_size": "128x96", "split_ratio": 2.0})
    head = model.final_layer
    # 1x1 conv 8 -> 14 (+ bias), then 32 x 24 = 768 features -> 192 x logits and 256 y logits.
    assert sum(p.numel() for p in head.parameters()) == 8 * 14 + 14 + 768 * 192 + 192 + 768 * 256 + 256
    assert model.eval()(torch.zeros(2, 3, 128, 96)).shape == (2, 14, 448) == (2, *create_codec("simcc", (128, 96)).output_shape(14))
    assert model.stage4[-1].multi_scale_output is False  # reads branch 0 only, like v1
    with pytest.raises(ValueError, match="head_options.input_size: head 'simcc' sizes its linear layers"):
        create_model("hrnet_tiny", head="simcc")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['split'\] for head 'simcc'"):
        create_model("hrnet_tiny", head="simcc", head_options={"input_size": "128x96", "split": 2})
    with pytest.raises(ValueError, match="built for 128x96 inputs"):
        model(torch.zeros(1, 3, 160, 128))


def test_kl_loss_hand_computed() -> None:
    """Two joints, 2 x bins + 2 y bins. Joint 0: x logits (0, 0) vs label (1, 0): KL = log 2; y logits
    (log 3, 0) -> p (3/4, 1/4) vs label (1/2, 1/2): KL = 1/2 log(2/3) + 1/2 log 2 = 1/2 log(4/3).
    Joint 1 has weight 0. Loss = mean over the 2 joints of w (KL_x + KL_y) / 2."""
    loss = SimCCKLLoss(x_bins=2)
    logits = torch.tensor([[[0.0, 0.0, math.log(3.0), 0.0], [5.0, -5.0, 1.0, 2.0]]])
    labels = torch.tensor([[[1.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]])
    value = loss(logits, labels, torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx((math.log(2.0) + 0.5 * math.log(4.0 / 3.0)) / 2 / 2, rel=1e-6)
    assert loss(torch.log(labels.clamp_min(1e-30)), labels, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-6)
    weighted = SimCCKLLoss(x_bins=2, joint_weights=[2.0, 1.0])(logits, labels, torch.tensor([[1.0, 0.0]]))
    assert weighted.item() == pytest.approx(2 * value.item(), rel=1e-6)
    assert loss(logits.to(torch.bfloat16), labels, torch.ones(1, 2)).dtype == torch.float32  # computed in fp32 under bf16


def test_each_codec_names_its_loss() -> None:
    assert isinstance(build_loss(create_codec("dark", INPUT), LossConfig(ohkm_topk=4), LSPET), JointsMSELoss)
    simcc = build_loss(create_codec("simcc", INPUT), LossConfig(), LSPET)
    assert isinstance(simcc, SimCCKLLoss) and simcc.x_bins == 320
    with pytest.raises(ValueError, match="loss.ohkm_topk: hard keypoint mining is a heatmap-loss option"):
        build_loss(create_codec("simcc", INPUT), LossConfig(ohkm_topk=4), LSPET)


def _tiny_simcc(seed: int = 0, init: str = "pytorch") -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("hrnet_tiny", num_joints=14, head="simcc", head_options={"input_size": "128x96"}, init=init)


def test_flip_test_averages_model_and_flipped_back_mirror() -> None:
    codec = create_codec("simcc", (128, 96), sigma=4.0)
    model = _tiny_simcc().eval()
    images = torch.randn(3, 3, 128, 96)
    averaged = flip_test(model, images, codec, LSPET.flip_index)
    with torch.no_grad():
        expected = (model(images) + codec.flip_back(model(images.flip(-1)), LSPET.flip_index)) / 2
    assert averaged.shape == (3, 14, 448)
    torch.testing.assert_close(averaged, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decoding", ["argmax", "soft_argmax"])
def test_onnx_export_decodes_like_the_codec(decoding: str, tmp_path) -> None:
    codec = create_codec("simcc", (128, 96), sigma=4.0, decoding=decoding)
    model = _tiny_simcc().eval()
    path = export_onnx(model, codec, tmp_path / "simcc.onnx")
    images = np.random.default_rng(1).normal(size=(4, 3, 128, 96)).astype(np.float32)
    outputs = dict(zip(OUTPUT_NAMES, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})))
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        keypoints, scores = codec.torch_decoder()(logits)
    assert outputs["heatmaps"].shape == (4, 14, 448) and outputs["keypoints"].shape == (4, 14, 2)
    assert np.abs(outputs["heatmaps"] - logits.numpy()).max() <= 1e-4
    expected, expected_scores = codec.decode(outputs["heatmaps"])
    np.testing.assert_allclose(outputs["keypoints"], expected * codec.heatmap_to_input(), atol=1e-3)
    np.testing.assert_allclose(outputs["scores"], expected_scores, rtol=1e-4)
    np.testing.assert_allclose(outputs["keypoints"], keypoints.numpy(), atol=1e-3)
    np.testing.assert_allclose(outputs["scores"], scores.numpy(), rtol=1e-4)


def test_a_few_training_steps_lower_the_loss() -> None:
    """30 Adam steps on one batch of random crops with labelled joints: the KL loss falls below half."""
    codec = create_codec("simcc", (128, 96), sigma=4.0)
    model = _tiny_simcc(seed=1, init="official").train()  # official: N(0, 0.001) convs -> near-uniform logits
    loss_fn = build_loss(codec, LossConfig(), LSPET)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(4, 3, 128, 96)).astype(np.float32))
    encoded = [codec.encode(rng.uniform([8, 8], [88, 120], (14, 2)), np.ones(14)) for _ in range(4)]
    target = torch.from_numpy(np.stack([t for t, _ in encoded]))
    weight = torch.from_numpy(np.stack([w for _, w in encoded]))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_fn(model(images), target, weight)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"simcc KL loss: step 1 {losses[0]:.3f}, step 30 {losses[-1]:.3f}")
    # Uniform logits: KL = log(bins) - entropy of a sigma-4 Gaussian, 0.5 log(2 pi e 16), averaged over x and y.
    assert losses[0] == pytest.approx(math.log(192) / 2 + math.log(256) / 2 - 0.5 * (1 + math.log(2 * math.pi * 16)), abs=0.05)
    assert losses[-1] < 0.5 * losses[0]
