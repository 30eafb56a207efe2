"""Heads: turn the list of branch features into the network output.

The head is registered on the network under a configurable attribute name (``head_name``) so that
every variant keeps its official keys: ``final_layer`` for pose (spec 1.6), ``head`` for the face
model (face/seg spec A.3), ``last_layer`` for segmentation (B.3), ``neck`` for HRNetV2p (C.2).

* ``v1`` (official HRNetV1 pose head): a 1x1 conv with bias on the highest-resolution branch only.
* ``v2`` (HRNetV2 representation, Wang et al., TPAMI 2020, "Deep High-Resolution Representation
  Learning for Visual Recognition"; layout as in the HRNetV2 facial-landmark head): every branch is
  upsampled to branch 0's size (bilinear), the maps are concatenated (sum of channels, 15C for a
  4-branch width-C net), then ``.0`` 1x1 conv sumC->sumC (no bias, it is followed by BN), ``.1``
  BN, ``.2`` ReLU, ``.3`` 1x1 conv sumC->num_outputs with bias. Biases start at 0 (pose init).
* ``v2_bias``: the official face/segmentation head (face/seg spec A.3, B.3): as ``v2`` but ``.0``
  has a bias too (one more sumC parameters), and the official init leaves both biases at
  PyTorch's default uniform init instead of zeroing them (A.6, D.6).
* ``hrfpn``: the HRNetV2p feature-pyramid neck for detectors (:mod:`hrnet_train.models.hrfpn`);
  no per-joint/per-class output, options in ``head_options``.
* ``simcc``: coordinate classification (SimCC, Li et al., ECCV 2022) on the highest-resolution
  branch: a 1x1 conv gives one map per joint, each map is flattened and two linear layers turn it
  into x and y logits at ``split_ratio`` bins per input pixel; output (B, J, x_bins + y_bins), x
  first (the ``simcc`` codec's layout). The linear layers' input is the 1/4-resolution map, so the
  head needs ``head_options.input_size`` (the network input, "HxW") and ``split_ratio`` (default 2).

The concat heads and the neck need every branch, so the last stage must be built multi-scale.
Every head has ``init_official_()``: the initialisation of the official code it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import math

import torch
from torch import nn

from hrnet_train.models.blocks import init_official_
from hrnet_train.models.hrfpn import HRFPN
from hrnet_train.models.representation import upsample_and_concat
from hrnet_train.models.spec import positive_int
from hrnet_train.sizes import InputSize

HEADS = ("v1", "v2", "v2_bias", "hrfpn", "simcc")
MULTI_SCALE_HEADS = ("v2", "v2_bias", "hrfpn")  # heads that read every branch
DEFAULT_NUM_JOINTS = 17  # COCO, when neither num_joints nor num_classes is given


class SingleScaleHead(nn.Conv2d):
    """V1: 1x1 conv (bias) on the highest-resolution feature map; a Conv2d so the keys stay official."""

    def __init__(self, in_channels: int, num_outputs: int) -> None:
        super().__init__(in_channels, num_outputs, kernel_size=1, stride=1, padding=0, bias=True)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return super().forward(features[0])

    def init_official_(self) -> None:
        init_official_(self)


class ConcatHead(nn.Sequential):
    """V2 / V2-bias: upsample all branches to the highest resolution, concatenate, 1x1 conv-BN-ReLU, 1x1 conv."""

    def __init__(self, in_channels: tuple[int, ...], num_outputs: int, bias: bool, align_corners: bool) -> None:
        total = sum(in_channels)
        super().__init__(
            nn.Conv2d(total, total, kernel_size=1, bias=bias),
            nn.BatchNorm2d(total),
            nn.ReLU(inplace=True),
            nn.Conv2d(total, num_outputs, kernel_size=1, bias=True),
        )
        self.num_inputs = len(in_channels)
        self.biased = bias  # 'v2_bias'; not named 'bias', which reads as a parameter
        self.align_corners = align_corners

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        owner = "v2_bias" if self.biased else "v2"
        return super().forward(upsample_and_concat(features, self.num_inputs, self.align_corners, owner))

    def init_official_(self) -> None:
        # The face/seg code never touches conv biases (PyTorch default); the pose-style v2 zeroes them.
        init_official_(self, zero_bias=not self.biased)


class CoordinateClassificationHead(nn.Module):
    """SimCC head: 1x1 conv (bias) to one map per joint on branch 0, flattened, then linear layers to
    x and y logits; the two are concatenated along the last axis (x first)."""

    OPTIONS = ("input_size", "split_ratio")

    def __init__(self, in_channels: int, num_joints: int, input_size: InputSize, split_ratio: float = 2.0) -> None:
        super().__init__()
        if split_ratio <= 0:
            raise ValueError(f"head_options.split_ratio: expected a positive number, got {split_ratio}")
        height, width = input_size
        self.input_size = input_size
        self.feature_size = (math.ceil(height / 4), math.ceil(width / 4))  # branch 0: two stride-2 stem convs
        self.split_ratio = float(split_ratio)
        features = self.feature_size[0] * self.feature_size[1]
        self.conv = nn.Conv2d(in_channels, num_joints, kernel_size=1, bias=True)
        self.x_logits = nn.Linear(features, round(width * self.split_ratio))
        self.y_logits = nn.Linear(features, round(height * self.split_ratio))

    @classmethod
    def from_options(cls, in_channels: int, num_joints: int, options: Mapping[str, Any]) -> CoordinateClassificationHead:
        """Build from ``head_options``; unknown names and a missing input size raise naming them."""
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise ValueError(f"head_options: unknown option(s) {unknown} for head 'simcc' (expected some of {list(cls.OPTIONS)})")
        if options.get("input_size") is None:
            raise ValueError(
                "head_options.input_size: head 'simcc' sizes its linear layers from the network input "
                "(e.g. model.head_options.input_size=${data.input_size}; conf/recipe/simcc.yaml sets it)"
            )
        size = InputSize.parse(options["input_size"], "head_options.input_size")
        return cls(in_channels, num_joints, size, float(options.get("split_ratio", 2.0)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        maps = self.conv(features[0])
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if not tracing and tuple(maps.shape[-2:]) != self.feature_size:
            raise ValueError(
                f"head_options.input_size: head 'simcc' was built for {self.input_size} inputs (1/4 maps "
                f"{self.feature_size[0]}x{self.feature_size[1]}), got maps {maps.shape[-2]}x{maps.shape[-1]}"
            )
        flat = maps.flatten(2)
        return torch.cat([self.x_logits(flat), self.y_logits(flat)], dim=-1)

    def init_official_(self) -> None:
        # The conv as the official pose head (N(0, 0.001), bias 0); the linear layers keep PyTorch's init.
        init_official_(self.conv)


def refuse_both_counts(num_joints: int | None, num_classes: int | None) -> None:
    """The two names of the head's output count exclude each other."""
    if num_joints is not None and num_classes is not None:
        raise ValueError(
            f"num_classes: give num_joints (keypoint heatmaps) or num_classes (segmentation logits), "
            f"not both (got num_joints={num_joints}, num_classes={num_classes})"
        )


