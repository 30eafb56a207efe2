"""One CLI convention: --help everywhere, exit codes, "did you mean", the config traps, the defaults, honest logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_ddp import SYNTHETIC, tiny_run_overrides

from hrnet_train.config_schema import (
    ConfigError,
    DataConfig,
    auto_workers,
    available_cores,
    register_resolvers,
    validate_evaluate_config,
    validate_train_config,
)
from hrnet_train.data.coco import resolve_coco_paths
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.override_check import check_overrides
from hrnet_train.paths import REPO_ROOT, config_dir

register_resolvers()
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
LSPET_CKPT = REPO_ROOT / "models" / "lspet_cpu" / "lspet_cpu.ckpt"

ENTRY_POINTS = {
    "train.py": [str(REPO_ROOT / "train.py")],
    "evaluate.py": [str(REPO_ROOT / "evaluate.py")],
    "demo": ["-m", "hrnet_train.demo"],
    "export": ["-m", "hrnet_train.export"],
    "slim_checkpoint": ["-m", "hrnet_train.slim_checkpoint"],
    "report": ["-m", "hrnet_train.report"],
    "complexity": ["-m", "hrnet_train.complexity"],
    "browse": ["-m", "hrnet_train.data.browse"],
    "lspet": ["-m", "hrnet_train.data.lspet"],
    "synthetic": ["-m", "hrnet_train.data.synthetic"],
    "mean_pose": ["-m", "hrnet_train.baselines.mean_pose"],
    "mean_shape": ["-m", "hrnet_train.baselines.mean_shape"],
    "face_convert": ["-m", "hrnet_train.data.face_convert"],
    "mediapipe": ["-m", "hrnet_train.baselines.mediapipe"],
}


def _run(args: list[str], cwd: Path = REPO_ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_every_entry_point_answers_help_with_options_and_an_example(name: str) -> None:
    done = _run([*ENTRY_POINTS[name], "--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout.lower()
    assert "example" in text and "exit codes" in text
    assert "output_dir" in text or name in ("complexity", "mean_pose", "mean_shape")  # the one output key, where there is output


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["train.py", "trainer.max_epoch=3"], "trainer.max_epoch: no such key (did you mean 'trainer.max_epochs'?)"),
        (["train.py", "modle=hrnet_w32"], "modle: no such key (did you mean 'model'?)"),
        (["train.py", "data=cocoo"], "data=cocoo: no such option in conf/data (did you mean 'coco'?)"),
        (["evaluate.py", "flip_tset=false"], "flip_tset: no such key (did you mean 'flip_test'?)"),
        (["demo", "detect_evry=2"], "detect_evry: no such key (did you mean 'detect_every'?)"),
        (["export", "model=hrnet_tiny", "out=x"], "out: unknown option (did you mean 'output_dir'?)"),
    ],
)
def test_mistyped_key_exits_2_with_did_you_mean(command: list[str], message: str) -> None:
    done = _run([*ENTRY_POINTS[command[0]], *command[1:]], timeout=60)
    assert done.returncode == 2, done.stdout[-1000:] + done.stderr[-2000:]
    assert message in done.stderr
    assert "+trainer" not in done.stderr  # not Hydra's "use +key" advice


def test_sweep_values_and_additions_pass_the_check() -> None:
    check_overrides("train", ["-m", "codec=legacy,dark", "trainer.max_epochs=1,2", "+extra_key=1", "hydra.run.dir=x"])
    with pytest.raises(ConfigError, match="codec=darc: no such option"):
        check_overrides("train", ["-m", "codec=legacy,darc"])


def test_exit_codes_usage_before_work_and_failure_during_run(tmp_path: Path) -> None:
    assert _run([*ENTRY_POINTS["evaluate.py"], f"ckpt={tmp_path / 'missing.ckpt'}", "data.root=/nowhere"]).returncode == 2
    assert _run([*ENTRY_POINTS["report"], str(tmp_path)]).returncode == 2  # a folder without finished runs
    assert _run([*ENTRY_POINTS["export"], "model=hrnet_w33"]).returncode == 2
    (tmp_path / "run").mkdir()
    assert _run([*ENTRY_POINTS["report"], str(tmp_path / "run"), "latency=maybe"]).returncode == 2


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.run_dir = "/tmp/unused"
    return validate_train_config(OmegaConf.to_container(cfg, resolve=True))


def test_data_group_values_win_over_the_main_job(tmp_path: Path) -> None:
    coco = _compose("data=coco", f"data.root={tmp_path}")
    assert (coco.data.input_hw, coco.experiment_name) == ((256, 192), "coco_cpu")
    assert coco.data.num_workers is None and coco.data.loader_workers() <= available_cores()
    assert coco.data.pin_memory_for(uses_gpu=False) is False and coco.data.pin_memory_for(uses_gpu=True) is True
    lspet = _compose("data=lspet", f"data.root={tmp_path}", "data.lspet_source=null")
    assert lspet.data.input_hw == (192, 160)
    main_job = _compose()
    assert (main_job.data.input_hw, main_job.experiment_name) == ((128, 96), "synthetic_cpu")
    assert (main_job.trainer.max_epochs, main_job.trainer.num_threads, main_job.data.num_workers) == (6, 1, 1)


def test_loader_workers_never_exceed_the_cores() -> None:
    data = DataConfig(name="x", root=".", input_size="64x64", num_workers=64)
    assert data.loader_workers() == available_cores()
    assert DataConfig(name="x", root=".", input_size="64x64", num_workers=None).loader_workers() == auto_workers(available_cores())
    assert (auto_workers(1), auto_workers(2), auto_workers(64)) == (0, 1, 8)


def test_evaluate_defaults_are_the_measured_ones(tmp_path: Path) -> None:
    """conf/eval.yaml: automatic loader workers and one torch thread (measurements in its comments)."""
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(b"")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[f"ckpt={ckpt}"])
    config = validate_evaluate_config(OmegaConf.to_container(cfg, resolve=True))
    assert (config.num_workers, config.num_threads) == (None, 1)
    assert config.loader_workers() == auto_workers(available_cores())


def test_other_annotation_names_say_which_key_to_set(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "my_train_keypoints.json").write_text("{}")
    (tmp_path / "train2017").mkdir()
    with pytest.raises(FileNotFoundError, match="set data.train_ann_file=annotations/my_train_keypoints.json"):
        resolve_coco_paths(tmp_path, "train2017", ann_key="data.train_ann_file")


def test_inference_does_not_import_lightning() -> None:
    code = (
        "import sys, numpy as np\n"
        "from hrnet_train.inference.estimator import PoseEstimator\n"
        f"estimator = PoseEstimator.from_checkpoint({str(LSPET_CKPT)!r}, flip_test=False)\n"
        "(people,) = estimator.predict(np.zeros((160, 120, 3), np.uint8))\n"
        "assert len(people) == 1 and people[0]['keypoint_names'][0] == 'right_ankle', people\n"
        "assert people[0]['box'].shape == (5,)\n"
        "print('lightning' if any(m.split('.')[0] in ('pytorch_lightning', 'lightning') for m in sys.modules) else 'light')\n"
    )
    done = _run(["-c", code])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "light"


def test_train_cli_log_file_curves_and_final_evaluation(tmp_path: Path) -> None:
    """A real train.py run: its train.log holds the banner, the epoch tables and the final report without
    escape codes; loss/LR curves get a point every epoch although an epoch has fewer batches than
    log_every_n_steps; the final re-evaluation of the best checkpoint is not an extra epoch in the logs."""
    root = ensure_synthetic_dataset(tmp_path / "synthetic", **SYNTHETIC)
    overrides = [o for o in tiny_run_overrides(root) if not o.startswith(("logger=", "trainer.log_every_n_steps", "trainer.max_epochs"))]
    run_dir = tmp_path / "run"
    done = _run([str(REPO_ROOT / "train.py"), *overrides, "trainer.max_epochs=2", "trainer.log_every_n_steps=50",
                 f"output_dir={run_dir}"], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    log = (run_dir / "train.log").read_text()
    for text in ("run dir        :", "| epoch 0 |", "| epoch 1 |", "=== final report ===", "total wall time (process)"):
        assert text in log and text in done.stdout
    assert "\x1b" not in log and "\r" not in log and "\x1b" not in done.stdout
    assert "best checkpoint" not in done.stdout.split("=== final report ===")[0]  # no third epoch table
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("train/loss_step")) >= 2 and len(events.Scalars("train/lr")) >= 2  # 6 batches/epoch < 50
    assert [e.step for e in events.Scalars("val/AP")] == sorted({e.step for e in events.Scalars("val/AP")})
    assert len(events.Scalars("val/AP")) == 2  # two epochs, not three
    report = json.loads((run_dir / "report.json").read_text())
    assert report["task"] == "pose" and 0 < report["fit_seconds"] and report["train_seconds_total"] > 0
    assert not (tmp_path / "outputs").exists()  # output_dir= is the only place written
