"""HRFPN: the feature-pyramid neck of HRNetV2p, the HRNet detection backbone (face/seg spec C.2).

Concatenates the four branches at stride 4 (HRNetV2 representation), reduces them with a biased
1x1 ``reduction_conv`` to ``out_channels``, pools the result to ``num_outs`` levels (strides 4, 8,
16, 32, 64 for the default 5) and applies one biased 3x3 conv per level. No norm, no activation.
Keys follow mmdetection 2.x/3.x ``mmdet/models/necks/hrfpn.py``: ``reduction_conv.conv.*`` and
``fpn_convs.{i}.conv.*`` (its ``ConvModule`` keeps the conv under ``.conv``). The pyramid feeds a
detector (RPN/ROI heads); no detector is part of this project.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hrnet_train.models.representation import upsample_and_concat
from hrnet_train.models.spec import positive_int

POOLINGS = {"avg": F.avg_pool2d, "max": F.max_pool2d}  # mmdet pooling_type 'AVG' (default) / 'MAX'
OPTIONS = ("out_channels", "num_outs", "pooling")


class ConvUnit(nn.Module):
    """A biased conv kept under the attribute ``conv``: mmcv's ConvModule without norm and
    activation, which is what gives mmdet's HRFPN keys their ``.conv.`` level."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class HRFPN(nn.Module):
    """Branch features (strides 4..32) -> ``num_outs`` maps of ``out_channels`` at strides 4 * 2**i."""

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: int = 256,
        num_outs: int = 5,
        pooling: str = "avg",
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        pooling = str(pooling).lower()
        if pooling not in POOLINGS:
            raise ValueError(f"head_options.pooling: expected one of {list(POOLINGS)}, got {pooling!r}")
        self.out_channels = positive_int(out_channels, "head_options.out_channels")
        self.num_outs = positive_int(num_outs, "head_options.num_outs")
        self.pooling = pooling
        self.num_inputs = len(in_channels)
        self.align_corners = align_corners
        self.reduction_conv = ConvUnit(sum(in_channels), self.out_channels, kernel_size=1)
        self.fpn_convs = nn.ModuleList(ConvUnit(self.out_channels, self.out_channels, kernel_size=3) for _ in range(self.num_outs))

    @classmethod
    def from_options(cls, in_channels: tuple[int, ...], options: Mapping[str, Any], align_corners: bool) -> HRFPN:
        """Build from a ``head_options`` mapping; unknown option names raise naming them."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"head_options: unknown option(s) {unknown} for head 'hrfpn' (expected some of {list(OPTIONS)})")
        return cls(in_channels, align_corners=align_corners, **options)

    @property
    def strides(self) -> tuple[int, ...]:
        """Output strides relative to the network input (branch 0 is at stride 4)."""
        return tuple(4 * 2**i for i in range(self.num_outs))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        reduced = self.reduction_conv(upsample_and_concat(features, self.num_inputs, self.align_corners, "hrfpn"))
        pool = POOLINGS[self.pooling]
        levels = [reduced] + [pool(reduced, kernel_size=2**i, stride=2**i) for i in range(1, self.num_outs)]
        return [conv(level) for conv, level in zip(self.fpn_convs, levels)]

    def init_official_(self) -> None:
        """mmdet's ``caffe2_xavier_init``: kaiming-uniform with a=1, fan_in (bound sqrt(3 / fan_in)), bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.zeros_(module.bias)
