"""LR schedules: the reference MultiStep timing (with/without its step-before-epoch offset),
warm-up, cosine and linear batch scaling."""

from __future__ import annotations

import math

import pytest
import torch

from hrnet_train.config_schema import SchedulerConfig
from hrnet_train.training.schedules import StepwiseLR, build_optimizer, lr_factor, scale_lr

REFERENCE = dict(name="multistep", milestones=(170, 200), gamma=0.1)


def _epoch_lrs(spec: SchedulerConfig, epochs: int, steps_per_epoch: int = 3, base_lr: float = 1e-3) -> list[float]:
    """LR in effect during each epoch, read from a real optimiser driven step by step."""
    optimizer = build_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], base_lr)
    scheduler = StepwiseLR(optimizer, spec, steps_per_epoch, epochs)
    lrs = []
    for _epoch in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            optimizer.step()
            scheduler.step()
    return lrs


def test_reference_offset_drops_after_169_and_199_epochs() -> None:
    lrs = _epoch_lrs(SchedulerConfig(**REFERENCE, reference_step_offset=True), 210)
    assert lrs[:169] == [pytest.approx(1e-3)] * 169
    assert lrs[169:199] == [pytest.approx(1e-4)] * 30
    assert lrs[199:] == [pytest.approx(1e-5)] * 11


def test_without_offset_drops_at_milestones() -> None:
    lrs = _epoch_lrs(SchedulerConfig(**REFERENCE), 210)
    assert lrs[169] == pytest.approx(1e-3) and lrs[170] == pytest.approx(1e-4)
    assert lrs[199] == pytest.approx(1e-4) and lrs[200] == pytest.approx(1e-5)
    assert sum(lr == pytest.approx(1e-3) for lr in lrs) == 170


def test_lr_is_constant_within_an_epoch_for_multistep() -> None:
    spec = SchedulerConfig(**REFERENCE, reference_step_offset=True)
    assert [lr_factor(spec, step, 10, 210) for step in (1689, 1690, 1699)] == [1.0, pytest.approx(0.1), pytest.approx(0.1)]


def test_linear_warmup_in_iterations() -> None:
    spec = SchedulerConfig(name="constant", warmup_iters=10, warmup_start_factor=0.0)
    assert [lr_factor(spec, s, 4, 5) for s in (0, 5, 9, 10, 11)] == [0.0, 0.5, pytest.approx(0.9), 1.0, 1.0]


def test_cosine_from_one_to_floor() -> None:
    spec = SchedulerConfig(name="cosine", min_lr_factor=0.1)
    assert lr_factor(spec, 0, 10, 4) == pytest.approx(1.0)
    assert lr_factor(spec, 20, 10, 4) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(spec, 10, 10, 4) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(spec, 40, 10, 4) == pytest.approx(0.1)


def test_scheduler_state_round_trips_through_weights_only_load(tmp_path) -> None:
    spec = SchedulerConfig(**REFERENCE, reference_step_offset=True, warmup_iters=5)
    optimizer = build_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    scheduler = StepwiseLR(optimizer, spec, 7, 210)
    for _ in range(1200):
        optimizer.step()
        scheduler.step()
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    fresh_optimizer = build_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    fresh = StepwiseLR(fresh_optimizer, SchedulerConfig(), 1, 1)
    fresh.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    fresh_optimizer.step()
    fresh.step()
    optimizer.step()
    scheduler.step()
    assert fresh.get_last_lr() == scheduler.get_last_lr() == [pytest.approx(1e-4)]  # step 1201 = epoch 171


@pytest.mark.parametrize(
    ("base_lr", "global_batch", "base_batch", "expected"),
    [(1e-3, 128, 128, 1e-3), (1e-3, 32, 128, 2.5e-4), (1e-3, 96, 96, 1e-3), (1e-3, 192, 96, 2e-3)],
)
def test_linear_scaling(base_lr: float, global_batch: int, base_batch: int, expected: float) -> None:
    assert scale_lr(base_lr, global_batch, base_batch) == pytest.approx(expected)


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(ValueError, match="optimizer.name.*'rmsprop'"):
        build_optimizer("rmsprop", [torch.nn.Parameter(torch.zeros(1))], 1e-3)


def test_flat_cosine_hand_computed_with_warmup() -> None:
    """40 steps, flat for half, cosine to 0.05: 1 up to step 20; step 25 = 0.05 + 0.95 (1 + cos(pi/4)) / 2
    = 0.86088; step 30 = 0.525; step 40 = 0.05; warm-up multiplies in (step 5 of 10 from 0: x 0.5)."""
    spec = SchedulerConfig(name="flat_cosine", flat_fraction=0.5, min_lr_factor=0.05)
    values = [lr_factor(spec, step, 10, 4) for step in (0, 19, 20, 25, 30, 40, 45)]
    assert values == [1.0, 1.0, 1.0, pytest.approx(0.860876, abs=1e-6), pytest.approx(0.525), pytest.approx(0.05), pytest.approx(0.05)]
    warm = SchedulerConfig(name="flat_cosine", flat_fraction=0.5, min_lr_factor=0.05, warmup_iters=10, warmup_start_factor=0.0)
    assert [lr_factor(warm, step, 10, 4) for step in (0, 5, 10, 30)] == [0.0, 0.5, 1.0, pytest.approx(0.525)]
    assert lr_factor(SchedulerConfig(name="flat_cosine", flat_fraction=0.0, min_lr_factor=0.1), 20, 10, 4) == pytest.approx(
        lr_factor(SchedulerConfig(name="cosine", min_lr_factor=0.1), 20, 10, 4))  # flat 0 = plain cosine


