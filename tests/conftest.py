"""Shared fixtures. Tests that need ``../shared/data`` skip with a reason when it is missing,
but fail under ``CI=true`` so a broken CI checkout never passes silently."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from hrnet_train.paths import shared_data_dir


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", default="cpu",
        help="torch device for the device-pipeline parity tests (tests/test_device_pipeline.py), e.g. cuda",
    )


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    """The ``--device`` the parity tests run on (cpu by default; cuda on a GPU machine)."""
    chosen = torch.device(request.config.getoption("--device"))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"--device {chosen}: CUDA is not available here")
    return chosen


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"shared data not found at {path} (set HRNET_SHARED_DATA or place ../shared/data)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " -- required under CI=true")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real data; skip (or fail under CI) when absent."""
    return _require(shared_data_dir())


@pytest.fixture(scope="session")
def coco_mini(shared_data: Path) -> Path:
    return _require(shared_data / "coco_mini")


@pytest.fixture(scope="session")
def coco_tiny(shared_data: Path) -> Path:
    return _require(shared_data / "coco_tiny")


@pytest.fixture()
def coco_tiny_copy(tmp_path: Path, coco_tiny: Path) -> tuple[dict, Path, Path]:
    """A writable copy of coco_tiny's val split: (annotations dict, annotation path to write, image dir)."""
    img_dir = tmp_path / "images"
    shutil.copytree(coco_tiny / "images" / "val2017", img_dir)
    data = json.loads((coco_tiny / "annotations" / "person_keypoints_val2017_tiny.json").read_text())
    return data, tmp_path / "ann.json", img_dir


@pytest.fixture(scope="session")
def lspet_dir(shared_data: Path) -> Path:
    return _require(shared_data / "lspet")


@pytest.fixture(scope="session")
def faces(shared_data: Path) -> Path:
    """The real face-landmark samples (300w, wflw, cofw, 300vw, menpo, ...): research/testing use only."""
    return _require(shared_data / "faces")


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: bit-reproducible, and immune to OpenMP spin-waits when the 2 cores are busy
    (two threads were up to ~25x slower per step there). Used by the files that train or run models."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def cityscapes_synthetic(shared_data: Path) -> Path:
    """The synthetic scene in exact Cityscapes layout (labelIds 0..33, labelTrainIds, val.lst)."""
    return _require(shared_data / "segmentation" / "cityscapes_format_synthetic")
