"""Dataset browser: a PNG grid of augmented training crops with keypoints, skeleton and target heatmaps.

    python -m hrnet_train.data.browse ann_file=ANN.json img_dir=IMAGES keypoints=coco17 output_dir=docs/images \\
        name=browse n=16 seed=0 [input_size=256x192] [codec=legacy] [train=true] [licenses=1,2,4,5]

Looking at what the network is fed is the quickest check of a new dataset, keypoint set or augmentation
setting (flip pairs, half-body halves, heatmap placement). ``licenses`` keeps only images whose COCO
``license`` id is listed (e.g. to publish a picture), and a credits file lists each image shown with its
Flickr URL and licence (``<output_dir>/<name>.credits.txt``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

from hrnet_train.cli_args import CommandLine, Option, UsageError, parse_bool, run_tool
from hrnet_train.codecs import create_codec
from hrnet_train.data.augment import AugmentConfig
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.drawing import draw_skeleton
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.normalization import denormalize
from hrnet_train.sizes import InputSize

HEATMAP_ALPHA = 0.45
JOINT_COLOR = (255, 64, 64)  # RGB
LIMB_COLOR = (64, 255, 64)


def parse_licenses(value: str) -> frozenset[int]:
    """``"1,2,4,5"`` -> {1, 2, 4, 5}."""
    try:
        return frozenset(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"licenses: expected comma-separated licence ids such as '1,2,4,5', got {value!r}") from None


def render_sample(sample: dict, keypoints: KeypointSet) -> np.ndarray:
    """One sample -> uint8 RGB crop with the summed target heatmaps blended in and the joints/limbs drawn."""
    image = denormalize(sample["image"].numpy())
    height, width = image.shape[:2]
    heat = sample["target"].numpy().max(axis=0)
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap(np.clip(heat * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    alpha = (HEATMAP_ALPHA * np.clip(heat, 0.0, 1.0))[:, :, None]
    canvas = np.ascontiguousarray((image * (1.0 - alpha) + colored * alpha).astype(np.uint8))
    joints = np.asarray(sample["meta"]["joints"])
    shown = (joints[:, 2] > 0) & (sample["target_weight"].numpy() > 0)
    draw_skeleton(canvas, joints[:, :2], shown, keypoints.skeleton, LIMB_COLOR, joint_colors=JOINT_COLOR, radius=2)
    return canvas


def browse(
    ann_file: str | Path,
    img_dir: str | Path,
    keypoints: str | KeypointSet = "coco17",
    output_dir: str | Path = ".",
    name: str = "browse",
    n: int = 16,
    seed: int = 0,
    input_size: str = "256x192",
    codec: str = "legacy",
    train: bool = True,
    licenses: frozenset[int] | None = None,
) -> tuple[Path, Path]:
    """Write ``<output_dir>/<name>.png`` and its credits file ``<name>.credits.txt``; returns their paths."""
    keypoint_set = load_keypoint_set(keypoints)
    size = InputSize.parse(input_size)
    dataset = TopDownCocoDataset(
        ann_file, img_dir, keypoint_set, create_codec(codec, size), train=train, augment=AugmentConfig(), seed=seed
    )
    candidates = [
        i for i, r in enumerate(dataset.records) if licenses is None or dataset.coco.imgs[r.image_id].get("license") in licenses
    ]
    if not candidates:
        raise ValueError(f"{ann_file}: no instance left after the licence filter {sorted(licenses or [])}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(candidates, size=min(n, len(candidates)), replace=False)
    tiles = [render_sample(dataset.load_sample(int(i), rng), keypoint_set) for i in chosen]
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    height, width = size
    grid = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = tile
    out = Path(output_dir) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {out}")
    credits_path = out.with_suffix(".credits.txt")
    credits_path.write_text(_credits(dataset, [int(i) for i in chosen], ann_file))
    return out, credits_path


def _credits(dataset: TopDownCocoDataset, chosen: list[int], ann_file: str | Path) -> str:
    licences = {lic["id"]: lic for lic in dataset.coco.dataset.get("licenses", [])}
    lines = [f"Images shown (tiles left to right, top to bottom) from {Path(ann_file).name}:"]
    for tile, index in enumerate(chosen):
        image = dataset.coco.imgs[dataset.records[index].image_id]
        licence = licences.get(image.get("license"), {})
        lines.append(
            f"tile {tile}: image {image['id']} ({image['file_name']}) {image.get('flickr_url', 'no Flickr URL')} "
            f"licence {image.get('license', '?')}: {licence.get('name', 'unknown')} {licence.get('url', '')}".rstrip()
        )
    lines.append("COCO annotations: CC BY 4.0 (cocodataset.org). Each photo keeps its own Flickr licence above.")
    return "\n".join(lines) + "\n"


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.data.browse",
    summary="A PNG grid of augmented training crops with keypoints, skeleton and target heatmaps, plus a credits file.",
    options=(
        Option("ann_file", "COCO keypoint annotation file", required=True),
        Option("img_dir", "its image folder", required=True),
        Option("keypoints", "keypoint set", str, "coco17"),
        Option("output_dir", "where <name>.png and <name>.credits.txt go", str, "."),
        Option("name", "file name without suffix", str, "browse"),
        Option("n", "tiles", int, "16"),
        Option("seed", "which instances and augmentations", int, "0"),
        Option("input_size", "crop size HxW", str, "256x192"),
        Option("codec", "target codec", str, "legacy"),
        Option("train", "apply training augmentation", lambda v: parse_bool(v, "train"), "true"),
        Option("licenses", "only images with these COCO licence ids, e.g. 1,2,4,5", parse_licenses),
    ),
    examples=("python -m hrnet_train.data.browse ann_file=../shared/data/coco_mini/annotations/person_keypoints_val2017_mini.json "
              "img_dir=../shared/data/coco_mini/images/val2017 licenses=1,2,4,5 output_dir=docs/images name=browse_coco_mini",),
)


def main(argv: list[str] | None = None) -> None:
    args = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    try:
        out, credits_path = browse(**args)
    except (FileNotFoundError, ValueError) as error:  # a missing file, an unknown set or codec, an empty filter
        raise UsageError(str(error)) from None
    print(f"wrote {out} and {credits_path}")


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
