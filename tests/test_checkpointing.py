"""Atomic checkpoint writes, weights_only loading and ckpt_path resolution."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import torch

from hrnet_train.training import checkpointing
from hrnet_train.trained_model import CheckpointError, network_state_dict, read_checkpoint
from hrnet_train.training.checkpointing import AtomicCheckpointIO, resolve_ckpt_path
from hrnet_train.training.divergence import TrainingDiverged


def _checkpoint(value: float) -> dict:
    return {
        "epoch": 3,
        "state_dict": {"model.w": torch.full((4,), value), "ema.model.w": torch.full((4,), value + 1)},
        "hyper_parameters": {"model_name": "hrnet_tiny", "input_size": [128, 96], "codec": {"name": "legacy", "sigma": 2.0}},
    }


def test_crash_during_save_keeps_previous_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_checkpoint(1.0), path)

    real_save = torch.save

    def crash_halfway(obj, stream, *args, **kwargs):
        real_save(obj, stream, *args, **kwargs)  # bytes are written to the temp file ...
        stream.truncate(stream.tell() // 2)  # ... half of them survive ...
        raise OSError("disk full")  # ... and the process dies before the rename

    monkeypatch.setattr(checkpointing.torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint(_checkpoint(2.0), path)
    monkeypatch.undo()

    restored = io.load_checkpoint(path)
    assert torch.equal(restored["state_dict"]["model.w"], torch.full((4,), 1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_checkpoint_with_non_finite_weights_is_never_written(tmp_path: Path) -> None:
    """The writer's own guard (behind the training's DivergenceGuard): best/last keep their finite content."""
    path = tmp_path / "best.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_checkpoint(1.0), path)
    with pytest.raises(TrainingDiverged, match=r"refusing to write checkpoint .*best.ckpt: non-finite weights in 2 of 2 tensors \(model.w, ema.model.w\)"):
        io.save_checkpoint(_checkpoint(float("nan")), path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["model.w"], torch.full((4,), 1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_orphan_temp_files_of_a_killed_save_are_removed(tmp_path: Path) -> None:
    """A save killed before its rename (kill -9: no cleanup ran) leaves ``.<name>.<random>.tmp``; only those go."""
    AtomicCheckpointIO().save_checkpoint(_checkpoint(1.0), tmp_path / "last.ckpt")
    orphans = [tmp_path / ".last.ckpt.k3x9_a.tmp", tmp_path / ".best-epoch004.ckpt.0qz1.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp").write_text("not ours")
    assert checkpointing.remove_orphan_temp_files(tmp_path) == sorted(orphans)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "notes.tmp"]
    assert checkpointing.remove_orphan_temp_files(tmp_path / "absent") == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_checkpoints_get_the_users_umask_not_0600(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        AtomicCheckpointIO().save_checkpoint(_checkpoint(1.0), tmp_path / "last.ckpt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "last.ckpt").stat().st_mode) == mode


def test_save_replaces_and_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "best.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(1.0), path)
    AtomicCheckpointIO().save_checkpoint(_checkpoint(5.0), path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["state_dict"]["model.w"], torch.full((4,), 5.0))
    assert loaded["hyper_parameters"]["codec"] == {"name": "legacy", "sigma": 2.0}


def test_network_state_dict_prefers_ema(tmp_path: Path) -> None:
    checkpoint = _checkpoint(1.0)
    assert torch.equal(network_state_dict(checkpoint)["w"], torch.full((4,), 2.0))
    assert torch.equal(network_state_dict(checkpoint, prefer_ema=False)["w"], torch.full((4,), 1.0))
    with pytest.raises(CheckpointError, match="no 'model.\\*' keys"):
        network_state_dict({"state_dict": {"other.w": torch.zeros(1)}})


def test_resolve_last_takes_only_this_runs_checkpoint(tmp_path: Path) -> None:
    """ckpt_path=last never picks a sibling run of the same experiment (by date or otherwise)."""
    runs = tmp_path / "outputs" / "exp"
    old, current = runs / "2026-01-01", runs / "2026-01-03"
    (old / "checkpoints").mkdir(parents=True)
    torch.save({}, old / "checkpoints" / "last.ckpt")
    current.mkdir()
    assert resolve_ckpt_path("last", old) == str(old / "checkpoints" / "last.ckpt")
    assert resolve_ckpt_path(None, current) is None
    with pytest.raises(FileNotFoundError, match="this run dir has no checkpoint of its own.*output_dir=<that run dir> ckpt_path=last"):
        resolve_ckpt_path("last", current)


def test_resolve_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path)


def test_load_checkpoint_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"when": time.struct_time((2026, 1, 1, 0, 0, 0, 0, 1, 0))}}, path)
    with pytest.raises(CheckpointError, match="evil.ckpt: not a loadable checkpoint .*Weights only load failed"):
        read_checkpoint(path)
