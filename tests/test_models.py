"""Model zoo: official key sets and parameter counts, heads, spec validation, loading, configs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from hrnet_train.models import (
    HRNet,
    HRNetSpec,
    create_model,
    hrnet_spec,
    list_models,
    load_official_state_dict,
    load_pretrained_backbone,
    model_config,
)
from hrnet_train.paths import config_dir

# spec 1.8: per-prefix state_dict entry counts of the official W32 (identical for W48).
OFFICIAL_PREFIX_COUNTS = {
    "stage4": 786, "stage3": 744, "stage2": 108, "layer1": 78, "transition1": 12, "transition2": 6,
    "transition3": 6, "bn1": 5, "bn2": 5, "conv1": 1, "conv2": 1, "final_layer": 2,
}
# spec 1.8 representative keys of W32 (out, in, k, k).
W32_KEY_SHAPES = {
    "conv1.weight": (64, 3, 3, 3),
    "conv2.weight": (64, 64, 3, 3),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_var": (256,),
    "transition1.0.0.weight": (32, 256, 3, 3),
    "transition1.1.0.0.weight": (64, 256, 3, 3),
    "transition2.2.0.0.weight": (128, 64, 3, 3),
    "transition3.3.0.0.weight": (256, 128, 3, 3),
    "stage2.0.branches.0.0.conv1.weight": (32, 32, 3, 3),
    "stage2.0.branches.1.3.bn2.weight": (64,),
    "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
    "stage2.0.fuse_layers.0.1.1.weight": (32,),
    "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),
    "stage3.0.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),
    "stage3.0.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
    "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
    "final_layer.weight": (17, 32, 1, 1),
    "final_layer.bias": (17,),
}


@pytest.fixture(scope="module")
def w32() -> nn.Module:
    return create_model("hrnet_w32", num_joints=17, head="v1")


def _trained_tiny(seed: int, **kwargs) -> nn.Module:
    """hrnet_tiny with non-trivial weights and BN statistics (so a wrong load cannot go unnoticed)."""
    torch.manual_seed(seed)
    model = create_model("hrnet_tiny", init="pytorch", **kwargs)
    with torch.no_grad():
        model.train()
        model(torch.randn(2, 3, 64, 64))
    return model.eval()


def test_hrnet_w32_has_the_official_state_dict(w32: nn.Module) -> None:
    state = w32.state_dict()
    assert len(state) == 1754
    assert Counter(k.split(".", 1)[0] for k in state) == OFFICIAL_PREFIX_COUNTS
    assert {k: tuple(state[k].shape) for k in W32_KEY_SHAPES} == W32_KEY_SHAPES
    assert sum(p.numel() for p in w32.parameters()) == 28_536_113
    assert sum(p.numel() for p in w32.parameters()) - sum(t.numel() for k, t in state.items() if "running" in k) > 0
    assert sum(1 for m in w32.modules() if isinstance(m, nn.Conv2d)) == 293
    assert sum(1 for m in w32.modules() if isinstance(m, nn.BatchNorm2d)) == 292
    # stage 4's last module is single-scale: fusion only into output 0, no keys for outputs 1..3
    assert not any(k.startswith(("stage4.2.fuse_layers.1", "stage4.2.fuse_layers.3")) for k in state)
    assert [k for k in state if k.startswith("stage4.1.fuse_layers.3.2")][:1] == ["stage4.1.fuse_layers.3.2.0.0.weight"]
    # None placeholders keep the official indices
    assert w32.transition2[0] is None and w32.transition2[1] is None and w32.stage2[0].fuse_layers[0][0] is None


def test_hrnet_w48_key_set_is_w32_with_wider_channels(w32: nn.Module) -> None:
    w48 = create_model("hrnet_w48")
    state = w48.state_dict()
    assert list(state) == list(w32.state_dict())
    assert sum(p.numel() for p in w48.parameters()) == 63_595_745
    assert tuple(state["transition1.0.0.weight"].shape) == (48, 256, 3, 3)
    assert tuple(state["stage4.2.fuse_layers.0.3.0.weight"].shape) == (48, 384, 1, 1)
    assert tuple(state["final_layer.weight"].shape) == (17, 48, 1, 1)


def test_hrnet_w32_output_shape_256x192(w32: nn.Module) -> None:
    w32.eval()
    with torch.no_grad():
        out = w32(torch.randn(1, 3, 256, 192))
    assert out.shape == (1, 17, 64, 48)


@pytest.mark.parametrize("size", [(256, 192), (384, 288)])
def test_tiny_output_is_quarter_resolution(size: tuple[int, int]) -> None:
    model = create_model("hrnet_tiny", num_joints=14).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 14, size[0] // 4, size[1] // 4)


def test_registered_variants_and_param_counts() -> None:
    names = list_models()
    for required in ("hrnet_w18_small_v1", "hrnet_w18_small_v2", "hrnet_w18", "hrnet_w32", "hrnet_w48", "hrnet_tiny",
                     "pose_resnet_50", "pose_resnet_101", "pose_resnet_152"):
        assert required in names
    with torch.device("meta"):
        counts = {n: sum(p.numel() for p in create_model(n).parameters()) for n in
                  ("pose_resnet_50", "pose_resnet_101", "pose_resnet_152", "hrnet_tiny")}
    assert counts == {"pose_resnet_50": 33_999_697, "pose_resnet_101": 52_991_825,
                      "pose_resnet_152": 68_635_473, "hrnet_tiny": 221_081}  # derived by hand from the spec


def test_variants_are_derived_from_one_width() -> None:
    spec = create_model("hrnet_w18_small_v2").spec
    assert spec.stage4.num_channels == (18, 36, 72, 144)
    assert spec.stage3.num_modules == 3 and spec.stage4.num_modules == 2 and spec.stage4.num_blocks == (2, 2, 2, 2)
    assert (spec.stage1.num_blocks, spec.stage1.num_channels) == (2, 64)
    small = create_model("hrnet_w18_small_v1").spec
    assert (small.stage1.num_blocks, small.stage1.num_channels, small.stage2.num_channels) == (1, 32, (16, 32))


def test_pose_resnet_official_key_names() -> None:
    model = create_model("pose_resnet_50").eval()
    state = model.state_dict()
    assert tuple(state["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(state["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(state["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
    assert [k for k in state if k.startswith("deconv_layers") and k.endswith("weight")] == [
        "deconv_layers.0.weight", "deconv_layers.1.weight", "deconv_layers.3.weight",
        "deconv_layers.4.weight", "deconv_layers.6.weight", "deconv_layers.7.weight",
    ]
    assert tuple(state["deconv_layers.0.weight"].shape) == (2048, 256, 4, 4)
    assert tuple(state["final_layer.weight"].shape) == (17, 256, 1, 1) and "final_layer.bias" in state
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 192)).shape == (1, 17, 64, 48)


def test_create_model_from_config_dict_matches_name() -> None:
    by_name = create_model("hrnet_tiny", num_joints=5)
    by_dict = create_model({"name": "hrnet_tiny", "num_joints": 5, "_target_": "ignored"})
    by_spec = create_model({"arch": "hrnet", "spec": model_config("hrnet_tiny")["spec"]}, num_joints=5)
    keys = {k: tuple(v.shape) for k, v in by_name.state_dict().items()}
    assert keys == {k: tuple(v.shape) for k, v in by_dict.state_dict().items()}
    assert keys == {k: tuple(v.shape) for k, v in by_spec.state_dict().items()}
    overridden = create_model("hrnet_tiny", spec={"stage3": {"num_modules": 2}})
    assert len(overridden.stage3) == 2 and overridden.spec.stage3.num_channels == (8, 16, 32)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"stage3": {"num_channels": [32, 64]}}, "stage3.num_channels: expected 3 entries (num_branches), got 2"),
        ({"stage2": {"num_blocks": [4, 4, 4]}}, "stage2.num_blocks: expected 2 entries (num_branches), got 3"),
        ({"stage4": {"num_channels": [8, 16, 0, 64]}}, "stage4.num_channels[2]: expected a positive integer, got 0"),
        ({"stage2": {"block": "DENSE"}}, "stage2.block: unknown block type 'DENSE'"),
        ({"stage1": {"block": "WIDE"}}, "stage1.block: unknown block type 'WIDE'"),
        ({"stage3": {"fuse_method": "CONCAT"}}, "stage3.fuse_method: unknown fuse method 'CONCAT'"),
        ({"stage3": {"num_modules": 0}}, "stage3.num_modules: expected a positive integer, got 0"),
        ({"stem_channels": -1}, "stem_channels: expected a positive integer, got -1"),
        ({"upsample_mode": "bicubic"}, "upsample_mode: expected one of ['nearest', 'bilinear']"),
        ({"stage3": {"widths": [1]}}, "stage3: unknown field(s) ['widths']"),
        ({"stage4": {"num_branches": 2, "num_blocks": [1, 1], "num_channels": [8, 16]}}, "stage4.num_branches: must not drop branches"),
    ],
)
def test_spec_validation_names_the_field(override: dict, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        create_model("hrnet_tiny", spec=override)
    assert message in str(excinfo.value)


def test_bad_model_arguments_raise() -> None:
    with pytest.raises(ValueError, match="model: unknown model 'hrnet_w33'"):
        create_model("hrnet_w33")
    with pytest.raises(ValueError, match="head: unknown head 'v3'"):
        create_model("hrnet_tiny", head="v3")
    with pytest.raises(ValueError, match="multi_scale_output: head 'v2'"):
        create_model("hrnet_tiny", head="v2", multi_scale_output=False)
    with pytest.raises(ValueError, match="head: pose_resnet models"):
        create_model("pose_resnet_50", head="v2")
    with pytest.raises(ValueError, match="depth: expected one of"):
        create_model("pose_resnet_50", spec={"depth": 42})


@pytest.mark.parametrize("size", [(250, 192), (256, 200)])
def test_input_size_must_be_divisible_by_32(size: tuple[int, int]) -> None:
    model = create_model("hrnet_tiny")
    with pytest.raises(ValueError, match=rf"input_size: {size[0]}x{size[1]} \(height x width\) must be divisible by 32"):
        model(torch.zeros(1, 3, *size))
    with pytest.raises(ValueError, match="must be divisible by 32"):
        create_model("pose_resnet_50").check_input_size(*size)


def test_official_initialisation() -> None:
    torch.manual_seed(0)
    model = create_model("hrnet_tiny")
    conv_weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert abs(conv_weights.std().item() - 0.001) < 0.00002
    assert abs(conv_weights.mean().item()) < 0.00002
    assert torch.count_nonzero(model.final_layer.bias) == 0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_features_and_v2_head() -> None:
    model = create_model("hrnet_tiny", head="v2", num_joints=17).eval()
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        features = model.features(x)
        out = model(x)
    assert [tuple(f.shape) for f in features] == [(1, 8, 32, 24), (1, 16, 16, 12), (1, 32, 8, 6), (1, 64, 4, 3)]
    assert out.shape == (1, 17, 32, 24)
    head_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("final_layer") and "num_batches" not in k}
    assert head_shapes == {
        "final_layer.0.weight": (120, 120, 1, 1), "final_layer.1.weight": (120,), "final_layer.1.bias": (120,),
        "final_layer.1.running_mean": (120,), "final_layer.1.running_var": (120,),
        "final_layer.3.weight": (17, 120, 1, 1), "final_layer.3.bias": (17,),
    }
    # v2 forces a multi-scale last module: fusion into every output of stage4's last module
    assert "stage1" not in head_shapes and len(model.stage4[-1].fuse_layers) == 4
    v1 = create_model("hrnet_tiny").eval()
    with torch.no_grad():
        assert [tuple(f.shape) for f in v1.features(x)] == [(1, 8, 32, 24)]
    multi = create_model("hrnet_tiny", multi_scale_output=True).eval()
    with torch.no_grad():
        assert len(multi.features(x)) == 4 and multi(x).shape == (1, 17, 32, 24)


def test_bilinear_upsample_option_changes_only_the_fusion() -> None:
    nearest = _trained_tiny(1)
    bilinear = create_model("hrnet_tiny", init="pytorch", spec={"upsample_mode": "bilinear"}).eval()
    load_official_state_dict(bilinear, nearest.state_dict())
    modes = {m.mode for m in bilinear.modules() if isinstance(m, nn.Upsample)}
    assert modes == {"bilinear"}
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        a, b = nearest(x), bilinear(x)
    assert a.shape == b.shape == (1, 17, 32, 24) and not torch.allclose(a, b)


def test_generic_specs_build_and_run() -> None:
    """Channel-changing transitions of existing branches (official forward bug 9.13) and
    bottleneck branches work."""
    spec = hrnet_spec(8, num_modules=(1, 1, 1), num_blocks=1, stage1_blocks=1, stage1_channels=16, stem_channels=16)
    changed = HRNetSpec.from_mapping(
        {"stage3": {"num_channels": [12, 24, 48]}, "stage4": {"block": "bottleneck", "num_channels": [4, 8, 12, 16]}},
        base=spec,
    )
    model = HRNet(changed, num_joints=3).eval()
    assert model.transition2[0] is not None and tuple(model.transition2[0][0].weight.shape) == (12, 8, 3, 3)
    assert tuple(model.final_layer.weight.shape) == (3, 16, 1, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 16, 16)


def test_strict_load_round_trip(tmp_path: Path) -> None:
    source = _trained_tiny(2)
    path = tmp_path / "model_best.pth"
    torch.save(source.state_dict(), path)
    fresh = create_model("hrnet_tiny").eval()
    load_official_state_dict(fresh, path)
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(source(x), fresh(x))


def test_load_strips_module_prefix_and_unwraps_state_dict(tmp_path: Path) -> None:
    source = _trained_tiny(3)
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    fresh = create_model("hrnet_tiny")
    load_official_state_dict(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), source.state_dict().values()))


def test_mismatching_checkpoint_raises_with_listing(tmp_path: Path) -> None:
    state = create_model("hrnet_tiny", num_joints=14).state_dict()
    del state["conv1.weight"]
    state["classifier.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as excinfo:
        load_official_state_dict(create_model("hrnet_tiny", num_joints=17), path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: does not match HRNet:")
    assert "missing (1):\n    conv1.weight" in message
    assert "unexpected (1):\n    classifier.weight" in message
    assert "shape mismatch (2):\n    final_layer.weight: checkpoint (14, 8, 1, 1) vs model (17, 8, 1, 1)" in message
    with pytest.raises(ValueError) as excinfo:
        load_official_state_dict(create_model("hrnet_w18_small_v1"), create_model("hrnet_tiny").state_dict())
    message = str(excinfo.value)
    assert "missing (" in message and "... and " in message and message.count("\n    ") > 10
    with pytest.raises(FileNotFoundError, match="nowhere.pth: checkpoint file not found"):
        load_official_state_dict(create_model("hrnet_tiny"), tmp_path / "nowhere.pth")


def test_pretrained_backbone_ignores_classifier_keys() -> None:
    imagenet = _trained_tiny(4, multi_scale_output=True)  # like cls_hrnet: stage4's last module multi-scale
    state = {**imagenet.state_dict(), "classifier.weight": torch.zeros(1000, 2048)}
    state.pop("final_layer.weight")
    model = create_model("hrnet_tiny")
    head_before = model.final_layer.weight.clone()
    loaded = load_pretrained_backbone(model, state)
    assert len(loaded.loaded) == len(model.state_dict()) - 2  # everything except final_layer.{weight,bias}
    assert loaded.fresh == ("final_layer.bias", "final_layer.weight")
    assert torch.equal(model.final_layer.weight, head_before)
    assert torch.equal(model.stage4[0].branches[3][0].conv1.weight, imagenet.stage4[0].branches[3][0].conv1.weight)
    del state["stage3.0.branches.0.0.conv1.weight"]
    with pytest.raises(ValueError, match=r"missing \(1\):\n    stage3.0.branches.0.0.conv1.weight"):
        load_pretrained_backbone(create_model("hrnet_tiny"), state)


def test_model_yaml_configs_match_the_registry() -> None:
    for name in list_models():
        path = config_dir() / "model" / f"{name}.yaml"
        assert yaml.safe_load(path.read_text()) == model_config(name), path


def test_hydra_instantiation_with_cli_override() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(overrides=["+model=hrnet_tiny", "model.spec.stage3.num_modules=2", "model.head=v2"])
    model = instantiate(cfg.model, num_joints=14)
    assert isinstance(model, HRNet) and len(model.stage3) == 2 and model.head_type == "v2"
    assert tuple(model.final_layer[3].weight.shape) == (14, 120, 1, 1)
