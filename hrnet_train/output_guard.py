"""Where a tool writes, checked before any work: an output never replaces an input, and its folder can be written.

``python -m hrnet_train.export`` once wrote its ONNX file over the checkpoint it was reading when the
two had the same name; evaluate.py writes its results and metrics files, and the report tool its
table and plot, into folders that may hold their inputs. Each checks before any work and refuses
with the output, the input it would destroy and what to change. An output folder that is a file, lies
below a file or is not writable is refused by name too, instead of an OSError after the work.
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


def check_output_dir(folder: str | os.PathLike, key: str = "output_dir") -> None:
    """Raise ValueError unless ``folder`` is, or can be created as, a writable directory."""
    target = Path(folder).expanduser()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == target else f"lies below {existing}, which is a file"
        raise ValueError(f"{key}: {target} {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{key}: {target} cannot be written ({existing} is not writable for this user)")
