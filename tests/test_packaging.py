"""The installed package must carry the config tree and the console scripts, so the CLIs work
outside the source tree (a wheel is what `pip install hrnet-train` would install)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from hrnet_train.paths import REPO_ROOT, config_dir


def test_wheel_ships_config_tree_and_entry_points(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hrnet_train-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    source_configs = {p.relative_to(REPO_ROOT / "conf").as_posix() for p in (REPO_ROOT / "conf").rglob("*.yaml")}
    shipped = {n.removeprefix("hrnet_train/conf/") for n in names if n.startswith("hrnet_train/conf/")}
    assert source_configs == shipped
    assert {"train.yaml", "eval.yaml", "model/hrnet_w32.yaml", "experiment/lspet_cpu.yaml"} <= shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "hrnet-train = hrnet_train.cli:train_main" in text
    assert "hrnet-evaluate = hrnet_train.cli:evaluate_main" in text


def test_config_dir_is_the_checkout_conf() -> None:
    assert config_dir() == REPO_ROOT / "conf"
