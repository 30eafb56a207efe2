"""Crop geometry: hand-computed reference values and the flip behaviour of both pixel conventions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hrnet_train.geometry import (
    affine_points,
    box_to_center_scale,
    get_affine_transform,
    get_udp_transform,
    invert_affine,
    transform_preds,
    transform_preds_udp,
)


def test_box_to_center_scale_hand_values() -> None:
    center, scale = box_to_center_scale([10, 20, 60, 40], aspect_ratio=0.75)  # wide: h -> 60 / 0.75 = 80
    assert center.tolist() == [40.0, 40.0] and scale.tolist() == [0.375, 0.5]
    center, scale = box_to_center_scale([0, 0, 30, 100], aspect_ratio=0.75)  # tall: w -> 75
    assert center.tolist() == [15.0, 50.0] and scale.tolist() == [0.46875, 0.625]
    assert center.dtype == np.float64


def test_box_to_center_scale_float32_like_reference_and_vectorised() -> None:
    box = [0.1, 0.2, 33.3, 77.7]
    center, scale = box_to_center_scale(box, aspect_ratio=192 / 256)
    # Reference: float32 centre, float32 (w / 200, h / 200), then * 1.25 in float32.
    assert center.tolist() == [float(np.float32(0.1 + 33.3 * 0.5)), float(np.float32(0.2 + 77.7 * 0.5))]
    expected = np.array([77.7 * (192 / 256) / 200, 77.7 / 200], dtype=np.float32) * np.float32(1.25)
    assert scale.tolist() == expected.astype(np.float64).tolist()
    boxes = np.array([[10, 20, 60, 40], [0, 0, 30, 100], box])
    centers, scales = box_to_center_scale(boxes, aspect_ratio=192 / 256)
    assert centers.shape == (3, 2) and scales[2].tolist() == scale.tolist() and centers[2].tolist() == center.tolist()
    with pytest.raises(ValueError, match="xywh"):
        box_to_center_scale([1, 2, 3], 0.75)


def test_affine_transform_rot0_closed_form() -> None:
    center, scale = np.array([100.0, 150.0]), np.array([0.75, 1.0])
    trans = get_affine_transform(center, scale, 0.0, (256, 192))
    k = 192 / (200 * 0.75)  # W_out / (200 s_w), same factor for y
    np.testing.assert_allclose(trans, [[k, 0, 96 - k * 100], [0, k, 128 - k * 150]], atol=1e-9)
    np.testing.assert_allclose(affine_points(center, trans), [96.0, 128.0], atol=1e-9)
    inv = get_affine_transform(center, scale, 0.0, (256, 192), inv=True)
    pts = np.array([[3.5, -7.0], [250.0, 40.25]])
    np.testing.assert_allclose(affine_points(affine_points(pts, trans), inv), pts, atol=1e-9)
    shifted = get_affine_transform(center, scale, 0.0, (256, 192), shift=(0.1, 0.0))
    np.testing.assert_allclose(affine_points(center + [15.0, 0.0], shifted), [96.0, 128.0], atol=1e-9)  # 0.1*200*0.75


def test_affine_transform_rotation_construction() -> None:
    center, scale = np.array([50.0, 60.0]), np.array([0.5, 0.5])
    trans = get_affine_transform(center, scale, 90.0, (64, 48))
    # The rotated "up" vector R(90)(0, -src_w/2) = (+50, 0) lands on (W/2, H/2 - W/2).
    np.testing.assert_allclose(affine_points(center + [50.0, 0.0], trans), [24.0, 32.0 - 24.0], atol=1e-5)
    np.testing.assert_allclose(affine_points(center, trans), [24.0, 32.0], atol=1e-5)


def test_affine_points_and_transform_preds() -> None:
    trans = np.array([[0.9, -0.2, 5.0], [0.3, 1.1, -2.0]])
    pts = np.random.default_rng(0).uniform(-50, 50, (10, 2))
    np.testing.assert_allclose(affine_points(pts, trans), cv2.transform(pts[None], trans)[0], atol=1e-12)
    center, scale = np.array([120.0, 80.0]), np.array([0.6, 0.8])
    coords = np.array([[0.0, 0.0], [24.0, 32.0], [47.25, 10.5]])
    expected_x = center[0] + (coords[:, 0] - 48 / 2) * 200 * scale[0] / 48  # spec 3.5
    expected_y = center[1] + (coords[:, 1] - 64 / 2) * 200 * scale[0] / 48
    np.testing.assert_allclose(transform_preds(coords, center, scale, (64, 48)), np.stack([expected_x, expected_y], 1), atol=1e-4)


def test_udp_unit_length_mapping() -> None:
    center, scale = np.array([100.0, 150.0]), np.array([0.75, 1.0])
    trans = get_udp_transform(center, scale, 0.0, (256, 192))
    corners = np.array([[100 - 75, 150 - 100], [100 + 75, 150 + 100], [100, 150]])
    np.testing.assert_allclose(affine_points(corners, trans), [[0, 0], [191, 255], [95.5, 127.5]], atol=1e-9)
    np.testing.assert_allclose(invert_affine(trans), get_udp_transform(center, scale, 0.0, (256, 192), inv=True))
    hm = transform_preds_udp(np.array([[0.0, 0.0], [47.0, 63.0]]), center, scale, (64, 48))
    np.testing.assert_allclose(hm, [[25, 50], [175, 250]], atol=1e-9)


@pytest.mark.parametrize("rot", [0.0, 25.0])
def test_flip_commutes_with_udp_but_not_with_size_convention(rot: float) -> None:
    """Image flip x -> W_img-1-x (centre too, rotation negated): UDP crops are exact mirrors
    (x -> W-1-x); reference crops land at x -> W-x, the source of the flip misalignment (spec 9.1)."""
    img_w = 640
    center, scale = np.array([300.0, 200.0]), np.array([0.9, 1.2])
    pts = np.random.default_rng(1).uniform(0, 400, (20, 2))
    flipped_pts = np.stack([img_w - 1 - pts[:, 0], pts[:, 1]], 1)
    flipped_center = np.array([img_w - 1 - center[0], center[1]])
    udp = affine_points(pts, get_udp_transform(center, scale, rot, (256, 192)))
    udp_f = affine_points(flipped_pts, get_udp_transform(flipped_center, scale, -rot, (256, 192)))
    np.testing.assert_allclose(udp_f[:, 0], 191 - udp[:, 0], atol=1e-9)
    np.testing.assert_allclose(udp_f[:, 1], udp[:, 1], atol=1e-9)
    ref = affine_points(pts, get_affine_transform(center, scale, rot, (256, 192)))
    ref_f = affine_points(flipped_pts, get_affine_transform(flipped_center, scale, -rot, (256, 192)))
    np.testing.assert_allclose(ref_f[:, 0], 192 - ref[:, 0], atol=1e-3)


def test_udp_rotation_sense_matches_reference() -> None:
    center, scale = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    ref = get_affine_transform(center, scale, 30.0, (200, 200))[:, :2]
    udp = get_udp_transform(center, scale, 30.0, (201, 201))[:, :2]  # same scale: (201 - 1) / 200 = 200 / 200
    np.testing.assert_allclose(udp, ref, atol=1e-6)
