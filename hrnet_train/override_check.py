"""Catch a mistyped command-line key before Hydra does, and say what was meant.

Hydra answers ``trainer.max_epoch=5`` with "Could not override ... To append to your config use
+trainer.max_epoch=5" -- the wrong fix: the key exists as ``max_epochs``. Here the overrides are
parsed with Hydra's own grammar, the config is composed with the given group choices (the first value
of a sweep), and every plain ``key=value`` whose key does not exist raises ConfigError with the
closest known key ("did you mean 'trainer.max_epochs'?"); a group option that does not exist gets the
closest option of that group. Groups added with ``+`` (``+recipe=simcc``, ``+recipe=[a,b]``) are
composed in too, so the keys they bring are known. Keys added with ``+``/``++``, deletions (``~``) and
``hydra.*`` are left to Hydra. Config folders of the user's own (``hydra.searchpath=[file://...]``,
``--config-dir``) count as group options too; with them only the group options are checked (their
files may add keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hrnet_train.cli_args import did_you_mean
from hrnet_train.config_schema import ConfigError
from hrnet_train.paths import config_dir

# Hydra's own command-line flags that take a value (the value is not an override).
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc"}


def extra_config_dirs(argv: Sequence[str]) -> list[Path]:
    """The user's own config folders on the command line (``--config-dir``/``-cd``, ``hydra.searchpath``)."""
    dirs: list[Path] = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]))
        elif arg.startswith(("--config-dir=", "hydra.searchpath=")):
            for entry in arg.split("=", 1)[1].strip("[]").split(","):
                entry = entry.strip().strip("'\"")
                if entry.startswith("file://"):
                    dirs.append(Path(entry[len("file://"):]))
    return dirs


def override_arguments(argv: Sequence[str]) -> list[str] | None:
    """The override tokens of a command line (flags dropped); None when Hydra only prints something."""
    tokens: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _INFO_FLAGS or arg.startswith("--cfg") or arg in ("-c",):
            return None
        if arg in _VALUE_FLAGS:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        tokens.append(arg)
    return tokens


def _group_options(group: str, extra_dirs: Sequence[Path] = ()) -> list[str] | None:
    folders = [base / group for base in (config_dir(), *extra_dirs) if (base / group).is_dir()]
    if not folders:
        return None
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})


def _known_keys(node: Any, prefix: str = "") -> Iterable[str]:
    from omegaconf import DictConfig

    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}{key}"
            yield path
            try:
                child = node._get_node(key)
            except Exception:  # noqa: BLE001 - an interpolation or missing value: the key itself is known
                continue
            yield from _known_keys(child, path + ".")


def check_overrides(config_name: str, argv: Sequence[str]) -> None:
    """Raise ConfigError naming the first unknown key or group option of ``argv`` (see module docstring)."""
    tokens = override_arguments(argv)
    if not tokens:
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(tokens)
    except HydraException:
        return  # a syntax error: Hydra's own message says where
    extra_dirs = extra_config_dirs(argv)
    group_choices: list[str] = []
    plain: list[str] = []
    for override in overrides:
        key = override.key_or_group
        added = override.type == OverrideType.ADD
        if key.startswith("hydra") or override.type not in (OverrideType.CHANGE, OverrideType.ADD) or override.package is not None:
            continue
        options = _group_options(key, extra_dirs)
        if options is None:
            if not added:
                plain.append(key)
            continue
        # A value is an option or, for a group picked several times (+recipe=[a,b]), a list of them.
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            for option in (value if isinstance(value, list) else [value]):
                if str(option) not in options and str(option) != "null":
                    raise ConfigError(f"{key}={option}: no such option in conf/{key}{did_you_mean(str(option), options)}; "
                                      f"options: {', '.join(options)}")
        first = values[0]
        text = "[" + ",".join(map(str, first)) + "]" if isinstance(first, list) else str(first)
        group_choices.append(f"{'+' if added else ''}{key}={text}")
    if not plain or extra_dirs:
        return
    try:
        with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=group_choices)
    except HydraException:
        return  # the groups themselves do not compose: Hydra's message explains it
    known = set(_known_keys(cfg))
    groups = [p.name for p in config_dir().iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    for key in plain:
        if key not in known:
            hint = did_you_mean(key, sorted(known | set(groups)))
            raise ConfigError(
                f"{key}: no such key{hint or ' (to add a new key on purpose, write +' + key + '=...)'}"
            )
