"""Named model variants (data, not code) and the one factory every caller uses.

``create_model("hrnet_w32", num_joints=17, head="v1")``, ``create_model({"name": ..., "spec": {...}})``
and ``hydra.utils.instantiate(cfg.model, num_joints=17)`` (configs ``conf/model/<name>.yaml``,
produced by :func:`model_config`) all end in :func:`create_model`. A ``spec`` mapping overrides
fields of the named variant's spec, so ``model.spec.stage3.num_modules=2`` works from the CLI.
A variant is a spec plus default arguments (head, head attribute name, output count): the face
model ``hrnet_w18_face`` (head ``v2_bias`` at ``head``, 98 WFLW landmarks), the segmentation models
``hrnet_*_seg`` (``v2_bias`` at ``last_layer``, 19 Cityscapes classes) and the HRNetV2p detection
backbones ``hrnetv2p_w*`` (the ``hrfpn`` neck at ``neck``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from hrnet_train.models.heads import refuse_both_counts
from hrnet_train.models.loading import HRNET_PRETRAINED_LAYERS, load_pretrained_backbone
from hrnet_train.models.hrnet import HRNet
from hrnet_train.models.pose_resnet import PoseResNet, PoseResNetSpec
from hrnet_train.models.spec import HRNetSpec, hrnet_spec

ARCHS = ("hrnet", "pose_resnet")
# PoseResNet's ImageNet ResNet keys (torchvision layout, spec 1.10): everything but the deconv head.
RESNET_PRETRAINED_LAYERS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
# Arguments a variant may preset (the rest of create_model's arguments are the name, arch and spec).
DEFAULT_KEYS = ("num_joints", "num_classes", "head", "head_name", "head_options", "multi_scale_output", "init")
COUNT_KEYS = ("num_joints", "num_classes")
_CONFIG_KEYS = {"name", "arch", "spec", "pretrained", *DEFAULT_KEYS}
_HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str
    spec: HRNetSpec | PoseResNetSpec
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)  # create_model arguments of the variant


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, spec: HRNetSpec | PoseResNetSpec, summary: str = "", **defaults: Any) -> None:
    """Add a named variant; the architecture follows from the spec type. ``defaults`` preset
    create_model arguments (see :data:`DEFAULT_KEYS`), e.g. ``head="v2_bias", num_classes=19``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    if not isinstance(spec, (HRNetSpec, PoseResNetSpec)):
        raise ValueError(f"model {name!r}: spec must be an HRNetSpec or PoseResNetSpec, got {type(spec).__name__}")
    unknown = sorted(set(defaults) - set(DEFAULT_KEYS))
    if unknown:
        raise ValueError(f"model {name!r}: unknown default(s) {unknown} (expected some of {list(DEFAULT_KEYS)})")
    arch = "hrnet" if isinstance(spec, HRNetSpec) else "pose_resnet"
    _REGISTRY[name] = ModelEntry(name, arch, spec, summary, dict(defaults))


def list_models(arch: str | None = None) -> list[str]:
    """Registered names in registration order (optionally only one architecture)."""
    return [n for n, e in _REGISTRY.items() if arch is None or e.arch == arch]


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"model: unknown model {name!r} (registered: {', '.join(_REGISTRY)})") from None


def resolve_spec(
    name: str | None = None, spec: Mapping[str, Any] | HRNetSpec | PoseResNetSpec | None = None, arch: str | None = None
) -> tuple[str, HRNetSpec | PoseResNetSpec]:
    """``(arch, spec)`` for a registered name, with ``spec`` as full replacement or partial override."""
    if isinstance(spec, (HRNetSpec, PoseResNetSpec)):
        return ("hrnet" if isinstance(spec, HRNetSpec) else "pose_resnet"), spec
    base = None
    if name is not None:
        entry = get_model_entry(name)
        if arch is not None and arch != entry.arch:
            raise ValueError(f"arch: {name!r} is a {entry.arch} model, got arch={arch!r}")
        arch, base = entry.arch, entry.spec
    arch = arch or "hrnet"
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {list(ARCHS)}, got {arch!r}")
    if spec is None:
        if base is None:
            raise ValueError("model: give a registered 'name' or a full 'spec'")
        return arch, base
    if not isinstance(spec, Mapping):
        raise ValueError(f"spec: expected a mapping of spec fields, got {spec!r}")
    spec_cls = HRNetSpec if arch == "hrnet" else PoseResNetSpec
    return arch, spec_cls.from_mapping(spec, base=base)  # type: ignore[arg-type]


