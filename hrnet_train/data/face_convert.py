"""The official face landmark downloads -> the COCO-style face JSONs the training data path reads.

WHY: training, evaluate.py and the baselines read one layout (COCO-style face keypoint JSON,
``TopDownCocoDataset(instances="face")``); the official HRNet code ships its sets as CSVs and COFW as
MATLAB files (spec A.7). This tool converts a dataset folder laid out as the official code expects
(``data/<set>/``) once, in place by default, so ``data=wflw data.root=<folder>`` works:

=======  ==============================================================================  =============
dataset  official files under ``root``                                                    keypoint set
=======  ==============================================================================  =============
300w     ``face_landmarks_300w_{train,valid,valid_common,valid_challenge,test}.csv``       face300w68
wflw     ``face_landmarks_wflw_{train,test}.csv``, ``face_landmarks_wflw_test_<subset>.csv``  wflw98
cofw     ``COFW_{train,test}_color.mat`` (images embedded)                                  cofw29
aflw     ``face_landmarks_aflw_{train,test,test_frontal}.csv``                              aflw19
=======  ==============================================================================  =============

CSV image paths are relative to ``root/images`` (the official ``DATASET.ROOT``). Each file found becomes
``<output_dir>/annotations/<its stem>.json`` (COFW: ``face_landmarks_cofw_<split>.json``, its images
written to ``<output_dir>/images/<split>/``); the official center/scale (and AFLW's ``box_size``, its
NME normaliser) are kept. Files of a dataset that are absent are skipped; none at all is an error
listing the expected names.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hrnet_train.cli_args import CommandLine, Option, UsageError, parse_bool, run_tool
from hrnet_train.data.face_formats import FaceAnnotation, read_cofw_mat, read_face_csv, write_face_coco
from hrnet_train.keypoints import load_keypoint_set

WFLW_SUBSETS = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")


@dataclass(frozen=True)
class OfficialDataset:
    """One official face set: its keypoint set and the file names of its splits (spec A.7)."""

    keypoints: str
    files: tuple[str, ...]

    def split_name(self, file_name: str) -> str:
        """``face_landmarks_wflw_test_blur.csv`` -> ``test_blur``; ``COFW_train_color.mat`` -> ``train``."""
        stem = Path(file_name).stem
        return stem.removeprefix("COFW_").removesuffix("_color") if stem.startswith("COFW_") else stem.split("_", 3)[3]


OFFICIAL_DATASETS = {
    "300w": OfficialDataset("face300w68", tuple(f"face_landmarks_300w_{s}.csv"
                                                for s in ("train", "valid", "valid_common", "valid_challenge", "test"))),
    "wflw": OfficialDataset("wflw98", ("face_landmarks_wflw_train.csv", "face_landmarks_wflw_test.csv",
                                       *(f"face_landmarks_wflw_test_{s}.csv" for s in WFLW_SUBSETS))),
    "cofw": OfficialDataset("cofw29", ("COFW_train_color.mat", "COFW_test_color.mat")),
    "aflw": OfficialDataset("aflw19", tuple(f"face_landmarks_aflw_{s}.csv" for s in ("train", "test", "test_frontal"))),
}


def annotation_name(dataset: str, split: str) -> str:
    """The JSON written for a split: ``face_landmarks_<dataset>_<split>.json`` (the CSV's own stem)."""
    return f"face_landmarks_{dataset}_{split}.json"


def convert_official(dataset: str, root: str | Path, output_dir: str | Path | None = None,
                     zero_based: bool = True) -> list[Path]:
    """Convert every official file of ``dataset`` found under ``root``; returns the JSONs written.

    ``zero_based`` (COFW only): subtract 1 from the MATLAB coordinates (see ``face_formats``).
    """
    if dataset not in OFFICIAL_DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(OFFICIAL_DATASETS)}, got {dataset!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root} is not a folder (expected the official data/{dataset}/ layout)")
    out = root if output_dir is None else Path(output_dir).expanduser()
    official = OFFICIAL_DATASETS[dataset]
    keypoint_set = load_keypoint_set(official.keypoints)
    present = [name for name in official.files if (root / name).is_file()]
    if not present:
        raise FileNotFoundError(f"{root}: none of the official {dataset} files is there (expected {', '.join(official.files)})")
    written = []
    for name in present:
        split = official.split_name(name)
        faces: list[FaceAnnotation]
        if name.endswith(".mat"):
            faces, image_dir = read_cofw_mat(root / name, zero_based), out / "images" / split
        else:
            faces, image_dir = read_face_csv(root / name, keypoint_set, image_root=root / "images"), root / "images"
        if not faces:
            raise ValueError(f"{root / name}: no faces in the file")
        written.append(write_face_coco(faces, keypoint_set, out / "annotations" / annotation_name(dataset, split), image_dir))
    return written


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.data.face_convert",
    summary="Convert an official face landmark download (300W / WFLW / AFLW CSVs + images/, COFW .mat) to the "
            "COCO-style face JSONs output_dir/annotations/face_landmarks_<dataset>_<split>.json (data=<dataset>).",
    options=(
        Option("dataset", f"which set: {' | '.join(OFFICIAL_DATASETS)}", required=True),
        Option("root", "the dataset folder as the official code has it (the CSVs/.mat files and images/)", required=True),
        Option("output_dir", "where annotations/ (and COFW's images/) go (default: root, in place)"),
        Option("zero_based", "COFW: 0-based pixel coordinates (MATLAB stores 1-based)", lambda v: parse_bool(v, "zero_based"), "true"),
    ),
    examples=(
        "python -m hrnet_train.data.face_convert dataset=wflw root=/data/wflw",
        "python -m hrnet_train.data.face_convert dataset=cofw root=/data/cofw output_dir=/data/cofw_coco",
    ),
)


def main(argv: Sequence[str] | None = None) -> list[Path]:
    args = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    if args["dataset"] not in OFFICIAL_DATASETS:
        raise UsageError(f"dataset: expected one of {sorted(OFFICIAL_DATASETS)}, got {args['dataset']!r}")
    if not Path(args["root"]).expanduser().is_dir():
        raise UsageError(f"root: {args['root']} is not a folder")
    written = convert_official(args["dataset"], args["root"], args["output_dir"], args["zero_based"])
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
