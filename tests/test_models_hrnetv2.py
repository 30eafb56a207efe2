"""HRNetV2 face and segmentation models (face/seg spec A.1-A.6, B.1-B.5, D, E): official key sets,
parameter counts and GMACs, BN momentum, size-matched bilinear fusion, the biased concat head,
face == seg equivalence, FullModel / pickled-module checkpoints."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from hrnet_train.complexity import complexity_report, count_macs, main
from hrnet_train.models import create_model, hrnet_spec, load_official_state_dict, model_config, resolve_spec
from hrnet_train.models.blocks import BasicBlock
from hrnet_train.models.hrnet import HighResolutionModule

# spec A.5 / E: face HRNetV2-W18 parameters by landmark count (WFLW, 300W, COFW, AFLW).
FACE_PARAMS = {98: 9_662_528, 68: 9_654_398, 29: 9_643_829, 19: 9_641_119}
# spec B.4 / E: segmentation models with 19 classes -> (params, state_dict keys).
SEG_SIZES = {
    "hrnet_w48_seg": (65_859_379, 1839),
    "hrnet_w18_small_v1_seg": (1_540_819, 435),
    "hrnet_w18_small_v2_seg": (3_939_579, 873),
    "hrnet_w18_seg": (9_641_119, 1839),
}
# spec A.3: the face head keys for WFLW.
FACE_HEAD_SHAPES = {
    "head.0.weight": (270, 270, 1, 1), "head.0.bias": (270,), "head.1.weight": (270,), "head.1.bias": (270,),
    "head.1.running_mean": (270,), "head.1.running_var": (270,), "head.1.num_batches_tracked": (),
    "head.3.weight": (98, 270, 1, 1), "head.3.bias": (98,),
}
# spec A.4: conv weights of the 78 extra keys stage4.2.fuse_layers.{1,2,3} (each conv followed by a BN).
EXTRA_FUSE_CONVS = {
    "stage4.2.fuse_layers.1.0.0.0.weight": (36, 18, 3, 3),
    "stage4.2.fuse_layers.1.2.0.weight": (36, 72, 1, 1),
    "stage4.2.fuse_layers.1.3.0.weight": (36, 144, 1, 1),
    "stage4.2.fuse_layers.2.0.0.0.weight": (18, 18, 3, 3),
    "stage4.2.fuse_layers.2.0.1.0.weight": (72, 18, 3, 3),
    "stage4.2.fuse_layers.2.1.0.0.weight": (72, 36, 3, 3),
    "stage4.2.fuse_layers.2.3.0.weight": (72, 144, 1, 1),
    "stage4.2.fuse_layers.3.0.0.0.weight": (18, 18, 3, 3),
    "stage4.2.fuse_layers.3.0.1.0.weight": (18, 18, 3, 3),
    "stage4.2.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
    "stage4.2.fuse_layers.3.1.0.0.weight": (36, 36, 3, 3),
    "stage4.2.fuse_layers.3.1.1.0.weight": (144, 36, 3, 3),
    "stage4.2.fuse_layers.3.2.0.0.weight": (144, 72, 3, 3),
}
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# The face/seg fusion settings on the test-size net (so real forward passes stay cheap).
V2_TINY_SPEC = {"bn_momentum": 0.01, "upsample_mode": "bilinear", "upsample_to_size": True, "align_corners": False}


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _v2_tiny(seed: int, **kwargs) -> nn.Module:
    """hrnet_tiny with the face/seg options, random weights and trained BN statistics."""
    torch.manual_seed(seed)
    options = {"head": "v2_bias", "head_name": "last_layer", "num_classes": 5, "spec": V2_TINY_SPEC, **kwargs}
    model = create_model("hrnet_tiny", init="pytorch", **options)
    with torch.no_grad():
        model.train()
        model(torch.randn(2, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def face_and_seg_w18() -> tuple[nn.Module, nn.Module]:
    """The AFLW face model (19 points) and the 19-class segmentation W18: same shapes throughout."""
    torch.manual_seed(0)
    return create_model("hrnet_w18_face", num_joints=19).eval(), create_model("hrnet_w18_seg").eval()


# --- sizes and keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_joints", "params"), FACE_PARAMS.items())
def test_face_w18_params_and_keys(num_joints: int, params: int) -> None:
    model = _meta("hrnet_w18_face", num_joints=num_joints)
    assert _params(model) == params
    assert len(model.state_dict()) == 1839
    assert params == 9_562_260 + 73_710 + 271 * num_joints  # spec A.5: backbone + head 73,710 + 271 K


def test_face_w18_head_keys_and_output_shape() -> None:
    model = _meta("hrnet_w18_face")
    shapes = _shapes(model)
    assert {k: v for k, v in shapes.items() if k.startswith("head.")} == FACE_HEAD_SHAPES
    assert not any(k.startswith("final_layer") for k in shapes)
    assert model(torch.zeros(1, 3, 256, 256, device="meta")).shape == (1, 98, 64, 64)


def test_face_keys_are_pose_keys_plus_head_and_last_fuse() -> None:
    face, pose = _shapes(_meta("hrnet_w18_face")), _shapes(_meta("hrnet_w18"))
    assert len(pose) == 1754
    assert sorted(set(pose) - set(face)) == ["final_layer.bias", "final_layer.weight"]
    extra = set(face) - set(pose)
    head = {k for k in extra if k.startswith("head.")}
    fuse = extra - head
    assert len(head) == 9 and len(fuse) == 78
    expected_fuse = set(EXTRA_FUSE_CONVS)
    for conv in EXTRA_FUSE_CONVS:  # each conv's BN sits at the same prefix with index .1
        expected_fuse |= {f"{conv.removesuffix('0.weight')}1.{key}" for key in BN_KEYS}
    assert fuse == expected_fuse
    assert {k: face[k] for k in EXTRA_FUSE_CONVS} == EXTRA_FUSE_CONVS
    assert all(face[k] == pose[k] for k in set(face) & set(pose))


def test_pose_v2_head_lacks_only_the_first_conv_bias() -> None:
    pose_v2, face = _meta("hrnet_w18", head="v2", num_joints=98), _meta("hrnet_w18_face")
    assert (_params(pose_v2), len(pose_v2.state_dict())) == (9_662_258, 1838)
    assert _params(face) - _params(pose_v2) == 270  # the official head.0.bias
    renamed = {k.replace("final_layer.", "head.", 1) for k in pose_v2.state_dict()}
    assert set(face.state_dict()) - renamed == {"head.0.bias"}


@pytest.mark.parametrize("name", SEG_SIZES)
def test_segmentation_params_keys_and_logits(name: str) -> None:
    model = _meta(name)
    assert (_params(model), len(model.state_dict())) == SEG_SIZES[name]
    channels = sum(model.feature_channels)
    last = {k: v for k, v in _shapes(model).items() if k.startswith("last_layer.")}
    assert last["last_layer.0.weight"] == (channels, channels, 1, 1) and last["last_layer.0.bias"] == (channels,)
    assert last["last_layer.3.weight"] == (19, channels, 1, 1) and last["last_layer.3.bias"] == (19,)
    assert len(last) == 9
    assert model(torch.zeros(1, 3, 512, 1024, device="meta")).shape == (1, 19, 128, 256)


def test_segmentation_concat_widths_and_stage1() -> None:
    widths = {name: sum(_meta(name).feature_channels) for name in SEG_SIZES}
    assert widths == {"hrnet_w48_seg": 720, "hrnet_w18_small_v1_seg": 240, "hrnet_w18_small_v2_seg": 270, "hrnet_w18_seg": 270}
    small = _shapes(_meta("hrnet_w18_small_v1_seg"))  # spec B.2: layer1 = BOTTLENECK x1, 32 planes -> 128
    assert small["layer1.0.conv3.weight"] == (128, 32, 1, 1) and "layer1.1.conv1.weight" not in small
    assert small["transition1.0.0.weight"] == (16, 128, 3, 3)


@pytest.mark.parametrize(("size", "logits"), [((513, 1023), (129, 256)), ((97, 65), (25, 17)), ((30, 30), (8, 8))])
def test_segmentation_takes_any_input_size(size: tuple[int, int], logits: tuple[int, int]) -> None:
    """Size-matched fusion: logits are ceil(H/4) x ceil(W/4); the spec's input_multiple says 1."""
    assert _meta("hrnet_w48_seg").eval()(torch.zeros(1, 3, *size, device="meta")).shape == (1, 19, *logits)
    assert resolve_spec("hrnet_w48_seg")[1].input_multiple == 1
    assert resolve_spec("hrnet_w18_face")[1].input_multiple == 1
    assert resolve_spec("hrnet_w48")[1].input_multiple == 32  # pose: scale-factor fusion


