"""The HRNetV2 representation (Wang et al., TPAMI 2020): every branch resized to the highest
resolution and concatenated along channels. Read by the concat heads and the HRFPN neck."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_and_concat(features: list[torch.Tensor], expected: int, align_corners: bool, owner: str) -> torch.Tensor:
    """Bilinearly resize branches 1.. to branch 0's exact size and concatenate them after branch 0.

    Size-matched rather than ``scale_factor=2**i`` (mmdet's HRFPN): identical whenever the sizes
    divide, and it also works for the odd sizes that size-matched fusion allows. ``owner`` names
    the head in the error for a wrong number of branches.
    """
    if len(features) != expected:
        raise ValueError(f"head {owner}: expected {expected} feature maps (one per branch), got {len(features)}")
    size = features[0].shape[-2:]
    resized = [features[0]] + [
        F.interpolate(f, size=size, mode="bilinear", align_corners=align_corners) for f in features[1:]
    ]
    return torch.cat(resized, dim=1)
