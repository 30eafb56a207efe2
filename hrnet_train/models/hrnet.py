"""HRNet (Sun et al., CVPR 2019) built from an :class:`~hrnet_train.models.spec.HRNetSpec`.

Module names and nesting reproduce the official ``lib/models/pose_hrnet.py`` exactly (``conv1, bn1,
conv2, bn2, layer1, transition1..3, stage2..4`` with ``branches``/``fuse_layers`` and ``None``
placeholders, ``final_layer``), so the official W32/W48 checkpoints load with a strict key check.
The face, segmentation and detection HRNets have the same module tree (face/seg spec A.1, B.1, C.1);
what differs is data: the spec's BN momentum and fusion upsampling, a multi-scale last module and
the head (kind and attribute name: ``head``, ``last_layer``, ``neck``).
One deliberate difference, invisible for every official config: a transition that changes the
channels of an EXISTING branch is applied to that branch, where the official pose/face forward
feeds it the lowest-resolution map (spec 1.3, 9.13; the seg HRNet-OCR code does as we do, D.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hrnet_train.models.blocks import BLOCKS, BN_MOMENTUM, Block, conv3x3, init_official_, make_layer
from hrnet_train.models.heads import MULTI_SCALE_HEADS, make_head, output_count
from hrnet_train.models.spec import HRNetSpec, StageSpec
from hrnet_train.sizes import InputSize

INITS = ("official", "pytorch")


class HighResolutionModule(nn.Module):
    """Parallel branches followed by a full exchange (fusion) between resolutions (spec 1.4)."""

    def __init__(
        self,
        block: Block,
        num_blocks: tuple[int, ...],
        in_channels: tuple[int, ...],
        num_channels: tuple[int, ...],
        fuse_method: str,
        multi_scale_output: bool,
        spec: HRNetSpec,
    ) -> None:
        super().__init__()
        self.num_branches = len(num_channels)
        self.fuse_method = fuse_method  # only 'SUM' exists; stored like the official module
        self.multi_scale_output = multi_scale_output
        self.upsample_mode = spec.upsample_mode
        self.upsample_to_size = spec.upsample_to_size
        self.align_corners = spec.align_corners
        self.branches = nn.ModuleList(
            make_layer(block, in_channels[b], num_channels[b], num_blocks[b]) for b in range(self.num_branches)
        )
        self.out_channels = tuple(c * block.expansion for c in num_channels)
        self.fuse_layers = self._make_fuse_layers() if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self) -> nn.ModuleList:
        channels = self.out_channels
        outputs = range(self.num_branches if self.multi_scale_output else 1)
        fuse_layers = nn.ModuleList()
        for i in outputs:
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:  # lower resolution -> higher: 1x1 conv at low resolution, then upsample
                    layers = [nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False), nn.BatchNorm2d(channels[i])]
                    if not self.upsample_to_size:  # else resized in forward (same keys: no parameters)
                        layers.append(self._upsample(2 ** (j - i)))
                    row.append(nn.Sequential(*layers))
                elif j == i:
                    row.append(None)
                else:  # higher resolution -> lower: (i - j) stride-2 3x3 convs, ReLU between them
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = channels[i] if last else channels[j]
                        layers = [conv3x3(channels[j], out, stride=2), nn.BatchNorm2d(out)]
                        if not last:
                            layers.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*layers))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(row)
        return fuse_layers

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        if self.fuse_layers is None:
            return x
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(1, self.num_branches):
                if j == i:
                    y = y + x[j]
                elif j > i:
                    y = y + self._upsampled(row[j](x[j]), x[i])
                else:
                    y = y + row[j](x[j])
            fused.append(self.relu(y))
        return fused

    def _align_corners(self) -> bool | None:
        return None if self.upsample_mode == "nearest" else self.align_corners  # nearest takes no align_corners

    def _upsample(self, factor: int) -> nn.Upsample:
        return nn.Upsample(scale_factor=factor, mode=self.upsample_mode, align_corners=self._align_corners())

    def _upsampled(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Size-matched fusion (face/seg code): interpolate a lower branch to ``target``'s exact size;
        with scale-factor fusion the fuse Sequential has upsampled already."""
        if not self.upsample_to_size:
            return z
        return F.interpolate(z, size=target.shape[-2:], mode=self.upsample_mode, align_corners=self._align_corners())


