"""Face codec: official transforms, target placement and patch quirks, decoding, round trip, torch decoders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hrnet_train.codecs import create_codec
from hrnet_train.codecs.face import official_face_transform, official_image_transform
from hrnet_train.geometry import affine_points, get_affine_transform
from hrnet_train.paths import config_dir

SIZE = (256, 256)  # heatmaps 64x64


def spec_target(joints: np.ndarray, has_target: np.ndarray, sigma: float, size: int = 64) -> np.ndarray:
    """Per-landmark loop written from the spec A.11 formulas (the oracle), joints in 64-grid T-coordinates."""
    target = np.zeros((len(joints), size, size), dtype=np.float32)
    tmp = sigma * 3
    for k, (x, y) in enumerate(joints):
        if not has_target[k]:
            continue
        u, v = int(x), int(y)  # trunc(T(x, y))
        ul, br = (int(u - tmp), int(v - tmp)), (int(u + tmp + 1), int(v + tmp + 1))
        if ul[0] >= size or ul[1] >= size or br[0] < 0 or br[1] < 0:
            continue
        n = 2 * tmp + 1
        a = np.arange(0, n, 1, np.float32)
        b = a[:, None]
        g = np.exp(-((a - n // 2) ** 2 + (b - n // 2) ** 2) / (2 * sigma**2))
        gx, gy = (max(0, -ul[0]), min(br[0], size) - ul[0]), (max(0, -ul[1]), min(br[1], size) - ul[1])
        ix, iy = (max(0, ul[0]), min(br[0], size)), (max(0, ul[1]), min(br[1], size))
        target[k, iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
    return target


def test_landmark_transform_is_the_spec_formula() -> None:
    # h = 200: u = 64/200 (x - 100) + 32, v = 64/200 (y - 80) + 32.
    matrix = official_face_transform(np.array([100.0, 80.0]), 1.0, 64)
    assert np.allclose(affine_points(np.array([[150.0, 80.0], [100.0, 30.0]]), matrix), [[48.0, 32.0], [32.0, 16.0]])
    # A positive angle turns the content counter-clockwise (image y down): a point right of the centre moves up.
    rotated = official_face_transform(np.array([100.0, 80.0]), 1.0, 64, rot=90.0)
    assert np.allclose(affine_points(np.array([150.0, 80.0]), rotated), [32.0, 16.0])
    # Same geometry as the pose "size" convention for a square crop (up to its float32 points).
    for rot in (0.0, 12.5, -30.0):
        ours = official_face_transform(np.array([321.5, 210.25]), np.array([1.7, 1.7]), 256, rot)
        pose = get_affine_transform(np.array([321.5, 210.25]), np.array([1.7, 1.7]), rot, SIZE)
        assert np.abs(ours - pose).max() < 1e-4


def test_image_transform_follows_the_official_crop_steps() -> None:
    # h = 256 = R: window ul = trunc(c - 129) + 1 = c - 128, extent 256: a pure shift.
    no_rot = official_image_transform(np.array([200.0, 150.0]), 1.28, 256, 0.0, (400, 500))
    assert np.allclose(no_rot, [[1, 0, -72], [0, 1, -22]])
    # h = 512 (sf = 2): the image is first shrunk to 200x250 and c, scale halved; a shrunk pixel i shows
    # original (i + 0.5) * 2 - 0.5, so crop pixel o <- original 2 (o + ul') + 0.5 with ul' = 100 - 128 = -28.
    shrunk = official_image_transform(np.array([200.0, 150.0]), 2.56, 256, 0.0, (400, 500))
    assert np.allclose(affine_points(np.array([2 * (0 - 28) + 0.5, 2 * (10 - 53) + 0.5]), shrunk), [0.0, 10.0])
    # h = 300: ul = trunc(-300/256 + 200 - 150) + 1 = 49, br = trunc(255 * 300 / 256 + 50) + 1 = 349.
    scaled = official_image_transform(np.array([200.0, 200.0]), 1.5, 256, 0.0, (400, 500))
    assert np.allclose(affine_points(np.array([49 + 0.5 * 300 / 256 - 0.5, 49.0 + 255.5 * 300 / 256 - 0.5]), scaled),
                       [0.0, 255.0])
    # With rotation: same linear part as the landmark transform; the window centre maps to the crop centre.
    rotated = official_image_transform(np.array([200.0, 150.0]), 1.28, 256, 20.0, (400, 500))
    assert np.allclose(rotated[:, :2], official_face_transform(np.array([200.0, 150.0]), 1.28, 256, 20.0)[:, :2])
    assert np.allclose(affine_points(np.array([72 + 127.5, 22 + 127.5]), rotated), [127.5, 127.5])


@pytest.mark.parametrize("sigma", [1.5, 1.0, 2.0])
def test_encode_bit_exact_with_spec_loop(sigma: float) -> None:
    codec = create_codec("face", SIZE, sigma=sigma)
    rng = np.random.default_rng(0)
    for _ in range(40):
        crop = rng.uniform(-60, 316, (68, 2))
        has_target = rng.random(68) > 0.2
        target, weight = codec.encode(crop, has_target)
        assert target.dtype == np.float32 and target.shape == (68, 64, 64)
        assert np.array_equal(target, spec_target(crop / 4, has_target, sigma))
        assert weight.tolist() == [1.0] * 68  # no target weights (D.11): missing points train towards zero maps


def test_encode_official_quirks_by_hand() -> None:
    codec = create_codec("face", SIZE, sigma=1.5)
    g = np.exp(-np.arange(6, dtype=np.float32) ** 2 / np.float32(4.5))
    joints = np.array([
        [43.9, 40.0],   # u = trunc(10.97) = 10 (truncation, not rounding): 10x10 patch over columns 5..14
        [9.0, 100.0],   # u = 2: ul = int(-2.5) = -2, so the peak lands one cell right, on column 3
        [-3.0, 100.0],  # u = trunc(-0.75) = 0: ul = int(-4.5) = -4, peak on column 1
        [-24.0, 100.0], # u = -6: ul = int(-10.5) = -10, br = int(-0.5) = 0: nothing pasted, weight stays 1
        [100.0, 100.0], # missing (has no target): all-zero map
    ])
    target, weight = codec.encode(joints, np.array([1, 1, 1, 1, 0]))
    assert weight.tolist() == [1.0] * 5
    assert target[0, 10, 10] == 1.0 and target[0, 10, 5] == g[5] and target[0, 10, 14] == g[4]
    assert target[0, 10, 15] == 0.0 and target[0, 10, 4] == 0.0 and target[0, 5, 10] == g[5] and target[0, 15, 10] == 0
    assert np.count_nonzero(target[0]) == 100
    assert target[1, 25, 3] == 1.0 and target[1, 25, 2] == g[1] and target[1, 25, 0] == g[3] and target[1, 25, 6] == g[3]
    assert target[1, 25, 7] == 0.0 and np.count_nonzero(target[1, 25]) == 7  # patch columns 2..8
    assert target[2, 25, 1] == 1.0 and target[2, 25, 0] == g[1] and np.count_nonzero(target[2, 25]) == 5  # br = int(5.5)
    assert not target[3].any() and not target[4].any()
    # sigma 1.0 (300W): 7x7 patch, symmetric and exact even at the border.
    exact = create_codec("face", SIZE, sigma=1.0).encode(np.array([[9.0, 100.0]]), np.ones(1))[0]
    assert exact[0, 25, 2] == 1.0 and exact[0, 25, 1] == exact[0, 25, 3] and np.count_nonzero(exact[0]) == 6 * 7


def test_decode_official_rules_by_hand() -> None:
    codec = create_codec("face", SIZE)
    maps = np.zeros((1, 5, 64, 64), dtype=np.float32)
    maps[0, 0, 20, 10], maps[0, 0, 20, 11], maps[0, 0, 19, 10] = 1.0, 0.5, 0.3  # +0.25 in x, -0.25 in y
    maps[0, 1, 30, 1], maps[0, 1, 30, 2] = 1.0, 0.9   # column 1: offset applied (the pose code skips it)
    maps[0, 2, 30, 0], maps[0, 2, 30, 1] = 1.0, 0.9   # column 0: no offset
    maps[0, 3] = -1.0                                 # no positive peak: -0.5
    maps[0, 4, 62, 40], maps[0, 4, 63, 40] = 1.0, 0.5  # row 62 = size-2: offset applied
    coords, maxvals = codec.decode(maps)
    assert coords[0].tolist() == [[10.75, 20.25], [1.75, 30.5], [0.5, 30.5], [-0.5, -0.5], [40.5, 62.75]]
    assert maxvals[0].tolist() == [1.0, 1.0, 1.0, -1.0, 1.0]
    # Integer back-projection: trunc(T^-1(u)) + 1 with T^-1(u) = 3.125 (u - 32) + c for h = 200.
    image = codec.to_image(coords[:, :1], np.array([[100.0, 80.0]]), np.array([[1.0, 1.0]]))
    assert image[0, 0].tolist() == [math.trunc(3.125 * (10.75 - 32) + 100) + 1, math.trunc(3.125 * (20.25 - 32) + 80) + 1]
    assert image[0, 0].tolist() == [34.0, 44.0]


def _round_trip(codec, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap-space error (cells) of decode(encode(p)) and image-space error (px) through to_image."""
    rng = np.random.default_rng(2024)
    center, scale = np.array([400.0, 300.0]), np.array([1.6, 1.6])  # h = 320 px: 5 image px per cell
    points = rng.uniform(center - 120, center + 120, (n, 2))
    crop = affine_points(points, codec.crop_transform(center, scale))
    target, _ = codec.encode(crop, np.ones(n))
    coords, _ = codec.decode(target[None])
    heatmap_error = np.linalg.norm(coords[0] - crop / codec.stride, axis=1)
    image = codec.to_image(coords, center[None], scale[None])[0]
    return heatmap_error, image - points


