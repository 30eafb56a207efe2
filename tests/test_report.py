"""hrnet_train.report: run dirs -> markdown/CSV table and AP-vs-GFLOPs plot."""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_ddp import assert_succeeded, run_cli, tiny_run_overrides

from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.cli_args import UsageError
from hrnet_train.report import CSV_NAME, MARKDOWN_NAME, PLOT_NAME, collect_runs, main, parse_args, write_report

STATS = {"AP": 0.5, "AP50": 0.75, "AP75": 0.5, "APm": 0.25, "APl": 0.625, "AR": 0.5625,
         "AR50": 0.8, "AR75": 0.6, "ARm": 0.3, "ARl": 0.7}


def _make_run(run_dir: Path, model: str, head: str, codec: str, sigma: float, ap: float, gflops: float,
              throughput: list[float] | None, data: dict | None = None, overrides: list[str] | None = None) -> None:
    """A run dir as train.py leaves it: report.json, config_resolved.yaml, CSV metrics, Hydra's overrides."""
    run_dir.mkdir(parents=True)
    if overrides is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    report = {
        "model": model, "input_size": "128x96", "stats": {**STATS, "AP": ap}, "epochs": 3, "fit_seconds": 120.5,
        "best_checkpoint": str(run_dir / "checkpoints" / "best-epoch002.ckpt"),
        "complexity": {"input_size": "128x96", "params": 1_250_000, "paper_gmacs": gflops / 2 * 1e9 / 2**30, "true_gmacs": gflops / 2, "gflops": gflops},
    }
    (run_dir / "report.json").write_text(json.dumps(report))
    config = {"model": {"name": model, "head": head}, "codec": {"name": codec, "sigma": sigma}, "data": data or {"name": "synthetic"}}
    (run_dir / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    if throughput is not None:
        (run_dir / "csv").mkdir()
        rows = ["epoch,step,train/loss_step,train/samples_per_s"] + [f"0,{i},0.01,{v}" for i, v in enumerate(throughput)] + ["0,9,0.01,"]
        (run_dir / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    sweep = tmp_path / "multirun"
    _make_run(sweep / "0", "hrnet_tiny", "v1", "legacy", 2.0, ap=0.25, gflops=0.088, throughput=[100.0, 40.0, 60.0])
    _make_run(sweep / "1", "hrnet_w18_small_v1", "v2", "dark", 2.5, ap=0.5, gflops=0.5, throughput=None)
    _make_run(sweep / "10", "hrnet_w18_small_v1", "v1", "udp", 3.0, ap=0.4, gflops=0.45, throughput=[10.0, 30.0])
    (sweep / "2").mkdir()  # a crashed trial: no report.json
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_report_from_hand_made_run_dirs(sweep_dir: Path, tmp_path: Path) -> None:
    paths = write_report([sweep_dir], output_dir=tmp_path / "report")
    assert paths == {"markdown": tmp_path / "report" / MARKDOWN_NAME, "csv": tmp_path / "report" / CSV_NAME, "plot": tmp_path / "report" / PLOT_NAME}

    lines = paths["markdown"].read_text().splitlines()
    assert lines[0] == ("| run | dataset | model | head | input | codec | sigma | params (M) | GMACs (paper) | GFLOPs (true) "
                        "| AP | AP50 | AP75 | APm | APl | AR | epochs | train time (s) | train img/s |")
    assert lines[2] == ("| 0 | synthetic | hrnet_tiny | v1 | 128x96 | legacy | 2.0 | 1.250 | 0.041 | 0.088 | 0.2500 | 0.7500 | 0.5000 "
                        "| 0.2500 | 0.6250 | 0.5625 | 3 | 120.5 | 60.0 |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 0", "| 1", "| 10"]  # job-number order, crashed trial 2 absent
    assert lines[3].endswith("| 3 | 120.5 | - |")  # no logged throughput

    with paths["csv"].open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["run"], r["codec"], r["head"], float(r["AP"]), float(r["gflops"])) for r in rows] == [
        ("0", "legacy", "v1", 0.25, 0.088), ("1", "dark", "v2", 0.5, 0.5), ("10", "udp", "v1", 0.4, 0.45)]
    assert [r["train_samples_per_s"] for r in rows] == ["60.0", "", "20.0"]  # median of the logged steps
    assert float(rows[0]["paper_gmacs"]) == pytest.approx(0.044e9 / 2**30)
    assert _png_size(paths["plot"]) == (768, 528)


