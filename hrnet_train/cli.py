"""Command-line entry points for training and evaluation (Hydra).

``train.py`` / ``evaluate.py`` in a checkout and the installed console scripts ``hrnet-train`` /
``hrnet-evaluate`` run these same functions, and all of them read the config tree from
``hrnet_train.paths.config_dir()`` (the checkout's ``conf/`` or the copy shipped in the package).

Exit codes (every CLI of the project): 0 done; 2 a wrong command line, setting or input found before
any heavy work (the message names the field, and a mistyped key gets "did you mean"); 1 the run
itself failed. A run's log file (``<output dir>/<job>.log``) holds what stdout showed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from hrnet_train.cli_args import EXIT_FAILURE, EXIT_USAGE, error_line
from hrnet_train.config_schema import (
    ConfigError,
    check_accelerator,
    check_codec_section,
    check_model_section,
    register_resolvers,
    validate_train_config,
)
from hrnet_train.override_check import check_overrides
from hrnet_train.paths import config_dir
from hrnet_train.run_log import stdout_copied_to

_PROCESS_START = time.perf_counter()

register_resolvers()


def _hydra_log_file(job: str) -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) / f"{job}.log"


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _train_app(cfg: DictConfig) -> float:
    """Validate, then train; returns ``optimized_metric`` of the best checkpoint (for Hydra sweepers).

    The config is validated before torch/Lightning are imported or any data is built, so a bad field
    fails in about a second with a message naming it and exit code 2.
    """
    try:
        config = validate_train_config(cfg)
        check_model_section(config)
        check_codec_section(config)
        check_accelerator(config.trainer.accelerator, config.trainer.devices)
        # Imported only now (it imports Lightning), so field errors above still fail in about a second.
        from hrnet_train.training.launch import check_launch, hydra_multirun
        from hrnet_train.training.preflight import check_components

        check_launch(config.trainer, multirun=hydra_multirun())
        check_components(config)
    except ConfigError as error:
        print(f"train.py: config error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    from hrnet_train.image_io import ImageReadError
    from hrnet_train.training.divergence import TrainingDiverged
    from hrnet_train.training.launch import RankAudit
    from hrnet_train.training.runner import run_training

    try:
        with stdout_copied_to(_hydra_log_file("train")):
            report = run_training(config, resolved, extra_callbacks=[RankAudit(resolved, config.run_dir)])
            print(f"total wall time (process) {time.perf_counter() - _PROCESS_START:.1f} s", flush=True)
    except ConfigError as error:  # a checkpoint or a split that does not fit, found before training
        print(f"train.py: config error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)
    except TrainingDiverged as error:  # the run failed; no checkpoint holds the diverged weights
        print(f"train.py: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILURE)
    except ImageReadError as error:  # a damaged image met mid-run (data.skip_corrupt=true skips them): one line
        print(f"train.py: failed: {error_line(error)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILURE)
    metric = config.optimized_metric.removeprefix("val/")
    return float(report["stats"][metric])


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def _evaluate_app(cfg: DictConfig) -> None:
    """Evaluate a checkpoint, an official ``.pth`` or a results file."""
    from hrnet_train.evaluation.runner import run_from_config

    try:
        with stdout_copied_to(_hydra_log_file("evaluate")):
            run_from_config(cfg)
    except ConfigError as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"evaluate.py: failed: {error_line(error)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILURE)


def _checked(prog: str, config_name: str, argv: Sequence[str]) -> None:
    """Refuse a mistyped key or group option before Hydra starts (exit 2 with "did you mean")."""
    try:
        check_overrides(config_name, argv)
    except ConfigError as error:
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def train_main() -> None:
    """``train.py`` / ``hrnet-train``."""
    _checked("train.py", "train", sys.argv[1:])
    _train_app()


def evaluate_main() -> None:
    """``evaluate.py`` / ``hrnet-evaluate``."""
    _checked("evaluate.py", "eval", sys.argv[1:])
    _evaluate_app()
