"""One-Euro smoothing: jitter reduction vs lag on synthetic noise and on MoveNet's reference trajectory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrnet_train.inference.smoothing import (
    OneEuroFilter,
    PoseSmoother,
    lag_frames,
    mean_error,
    motion_noise,
    smooth_trajectory,
)

FPS = 30.0


def _synthetic(frames: int = 150, joints: int = 17, noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A slow swaying motion (0.2 Hz, 30 x 15 px) per joint plus Gaussian detector noise (px)."""
    t = np.arange(frames)[:, None] / FPS
    phase = np.linspace(0.0, np.pi, joints)[None]
    clean = np.stack([200 + 30 * np.sin(2 * np.pi * 0.2 * t + phase), 300 + 15 * np.cos(2 * np.pi * 0.2 * t + phase)], -1)
    noisy = clean + np.random.default_rng(0).normal(0.0, noise, clean.shape)
    return clean, noisy


def test_one_euro_reduces_jitter_with_small_lag():
    clean, noisy = _synthetic()
    smoothed = smooth_trajectory(noisy, FPS, min_cutoff=1.0, beta=0.02)
    # measured: jitter 6.11 -> 1.28 px/frame^2 (4.78x), lag 1.84 frames, error to truth 2.51 -> 2.06 px
    assert motion_noise(noisy) / motion_noise(smoothed) == pytest.approx(4.78, abs=0.05)
    assert lag_frames(noisy, clean) == 0.0
    assert lag_frames(smoothed, clean) == pytest.approx(1.84, abs=0.05)
    assert mean_error(smoothed, clean) < 0.85 * mean_error(noisy, clean)  # closer to the truth than the input


def test_one_euro_first_sample_passes_and_constant_input_is_fixed_point():
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    points = np.array([[10.0, 20.0], [30.0, 40.0]])
    for frame in range(5):
        np.testing.assert_array_equal(one_euro(points, frame / FPS), points)
    with pytest.raises(ValueError, match="increasing times"):
        one_euro(points, 0.0)


def test_one_euro_step_response_matches_closed_form():
    # beta = 0: a fixed first-order low-pass, alpha = 1 / (1 + tau / T), tau = 1 / (2 pi fc)
    one_euro = OneEuroFilter(min_cutoff=2.0, beta=0.0)
    one_euro(np.zeros(1), 0.0)
    alpha = 1.0 / (1.0 + (1.0 / (2 * np.pi * 2.0)) * FPS)
    outputs = [one_euro(np.ones(1), k / FPS)[0] for k in range(1, 6)]
    np.testing.assert_allclose(outputs, 1.0 - (1.0 - alpha) ** np.arange(1, 6))


def test_measures_on_known_signals():
    line = np.arange(20, dtype=np.float64)[:, None, None] * np.array([[[1.0, 2.0]]])  # constant velocity
    assert motion_noise(line) == 0.0
    zigzag = np.zeros((10, 1, 2))
    zigzag[1::2, 0, 0] = 1.0  # second differences alternate +-2
    assert motion_noise(zigzag) == pytest.approx(2.0)
    wave = np.stack([np.sin(np.arange(100) / 5.0), np.cos(np.arange(100) / 7.0)], -1)[:, None]
    assert lag_frames(wave, wave) == pytest.approx(0.0, abs=0.01)
    delayed = np.concatenate([wave[:3], wave[:-3]])
    assert lag_frames(delayed, wave) == pytest.approx(3.0, abs=0.02)
    assert mean_error(wave + [3.0, 4.0], wave) == pytest.approx(5.0)


def test_pose_smoother_per_track_state():
    smoother = PoseSmoother(fps=FPS, min_cutoff=1.0, beta=0.0, max_gap=2)
    a = np.array([[0.0, 0.0, 0.9]])
    b = np.array([[100.0, 100.0, 0.8]])
    smoother.update(0, [7, 8], [a, b])
    out_a, out_b = smoother.update(1, [7, 8], [a + [10, 0, 0], b])
    assert 0.0 < out_a[0, 0] < 10.0 and out_a[0, 2] == 0.9  # smoothed x, score untouched
    np.testing.assert_array_equal(out_b, b)  # track 8 did not move
    (late,) = smoother.update(5, [7], [a + [50, 0, 0]])  # gap 4 > max_gap: filter restarts
    np.testing.assert_array_equal(late, a + [50, 0, 0])
    with pytest.raises(ValueError, match="2 ids for 1 poses"):
        smoother.update(6, [7, 8], [a])


def test_movenet_reference_noise_lag_error(shared_data):
    records = json.loads((shared_data / "videos" / "tfjs_pose_1.movenet_expected.json").read_text())
    names = list(records[0])
    assert len(records) == 120 and len(names) == 17 and names[0] == "nose" and names[-1] == "right_ankle"
    assert all(list(frame) == names and set(frame["nose"]) == {"x", "y"} for frame in records)
    raw = np.array([[[frame[n]["x"], frame[n]["y"]] for n in names] for frame in records])
    assert raw.shape == (120, 17, 2)
    smoothed = smooth_trajectory(raw, FPS, min_cutoff=1.0, beta=0.02)
    raw_noise, smooth_noise = motion_noise(raw), motion_noise(smoothed)
    # measured: jitter 0.185 -> 0.131 px/frame^2 (-29 %), lag 0.85 frames, mean distance to raw 1.35 px
    assert raw_noise == pytest.approx(0.1854, abs=1e-3)
    assert smooth_noise == pytest.approx(0.1314, abs=1e-3)
    assert lag_frames(raw, raw) == pytest.approx(0.0, abs=1e-3)
    assert lag_frames(smoothed, raw) == pytest.approx(0.85, abs=0.02)
    assert mean_error(smoothed, raw) == pytest.approx(1.35, abs=0.02)
