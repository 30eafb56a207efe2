"""Heatmap codecs: legacy bit-exact with the reference formulas, round-trip accuracy, flip alignment."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hrnet_train.codecs import create_codec
from hrnet_train.codecs.legacy import LegacyCodec
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.geometry import get_affine_transform, get_udp_transform
from hrnet_train.paths import config_dir

INPUT = (256, 192)  # heatmap 64x48


def reference_generate_target(joints: np.ndarray, vis: np.ndarray, sigma: float, input_size, heatmap_size):
    """Per-joint loop written from the spec 3.6 formulas (the oracle for bit-exactness)."""
    (in_h, in_w), (h, w) = input_size, heatmap_size
    weight = np.asarray(vis, dtype=np.float32).copy()
    target = np.zeros((len(joints), h, w), dtype=np.float32)
    tmp_size = sigma * 3
    for j, (x, y) in enumerate(joints):
        mu_x, mu_y = int(x / (in_w / w) + 0.5), int(y / (in_h / h) + 0.5)
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        size = 2 * tmp_size + 1
        xs = np.arange(0, size, 1, np.float32)
        ys = xs[:, np.newaxis]
        g = np.exp(-((xs - size // 2) ** 2 + (ys - size // 2) ** 2) / (2 * sigma**2))
        gx, gy = (max(0, -ul[0]), min(br[0], w) - ul[0]), (max(0, -ul[1]), min(br[1], h) - ul[1])
        ix, iy = (max(0, ul[0]), min(br[0], w)), (max(0, ul[1]), min(br[1], h))
        if weight[j] > 0.5:
            target[j, iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
    return target, weight


@pytest.mark.parametrize(("input_size", "sigma"), [((256, 192), 2.0), ((384, 288), 3.0), ((256, 256), 2.0), ((256, 192), 1.5)])
def test_legacy_encode_bit_exact_with_reference(input_size, sigma) -> None:
    codec = create_codec("legacy", input_size, sigma=sigma)
    rng = np.random.default_rng(0)
    for _ in range(50):  # many joints outside the crop, at borders and at negative coordinates
        joints = rng.uniform(-60, max(input_size) + 60, (17, 2))
        vis = (rng.random(17) > 0.2).astype(np.float32)
        target, weight = codec.encode(joints, vis)
        ref_target, ref_weight = reference_generate_target(joints, vis, sigma, input_size, codec.heatmap_size)
        assert target.dtype == np.float32 and target.shape == (17, *codec.heatmap_size)
        assert np.array_equal(target, ref_target) and np.array_equal(weight, ref_weight)


def test_legacy_encode_hand_computed_cases() -> None:
    codec = create_codec("legacy", INPUT)
    g = np.exp(-(np.arange(7, dtype=np.float32) ** 2) / np.float32(8.0)).astype(np.float32)
    joints = np.array([
        [-4.8, 100.0],   # x/4 + .5 = -0.7 -> int() = 0 (toward zero, not floor -1): peak on column 0
        [-28.0, 100.0],  # mu_x = int(-6.5) = -6: only the Gaussian's tail (distance 6) enters column 0
        [-30.0, 100.0],  # mu_x = -7, br_x = 0: weight stays 1 although nothing is pasted
        [-34.0, 100.0],  # mu_x = -8, br_x = -1 < 0: weight 0
        [213.0, 100.0],  # mu_x = 53, ul_x = 47: tail on the last column
        [214.0, 100.0],  # mu_x = 54, ul_x = 48 >= 48: weight 0
        [50.0, 50.0],    # invisible below
    ])
    vis = np.array([1, 1, 1, 1, 1, 1, 0], dtype=np.float32)
    target, weight = codec.encode(joints, vis)
    assert weight.tolist() == [1, 1, 1, 0, 1, 0, 0]
    assert target[0, 25, 0] == 1.0 and target[0, 25, :7].tolist() == g.tolist() and target[0, 25, 7] == 0
    assert target[0, 19:32, 0].tolist() == np.concatenate([g[::-1], g[1:]]).tolist() and target[0, 18, 0] == 0
    assert target[1, 25, 0] == g[6] and np.count_nonzero(target[1]) == 13
    assert not target[2].any() and not target[3].any() and not target[5].any() and not target[6].any()
    assert target[4, 25, 47] == g[6] and np.count_nonzero(target[4]) == 13


def test_legacy_decode_argmax_and_quarter_offset() -> None:
    codec = create_codec("legacy", INPUT)
    maps = np.zeros((1, 5, 64, 48), dtype=np.float32)
    maps[0, 0, 20, 10], maps[0, 0, 20, 11], maps[0, 0, 20, 9] = 1.0, 0.5, 0.2   # x + .25, y unchanged (0 - 0)
    maps[0, 0, 19, 10] = 0.7                                                   # y - .25
    maps[0, 1, 30, 1], maps[0, 1, 30, 2] = 1.0, 0.9                            # px = 1: no offset (reference skips)
    maps[0, 2] = -1.0                                                          # maxval <= 0 -> (0, 0)
    maps[0, 3, 5, 7] = maps[0, 3, 6, 3] = 2.0                                  # tie: first in row-major order
    maps[0, 4, 62, 40], maps[0, 4, 62, 41] = 1.0, 0.5                          # py = h-2: offset applied
    coords, maxvals = codec.decode(maps)
    assert coords.dtype == np.float64 and maxvals.dtype == np.float32
    assert coords[0].tolist() == [[10.25, 19.75], [1.0, 30.0], [0.0, 0.0], [7.0, 5.0], [40.25, 62.0]]
    assert maxvals[0].tolist() == [1.0, 1.0, -1.0, 2.0, 1.0]
    plain, _ = create_codec("legacy", INPUT, post_process=False).decode(maps)
    assert plain[0, 0].tolist() == [10.0, 20.0]


def _round_trip_error(codec, n: int = 200, margin: float = 4.0) -> np.ndarray:
    """Euclidean error (heatmap px) of decode(encode(p)) for seeded sub-pixel points >= margin px from the border."""
    h, w = codec.heatmap_size
    rng = np.random.default_rng(2024)
    hm_points = rng.uniform([margin, margin], [w - 1 - margin, h - 1 - margin], (n, 2))
    to_input = codec.stride if codec.name != "udp" else 1.0 / codec._input_to_heatmap
    target, weight = codec.encode(hm_points * to_input, np.ones(n))
    assert weight.tolist() == [1.0] * n
    coords, _ = codec.decode(target[None])
    return np.linalg.norm(coords[0] - hm_points, axis=1)


def test_round_trip_errors_per_codec() -> None:
    errors = {
        "legacy": _round_trip_error(create_codec("legacy", INPUT)),
        "dark": _round_trip_error(create_codec("dark", INPUT)),
        "udp": _round_trip_error(create_codec("udp", INPUT)),
        "udp-combined": _round_trip_error(create_codec("udp", INPUT, target_type="combined")),
    }
    for name, err in errors.items():
        print(f"round trip {name:13s} mean {err.mean():.6f}  max {err.max():.6f} heatmap px")
    # Legacy: pure quantisation (integer centre, symmetric map -> no quarter offset): mean |d| of a
    # uniform point to its nearest grid point = 0.3826 px.
    assert 0.33 < errors["legacy"].mean() < 0.43 and errors["legacy"].max() <= np.sqrt(0.5) + 1e-9
    assert errors["dark"].mean() < 0.05 and errors["udp"].mean() < 0.05
    assert errors["udp-combined"].max() < 1e-5
    assert errors["legacy"].mean() > 5 * max(errors["dark"].mean(), errors["udp"].mean())


def test_dark_modulation_off_is_exact_even_at_borders() -> None:
    codec = create_codec("dark", INPUT, blur_sigma=0)
    assert _round_trip_error(codec, margin=1.0).max() < 1e-6


def _flip_round_trip(codec, flip_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode joints on a crop and on the horizontally flipped crop (array reversal: x -> W_in-1-x,
    left/right swapped), flip the latter back, decode both. Returns (unflipped, flipped-back) coords."""
    in_w = codec.input_size[1]
    rng = np.random.default_rng(7)
    joints = rng.uniform([24, 24], [in_w - 25, codec.input_size[0] - 25], (len(flip_index), 2))
    vis = np.ones(len(flip_index))
    mirrored = np.stack([in_w - 1 - joints[:, 0], joints[:, 1]], 1)[flip_index]
    target, _ = codec.encode(joints, vis)
    target_flipped, _ = codec.encode(mirrored, vis)
    back = codec.flip_back(target_flipped[None], flip_index)
    return codec.decode(target[None])[0][0], codec.decode(back)[0][0]


