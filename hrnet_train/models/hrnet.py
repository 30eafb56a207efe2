"""HRNet (Sun et al., CVPR 2019) built from an :class:`~hrnet_train.models.spec.HRNetSpec`.

Module names and nesting reproduce the official ``lib/models/pose_hrnet.py`` exactly (``conv1, bn1,
conv2, bn2, layer1, transition1..3, stage2..4`` with ``branches``/``fuse_layers`` and ``None``
placeholders, ``final_layer``), so the official W32/W48 checkpoints load with a strict key check.
One deliberate difference, invisible for every official config: a transition that changes the
channels of an EXISTING branch is applied to that branch, where the official forward feeds it the
lowest-resolution map (spec 1.3, 9.13).
"""

from __future__ import annotations

import torch
from torch import nn

from hrnet_train.models.blocks import BLOCKS, BN_MOMENTUM, Block, conv3x3, init_official_, make_layer
from hrnet_train.models.heads import make_head
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
        upsample_mode: str,
    ) -> None:
        super().__init__()
        self.num_branches = len(num_channels)
        self.fuse_method = fuse_method  # only 'SUM' exists; stored like the official module
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            make_layer(block, in_channels[b], num_channels[b], num_blocks[b]) for b in range(self.num_branches)
        )
        self.out_channels = tuple(c * block.expansion for c in num_channels)
        self.fuse_layers = self._make_fuse_layers(upsample_mode) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self, upsample_mode: str) -> nn.ModuleList:
        channels = self.out_channels
        outputs = range(self.num_branches if self.multi_scale_output else 1)
        fuse_layers = nn.ModuleList()
        for i in outputs:
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:  # lower resolution -> higher: 1x1 conv at low resolution, then upsample
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            _upsample(2 ** (j - i), upsample_mode),
                        )
                    )
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
                y = y + (x[j] if i == j else row[j](x[j]))
            fused.append(self.relu(y))
        return fused


def _upsample(factor: int, mode: str) -> nn.Upsample:
    if mode == "nearest":
        return nn.Upsample(scale_factor=factor, mode="nearest")
    return nn.Upsample(scale_factor=factor, mode=mode, align_corners=False)


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


def make_stage(stage: StageSpec, in_channels: tuple[int, ...], multi_scale_output: bool, upsample_mode: str) -> nn.Sequential:
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
            upsample_mode,
        )
        in_channels = module.out_channels
        modules.append(module)
    return nn.Sequential(*modules)


class HRNet(nn.Module):
    """Top-down pose HRNet: stem, stage 1..4, heatmap head.

    ``multi_scale_output`` controls the last module of stage 4: ``None`` picks what the head
    needs (single-scale for 'v1' as official, multi-scale for 'v2'). With a single-scale last
    module :meth:`features` returns only the 1/4-resolution map; build with
    ``multi_scale_output=True`` to get every branch (adds ``stage4.<last>.fuse_layers.{1,2,3}``
    keys, as the ImageNet backbone has).
    """

    def __init__(
        self,
        spec: HRNetSpec,
        num_joints: int = 17,
        head: str = "v1",
        multi_scale_output: bool | None = None,
        init: str = "official",
    ) -> None:
        super().__init__()
        if multi_scale_output is None:
            multi_scale_output = head == "v2"
        if head == "v2" and not multi_scale_output:
            raise ValueError("multi_scale_output: head 'v2' concatenates every branch, so stage 4 must be multi-scale (true)")
        if init not in INITS:
            raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")
        self.spec = spec
        self.head_type = head
        self.num_joints = num_joints

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
            setattr(self, f"stage{index}", make_stage(stage, stage.out_channels, not is_last or multi_scale_output, spec.upsample_mode))
            channels = stage.out_channels
        self.feature_channels = channels if multi_scale_output else channels[:1]
        self.final_layer = make_head(head, self.feature_channels, num_joints)
        if init == "official":
            init_official_(self)

    @property
    def input_multiple(self) -> int:
        return self.spec.input_multiple

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ValueError unless both sides are divisible by the lowest branch's stride (32),
        without which the upsampled branches cannot be summed."""
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` normalised images -> ``[B, num_joints, H/4, W/4]`` raw heatmaps."""
        return self.final_layer(self.features(x))
