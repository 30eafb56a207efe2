"""A run's log file holds what its stdout showed: banner, per-epoch tables, the final report.

Hydra's job logging writes Python ``logging`` records to ``<run dir>/<job>.log``; the project's own
output (and Lightning's printed tables) goes to stdout, so this module copies stdout line by line into
the same file. Progress bars go to stderr (``training.callbacks.StderrProgressBar``) and stay out.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class _Tee(io.TextIOBase):
    """A text stream writing to the terminal stream and an appended log file."""

    def __init__(self, terminal: TextIO, log: TextIO) -> None:
        self.terminal = terminal
        self.log = log

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.log.write(text)
        if "\n" in text:
            self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()


def is_main_process() -> bool:
    """False in the extra ranks of a torchrun/SLURM/Lightning-ddp launch (they share the run's log)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", os.environ.get("SLURM_PROCID", "0"))) == "0"


@contextmanager
def stdout_copied_to(path: str | Path) -> Iterator[None]:
    """Copy everything printed to stdout into ``path`` (appended) while the block runs (main process only)."""
    if not is_main_process():
        yield
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as log:
        terminal = sys.stdout
        sys.stdout = _Tee(terminal, log)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = terminal
