"""Keypoint sets (joint names, flip pairs, body halves, OKS sigmas, NME normaliser, loss weights) loaded from config.

A keypoint set is data, not code: datasets, codecs (flip), augmentation (half-body), evaluation (OKS
sigmas, NME normaliser) and drawing (skeleton) all read the same validated object, so a new dataset
only needs a yaml file under ``conf/keypoints/``. Pairs, body halves and limbs may be written as joint
names or 0-based ids; everything is resolved to ids at load time and every inconsistency is reported
at once.

Body halves and OKS sigmas are optional: face landmark sets have neither (they are scored with NME,
normalised per set by ``nme_normalizer``). Reading ``sigmas`` of a set without them raises a
:class:`MissingSigmasError` naming the set, so OKS code paths fail clearly instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hrnet_train.paths import config_dir
from hrnet_train.plain import to_plain

_REQUIRED_FIELDS = ("names", "flip_pairs", "skeleton")
_KNOWN_FIELDS = set(_REQUIRED_FIELDS) | {
    "name", "upper_body", "lower_body", "sigmas", "joint_weights", "reference_joint_weights", "nme_normalizer",
}
BOX_SIZE = "box_size"  # nme_normalizer value: divide by the annotated face box size (AFLW)


class MissingSigmasError(ValueError):
    """An OKS computation was asked of a keypoint set that defines no OKS sigmas (e.g. a face set)."""


@dataclass(frozen=True)
class NmeNormalizer:
    """What NME divides the mean landmark error by: the ground-truth distance between two landmarks
    (``points``, e.g. the outer eye corners of 300W) or, when ``points`` is None, the annotated face
    box size (AFLW's ``box_size``); spec A.8."""

    points: tuple[int, int] | None = None

    @property
    def uses_box_size(self) -> bool:
        return self.points is None


@dataclass(frozen=True, eq=False)
class KeypointSet:
    """A validated keypoint definition; arrays are read-only so the object can be shared freely."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    skeleton: tuple[tuple[int, int], ...]
    oks_sigmas: np.ndarray | None
    joint_weights: np.ndarray
    # The official repo's per-joint weights (USE_DIFFERENT_JOINTS_WEIGHT); None when the set has none.
    reference_joint_weights: np.ndarray | None = field(default=None)
    # Face sets: how NME is normalised (spec A.8); None for sets not scored with NME.
    nme_normalizer: NmeNormalizer | None = field(default=None)

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def has_sigmas(self) -> bool:
        return self.oks_sigmas is not None

    @property
    def sigmas(self) -> np.ndarray:
        """OKS sigmas (J,); raises :class:`MissingSigmasError` naming the set when it has none."""
        if self.oks_sigmas is None:
            raise MissingSigmasError(
                f"keypoint set {self.name!r} defines no OKS sigmas, so OKS (COCO AP, OKS-NMS, tracking) does "
                f"not apply to it; face landmark sets are scored with NME (hrnet_train.evaluation.nme)"
            )
        return self.oks_sigmas

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation: channel k of a horizontally flipped prediction is joint ``flip_index[k]``."""
        index = np.arange(self.num_joints)
        for left, right in self.flip_pairs:
            index[left], index[right] = right, left
        return index

    def __repr__(self) -> str:
        return f"KeypointSet(name={self.name!r}, num_joints={self.num_joints})"


def load_keypoint_set(spec: str | Path | Mapping[str, Any] | KeypointSet) -> KeypointSet:
    """Return a KeypointSet from a name (``"coco17"`` -> ``conf/keypoints/coco17.yaml``), a yaml path,
    a mapping (plain dict or Hydra/OmegaConf node) or an existing KeypointSet (returned unchanged)."""
    if isinstance(spec, KeypointSet):
        return spec
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if path.suffix not in (".yaml", ".yml"):
            path = config_dir() / "keypoints" / f"{spec}.yaml"
        if not path.is_file():
            available = sorted(p.stem for p in (config_dir() / "keypoints").glob("*.yaml"))
            raise FileNotFoundError(f"keypoint set {str(spec)!r}: {path} not found (available: {available})")
        with path.open() as handle:
            raw = yaml.safe_load(handle)
        if not isinstance(raw, Mapping):
            raise ValueError(f"{path}: expected a mapping of keypoint-set fields, got {type(raw).__name__}")
        return _build(raw, source=str(path), default_name=path.stem)
    if not isinstance(spec, Mapping) and not type(spec).__module__.startswith("omegaconf"):
        raise ValueError(f"keypoint set: expected a name, a yaml path or a mapping, got {type(spec).__name__}")
    return _build(to_plain(spec), source="<mapping>", default_name="custom")


def _build(raw: Mapping[str, Any], source: str, default_name: str) -> KeypointSet:
    errors: list[str] = []
    missing = [key for key in _REQUIRED_FIELDS if key not in raw]
    if missing:
        raise ValueError(f"{source}: keypoint set is missing field(s) {missing}")
    unknown = sorted(set(raw) - _KNOWN_FIELDS)
    if unknown:
        errors.append(f"unknown field(s) {unknown} (known: {sorted(_KNOWN_FIELDS)})")

    names = tuple(str(n) for n in raw["names"])
    num_joints = len(names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(f"names: duplicate joint name(s) {duplicates}")
    name_to_id = {n: i for i, n in enumerate(names)}

    def resolve(value: Any, where: str) -> int | None:
        if isinstance(value, (bool, np.bool_)):
            errors.append(f"{where}: {value!r} is neither a joint name nor an id")
            return None
        if isinstance(value, (int, np.integer)):
            if not 0 <= int(value) < num_joints:
                errors.append(f"{where}: id {int(value)} out of range 0..{num_joints - 1}")
                return None
            return int(value)
        if isinstance(value, str):
            if value not in name_to_id:
                errors.append(f"{where}: unknown joint name {value!r}")
                return None
            return name_to_id[value]
        errors.append(f"{where}: {value!r} is neither a joint name nor an id")
        return None

    def resolve_pairs(key: str) -> list[tuple[int, tuple[int, int]]]:
        """Resolved pairs with their position in the config (so messages point at the right entry)."""
        pairs = []
        for i, pair in enumerate(raw[key] or []):
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                errors.append(f"{key}[{i}]: expected a pair [a, b], got {pair!r}")
                continue
            a, b = resolve(pair[0], f"{key}[{i}][0]"), resolve(pair[1], f"{key}[{i}][1]")
            if a is not None and b is not None:
                if a == b:
                    errors.append(f"{key}[{i}]: joint {names[a]!r} paired with itself")
                pairs.append((i, (a, b)))
        return pairs

    def resolve_ids(key: str) -> tuple[int, ...]:
        ids = [resolve(v, f"{key}[{i}]") for i, v in enumerate(raw.get(key) or [])]
        resolved = tuple(i for i in ids if i is not None)
        repeated = sorted({names[i] for i in resolved if resolved.count(i) > 1})
        if repeated:
            errors.append(f"{key}: joint(s) listed twice {repeated}")
        return resolved

    indexed_flip_pairs = resolve_pairs("flip_pairs")
    seen: dict[int, int] = {}
    for i, pair in indexed_flip_pairs:
        for joint in pair:
            if joint in seen and seen[joint] != i:
                errors.append(f"flip_pairs[{i}]: joint {names[joint]!r} already paired in flip_pairs[{seen[joint]}]")
            seen.setdefault(joint, i)
    flip_pairs = tuple(pair for _, pair in indexed_flip_pairs)
    skeleton = tuple(pair for _, pair in resolve_pairs("skeleton"))
    upper = resolve_ids("upper_body")
    lower = resolve_ids("lower_body")
    overlap = sorted(names[i] for i in set(upper) & set(lower))
    if overlap:
        errors.append(f"upper_body/lower_body: joint(s) in both halves {overlap}")

    def vector(key: str, default: float | None, dtype: type) -> np.ndarray | None:
        value = raw.get(key)
        if value is None:
            return None if default is None else np.full(num_joints, default, dtype=dtype)
        try:
            array = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError):
            errors.append(f"{key}: expected {num_joints} numbers, got {value!r}")
            return None
        if array.shape != (num_joints,):
            errors.append(f"{key}: expected {num_joints} values (one per name), got {array.size}")
            return None
        if not np.all(np.isfinite(array)) or np.any(array <= 0):
            errors.append(f"{key}: values must be finite and > 0, got {array.tolist()}")
        return array

    sigmas = vector("sigmas", None, np.float64)
    joint_weights = vector("joint_weights", 1.0, np.float32)
    reference_weights = vector("reference_joint_weights", None, np.float32)
    nme_normalizer = None
    if raw.get("nme_normalizer") is not None:
        value = raw["nme_normalizer"]
        if value == BOX_SIZE:
            nme_normalizer = NmeNormalizer()
        elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            a, b = resolve(value[0], "nme_normalizer[0]"), resolve(value[1], "nme_normalizer[1]")
            if a is not None and b is not None:
                if a == b:
                    errors.append(f"nme_normalizer: joint {names[a]!r} paired with itself (distance 0)")
                nme_normalizer = NmeNormalizer((a, b))
        else:
            errors.append(f"nme_normalizer: expected a pair of joints [a, b] or {BOX_SIZE!r}, got {value!r}")

    if errors:
        raise ValueError(f"{source}: invalid keypoint set:\n  - " + "\n  - ".join(errors))
    for array in (sigmas, joint_weights, reference_weights):
        if array is not None:
            array.setflags(write=False)
    return KeypointSet(
        name=str(raw.get("name", default_name)),
        names=names,
        flip_pairs=flip_pairs,
        upper_body_ids=upper,
        lower_body_ids=lower,
        skeleton=skeleton,
        oks_sigmas=sigmas,
        joint_weights=joint_weights,  # type: ignore[arg-type]
        reference_joint_weights=reference_weights,
        nme_normalizer=nme_normalizer,
    )
