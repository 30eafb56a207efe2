"""Official face checkpoints (the released ``HR18-*.pth`` layout) through the one loader: strict keys,
the wrappers the official code writes, clear errors, the face defaults, and evaluate.py on the real WFLW
samples with such a file (a randomly initialised network: the test checks the path, not the NME)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from hrnet_train.evaluation.report_writer import METRICS_FILE
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.inference.estimator import PoseEstimator
from hrnet_train.models import create_model
from hrnet_train.paths import config_dir
from hrnet_train.trained_model import CheckpointError, load_trained_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def wflw_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("hrnet_w18_face", num_joints=98).eval()


@pytest.fixture(scope="module")
def hr18_wflw(wflw_network: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official test path's layout: {'state_dict': ...} with DataParallel's ``module.`` keys (spec A.6)."""
    path = tmp_path_factory.mktemp("official") / "HR18-WFLW.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in wflw_network.state_dict().items()}}, path)
    return path


def test_official_face_file_loads_strictly_with_the_face_defaults(wflw_network, hr18_wflw: Path, tmp_path: Path) -> None:
    trained = load_trained_model(hr18_wflw, model="hrnet_w18_face", keypoints="wflw98")
    assert (trained.task, trained.keypoints.name, tuple(trained.input_size), trained.flip_test) == ("face", "wflw98", (256, 256), False)
    assert (trained.codec.name, trained.codec.decode_mode, trained.codec.sigma) == ("face", "official", 1.5)
    loaded = trained.network.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in wflw_network.state_dict().items())
    plain = tmp_path / "plain.pth"  # a bare state dict (final_state.pth) loads the same way
    torch.save(wflw_network.state_dict(), plain)
    assert load_trained_model(plain, model="hrnet_w18_face", keypoints="wflw98").task == "face"
    estimator = PoseEstimator.from_checkpoint(hr18_wflw, model="hrnet_w18_face", keypoints="wflw98", input_size="256x256")
    assert estimator.task == "face" and estimator.flip_test is False


def test_mismatched_and_pickled_files_are_refused_naming_the_file(wflw_network, hr18_wflw: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_trained_model(hr18_wflw, model="hrnet_w18_face", keypoints="face300w68")  # a 98-point file, 68 points asked
    message = str(info.value)
    assert str(hr18_wflw) in message and "head.3.weight: checkpoint (98, 270, 1, 1) vs model (68, 270, 1, 1)" in message
    pose_keys = tmp_path / "pose.pth"  # a pose W18 file is no face model: final_layer vs head, stage4.2 fuse
    torch.save(create_model("hrnet_w18", num_joints=98).state_dict(), pose_keys)
    # Spec A.4: the face model has 87 keys more (9 head + 78 of stage4.2's extra fuse), 2 fewer (final_layer).
    with pytest.raises(CheckpointError, match=r"(?s)missing \(87\):.*stage4\.2\.fuse_layers\.1.*unexpected \(2\):.*final_layer"):
        load_trained_model(pose_keys, model="hrnet_w18_face", keypoints="wflw98")
    pickled = tmp_path / "model_best.pth"  # what the official face trainer writes: the whole module
    torch.save(wflw_network, pickled)
    with pytest.raises(CheckpointError) as info:
        load_trained_model(pickled, model="hrnet_w18_face", keypoints="wflw98")
    assert str(pickled) in str(info.value) and "state_dict()" in str(info.value) and "pickled Python objects" in str(info.value)


def test_evaluate_py_scores_an_official_face_file_on_the_wflw_samples(faces: Path, hr18_wflw: Path, tmp_path: Path) -> None:
    overrides = [f"ckpt={hr18_wflw}", "model=hrnet_w18_face", "keypoints=wflw98", "data=wflw",
                 f"data.ann_file={faces / 'wflw' / 'test_wflw.json'}", f"data.img_dir={faces / 'wflw'}",
                 "num_workers=0", "accelerator=cpu", "batch_size=4", f"output_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        metrics = run_from_config(compose(config_name="eval", overrides=overrides))
    assert metrics == json.loads((tmp_path / METRICS_FILE).read_text())
    settings = metrics["settings"]
    assert (settings["kind"], settings["model"], settings["input_size"], settings["keypoints"]) == (
        "state_dict", "hrnet_w18_face", "256x256", "wflw98")
    assert settings["flip_test"] is False and settings["decode"] == "official" and settings["codec"]["name"] == "face"
    assert metrics["num_faces"] == 4 and metrics["metric"] == "NME (distance of eye_right_01 and eye_left_05)"
    assert set(metrics["stats"]) == {"NME", "FR_0.08", "FR_0.10", "AUC_0.1"}
    # The official decoding returns whole pixels (trunc + 1 in image space).
    landmarks = json.loads(Path(metrics["results_file"]).read_text())
    assert all(float(x).is_integer() and float(y).is_integer() for face in landmarks for x, y, _ in face["landmarks"])


def test_face_models_need_gt_boxes_in_evaluate(faces: Path, hr18_wflw: Path, tmp_path: Path) -> None:
    from hrnet_train.config_schema import ConfigError

    dets = tmp_path / "dets.json"
    dets.write_text("[]")
    overrides = [f"ckpt={hr18_wflw}", "model=hrnet_w18_face", "keypoints=wflw98", "data=wflw", "boxes=det",
                 f"det_file={dets}", f"data.ann_file={faces / 'wflw' / 'test_wflw.json'}", f"data.img_dir={faces / 'wflw'}",
                 f"output_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=overrides)
    with pytest.raises(ConfigError, match="boxes: a face model crops the annotated face boxes, expected gt"):
        run_from_config(cfg)
