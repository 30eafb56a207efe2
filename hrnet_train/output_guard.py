"""An output never replaces an input: every writer compares its output paths with its input files first.

``python -m hrnet_train.export`` once wrote its ONNX file over the checkpoint it was reading when the
two had the same name; evaluate.py writes its results and metrics files, and the report tool its
table and plot, into folders that may hold their inputs. Each checks before any work and refuses
with the output, the input it would destroy and what to change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def _same_file(a: Path, b: Path) -> bool:
    """Same path after resolving links, or (both existing) the same file (a hard link)."""
    if a.resolve() == b.resolve():
        return True
    return a.is_file() and b.is_file() and os.path.samefile(a, b)


def refuse_overwriting_inputs(
    outputs: Iterable[str | os.PathLike], inputs: Mapping[str, str | os.PathLike | None], change: str,
) -> None:
    """Raise ValueError when one of ``outputs`` is one of ``inputs`` (name -> path; None = not given).

    ``change`` says what to choose instead, e.g. "choose another output_dir or name".
    """
    given = {name: Path(path).expanduser() for name, path in inputs.items() if path is not None}
    for output in outputs:
        target = Path(output).expanduser()
        for name, path in given.items():
            if _same_file(target, path):
                raise ValueError(f"output {target} is the {name} file itself; {change}")
