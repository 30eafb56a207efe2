"""Train an HRNet pose model: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

With no arguments it generates the synthetic dataset if needed, trains a small HRNet on the CPU and
prints the final report. The config is validated (conf/ + overrides -> hrnet_train.config_schema)
before torch/Lightning are imported or any data is built, so a bad field fails in about a second
with a message naming it and exit code 2.
"""

from __future__ import annotations

import sys
import time

_PROCESS_START = time.perf_counter()

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from hrnet_train.config_schema import (  # noqa: E402
    ConfigError,
    check_model_section,
    register_resolvers,
    validate_train_config,
)
from hrnet_train.paths import config_dir  # noqa: E402

CONFIG_ERROR_EXIT = 2

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float:
    """Validate, then train; returns ``optimized_metric`` of the best checkpoint (for Hydra sweepers)."""
    try:
        config = validate_train_config(cfg)
        check_model_section(config)
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


if __name__ == "__main__":
    main()
