"""One comparison table (markdown + CSV) and an AP-vs-GFLOPs plot from finished training runs.

A run dir is any folder holding the ``report.json`` that ``train.py`` writes at the end of a run
(best-checkpoint COCO stats, complexity, timings) beside ``config_resolved.yaml``; a Hydra
multirun dir holds one per trial (``<sweep dir>/<job num>/``). Runs without ``report.json``
(crashed or still running) have no final numbers and are not listed.

Columns: model, head, input size, codec (sigma), params, GMACs in the paper convention
(conv weights x output pixels / 2^30) and true GFLOPs (2 x MACs, 1e9; see hrnet_train.complexity),
the best checkpoint's GT-box AP/AP50/AP75/APm/APl/AR, epochs, training wall time, training
samples/s (median of the logged ``train/samples_per_s``, all ranks together) and, with
``latency=true``, the CPU latency of one image (batch 1) of the best checkpoint.

CLI (paths, then ``key=value``)::

    python -m hrnet_train.report multirun/synthetic_cpu/2026-01-01_12-00-00
    python -m hrnet_train.report outputs/a outputs/b out=reports/ab latency=true threads=1 plot=docs/images/ab.png
    python -m hrnet_train.report outputs/lspet_cpu/<run> curve=val/PCK_limbs    # learning curve vs minutes
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

REPORT_NAME = "report.json"  # written by hrnet_train.training.runner
RESOLVED_CONFIG_NAME = "config_resolved.yaml"
THROUGHPUT_TAG = "train/samples_per_s"
STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR")
MARKDOWN_NAME = "sweep_report.md"
CSV_NAME = "sweep_report.csv"
PLOT_NAME = "ap_vs_gflops.png"


@dataclass(frozen=True)
class RunSummary:
    """One row of the table; ``None`` where a run did not record the value."""

    run: str
    model: str
    head: str
    input_size: str
    codec: str
    sigma: float | None
    params_m: float
    paper_gmacs: float
    gflops: float
    AP: float
    AP50: float
    AP75: float
    APm: float
    APl: float
    AR: float
    epochs: int
    train_seconds: float
    train_samples_per_s: float | None
    latency_ms_b1: float | None


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every folder at or below ``root`` that holds a ``report.json``, in natural (job number) order."""
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"run dir {base}: no such directory")
    found = [path.parent for path in base.rglob(REPORT_NAME)]
    return sorted(found, key=lambda p: [int(part) if part.isdigit() else part for part in p.relative_to(base).parts])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _field(record: dict[str, Any], key: str, path: Path) -> Any:
    if key not in record:
        raise ValueError(f"{path}: missing field {key!r}")
    return record[key]


def _tensorboard_scalars(run_dir: Path, tag: str) -> list[tuple[float, float]] | None:
    """(wall time, value) of every logged ``tag`` in the run's TensorBoard events; None without events."""
    events_dir = run_dir / "tensorboard"
    if not events_dir.is_dir():
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.wall_time, e.value) for e in events.Scalars(tag)]


def training_throughput(run_dir: Path) -> float | None:
    """Median logged ``train/samples_per_s`` from the CSV logger or TensorBoard events; None if not logged."""
    csv_file = run_dir / "csv" / "metrics.csv"
    if csv_file.is_file():
        with csv_file.open(newline="") as stream:
            values = [float(row[THROUGHPUT_TAG]) for row in csv.DictReader(stream) if row.get(THROUGHPUT_TAG)]
        return statistics.median(values) if values else None
    series = _tensorboard_scalars(run_dir, THROUGHPUT_TAG)
    return statistics.median(value for _, value in series) if series else None


def learning_curve(run_dir: str | Path, tag: str = "val/AP") -> list[tuple[float, float]]:
    """(minutes since the first logged training step, value) of ``tag`` at each validation.

    Needs TensorBoard events (the CSV logger records no wall time).
    """
    run_dir = Path(run_dir)
    start = _tensorboard_scalars(run_dir, "train/lr") or _tensorboard_scalars(run_dir, THROUGHPUT_TAG)
    series = _tensorboard_scalars(run_dir, tag)
    if start is None or series is None:
        raise ValueError(f"{run_dir}: no TensorBoard events (learning curves need logger=tensorboard)")
    if not series or not start:
        raise ValueError(f"{run_dir}: tag {tag!r} was not logged")
    t0 = start[0][0]
    return [((wall - t0) / 60.0, value) for wall, value in series]


