"""The face experiments (official W18 recipes and the CPU default), the face config checks, and the
converter from the official download layouts (CSV + images/, COFW .mat) to the JSONs the data configs read."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from test_cli_conventions import _compose as compose_train

from hrnet_train.cli_args import UsageError
from hrnet_train.config_schema import ConfigError, register_resolvers
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.data.face_convert import annotation_name, convert_official
from hrnet_train.data.face_convert import main as convert_main
from hrnet_train.data.face_formats import read_face_json
from hrnet_train.data.augment import AugmentConfig
from hrnet_train.codecs import create_codec
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.paths import REPO_ROOT
from hrnet_train.training.schedules import lr_factor

register_resolvers()

# Spec A.2 / A.9: keypoint set, SIGMA and TRAIN.LR of the four official yamls.
OFFICIAL = {"wflw": ("wflw98", 98, 1.5, 1e-4), "300w": ("face300w68", 68, 1.0, 1e-4),
            "cofw": ("cofw29", 29, 1.5, 1e-4), "aflw": ("aflw19", 19, 1.5, 2e-4)}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_recipes_compose_as_the_spec_says(name: str, tmp_path: Path) -> None:
    keypoints, joints, sigma, lr = OFFICIAL[name]
    (tmp_path / "annotations").mkdir()
    for split in ("train", "valid" if name == "300w" else "test"):  # what the converter writes
        (tmp_path / "annotations" / annotation_name(name, split)).write_text("{}")
    config = compose_train(f"experiment={name}_w18", f"data.root={tmp_path}")
    assert (config.task, config.experiment_name, config.model["name"], config.keypoints["name"]) == (
        "face", f"{name}_w18", "hrnet_w18_face", keypoints)
    assert len(config.keypoints["names"]) == joints and config.data.instances == "face"
    assert config.codec == {"name": "face", "sigma": sigma, "stride": 4, "flip_shift": False, "target": "official",
                            "decode": "official", "flip": "official"}
    assert (config.data.input_hw, config.data.batch_size, config.data.val_batch_size) == ((256, 256), 16, 8)
    opt, sched = config.optimizer, config.scheduler
    assert (opt.name, opt.lr, opt.base_batch_size, opt.weight_decay) == ("adam", lr, 16, 0.0)
    assert (sched.name, sched.milestones, sched.gamma, sched.reference_step_offset, sched.warmup_iters) == (
        "multistep", (30, 50), 0.1, True, 0)
    # The official scheduler is stepped before each epoch: epochs 0-28 at LR, 29-48 at LR/10, 49-59 at LR/100.
    factors = [lr_factor(sched, epoch * 10, 10, 60) for epoch in (0, 28, 29, 48, 49, 59)]
    assert factors == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert config.trainer.max_epochs == 60 and config.eval.flip_test is False and config.loss.use_target_weight is False
    assert (config.callbacks.checkpoint.monitor, config.callbacks.checkpoint.mode, config.optimized_metric) == (
        "val/NME", "min", "val/NME")
    augment = AugmentConfig.from_mapping(config.data.augment)
    assert (augment.sampling, augment.scale_factor, augment.rot_factor, augment.prob_rotation, augment.flip,
            augment.prob_half_body) == ("face", 0.25, 30.0, 0.6, True, 0.0)
    assert Path(config.data.val_ann_file).name == annotation_name(name, config.data.val_split)


def test_the_cpu_default_experiment() -> None:
    config = compose_train("experiment=face_synthetic_cpu")
    assert (config.task, config.model["name"], config.model["head"], config.data.input_hw) == (
        "face", "hrnet_w18_small_v1", "v2", (128, 128))
    assert (config.codec["target"], config.codec["decode"], config.codec["flip"], config.codec["sigma"]) == (
        "subpixel", "dark", "exact", 1.5)
    assert config.data.generate_synthetic and config.data.synthetic["num_train"] == 3000
    assert (config.optimizer.lr, config.data.batch_size, config.scheduler.name, config.trainer.max_epochs) == (
        2e-3, 32, "cosine", 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.instances=person"], "data.instances: task=face reads face annotations"),
        (["keypoints=coco17"], "keypoint set 'coco17' has no nme_normalizer"),
        (["callbacks.checkpoint.monitor=val/AP"], "callbacks.checkpoint.monitor: a face run logs ['val/NME'"),
        (["optimized_metric=val/AP"], "optimized_metric: a face run logs"),
        (["data.instances=faces"], "data.instances: expected one of ['person', 'face']"),
        (["eval.flip_test=null"], "eval.flip_test: expected true or false"),
    ],
)
def test_malformed_face_configs_fail_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose_train("experiment=face_synthetic_cpu", *overrides)
    assert message in str(info.value)


def test_train_py_exits_2_for_a_face_run_monitoring_ap() -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "experiment=face_synthetic_cpu",
                           "callbacks.checkpoint.monitor=val/AP"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 2 and "callbacks.checkpoint.monitor: a face run logs" in done.stderr


# --------------------------------------------------------------------------- the converter


def _write_csv(path: Path, rows: list[list]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_name", "scale", "center_w", "center_h"])  # the official files start with a header
        writer.writerows(rows)


def test_converter_turns_official_wflw_csvs_into_the_data_config_layout(faces: Path, tmp_path: Path) -> None:
    root = tmp_path / "wflw"
    (root / "images" / "sub").mkdir(parents=True)
    samples = read_face_json(faces / "wflw" / "test_wflw.json", load_keypoint_set("wflw98"))
    for face in samples:
        (root / "images" / "sub" / face.image).write_bytes((faces / "wflw" / face.image).read_bytes())
    rows = [[f"sub/{f.image}", f.scale, *f.center, *f.landmarks.reshape(-1)] for f in samples]
    _write_csv(root / "face_landmarks_wflw_train.csv", rows)
    _write_csv(root / "face_landmarks_wflw_test.csv", rows[:1])
    written = convert_main(["dataset=wflw", f"root={root}"])
    assert [p.name for p in written] == ["face_landmarks_wflw_train.json", "face_landmarks_wflw_test.json"]
    # What data=wflw reads (root-relative files of conf/data/wflw.yaml) gives the official crop boxes.
    config = compose_train("experiment=wflw_w18", f"data.root={root}")
    dataset = TopDownCocoDataset(root / config.data.train_ann_file, root / config.data.train_img_dir,
                                 load_keypoint_set("wflw98"), create_codec("face", (256, 256)), train=False, instances="face")
    assert len(dataset) == len(samples) == 4 and len(dataset.coco.imgs) == 2  # four faces on two images
    for record, face in zip(dataset.records, samples, strict=True):
        assert record.center.tolist() == face.center.tolist() and record.scale.tolist() == [face.scale * 1.25] * 2
        assert np.array_equal(record.joints[:, :2], face.landmarks)
        assert record.image_size == cv2.imread(str(faces / "wflw" / face.image)).shape[:2]


def test_converter_writes_cofw_images_and_keeps_aflw_box_size(faces: Path, tmp_path: Path) -> None:
    cofw = read_face_json(faces / "cofw" / "test_cofw.json", load_keypoint_set("cofw29"))
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = (cv2.cvtColor(cv2.imread(str(faces / "cofw" / f.image)), cv2.COLOR_BGR2RGB) for f in cofw)
    phis = np.stack([np.concatenate([f.landmarks[:, 0] + 1, f.landmarks[:, 1] + 1, np.zeros(29)]) for f in cofw])
    (tmp_path / "cofw").mkdir()
    scipy.io.savemat(tmp_path / "cofw" / "COFW_test_color.mat", {"IsT": cells, "phisT": phis})
    out = tmp_path / "cofw_coco"
    (path,) = convert_official("cofw", tmp_path / "cofw", out)
    content = json.loads(path.read_text())
    assert path == out / "annotations" / "face_landmarks_cofw_test.json" and len(content["annotations"]) == 2
    assert (out / "images" / "test" / "cofw_00001.png").is_file()  # conf/data/cofw.yaml: val_img_dir images/test
    assert np.allclose(np.asarray(content["annotations"][1]["keypoints"]).reshape(-1, 3)[:, :2], cofw[1].landmarks)

    aflw = tmp_path / "aflw"
    (aflw / "images").mkdir(parents=True)
    sample = read_face_json(faces / "300w" / "test_300w.json", load_keypoint_set("face300w68"))[0]
    (aflw / "images" / sample.image).write_bytes((faces / "300w" / sample.image).read_bytes())
    _write_csv(aflw / "face_landmarks_aflw_test.csv", [[sample.image, sample.scale, 362.0, *sample.center,
                                                        *sample.landmarks[:19].reshape(-1)]])
    (path,) = convert_official("aflw", aflw)
    (annotation,) = json.loads(path.read_text())["annotations"]
    assert annotation["box_size"] == 362.0 and annotation["scale"] == sample.scale  # AFLW's NME normaliser


def test_converter_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"none of the official 300w files is there \(expected face_landmarks_300w_train.csv"):
        convert_official("300w", tmp_path)
    with pytest.raises(UsageError, match=r"dataset: expected one of \['300w', 'aflw', 'cofw', 'wflw'\], got 'lfpw'"):
        convert_main(["dataset=lfpw", f"root={tmp_path}"])
    _write_csv(tmp_path / "face_landmarks_300w_train.csv", [["missing.png", 1.0, 10.0, 10.0, *range(136)]])
    with pytest.raises(FileNotFoundError, match="line 2: image 'missing.png' not found under"):
        convert_official("300w", tmp_path)
