"""The command line of the small tools (export, report, complexity, browse, converters, baselines).

They take ``key=value`` arguments like the Hydra entry points (train.py, evaluate.py, the demo), with
one rule for every value type (a boolean is ``true``/``false``, ``1``/``0``, ``yes``/``no`` or
``on``/``off`` everywhere), ``--help`` printing the options and an example, a "did you mean" for a
mistyped key, and the project's exit codes:

* ``EXIT_USAGE`` (2): the command line or a setting is wrong, found before any heavy work;
* ``EXIT_FAILURE`` (1): the run itself failed (bad data met during the run, an I/O error).

Every tool names its output location ``output_dir=`` and its model ``model=``.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

EXIT_USAGE = 2
EXIT_FAILURE = 1
_REQUIRED = object()


class UsageError(ValueError):
    """A wrong command line or setting, detected before heavy work (exit code 2)."""


def parse_bool(text: str, key: str = "value") -> bool:
    """The one boolean rule of every CLI: true/false, 1/0, yes/no, on/off (any case)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{key}: expected true or false, got {text!r}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known word, or ``""`` when none is close.

    Dotted keys are compared within their parent first: a known key there that starts with the typed
    last part wins (``out`` -> ``output_dir``), then difflib's closest match above a similarity of 0.6
    (``trainer.max_epoch`` -> ``trainer.max_epochs``), then the closest key anywhere.
    """
    candidates = list(known)
    parent, _, leaf = word.rpartition(".")
    siblings = [c for c in candidates if c.rpartition(".")[0] == parent]
    prefixed = sorted((c for c in siblings if leaf and c.rpartition(".")[2].startswith(leaf)), key=len)
    close = (prefixed[:1] or difflib.get_close_matches(word, siblings, n=1, cutoff=0.6)
             or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6))
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option: how its text is read and its default, written as it would be typed
    (a text default is read with ``parse`` like a given value; None = optional, no value)."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class CommandLine:
    """A small tool's arguments: ``key=value`` options, optionally bare positional words.

    ``prefixes`` admits open-ended keys (``spec.stage3.num_modules=2``); ``positional`` names what bare
    words are (e.g. "RUN_DIR"), None when the tool takes none.
    """

    prog: str
    summary: str
    options: tuple[Option, ...]
    examples: tuple[str, ...]
    positional: str | None = None
    prefixes: tuple[str, ...] = ()
    flags: dict[str, tuple[str, str]] = field(default_factory=dict)  # "--all" -> (key, value)

    def help_text(self) -> str:
        width = max(len(option.name) for option in self.options) + 2
        lines = [f"usage: {self.prog} {'[' + self.positional + ' ...] ' if self.positional else ''}key=value ...", "",
                 self.summary, "", "options:"]
        for option in self.options:
            default = "required" if option.required else (f"default {option.default}" if option.default is not None else "optional")
            lines.append(f"  {option.name + '=':<{width}} {option.help} ({default})")
        for flag, (key, value) in self.flags.items():
            lines.append(f"  {flag:<{width}} same as {key}={value}")
        for prefix in self.prefixes:
            lines.append(f"  {prefix + '*=':<{width}} any field below {prefix.rstrip('.')}")
        lines += ["", "examples:", *(f"  {example}" for example in self.examples), "",
                  f"exit codes: 0 done, {EXIT_USAGE} bad command line or setting (before any work), {EXIT_FAILURE} the run failed"]
        return "\n".join(lines)

    def parse(self, argv: Sequence[str]) -> dict[str, Any]:
        """Values by option name (defaults filled in; open-ended keys kept as text; positional words
        under ``"positional"``). ``-h``/``--help`` prints the help and exits 0; errors raise UsageError."""
        if any(arg in ("-h", "--help") for arg in argv):
            print(self.help_text())
            raise SystemExit(0)
        by_name = {option.name: option for option in self.options}
        values: dict[str, Any] = {}
        words: list[str] = []
        for arg in argv:
            if arg in self.flags:
                arg = "=".join(self.flags[arg])
            key, sep, text = arg.partition("=")
            if not sep:
                if self.positional is None:
                    raise UsageError(f"argument {arg!r}: expected key=value{did_you_mean(arg, by_name)}; see --help")
                words.append(arg)
                continue
            if key in values:
                raise UsageError(f"{key}: given twice")
            if key in by_name:
                try:
                    values[key] = by_name[key].parse(text)
                except UsageError:
                    raise
                except (TypeError, ValueError) as error:
                    raise UsageError(f"{key}: cannot read {text!r} ({error})") from None
            elif key.startswith(self.prefixes) and self.prefixes:
                values[key] = text
            else:
                raise UsageError(
                    f"{key}: unknown option{did_you_mean(key, by_name)}; known: {', '.join(sorted(by_name))} (see --help)"
                )
        missing = [option.name for option in self.options if option.required and option.name not in values]
        if missing:
            raise UsageError(f"{', '.join(missing)}: required (e.g. {self.examples[0]})")
        if self.positional is not None:
            values["positional"] = words
        for option in self.options:
            if option.name not in values:
                default = option.default
                values[option.name] = option.parse(default) if isinstance(default, str) else default
        return values


def int_list(text: str) -> list[int]:
    """``"1,8"`` -> [1, 8]."""
    return [int(part) for part in text.split(",") if part.strip()]


def error_line(error: BaseException) -> str:
    """An error's message on one line. One re-raised from a DataLoader worker carries the worker's
    traceback in its message (torch's "Caught ValueError in DataLoader worker process 0. Original
    Traceback ..."): only the original message, its last line, is kept -- it names the file and record."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and lines[1].startswith("Original Traceback"):
        return lines[-1].split(": ", 1)[-1]
    return " ".join(lines)


def run_tool(prog: str, main: Callable[[], Any]) -> int:
    """Run a tool's ``main`` with the project's exit codes; prints one line for an error, no traceback."""
    try:
        main()
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as error:
        print(f"{prog}: failed: {error_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