def make_transition(pre: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """Official ``_make_transition_layer`` (spec 1.3): adapt channels of existing branches
    (``None`` when unchanged) and grow each new branch from the lowest-resolution one by
    stride-2 3x3 convs."""
    transition = nn.ModuleList()
    for i, channels in enumerate(cur):
        if i < len(pre):
            if channels == pre[i]:
                transition.append(None)
            else:
                transition.append(nn.Sequential(conv3x3(pre[i], channels), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)))
            continue
        steps = []
        for k in range(i + 1 - len(pre)):
            out = channels if k == i - len(pre) else pre[-1]
            steps.append(nn.Sequential(conv3x3(pre[-1], out, stride=2), nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
        transition.append(nn.Sequential(*steps))
    return transition


def make_stage(stage: StageSpec, in_channels: tuple[int, ...], multi_scale_output: bool, spec: HRNetSpec) -> nn.Sequential:
    """``num_modules`` HighResolutionModules; only the last one may be single-scale (spec 1.6)."""
    modules = []
    for m in range(stage.num_modules):
        module = HighResolutionModule(
            BLOCKS[stage.block],
            stage.num_blocks,
            in_channels,
            stage.num_channels,
            stage.fuse_method,
            multi_scale_output or m < stage.num_modules - 1,
            spec,
        )
        in_channels = module.out_channels
        modules.append(module)
    return nn.Sequential(*modules)


class HRNet(nn.Module):
    """HRNet: stem, stages 1..4 and one head, all determined by the spec and the head options.

    ``head`` (see :mod:`hrnet_train.models.heads`) is registered as the attribute ``head_name``
    (official keys: pose ``final_layer``, face ``head``, segmentation ``last_layer``, HRNetV2p
    ``neck``). ``num_joints`` (keypoint heatmaps) or ``num_classes`` (segmentation logits), not
    both, sets the head's outputs (17 when neither; the ``hrfpn`` neck takes neither, its options
    go in ``head_options``). ``multi_scale_output`` controls the last module of stage 4: ``None``
    picks what the head needs (single-scale for 'v1' as official, multi-scale for the heads that
    read every branch). With a single-scale last module :meth:`features` returns only the
    1/4-resolution map; build with ``multi_scale_output=True`` to get every branch (adds
    ``stage4.<last>.fuse_layers.{1,2,3}`` keys, as the ImageNet, face and seg nets have).
    ``init``: 'official' = the initialisation of the code each part comes from (N(0, 0.001) convs,
    head-specific biases, see the heads), 'pytorch' = PyTorch defaults.
    """

    def __init__(
        self,
        spec: HRNetSpec,
        num_joints: int | None = None,
        head: str = "v1",
        multi_scale_output: bool | None = None,
        init: str = "official",
        *,
        num_classes: int | None = None,
        head_name: str = "final_layer",
        head_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        num_outputs = output_count(head, num_joints, num_classes)
        if multi_scale_output is None:
            multi_scale_output = head in MULTI_SCALE_HEADS
        if head in MULTI_SCALE_HEADS and not multi_scale_output:
            raise ValueError(f"multi_scale_output: head {head!r} reads every branch, so stage 4 must be multi-scale (true)")
        if init not in INITS:
            raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")
        self.spec = spec
        self.head_type = head
        self.head_name = head_name
        self.num_joints = num_outputs if num_classes is None else None
        self.num_classes = num_classes

        stem = spec.stem_channels
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(stem, stem, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(BLOCKS[spec.stage1.block], stem, spec.stage1.num_channels, spec.stage1.num_blocks)

        channels: tuple[int, ...] = (spec.stage1.out_channels,)
        for index, stage in enumerate(spec.stages, start=2):
            setattr(self, f"transition{index - 1}", make_transition(channels, stage.out_channels))
            is_last = index == 4
            setattr(self, f"stage{index}", make_stage(stage, stage.out_channels, not is_last or multi_scale_output, spec))
            channels = stage.out_channels
        self.feature_channels = channels if multi_scale_output else channels[:1]
        head_module = make_head(head, self.feature_channels, num_outputs, spec.align_corners, head_options)
        if not (isinstance(head_name, str) and head_name.isidentifier()) or hasattr(self, head_name):
            raise ValueError(f"head_name: expected an identifier that is not already an HRNet attribute, got {head_name!r}")
        setattr(self, head_name, head_module)  # registered last: the official init visits it last
        if init == "official":
            for child in self.children():
                if child is not head_module:
                    init_official_(child)
            head_module.init_official_()
        for module in self.modules():  # one momentum for every BN, as the official code passes one constant
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = spec.bn_momentum

    @property
    def input_multiple(self) -> int:
        return self.spec.input_multiple

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ValueError unless both sides are divisible by :attr:`input_multiple` (32 with
        scale-factor fusion, whose upsampled branches cannot be summed otherwise; 1 size-matched)."""
        InputSize(height, width).check_multiple(self.input_multiple, "input_size")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Branch outputs of the last stage, highest resolution (1/4) first."""
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input_size(int(x.shape[-2]), int(x.shape[-1]))
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y_list = [self.layer1(x)]
        for index in (2, 3, 4):
            transition: nn.ModuleList = getattr(self, f"transition{index - 1}")
            x_list = []
            for i, step in enumerate(transition):
                source = y_list[i] if i < len(y_list) else y_list[-1]
                x_list.append(source if step is None else step(source))
            y_list = getattr(self, f"stage{index}")(x_list)
        return y_list

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """``[B, 3, H, W]`` normalised images -> ``[B, K, H/4, W/4]`` raw heatmaps or logits
        (ceil(H/4) x ceil(W/4) for sizes size-matched fusion allows); the ``hrfpn`` neck returns
        its list of ``num_outs`` pyramid levels (strides 4, 8, .., 4 * 2**(num_outs - 1))."""
        return getattr(self, self.head_name)(self.features(x))
