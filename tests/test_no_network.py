"""Nothing connects to the network at run time: a short training with photometric augmentation (the one
albumentations import that used to ask pypi.org for updates) under a socket guard, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import SYNTHETIC

from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.paths import REPO_ROOT

# Installed first in the child: every way Python opens a network connection (or resolves a name) is refused
# and logged. Unix sockets stay open: loader workers hand batches over through them.
SOCKET_GUARD = """
import os, socket, traceback
def _refuse(*args, **kwargs):
    with open(os.environ["NETWORK_LOG"], "a") as log:
        log.write(f"network attempt {args!r}\\n" + "".join(traceback.format_stack(limit=8)))
    raise OSError("network access refused by the test's socket guard")
def _guard(method):
    def guarded(self, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            return _refuse(*args)
        return method(self, *args, **kwargs)
    return guarded
socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
socket.create_connection = socket.getaddrinfo = _refuse
"""

TRAINING = """
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from hrnet_train.config_schema import register_resolvers, validate_train_config
from hrnet_train.paths import config_dir
from hrnet_train.training.runner import run_training

class Photometric(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        assert trainer.datamodule.train_dataset._crop_augmentation is not None
        print("photometric augmentation on")

register_resolvers()
overrides = ["model=hrnet_tiny", "data.root={root}", "data.generate_synthetic=false", "data.batch_size=8",
             "data.num_workers=0", "+data.augment.photometric=true", "+data.augment.prob_color=1.0", "trainer.max_epochs=1",
             "trainer.limit_train_batches=1", "trainer.precision=32", "logger=csv", "eval.num_vis_images=2"]
with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
    cfg = compose(config_name="train", overrides=overrides)
with open_dict(cfg):
    cfg.run_dir = "{run_dir}"
resolved = OmegaConf.to_container(cfg, resolve=True)
run_training(validate_train_config(resolved), resolved, extra_callbacks=[Photometric()])
"""


def _guarded(code: str, log: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}  # the project must set it
    return subprocess.run([sys.executable, "-c", SOCKET_GUARD + code], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, env={**env, "NETWORK_LOG": str(log), "OMP_NUM_THREADS": "1"})


def test_training_with_photometric_augmentation_never_connects(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "data", **SYNTHETIC)
    log = tmp_path / "network.log"
    done = _guarded(TRAINING.format(root=root, run_dir=tmp_path / "run"), log)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "photometric augmentation on" in done.stdout
    assert not log.exists(), log.read_text()


def test_the_guard_sees_albumentations_update_check(tmp_path: Path) -> None:
    """Control: without the project's setting, importing albumentations tries to connect (and the guard says so)."""
    pytest.importorskip("albumentations")
    log = tmp_path / "network.log"
    done = _guarded("import albumentations", log)
    assert done.returncode == 0, done.stderr[-3000:]
    assert log.is_file() and "network attempt" in log.read_text()