def test_flip_alignment_per_codec() -> None:
    flip_index = load_keypoint_set("coco17").flip_index
    # legacy: flipped-back integer peak = w - int((W_in-1-x)/4 + .5); about +0.25 px right on average.
    legacy = create_codec("legacy", INPUT, post_process=False)
    plain, back = _flip_round_trip(legacy, flip_index)
    rng = np.random.default_rng(7)
    joints = rng.uniform([24, 24], [192 - 25, 256 - 25], (17, 2))
    assert back[:, 0].tolist() == (48 - np.trunc((191 - joints[:, 0]) / 4 + 0.5)).tolist()
    assert back[:, 1].tolist() == plain[:, 1].tolist()
    # dark (size convention): without the shift the flipped maps sit 0.75 px left; with it 0.25 px right.
    _, dark_shift = _flip_round_trip(create_codec("dark", INPUT, flip_shift=True), flip_index)
    _, dark_plain = _flip_round_trip(create_codec("dark", INPUT, flip_shift=False), flip_index)
    truth = joints / 4
    print("dark flip bias x: shift", (dark_shift - truth)[:, 0].mean(), " no shift", (dark_plain - truth)[:, 0].mean())
    np.testing.assert_allclose(dark_shift - truth, np.tile([0.25, 0.0], (17, 1)), atol=1e-3)
    np.testing.assert_allclose(dark_plain - truth, np.tile([-0.75, 0.0], (17, 1)), atol=1e-3)
    # udp: unit-length convention, flip is exact without a shift, for both target types.
    for options in ({}, {"target_type": "combined"}):
        codec = create_codec("udp", INPUT, **options)
        plain, back = _flip_round_trip(codec, flip_index)
        np.testing.assert_allclose(back, plain, atol=1e-4)


