"""The HRNet architecture as data: a validated, immutable spec that fully determines the network.

Field names mirror the official yaml keys (``MODEL.EXTRA.STAGE{2,3,4}``: NUM_MODULES, NUM_BRANCHES,
BLOCK, NUM_BLOCKS, NUM_CHANNELS, FUSE_METHOD; spec 1.5) in lower case. Stage 1, hard-coded in the
official pose code, is a spec field here as in the ImageNet HRNet family (spec 1.11).
The network-wide options (BN momentum, how lower branches are upsampled in the fusion, bilinear
``align_corners``) are fields too, because they are what separates the pose, face, segmentation and
detection HRNets that share one module tree (face/seg spec A.1, B.1, D.1-D.3).
Every error names the offending field, e.g. ``stage3.num_channels: expected 3 entries
(num_branches), got 2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from hrnet_train.models.blocks import BLOCKS

FUSE_METHODS = ("SUM",)  # the only fuse method of the official code (stored, summation is hard-wired)
UPSAMPLE_MODES = ("nearest", "bilinear")
STAGE_NAMES = ("stage2", "stage3", "stage4")


def positive_int(value: Any, field: str) -> int:
    """``value`` if it is a positive int (not a bool), else ValueError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field}: expected a positive integer, got {value!r}")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{field}: expected true or false, got {value!r}")
    return value


