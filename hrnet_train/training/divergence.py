"""Stopping a run that diverged before its weights reach a checkpoint.

A NaN or exploding loss used to end "successfully": Lightning kept stepping, validation scored the
garbage and ``best``/``last`` were written with NaN weights (``optimizer.lr=inf``: 202 of 242
tensors). :class:`DivergenceGuard` stops training with :class:`TrainingDiverged`, whose message names
the global step, epoch, learning rate and the batch's image ids, at the first of:

* a non-finite training loss, or one above ``loss.divergence_factor`` times the run's first loss
  (Adam at ``lr=1e3`` keeps the loss finite at 10^8 times its start: no longer learning);
* non-finite gradients when gradient clipping is on (clipping would spread them into every weight),
  checked before the optimiser step; not under ``16-mixed``, whose GradScaler skips such steps by design;
* non-finite weights before validation and at the end of an epoch, i.e. before any checkpoint;
* non-finite network outputs in validation (weights still finite but too large: SGD at ``lr=1e3``),
  read from the ``finite_outputs`` flag a module's ``validation_step`` returns, before any metric.

A step's flags are tensors on the loss's device. On the CPU they are read at once; on a GPU they are
read on logging steps and at epoch end (one wait per ``log_every_n_steps``, as in step_logging), and
the message still names the first bad step. Under DDP the ranks agree on the decision, so all stop
together. :func:`non_finite_tensors` also guards the checkpoint writer itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch

from hrnet_train.training.step_logging import is_logging_step

SHOWN_IDS = 16  # image ids listed in the message (the count is always given)


class TrainingDiverged(RuntimeError):
    """Training produced non-finite or exploding numbers; the message says where (exit code 1)."""


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold nan or inf (one device wait per device)."""
    names = [name for name, value in state.items() if isinstance(value, torch.Tensor) and value.is_floating_point()]
    by_device: dict[torch.device, list[str]] = {}
    for name in names:
        by_device.setdefault(state[name].device, []).append(name)
    bad: set[str] = set()
    for group in by_device.values():
        finite = torch.stack([torch.isfinite(state[name]).all() for name in group]).tolist()
        bad.update(name for name, ok in zip(group, finite, strict=True) if not ok)
    return [name for name in names if name in bad]


def describe_tensors(names: list[str], total: int) -> str:
    """``202 of 242 tensors (model.conv1.weight, ...)``."""
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"{len(names)} of {total} tensors ({shown})"


@dataclass(frozen=True)
class StepContext:
    """Where a batch was trained: what the message reports (image ids are read only then)."""

    global_step: int
    epoch: int
    batch_idx: int
    lr: float
    image_ids: Any  # the batch's meta["image_id"] (a tensor, possibly on the device) or None

    def describe(self) -> str:
        return (f"global step {self.global_step} (epoch {self.epoch}, batch {self.batch_idx} of the epoch, "
                f"learning rate {self.lr:.6g}); the batch held {_image_id_text(self.image_ids)}")


def readable_at_once(flag: torch.Tensor) -> bool:
    """A CPU flag costs nothing to read; one on an accelerator would make the host wait for it."""
    return flag.device.type == "cpu"


def _image_id_text(image_ids: Any) -> str:
    if image_ids is None:
        return "no image ids (the batch has no meta['image_id'])"
    ids = image_ids.tolist() if isinstance(image_ids, torch.Tensor) else list(image_ids)
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")
    return f"image ids [{shown}] ({len(ids)} samples)"


def _image_ids(batch: Any) -> Any:
    meta = batch.get("meta") if isinstance(batch, Mapping) else None
    return meta.get("image_id") if isinstance(meta, Mapping) else None


def _learning_rate(trainer: pl.Trainer) -> float:
    return float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else float("nan")


ADVICE = ("No checkpoint holds these weights: best/last are those of the last finite epoch, if any. "
          "Lower optimizer.lr, set trainer.gradient_clip_val, or check these images' annotations.")


@dataclass(frozen=True)
class _Pending:
    bad: torch.Tensor  # bool scalar on the value's device
    what: str  # "loss", "gradient norm"
    value: torch.Tensor
    context: StepContext


