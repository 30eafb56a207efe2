"""Hydra sweeps: the launch guard, Optuna search of LR/sigma, and one config per trial across ranks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_ddp import assert_succeeded, run_cli, tiny_run_overrides

from hrnet_train.config_schema import ConfigError, TrainerConfig
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.training.launch import check_launch, config_digest, external_world_size, read_rank_records

SYNTHETIC = {"num_train": 12, "num_val": 3, "seed": 3, "image_size": "128x128", "min_person_height": 40.0, "workers": 1}
LR_RANGE = (3e-4, 1e-2)  # conf/hparams_search/synthetic_optuna.yaml
SIGMA_RANGE = (1.5, 3.0)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic_sweeps"), **SYNTHETIC)


def _trainer(**fields) -> TrainerConfig:
    return TrainerConfig(**fields).check("trainer")


@pytest.mark.parametrize(
    ("trainer", "multirun", "environ"),
    [
        (_trainer(strategy="ddp", devices=4), False, {}),  # single run: Lightning relaunch is fine
        (_trainer(strategy="ddp", devices=1), True, {}),  # one process per trial
        (_trainer(strategy="ddp_spawn", devices=2), True, {}),
        (_trainer(strategy="ddp_fork", devices=2), True, {}),
        (_trainer(strategy="ddp", devices=2), False, {"WORLD_SIZE": "2"}),  # torchrun single run
    ],
)
def test_check_launch_allows(trainer: TrainerConfig, multirun: bool, environ: dict[str, str]) -> None:
    check_launch(trainer, multirun, environ)


@pytest.mark.parametrize(
    ("trainer", "environ", "message"),
    [
        (_trainer(strategy="ddp", devices=2), {}, "trainer.strategy='ddp' with 2 processes cannot run inside a Hydra multirun"),
        (_trainer(strategy="auto", devices=1, num_nodes=2), {}, "trainer.strategy='auto' with 2 processes"),
        (_trainer(strategy="ddp_spawn", devices=2, num_nodes=2), {}, "trainer.num_nodes=2 in a Hydra multirun"),
        (_trainer(strategy="ddp_spawn", devices=1), {"WORLD_SIZE": "2"}, "external launcher (2 processes"),
        (_trainer(strategy="ddp_spawn", devices=1), {"SLURM_STEP_NUM_TASKS": "8"}, "external launcher (8 processes"),
    ],
)
def test_check_launch_refuses_sweeps_whose_ranks_rerun_the_sweep(trainer: TrainerConfig, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="ddp_spawn") as error:
        check_launch(trainer, multirun=True, environ=environ)
    assert message in str(error.value)


def test_external_world_size_and_digest() -> None:
    assert external_world_size({}) == 1
    assert external_world_size({"WORLD_SIZE": "4", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "16"}) == 8
    assert external_world_size({"WORLD_SIZE": ""}) == 1
    assert config_digest({"a": 1, "b": {"c": [1, 2]}}) == config_digest({"b": {"c": [1, 2]}, "a": 1})
    assert config_digest({"a": 1}) != config_digest({"a": 2})
    assert config_digest({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"


def test_multirun_with_ddp_launcher_fails_fast(tiny_root: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = run_cli(["-m", "trainer=ddp", "trainer.devices=2", *tiny_run_overrides(tiny_root), "optimizer.lr=1e-3,2e-3",
                      f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert result.returncode == 2
    assert "config error: trainer.strategy='ddp' with 2 processes cannot run inside a Hydra multirun" in result.stderr
    assert "Use trainer=ddp_spawn" in result.stderr
    assert not list(sweep_dir.rglob("*.ckpt")) and not list(sweep_dir.rglob("ranks"))
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["0", "multirun.yaml"]  # stopped in the first job


def _trial_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name))


def _sampled(trial_dir: Path) -> dict[str, float]:
    overrides = yaml.safe_load((trial_dir / ".hydra" / "overrides.yaml").read_text())
    return {key: float(value) for key, value in (o.split("=", 1) for o in overrides) if key in ("optimizer.lr", "codec.sigma")}


def _assert_optuna_study(sweep_dir: Path, trials: int) -> list[Path]:
    """Sampled values in range and used by the trial; best_value is the best trial's val AP."""
    trial_dirs = _trial_dirs(sweep_dir)
    assert [p.name for p in trial_dirs] == [str(i) for i in range(trials)]
    aps = []
    for trial_dir in trial_dirs:
        sampled = _sampled(trial_dir)
        assert LR_RANGE[0] <= sampled["optimizer.lr"] <= LR_RANGE[1] and SIGMA_RANGE[0] <= sampled["codec.sigma"] <= SIGMA_RANGE[1]
        resolved = yaml.safe_load((trial_dir / "config_resolved.yaml").read_text())
        assert (resolved["optimizer"]["lr"], resolved["codec"]["sigma"]) == (sampled["optimizer.lr"], sampled["codec.sigma"])
        aps.append(json.loads((trial_dir / "report.json").read_text())["stats"]["AP"])
    assert len({_sampled(p)["optimizer.lr"] for p in trial_dirs}) == trials
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(aps), abs=1e-6)
    hydra = yaml.safe_load((trial_dirs[0] / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert (hydra["sweeper"]["direction"], hydra["mode"]) == ("maximize", "MULTIRUN")
    return trial_dirs


@pytest.mark.slow
def test_optuna_search_tunes_lr_and_sigma(tiny_root: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "optuna"
    result = run_cli(["hparams_search=synthetic_optuna", "hydra.sweeper.n_trials=2", *tiny_run_overrides(tiny_root),
                      f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert_succeeded(result)
    _assert_optuna_study(sweep_dir, trials=2)


@pytest.mark.slow
def test_optuna_trials_with_two_ddp_spawn_ranks_share_one_config(tiny_root: Path, tmp_path: Path) -> None:
    """Optuna is where a relaunched rank would draw its own values; with ddp_spawn both ranks of a
    trial report the trial's config digest and LR."""
    sweep_dir = tmp_path / "optuna_ddp"
    result = run_cli(["hparams_search=synthetic_optuna", "hydra.sweeper.n_trials=2", "trainer=ddp_spawn", "trainer.devices=2",
                      *tiny_run_overrides(tiny_root), f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert_succeeded(result)
    digests = []
    for trial_dir in _assert_optuna_study(sweep_dir, trials=2):
        records = read_rank_records(trial_dir)
        assert [r["global_rank"] for r in records] == [0, 1]
        assert records[0]["config_sha256"] == records[1]["config_sha256"]
        resolved = yaml.safe_load((trial_dir / "config_resolved.yaml").read_text())
        assert records[0]["config_sha256"] == config_digest(resolved)
        lr = _sampled(trial_dir)["optimizer.lr"] * 8 / 32  # linear scaling to the global batch 2 x 4
        assert [r["fit"]["lr"] for r in records] == pytest.approx([lr, lr])
        assert [r["fit"]["train_samples"] for r in records] == [12, 12]  # 3 full batches of 4 per rank
        assert json.loads((trial_dir / "report.json").read_text())["epochs"] == 1  # trained in the spawned ranks
        digests.append(records[0]["config_sha256"])
    assert len(set(digests)) == 2
