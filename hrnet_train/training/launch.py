"""How a run's processes are started, and proof that every rank of a run trains the same config.

Two failure modes of multi-process training are silent, so this module makes them loud
(shared/reference/stack.md):

* Hydra ``-m`` with Lightning's ``ddp`` launcher: Lightning starts rank 1 by re-running the command
  line, which in multirun mode re-runs the whole sweep; with Optuna that rank even draws different
  hyper-parameters. :func:`check_launch` refuses that combination before anything is built and
  points to ``trainer=ddp_spawn`` (processes forked from inside the Hydra job, so they share it).
* Ranks started by an outside launcher (torchrun, SLURM) each compose their own config; a
  different override or a different ``${now:}`` run dir per process would go unnoticed.
  :class:`RankAudit` hashes the resolved config on every rank, all-gathers the digests at setup
  and stops every rank with the list of digests if they differ. It also writes
  ``<run_dir>/ranks/rank<N>.json`` (config digest, samples trained and validated, host) so a run
  shows what each process did.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from hrnet_train.config_schema import ConfigError, TrainerConfig

RANKS_SUBDIR = "ranks"
# Strategies whose extra processes are forked/spawned inside this Python process (Hydra-safe).
IN_PROCESS_LAUNCH_PREFIXES = ("ddp_spawn", "ddp_fork", "ddp_notebook")
# Process counts set by launchers that start every rank themselves: torchrun, srun (per job step;
# SLURM_NTASKS would also be set in a plain sbatch script that runs one process).
EXTERNAL_WORLD_SIZE_VARS = ("WORLD_SIZE", "SLURM_STEP_NUM_TASKS")


def hydra_multirun() -> bool:
    """True inside a job of ``python train.py -m ...`` (any sweeper)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def external_world_size(environ: Mapping[str, str] = os.environ) -> int:
    """Number of processes an outside launcher (torchrun, srun) started for this job; 1 if none."""
    sizes = [int(environ[name]) for name in EXTERNAL_WORLD_SIZE_VARS if environ.get(name, "").isdigit()]
    return max(sizes, default=1)


def check_launch(trainer: TrainerConfig, multirun: bool, environ: Mapping[str, str] = os.environ) -> None:
    """Raise ConfigError for launch setups where ranks would not share one Hydra job.

    Allowed: any single run; sweeps with one process per trial; sweeps whose trials use an
    in-process launcher (``ddp_spawn``). Refused in a sweep: ``ddp``/``auto``/other script-relaunching
    strategies with more than one process, and any external launcher (each torchrun/srun process
    would run its own sweep).
    """
    if not multirun:
        return
    processes = trainer.devices * trainer.num_nodes
    external = external_world_size(environ)
    if external > 1:
        raise ConfigError(
            f"Hydra multirun (-m) under an external launcher ({external} processes from torchrun/SLURM): every process "
            "would run its own sweep. Start the sweep from one process and use trainer=ddp_spawn for several devices per trial."
        )
    if processes > 1 and not trainer.strategy.startswith(IN_PROCESS_LAUNCH_PREFIXES):
        raise ConfigError(
            f"trainer.strategy={trainer.strategy!r} with {processes} processes cannot run inside a Hydra multirun (-m): "
            "Lightning would start the other ranks by re-running the command line, i.e. the whole sweep (with Optuna, "
            "with different hyper-parameters). Use trainer=ddp_spawn (or trainer.strategy=ddp_spawn), or trainer.devices=1."
        )
    if processes > 1 and trainer.num_nodes > 1:
        raise ConfigError(
            f"trainer.num_nodes={trainer.num_nodes} in a Hydra multirun (-m): {trainer.strategy} starts processes on this "
            "node only. Sweep on one node, or launch each multi-node trial as a single run (docs/multi_gpu.md)."
        )


def config_digest(resolved: Mapping[str, Any]) -> str:
    """sha256 of the resolved config as canonical JSON (key order does not matter).

    ``output_dir`` is left out: it is only the default run dir (a timestamp each process computes for
    itself); the dir the ranks actually share is ``run_dir``, which is hashed.
    """
    compared = {key: value for key, value in resolved.items() if key != "output_dir"}
    canonical = json.dumps(compared, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class RankAudit(pl.Callback):
    """Checks that all ranks share the config digest and records per-rank work in ``ranks/rank<N>.json``.

    The file holds one entry per Trainer stage (``fit``, ``validate``), merged as stages end, because
    with ``ddp_spawn`` every stage runs in fresh processes that start from the parent's counters.
    """

    def __init__(self, resolved: Mapping[str, Any], run_dir: str | Path) -> None:
        self.digest = config_digest(resolved)
        self.run_dir = Path(run_dir)
        self.train_samples = 0
        self.train_batches = 0
        self.val_indices: list[int] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.train_samples = 0
        self.train_batches = 0
        self.val_indices = []
        if trainer.world_size == 1:
            return
        local = torch.tensor(list(bytes.fromhex(self.digest)), dtype=torch.int64, device=trainer.strategy.root_device)
        gathered = trainer.strategy.all_gather(local).reshape(trainer.world_size, -1).cpu()
        digests = [bytes(row.tolist()).hex() for row in gathered]
        if len(set(digests)) > 1:
            listing = ", ".join(f"rank {rank}: {digest[:12]}" for rank, digest in enumerate(digests))
            raise RuntimeError(
                f"ranks run different configs ({listing}). Under torchrun/SLURM pin one output dir for all processes "
                "(hydra.run.dir=...) and pass identical overrides; for Hydra sweeps use trainer=ddp_spawn."
            )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.train_samples += len(batch["image"])
        self.train_batches += 1

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.val_indices = []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        indices = batch["meta"]["index"] if "meta" in batch else batch["index"]  # keypoint / segmentation batches
        self.val_indices.extend(int(i) for i in indices)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        path = self.run_dir / RANKS_SUBDIR / f"rank{trainer.global_rank}.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        record.update(
            global_rank=trainer.global_rank,
            local_rank=trainer.local_rank,
            node_rank=trainer.node_rank,
            world_size=trainer.world_size,
            strategy=type(trainer.strategy).__name__,
            cluster_environment=type(getattr(trainer.strategy, "cluster_environment", None)).__name__,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            config_sha256=self.digest,
        )
        stage_record: dict[str, Any] = {"val_samples": len(self.val_indices), "val_indices": self.val_indices}
        if stage == "fit":
            stage_record.update(lr=_first_lr(trainer), train_samples=self.train_samples, train_batches=self.train_batches)
        record[stage] = stage_record
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))


def _first_lr(trainer: pl.Trainer) -> float | None:
    """The base LR the optimiser was built with (after linear scaling), to show what each rank trains with."""
    if not trainer.optimizers:
        return None
    group = trainer.optimizers[0].param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def read_rank_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``ranks/rank<N>.json`` records of a run, ordered by global rank."""
    paths = sorted(Path(run_dir, RANKS_SUBDIR).glob("rank*.json"), key=lambda p: int(p.stem.removeprefix("rank")))
    return [json.loads(p.read_text()) for p in paths]