class DivergenceGuard(pl.Callback):
    """Raises :class:`TrainingDiverged` at the first diverged step (see the module docstring).

    ``loss_factor``: the loss may grow to this many times the run's first (positive, finite) loss;
    None checks finiteness only. The reference loss travels in the checkpoints, so a resumed run
    applies the same limit.
    """

    def __init__(self, loss_factor: float | None) -> None:
        self.loss_factor = loss_factor
        self._reference: torch.Tensor | None = None
        self._pending: list[_Pending] = []
        self._context: StepContext | None = None
        self._weights_checked_at = -1
        self._validation_flags: list[torch.Tensor] = []

    # ------------------------------------------------------------------ per step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._context = StepContext(trainer.global_step, trainer.current_epoch, batch_idx, _learning_rate(trainer),
                                    _image_ids(batch))

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if not trainer.gradient_clip_val or trainer.precision == "16-mixed":
            return
        grads = [p.grad.detach() for p in pl_module.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
            self._watch(trainer, ~torch.isfinite(norm), "gradient norm", norm, logging_step=False)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach().float()
        bad = ~torch.isfinite(loss)
        if self.loss_factor is not None:
            if self._reference is None:
                self._reference = loss.clone()
            elif self._reference.device != loss.device:  # restored from a checkpoint on the CPU
                self._reference = self._reference.to(loss.device)
            usable = torch.isfinite(self._reference) & (self._reference > 0)
            bad = bad | (usable & (loss > self._reference * self.loss_factor))
            self._reference = torch.where(usable, self._reference, loss)
        logging = is_logging_step(trainer.log_every_n_steps, steps_done=trainer.global_step)
        self._watch(trainer, bad, "loss", loss, logging_step=logging)

    def _watch(self, trainer: pl.Trainer, bad: torch.Tensor, what: str, value: torch.Tensor, logging_step: bool) -> None:
        assert self._context is not None, "on_train_batch_start sets the step context"
        self._pending.append(_Pending(bad, what, value, self._context))
        if logging_step or readable_at_once(bad):
            self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        pending, self._pending = self._pending, []
        flags = torch.stack([p.bad for p in pending]).tolist() if pending else []
        first = next((p for p, bad in zip(pending, flags, strict=True) if bad), None)
        if not trainer.strategy.reduce_boolean_decision(first is not None, all=False):
            return
        if first is None:
            raise TrainingDiverged(f"training diverged on another process (rank {trainer.global_rank} saw finite values); "
                                   "its message names the step and images")
        raise TrainingDiverged(f"training diverged at {first.context.describe()}: {self._problem(first)}. {ADVICE}")

    def _problem(self, pending: _Pending) -> str:
        value = float(pending.value)
        if pending.what == "loss" and torch.isfinite(pending.value) and self._reference is not None:
            return (f"the loss {value:.6g} exceeds loss.divergence_factor={self.loss_factor:g} x the run's first loss "
                    f"{float(self._reference):.6g}")
        return f"the {pending.what} is {value}"

    # ------------------------------------------------------------------ before anything is saved

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._check_weights(trainer, pl_module)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and isinstance(outputs, Mapping) \
                and "finite_outputs" in outputs:
            self._validation_flags.append(outputs["finite_outputs"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Callbacks run before the module's own hook: this stops the run before its metrics see the outputs.
        flags, self._validation_flags = self._validation_flags, []
        bad = bool((~torch.stack(flags)).any()) if flags else False
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            where = self._context.describe() if self._context is not None else f"global step {trainer.global_step}"
            raise TrainingDiverged(f"training diverged at {where}: the network's outputs on the validation set are "
                                   f"non-finite (its weights are finite, too large for the activations). {ADVICE}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_weights(trainer, pl_module)

    def _check_weights(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)
        if self._weights_checked_at == trainer.global_step:
            return
        self._weights_checked_at = trainer.global_step
        state = pl_module.state_dict()
        bad = non_finite_tensors(state)
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            where = self._context.describe() if self._context is not None else f"global step {trainer.global_step}"
            raise TrainingDiverged(f"training diverged: non-finite weights after {where}: "
                                   f"{describe_tensors(bad, len(state))}. {ADVICE}")

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, float]:
        return {} if self._reference is None else {"reference_loss": float(self._reference)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "reference_loss" in state_dict:
            self._reference = torch.tensor(float(state_dict["reference_loss"]))