def create_model(
    name: str | Mapping[str, Any] | None = None,
    *,
    num_joints: int | None = None,
    num_classes: int | None = None,
    head: str | None = None,
    head_name: str | None = None,
    head_options: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | HRNetSpec | PoseResNetSpec | None = None,
    arch: str | None = None,
    multi_scale_output: bool | None = None,
    init: str | None = None,
    pretrained: str | Path | None = None,
) -> nn.Module:
    """Build a network.

    ``name``: a registered variant (see :func:`list_models`) or a config mapping with the same
    keys as the arguments. Keyword arguments given here win over the mapping, which wins over the
    variant's defaults; ``head_options`` are merged key by key. An output count given by the
    mapping or the keywords replaces the variant's (of either name).
    ``num_joints`` (keypoint heatmaps; default 17) or ``num_classes`` (segmentation logits), not
    both; ``head`` 'v1' (default) | 'v2' | 'v2_bias' | 'hrfpn' | 'simcc' (HRNet only; see
    :mod:`hrnet_train.models.heads`), ``head_name`` the head's attribute (default 'final_layer'),
    ``head_options`` for 'hrfpn' (``out_channels``, ``num_outs``, ``pooling``) and 'simcc'
    (``input_size``, ``split_ratio``); ``spec`` a full
    spec or a partial override of the named one, ``multi_scale_output`` (HRNet; ``None`` = what
    the head needs), ``init`` 'official' (default) | 'pytorch'. ``pretrained`` (keyword or the
    mapping's ``pretrained``): an ImageNet HRNet checkpoint (.pth/.pt/.safetensors) whose backbone
    weights initialise the network after the official init (spec 1.7; strict about missing and
    mis-shaped backbone keys); what was loaded is kept as ``network.pretrained_load``
    (:class:`~hrnet_train.models.loading.BackboneLoad`).
    """
    config: dict[str, Any] = {}
    if isinstance(name, Mapping):
        config = {k: v for k, v in name.items() if k not in _HYDRA_KEYS}
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(f"model: unknown config key(s) {unknown} (expected some of {sorted(_CONFIG_KEYS)})")
    elif name is not None:
        config["name"] = name
    explicit = dict(
        num_joints=num_joints, num_classes=num_classes, head=head, head_name=head_name, head_options=head_options,
        multi_scale_output=multi_scale_output, init=init,
    )
    arch_name, resolved = resolve_spec(config.get("name"), spec if spec is not None else config.get("spec"), arch or config.get("arch"))
    defaults = get_model_entry(config["name"]).defaults if config.get("name") is not None else {}
    settings = _settings(defaults, {k: v for k, v in config.items() if k in DEFAULT_KEYS}, explicit)
    init = settings.get("init", "official")
    network = _build(arch_name, resolved, settings, init)
    source = pretrained if pretrained is not None else config.get("pretrained")
    if source is not None:
        layers = HRNET_PRETRAINED_LAYERS if arch_name == "hrnet" else RESNET_PRETRAINED_LAYERS
        network.pretrained_load = load_pretrained_backbone(network, source, layers)
    return network


def _build(arch_name: str, resolved: HRNetSpec | PoseResNetSpec, settings: Mapping[str, Any], init: str) -> nn.Module:
    if arch_name == "pose_resnet":
        _check_pose_resnet(settings)
        return PoseResNet(resolved, num_joints=settings.get("num_joints", 17), init=init)  # type: ignore[arg-type]
    return HRNet(
        resolved,  # type: ignore[arg-type]
        num_joints=settings.get("num_joints"),
        head=settings.get("head", "v1"),
        multi_scale_output=settings.get("multi_scale_output"),
        init=init,
        num_classes=settings.get("num_classes"),
        head_name=settings.get("head_name", "final_layer"),
        head_options=settings.get("head_options"),
    )


