"""Optimiser (with its parameter groups), learning-rate scaling and LR schedules.

The reference (spec 5.1) trains with Adam, LR 1e-3 and ``MultiStepLR([170, 200], 0.1)`` stepped at the
START of every epoch, so the LR actually drops after 169 and 199 epochs. ``reference_step_offset``
reproduces that; its resume quirk (one more epoch of shift) is not reproduced: the schedule is a pure
function of the global step, restored exactly on resume.

The scheduler is stepped every optimiser step so that linear warm-up can be given in iterations.
``flat_cosine`` is RTMPose's schedule (Jiang et al. 2023: LR flat for the first half, then cosine to a
floor); its parameter groups (AdamW without decay on norm layers and biases) and a separate LR for
a fresh head on a pretrained backbone are :func:`parameter_groups`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from hrnet_train.config_schema import OPTIMIZER_NAMES, SchedulerConfig

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def lr_factor(spec: SchedulerConfig, step: int, steps_per_epoch: int, max_epochs: int) -> float:
    """Multiplier of the base LR for optimiser step ``step`` (0-based) of a run of ``max_epochs`` epochs."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    epoch = step // steps_per_epoch
    if spec.name == "multistep":
        # The reference steps MultiStepLR before each epoch: the drop for milestone m happens at epoch m - 1.
        offset = 1 if spec.reference_step_offset else 0
        factor = spec.gamma ** sum(1 for milestone in spec.milestones if epoch >= milestone - offset)
    elif spec.name in ("cosine", "flat_cosine"):
        total = max(1, steps_per_epoch * max_epochs)
        flat = spec.flat_fraction if spec.name == "flat_cosine" else 0.0
        progress = min(1.0, max(0.0, step / total - flat) / (1.0 - flat))
        factor = spec.min_lr_factor + (1.0 - spec.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if step < spec.warmup_iters:
        alpha = step / spec.warmup_iters
        factor *= spec.warmup_start_factor + (1.0 - spec.warmup_start_factor) * alpha
    return factor


class StepwiseLR(LRScheduler):
    """LRScheduler stepped once per optimiser step; its state is plain numbers (loads with weights_only)."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: SchedulerConfig, steps_per_epoch: int, max_epochs: int) -> None:
        self.name = spec.name
        self.milestones = list(spec.milestones)
        self.gamma = spec.gamma
        self.reference_step_offset = spec.reference_step_offset
        self.warmup_iters = spec.warmup_iters
        self.warmup_start_factor = spec.warmup_start_factor
        self.min_lr_factor = spec.min_lr_factor
        self.flat_fraction = spec.flat_fraction
        self.steps_per_epoch = steps_per_epoch
        self.max_epochs = max_epochs
        super().__init__(optimizer)

    @property
    def spec(self) -> SchedulerConfig:
        return SchedulerConfig(
            name=self.name,
            milestones=tuple(self.milestones),
            gamma=self.gamma,
            reference_step_offset=self.reference_step_offset,
            warmup_iters=self.warmup_iters,
            warmup_start_factor=self.warmup_start_factor,
            min_lr_factor=self.min_lr_factor,
            flat_fraction=self.flat_fraction,
        )

    def get_lr(self) -> list[float]:
        factor = lr_factor(self.spec, self.last_epoch, self.steps_per_epoch, self.max_epochs)
        return [base * factor for base in self.base_lrs]


def scale_lr(base_lr: float, global_batch: int, base_batch_size: int) -> float:
    """Linear scaling rule (Goyal et al. 2017): LR grows with the global batch relative to the recipe's batch."""
    if global_batch < 1 or base_batch_size < 1:
        raise ValueError(f"batch sizes must be >= 1, got global {global_batch}, base {base_batch_size}")
    return base_lr * global_batch / base_batch_size


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Sequence[dict[str, Any]],
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    betas: Sequence[float] = (0.9, 0.999),
    fused: bool = False,
) -> torch.optim.Optimizer:
    """Adam with PyTorch defaults is the reference (``get_optimizer``: WD/momentum ignored for Adam).

    ``params`` are parameters or :func:`parameter_groups`; a group's ``lr_factor`` scales its LR.
    ``fused`` (CUDA parameters): Adam/AdamW update all parameters in one fused kernel instead of
    PyTorch's default multi-tensor path; same update rule, fewer launches. Ignored for SGD.
    """
    fused_option = {"fused": True} if fused else {}
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**group, "lr": lr * group.get("lr_factor", 1.0)} for group in params]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **fused_option)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **fused_option)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer.name: expected one of {OPTIMIZER_NAMES}, got {name!r}")


def head_module(model: nn.Module) -> nn.Module:
    """The network's head: the attribute ``model.head_name`` names (HRNet: ``final_layer``, face
    ``head``, seg ``last_layer``, HRNetV2p ``neck``), else ``final_layer`` (PoseResNet)."""
    head = getattr(model, getattr(model, "head_name", "final_layer"), None)
    if not isinstance(head, nn.Module):
        raise ValueError(f"optimizer.head_lr_factor: {type(model).__name__} has no head module to give its own LR")
    return head


def parameter_groups(
    model: nn.Module, weight_decay: float, no_decay_norm_bias: bool = False, head_lr_factor: float = 1.0
) -> list[dict[str, Any]]:
    """Optimiser parameter groups: one group (every parameter, ``weight_decay``) unless asked for more.

    ``no_decay_norm_bias``: weights and biases of norm layers and every bias get no weight decay
    (decaying them only shrinks a scale and shifts; RTMPose's AdamW ``norm_decay_mult=0``,
    ``bias_decay_mult=0``). ``head_lr_factor``: the head's parameters get ``lr_factor`` = factor, which
    :func:`build_optimizer` multiplies into their LR. Each group lists ``names`` for checks and logs.
    """
    head_ids = {id(p) for p in head_module(model).parameters()} if head_lr_factor != 1.0 else set()
    groups: dict[tuple[bool, bool], dict[str, Any]] = {}
    seen: set[int] = set()  # a parameter shared by two modules is optimised once, like model.parameters()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            decays = not (no_decay_norm_bias and (isinstance(module, NORM_LAYERS) or param_name == "bias"))
            in_head = id(param) in head_ids
            group = groups.setdefault((in_head, decays), {
                "params": [], "names": [], "weight_decay": weight_decay if decays else 0.0,
                "lr_factor": head_lr_factor if in_head else 1.0,
            })
            group["params"].append(param)
            group["names"].append(f"{module_name}.{param_name}" if module_name else param_name)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], not k[1]))]
