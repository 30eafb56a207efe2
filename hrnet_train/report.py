"""One comparison table (markdown + CSV) and a metric-vs-GFLOPs plot from finished training runs.

A run dir is any folder holding the ``report.json`` that ``train.py`` writes at the end of a run
(best-checkpoint metrics, complexity, timings) beside ``config_resolved.yaml``; a Hydra multirun dir
holds one per trial (``<sweep dir>/<job num>/``). Runs without ``report.json`` (crashed or still
running) have no final numbers and are not listed.

Rows are named by their Hydra overrides (``.hydra/overrides.yaml``), keeping only the overrides that
differ between the listed runs (a sweep's rows read ``codec=dark data.input_size=64x64``); runs
without overrides keep their path below the root. Columns: run, dataset, model, head, input size,
codec (sigma), params, GMACs in the paper convention (conv weights x output pixels / 2^30) and true
GFLOPs (2 x MACs, 1e9; see hrnet_train.complexity), the task's metrics of the best checkpoint (pose:
GT-box AP/AP50/AP75/APm/APl/AR, torso PCK and the error-class shares of Ronchi & Perona --
err_good, err_jitter, err_inversion, err_swap, err_miss, fractions of the matched keypoints -- where
logged), epochs, training wall time summed over
resumed segments, training samples/s (median of the logged ``train/samples_per_s``, all ranks
together) and, with ``latency=true``, the CPU latency of one image (batch 1) of the best checkpoint.

CLI (run dirs, then ``key=value``; ``--help`` lists the options)::

    python -m hrnet_train.report multirun/synthetic_cpu/2026-01-01_12-00-00
    python -m hrnet_train.report outputs/a outputs/b output_dir=reports/ab latency=true threads=1 plot=docs/images/ab.png
    python -m hrnet_train.report outputs/lspet_cpu/<run> curve=val/PCK_limbs    # learning curve vs minutes
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hrnet_train.cli_args import CommandLine, Option, UsageError, parse_bool, run_tool

REPORT_NAME = "report.json"  # written by hrnet_train.training.runner
RESOLVED_CONFIG_NAME = "config_resolved.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
THROUGHPUT_TAG = "train/samples_per_s"
# Metric columns per task, in table order; a column is shown when at least one run recorded it.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "pose": ("AP", "AP50", "AP75", "APm", "APl", "AR", "PCK_limbs", "PCK_all",
             "err_good", "err_jitter", "err_inversion", "err_swap", "err_miss"),
    "face": ("NME", "FR_0.08", "FR_0.10", "AUC_0.1"),
    "segmentation": ("mIoU", "pixel_acc", "mean_acc"),
}
REQUIRED_METRICS = {"pose": ("AP", "AP50", "AP75", "APm", "APl", "AR")}
PLOTTED_METRIC = {"pose": "AP", "face": "NME", "segmentation": "mIoU"}
# Overrides that say where a run was written, not what it trained: left out of row names.
_LOCATION_KEYS = ("hydra.", "output_dir", "run_dir")
MARKDOWN_NAME = "sweep_report.md"
CSV_NAME = "sweep_report.csv"
PLOT_NAME = "ap_vs_gflops.png"


@dataclass(frozen=True)
class RunSummary:
    """One row of the table; ``None`` where a run did not record the value."""

    run: str
    task: str
    dataset: str
    model: str
    head: str
    input_size: str
    codec: str
    sigma: float | None
    params_m: float
    paper_gmacs: float
    gflops: float
    epochs: int
    train_seconds: float  # summed over every segment of a resumed run
    train_samples_per_s: float | None
    latency_ms_b1: float | None
    metrics: dict[str, float] = field(default_factory=dict)


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


def curve_markdown(run_dir: str | Path, tag: str) -> str:
    """The learning curve of one run as a markdown table (minutes, value)."""
    rows = learning_curve(run_dir, tag)
    return "\n".join([f"| minutes | {tag} |", "|---|---|", *(f"| {minutes:.1f} | {value:.4f} |" for minutes, value in rows)])


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


def run_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides Hydra recorded for the run, without the ones that only place outputs."""
    path = run_dir / OVERRIDES_FILE
    if not path.is_file():
        return []
    overrides = yaml.safe_load(path.read_text()) or []
    return [str(o) for o in overrides if not str(o).lstrip("+~").startswith(_LOCATION_KEYS)]


