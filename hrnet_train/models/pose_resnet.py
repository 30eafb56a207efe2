"""SimpleBaseline / PoseResNet (Xiao et al., ECCV 2018), the official comparison rows (spec 1.10).

A ResNet (torchvision layer naming ``conv1, bn1, layer1..4``, written here without torchvision)
followed by stride-2 transposed convs (``deconv_layers.{0,3,6}`` + BN + ReLU) and a 1x1
``final_layer`` with bias, so official ``pose_resnet_*`` checkpoints load key for key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from hrnet_train.models.blocks import BN_MOMENTUM, BasicBlock, Block, Bottleneck, init_official_, make_layer
from hrnet_train.sizes import InputSize

# ResNet depth -> (block, blocks per layer) (He et al., CVPR 2016, Table 1).
RESNET_LAYOUTS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
# Transposed-conv kernel -> (padding, output_padding) that exactly doubles the size (official _get_deconv_cfg).
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


@dataclass(frozen=True)
class PoseResNetSpec:
    """ResNet depth plus the deconvolution head (official ``MODEL.EXTRA`` NUM_DECONV_* keys)."""

    depth: int = 50
    num_deconv_filters: tuple[int, ...] = (256, 256, 256)
    deconv_kernel: int = 4

    def __post_init__(self) -> None:
        if self.depth not in RESNET_LAYOUTS:
            raise ValueError(f"depth: expected one of {sorted(RESNET_LAYOUTS)}, got {self.depth!r}")
        filters = self.num_deconv_filters
        if isinstance(filters, (str, bytes)) or not isinstance(filters, Sequence) or not filters:
            raise ValueError(f"num_deconv_filters: expected a non-empty list of positive integers, got {filters!r}")
        for i, f in enumerate(filters):
            if isinstance(f, bool) or not isinstance(f, int) or f <= 0:
                raise ValueError(f"num_deconv_filters[{i}]: expected a positive integer, got {f!r}")
        object.__setattr__(self, "num_deconv_filters", tuple(filters))
        if self.deconv_kernel not in DECONV_PADDING:
            raise ValueError(f"deconv_kernel: expected one of {sorted(DECONV_PADDING)}, got {self.deconv_kernel!r}")

    @property
    def input_multiple(self) -> int:
        """The backbone has stride 32; the output is exactly H/4 only for multiples of 32."""
        return 32

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["num_deconv_filters"] = list(self.num_deconv_filters)
        return data

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base: PoseResNetSpec | None = None) -> PoseResNetSpec:
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - allowed)
        if unknown:
            raise ValueError(f"spec: unknown field(s) {unknown} (expected some of {sorted(allowed)})")
        data = {**(base.to_dict() if base is not None else {}), **dict(mapping)}
        return cls(**data)


class PoseResNet(nn.Module):
    """ResNet backbone + deconvolution head -> ``[B, num_joints, H/4, W/4]`` heatmaps."""

    def __init__(self, spec: PoseResNetSpec, num_joints: int = 17, init: str = "official") -> None:
        super().__init__()
        if num_joints <= 0:
            raise ValueError(f"num_joints: expected a positive integer, got {num_joints!r}")
        if init not in ("official", "pytorch"):
            raise ValueError(f"init: expected one of ['official', 'pytorch'], got {init!r}")
        self.spec = spec
        self.head_type = "v1"
        self.num_joints = num_joints
        block, layout = RESNET_LAYOUTS[spec.depth]

        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for index, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), layout), start=1):
            setattr(self, f"layer{index}", make_layer(block, channels, planes, num_blocks, stride=1 if index == 1 else 2))
            channels = planes * block.expansion

        padding, output_padding = DECONV_PADDING[spec.deconv_kernel]
        deconv: list[nn.Module] = []
        for filters in spec.num_deconv_filters:
            deconv += [
                nn.ConvTranspose2d(
                    channels, filters, kernel_size=spec.deconv_kernel, stride=2,
                    padding=padding, output_padding=output_padding, bias=False,
                ),
                nn.BatchNorm2d(filters, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            channels = filters
        self.deconv_layers = nn.Sequential(*deconv)
        self.feature_channels = (channels,)
        self.final_layer = nn.Conv2d(channels, num_joints, kernel_size=1, stride=1, padding=0)
        if init == "official":
            init_official_(self)

    @property
    def input_multiple(self) -> int:
        return self.spec.input_multiple

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ValueError unless both sides are divisible by 32 (the backbone stride)."""
        InputSize(height, width).check_multiple(self.input_multiple, "input_size")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 1/4-resolution map after the deconvolutions (one entry, for API parity with HRNet)."""
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input_size(int(x.shape[-2]), int(x.shape[-1]))
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return [self.deconv_layers(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.features(x)[0])
