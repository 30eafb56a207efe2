"""Your own keypoints (docs/custom_dataset.md): a labelling tool's COCO export -> keypoint-set YAML ->
fine-tune with init_from -> evaluate, run on a real example; and one message per known export pitfall.

The example is a keypoint subset of coco_mini written as a user's CVAT export would be (COCO Keypoints
1.0 of a Skeleton label: category id 1, its own joint names, a 1-based skeleton, v in {0, 1, 2});
the pitfall files follow the documented exports of CVAT (points that were not a Skeleton have no
keypoint names) and Label Studio (categories numbered from 0; without ``model_index`` no keypoints;
boxes and keypoints as separate annotations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hrnet_train.cli_args import UsageError
from hrnet_train.data.custom_keypoints import ExportError, inspect_export, main
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.paths import REPO_ROOT

ARMS = ("l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist")  # COCO joints 5..10, renamed
SKELETON_1_BASED = [[1, 3], [3, 5], [2, 4], [4, 6], [1, 2]]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def cvat_export(coco_file: Path, out: Path) -> Path:
    """The coco_mini persons as a CVAT 'COCO Keypoints 1.0' export of a 6-point 'arm' Skeleton."""
    coco = json.loads(coco_file.read_text())
    annotations = []
    for ann in coco["annotations"]:
        if ann.get("category_id") != 1 or ann.get("iscrowd") or not ann.get("num_keypoints"):
            continue
        points = ann["keypoints"][5 * 3:11 * 3]
        annotations.append({"id": ann["id"], "image_id": ann["image_id"], "category_id": 1, "segmentation": [],
                            "area": ann["area"], "bbox": ann["bbox"], "iscrowd": 0, "attributes": {"occluded": False},
                            "keypoints": points, "num_keypoints": sum(1 for v in points[2::3] if v > 0)})
    export = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": {"contributor": "", "description": ""},
              "categories": [{"id": 1, "name": "arm", "supercategory": "", "keypoints": list(ARMS), "skeleton": SKELETON_1_BASED}],
              "images": coco["images"], "annotations": annotations}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(export))
    return out


def test_cvat_export_becomes_a_keypoint_set(coco_mini: Path, tmp_path: Path) -> None:
    ann = cvat_export(coco_mini / "annotations" / "person_keypoints_val2017_mini.json", tmp_path / "val.json")
    export = inspect_export(ann)
    assert (export.category_id, export.names, export.annotated) == (1, ARMS, 68)
    assert export.skeleton == ((0, 2), (2, 4), (1, 3), (3, 5), (0, 1))  # 1-based in the file, 0-based here
    assert export.flip_pairs() == [("l_shoulder", "r_shoulder"), ("l_elbow", "r_elbow"), ("l_wrist", "r_wrist")]
    path = main([f"ann_file={ann}", "name=my_arms", f"output_dir={tmp_path / 'conf' / 'keypoints'}"])
    keypoints = load_keypoint_set(path)
    assert keypoints.names == ARMS and keypoints.flip_index.tolist() == [1, 0, 3, 2, 5, 4]
    assert keypoints.skeleton[0] == (0, 2) and len(keypoints.sigmas) == 6


@pytest.mark.parametrize(
    ("category", "annotation", "message"),
    [
        # CVAT: points annotated as plain Points, not a Skeleton: the category has no keypoint names.
        ({"id": 1, "name": "arm", "supercategory": ""}, {"keypoints": [1, 2, 2] * 6}, "no category lists keypoint names"),
        # Label Studio without model_index: categories from 0, boxes only, no keypoint names.
        ({"id": 0, "name": "person"}, {"bbox": [1, 1, 5, 5]}, "Label Studio give every KeyPointLabels label a model_index"),
        # A skeleton copied 0-based into a COCO file.
        ({"id": 1, "name": "arm", "keypoints": list(ARMS), "skeleton": [[0, 2], [2, 4]]}, {"keypoints": [1, 2, 2] * 6},
         "skeleton uses joint numbers 0..4 for 6 keypoints; COCO skeletons are 1-based .*looks 0-based"),
        # A visibility flag that is not COCO's.
        ({"id": 1, "name": "arm", "keypoints": list(ARMS), "skeleton": []}, {"keypoints": [1, 2, 2] * 5 + [1, 2, 3]},
         "joint 'r_wrist' has visibility 3; COCO flags are 0 \\(unlabelled\\), 1 \\(labelled, occluded\\) or 2"),
        # Label Studio with model_index but the persons' boxes exported separately (and no keypoints at all).
        ({"id": 0, "name": "person", "keypoints": list(ARMS), "skeleton": []}, {"bbox": [1, 1, 5, 5]},
         "1 have boxes only: Label Studio exports boxes and keypoints as separate annotations"),
        ({"id": 1, "name": "arm", "keypoints": list(ARMS), "skeleton": []}, {"keypoints": [1, 2, 2] * 5},
         "annotation 7 \\(image 3\\): 15 keypoint values, expected 3 x 6"),
    ],
)
def test_each_export_pitfall_has_its_message(category: dict, annotation: dict, message: str, tmp_path: Path) -> None:
    ann = {"id": 7, "image_id": 3, "category_id": category["id"], "iscrowd": 0, **annotation}
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"images": [{"id": 3, "file_name": "a.jpg", "width": 10, "height": 10}],
                                "annotations": [ann], "categories": [category]}))
    with pytest.raises(ExportError, match=message):
        inspect_export(path)
    with pytest.raises(UsageError, match=message):  # the CLI says the same, exit code 2
        main([f"ann_file={path}", "name=x", f"output_dir={tmp_path}"])


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=ENV)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow  # a short real fine-tune + evaluation: about a minute on an idle 2-core CPU
def test_the_guide_end_to_end_on_a_real_subset(coco_mini: Path, tmp_path: Path) -> None:
    """docs/custom_dataset.md's commands: keypoint set from the export, a data config in the user's own
    config folder, a short fine-tune from the committed LSPET model (init_from), then evaluate.py."""
    export = tmp_path / "my_arms"
    cvat_export(coco_mini / "annotations" / "person_keypoints_train2017_mini.json", export / "annotations" / "train.json")
    cvat_export(coco_mini / "annotations" / "person_keypoints_val2017_mini.json", export / "annotations" / "val.json")
    conf = tmp_path / "my_conf"
    _run(["-m", "hrnet_train.data.custom_keypoints", f"ann_file={export / 'annotations' / 'train.json'}", "name=my_arms",
          f"output_dir={conf / 'keypoints'}"], tmp_path)
    (conf / "data").mkdir()
    (conf / "data" / "my_arms.yaml").write_text(
        "defaults:\n  - coco\n  - _self_\nname: my_arms\n"
        f"root: {export}\ntrain_ann_file: annotations/train.json\nval_ann_file: annotations/val.json\n"
        f"train_img_dir: {coco_mini / 'images' / 'train2017'}\nval_img_dir: {coco_mini / 'images' / 'val2017'}\n"
        "input_size: 128x96\nbatch_size: 16\nnum_workers: 0\n"
    )
    run_dir = tmp_path / "run"
    done = _run([str(REPO_ROOT / "train.py"), f"hydra.searchpath=[file://{conf}]", "data=my_arms", "keypoints=my_arms",
                 "model=hrnet_w18_small_v1", "codec=dark", f"init_from={REPO_ROOT / 'models' / 'lspet_cpu' / 'lspet_cpu.ckpt'}",
                 "trainer.max_epochs=1", "trainer.precision=32", "trainer.channels_last=false",
                 "data.augment.prob_half_body=0.0", f"output_dir={run_dir}"], tmp_path)
    # own names: the backbone is copied, no joint name matches LSPET's, so the head starts fresh
    assert "head by joint name: 0 joints copied, 6 fresh" in done.stdout
    best = sorted((run_dir / "checkpoints").glob("best-epoch*.ckpt"))[0]
    _run([str(REPO_ROOT / "evaluate.py"), f"ckpt={best}", f"hydra.searchpath=[file://{conf}]", "data=my_arms",
          "num_workers=0", f"output_dir={tmp_path / 'eval'}", "gallery_size=0"], tmp_path)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    labelled = [a for a in json.loads((export / "annotations" / "val.json").read_text())["annotations"] if a["num_keypoints"]]
    assert metrics["settings"]["keypoints"] == "my_arms" and metrics["throughput"]["instances"] == len(labelled) == 64
    assert 0.0 <= metrics["stats"]["AP"] <= 1.0
