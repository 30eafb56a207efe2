"""Convert Leeds Sports Pose Extended (LSPET, Johnson & Everingham CVPR 2011) to COCO keypoint format.

``python -m hrnet_train.data.lspet src=../shared/data/lspet output_dir=data/lspet_coco [train_last=8500]
[val_last=9000] [min_labelled=2]`` writes ``out/annotations/person_keypoints_{train,val}.json``; the
images stay where they are (``file_name`` is the bare name, use ``img_dir=src/images``).

Decisions (the dataset gives joints only, one person per image):

* ``joints.mat`` holds ``joints`` of shape (14, 3, 10000): [joint, (x, y, flag), image]. The flag is
  1 for an annotated joint and 0 for a missing one (those have x or y <= 0, i.e. outside the image).
  LSPET does not distinguish visible from occluded, so annotated joints get COCO v=2; a joint with
  flag 0 or a non-positive coordinate is unlabelled (v=0, x=y=0) and does not shape the box.
* Box: the labelled joints' extent padded by 10% of the width on each side (hands past the wrists),
  8% of the height below (feet past the ankles) and 10% above (hair past the "head top" click),
  clipped to the image: about as tight as a COCO person box, so the usual x1.25 crop padding frames
  the person as in COCO and as a person detector's box does at inference. (Wider margins, 15/15/25%,
  made the person 16% smaller in every crop, which costs accuracy at 128x96.)
* Area (used by OKS): box area x 0.53. COCO has no LSPET segmentations; on COCO person annotations
  with keypoints, segmentation area / box area has mean 0.525 and median 0.535 (1,354 val2017
  annotations in shared/data/coco_val2017_partial_annotations), so 0.53 keeps OKS tolerances on the
  COCO scale.
* Persons with fewer than ``min_labelled`` labelled joints (default 2, the least that spans a box) are
  dropped and counted; on the real file every person has at least 4.
* Split by image number: 1..train_last train, train_last+1..val_last val; numbers whose image file is
  absent are skipped (the shared copy ships images 1-9,000).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from hrnet_train.cli_args import CommandLine, Option, UsageError, run_tool
from hrnet_train.keypoints import KeypointSet, load_keypoint_set

AREA_PER_BOX_AREA = 0.53
SIDE_MARGIN = 0.10
BOTTOM_MARGIN = 0.08
TOP_MARGIN = 0.10
SPLITS = ("train", "val")


@dataclass(frozen=True)
class ConversionSummary:
    """What a conversion wrote, per split."""

    images: dict[str, int]
    annotations: dict[str, int]
    labelled_joints: dict[str, int]
    dropped_persons: dict[str, int]
    missing_images: int
    ann_files: dict[str, Path]
    img_dir: Path


def load_lspet_joints(mat_file: str | Path, num_joints: int) -> np.ndarray:
    """Read ``joints.mat`` and return (N, J, 3) [x, y, flag], checking the documented layout."""
    mat_file = Path(mat_file)
    if not mat_file.is_file():
        raise FileNotFoundError(f"LSPET joints file not found: {mat_file}")
    content = scipy.io.loadmat(mat_file)
    if "joints" not in content:
        raise ValueError(f"{mat_file}: no 'joints' variable (found {sorted(k for k in content if not k.startswith('__'))})")
    joints = np.asarray(content["joints"], dtype=np.float64)
    if joints.ndim != 3 or joints.shape[:2] != (num_joints, 3):
        raise ValueError(f"{mat_file}: 'joints' must be ({num_joints}, 3, N) [joint, (x, y, flag), image], got {joints.shape}")
    return joints.transpose(2, 0, 1)


def person_box(points: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Padded, clipped xywh box around labelled joints (N, 2); see the module docstring for margins."""
    x_min, y_min = points.min(axis=0)
    x_max, y_max = points.max(axis=0)
    extent_x, extent_y = x_max - x_min, y_max - y_min
    x1 = max(0.0, x_min - SIDE_MARGIN * extent_x)
    x2 = min(width - 1.0, x_max + SIDE_MARGIN * extent_x)
    y1 = max(0.0, y_min - TOP_MARGIN * extent_y)
    y2 = min(height - 1.0, y_max + BOTTOM_MARGIN * extent_y)
    return float(x1), float(y1), float(x2 - x1), float(y2 - y1)


def _categories(keypoints: KeypointSet) -> list[dict]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(keypoints.names),
            "skeleton": [[a + 1, b + 1] for a, b in keypoints.skeleton],  # COCO skeletons are 1-based
        }
    ]


