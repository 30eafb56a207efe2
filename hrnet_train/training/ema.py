"""Exponential moving average of the model weights.

The average is a submodule of the LightningModule (``ema.model.*`` keys in the checkpoint), so it is
saved and restored with the run and resume stays exact; validation and exported weights use it when on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA(nn.Module):
    """Shadow copy updated as ``ema = d·ema + (1-d)·w`` after every optimiser step.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates (the num_updates
    rule of TensorFlow's ExponentialMovingAverage) so that early, random weights fade out quickly.
    Buffers (BatchNorm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema.decay: expected a value in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self._param_names = frozenset(name for name, _ in self.model.named_parameters())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        n = int(self.num_updates)
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        source = model.state_dict()
        for key, shadow in self.model.state_dict().items():
            value = source[key].detach()
            if key in self._param_names:
                shadow.mul_(decay).add_(value.to(shadow.dtype), alpha=1.0 - decay)
            else:
                shadow.copy_(value)
        self.num_updates += 1

    def train(self, mode: bool = True) -> ModelEMA:
        """The averaged model always stays in eval mode (its BN stats are copied, never updated)."""
        super().train(mode)
        self.model.eval()
        return self
