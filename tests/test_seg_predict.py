"""Test-time segmentation inference (spec B.8, D.16) on tiny stand-in networks with known outputs:
exp of logits summed over scales, flip averaging (with channel swaps), the sliding-window layout and
overlap averaging, and the scale sizes and tiles the network is run on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrnet_train.decoding.seg_predict import multi_scale_scores, sliding_window_scores, window_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def identity_logits(images: torch.Tensor) -> torch.Tensor:
    """Logits = the three input channels (K = 3), at full resolution."""
    return images.clone()


def column_ramp(images: torch.Tensor) -> torch.Tensor:
    """K = 2: channel 0 = the column index of the input (whatever the content), channel 1 = its negative."""
    n, _, h, w = images.shape
    ramp = torch.arange(w, dtype=torch.float32).expand(n, 1, h, w)
    return torch.cat([ramp, -ramp], dim=1)


class Recorder:
    """A stride-4 stand-in that returns zeros at 1/4 resolution and records the input sizes it saw."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.sizes.append(tuple(images.shape[-2:]))
        h, w = -(-images.shape[-2] // 4), -(-images.shape[-1] // 4)
        return [torch.full((images.shape[0], 2, h, w), 5.0), torch.zeros(images.shape[0], 2, h, w)]  # last one is used


def test_image_resize_matches_cv2_linear_on_float_images() -> None:
    """The official resizes the normalised float image with cv2 INTER_LINEAR; bilinear align_corners=False
    without antialiasing takes the same taps, up and down."""
    image = np.random.default_rng(0).standard_normal((37, 53, 3)).astype(np.float32)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    for height, width in ((50, 71), (20, 27), (37, 106)):
        ours = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR), atol=2e-5)


def test_scores_of_a_constant_image_sum_exp_logits_over_scales() -> None:
    values = torch.tensor([0.3, -1.2, 0.8])
    images = values.view(1, 3, 1, 1).expand(1, 3, 24, 40).contiguous()
    scores = multi_scale_scores(identity_logits, images, scales=(0.5, 1.0, 1.5), flip=True, window=(16, 16))
    assert scores.shape == (1, 3, 24, 40)
    torch.testing.assert_close(scores, 3 * values.exp().view(1, 3, 1, 1).expand_as(scores), rtol=1e-5, atol=0)


def test_flip_averages_logits_before_the_exp_and_swaps_channels() -> None:
    images = torch.zeros(2, 3, 4, 6)
    ramp = torch.arange(6.0)
    plain = window_scores(column_ramp, images)
    torch.testing.assert_close(plain[:, 0], ramp.exp().expand(2, 4, 6))
    flipped = window_scores(column_ramp, images, flip=True)
    torch.testing.assert_close(flipped[:, 0], torch.full((2, 4, 6), np.exp(2.5)))  # (x + (5 - x)) / 2 = 2.5
    swapped = window_scores(column_ramp, images, flip=True, flip_index=[1, 0])
    # channel 0 = mean of ramp and the flipped-back channel 1 of the flipped run: (x - (5 - x)) / 2
    torch.testing.assert_close(swapped[:, 0], (ramp - 2.5).exp().expand(2, 4, 6))


def test_sliding_windows_average_their_overlaps() -> None:
    """Columns 0..39 in windows of 16 at stride 16: [0,16) [16,32) and [24,40) (shifted back to the border).
    The stand-in answers each window with the mean of its input, so the expected map is known by hand."""
    images = (torch.arange(40.0) / 10).expand(1, 3, 20, 40).contiguous()

    def window_mean(tile: torch.Tensor) -> torch.Tensor:
        h, w = -(-tile.shape[-2] // 4), -(-tile.shape[-1] // 4)
        return tile[:, :1].mean().expand(1, 1, h, w)

    scores = sliding_window_scores(window_mean, images, window=(16, 16))[0, 0]
    means = np.exp([0.75, 2.35, 3.15])  # mean column / 10 of each window
    expected = np.concatenate([np.full(16, means[0]), np.full(8, means[1]), np.full(8, (means[1] + means[2]) / 2),
                               np.full(8, means[2])])
    np.testing.assert_allclose(scores.numpy(), np.broadcast_to(expected, (20, 40)), rtol=1e-6)


def test_sliding_windows_equal_the_whole_image_for_a_pointwise_network() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1)
    images = torch.randn(1, 3, 30, 44)
    with torch.no_grad():
        tiled = multi_scale_scores(conv, images, scales=(1.5,), window=(20, 24))
        resized = F.interpolate(images, size=(45, 66), mode="bilinear", align_corners=False)  # 1.5 x 44 = 66
        whole = F.interpolate(conv(resized).exp(), size=(30, 44), mode="bilinear", align_corners=False)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-6)


def test_scale_sizes_and_tiles_follow_the_official_layout() -> None:
    recorder = Recorder()
    scores = multi_scale_scores(recorder, torch.zeros(1, 3, 32, 64), scales=(0.5, 1.75), flip=True, base_size=64,
                                window=(32, 64))
    # 0.5: whole image, long side int(64 * 0.5 + 0.5) = 32 -> 16x32, run plain and flipped.
    # 1.75: 56x112 in 2 x 2 windows of 32x64 (rows ceil(24/32)+1, cols ceil(48/64)+1), each plain and flipped.
    assert recorder.sizes == [(16, 32)] * 2 + [(32, 64)] * 8
    torch.testing.assert_close(scores, torch.full((1, 2, 32, 64), 2.0))  # the last output (zeros): 2 x exp(0)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"expected normalised images \(N, 3, H, W\)"):
        multi_scale_scores(identity_logits, torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="scales must be positive"):
        multi_scale_scores(identity_logits, torch.zeros(1, 3, 8, 8), scales=(0.0,))
