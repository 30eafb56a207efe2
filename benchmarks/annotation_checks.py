"""Cost of validating annotations where they are read, at the scale of full COCO val2017 or more.

The real val2017 person annotations available here (2,213 over 538 images) are repeated with fresh
ids until the file holds ``--annotations`` of them (default 100,000, about the size the reference
reads for val2017 + its detections), then timed in this process: JSON load + pycocotools index (what
reading cost before), the structure check of ``load_coco`` and the value check of
``checked_annotations`` (one Python pass + numpy), median of a few runs.

    .venv/bin/python benchmarks/annotation_checks.py [--quick] [--annotations 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

from _common import markdown_table
from pycocotools.coco import COCO

from hrnet_train.data.annotation_checks import check_structure
from hrnet_train.data.coco import checked_annotations, load_coco
from hrnet_train.data.skips import SkipCounts
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.paths import shared_data_dir

PARTIAL = Path("coco_val2017_partial_annotations") / "person_keypoints_val2017_partial.json"


def scaled_file(source: Path, annotations: int, folder: Path) -> Path:
    """``source`` repeated with new image and annotation ids until it holds ``annotations`` annotations."""
    data = json.loads(source.read_text())
    images = {image["id"]: image for image in data["images"]}.values()  # the source repeats entries
    copies = -(-annotations // len(data["annotations"]))
    out = {**data, "images": [], "annotations": []}
    for copy in range(copies):
        offset = copy * 10_000_000
        out["images"] += [{**image, "id": image["id"] + offset} for image in images]
        out["annotations"] += [{**ann, "id": ann["id"] + offset, "image_id": ann["image_id"] + offset}
                               for ann in data["annotations"]]
    out["annotations"] = out["annotations"][:annotations]
    path = folder / "scaled.json"
    path.write_text(json.dumps(out))
    return path


def plain_read(path: Path) -> COCO:
    """Reading before the checks: JSON load + pycocotools index."""
    coco = COCO()
    coco.dataset = json.loads(path.read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 annotations, one run (a smoke run)")
    args = parser.parse_args()
    count, repeats = (10_000, 1) if args.quick else (args.annotations, 3)
    keypoints = load_keypoint_set("coco17")
    with tempfile.TemporaryDirectory() as folder:
        path = scaled_file(shared_data_dir() / PARTIAL, count, Path(folder))
        raw = json.loads(path.read_text())
        coco = load_coco(path)
        read = median_seconds(lambda: plain_read(path), repeats)
        structure = median_seconds(lambda: check_structure(raw, path), repeats)
        values = median_seconds(lambda: checked_annotations(coco, keypoints, path, False, False, SkipCounts()), repeats)
    print(markdown_table(
        ["step", "seconds", "share of reading the file"],
        [["JSON load + pycocotools index (reading, before)", f"{read:.3f}", "1.00"],
         ["structure check (load_coco)", f"{structure:.3f}", f"{structure / read:.2f}"],
         ["value check (checked_annotations)", f"{values:.3f}", f"{values / read:.2f}"]],
    ))
    print(f"\n{len(raw['annotations'])} annotations over {len(raw['images'])} images, median of {repeats}")


if __name__ == "__main__":
    main()
