"""Heatmap heads: turn the list of branch features into ``[B, num_joints, H/4, W/4]`` heatmaps.

Both heads are registered on the network as ``final_layer`` so that the V1 head keeps the
official keys ``final_layer.weight`` / ``final_layer.bias`` (spec 1.6).

* ``v1`` (official HRNetV1 pose head): a 1x1 conv with bias on the highest-resolution branch only.
* ``v2`` (HRNetV2 representation, Wang et al., TPAMI 2020, "Deep High-Resolution Representation
  Learning for Visual Recognition"; layout as in the HRNetV2 facial-landmark head): every branch is
  upsampled to branch 0's size (bilinear, align_corners=False), the maps are concatenated
  (sum of channels, 15C for a 4-branch width-C net), then
  ``final_layer.0`` 1x1 conv sumC->sumC (no bias, it is followed by BN), ``final_layer.1`` BN,
  ``final_layer.2`` ReLU, ``final_layer.3`` 1x1 conv sumC->num_joints with bias.
  It needs every branch, so the last stage must be built multi-scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("v1", "v2")


class SingleScaleHead(nn.Conv2d):
    """V1: 1x1 conv (bias) on the highest-resolution feature map; a Conv2d so the keys stay official."""

    def __init__(self, in_channels: int, num_joints: int) -> None:
        super().__init__(in_channels, num_joints, kernel_size=1, stride=1, padding=0, bias=True)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return super().forward(features[0])


class ConcatHead(nn.Sequential):
    """V2: upsample all branches to the highest resolution, concatenate, 1x1 conv-BN-ReLU, 1x1 conv."""

    def __init__(self, in_channels: tuple[int, ...], num_joints: int) -> None:
        total = sum(in_channels)
        super().__init__(
            nn.Conv2d(total, total, kernel_size=1, bias=False),
            nn.BatchNorm2d(total),
            nn.ReLU(inplace=True),
            nn.Conv2d(total, num_joints, kernel_size=1, bias=True),
        )
        self.num_inputs = len(in_channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        if len(features) != self.num_inputs:
            raise ValueError(f"head v2: expected {self.num_inputs} feature maps (one per branch), got {len(features)}")
        size = features[0].shape[-2:]
        upsampled = [features[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[1:]
        ]
        return super().forward(torch.cat(upsampled, dim=1))


def make_head(head: str, in_channels: tuple[int, ...], num_joints: int) -> nn.Module:
    """Build the head named ``head`` ('v1' | 'v2') for branch channels ``in_channels``."""
    if num_joints <= 0:
        raise ValueError(f"num_joints: expected a positive integer, got {num_joints!r}")
    if head == "v1":
        return SingleScaleHead(in_channels[0], num_joints)
    if head == "v2":
        return ConcatHead(in_channels, num_joints)
    raise ValueError(f"head: unknown head {head!r} (expected one of {list(HEADS)})")
