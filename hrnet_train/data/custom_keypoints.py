"""Your own keypoints: check a COCO-keypoints export from a labelling tool and write its keypoint-set YAML.

    python -m hrnet_train.data.custom_keypoints ann_file=export/annotations/person_keypoints_default.json \\
        name=my_set output_dir=conf/keypoints [category=1] [sigma=0.07]

A labelling tool's COCO export is the usual start of a custom dataset (docs/custom_dataset.md). The
pitfalls that make a fine-tune silently learn nothing are checked here, each with its own message:

* no category lists keypoint names (CVAT: the points were not a Skeleton; Label Studio: the
  KeyPointLabels had no ``model_index``, and its COCO export then leaves keypoints out);
* skeleton edges that are not 1-based (COCO numbers joints from 1; a 0-based list shifts every limb);
* visibility flags outside {0, 1, 2} (COCO: 0 unlabelled, 1 labelled but occluded, 2 visible);
* keypoint lists of the wrong length, and annotations of the category without keypoints (Label
  Studio writes the person boxes and the keypoints as separate annotations).

The YAML names every joint as in the export, turns the skeleton into name pairs, pairs ``left``/
``right`` joints for flip augmentation by name, and gives every joint the same OKS sigma (edit them:
COCO's body joints range from 0.025 to 0.107).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hrnet_train.cli_args import CommandLine, Option, UsageError, run_tool

DEFAULT_SIGMA = 0.07  # about COCO's mean body-joint sigma (pycocotools kpt_oks_sigmas)
_SIDE = re.compile(r"(?i)(^|[_\-. ])(left|right|l|r)($|[_\-. ])")


class ExportError(ValueError):
    """A labelling-tool export that would not train; the message names the file, record and the fix."""


@dataclass(frozen=True)
class KeypointExport:
    """What an export holds for one category: joint names, 0-based skeleton, annotation counts."""

    ann_file: Path
    category_id: int
    category_name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    annotated: int  # annotations with a keypoint list
    without_keypoints: int  # annotations of the category without one
    visibility: dict[int, int]  # flag -> count over all joints

    def flip_pairs(self) -> list[tuple[str, str]]:
        """(left, right) name pairs: names that differ only by a left/right (l/r) word."""
        sides: dict[str, dict[str, str]] = {}
        for name in self.names:
            match = _SIDE.search(name)
            if match:
                key = _SIDE.sub(lambda m: f"{m.group(1)}*{m.group(3)}", name, count=1).lower()
                sides.setdefault(key, {})["left" if match.group(2).lower() in ("left", "l") else "right"] = name
        return [(pair["left"], pair["right"]) for pair in sides.values() if len(pair) == 2]


def _category(dataset: Mapping[str, Any], ann_file: Path, category_id: int | None) -> Mapping[str, Any]:
    categories = [c for c in dataset.get("categories", []) if isinstance(c, Mapping)]
    with_names = [c for c in categories if c.get("keypoints")]
    if category_id is not None:
        chosen = [c for c in categories if c.get("id") == category_id]
        if not chosen:
            raise ExportError(f"{ann_file}: no category with id {category_id} (ids: {[c.get('id') for c in categories]})")
        category = chosen[0]
    elif len(with_names) == 1:
        category = with_names[0]
    elif not with_names:
        raise ExportError(
            f"{ann_file}: no category lists keypoint names ('keypoints'). In CVAT annotate the points as a Skeleton "
            "and export 'COCO Keypoints 1.0'; in Label Studio give every KeyPointLabels label a model_index "
            "(its COCO export leaves keypoints without one out)"
        )
    else:
        listed = ", ".join(f"{c.get('id')} ({c.get('name')})" for c in with_names)
        raise ExportError(f"{ann_file}: several categories list keypoints ({listed}): choose one with category=<id>")
    if not category.get("keypoints"):
        raise ExportError(f"{ann_file}: category {category.get('id')} ({category.get('name')}) lists no keypoint names")
    return category


def _skeleton(category: Mapping[str, Any], num_joints: int, ann_file: Path) -> tuple[tuple[int, int], ...]:
    """The category's 1-based COCO skeleton as 0-based pairs; refuses lists that are not 1-based."""
    edges = [tuple(edge) for edge in category.get("skeleton") or []]
    ids = [i for edge in edges for i in edge]
    if any(not isinstance(i, int) or isinstance(i, bool) for i in ids) or any(len(edge) != 2 for edge in edges):
        raise ExportError(f"{ann_file}: category {category['id']} skeleton must be [a, b] pairs of joint numbers, got {edges[:3]}")
    if ids and (min(ids) < 1 or max(ids) > num_joints):
        zero_based = min(ids) == 0 and max(ids) <= num_joints - 1
        raise ExportError(
            f"{ann_file}: category {category['id']} skeleton uses joint numbers {min(ids)}..{max(ids)} for {num_joints} "
            "keypoints; COCO skeletons are 1-based (1.." + str(num_joints) + ")"
            + (": this one looks 0-based -- add 1 to every number (or re-export)" if zero_based else "")
        )
    return tuple((a - 1, b - 1) for a, b in edges)


