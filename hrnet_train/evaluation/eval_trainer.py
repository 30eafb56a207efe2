"""The Lightning Trainer that evaluate.py runs inference with (every task): devices, DDP, precision, no logs.

Under DDP (``devices > 1``) each rank predicts its DistributedSampler share; the task's validation loop
gathers and deduplicates the ranks' results, so N devices give the numbers of one.
"""

from __future__ import annotations

import pytorch_lightning as pl

from hrnet_train.config_schema import EvaluateConfig


def evaluation_trainer(config: EvaluateConfig) -> pl.Trainer:
    """A validate-only Trainer for evaluate.py's ``accelerator``/``devices``/``precision`` settings."""
    return pl.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        strategy="ddp" if config.devices > 1 else "auto",
        precision=config.lightning_precision,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
    )
