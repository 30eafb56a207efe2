"""Named model variants (data, not code) and the one factory every caller uses.

``create_model("hrnet_w32", num_joints=17, head="v1")``, ``create_model({"name": ..., "spec": {...}})``
and ``hydra.utils.instantiate(cfg.model, num_joints=17)`` (configs ``conf/model/<name>.yaml``,
produced by :func:`model_config`) all end in :func:`create_model`. A ``spec`` mapping overrides
fields of the named variant's spec, so ``model.spec.stage3.num_modules=2`` works from the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from hrnet_train.models.hrnet import HRNet
from hrnet_train.models.pose_resnet import PoseResNet, PoseResNetSpec
from hrnet_train.models.spec import HRNetSpec, hrnet_spec

ARCHS = ("hrnet", "pose_resnet")
_CONFIG_KEYS = {"name", "arch", "num_joints", "head", "spec", "multi_scale_output", "init"}
_HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str
    spec: HRNetSpec | PoseResNetSpec
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, spec: HRNetSpec | PoseResNetSpec, summary: str = "") -> None:
    """Add a named variant; the architecture follows from the spec type."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    if not isinstance(spec, (HRNetSpec, PoseResNetSpec)):
        raise ValueError(f"model {name!r}: spec must be an HRNetSpec or PoseResNetSpec, got {type(spec).__name__}")
    arch = "hrnet" if isinstance(spec, HRNetSpec) else "pose_resnet"
    _REGISTRY[name] = ModelEntry(name, arch, spec, summary)


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
    head: str | None = None,
    spec: Mapping[str, Any] | HRNetSpec | PoseResNetSpec | None = None,
    arch: str | None = None,
    multi_scale_output: bool | None = None,
    init: str | None = None,
) -> nn.Module:
    """Build a pose network.

    ``name``: a registered variant (see :func:`list_models`) or a config mapping with the same
    keys as the arguments (keyword arguments given here win over the mapping).
    ``num_joints`` (default 17), ``head`` 'v1' (default) | 'v2' (HRNet only), ``spec`` a full spec
    or a partial override of the named one, ``multi_scale_output`` (HRNet; ``None`` = what the
    head needs), ``init`` 'official' (default, N(0, 0.001)) | 'pytorch'.
    """
    config: dict[str, Any] = {}
    if isinstance(name, Mapping):
        config = {k: v for k, v in name.items() if k not in _HYDRA_KEYS}
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(f"model: unknown config key(s) {unknown} (expected some of {sorted(_CONFIG_KEYS)})")
    elif name is not None:
        config["name"] = name
    explicit = dict(num_joints=num_joints, head=head, spec=spec, arch=arch, multi_scale_output=multi_scale_output, init=init)
    config.update({k: v for k, v in explicit.items() if v is not None})

    arch_name, resolved = resolve_spec(config.get("name"), config.get("spec"), config.get("arch"))
    num_joints = config.get("num_joints", 17)
    head = config.get("head", "v1")
    init = config.get("init", "official")
    if arch_name == "pose_resnet":
        if head != "v1":
            raise ValueError(f"head: pose_resnet models have only the deconvolution head 'v1', got {head!r}")
        if config.get("multi_scale_output"):
            raise ValueError("multi_scale_output: pose_resnet models have a single output scale")
        return PoseResNet(resolved, num_joints=num_joints, init=init)  # type: ignore[arg-type]
    return HRNet(resolved, num_joints=num_joints, head=head, multi_scale_output=config.get("multi_scale_output"), init=init)  # type: ignore[arg-type]


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
