"""HRNetV2p: the pose-style HRNet backbone with four outputs and the HRFPN neck (face/seg spec C.1-C.2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_train.complexity import count_macs
from hrnet_train.models import HRFPN, create_model

# spec C.2: neck parameters (out 256, 5 levels) = 15w*256 + 256 + 5*(256*256*9 + 256).
NECK_PARAMS = {18: 3_019_776, 32: 3_073_536, 40: 3_104_256, 48: 3_134_976}
# Backbone (pose HRNet-W minus final_layer, plus the multi-scale stage4.2 fuse) + neck, counted.
MODEL_PARAMS = {18: 12_582_036, 32: 32_379_072, 40: 48_625_472, 48: 68_460_096}
# backbone = the pose model without final_layer, plus the 78 keys of the multi-scale stage4.2 fuse.
NECK_KEYS = {"neck.reduction_conv.conv.weight", "neck.reduction_conv.conv.bias"} | {
    f"neck.fpn_convs.{i}.conv.{p}" for i in range(5) for p in ("weight", "bias")
}


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _tiny_neck(seed: int, **options) -> nn.Module:
    torch.manual_seed(seed)
    options = {"out_channels": 16, **options}
    return create_model("hrnet_tiny", head="hrfpn", head_name="neck", head_options=options, init="pytorch").eval()


@pytest.mark.parametrize(("width", "params"), NECK_PARAMS.items())
def test_neck_params_and_keys(width: int, params: int) -> None:
    model = _meta(f"hrnetv2p_w{width}")
    assert sum(p.numel() for p in model.neck.parameters()) == params == 15 * width * 256 + 256 + 5 * (256 * 256 * 9 + 256)
    state = model.state_dict()
    pose = _meta(f"hrnet_w{width}").state_dict()
    neck = {k for k in state if k.startswith("neck.")}
    assert neck == NECK_KEYS
    backbone = set(state) - neck
    last_fuse = ("stage4.2.fuse_layers.1", "stage4.2.fuse_layers.2", "stage4.2.fuse_layers.3")
    assert backbone - set(pose) == {k for k in backbone if k.startswith(last_fuse)}
    assert len(backbone - set(pose)) == 78 and set(pose) - backbone == {"final_layer.weight", "final_layer.bias"}
    assert tuple(state["neck.reduction_conv.conv.weight"].shape) == (256, 15 * width, 1, 1)
    assert tuple(state["neck.fpn_convs.4.conv.weight"].shape) == (256, 256, 3, 3)
    assert sum(p.numel() for p in model.parameters()) == MODEL_PARAMS[width] and len(state) == 1842


def test_backbone_and_neck_macs() -> None:
    """Counted at mmdet's usual 800x1344 input (docs/hrnetv2_models.md); conv MACs only, so the
    neck's 3x3 convs are counted at every level and pooling/interpolation are free."""
    paper, true = count_macs(_meta("hrnetv2p_w18"), (800, 1344))
    assert paper == true == 127_763_502_048
    level_pixels = sum((200 // 2**i) * (336 // 2**i) for i in range(5))
    neck = 270 * 256 * 200 * 336 + 256 * 256 * 9 * level_pixels
    backbone, _ = count_macs(_meta("hrnet_w18", multi_scale_output=True), (800, 1344))
    assert true - backbone == neck - 18 * 17 * 200 * 336  # minus the pose model's final_layer (18 -> 17)


def test_pyramid_shapes_and_backbone_outputs() -> None:
    model = _meta("hrnetv2p_w18")
    x = torch.zeros(2, 3, 256, 320, device="meta")
    assert [tuple(f.shape) for f in model.features(x)] == [(2, 18, 64, 80), (2, 36, 32, 40), (2, 72, 16, 20), (2, 144, 8, 10)]
    levels = [tuple(level.shape[2:]) for level in model(x)]
    assert levels == [(64, 80), (32, 40), (16, 20), (8, 10), (4, 5)] and {level.shape[:2] for level in model(x)} == {(2, 256)}
    assert model.neck.strides == (4, 8, 16, 32, 64)


def test_backbone_is_pose_style() -> None:
    """Spec C.1: nearest scale-factor fusion, BN momentum 0.1, input divisible by 32."""
    model = _meta("hrnetv2p_w32")
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}
    upsamples = [m for m in model.modules() if isinstance(m, nn.Upsample)]
    assert {m.mode for m in upsamples} == {"nearest"} and {m.scale_factor for m in upsamples} == {2.0, 4.0, 8.0}
    assert model.input_multiple == 32
    with pytest.raises(ValueError, match="input_size: 250x320 .* must be divisible by 32"):
        model(torch.zeros(1, 3, 250, 320, device="meta"))


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_neck_matches_the_mmdet_formula(pooling: str, one_torch_thread: None) -> None:
    """Recomputed as mmdet writes it: scale-factor bilinear upsampling, concat, 1x1 conv, pooling
    with kernel = stride = 2**i, one 3x3 conv per level."""
    model = _tiny_neck(0, pooling=pooling.upper())  # mmdet spells the option 'AVG' / 'MAX'
    neck = model.neck
    with torch.no_grad():
        x = torch.randn(1, 3, 128, 96)
        features = model.features(x)
        levels = model(x)
        cat = torch.cat([features[0]] + [F.interpolate(f, scale_factor=2**i, mode="bilinear") for i, f in enumerate(features) if i], 1)
        reduced = F.conv2d(cat, neck.reduction_conv.conv.weight, neck.reduction_conv.conv.bias)
        pool = F.avg_pool2d if pooling == "avg" else F.max_pool2d
        pyramid = [reduced] + [pool(reduced, 2**i, 2**i) for i in range(1, 5)]
        expected = [F.conv2d(p, c.conv.weight, c.conv.bias, padding=1) for p, c in zip(pyramid, neck.fpn_convs)]
    assert [tuple(level.shape) for level in levels] == [(1, 16, 32, 24), (1, 16, 16, 12), (1, 16, 8, 6), (1, 16, 4, 3), (1, 16, 2, 1)]
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(levels, expected))


