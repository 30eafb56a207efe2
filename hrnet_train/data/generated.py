"""What the generated datasets (synthetic people, synthetic faces) share: the on-disk layout, the
manifest that decides whether to regenerate, JPEG writing and the serial/parallel job map.

A generated dataset lives under one root: ``images/{train,val}/<id>.jpg``, optional per-image extra
files (``<folder>/{train,val}/<id><suffix>``, e.g. the people's segmentation masks),
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
    return _write(image, folder, image_id, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY], generator)


def write_png(image: np.ndarray, folder: Path, image_id: int, generator: str) -> str:
    """Encode an image (e.g. a uint8 label mask) losslessly as ``<id:012d>.png`` in ``folder``."""
    return _write(image, folder, image_id, ".png", [], generator)


def _write(image: np.ndarray, folder: Path, image_id: int, suffix: str, params: list[int], generator: str) -> str:
    file_name = f"{image_id:012d}{suffix}"
    ok, encoded = cv2.imencode(suffix, image, params)
    if not ok:
        raise RuntimeError(f"{generator}: {suffix} encoding failed for image {image_id} ({folder})")
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
    """The files of one generator under a root; ``prefix`` names its annotation files, ``extra_files``
    the per-image files besides the JPEG as (top folder, suffix)."""

    prefix: str
    extra_files: tuple[tuple[str, str], ...] = ()

    def annotation_file(self, root: Path, split: str) -> Path:
        return Path(root) / "annotations" / f"{self.prefix}_{split}.json"

    def image_dir(self, root: Path, split: str) -> Path:
        return Path(root) / "images" / split

    def per_image_dirs(self, root: Path, split: str) -> list[tuple[Path, str]]:
        """(folder, suffix) of every per-image file kind of ``split``, the JPEGs first."""
        return [(self.image_dir(root, split), ".jpg")] + [(Path(root) / top / split, suffix) for top, suffix in self.extra_files]

    def remove(self, root: Path) -> None:
        """Delete only what this generator writes (never other files under ``root``)."""
        (Path(root) / MANIFEST_NAME).unlink(missing_ok=True)
        for split in SPLITS:
            for folder, _ in self.per_image_dirs(root, split):
                shutil.rmtree(folder, ignore_errors=True)
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
        """True when the stored manifest equals ``manifest`` and every split has its JSON and ``counts[split]``
        files of each per-image kind."""
        try:
            if json.loads((Path(root) / MANIFEST_NAME).read_text()) != manifest:
                return False
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        for split, count in counts.items():
            if not self.annotation_file(root, split).is_file():
                return False
            for folder, suffix in self.per_image_dirs(root, split):
                if not folder.is_dir() or sum(1 for entry in folder.iterdir() if entry.suffix == suffix) != count:
                    return False
        return True
