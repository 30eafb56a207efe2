"""The floors of docs/architecture.md: a module imports only from its own floor or below (module-level and
function-level imports alike), and evaluation and inference never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

from hrnet_train.paths import PACKAGE_DIR

FLOORS = {
    **dict.fromkeys(("sizes", "geometry", "keypoints", "seg_classes", "image_io", "normalization", "drawing", "paths", "plain", "pipeline_options",
                     "cli_args", "run_log", "output_guard", "__init__"), 0),
    **dict.fromkeys(("codecs", "models", "config_schema"), 1),
    **dict.fromkeys(("data", "decoding"), 2),
    **dict.fromkeys(("trained_model", "evaluation", "inference", "export"), 3),
    **dict.fromkeys(("training", "baselines", "complexity", "report", "demo", "cli", "override_check", "slim_checkpoint"), 4),
}
NEVER = {("evaluation", "inference"), ("inference", "evaluation")}


def _unit(module: str) -> str:
    """hrnet_train.data.coco -> data; hrnet_train.sizes -> sizes."""
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hrnet_train."):
            found.add(_unit(node.module))
        elif isinstance(node, ast.Import):
            found.update(_unit(a.name) for a in node.names if a.name.startswith("hrnet_train."))
    return found


def test_every_unit_has_a_floor() -> None:
    units = {p.stem if p.parent == PACKAGE_DIR else p.relative_to(PACKAGE_DIR).parts[0]
             for p in PACKAGE_DIR.rglob("*.py") if "conf" not in p.parts}
    assert units - set(FLOORS) == set(), "give new modules a floor here and in docs/architecture.md"


def test_lower_floors_never_import_higher_ones() -> None:
    violations = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        unit = path.stem if path.parent == PACKAGE_DIR else path.relative_to(PACKAGE_DIR).parts[0]
        for target in _imports(path) - {unit}:
            if FLOORS[target] > FLOORS[unit] or (unit, target) in NEVER:
                violations.append(f"{path.relative_to(PACKAGE_DIR)} (floor {FLOORS[unit]}) imports {target} (floor {FLOORS[target]})")
    assert violations == []
