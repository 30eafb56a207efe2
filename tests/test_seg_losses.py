"""Segmentation losses (spec B.6): weighted CE against a hand computation, logit upsampling, OHEM's kept
pixel count and value on hand-made probabilities, and the official min_kept on a full 512x1024 crop."""

from __future__ import annotations

import math

import pytest
import torch

from hrnet_train.training.seg_losses import SegCrossEntropyLoss, ohem_keep_mask


def _two_class_logits(gt_probs: list[float]) -> torch.Tensor:
    """(1, 2, 1, n) logits whose class-0 softmax probability is exactly ``gt_probs`` (log p, log(1-p))."""
    p = torch.tensor(gt_probs, dtype=torch.float64)
    return torch.stack([p.log(), (1 - p).log()]).view(1, 2, 1, -1).float()


def test_weighted_cross_entropy_equals_the_hand_computation() -> None:
    ln2, ln3 = math.log(2), math.log(3)
    # Pixel logits: [ln2, 0, 0] label 0 -> -log(2/4) = ln 2; [0, 0, 0] label 1 -> ln 3;
    # [0, ln3, 0] label 2 -> -log(1/5) = ln 5; the fourth pixel is ignored.
    logits = torch.tensor([[ln2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, ln3, 0.0], [9.0, -9.0, 0.0]]).T.reshape(1, 3, 1, 4)
    labels = torch.tensor([[[0, 1, 2, 255]]])
    weights = [1.0, 2.0, 0.5]
    expected = (1.0 * ln2 + 2.0 * ln3 + 0.5 * math.log(5)) / (1.0 + 2.0 + 0.5)
    assert SegCrossEntropyLoss(class_weights=weights)(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert SegCrossEntropyLoss()(logits, labels).item() == pytest.approx((ln2 + ln3 + math.log(5)) / 3, rel=1e-6)


def test_logits_are_upsampled_to_the_label_size() -> None:
    """Class-constant 1/4-resolution logits upsample to the same constants: the loss of the full map."""
    small = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1).expand(2, 3, 4, 6).contiguous()
    labels = torch.randint(0, 3, (2, 16, 24), generator=torch.Generator().manual_seed(0))
    full = small[:, :, :1, :1].expand(2, 3, 16, 24)
    for align_corners in (False, True):
        loss = SegCrossEntropyLoss(align_corners=align_corners)
        assert loss(small, labels).item() == pytest.approx(loss(full, labels).item(), rel=1e-6)


def test_ohem_keeps_the_expected_pixels_on_a_hand_made_case() -> None:
    probs = torch.tensor([0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.95, 0.99])
    # min_kept 3: threshold = max(p_sorted[3] = 0.3, 0.5) = 0.5 -> the 5 pixels below 0.5.
    assert ohem_keep_mask(probs, thresh=0.5, min_kept=3).sum() == 5
    # min_kept 7: threshold = max(p_sorted[7] = 0.8, 0.5) = 0.8 -> 7 pixels (< 0.8).
    assert ohem_keep_mask(probs, thresh=0.5, min_kept=7).tolist() == [True] * 7 + [False] * 3
    # min_kept >= n: threshold = max(p_sorted[n-1] = 0.99, 0.5) -> all but the largest (official quirk).
    assert ohem_keep_mask(probs, thresh=0.5, min_kept=100).sum() == 9
    assert ohem_keep_mask(probs, thresh=0.9, min_kept=1).sum() == 8  # threshold 0.9 dominates
    # Loss: plain mean of the kept pixels' class-weighted losses -w log p (not divided by the weight sum).
    logits = _two_class_logits(probs.tolist() + [0.5])
    labels = torch.tensor([[[0] * 10 + [255]]])
    loss = SegCrossEntropyLoss(class_weights=[2.0, 1.0], ohem=True, ohem_thresh=0.5, ohem_min_kept=3)
    expected = sum(-2.0 * math.log(p) for p in (0.05, 0.1, 0.2, 0.3, 0.4)) / 5
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_ohem_keeps_min_kept_pixels_of_a_512x1024_crop() -> None:
    """Official values (thresh 0.9, min_kept 131,072): easy pixels (p > 0.9) -> exactly min_kept are kept."""
    generator = torch.Generator().manual_seed(0)
    probs = 0.9 + 0.0999 * torch.rand(512 * 1024, generator=generator, dtype=torch.float64)
    assert torch.unique(probs).numel() == probs.numel()
    assert ohem_keep_mask(probs.float()).sum() == 131_072
    probs[:200_000] = 0.5  # now 200,000 pixels are hard: all of them are kept, more than min_kept
    assert ohem_keep_mask(probs.float()).sum() == 200_000


def test_degenerate_batches_and_bad_input() -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    for ohem in (False, True):
        loss = SegCrossEntropyLoss(ohem=ohem)(logits, torch.full((1, 2, 2), 255))
        assert loss.item() == 0.0
        loss.backward()  # still a graph
    with pytest.raises(ValueError, match=r"label value\(s\) \[3\] outside 0..2"):
        SegCrossEntropyLoss()(logits, torch.tensor([[[0, 3], [1, 255]]]))
    with pytest.raises(ValueError, match="2 class weights for 3 logit channels"):
        SegCrossEntropyLoss(class_weights=[1.0, 1.0])(logits, torch.zeros(1, 2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"expected logits \(N, K, h, w\) and labels \(N, H, W\)"):
        SegCrossEntropyLoss()(logits, torch.zeros(2, 2, dtype=torch.int64))