def _settings(defaults: Mapping[str, Any], config: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The HRNet/PoseResNet arguments: ``explicit`` over ``config`` (what a mapping or a Hydra
    config gives; both are the caller's word) over the variant's ``defaults``. The caller may
    name the output count either way, which replaces the variant's count; naming both is refused."""
    given = _merged(config, explicit)
    refuse_both_counts(given.get("num_joints"), given.get("num_classes"))
    if any(key in given for key in COUNT_KEYS):
        defaults = {k: v for k, v in defaults.items() if k not in COUNT_KEYS}
    return _merged(defaults, given)


def _merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win (``None`` = not given); ``head_options`` are merged key by key."""
    merged: dict[str, Any] = {"head_options": {}}
    for layer in layers:
        given = {k: v for k, v in layer.items() if v is not None}
        options = given.pop("head_options", {})
        if not isinstance(options, Mapping):
            raise ValueError(f"head_options: expected a mapping of option names to values, got {options!r}")
        merged["head_options"] = {**merged["head_options"], **options}
        merged.update(given)
    return merged


def _check_pose_resnet(settings: Mapping[str, Any]) -> None:
    """PoseResNet has one keypoint head (deconvolutions + ``final_layer``) and one output scale."""
    head = settings.get("head", "v1")
    if head != "v1":
        raise ValueError(f"head: pose_resnet models have only the deconvolution head 'v1', got {head!r}")
    if settings.get("multi_scale_output"):
        raise ValueError("multi_scale_output: pose_resnet models have a single output scale")
    for key in ("num_classes", "head_name"):
        if settings.get(key) is not None:
            raise ValueError(f"{key}: pose_resnet models are keypoint models with head 'final_layer', got {settings[key]!r}")
    if settings["head_options"]:
        raise ValueError(f"head_options: pose_resnet models take no head options, got {sorted(settings['head_options'])}")


def model_config(name: str) -> dict[str, Any]:
    """The Hydra config of a registered variant (content of ``conf/model/<name>.yaml``)."""
    entry = get_model_entry(name)
    config: dict[str, Any] = {
        "_target_": "hrnet_train.models.create_model",
        "_convert_": "all",
        "name": name,
        "arch": entry.arch,
        "head": "v1",
        "init": "official",
    }
    if entry.arch == "hrnet":
        config["multi_scale_output"] = None
    config.update(copy.deepcopy(dict(entry.defaults)))
    config["pretrained"] = None  # an ImageNet checkpoint for the backbone (model.pretrained=<file>)
    config["spec"] = entry.spec.to_dict()
    return config


# --- the model zoo -----------------------------------------------------------------------------
# HRNet family (spec 1.11, from the ImageNet HRNet yamls): one width C gives branches (C, 2C, 4C, 8C).
for _width in (18, 30, 32, 40, 44, 48, 64):
    register_model(f"hrnet_w{_width}", hrnet_spec(_width), f"HRNet-W{_width}: 1/4/3 modules, 4 blocks per branch")
register_model(
    "hrnet_w18_small_v1",
    hrnet_spec(16, num_modules=(1, 1, 1), num_blocks=2, stage1_blocks=1, stage1_channels=32),
    "HRNet-W18-Small-v1: stage1 1x32 planes, 1/1/1 modules, 2 blocks, widths 16..128",
)
register_model(
    "hrnet_w18_small_v2",
    hrnet_spec(18, num_modules=(1, 3, 2), num_blocks=2, stage1_blocks=2),
    "HRNet-W18-Small-v2: stage1 2x64 planes, 1/3/2 modules, 2 blocks",
)
# Not an official model: the smallest sensible HRNet, for fast CPU tests and smoke-training.
register_model(
    "hrnet_tiny",
    hrnet_spec(8, num_modules=(1, 1, 1), num_blocks=1, stage1_blocks=1, stage1_channels=32, stem_channels=32),
    "test-size HRNet: stem 32, stage1 1x32 planes, 1/1/1 modules, 1 block, widths 8..64",
)
for _depth in (50, 101, 152):
    register_model(f"pose_resnet_{_depth}", PoseResNetSpec(_depth), f"SimpleBaseline ResNet-{_depth}, 3x256 deconv head")

# HRNetV2 for faces and segmentation (face/seg spec A.1-A.3, B.1-B.3): the same stage specs with
# BN momentum 0.01 everywhere, size-matched bilinear fusion (align_corners False: face code, seg
# pytorch-v1.1/master; the HRNet-OCR seg code: override bn_momentum=0.1, align_corners=true),
# a multi-scale last module and the biased concat head. Face == seg W18 up to the head's name (A.4).
_V2_OPTIONS = {"bn_momentum": 0.01, "upsample_mode": "bilinear", "upsample_to_size": True, "align_corners": False}
register_model(
    "hrnet_w18_face",
    replace(hrnet_spec(18), **_V2_OPTIONS),
    "HRNetV2-W18 facial landmarks (official face code; WFLW 98, 300W 68, COFW 29, AFLW 19 points)",
    head="v2_bias", head_name="head", num_joints=98,
)
for _name, _base, _title in (
    ("hrnet_w18_small_v1_seg", "hrnet_w18_small_v1", "HRNetV2-W18-Small-v1"),
    ("hrnet_w18_small_v2_seg", "hrnet_w18_small_v2", "HRNetV2-W18-Small-v2"),
    ("hrnet_w18_seg", "hrnet_w18", "HRNetV2-W18"),
    ("hrnet_w48_seg", "hrnet_w48", "HRNetV2-W48"),
):
    register_model(
        _name,
        replace(get_model_entry(_base).spec, **_V2_OPTIONS),
        f"{_title} semantic segmentation (official seg code, pytorch-v1.1/master settings; Cityscapes 19 classes)",
        head="v2_bias", head_name="last_layer", num_classes=19,
    )
# HRNetV2p detection backbones (spec C.1-C.2): the pose-style backbone (nearest scale-factor fusion,
# BN 0.1) with all four outputs, and the HRFPN neck (mmdet defaults) under ``neck``.
for _width in (18, 32, 40, 48):
    register_model(
        f"hrnetv2p_w{_width}",
        hrnet_spec(_width),
        f"HRNetV2p-W{_width} detection backbone: HRNet-W{_width} + HRFPN neck (256 channels, 5 levels, strides 4..64)",
        head="hrfpn", head_name="neck", head_options={"out_channels": 256, "num_outs": 5, "pooling": "avg"},
    )
