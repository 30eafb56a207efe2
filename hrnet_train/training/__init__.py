"""Training: loss (losses), LR schedules and optimiser (schedules), weight EMA (ema), crash-safe
checkpoints (checkpointing), LightningModule (module; faces: face_module), LightningDataModule (datamodule),
what each task builds (tasks), callbacks,
TensorBoard prediction grid (visualization) and one whole run (runner.run_training).

Submodules are imported explicitly (``from hrnet_train.training.losses import JointsMSELoss``) so
that light users do not pay for importing Lightning.
"""
