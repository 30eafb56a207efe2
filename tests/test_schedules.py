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


def test_poly_matches_the_official_loop_that_sets_the_lr_after_each_step() -> None:
    """Spec B.7: the official trainer runs a step, then sets lr = base * (1 - it / max_it)^0.9 with it = that
    step's index (``adjust_learning_rate(..., i_iter + cur_iters)``); the LR each step ran with is compared."""
    base, steps_per_epoch, epochs = 0.01, 7, 3
    max_it = steps_per_epoch * epochs
    official, lr = [], base
    for it in range(max_it):
        official.append(lr)
        lr = base * (1 - it / max_it) ** 0.9
    optimizer = build_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], base, weight_decay=5e-4)
    scheduler = StepwiseLR(optimizer, SchedulerConfig(name="poly", warmup_iters=0), steps_per_epoch, epochs)
    ours = []
    for _ in range(max_it):
        ours.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert ours == pytest.approx(official, rel=1e-12)
    assert ours[:2] == [base, base] and ours[-1] == pytest.approx(base * (2 / max_it) ** 0.9)
    # Past the end (more steps than planned) the factor stays 0 instead of (negative) ** 0.9.
    assert lr_factor(SchedulerConfig(name="poly"), max_it + 5, steps_per_epoch, epochs) == 0.0
    assert lr_factor(SchedulerConfig(name="poly", power=1.0), 11, steps_per_epoch, epochs) == pytest.approx(1 - 10 / max_it)
