"""Cost and reach of the strict image reader: decode time against a plain ``cv2.imdecode``, and how many
damaged JPEGs it recognises.

Decode time: the project's :func:`hrnet_train.image_io.read_image` (file read, truncation check,
libjpeg warnings captured from stderr) against the reader it replaced (file read, end-of-image marker
in the last 4 KiB, ``cv2.imdecode`` with the same flags) and against a bare ``cv2.imdecode``, all in
this process, interleaved round-robin over the same coco_mini val2017 files, so a busy shared machine
slows them alike. The ratios are the overhead.

Reach: copies of real JPEGs with 1-64 bytes of their entropy-coded data overwritten (random bytes,
zeros or a constant; a fixed seed), counted as refused (ImageReadError) or decoded silently. JPEG
carries no checksum: a damaged run of Huffman codes that still parses decodes without any libjpeg
warning, so the silent share is what no decoder-side check can see.

    .venv/bin/python benchmarks/image_decode.py [--quick] [--root ../shared/data/coco_mini]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from _common import markdown_table, time_interleaved

from hrnet_train.image_io import ImageReadError, read_image
from hrnet_train.paths import shared_data_dir

FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION


def bare_read(paths: list[Path]) -> None:
    """Bytes + ``cv2.imdecode``, nothing checked."""
    for path in paths:
        cv2.imdecode(np.fromfile(path, dtype=np.uint8), FLAGS)


def previous_read(paths: list[Path]) -> None:
    """The reader before the strict decode: a truncation check on the file's tail, then ``cv2.imdecode``."""
    for path in paths:
        data = np.fromfile(path, dtype=np.uint8)
        if b"\xff\xd9" not in data.tobytes()[-4096:]:
            raise ImageReadError(f"truncated JPEG: {path}")
        cv2.imdecode(data, FLAGS)


def strict_read(paths: list[Path]) -> None:
    for path in paths:
        read_image(path)


def damage_trials(paths: list[Path], trials_per_file: int, folder: Path, seed: int = 0) -> dict[str, int]:
    """Refused / silent counts over copies with bytes overwritten inside the scan data."""
    rng = np.random.default_rng(seed)
    counts = {"refused": 0, "silent": 0}
    for path in paths:
        data = path.read_bytes()
        scan = data.find(b"\xff\xda")
        for trial in range(trials_per_file):
            damaged = bytearray(data)
            start = int(rng.integers(scan + 200, len(data) - 200))
            length = int(rng.choice([1, 4, 16, 64]))
            fill = (rng.integers(0, 256, length, dtype=np.uint8).tobytes(), bytes(length), b"\x55" * length)[trial % 3]
            damaged[start : start + length] = fill
            target = folder / path.name
            target.write_bytes(damaged)
            try:
                read_image(target)
                counts["silent"] += 1
            except ImageReadError:
                counts["refused"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=shared_data_dir() / "coco_mini")
    parser.add_argument("--quick", action="store_true", help="fewer files and repeats (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (1: what a loader worker uses)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    paths = sorted((args.root / "images" / "val2017").glob("*.jpg"))[: 8 if args.quick else None]
    if not paths:
        raise SystemExit(f"no JPEGs under {args.root / 'images' / 'val2017'}")
    readers = {"bare cv2.imdecode": bare_read, "previous reader": previous_read, "read_image (strict)": strict_read}
    for reader in readers.values():
        reader(paths)  # warm the file cache and every code path
    repeats = 3 if args.quick else 15
    times = time_interleaved({name: (lambda reader=reader: reader(paths)) for name, reader in readers.items()}, repeats)
    print(markdown_table(
        ["reader", "ms / image", "ratio to the previous reader", "ratio to bare cv2.imdecode"],
        [[name, f"{1000.0 * seconds / len(paths):.2f}", f"{seconds / times['previous reader']:.3f}",
          f"{seconds / times['bare cv2.imdecode']:.3f}"] for name, seconds in times.items()],
    ))
    with tempfile.TemporaryDirectory() as folder:
        counts = damage_trials(paths[: 4 if args.quick else 20], 3 if args.quick else 10, Path(folder))
    total = sum(counts.values())
    print()
    print(markdown_table(
        ["damaged copies", "refused (ImageReadError)", "decoded silently"],
        [[str(total), f"{counts['refused']} ({100.0 * counts['refused'] / total:.0f} %)",
          f"{counts['silent']} ({100.0 * counts['silent'] / total:.0f} %)"]],
    ))
    print(f"\n{len(paths)} images of {args.root}, median of {repeats} interleaved passes")


if __name__ == "__main__":
    main()
