"""Real 2-process DDP training on the CPU (gloo), started from the Hydra CLI exactly as a user would.

Signals checked: one run dir and one checkpoint set for both ranks; both ranks trained their half
of the data (``ranks/rank<N>.json`` written by RankAudit on every rank); validation evaluated each
val instance once although DistributedSampler padded one rank with a repeat (``val/num_instances``
in the CSV metrics equals the val set size while the ranks together saw one sample more).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hrnet_train.codecs import create_codec
from hrnet_train.data.coco import TopDownCocoDataset, resolve_coco_paths
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.paths import REPO_ROOT
from hrnet_train.training.launch import read_rank_records

TRAIN_SCRIPT = REPO_ROOT / "train.py"
# 12 train images hold 27 people, 3 val images 7: odd counts, so 2 ranks need sampler padding.
SYNTHETIC = {"num_train": 12, "num_val": 3, "seed": 3, "image_size": "128x128", "min_person_height": 40.0, "workers": 1}


def tiny_run_overrides(root: Path) -> list[str]:
    """A tiny HRNet for one short epoch on the tiny synthetic set, fp32, CSV metrics every step."""
    return [
        "model=hrnet_tiny",
        f"data.root={root}",
        "data.generate_synthetic=false",
        "data.input_size=128x96",
        "data.batch_size=4",
        "data.val_batch_size=4",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.precision=32",
        "trainer.channels_last=false",
        "trainer.log_every_n_steps=1",
        "trainer.progress_refresh_rate=100",
        "scheduler.warmup_iters=1",
        "eval.num_vis_images=0",
        "logger=csv",
    ]


def run_cli(args: list[str], cwd: Path, launcher: list[str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python train.py <args>`` (or ``<launcher> train.py <args>``) in ``cwd``; output captured."""
    command = [*(launcher or [sys.executable]), str(TRAIN_SCRIPT), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}"


def dataset_sizes(root: Path) -> tuple[int, int]:
    """(train, val) person instances the datasets build from the tiny synthetic set."""
    keypoints = load_keypoint_set("coco17")
    codec = create_codec("legacy", (128, 96))
    sizes = []
    for split, train in (("train", True), ("val", False)):
        ann_file, img_dir = resolve_coco_paths(root, split)
        sizes.append(len(TopDownCocoDataset(ann_file, img_dir, keypoints, codec, train=train)))
    return sizes[0], sizes[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic_ddp"), **SYNTHETIC)


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


def _assert_two_ranks_trained_one_run(run_dir: Path, root: Path, environment: str) -> None:
    num_train, num_val = dataset_sizes(root)
    assert (num_train, num_val) == (27, 7)
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["best-epoch000.ckpt", "last.ckpt"]

    records = read_rank_records(run_dir)
    assert [r["global_rank"] for r in records] == [0, 1]
    assert {r["world_size"] for r in records} == {2}
    assert {r["cluster_environment"] for r in records} == {environment}
    assert len({r["pid"] for r in records}) == 2
    assert records[0]["config_sha256"] == records[1]["config_sha256"]
    for record in records:
        # DistributedSampler: ceil(27 / 2) = 14 samples per rank (one padded repeat); full batches of 4 only.
        assert record["fit"]["train_batches"] == math.ceil(num_train / 2) // 4 == 3
        assert record["fit"]["train_samples"] == 12
        # Base LR 2e-3 at batch 32, scaled linearly to the global batch 2 x 4.
        assert record["fit"]["lr"] == pytest.approx(2e-3 * 8 / 32)
    for stage in ("fit", "validate"):
        seen = [i for record in records for i in record[stage]["val_indices"]]
        assert len(seen) == 8 and set(seen) == set(range(num_val))  # 7 instances + 1 padded repeat

    # One epoch of validation in the logs (the final re-evaluation of the best checkpoint is not an epoch).
    validation_rows = [row for row in _csv_rows(run_dir) if row.get("val/num_instances")]
    assert [float(row["val/num_instances"]) for row in validation_rows] == [num_val]
    assert (run_dir / "report.json").is_file() and (run_dir / "config_resolved.yaml").is_file()


def test_ddp_two_cpu_processes_from_hydra_cli(tiny_root: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    result = run_cli(["trainer=ddp", "trainer.devices=2", *tiny_run_overrides(tiny_root), f"hydra.run.dir={outputs}/run"], tmp_path)
    assert_succeeded(result)

    assert [p.name for p in outputs.iterdir()] == ["run"]  # rank 1 reused rank 0's Hydra dir
    run_dir = outputs / "run"
    _assert_two_ranks_trained_one_run(run_dir, tiny_root, "LightningEnvironment")
    # Hydra's log of the relaunched rank sits beside rank 0's; only rank 0 prints the final report.
    assert {p.name for p in run_dir.glob("*.log")} == {"train.log", "train_ddp_process_1.log"}
    assert result.stdout.count("=== final report ===") == 1


def test_ddp_skip_counts_are_the_union_of_every_rank(tiny_root: Path, tmp_path: Path) -> None:
    """Each rank reads its share of the images; an unreadable image counts once, whichever rank met it."""
    root = tmp_path / "damaged"
    shutil.copytree(tiny_root, root)
    coco = json.loads((root / "annotations" / "person_keypoints_train.json").read_text())
    people = Counter(a["image_id"] for a in coco["annotations"])
    single = [entry for entry in coco["images"] if people[entry["id"]] == 1][:3]  # each read by one rank only
    assert len(single) == 3
    for entry in single:  # cut short
        image = root / "images" / "train" / entry["file_name"]
        image.write_bytes(image.read_bytes()[:200])
    run_dir = tmp_path / "run"
    result = run_cli(["trainer=ddp", "trainer.devices=2", *tiny_run_overrides(root), "data.skip_corrupt=true",
                      f"hydra.run.dir={run_dir}"], tmp_path)
    assert_succeeded(result)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["skipped"] == {"corrupt image": 3}
    assert "skipped: 3 corrupt images" in result.stdout


def test_torchrun_launch_reads_torchelastic_environment(tiny_root: Path, tmp_path: Path) -> None:
    """The multi-node path on one node: torchrun starts both ranks, Lightning reads its environment."""
    run_dir = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", f"--master_port={free_port()}"]
    result = run_cli(["trainer=ddp", "trainer.devices=2", "trainer.num_nodes=1", *tiny_run_overrides(tiny_root), f"hydra.run.dir={run_dir}"],
                     tmp_path, launcher=torchrun)
    assert_succeeded(result)
    _assert_two_ranks_trained_one_run(run_dir, tiny_root, "TorchElasticEnvironment")


@pytest.mark.slow
def test_ranks_with_different_configs_stop_before_training(tiny_root: Path, tmp_path: Path) -> None:
    """Each torchrun process composes its own config; a per-rank difference must stop the run."""
    run_dir = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", f"--master_port={free_port()}"]
    result = run_cli(["trainer=ddp", "trainer.devices=2", *tiny_run_overrides(tiny_root), f"hydra.run.dir={run_dir}",
                      "experiment_name=rank${oc.env:RANK}"], tmp_path, launcher=torchrun)
    assert result.returncode != 0
    assert "ranks run different configs (rank 0: " in result.stdout + result.stderr
    assert not (run_dir / "checkpoints").exists()