def test_round_trip_errors_and_official_bias() -> None:
    official = _round_trip(create_codec("face", SIZE, sigma=1.5))
    exact_sigma = _round_trip(create_codec("face", SIZE, sigma=1.0))
    dark_on_official = _round_trip(create_codec("face", SIZE, decode="dark"))
    dark = _round_trip(create_codec("face", SIZE, target="subpixel", decode="dark"))
    for name, (cells, pixels) in {"official s1.5": official, "official s1.0": exact_sigma,
                                  "official target + dark": dark_on_official, "subpixel + dark": dark}.items():
        print(f"face round trip {name:22s} mean {cells.mean():.4f} cells, image mean |d| "
              f"{np.linalg.norm(pixels, axis=1).mean():.3f} px, bias {pixels.mean(axis=0).round(3).tolist()}")
    # Truncated target + 0.5: a uniform point's distance to its cell centre, mean 0.3826 cells (max sqrt(.5)).
    for cells, _ in (official, exact_sigma, dark_on_official):
        assert 0.33 < cells.mean() < 0.43 and cells.max() <= np.sqrt(0.5) + 1e-9
    # The integer back-projection adds +0.5 px on average (D.10); the continuous decodes are unbiased.
    assert np.allclose(official[1].mean(axis=0), 0.5, atol=0.25)
    assert np.abs(dark_on_official[1].mean(axis=0)).max() < 0.25
    assert dark[0].mean() < 0.05 and np.abs(dark[1]).max() < 0.5