def convert_lspet(
    src: str | Path,
    out: str | Path,
    train_last: int = 8500,
    val_last: int = 9000,
    min_labelled: int = 2,
    keypoints: str | KeypointSet = "lspet14",
) -> ConversionSummary:
    """Write the COCO-format train/val annotation files for LSPET at ``src`` into ``out/annotations``."""
    src, out = Path(src), Path(out)
    keypoint_set = load_keypoint_set(keypoints)
    if not 0 < train_last < val_last:
        raise ValueError(f"lspet: need 0 < train_last < val_last, got train_last={train_last}, val_last={val_last}")
    if min_labelled < 2:
        raise ValueError(f"lspet: min_labelled must be >= 2 (a box needs two joints), got {min_labelled}")
    img_dir = src / "images"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"LSPET image directory not found: {img_dir}")
    all_joints = load_lspet_joints(src / "joints.mat", keypoint_set.num_joints)
    if val_last > len(all_joints):
        raise ValueError(f"lspet: val_last={val_last} exceeds the {len(all_joints)} images in {src / 'joints.mat'}")

    datasets = {split: {"images": [], "annotations": []} for split in SPLITS}
    dropped = dict.fromkeys(SPLITS, 0)
    labelled_total = dict.fromkeys(SPLITS, 0)
    missing = 0
    for number in range(1, val_last + 1):
        split = "train" if number <= train_last else "val"
        file_name = f"im{number:05d}.jpg"
        path = img_dir / file_name
        if not path.is_file():
            missing += 1
            continue
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
        raw = all_joints[number - 1]
        labelled = (raw[:, 2] > 0) & (raw[:, 0] > 0) & (raw[:, 1] > 0)
        datasets[split]["images"].append({"id": number, "file_name": file_name, "width": width, "height": height})
        if labelled.sum() < min_labelled:
            dropped[split] += 1
            continue
        keypoints_flat = np.zeros((keypoint_set.num_joints, 3))
        keypoints_flat[labelled, :2] = np.round(raw[labelled, :2], 3)
        keypoints_flat[labelled, 2] = 2
        box = person_box(raw[labelled, :2], width, height)
        datasets[split]["annotations"].append(
            {
                "id": number,
                "image_id": number,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [round(v, 3) for v in box],
                "area": round(box[2] * box[3] * AREA_PER_BOX_AREA, 3),
                "num_keypoints": int(labelled.sum()),
                "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(keypoints_flat.ravel())],
            }
        )
        labelled_total[split] += int(labelled.sum())

    (out / "annotations").mkdir(parents=True, exist_ok=True)
    ann_files = {}
    for split in SPLITS:
        ann_files[split] = out / "annotations" / f"person_keypoints_{split}.json"
        content = {
            "info": {
                "description": f"LSPET (Johnson & Everingham, CVPR 2011) converted by hrnet_train; images in {img_dir.resolve()}",
                "img_dir": str(img_dir.resolve()),
            },
            "images": datasets[split]["images"],
            "annotations": datasets[split]["annotations"],
            "categories": _categories(keypoint_set),
        }
        with ann_files[split].open("w") as handle:
            json.dump(content, handle)
    return ConversionSummary(
        images={s: len(datasets[s]["images"]) for s in SPLITS},
        annotations={s: len(datasets[s]["annotations"]) for s in SPLITS},
        labelled_joints=labelled_total,
        dropped_persons=dropped,
        missing_images=missing,
        ann_files=ann_files,
        img_dir=img_dir,
    )


def ensure_lspet_dataset(src: str | Path, out: str | Path, train_last: int = 8500, val_last: int = 9000) -> Path:
    """Convert LSPET into ``out`` unless both split files are already there; returns ``out``.

    Training configs call this so ``experiment=lspet_cpu`` works from a fresh checkout.
    """
    out = Path(out)
    if not all((out / "annotations" / f"person_keypoints_{split}.json").is_file() for split in SPLITS):
        convert_lspet(src, out, train_last=train_last, val_last=val_last)
    return out


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.data.lspet",
    summary="Convert LSPET (joints.mat + images/) to COCO keypoint files output_dir/annotations/"
            "person_keypoints_{train,val}.json; the images stay where they are.",
    options=(
        Option("src", "the LSPET folder (joints.mat, images/)", required=True),
        Option("output_dir", "where annotations/ is written", required=True),
        Option("train_last", "last image number of the train split", int, "8500"),
        Option("val_last", "last image number of the val split", int, "9000"),
        Option("min_labelled", "persons with fewer labelled joints are dropped", int, "2"),
        Option("keypoints", "keypoint set", str, "lspet14"),
    ),
    examples=("python -m hrnet_train.data.lspet src=../shared/data/lspet output_dir=data/lspet_coco",),
)


def main(argv: list[str] | None = None) -> None:
    args = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    out = args.pop("output_dir")
    try:
        summary = convert_lspet(out=out, **args)
    except (FileNotFoundError, ValueError) as error:  # a wrong source folder or split numbers
        raise UsageError(str(error)) from None
    for split in SPLITS:
        print(
            f"{split}: {summary.images[split]} images, {summary.annotations[split]} persons, "
            f"{summary.labelled_joints[split]} labelled joints, {summary.dropped_persons[split]} dropped -> "
            f"{summary.ann_files[split]}"
        )
    print(f"images not found (skipped): {summary.missing_images}; img_dir={summary.img_dir}")


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