def test_odd_input_real_forward(one_torch_thread: None) -> None:
    model = _v2_tiny(0)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 97)).shape == (1, 5, 17, 25)


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "momentum", "count"),
    [
        ("hrnet_w32", {}, 0.1, 292),
        ("hrnet_w18_face", {}, 0.01, 306),
        ("hrnet_w48_seg", {}, 0.01, 306),
        ("hrnet_w18_small_v1_seg", {}, 0.01, 72),
        ("hrnet_w18_small_v2_seg", {}, 0.01, 145),
        ("hrnet_w48_seg", {"spec": {"bn_momentum": 0.1, "align_corners": True}}, 0.1, 306),  # HRNet-OCR seg code
        ("hrnetv2p_w18", {}, 0.1, 305),
    ],
)
def test_every_bn_momentum(name: str, kwargs: dict, momentum: float, count: int) -> None:
    bns = [m for m in _meta(name, **kwargs).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == count  # stem, blocks, transitions, fuse layers and the head
    assert {m.momentum for m in bns} == {momentum}


def test_bn_momentum_shows_in_running_statistics(one_torch_thread: None) -> None:
    """Spec D.2 / E: outputs do not show the momentum, the running statistics after one train step do."""
    slow = create_model("hrnet_tiny", init="pytorch", head="v2_bias", spec=V2_TINY_SPEC).train()
    fast = create_model("hrnet_tiny", init="pytorch", head="v2_bias", spec={**V2_TINY_SPEC, "bn_momentum": 0.1}).train()
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(slow(x), fast(x))
    pairs = [(a, b) for a, b in zip(slow.modules(), fast.modules()) if isinstance(a, nn.BatchNorm2d)]
    assert len(pairs) == 54 and {(a.momentum, b.momentum) for a, b in pairs} == {(0.01, 0.1)}
    for a, b in pairs:  # from mean 0 / var 1: running = momentum * batch statistic (+ (1 - momentum) * 1)
        assert torch.allclose(b.running_mean, 10 * a.running_mean, rtol=1e-4, atol=1e-7)
        assert torch.allclose(b.running_var - 1, 10 * (a.running_var - 1), rtol=1e-4, atol=1e-6)


def _one_channel_fusion(**spec_options) -> HighResolutionModule:
    """Two 1-channel branches whose blocks and fuse conv/BN are identities on non-negative inputs."""
    spec = replace(hrnet_spec(8), **spec_options)
    module = HighResolutionModule(BasicBlock, (1, 1), (1, 1), (1, 1), "SUM", False, spec).eval()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1.0 - m.eps)
        module.fuse_layers[0][1][0].weight.fill_(1.0)  # the 1x1 conv of the 1 -> 0 fuse
    return module