def dataset_label(config: dict[str, Any]) -> str:
    """``data.name``, plus the val annotation file when one was named (runs on different files differ)."""
    data = config.get("data") or {}
    name = str(data.get("name", "?"))
    ann = data.get("val_ann_file")
    return f"{name}:{Path(str(ann)).name}" if ann else name


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
    task = str(report.get("task", "pose"))
    missing = [name for name in REQUIRED_METRICS.get(task, ()) if name not in stats]
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
        task=task,
        dataset=dataset_label(config),
        model=str(_field(report, "model", report_file)),
        head=str(model.get("head", "v1")),
        input_size=str(_field(report, "input_size", report_file)),
        codec=str(codec.get("name", "-")),
        sigma=float(codec["sigma"]) if "sigma" in codec else None,
        params_m=_field(complexity, "params", report_file) / 1e6,
        paper_gmacs=float(_field(complexity, "paper_gmacs", report_file)),
        gflops=float(_field(complexity, "gflops", report_file)),
        epochs=int(_field(report, "epochs", report_file)),
        train_seconds=float(report.get("train_seconds_total", _field(report, "fit_seconds", report_file))),
        train_samples_per_s=training_throughput(run_dir),
        latency_ms_b1=latency_ms,
        metrics={name: float(value) for name, value in stats.items() if isinstance(value, (int, float))},
    )


def _row_names(run_dirs: Sequence[tuple[Path, str]]) -> list[str]:
    """Each run's differing overrides (or its path label); clashes get the path label appended."""
    overrides = [run_overrides(run_dir) for run_dir, _ in run_dirs]
    common = set.intersection(*(set(o) for o in overrides)) if len(overrides) > 1 else set()
    names = []
    for (_, path_label), own in zip(run_dirs, overrides, strict=True):
        differing = [o for o in own if o not in common]
        names.append(" ".join(differing) if differing else path_label)
    counts = {name: names.count(name) for name in names}
    return [f"{name} [{path}]" if counts[name] > 1 and name != path else name
            for name, (_, path) in zip(names, run_dirs, strict=True)]


def collect_runs(roots: Sequence[str | Path], latency: bool = False) -> list[RunSummary]:
    """Rows for every run under ``roots``; raises FileNotFoundError if a root holds no finished run.

    A run's path label is its path below the root (the job number in a multirun), prefixed with the
    root's name when several roots are given; the row name comes from :func:`_row_names`.
    """
    found: list[tuple[Path, str]] = []
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
            found.append((run_dir, label))
    return [summarize_run(run_dir, name, latency) for (run_dir, _), name in zip(found, _row_names(found), strict=True)]


