"""Residual blocks shared by HRNet and SimpleBaseline (PoseResNet).

Attribute names (``conv1, bn1, conv2, bn2, conv3, bn3, downsample``) follow the official
``lib/models/pose_hrnet.py`` / torchvision naming so official checkpoints load key for key
(spec 1.1). Both networks put the stride on the 3x3 conv of the bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

# Official BN_MOMENTUM (spec 1.1); equal to PyTorch's default, stated for clarity.
BN_MOMENTUM = 0.1


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (every HRNet conv except the final one is bias-free)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to ``planes * 4``, with a residual connection."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


Block = type[BasicBlock] | type[Bottleneck]

# Block names as written in the official yamls (``BLOCK: BASIC``); specs store them upper-case.
BLOCKS: dict[str, Block] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_layer(block: Block, inplanes: int, planes: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """A run of ``num_blocks`` blocks; block 0 gets a 1x1 projection when shape changes.

    Used for HRNet's ``layer1``, each HRNet branch and the ResNet layers, which all share this rule.
    """
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def init_official_(model: nn.Module, zero_bias: bool = True) -> None:
    """Official initialisation (spec 1.7, 1.10): conv/deconv weights N(0, 0.001), biases 0, BN 1/0.

    Applied in place; the official code does this before (optionally) loading ImageNet weights.
    ``zero_bias=False`` leaves conv biases at PyTorch's default, as the face/seg code does (A.6).
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, std=0.001)
            if module.bias is not None and zero_bias:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
