"""What the generated datasets (synthetic people, synthetic faces) share: the on-disk layout, the
manifest that decides whether to regenerate, JPEG writing and the serial/parallel job map.

A generated dataset lives under one root: ``images/{train,val}/<id>.jpg``,
``annotations/<prefix>_{train,val}.json`` and ``manifest.json`` (generator version + parameters),
written last, so an interrupted run is regenerated. Only these files are ever deleted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val")
# Image ids: train starts at 1, val at 1_000_001 so ids never collide across splits.
SPLIT_ID_OFFSET = {"train": 0, "val": 1_000_000}
MAX_IMAGES_PER_SPLIT = 1_000_000
JPEG_QUALITY = 90


def check_split_sizes(generator: str, num_train: int, num_val: int) -> None:
    """ValueError naming the field unless 0 <= count < MAX_IMAGES_PER_SPLIT (ids must not collide)."""
    for field_name, count in (("num_train", num_train), ("num_val", num_val)):
        if not 0 <= count < MAX_IMAGES_PER_SPLIT:
            raise ValueError(f"{generator} {field_name}: expected 0 <= value < {MAX_IMAGES_PER_SPLIT}, got {count}")


def write_jpeg(image: np.ndarray, folder: Path, image_id: int, generator: str) -> str:
    """Encode a BGR image as ``<id:012d>.jpg`` (quality JPEG_QUALITY) in ``folder``; return the file name."""
    file_name = f"{image_id:012d}.jpg"
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"{generator}: JPEG encoding failed for image {image_id}")
    (folder / file_name).write_bytes(encoded.tobytes())
    return file_name


def map_jobs(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int, chunksize: int = 32) -> list:
    """``[function(job) for job in jobs]``, in worker processes when ``workers`` > 1 (same results, same order)."""
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, jobs, chunksize=chunksize))
    return [function(job) for job in jobs]


@dataclass(frozen=True)
class GeneratedLayout:
    """The files of one generator under a root; ``prefix`` names its annotation files."""

    prefix: str

    def annotation_file(self, root: Path, split: str) -> Path:
        return Path(root) / "annotations" / f"{self.prefix}_{split}.json"

    def image_dir(self, root: Path, split: str) -> Path:
        return Path(root) / "images" / split

    def remove(self, root: Path) -> None:
        """Delete only what this generator writes (never other files under ``root``)."""
        (Path(root) / MANIFEST_NAME).unlink(missing_ok=True)
        for split in SPLITS:
            shutil.rmtree(self.image_dir(root, split), ignore_errors=True)
            self.annotation_file(root, split).unlink(missing_ok=True)

    def write_annotations(self, root: Path, split: str, dataset: Mapping[str, Any]) -> Path:
        """Write a split's COCO-style JSON (compact) and return its path."""
        path = self.annotation_file(root, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataset, separators=(",", ":")))
        return path

    def generate(self, root: Path, manifest: Mapping[str, Any], write_split: Callable[[str], Any]) -> Path:
        """Regenerate: delete this generator's files, ``write_split(split)`` for each split, manifest last."""
        root = Path(root)
        self.remove(root)
        for split in SPLITS:
            write_split(split)
        (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return root

    def is_complete(self, root: Path, manifest: Mapping[str, Any], counts: Mapping[str, int]) -> bool:
        """True when the stored manifest equals ``manifest`` and every split has its JSON and ``counts[split]`` images."""
        try:
            if json.loads((Path(root) / MANIFEST_NAME).read_text()) != manifest:
                return False
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        for split, count in counts.items():
            folder = self.image_dir(root, split)
            if not self.annotation_file(root, split).is_file() or not folder.is_dir():
                return False
            if sum(1 for entry in folder.iterdir() if entry.suffix == ".jpg") != count:
                return False
        return True
