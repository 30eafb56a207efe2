"""Where the project finds its configs and the optional shared test/demo data.

The config tree lives at the repository's top-level ``conf/`` and ships inside the installed
package as ``hrnet_train/conf`` so the CLIs work outside the source tree.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SHARED_DATA_ENV = "HRNET_SHARED_DATA"
DATA_DIR_ENV = "HRNET_DATA_DIR"


def config_dir() -> Path:
    """Absolute path of the Hydra config tree (source checkout first, then the installed copy)."""
    for candidate in (REPO_ROOT / "conf", PACKAGE_DIR / "conf"):
        if (candidate / "train.yaml").is_file() or (candidate / "model").is_dir():
            return candidate
    raise FileNotFoundError(
        f"hrnet_train config tree not found: looked for {REPO_ROOT / 'conf'} and {PACKAGE_DIR / 'conf'}"
    )


def shared_data_dir() -> Path:
    """The real test/demo data (``../shared/data`` beside the checkout, or ``$HRNET_SHARED_DATA``)."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def data_dir() -> Path:
    """Where datasets are generated or converted: ``$HRNET_DATA_DIR``, else the checkout's ``data/``,
    else (an installed copy, whose parent folder is site-packages) ``./data`` in the working directory."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "data"
    return Path.cwd() / "data"


def models_dir() -> Path:
    """The committed trained models (``models/`` of a checkout; an installed copy has none)."""
    return REPO_ROOT / "models"