@pytest.mark.parametrize(
    ("high", "align_corners", "expected"),
    [
        # align_corners=False, 2x2 -> 4x4: source coordinate (d + 0.5) / 2 - 0.5 clamped to [0, 1]:
        # rows/columns take a, 3/4 a + 1/4 b, 1/4 a + 3/4 b, b.
        (4, False, [[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]]),
        # 2x2 -> 3x3 (an odd branch-0 size): source (d + 0.5) * 2/3 - 0.5 = 0 (clamped), 0.5, 7/6 -> clamped to 1.
        (3, False, [[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]]),
        # align_corners=True, 2x2 -> 4x4: source d / 3: a, 2/3 a + 1/3 b, 1/3 a + 2/3 b, b.
        (4, True, [[1.0, 4 / 3, 5 / 3, 2.0], [5 / 3, 2.0, 7 / 3, 8 / 3], [7 / 3, 8 / 3, 3.0, 10 / 3], [3.0, 10 / 3, 11 / 3, 4.0]]),
    ],
)
def test_size_matched_fusion_by_hand(high: int, align_corners: bool, expected: list[list[float]]) -> None:
    module = _one_channel_fusion(upsample_mode="bilinear", upsample_to_size=True, align_corners=align_corners)
    low = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    with torch.no_grad():
        (out,) = module([torch.zeros(1, 1, high, high), low])  # output 0 = relu(branch 0 + upsampled branch 1)
    assert torch.allclose(out[0, 0], torch.tensor(expected), atol=1e-6)
    assert not any(isinstance(m, nn.Upsample) for m in module.modules())  # resized in forward, no module


