"""Files that are no checkpoint -- empty, an image or JSON renamed .ckpt, cut in half, a torch file holding a
bare tensor or a mapping without weights -- get one message naming the path and what the file is not, at
every door: train.py ckpt_path= and init_from=, evaluate.py, export (ckpt= and weights=) and the estimator
API (all through hrnet_train.trained_model.read_checkpoint)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from test_training import SYNTHETIC, _config

from hrnet_train.cli_args import UsageError
from hrnet_train.config_schema import ConfigError
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.export.__main__ import main as export_main
from hrnet_train.inference.estimator import PoseEstimator
from hrnet_train.models import create_model
from hrnet_train.paths import REPO_ROOT, config_dir
from hrnet_train.trained_model import CheckpointError, read_checkpoint
from hrnet_train.training.runner import run_training

# kind -> (how the file is made, what the message says it is)
BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty": (lambda p: p.write_bytes(b""), r"not a checkpoint: the file is empty \(0 bytes"),
    "jpeg": (lambda p: p.write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()),
             r"not a checkpoint: the file is a JPEG image"),
    "json": (lambda p: p.write_text('[{"image_id": 1, "keypoints": []}]'), r"not a checkpoint: the file is a JSON/text file"),
    "truncated": (lambda p: (torch.save({"state_dict": {"model.w": torch.zeros(4096)}}, p),
                             p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
                  r"truncated or damaged checkpoint: the torch zip archive \(\d+ bytes\) has no end record"),
    "tensor": (lambda p: torch.save(torch.zeros(3), p), r"not a checkpoint: the torch file holds a Tensor"),
    "no_weights": (lambda p: torch.save({"epoch": 3, "global_step": 12}, p),
                   r"not a checkpoint: a mapping without weights \(keys 'epoch', 'global_step'; no 'state_dict'"),
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic_ckpt_files"), **SYNTHETIC)


@pytest.fixture(params=list(BAD_FILES))
def bad_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, message = BAD_FILES[request.param]
    path = tmp_path / f"{request.param}.ckpt"
    make(path)
    return path, f"{path}: {message}"


def test_read_checkpoint(bad_file: tuple[Path, str]) -> None:
    path, message = bad_file
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_train_ckpt_path(bad_file: tuple[Path, str], tiny_root: Path, tmp_path: Path) -> None:
    path, message = bad_file
    config, resolved = _config(tiny_root, tmp_path / "run", f"ckpt_path={path}")
    with pytest.raises(ConfigError, match="ckpt_path: " + message):
        run_training(config, resolved)


def test_train_init_from(bad_file: tuple[Path, str], tiny_root: Path, tmp_path: Path) -> None:
    path, message = bad_file
    config, resolved = _config(tiny_root, tmp_path / "run", f"init_from={path}")
    with pytest.raises(ConfigError, match="init_from: " + message):
        run_training(config, resolved)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluate(bad_file: tuple[Path, str], tiny_root: Path, tmp_path: Path) -> None:
    path, message = bad_file
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[f"ckpt={path}", f"data.root={tiny_root}", "data.split=val",
                                                     f"output_dir={tmp_path / 'eval'}"])
    with pytest.raises(ConfigError, match=message):
        run_from_config(cfg)


def test_export(bad_file: tuple[Path, str], tmp_path: Path) -> None:
    path, message = bad_file
    with pytest.raises(UsageError, match=message):
        export_main([f"ckpt={path}", f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(UsageError, match=message):
        export_main(["model=hrnet_tiny", f"weights={path}", "input_size=128x96", f"output_dir={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_estimator_api(bad_file: tuple[Path, str]) -> None:
    path, message = bad_file
    with pytest.raises(CheckpointError, match=message):
        PoseEstimator.from_checkpoint(path)


@pytest.mark.parametrize(("tool", "argument"), [("train.py", "init_from"), ("evaluate.py", "ckpt")])
def test_cli_exit_2_with_one_line(tool: str, argument: str, tiny_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "photo.ckpt"
    BAD_FILES["jpeg"][0](path)
    data = [f"data.root={tiny_root}", "data.generate_synthetic=false"] if tool == "train.py" else [f"data.root={tiny_root}", "data.split=val"]
    done = subprocess.run([sys.executable, str(REPO_ROOT / tool), f"{argument}={path}", *data, f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and f"{path}: not a checkpoint: the file is a JPEG image" in done.stderr


@pytest.mark.parametrize("kind", ["empty", "jpeg", "json", "truncated"])
def test_model_pretrained(kind: str, tmp_path: Path) -> None:
    """The same words for an ImageNet/official weight file given to model.pretrained (models/loading.py)."""
    make, message = BAD_FILES[kind]
    path = tmp_path / f"{kind}.pth"
    make(path)
    with pytest.raises(CheckpointError, match=f"{path}: {message}"):
        create_model("hrnet_tiny", num_joints=17, pretrained=path)