def test_udp_combined_flip_back_restores_target_and_negates_x_offsets() -> None:
    flip_index = load_keypoint_set("lspet14").flip_index
    codec = create_codec("udp", INPUT, target_type="combined")
    joints = np.random.default_rng(3).uniform(20, 170, (14, 2))
    mirrored = np.stack([191 - joints[:, 0], joints[:, 1]], 1)[flip_index]
    target, weight = codec.encode(joints, np.ones(14))
    assert target.shape == (42, 64, 48) and weight.shape == (14,)
    back = codec.flip_back(codec.encode(mirrored, np.ones(14))[0][None], flip_index)
    np.testing.assert_allclose(back[0], target, atol=1e-6)
    assert set(np.unique(target[0::3]).tolist()) == {0.0, 1.0}


def test_flip_back_shift_keeps_column_zero_and_accepts_torch() -> None:
    codec = create_codec("legacy", INPUT)
    maps = np.random.default_rng(5).random((2, 17, 64, 48)).astype(np.float32)
    flip_index = load_keypoint_set("coco17").flip_index
    back = codec.flip_back(maps, flip_index)
    reversed_swapped = maps[:, flip_index, :, ::-1]
    assert np.array_equal(back[..., 1:], reversed_swapped[..., :-1])
    assert np.array_equal(back[..., 0], reversed_swapped[..., 0])
    back_torch = codec.flip_back(torch.from_numpy(maps), flip_index)
    assert isinstance(back_torch, torch.Tensor) and np.array_equal(back_torch.numpy(), back)
    assert np.array_equal(maps, np.random.default_rng(5).random((2, 17, 64, 48)).astype(np.float32))  # input untouched


@pytest.mark.parametrize("name", ["legacy", "dark", "udp"])
def test_crop_heatmap_image_round_trip(name: str) -> None:
    """Image point -> crop_transform -> heatmap coords (codec's ratio) -> to_image recovers the point."""
    codec = create_codec(name, INPUT)
    centers = np.array([[320.0, 240.0], [100.5, 80.25]])
    scales = np.array([[0.9, 1.2], [0.45, 0.6]])
    points = np.random.default_rng(11).uniform(50, 300, (2, 5, 2))
    hm = []
    for c, s, p in zip(centers, scales, points):
        crop = codec.crop_transform(c, s)
        inp = p @ crop[:, :2].T + crop[:, 2]
        hm.append(inp / codec.stride if name != "udp" else inp * codec._input_to_heatmap)
    np.testing.assert_allclose(codec.to_image(np.array(hm), centers, scales), points, atol=1e-3)
    expected = get_udp_transform if name == "udp" else get_affine_transform
    np.testing.assert_allclose(codec.crop_transform(centers[0], scales[0], 10.0, inv=True),
                               expected(centers[0], scales[0], 10.0, INPUT, inv=True), atol=1e-9)


def test_factory_configs_and_errors() -> None:
    for name in ("legacy", "dark", "udp"):
        options = yaml.safe_load((Path(config_dir()) / "codec" / f"{name}.yaml").read_text())
        codec = create_codec(input_size=INPUT, **options)
        assert codec.name == name and codec.heatmap_size == (64, 48) and codec.sigma == 2.0
    assert create_codec("legacy", INPUT).flip_shift and not create_codec("udp", INPUT).flip_shift
    with pytest.raises(ValueError, match="unknown codec 'msra'"):
        create_codec("msra", INPUT)
    with pytest.raises(ValueError, match="bad options.*sigmaa"):
        create_codec("legacy", INPUT, sigmaa=3)
    with pytest.raises(ValueError, match="target_type"):
        create_codec("udp", INPUT, target_type="offsets")
    with pytest.raises(ValueError, match="divisible by stride 4"):
        create_codec("dark", (250, 192))


def test_legacy_encode_at_least_twice_as_fast_as_reference_loop() -> None:
    codec = LegacyCodec(INPUT)
    rng = np.random.default_rng(9)
    samples = [(rng.uniform(-20, 210, (17, 2)), (rng.random(17) > 0.3).astype(np.float32)) for _ in range(50)]

    def best_of(fn) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for joints, vis in samples:
                fn(joints, vis)
            times.append(time.perf_counter() - start)
        return min(times)

    ours = best_of(codec.encode)
    ref = best_of(lambda j, v: reference_generate_target(j, v, 2.0, INPUT, (64, 48)))
    print(f"encode per sample: ours {ours / 50 * 1e6:.0f} us, reference loop {ref / 50 * 1e6:.0f} us ({ref / ours:.1f}x)")
    assert ref / ours >= 2.0
