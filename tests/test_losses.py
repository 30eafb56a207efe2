"""JointsMSELoss against hand-computed values (spec 4)."""

from __future__ import annotations

import pytest
import torch

from hrnet_train.training.losses import JointsMSELoss


def _case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # B=2, J=2, 1x2 maps. Differences (pred - gt): sample0 j0 [1, 1], j1 [2, 0]; sample1 j0 [0, 2], j1 [1, 3].
    pred = torch.tensor([[[[1.0, 1.0]], [[2.0, 0.0]]], [[[0.0, 2.0]], [[1.0, 3.0]]]])
    target = torch.zeros_like(pred)
    weight = torch.tensor([[1.0, 0.5], [1.0, 0.0]])
    return pred, target, weight


def test_reference_loss_equals_hand_computed_value() -> None:
    pred, target, weight = _case()
    # per (b, j): 0.5 * w^2 * mean(diff^2): b0j0 0.5*1*1=0.5, b0j1 0.5*0.25*2=0.25, b1j0 0.5*1*2=1.0, b1j1 0
    # per joint mean over batch: j0 0.75, j1 0.125 -> sum / J = 0.4375
    loss = JointsMSELoss(use_target_weight=True)(pred, target, weight)
    assert loss.item() == pytest.approx(0.4375, abs=1e-7)


def test_closed_form_matches_spec_formula() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(3, 4, 5, 6), torch.randn(3, 4, 5, 6)
    weight = torch.rand(3, 4)
    expected = (weight[..., None, None] ** 2 * (pred - target) ** 2).sum() / (2 * 4 * 3 * 5 * 6)
    assert JointsMSELoss()(pred, target, weight).item() == pytest.approx(expected.item(), rel=1e-6)


def test_without_target_weight_is_half_mse() -> None:
    pred, target, weight = _case()
    loss = JointsMSELoss(use_target_weight=False)(pred, target, weight)
    assert loss.item() == pytest.approx(0.5 * (pred**2).mean().item(), abs=1e-7)  # 0.5 * 20/8 = 1.25
    assert loss.item() == pytest.approx(1.25, abs=1e-7)


def test_joint_weights_act_squared_like_target_weights() -> None:
    pred, target, weight = _case()
    loss = JointsMSELoss(joint_weights=[2.0, 1.0])(pred, target, weight)
    # j0 terms x4: b0j0 2.0, b1j0 4.0 -> mean 3.0; j1 unchanged 0.125 -> (3.0 + 0.125) / 2
    assert loss.item() == pytest.approx(1.5625, abs=1e-7)


def test_ohkm_keeps_top_k_joints_per_sample() -> None:
    pred, target, weight = _case()
    loss = JointsMSELoss(ohkm_topk=1)(pred, target, weight)
    # per-sample max: b0 0.5, b1 1.0 -> mean 0.75
    assert loss.item() == pytest.approx(0.75, abs=1e-7)


def test_loss_is_float32_under_bf16_autocast() -> None:
    pred, target, weight = _case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = JointsMSELoss()(pred.bfloat16(), target, weight)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.4375, abs=1e-7)  # the case is exact in bf16


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 3\).*\(1, 3, 3, 3\)"):
        JointsMSELoss()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, 3), torch.ones(1, 2))
