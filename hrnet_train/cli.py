"""Command-line entry points for training and evaluation (Hydra).

``train.py`` / ``evaluate.py`` in a checkout and the installed console scripts ``hrnet-train`` /
``hrnet-evaluate`` run these same functions, and all of them read the config tree from
``hrnet_train.paths.config_dir()`` (the checkout's ``conf/`` or the copy shipped in the package).
"""

from __future__ import annotations

import sys
import time

import hydra
from omegaconf import DictConfig, OmegaConf

from hrnet_train.config_schema import (
    ConfigError,
    check_codec_section,
    check_model_section,
    register_resolvers,
    validate_train_config,
)
from hrnet_train.paths import config_dir

CONFIG_ERROR_EXIT = 2
RUN_FAILURE_EXIT = 1
_PROCESS_START = time.perf_counter()

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def train_main(cfg: DictConfig) -> float:
    """Validate, then train; returns ``optimized_metric`` of the best checkpoint (for Hydra sweepers).

    The config is validated before torch/Lightning are imported or any data is built, so a bad field
    fails in about a second with a message naming it and exit code 2.
    """
    try:
        config = validate_train_config(cfg)
        check_model_section(config)
        check_codec_section(config)
        # Imported only now (it imports Lightning), so field errors above still fail in about a second.
        from hrnet_train.training.launch import check_launch, hydra_multirun

        check_launch(config.trainer, multirun=hydra_multirun())
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr, flush=True)
        sys.exit(CONFIG_ERROR_EXIT)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    from hrnet_train.training.launch import RankAudit
    from hrnet_train.training.runner import run_training

    report = run_training(config, resolved, extra_callbacks=[RankAudit(resolved, config.run_dir)])
    print(f"total wall time (process) {time.perf_counter() - _PROCESS_START:.1f} s", flush=True)
    metric = config.optimized_metric.removeprefix("val/")
    return float(report["stats"][metric])


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def evaluate_main(cfg: DictConfig) -> None:
    """Evaluate a checkpoint, an official ``.pth`` or a results file.

    Exit code 2: a bad setting or input found before inference (named in the message); 1: a failure
    during the run.
    """
    from hrnet_train.evaluation.runner import run_from_config

    try:
        run_from_config(cfg)
    except ConfigError as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr, flush=True)
        sys.exit(CONFIG_ERROR_EXIT)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"evaluate.py: failed: {error}", file=sys.stderr, flush=True)
        sys.exit(RUN_FAILURE_EXIT)