def inspect_export(ann_file: str | Path, category_id: int | None = None) -> KeypointExport:
    """Check ``ann_file`` (see the module docstring) and describe the chosen keypoint category."""
    ann_file = Path(ann_file)
    try:
        dataset = json.loads(ann_file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {ann_file}") from None
    except json.JSONDecodeError as error:
        raise ExportError(f"{ann_file}: not valid JSON ({error})") from None
    if not isinstance(dataset, Mapping) or not isinstance(dataset.get("annotations"), list):
        raise ExportError(f"{ann_file}: not a COCO file (expected an object with 'images', 'annotations', 'categories')")
    category = _category(dataset, ann_file, category_id)
    names = tuple(str(n) for n in category["keypoints"])
    skeleton = _skeleton(category, len(names), ann_file)
    annotated = without = 0
    flags: Counter[int] = Counter()
    for ann in dataset["annotations"]:
        if not isinstance(ann, Mapping) or ann.get("category_id") != category["id"]:
            continue
        values = ann.get("keypoints")
        if not values:
            without += 1
            continue
        where = f"{ann_file}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        if len(values) != 3 * len(names):
            raise ExportError(f"{where}: {len(values)} keypoint values, expected 3 x {len(names)} (x, y, v per joint)")
        for joint, v in zip(names, values[2::3], strict=True):
            if v not in (0, 1, 2) or isinstance(v, bool):
                raise ExportError(f"{where}: joint {joint!r} has visibility {v!r}; COCO flags are 0 (unlabelled), "
                                  "1 (labelled, occluded) or 2 (visible)")
            flags[int(v)] += 1
        annotated += 1
    if annotated == 0:
        raise ExportError(
            f"{ann_file}: no annotation of category {category['id']} ({category.get('name')}) has keypoints"
            + (f" ({without} have boxes only: Label Studio exports boxes and keypoints as separate annotations; "
               "label the keypoints with model_index set)" if without else "")
        )
    return KeypointExport(ann_file, int(category["id"]), str(category.get("name")), names, skeleton, annotated,
                          without, dict(sorted(flags.items())))


def keypoint_set_yaml(export: KeypointExport, name: str, sigma: float = DEFAULT_SIGMA) -> str:
    """A conf/keypoints YAML for the export (names, skeleton, flip pairs by name, one sigma each)."""
    content = {
        "name": name,
        "names": list(export.names),
        "flip_pairs": [list(pair) for pair in export.flip_pairs()],
        "upper_body": [],  # fill in for half-body augmentation (prob_half_body > 0)
        "lower_body": [],
        "skeleton": [[export.names[a], export.names[b]] for a, b in export.skeleton],
        "sigmas": [float(sigma)] * len(export.names),
    }
    header = (f"# Keypoint set {name}: {len(export.names)} joints of category {export.category_id} "
              f"({export.category_name}) in {export.ann_file.name}.\n# Written by hrnet_train.data.custom_keypoints; "
              "check the flip pairs, and tune the OKS sigmas (one per joint) for your joints.\n")
    return header + yaml.safe_dump(content, sort_keys=False)


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.data.custom_keypoints",
    summary="Check a COCO-keypoints export (CVAT, Label Studio, ...) and write its keypoint-set YAML.",
    options=(
        Option("ann_file", "the exported COCO keypoints JSON", required=True),
        Option("name", "name of the keypoint set (file <output_dir>/<name>.yaml)", required=True),
        Option("output_dir", "where the YAML goes", str, "conf/keypoints"),
        Option("category", "category id when several list keypoints", int),
        Option("sigma", "OKS sigma given to every joint", float, str(DEFAULT_SIGMA)),
    ),
    examples=("python -m hrnet_train.data.custom_keypoints ann_file=export/annotations/person_keypoints_default.json name=my_set",),
)


def main(argv: Sequence[str] | None = None) -> Path:
    args = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    try:
        export = inspect_export(args["ann_file"], args["category"])
    except (ExportError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    path = Path(args["output_dir"]) / f"{args['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(keypoint_set_yaml(export, args["name"], args["sigma"]))
    pairs = export.flip_pairs()
    print(f"{export.ann_file}: category {export.category_id} ({export.category_name}), {len(export.names)} joints, "
          f"{export.annotated} annotations with keypoints ({export.without_keypoints} without), visibility {export.visibility}")
    print(f"flip pairs by name: {pairs or 'none found'}; skeleton: {len(export.skeleton)} limbs")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