def test_pooling_option_changes_the_coarse_levels(one_torch_thread: None) -> None:
    avg, peak = _tiny_neck(1), _tiny_neck(1, pooling="max")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = avg(x), peak(x)
    assert torch.equal(a[0], b[0])  # level 0 is not pooled
    assert all((p - q).abs().max() > 1e-3 * p.abs().max() for p, q in zip(a[1:], b[1:]))


def test_neck_options() -> None:
    neck = HRFPN((18, 36, 72, 144), out_channels=128, num_outs=3)
    assert len(neck.fpn_convs) == 3 and neck.strides == (4, 8, 16)
    assert sum(p.numel() for p in neck.parameters()) == 270 * 128 + 128 + 3 * (128 * 128 * 9 + 128)
    model = _meta("hrnetv2p_w18", head_options={"num_outs": 4})  # merged into the variant's options
    assert len(model.neck.fpn_convs) == 4 and model.neck.out_channels == 256
    for options, message in (
        ({"pooling": "median"}, "head_options.pooling: expected one of ['avg', 'max'], got 'median'"),
        ({"num_outs": 0}, "head_options.num_outs: expected a positive integer, got 0"),
        ({"stride": 2}, "head_options: unknown option(s) ['stride'] for head 'hrfpn'"),
    ):
        with pytest.raises(ValueError) as excinfo:
            _meta("hrnetv2p_w18", head_options=options)
        assert message in str(excinfo.value)
    with pytest.raises(ValueError, match="num_classes: head 'hrfpn' is a feature-pyramid neck"):
        _meta("hrnetv2p_w18", num_classes=80)


def test_official_init_of_the_neck() -> None:
    """mmdet caffe2_xavier_init: kaiming-uniform a=1 (bound sqrt(3 / fan_in), std 1/sqrt(fan_in)), bias 0;
    the backbone keeps the official N(0, 0.001)."""
    torch.manual_seed(0)
    model = create_model("hrnetv2p_w18")
    convs = [model.neck.reduction_conv.conv] + [c.conv for c in model.neck.fpn_convs]
    for conv in convs:
        fan_in = conv.weight[0].numel()
        assert torch.count_nonzero(conv.bias) == 0
        assert conv.weight.abs().max() <= (3 / fan_in) ** 0.5
        assert abs(conv.weight.std().item() * fan_in**0.5 - 1) < 0.02
    backbone = torch.cat([m.weight.flatten() for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n[:4] != "neck"])
    assert abs(backbone.std().item() - 0.001) < 0.00002
