"""Writing checkpoints: crash-safe files, and the hyper_parameters that let them be read back alone.

A checkpoint is written to a temporary file in the target directory, flushed to disk (fsync) and
renamed over the target with ``os.replace`` (atomic on POSIX and Windows), so a crash mid-save
never leaves a truncated ``last.ckpt``. The temporary file of a save killed before the rename
(``.<name>.<random>.tmp``) is removed when the next run in that directory starts
(:func:`remove_orphan_temp_files`). The file gets the permissions of any file the user creates
(``0o666 & ~umask``; the temporary file starts as 0600). A state dict holding nan/inf is refused, so
no ``best``/``last`` is ever replaced by diverged weights. Everything stored is tensors or plain
containers, so the files load with ``torch.load(weights_only=True)``. Reading them back is
``hrnet_train.trained_model``'s job.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from hrnet_train.training.divergence import TrainingDiverged, describe_tensors, non_finite_tensors

LAST_CHECKPOINT = "last.ckpt"
CHECKPOINT_SUBDIR = "checkpoints"
TEMP_SUFFIX = ".tmp"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then atomically replace ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _umask() -> int:
    """The process umask (only readable by setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_orphan_temp_files(directory: Path) -> list[Path]:
    """Delete the temporary files of saves killed before their rename (``.<name>.<random>.tmp``) in
    ``directory`` and return them; complete checkpoints are never touched."""
    orphans = sorted(p for p in directory.glob(f".*.ckpt.*{TEMP_SUFFIX}") if p.is_file()) if directory.is_dir() else []
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans


def _fsync_directory(directory: Path) -> None:
    # Persist the rename itself; directories cannot be opened for fsync on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO plugin whose saves are atomic (see module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        state = checkpoint.get("state_dict", {})
        bad = non_finite_tensors(state)
        if bad:
            raise TrainingDiverged(f"refusing to write checkpoint {path}: non-finite weights in "
                                   f"{describe_tensors(bad, len(state))}; the file on disk is kept as it was")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = True) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True if weights_only is None else weights_only)


def resolve_ckpt_path(value: str | None, run_dir: Path) -> str | None:
    """Turn the ``ckpt_path`` config value into a file (or None for a fresh run).

    ``last`` means THIS run directory's ``checkpoints/last.ckpt`` -- never a sibling run's: resuming
    a run means giving its folder (``output_dir=<that run> ckpt_path=last``) or a file. Raises
    FileNotFoundError saying so when there is none.
    """
    if value in (None, "", "null"):
        return None
    if value != "last":
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path: checkpoint file {path} does not exist")
        return str(path)
    own = run_dir / CHECKPOINT_SUBDIR / LAST_CHECKPOINT
    if own.is_file():
        return str(own)
    raise FileNotFoundError(
        f"ckpt_path=last: {own} does not exist -- this run dir has no checkpoint of its own. To resume a run, "
        f"give its folder (output_dir=<that run dir> ckpt_path=last) or its file (ckpt_path=<path>/last.ckpt); "
        f"to start from its weights with a new schedule, use init_from=<file>"
    )



def checkpoint_hparams(resolved_config: Mapping[str, Any], input_size: tuple[int, int], num_joints: int) -> dict[str, Any]:
    """What a checkpoint must carry to rebuild model, keypoint set and codec without the config tree.

    Only builtin types (dict/list/str/number/bool/None), so ``weights_only=True`` loading works.
    """
    # The ImageNet file only initialised this run; the checkpoint's own weights replace it when loaded.
    model = {**dict(resolved_config["model"]), "pretrained": None}
    keypoints = dict(resolved_config["keypoints"])
    return {
        "task": "pose",
        "model_name": str(model.get("name")),
        "model": model,
        "keypoints_name": str(keypoints.get("name")),
        "keypoints": keypoints,
        "num_joints": int(num_joints),
        "codec": dict(resolved_config["codec"]),
        "input_size": [int(input_size[0]), int(input_size[1])],
        "color_rgb": bool(resolved_config["data"].get("color_rgb", True)),
        "flip_test": bool(resolved_config["eval"].get("flip_test", True)),
        "config": dict(resolved_config),
    }