def test_report_cli_arguments_and_errors(sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "docs" / "ap.png"
    main([str(sweep_dir), f"plot={plot}"])
    printed = capsys.readouterr().out
    assert printed.count("| hrnet_w18_small_v1 |") == 2 and f"plot: {plot}" in printed
    assert (sweep_dir / MARKDOWN_NAME).is_file() and plot.is_file()

    assert parse_args(["a", "b", "output_dir=o", "latency=true", "threads=1"]) == {
        "roots": ["a", "b"], "output_dir": "o", "plot": None, "latency": True, "threads": 1, "curve": None}
    assert parse_args(["a", "curve=val/PCK_limbs"])["curve"] == "val/PCK_limbs"
    with pytest.raises(UsageError, match="threads: expected a positive integer, got '0'"):
        parse_args(["a", "threads=0"])
    with pytest.raises(UsageError, match="latency: expected true or false, got 'maybe'"):
        parse_args(["a", "latency=maybe"])
    with pytest.raises(UsageError, match="colour: unknown option"):
        parse_args(["a", "colour=red"])
    with pytest.raises(UsageError, match="out: unknown option \\(did you mean 'output_dir'\\?\\)"):
        parse_args(["a", "out=o"])
    with pytest.raises(UsageError, match="give at least one run or multirun dir"):
        parse_args(["output_dir=o"])
    single = tmp_path / "single_run"
    _make_run(single, "hrnet_tiny", "v1", "legacy", 2.0, ap=0.125, gflops=0.088, throughput=None)
    assert [row.run for row in collect_runs([single, sweep_dir])] == ["single_run", "multirun/0", "multirun/1", "multirun/10"]
    with pytest.raises(FileNotFoundError, match="no report.json at or below it"):
        collect_runs([sweep_dir / "2"])
    with pytest.raises(FileNotFoundError, match="no such directory"):
        collect_runs([tmp_path / "absent"])

    own_report = sweep_dir / "0" / "report.json"
    before = own_report.read_bytes()
    with pytest.raises(ValueError, match=r"is the report.json of run .*0 file itself; choose another output_dir or plot file"):
        write_report([sweep_dir], plot=own_report)
    assert own_report.read_bytes() == before

    broken = sweep_dir / "0" / "report.json"
    report = json.loads(broken.read_text())
    del report["stats"]["AP75"]
    broken.write_text(json.dumps(report))
    with pytest.raises(ValueError, match=r"0/report.json: stats lack \['AP75'\]"):
        collect_runs([sweep_dir])


SYNTHETIC = {"num_train": 12, "num_val": 3, "seed": 3, "image_size": "128x128", "min_person_height": 40.0, "workers": 1}


@pytest.mark.slow
def test_report_on_a_tiny_multirun_over_codecs_and_input_sizes(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "synthetic", **SYNTHETIC)
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", *tiny_run_overrides(root), "codec=legacy,dark", "data.input_size=128x96,64x64", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert_succeeded(result)

    out = tmp_path / "report"
    command = [sys.executable, "-m", "hrnet_train.report", str(sweep), f"output_dir={out}", "latency=true"]
    printed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    assert printed.splitlines()[0].endswith("| train img/s | latency b1 (ms) |")

    with (out / CSV_NAME).open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    # Rows are named by the overrides that differ between the sweep's jobs (order of the job numbers).
    assert [r["run"] for r in rows] == ["data.input_size=128x96 codec=legacy", "data.input_size=128x96 codec=dark",
                                        "data.input_size=64x64 codec=legacy", "data.input_size=64x64 codec=dark"]
    by_variant = {(r["codec"], r["input_size"]): r for r in rows}
    assert sorted(by_variant) == [("dark", "128x96"), ("dark", "64x64"), ("legacy", "128x96"), ("legacy", "64x64")]
    for job, row in enumerate(rows):
        report = json.loads((sweep / str(job) / "report.json").read_text())
        assert float(row["AP"]) == report["stats"]["AP"] and float(row["train_seconds"]) == report["train_seconds_total"]
        assert int(float(row["params_m"]) * 1e6 + 0.5) == report["complexity"]["params"] == 221081
        assert float(row["train_samples_per_s"]) > 0 and float(row["latency_ms_b1"]) > 0
    # Every layer counted scales with the pixel count: 64x64 costs exactly 1/3 of 128x96.
    for codec in ("legacy", "dark"):
        small, large = float(by_variant[codec, "64x64"]["gflops"]), float(by_variant[codec, "128x96"]["gflops"])
        assert small == pytest.approx(large / 3, rel=1e-12)
    assert _png_size(out / PLOT_NAME) == (768, 528)


def test_learning_curve_reads_minutes_from_tensorboard_events(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from hrnet_train.report import learning_curve

    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    writer.add_scalar("train/lr", 1e-3, 0, walltime=1000.0)
    writer.add_scalar("val/PCK_limbs", 0.25, 10, walltime=1090.0)
    writer.add_scalar("val/PCK_limbs", 0.5, 20, walltime=1180.0)
    writer.close()
    assert learning_curve(tmp_path, "val/PCK_limbs") == [(1.5, 0.25), (3.0, 0.5)]
    with pytest.raises(ValueError, match="'val/AP' was not logged"):
        learning_curve(tmp_path, "val/AP")
    with pytest.raises(ValueError, match="no TensorBoard events"):
        learning_curve(tmp_path / "missing", "val/AP")


def test_rows_named_by_differing_overrides_with_dataset_and_summed_time(tmp_path: Path) -> None:
    """Runs that differ only by data get distinct names and a dataset column; a resumed run reports the
    time of all its segments."""
    common = ["trainer.max_epochs=3", "output_dir=/somewhere/else"]
    _make_run(tmp_path / "a", "hrnet_tiny", "v1", "legacy", 2.0, 0.3, 0.1, None, {"name": "coco"}, ["data=coco", *common])
    _make_run(tmp_path / "b", "hrnet_tiny", "v1", "legacy", 2.0, 0.4, 0.1, None,
              {"name": "coco", "val_ann_file": "annotations/mine.json"}, ["data=coco", "data.val_ann_file=annotations/mine.json", *common])
    _make_run(tmp_path / "c", "hrnet_tiny", "v1", "legacy", 2.0, 0.5, 0.1, None, {"name": "lspet"}, ["data=lspet", *common])
    resumed = json.loads((tmp_path / "c" / "report.json").read_text())
    resumed["train_seconds_total"] = 300.0  # 120.5 s in this segment, the rest before the resume
    (tmp_path / "c" / "report.json").write_text(json.dumps(resumed))
    rows = collect_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert [r.run for r in rows] == ["data=coco", "data=coco data.val_ann_file=annotations/mine.json", "data=lspet"]
    assert [r.dataset for r in rows] == ["coco", "coco:mine.json", "lspet"]
    assert [r.train_seconds for r in rows] == [120.5, 120.5, 300.0]


def test_curve_is_written_to_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run" / "tensorboard"))
    writer.add_scalar("train/lr", 1e-3, 0, walltime=1000.0)
    writer.add_scalar("val/AP", 0.5, 10, walltime=1060.0)
    writer.close()
    main([str(tmp_path / "run"), "curve=val/AP", f"output_dir={tmp_path / 'out'}"])
    written = (tmp_path / "out" / "learning_curve_val_AP.md").read_text()
    assert written == "| minutes | val/AP |\n|---|---|\n| 1.0 | 0.5000 |\n"
    assert written.strip() in capsys.readouterr().out