def test_torch_decoders_match_numpy(one_torch_thread) -> None:
    rng = np.random.default_rng(3)
    crop = rng.uniform(0, 255, (2, 68, 2))
    for options in ({}, {"decode": "dark"}, {"decode": "dark", "target": "subpixel"}):
        codec = create_codec("face", SIZE, **options)
        maps = np.stack([codec.encode(c, np.ones(68))[0] for c in crop]) + rng.normal(0, 0.01, (2, 68, 64, 64))
        maps[0, 5] = -1.0
        maps = maps.astype(np.float32)
        coords, scores = codec.decode(maps)
        torch_coords, torch_scores = codec.torch_decoder()(torch.from_numpy(maps))
        assert np.allclose(torch_coords.numpy(), coords * 4, atol=1e-3) and np.allclose(torch_scores.numpy(), scores)


def test_options_factory_and_config() -> None:
    options = yaml.safe_load((Path(config_dir()) / "codec" / "face.yaml").read_text())
    codec = create_codec(input_size=SIZE, **options)
    assert (codec.name, codec.sigma, codec.heatmap_size, codec.pixel_convention) == ("face", 1.5, (64, 64), "size")
    assert create_codec("face", SIZE).sigma == 1.5 and create_codec("legacy", (256, 192)).sigma == 2.0
    assert codec.image_flip_offset == 0.0 and create_codec("face", SIZE, flip="exact").image_flip_offset == 1.0
    assert create_codec("legacy", (256, 192)).image_flip_offset == 1.0
    with pytest.raises(ValueError, match="square"):
        create_codec("face", (256, 192))
    with pytest.raises(ValueError, match="decode must be one of"):
        create_codec("face", SIZE, decode="udp")
    with pytest.raises(ValueError, match="needs the image size"):
        codec.image_transform(np.zeros(2), np.ones(2))