def _momentum(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{field}: expected a number in (0, 1] (PyTorch BatchNorm momentum), got {value!r}")
    return float(value)


def _block_name(value: Any, field: str) -> str:
    name = str(value).upper()
    if name not in BLOCKS:
        raise ValueError(f"{field}: unknown block type {value!r} (expected one of {sorted(BLOCKS)})")
    return name


def _int_list(value: Any, length: int, field: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{field}: expected a list of {length} positive integers (num_branches), got {value!r}")
    if len(value) != length:
        raise ValueError(f"{field}: expected {length} entries (num_branches), got {len(value)}")
    return tuple(positive_int(v, f"{field}[{i}]") for i, v in enumerate(value))


@dataclass(frozen=True)
class Stage1Spec:
    """The single-branch stage after the stem (official: 4 Bottlenecks of 64 planes -> 256 channels)."""

    block: str = "BOTTLENECK"
    num_blocks: int = 4
    num_channels: int = 64  # planes; the stage outputs num_channels * block expansion channels

    def validated(self, prefix: str = "stage1") -> Stage1Spec:
        return Stage1Spec(
            block=_block_name(self.block, f"{prefix}.block"),
            num_blocks=positive_int(self.num_blocks, f"{prefix}.num_blocks"),
            num_channels=positive_int(self.num_channels, f"{prefix}.num_channels"),
        )

    @property
    def out_channels(self) -> int:
        return self.num_channels * BLOCKS[self.block].expansion


@dataclass(frozen=True)
class StageSpec:
    """One multi-resolution stage: ``num_modules`` HighResolutionModules over ``num_branches`` branches."""

    num_modules: int
    num_branches: int
    block: str
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    fuse_method: str = "SUM"

    def validated(self, prefix: str) -> StageSpec:
        num_branches = positive_int(self.num_branches, f"{prefix}.num_branches")
        fuse_method = str(self.fuse_method).upper()
        if fuse_method not in FUSE_METHODS:
            raise ValueError(f"{prefix}.fuse_method: unknown fuse method {self.fuse_method!r} (expected one of {list(FUSE_METHODS)})")
        return StageSpec(
            num_modules=positive_int(self.num_modules, f"{prefix}.num_modules"),
            num_branches=num_branches,
            block=_block_name(self.block, f"{prefix}.block"),
            num_blocks=_int_list(self.num_blocks, num_branches, f"{prefix}.num_blocks"),
            num_channels=_int_list(self.num_channels, num_branches, f"{prefix}.num_channels"),
            fuse_method=fuse_method,
        )

    @property
    def out_channels(self) -> tuple[int, ...]:
        expansion = BLOCKS[self.block].expansion
        return tuple(c * expansion for c in self.num_channels)


@dataclass(frozen=True)
class HRNetSpec:
    """Everything that defines an HRNet backbone. Construct through :meth:`from_mapping` or
    :func:`hrnet_spec`; both validate, and direct construction validates in ``__post_init__``."""

    stage1: Stage1Spec
    stage2: StageSpec
    stage3: StageSpec
    stage4: StageSpec
    stem_channels: int = 64
    # Fusion of a lower-resolution branch into a higher one: 'nearest' (pose, detection) or 'bilinear'
    # (face, segmentation) ...
    upsample_mode: str = "nearest"
    # ... by nn.Upsample(scale_factor=2**k) (False: pose, detection; the input must be divisible by
    # input_multiple) or by F.interpolate to the target branch's exact size (True: face/seg code).
    upsample_to_size: bool = False
    # align_corners of every bilinear interpolation: bilinear fusion, concat heads, HRFPN neck.
    # Face and seg pytorch-v1.1: False; HRNet-OCR seg code default True (face/seg spec D.3).
    align_corners: bool = False
    # Momentum of every BatchNorm incl. transition, fuse and head: pose/detection and the HRNet-OCR
    # seg code 0.1; face and seg pytorch-v1.1/master 0.01 (face/seg spec D.2).
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        positive_int(self.stem_channels, "stem_channels")
        if self.upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample_mode: expected one of {list(UPSAMPLE_MODES)}, got {self.upsample_mode!r}")
        _bool(self.upsample_to_size, "upsample_to_size")
        _bool(self.align_corners, "align_corners")
        object.__setattr__(self, "bn_momentum", _momentum(self.bn_momentum, "bn_momentum"))
        object.__setattr__(self, "stage1", self.stage1.validated())
        previous = 1
        for name in STAGE_NAMES:
            stage = getattr(self, name).validated(name)
            if stage.num_branches < previous:
                raise ValueError(
                    f"{name}.num_branches: must not drop branches (previous stage has {previous}), got {stage.num_branches}"
                )
            previous = stage.num_branches
            object.__setattr__(self, name, stage)

    @property
    def stages(self) -> tuple[StageSpec, StageSpec, StageSpec]:
        return (self.stage2, self.stage3, self.stage4)

    @property
    def input_multiple(self) -> int:
        """Input height/width must be divisible by this.

        Scale-factor fusion sums a branch upsampled 2**k times with the target branch, so the lowest
        branch's stride (stem 4 times 2 per extra branch: 32) must divide the input. Size-matched
        fusion takes any size: every stride-2 conv maps n -> ceil(n/2) on all paths alike and the
        upsampling hits the target size exactly (outputs ceil(H/4) x ceil(W/4)), so the multiple is 1.
        """
        if self.upsample_to_size:
            return 1
        return 4 * 2 ** (self.stage4.num_branches - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples) suitable for yaml/Hydra configs."""
        data = asdict(self)
        for name in STAGE_NAMES:
            data[name]["num_blocks"] = list(data[name]["num_blocks"])
            data[name]["num_channels"] = list(data[name]["num_channels"])
        return data

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base: HRNetSpec | None = None) -> HRNetSpec:
        """Build from a (possibly partial) nested mapping; missing fields come from ``base``."""
        data = base.to_dict() if base is not None else {}
        _check_keys(mapping, {f.name for f in fields(cls)}, "spec")
        for key, value in mapping.items():
            if key in ("stage1", *STAGE_NAMES):
                if not isinstance(value, Mapping):
                    raise ValueError(f"{key}: expected a mapping of stage fields, got {value!r}")
                sub_cls = Stage1Spec if key == "stage1" else StageSpec
                _check_keys(value, {f.name for f in fields(sub_cls)}, key)
                data[key] = {**data.get(key, {}), **dict(value)}
            else:
                data[key] = value
        missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING]
        if missing:
            raise ValueError(f"spec: missing fields {missing}")
        kwargs: dict[str, Any] = dict(data)
        kwargs["stage1"] = Stage1Spec(**data["stage1"])
        for name in STAGE_NAMES:
            _require_stage_fields(data[name], name)
            kwargs[name] = StageSpec(**data[name])
        return cls(**kwargs)


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(f"{prefix}: unknown field(s) {unknown} (expected some of {sorted(allowed)})")


def _require_stage_fields(stage: Mapping[str, Any], prefix: str) -> None:
    missing = [f.name for f in fields(StageSpec) if f.default is MISSING and f.name not in stage]
    if missing:
        raise ValueError(f"{prefix}: missing fields {missing}")


def hrnet_spec(
    width: int,
    *,
    num_modules: tuple[int, int, int] = (1, 4, 3),
    num_blocks: int = 4,
    stage1_blocks: int = 4,
    stage1_channels: int = 64,
    stem_channels: int = 64,
    block: str = "BASIC",
) -> HRNetSpec:
    """The HRNet family from one width ``C``: branch ``i`` has ``C * 2**i`` channels (C, 2C, 4C, 8C),
    stages 2/3/4 have 2/3/4 branches with ``num_blocks`` blocks each. Defaults = official W32/W48
    structure (spec 1.5, 1.11)."""
    stages = [
        StageSpec(
            num_modules=modules,
            num_branches=branches,
            block=block,
            num_blocks=(num_blocks,) * branches,
            num_channels=tuple(width * 2**i for i in range(branches)),
        )
        for modules, branches in zip(num_modules, (2, 3, 4))
    ]
    return HRNetSpec(
        stage1=Stage1Spec(block="BOTTLENECK", num_blocks=stage1_blocks, num_channels=stage1_channels),
        stage2=stages[0],
        stage3=stages[1],
        stage4=stages[2],
        stem_channels=stem_channels,
    )