def _format(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


LEADING_COLUMNS = (
    ("run", "run", 0), ("dataset", "dataset", 0), ("model", "model", 0), ("head", "head", 0), ("input", "input_size", 0),
    ("codec", "codec", 0), ("sigma", "sigma", 1), ("params (M)", "params_m", 3), ("GMACs (paper)", "paper_gmacs", 3),
    ("GFLOPs (true)", "gflops", 3),
)
TRAILING_COLUMNS = (
    ("epochs", "epochs", 0), ("train time (s)", "train_seconds", 1), ("train img/s", "train_samples_per_s", 1),
    ("latency b1 (ms)", "latency_ms_b1", 1),
)


def metric_columns(rows: Sequence[RunSummary]) -> list[str]:
    """The metric columns the rows recorded, in task order (pose first, then face, then segmentation)."""
    recorded = set().union(*(row.metrics for row in rows)) if rows else set()
    return [name for names in TASK_METRICS.values() for name in names if name in recorded]


def markdown_table(rows: Sequence[RunSummary]) -> str:
    """Best-checkpoint metrics with complexity and speed, one row per run (pose AP columns are GT-box AP)."""
    trailing = [c for c in TRAILING_COLUMNS if c[1] != "latency_ms_b1" or any(r.latency_ms_b1 is not None for r in rows)]
    metrics = metric_columns(rows)
    titles = [t for t, _, _ in LEADING_COLUMNS] + metrics + [t for t, _, _ in trailing]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for row in rows:
        values = row.__dict__
        cells = [_format(values[key], digits) for _, key, digits in LEADING_COLUMNS]
        cells += [_format(row.metrics.get(name), 4) for name in metrics]
        cells += [_format(values[key], digits) for _, key, digits in trailing]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_table(rows: Sequence[RunSummary]) -> str:
    """All fields at full precision, one column per recorded metric (empty cell = not recorded)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [key for key in RunSummary.__dataclass_fields__ if key != "metrics"]
    metrics = metric_columns(rows)
    writer.writerow(names + metrics)
    for row in rows:
        values = row.__dict__
        writer.writerow(["" if values[n] is None else values[n] for n in names] + [row.metrics.get(m, "") for m in metrics])
    return buffer.getvalue()


def plot_metric_vs_gflops(rows: Sequence[RunSummary], path: Path) -> None:
    """Scatter of each run's main metric (pose AP, face NME, seg mIoU) over true GFLOPs (log x), each point
    labelled with model/head/input/codec/dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    tasks = sorted({row.task for row in rows})
    metric = PLOTTED_METRIC.get(tasks[0], "AP") if len(tasks) == 1 else None
    if metric is None:
        raise ValueError(f"the runs mix tasks {tasks}: plot one task at a time")
    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    datasets = {row.dataset for row in rows}
    for row in rows:
        if metric not in row.metrics:
            continue
        axes.scatter(row.gflops, row.metrics[metric], s=30)
        head = "" if row.head == "v1" else f" {row.head}"
        data = f" {row.dataset}" if len(datasets) > 1 else ""
        axes.annotate(f"{row.model}{head}\n{row.input_size} {row.codec}{data}", (row.gflops, row.metrics[metric]),
                      textcoords="offset points", xytext=(5, 4), fontsize=7)
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.margins(x=0.35, y=0.12)  # room for the point labels
    axes.set_xlabel("GFLOPs (true, 2 x MACs, per image)")
    axes.set_ylabel("GT-box AP (best checkpoint)" if metric == "AP" else f"{metric} (best checkpoint)")
    axes.set_title(f"{metric} vs compute")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def write_report(roots: Sequence[str | Path], output_dir: str | Path | None = None, plot: str | Path | None = None,
                 latency: bool = False) -> dict[str, Path]:
    """Writes sweep_report.md, sweep_report.csv and the plot (default: into the first root); returns their paths."""
    rows = collect_runs(roots, latency)
    out_dir = Path(output_dir) if output_dir is not None else Path(roots[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / MARKDOWN_NAME, "csv": out_dir / CSV_NAME, "plot": Path(plot) if plot else out_dir / PLOT_NAME}
    paths["markdown"].write_text(markdown_table(rows) + "\n")
    paths["csv"].write_text(csv_table(rows))
    plot_metric_vs_gflops(rows, paths["plot"])
    return paths


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"threads: expected a positive integer, got {text!r}")
    return int(text)


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.report",
    summary="One table (markdown + CSV) and a metric-vs-GFLOPs plot of finished train.py runs "
            "(run or multirun dirs), or one run's learning curve (curve=).",
    options=(
        Option("output_dir", "where the table, CSV, plot (or curve) go (default: the first run dir)"),
        Option("plot", "plot file (default: <output_dir>/" + PLOT_NAME + ")"),
        Option("latency", "measure each best checkpoint's CPU latency at batch 1", lambda v: parse_bool(v, "latency"), "false"),
        Option("threads", "torch threads for the latency runs", _positive_int),
        Option("curve", "instead of the table: this tag's learning curve (minutes vs value), e.g. val/PCK_limbs"),
    ),
    examples=(
        "python -m hrnet_train.report multirun/synthetic_cpu/2026-01-01_12-00-00",
        "python -m hrnet_train.report outputs/a outputs/b output_dir=reports/ab latency=true threads=1",
        "python -m hrnet_train.report outputs/lspet_cpu/<run> curve=val/PCK_limbs output_dir=models/lspet_cpu",
    ),
    positional="RUN_DIR",
)


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """Run/multirun dirs and the options -> write_report kwargs plus ``threads`` and ``curve``."""
    args = COMMAND_LINE.parse(argv)
    roots = args.pop("positional")
    if not roots:
        raise UsageError("give at least one run or multirun dir (e.g. multirun/synthetic_cpu/<date>); see --help")
    return {"roots": roots, **args}


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    threads = options.pop("threads")
    curve = options.pop("curve")
    if curve is not None:
        for root in options["roots"]:
            try:
                table = curve_markdown(root, curve)
            except ValueError as error:  # no events, or the tag was not logged
                raise UsageError(str(error)) from None
            print(table)
            if options["output_dir"] is not None:
                path = Path(options["output_dir"]) / f"learning_curve_{curve.replace('/', '_')}.md"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(table + "\n")
                print(f"curve: {path}")
        return
    if threads is not None:
        # One thread gives steadier latencies on a busy machine: OpenMP workers stall when descheduled.
        import torch

        torch.set_num_threads(threads)
    try:
        paths = write_report(**options)
    except (FileNotFoundError, ValueError) as error:  # no finished run there, or a broken report.json
        raise UsageError(str(error)) from None
    print(paths["markdown"].read_text(), end="")
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
