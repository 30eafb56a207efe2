"""Config nodes and checkpoint metadata as builtin containers: the one converter every layer uses.

Hydra hands out OmegaConf nodes; checkpoints must hold only dict/list/str/number/bool/None to load
with ``torch.load(weights_only=True)``; YAML and JSON writers want the same. omegaconf is imported
only when a node is actually one of its types, so the ground floor stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def to_plain(value: Any, throw_on_missing: bool = False) -> Any:
    """A deep copy of ``value`` in builtin containers: OmegaConf nodes resolved (``throw_on_missing``:
    raise omegaconf's MissingMandatoryValue for a ``???`` value instead of keeping the text), mappings
    as dicts with string keys, lists and tuples as lists; other values unchanged."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True, throw_on_missing=throw_on_missing)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