def output_count(head: str, num_joints: int | None, num_classes: int | None) -> int | None:
    """The head's number of output maps from ``num_joints`` (keypoint heatmaps) or ``num_classes``
    (segmentation logits): one of them, 17 when neither, ``None`` for the ``hrfpn`` neck."""
    refuse_both_counts(num_joints, num_classes)
    field, value = ("num_classes", num_classes) if num_classes is not None else ("num_joints", num_joints)
    if head == "hrfpn":
        if value is not None:
            raise ValueError(
                f"{field}: head 'hrfpn' is a feature-pyramid neck without per-joint or per-class maps "
                f"(its width is head_options.out_channels), got {field}={value}"
            )
        return None
    return positive_int(DEFAULT_NUM_JOINTS if value is None else value, field)


def make_head(
    head: str,
    in_channels: tuple[int, ...],
    num_outputs: int | None,
    align_corners: bool = False,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build the head named ``head`` (see :data:`HEADS`) for branch channels ``in_channels``;
    ``num_outputs`` from :func:`output_count`, ``options`` only for ``hrfpn`` and ``simcc``."""
    if head not in HEADS:
        raise ValueError(f"head: unknown head {head!r} (expected one of {list(HEADS)})")
    options = dict(options or {})
    if head == "hrfpn":
        return HRFPN.from_options(in_channels, options, align_corners)
    assert num_outputs is not None  # output_count gives a number for every head but hrfpn
    if head == "simcc":
        return CoordinateClassificationHead.from_options(in_channels[0], num_outputs, options)
    if options:
        raise ValueError(f"head_options: head {head!r} takes no options, got {sorted(options)}")
    if head == "v1":
        return SingleScaleHead(in_channels[0], num_outputs)
    return ConcatHead(in_channels, num_outputs, bias=head == "v2_bias", align_corners=align_corners)