def batch1_latency_ms(checkpoint: Path, input_size: str) -> float:
    """Median CPU time of one eval forward pass at batch 1 of the checkpoint's model.

    More repeats than measure_latency's default: on a shared CPU a 5-sample median of millisecond
    passes still swings by several x.
    """
    from hrnet_train.complexity import measure_latency
    from hrnet_train.sizes import InputSize
    from hrnet_train.trained_model import load_trained_model

    network = load_trained_model(checkpoint).network
    return measure_latency(network, InputSize.parse(input_size), batch_sizes=(1,), warmup=5, repeats=30)[1]


def summarize_run(run_dir: Path, label: str, latency: bool = False) -> RunSummary:
    """The table row of one run dir (reads report.json, config_resolved.yaml and the logged metrics)."""
    report_file = run_dir / REPORT_NAME
    report = _read_json(report_file)
    stats = _field(report, "stats", report_file)
    complexity = _field(report, "complexity", report_file)
    config_file = run_dir / RESOLVED_CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: missing (every run dir written by train.py has it)")
    config = yaml.safe_load(config_file.read_text()) or {}
    codec = config.get("codec") or {}
    model = config.get("model") or {}
    missing = [name for name in STATS if name not in stats]
    if missing:
        raise ValueError(f"{report_file}: stats lack {missing}")
    latency_ms = None
    if latency:
        checkpoint = report.get("best_checkpoint") or report.get("last_checkpoint")
        if not checkpoint:
            raise ValueError(f"{report_file}: no best_checkpoint/last_checkpoint to measure latency with")
        latency_ms = batch1_latency_ms(Path(checkpoint), _field(report, "input_size", report_file))
    return RunSummary(
        run=label,
        model=str(_field(report, "model", report_file)),
        head=str(model.get("head", "v1")),
        input_size=str(_field(report, "input_size", report_file)),
        codec=str(codec.get("name", "?")),
        sigma=float(codec["sigma"]) if "sigma" in codec else None,
        params_m=_field(complexity, "params", report_file) / 1e6,
        paper_gmacs=float(_field(complexity, "paper_gmacs", report_file)),
        gflops=float(_field(complexity, "gflops", report_file)),
        **{name: float(stats[name]) for name in STATS},
        epochs=int(_field(report, "epochs", report_file)),
        train_seconds=float(_field(report, "fit_seconds", report_file)),
        train_samples_per_s=training_throughput(run_dir),
        latency_ms_b1=latency_ms,
    )


def collect_runs(roots: Sequence[str | Path], latency: bool = False) -> list[RunSummary]:
    """Rows for every run under ``roots``; raises FileNotFoundError if a root holds no finished run.

    A run is labelled by its path below the root (the job number in a multirun), prefixed with the
    root's name when several roots are given.
    """
    rows: list[RunSummary] = []
    for root in roots:
        base = Path(root)
        run_dirs = find_run_dirs(base)
        if not run_dirs:
            raise FileNotFoundError(f"{base}: no {REPORT_NAME} at or below it (runs write it when training finishes)")
        for run_dir in run_dirs:
            below = run_dir.relative_to(base).as_posix()
            label = base.name if below == "." else below
            if len(roots) > 1 and below != ".":
                label = f"{base.name}/{below}"
            rows.append(summarize_run(run_dir, label, latency))
    return rows


