"""Logging from the training step without making the host wait for the GPU.

Two things in Lightning's logging synchronise with the device (measured in its 2.6 sources):
``self.log`` turns a Python number into a tensor on the module's device (a host-to-device copy from
pageable memory, which waits for the queued GPU work), and after EVERY step it converts each
progress-bar value with ``.item()`` (a device-to-host copy, which waits too). Values on the logger
only are converted on logging steps (``log_every_n_steps``). So step values are logged as host
tensors (:func:`host_scalar`) and a device value reaches the progress bar only as a host copy made
on logging steps (:func:`is_logging_step`): one wait per ``log_every_n_steps`` steps instead of
several per step.
"""

from __future__ import annotations

import torch


def host_scalar(value: float) -> torch.Tensor:
    """A number as a CPU tensor, which ``self.log`` keeps on the CPU (a float would be copied to the device)."""
    return torch.tensor(float(value), dtype=torch.float32)


def is_logging_step(log_every_n_steps: int, steps_done: int) -> bool:
    """Whether the optimiser step that completes ``steps_done`` steps is one Lightning writes to the logger
    (``Trainer.log_every_n_steps``; 0 = never)."""
    return log_every_n_steps > 0 and steps_done % log_every_n_steps == 0
