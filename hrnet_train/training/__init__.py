"""Training: losses named by the codecs (losses), LR schedules, optimiser and its parameter groups
(schedules), weight EMA (ema), crash-safe checkpoints (checkpointing), LightningModule (module),
LightningDataModule (datamodule), callbacks, TensorBoard prediction grid (visualization), checks of
the assembled config before any work (preflight) and one whole run (runner.run_training).

Submodules are imported explicitly (``from hrnet_train.training.losses import JointsMSELoss``) so
that light users do not pay for importing Lightning.
"""