def _format(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


MARKDOWN_COLUMNS = (
    ("run", "run", 0), ("model", "model", 0), ("head", "head", 0), ("input", "input_size", 0), ("codec", "codec", 0),
    ("sigma", "sigma", 1), ("params (M)", "params_m", 3), ("GMACs (paper)", "paper_gmacs", 3), ("GFLOPs (true)", "gflops", 3),
    ("AP", "AP", 4), ("AP50", "AP50", 4), ("AP75", "AP75", 4), ("APm", "APm", 4), ("APl", "APl", 4), ("AR", "AR", 4),
    ("epochs", "epochs", 0), ("train time (s)", "train_seconds", 1), ("train img/s", "train_samples_per_s", 1),
    ("latency b1 (ms)", "latency_ms_b1", 1),
)


def markdown_table(rows: Sequence[RunSummary]) -> str:
    """GT-box COCO stats of the best checkpoints with complexity and speed, one row per run."""
    columns = [c for c in MARKDOWN_COLUMNS if c[1] != "latency_ms_b1" or any(r.latency_ms_b1 is not None for r in rows)]
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        values = asdict(row)
        lines.append("| " + " | ".join(_format(values[key], digits) for _, key, digits in columns) + " |")
    return "\n".join(lines)


def csv_table(rows: Sequence[RunSummary]) -> str:
    """All fields at full precision (empty cell = not recorded)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [f.name for f in fields(RunSummary)]
    writer.writerow(names)
    for row in rows:
        values = asdict(row)
        writer.writerow(["" if values[name] is None else values[name] for name in names])
    return buffer.getvalue()


def plot_ap_vs_gflops(rows: Sequence[RunSummary], path: Path) -> None:
    """Scatter of AP over true GFLOPs (log x), each point labelled with model/head/input/codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for row in rows:
        axes.scatter(row.gflops, row.AP, s=30)
        head = "" if row.head == "v1" else f" {row.head}"
        axes.annotate(f"{row.model}{head}\n{row.input_size} {row.codec}", (row.gflops, row.AP),
                      textcoords="offset points", xytext=(5, 4), fontsize=7)
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.margins(x=0.35, y=0.12)  # room for the point labels
    axes.set_xlabel("GFLOPs (true, 2 x MACs, per image)")
    axes.set_ylabel("GT-box AP (best checkpoint)")
    axes.set_title("AP vs compute")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def write_report(roots: Sequence[str | Path], out: str | Path | None = None, plot: str | Path | None = None,
                 latency: bool = False) -> dict[str, Path]:
    """Writes sweep_report.md, sweep_report.csv and the plot (default: into the first root); returns their paths."""
    rows = collect_runs(roots, latency)
    out_dir = Path(out) if out is not None else Path(roots[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / MARKDOWN_NAME, "csv": out_dir / CSV_NAME, "plot": Path(plot) if plot else out_dir / PLOT_NAME}
    paths["markdown"].write_text(markdown_table(rows) + "\n")
    paths["csv"].write_text(csv_table(rows))
    plot_ap_vs_gflops(rows, paths["plot"])
    return paths


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """Run/multirun dirs and ``out=DIR``, ``plot=FILE.png``, ``latency=true|false``, ``threads=N``
    -> write_report kwargs plus ``threads`` (torch intra-op threads for the latency runs; None = torch's default)."""
    options: dict[str, Any] = {"roots": [], "out": None, "plot": None, "latency": False, "threads": None, "curve": None}
    for arg in argv:
        if arg in ("-h", "--help"):
            raise SystemExit(__doc__)
        if "=" not in arg:
            options["roots"].append(arg)
            continue
        key, value = arg.split("=", 1)
        if key in ("out", "plot", "curve"):
            options[key] = value
        elif key == "latency":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"latency: expected true or false, got {value!r}")
            options["latency"] = value.lower() in ("true", "1")
        elif key == "threads":
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"threads: expected a positive integer, got {value!r}")
            options["threads"] = int(value)
        else:
            raise ValueError(f"argument {key!r}: unknown (expected a run dir, out=, plot=, latency=, threads=, curve=)")
    if not options["roots"]:
        raise ValueError("give at least one run or multirun dir (e.g. multirun/synthetic_cpu/<date>)")
    return options


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    threads = options.pop("threads")
    curve = options.pop("curve")
    if curve is not None:
        for root in options["roots"]:
            print(f"| minutes | {curve} |\n|---|---|")
            print("\n".join(f"| {minutes:.1f} | {value:.4f} |" for minutes, value in learning_curve(root, curve)))
        return
    if threads is not None:
        # One thread gives steadier latencies on a busy machine: OpenMP workers stall when descheduled.
        import torch

        torch.set_num_threads(threads)
    paths = write_report(**options)
    print(paths["markdown"].read_text(), end="")
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