def test_scale_factor_fusion_keeps_its_upsample_module() -> None:
    module = _one_channel_fusion(upsample_mode="nearest")
    low = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    with torch.no_grad():
        (out,) = module([torch.zeros(1, 1, 4, 4), low])
    assert torch.equal(out[0, 0], low[0, 0].repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert [m.scale_factor for m in module.modules() if isinstance(m, nn.Upsample)] == [2.0]


def test_align_corners_changes_outputs_not_keys(one_torch_thread: None) -> None:
    false = _v2_tiny(1)
    true = create_model("hrnet_tiny", init="pytorch", head="v2_bias", head_name="last_layer", num_classes=5,
                        spec={**V2_TINY_SPEC, "align_corners": True}).eval()
    load_official_state_dict(true, false.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = false(x), true(x)
    assert a.shape == b.shape == (1, 5, 16, 16)
    assert (a - b).abs().max() > 1e-3 * (a.max() - a.min())


def test_biased_head_official_init() -> None:
    torch.manual_seed(0)
    face = create_model("hrnet_w18_face")
    for index, fan_in in ((0, 270), (3, 270)):
        bias = face.head[index].bias
        assert torch.count_nonzero(bias) == bias.numel()  # PyTorch default, not zeroed (spec A.6)
        assert bias.abs().max() <= fan_in**-0.5  # default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    weights = torch.cat([m.weight.flatten() for m in face.modules() if isinstance(m, nn.Conv2d)])
    assert abs(weights.std().item() - 0.001) < 0.00002
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in face.modules() if isinstance(m, nn.BatchNorm2d))
    pose_v2 = create_model("hrnet_tiny", head="v2")
    assert pose_v2.final_layer[0].bias is None and torch.count_nonzero(pose_v2.final_layer[3].bias) == 0


# --- face == segmentation W18 ----------------------------------------------------------------------


def test_face_equals_segmentation_w18(face_and_seg_w18: tuple[nn.Module, nn.Module], one_torch_thread: None) -> None:
    """Spec A.4: the face model is the segmentation HRNetV2-W18 with head.* renamed last_layer.*:
    same keys in the same order and shapes, identical outputs and identical BN statistics."""
    face, seg = face_and_seg_w18
    renamed = {(f"last_layer.{k[5:]}" if k.startswith("head.") else k): v for k, v in face.state_dict().items()}
    assert list(renamed) == list(seg.state_dict()) and len(renamed) == 1839
    assert {k: tuple(v.shape) for k, v in renamed.items()} == _shapes(seg)
    load_official_state_dict(seg, renamed)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(face(x), seg(x))
        face.train(), seg.train()
        face(x), seg(x)
    face.eval(), seg.eval()
    seg_state = seg.state_dict()
    assert all(torch.equal(v, seg_state[k]) for k, v in face.state_dict().items() if not k.startswith("head."))
    assert torch.equal(face.head[1].running_var, seg.last_layer[1].running_var)


# --- checkpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapped", [False, True])
def test_segmentation_full_model_checkpoint_round_trip(tmp_path: Path, wrapped: bool, one_torch_thread: None) -> None:
    """Spec B.5 / D.20: best.pth is FullModel's state dict (model.* + loss.criterion.weight);
    checkpoint.pth.tar holds it under 'state_dict' next to the epoch and optimizer."""
    source = _v2_tiny(2)
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    state["loss.criterion.weight"] = torch.rand(5)
    path = tmp_path / ("checkpoint.pth.tar" if wrapped else "best.pth")
    torch.save({"epoch": 3, "best_mIoU": 0.5, "state_dict": state} if wrapped else state, path)
    fresh = create_model("hrnet_tiny", head="v2_bias", head_name="last_layer", num_classes=5, spec=V2_TINY_SPEC).eval()
    load_official_state_dict(fresh, path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), fresh(x))