def test_flat_cosine_drives_a_real_optimizer_and_its_state_restores() -> None:
    """8 epochs of 5 steps, flat for 75 %: full LR through epoch 6 (step 30 starts the cosine), epoch 7
    starts at step 35 = half-way down the cosine."""
    spec = SchedulerConfig(name="flat_cosine", flat_fraction=0.75, min_lr_factor=0.0)
    assert _epoch_lrs(spec, 8, steps_per_epoch=5, base_lr=1e-3) == [pytest.approx(1e-3)] * 7 + [pytest.approx(0.5e-3)]
    optimizer = build_optimizer("adamw", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    scheduler = StepwiseLR(optimizer, spec, 5, 8)
    for _ in range(35):
        optimizer.step()
        scheduler.step()
    fresh = StepwiseLR(build_optimizer("adamw", [torch.nn.Parameter(torch.zeros(1))], 1e-3), SchedulerConfig(), 1, 1)
    fresh.load_state_dict(scheduler.state_dict())
    assert fresh.spec == spec and fresh.get_lr() == [pytest.approx(0.5e-3)]


def _toy_network() -> torch.nn.Module:
    """conv (no bias) -> BN -> linear (bias), with a 1x1 conv head named like HRNet's."""
    network = torch.nn.Sequential()
    network.add_module("conv", torch.nn.Conv2d(3, 4, 3, bias=False))
    network.add_module("bn", torch.nn.BatchNorm2d(4))
    network.add_module("fc", torch.nn.Linear(4, 2))
    network.add_module("final_layer", torch.nn.Conv2d(4, 2, 1))
    network.head_name = "final_layer"
    return network


def test_parameter_groups_keep_norm_and_bias_out_of_weight_decay() -> None:
    from hrnet_train.models import create_model
    from hrnet_train.training.schedules import parameter_groups

    groups = parameter_groups(_toy_network(), 0.05, no_decay_norm_bias=True)
    assert [(g["names"], g["weight_decay"]) for g in groups] == [
        (["conv.weight", "fc.weight", "final_layer.weight"], 0.05),
        (["bn.weight", "bn.bias", "fc.bias", "final_layer.bias"], 0.0),
    ]
    # On a real HRNet: every BN parameter and every bias is undecayed, every conv weight decayed, none lost.
    model = create_model("hrnet_tiny", num_joints=17)
    decay, no_decay = parameter_groups(model, 0.05, no_decay_norm_bias=True)
    names = dict(model.named_parameters())
    assert sorted(decay["names"] + no_decay["names"]) == sorted(names)
    assert not [n for n in decay["names"] if n.endswith(".bias") or names[n].ndim == 1]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert all(names[n].ndim == 4 for n in decay["names"]) and len(decay["names"]) == convs == 41
    bn_names = {f"{m}.{p}" for m, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d) for p in ("weight", "bias")}
    assert bn_names <= set(no_decay["names"]) and "final_layer.bias" in no_decay["names"]
    # Off (the default): one group of every parameter in model order, as model.parameters() gives them.
    (single,) = parameter_groups(model, 0.0)
    assert single["names"] == list(names) and single["weight_decay"] == 0.0


def test_head_lr_factor_scales_the_head_groups() -> None:
    from hrnet_train.models import create_model
    from hrnet_train.training.schedules import parameter_groups

    groups = parameter_groups(_toy_network(), 0.01, no_decay_norm_bias=True, head_lr_factor=10.0)
    optimizer = build_optimizer("adamw", groups, 1e-3)
    assert [(g["names"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        (["conv.weight", "fc.weight"], 1e-3, 0.01),
        (["bn.weight", "bn.bias", "fc.bias"], 1e-3, 0.0),
        (["final_layer.weight"], pytest.approx(1e-2), 0.01),
        (["final_layer.bias"], pytest.approx(1e-2), 0.0),
    ]
    # The schedule scales every group by one factor, so the head keeps 10x the backbone's LR.
    scheduler = StepwiseLR(optimizer, SchedulerConfig(name="cosine", min_lr_factor=0.0), 10, 2)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs[2] == pytest.approx(10 * lrs[0]) and lrs[0] == pytest.approx(0.5e-3)
    # The head is whatever head_name names: the face model's 'head'.
    face = create_model("hrnet_w18_face")
    head_group = parameter_groups(face, 0.0, head_lr_factor=2.0)[-1]
    assert head_group["lr_factor"] == 2.0 and all(n.startswith("head.") for n in head_group["names"])
    assert len(head_group["names"]) == len(list(face.head.parameters()))
