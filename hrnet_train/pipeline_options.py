"""Where training crops are built (``data.pipeline``) and JPEGs decoded (``data.decode``), and the rules
that tie the two to the rest of the config.

Imported by the config schema (which must not import torch) and by the dataset, so a command line
and a direct ``TopDownCocoDataset(...)`` call are held to the same rules.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

PIPELINES = ("cpu", "device")  # cpu: crop + targets in the loader workers; device: on the accelerator
DECODERS = ("cpu", "gpu")  # cpu: loader workers decode; gpu: nvJPEG on the device (device pipeline only)
CROP_AUGMENTATIONS = ("photometric", "occlusion")  # albumentations on the uint8 crop: CPU pipeline only


def check_pipeline(pipeline: str, decode: str, crop_augmentations: Iterable[str] = ()) -> None:
    """Raise ValueError (naming the ``data.*`` field) for an unknown option or a combination that cannot run.

    ``crop_augmentations``: the enabled augmentations that act on the uint8 crop. The device pipeline
    never builds that crop on the CPU, so it refuses them instead of silently skipping them.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"data.pipeline: expected one of {list(PIPELINES)}, got {pipeline!r}")
    if decode not in DECODERS:
        raise ValueError(f"data.decode: expected one of {list(DECODERS)}, got {decode!r}")
    if decode == "gpu" and pipeline != "device":
        raise ValueError("data.decode: gpu decodes on the device, which needs data.pipeline=device")
    enabled = [name for name in crop_augmentations if name in CROP_AUGMENTATIONS]
    if pipeline == "device" and enabled:
        raise ValueError(
            f"data.augment.{enabled[0]}: photometric/occlusion augmentation runs on the CPU crop "
            f"(albumentations); with data.pipeline=device switch it off, or use data.pipeline=cpu"
        )


def gpu_decode_available() -> bool:
    """Whether torchvision (nvJPEG, ``data.decode=gpu``) is installed, found without importing it."""
    return importlib.util.find_spec("torchvision") is not None