def test_model_prefix_mixed_with_other_keys_is_not_unwrapped() -> None:
    state = {f"model.{k}": v for k, v in create_model("hrnet_tiny").state_dict().items()}
    state["ema.decay"] = torch.tensor(0.9)  # not the FullModel layout: keys listed as they are
    with pytest.raises(ValueError, match=r"unexpected \(\d+\):\n    model\.conv1\.weight"):
        load_official_state_dict(create_model("hrnet_tiny"), state)


@pytest.mark.parametrize("wrapped", [False, True])
def test_pickled_whole_module_is_refused(tmp_path: Path, wrapped: bool) -> None:
    """The face trainer pickles the module: model_best.pth is the module, checkpoint_{epoch}.pth
    holds it under 'state_dict' (spec A.6). weights_only loading refuses both, with advice."""
    model = create_model("hrnet_tiny")
    path = tmp_path / ("checkpoint_3.pth" if wrapped else "model_best.pth")
    torch.save({"state_dict": model, "epoch": 3} if wrapped else model, path)
    with pytest.raises(ValueError) as excinfo:
        load_official_state_dict(create_model("hrnet_tiny"), path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: holds pickled Python objects (hrnet_train.models.hrnet.HRNet)")
    assert "weights_only=True" in message and ".state_dict(), 'weights.pth')" in message


# --- factory arguments -----------------------------------------------------------------------------


def test_output_count_arguments() -> None:
    seg = _meta("hrnet_w48_seg")
    assert (seg.num_classes, seg.num_joints, seg.head_name) == (19, None, "last_layer")
    assert tuple(_meta("hrnet_w48_seg", num_classes=7).last_layer[3].weight.shape) == (7, 720, 1, 1)
    face = _meta("hrnet_w18_face", num_joints=68)
    assert (face.num_joints, face.num_classes, face.head_name) == (68, None, "head")
    keypoint = _meta("hrnet_tiny", num_classes=4)  # a count under either name sets the same head width
    assert keypoint.final_layer.weight.shape[0] == 4 and keypoint.num_classes == 4
    # a count given explicitly replaces the variant's own (of either name)
    assert _meta("hrnet_w18_small_v1_seg", num_joints=3).last_layer[3].weight.shape[0] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_joints": 17, "num_classes": 19}, "num_classes: give num_joints (keypoint heatmaps) or num_classes"),
        ({"head": "hrfpn", "num_joints": 17}, "num_joints: head 'hrfpn' is a feature-pyramid neck"),
        ({"head_name": "stage4"}, "head_name: expected an identifier that is not already an HRNet attribute, got 'stage4'"),
        ({"head_name": "last layer"}, "head_name: expected an identifier"),
        ({"head_options": {"pooling": "max"}}, "head_options: head 'v1' takes no options, got ['pooling']"),
        ({"head_options": ["max"]}, "head_options: expected a mapping of option names to values, got ['max']"),
        ({"head": "v2_bias", "multi_scale_output": False}, "multi_scale_output: head 'v2_bias' reads every branch"),
        ({"num_classes": 0}, "num_classes: expected a positive integer, got 0"),
        ({"spec": {"bn_momentum": 0}}, "bn_momentum: expected a number in (0, 1]"),
        ({"spec": {"bn_momentum": True}}, "bn_momentum: expected a number in (0, 1]"),
        ({"spec": {"upsample_to_size": "yes"}}, "upsample_to_size: expected true or false, got 'yes'"),
        ({"spec": {"align_corners": 1}}, "align_corners: expected true or false, got 1"),
    ],
)
def test_bad_hrnetv2_arguments_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        create_model("hrnet_tiny", **kwargs)
    assert message in str(excinfo.value)


