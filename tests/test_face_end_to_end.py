"""Faces end to end on synthetic faces: train.py's face task (the quick variant of
``experiment=face_synthetic_cpu``) -> checkpoint -> evaluate.py, the estimator, the demo, ONNX export
and the ablation report, each checked against the numbers of the others.

One small model is trained once for the module (``quick_run``): hrnet_tiny with the HRNetV2 head at
96x96 on 960 synthetic faces, 3 epochs of batch 16, the face codec with DARK decoding and no
rotation/scale augmentation (the full experiment keeps the official augmentation; at 180 steps it
only slows learning). Measured here: NME 6.0 % against the mean-shape baseline's 17.6 %, ~30 s of CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from hrnet_train.baselines.mean_shape import mean_shape_nme
from hrnet_train.codecs import create_codec
from hrnet_train.config_schema import register_resolvers, validate_train_config
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.data.face_records import FACE_BOX_PADDING
from hrnet_train.data.synthetic_faces import annotation_file, image_dir
from hrnet_train.demo import main as demo_main
from hrnet_train.evaluation.face_report import CED_FILE, LANDMARKS_FILE, PER_LANDMARK_FILE
from hrnet_train.evaluation.nme import STAT_NAMES
from hrnet_train.evaluation.report_writer import METRICS_FILE
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.export import export_onnx
from hrnet_train.export.__main__ import main as export_main
from hrnet_train.inference.backproject import backproject
from hrnet_train.inference.estimator import PoseEstimator
from hrnet_train.paths import config_dir
from hrnet_train.report import collect_runs, markdown_table
from hrnet_train.trained_model import load_trained_model, read_checkpoint
from hrnet_train.training.runner import run_training

register_resolvers()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

FACES = {"num_train": 960, "num_val": 48, "seed": 0, "image_size": "128x128", "workers": 1}
QUICK = [
    "experiment=face_synthetic_cpu", "model=hrnet_tiny", "model.head=v2", "data.input_size=96x96",
    "data.batch_size=16", "optimizer.base_batch_size=16", "data.num_workers=0", "data.augment.prob_rotation=0",
    "data.augment.scale_factor=0", "scheduler.warmup_iters=20", "trainer.precision=32", "trainer.channels_last=false",
    "trainer.enable_progress_bar=false", "trainer.max_epochs=3", "eval.num_vis_images=2",
    *(f"data.synthetic.{key}={value}" for key, value in FACES.items()),
]


def train_config(data_root: Path, run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*QUICK, f"data.root={data_root}", *overrides])
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return validate_train_config(resolved), resolved


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("faces")
    config, resolved = train_config(base / "data", base / "run")
    report = run_training(config, resolved)
    return {"report": report, "data": base / "data", "run": base / "run", "checkpoint": Path(report["best_checkpoint"])}


def val_dataset(quick_run: dict, codec=None) -> TopDownCocoDataset:
    trained = load_trained_model(quick_run["checkpoint"])
    root = quick_run["data"]
    return TopDownCocoDataset(annotation_file(root, "val"), image_dir(root, "val"), trained.keypoints,
                              codec or trained.codec, train=False, instances="face")


def test_quick_face_run_beats_half_the_mean_shape_baseline(quick_run: dict) -> None:
    report, root = quick_run["report"], quick_run["data"]
    stats = report["stats"]
    baseline = mean_shape_nme(annotation_file(root, "train"), annotation_file(root, "val"), "face300w68").nme
    assert report["task"] == "face" and list(stats) == list(STAT_NAMES)
    assert report["mean_shape_NME"] == pytest.approx(baseline, abs=1e-6) and 0.15 < baseline < 0.20
    assert stats["NME"] <= 0.5 * baseline  # the bar; measured 0.060 vs 0.176
    assert stats["FR_0.10"] <= stats["FR_0.08"] and 0.0 < stats["AUC_0.1"] <= 1.0
    # The best checkpoint is the lowest val/NME, and it knows it is a face model.
    content = read_checkpoint(quick_run["checkpoint"])
    assert content["hyper_parameters"]["task"] == "face"
    monitor = next(v for k, v in content["callbacks"].items() if "'mode': 'min'" in k and v["monitor"] == "val/NME")
    assert float(monitor["best_model_score"]) == pytest.approx(stats["NME"], rel=1e-6)
    trained = load_trained_model(quick_run["checkpoint"])
    assert (trained.task, trained.keypoints.name, trained.codec.name, trained.codec.decode_mode) == ("face", "face300w68", "face", "dark")
    assert trained.flip_test is False and tuple(trained.input_size) == (96, 96)


def test_evaluate_reports_the_training_nme_with_table_and_ced(quick_run: dict, tmp_path: Path) -> None:
    root = quick_run["data"]
    overrides = [f"ckpt={quick_run['checkpoint']}", f"data.ann_file={annotation_file(root, 'val')}",
                 f"data.img_dir={image_dir(root, 'val')}", "num_workers=0", "accelerator=cpu", f"output_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        metrics = run_from_config(compose(config_name="eval", overrides=overrides))
    assert metrics == json.loads((tmp_path / METRICS_FILE).read_text())
    # Same pipeline as training's validation (fp32 both, no flip test: the checkpoint's own setting).
    assert metrics["stats"] == pytest.approx(quick_run["report"]["stats"], abs=1e-9)
    assert metrics["settings"]["flip_test"] is False and metrics["num_faces"] == 48
    assert metrics["metric"] == "NME (distance of eye_right_01 and eye_left_04)"
    assert len(metrics["per_landmark"]) == 68
    assert np.mean(list(metrics["per_landmark"].values())) == pytest.approx(metrics["stats"]["NME"], rel=1e-9)
    table = (tmp_path / PER_LANDMARK_FILE).read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and line.split(" ")[1].isdigit()]
    assert len(rows) == 68 and rows[36].startswith("| 36 eye_right_01 |") and "| AUC_0.1 (fraction) |" in table
    assert (tmp_path / CED_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    landmarks = json.loads((tmp_path / LANDMARKS_FILE).read_text())
    assert len(landmarks) == 48 and np.asarray(landmarks[0]["landmarks"]).shape == (68, 3)


def test_estimator_on_face_boxes_equals_the_evaluation_path(quick_run: dict) -> None:
    trained = load_trained_model(quick_run["checkpoint"])
    estimator = PoseEstimator.from_trained(trained, max_batch=8)
    assert estimator.task == "face" and estimator.flip_test is False
    dataset = val_dataset(quick_run)
    records = dataset.records[:6]
    # A face box whose centre and side reproduce the record's crop box (scale already x1.25).
    boxes = [np.array([[*(r.center - 100 * r.scale[0] / FACE_BOX_PADDING), *(2 * [200 * r.scale[0] / FACE_BOX_PADDING])]])
             for r in records]
    images = [str(r.image_file) for r in records]
    predicted = estimator.predict(images, boxes=boxes)
    network = trained.network
    with torch.no_grad():
        heatmaps = network(torch.stack([dataset[i]["image"] for i in range(6)])).numpy()
    coords, _ = trained.codec.decode(heatmaps)
    expected = trained.codec.to_image(coords, np.stack([r.center for r in records]), np.stack([r.scale for r in records]))
    got = np.stack([faces[0]["keypoints"][:, :2] for faces in predicted])
    assert np.abs(got - expected).max() < 1e-3  # same crop warp, network and decoding (float32 rounding)
    truth = np.stack([r.joints[:, :2] for r in records])
    interocular = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    assert np.mean(np.linalg.norm(got - truth, axis=2).mean(axis=1) / interocular) < 0.12
    (whole,) = estimator.predict(images[0])  # no box: the whole image is the face box
    assert whole[0]["box"].tolist() == [0.0, 0.0, 128.0, 128.0, 1.0] and whole[0]["keypoints"].shape == (68, 3)


def test_demo_draws_landmarks_on_a_folder_and_on_haar_boxes(quick_run: dict, shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    for name in sorted(p.name for p in image_dir(quick_run["data"], "val").glob("*.jpg"))[:2]:
        (folder / name).write_bytes((image_dir(quick_run["data"], "val") / name).read_bytes())
    out = tmp_path / "out"
    common = [f"ckpt={quick_run['checkpoint']}", "progress=false", "draw.radius=1", "draw.thickness=1"]
    assert demo_main([f"input={folder}", f"output_dir={out}", "detector=full_image", *common]) == 0
    frames = json.loads((out / "keypoints.json").read_text())["frames"]
    assert len(frames) == 2 and all(len(frame["persons"]) == 1 for frame in frames)
    drawn, original = cv2.imread(str(out / frames[0]["name"])), cv2.imread(str(folder / frames[0]["name"]))
    assert drawn.shape == original.shape and np.any(drawn != original)
    # The astronaut (public domain): the default detector of a face model is OpenCV's Haar face cascade.
    astronaut = shared_data / "demo_images" / "skimage_astronaut.png"
    assert demo_main([f"input={astronaut}", f"output_dir={tmp_path / 'astronaut'}", *common]) == 0
    (frame,) = json.loads((tmp_path / "astronaut" / "keypoints.json").read_text())["frames"]
    (face,) = frame["persons"]
    x, y, w, h = face["box"][:4]
    points = np.asarray(face["keypoints"])[:, :2]
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 160 and points.shape == (68, 2)  # the face, not the suit


def test_onnx_export_matches_torch_and_the_official_integer_decoding(quick_run: dict, tmp_path: Path) -> None:
    path = export_main([f"ckpt={quick_run['checkpoint']}", f"output_dir={tmp_path}"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert (metadata["task"], metadata["codec"], metadata["pixel_convention"]) == ("face", "face", "size")
    assert "image_rounding" not in metadata and "1.25" in metadata["crop_box"]  # DARK decoding is continuous
    trained = load_trained_model(quick_run["checkpoint"])
    dataset = val_dataset(quick_run)
    images = torch.stack([dataset[i]["image"] for i in range(8)])
    centers, scales = np.stack([r.center for r in dataset.records[:8]]), np.stack([r.scale for r in dataset.records[:8]])
    _, crop_points, _ = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        heatmaps = trained.network(images).numpy()
    coords, _ = trained.codec.decode(heatmaps)
    expected = trained.codec.to_image(coords, centers, scales)
    assert np.abs(backproject(crop_points, centers, scales, (96, 96), "face") - expected).max() < 2e-3
    # The official decoding ends with trunc(x) + 1 in image pixels: exported metadata + backproject's flag.
    official = create_codec("face", (96, 96), sigma=1.5)
    official_path = export_onnx(trained.network, official, tmp_path / "official.onnx")
    official_session = ort.InferenceSession(str(official_path), providers=["CPUExecutionProvider"])
    assert official_session.get_modelmeta().custom_metadata_map["image_rounding"] == "trunc_plus_one"
    _, official_crop, _ = official_session.run(None, {"images": images.numpy()})
    want = official.to_image(official.decode(heatmaps)[0], centers, scales)
    got = backproject(official_crop, centers, scales, (96, 96), "face", trunc_plus_one=True)
    assert np.array_equal(got, np.round(got)) and np.abs(got - want).max() <= 1.0
    assert np.mean(got == want) > 0.99  # whole pixels; a float32 rounding may cross an integer


def test_ablation_report_has_nme_columns(quick_run: dict) -> None:
    (row,) = collect_runs([quick_run["run"]])
    assert row.task == "face" and row.metrics["NME"] == pytest.approx(quick_run["report"]["stats"]["NME"])
    table = markdown_table([row])
    assert "| NME | FR_0.08 | FR_0.10 | AUC_0.1 |" in table and "| AP |" not in table