def test_both_counts_refused_in_a_config_mapping_and_for_pose_resnet() -> None:
    with pytest.raises(ValueError, match="not both"):
        create_model({**model_config("hrnet_w18_small_v1_seg"), "num_joints": 17})
    with pytest.raises(ValueError, match="not both"):  # like Hydra, which passes the yaml's keys as keywords
        create_model(model_config("hrnet_w18_small_v1_seg"), num_joints=17)
    face = create_model(model_config("hrnet_w18_face"), num_joints=68, spec={"stage4": {"num_modules": 1}}, init="pytorch")
    assert face.head[3].weight.shape[0] == 68  # the same name: the keyword wins
    with pytest.raises(ValueError, match="num_classes: pose_resnet models are keypoint models"):
        create_model("pose_resnet_50", num_classes=19)


def test_hydra_segmentation_config() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from hrnet_train.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(overrides=["+model=hrnet_w18_small_v1_seg", "model.spec.bn_momentum=0.1", "model.spec.align_corners=true"])
    model = instantiate(cfg.model, num_classes=7)
    assert tuple(model.last_layer[3].weight.shape) == (7, 240, 1, 1)
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}
    assert model.spec.align_corners and model.input_multiple == 1
    with pytest.raises(InstantiationException, match="not both"):
        instantiate(cfg.model, num_joints=17)  # Hydra passes the yaml's num_classes as a keyword too


# --- complexity (face/seg spec A.5, B.4) -----------------------------------------------------------


@pytest.mark.parametrize(("num_joints", "macs", "gmacs"), [(98, 4_693_650_432, 4.69), (68, 4_660_472_832, 4.66),
                                                            (29, 4_617_341_952, 4.62), (19, 4_606_282_752, 4.61)])
def test_face_gmacs_at_256(num_joints: int, macs: int, gmacs: float) -> None:
    paper, true = count_macs(_meta("hrnet_w18_face", num_joints=num_joints), (256, 256))
    assert paper == true == macs and round(true / 1e9, 2) == gmacs
    # only the last 1x1 conv (270 -> K at 64x64) depends on K
    assert macs - 4_606_282_752 == 270 * (num_joints - 19) * 64 * 64


def test_face_readme_figures_are_not_a_count() -> None:
    """The face README's "#Params 9.3M, GFLOPs 4.3G": 9.66M counted; 4.3 is at best the paper
    convention (MACs / 2**30 = 4.37) truncated."""
    report = complexity_report(_meta("hrnet_w18_face"), (256, 256))
    assert round(report["params"] / 1e6, 2) == 9.66 and round(report["paper_gmacs"], 2) == 4.37
    assert round(report["true_gmacs"], 2) == 4.69


@pytest.mark.parametrize(
    ("name", "true_gmacs", "readme_gflops"),
    [("hrnet_w48_seg", 747.5, 696.2), ("hrnet_w18_small_v1_seg", 33.4, 31.1),
     ("hrnet_w18_small_v2_seg", 76.9, 71.6), ("hrnet_w18_seg", 147.4, None)],
)
def test_segmentation_gmacs_at_1024x2048(name: str, true_gmacs: float, readme_gflops: float | None) -> None:
    """The seg README's "GFLOPs" are MACs / 2**30, i.e. our paper_gmacs (the pose convention)."""
    report = complexity_report(_meta(name), (1024, 2048))
    assert round(report["true_gmacs"], 1) == true_gmacs
    if readme_gflops is not None:
        assert round(report["paper_gmacs"], 1) == readme_gflops
    assert round(report["params"] / 1e6, 1) == round(SEG_SIZES[name][0] / 1e6, 1)


def test_complexity_cli_output_counts(capsys: pytest.CaptureFixture[str]) -> None:
    main(["model=hrnet_w18_face", "input_size=256x256", "num_joints=68"])
    main(["model=hrnet_w48_seg", "input_size=1024x2048", "num_classes=19"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| hrnet_")]
    assert rows == [
        "| hrnet_w18_face | 256x256 | 9.65 | 4.34 | 4.66 | 9.32 |",
        "| hrnet_w48_seg | 1024x2048 | 65.86 | 696.18 | 747.51 | 1495.03 |",
    ]
    with pytest.raises(ValueError, match="num_classes: cannot read 'x'"):
        main(["model=hrnet_w48_seg", "num_classes=x"])
