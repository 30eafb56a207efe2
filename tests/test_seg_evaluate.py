"""evaluate.py for segmentation networks: an official-format .pth (the trainer's FullModel layout) on the
Cityscapes-layout sample gives exactly the mIoU of a hand-written loop and labelIds PNGs for the server;
the loader refuses what does not fit, naming the file or the setting; two DDP processes (gloo) count
every pixel once although the sampler pads one rank with a repeated image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from hrnet_train.config_schema import ConfigError
from hrnet_train.data.seg_cityscapes import CITYSCAPES_CLASSES, TRAIN_TO_LABEL_ID, CityscapesDataset
from hrnet_train.data.seg_synthetic import synthetic_seg_dataset
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.decoding.seg_predict import upsample_logits
from hrnet_train.evaluation.miou import SegScores, batch_confusion
from hrnet_train.evaluation.runner import run_from_config
from hrnet_train.evaluation.seg_runner import PREDICTIONS_DIR
from hrnet_train.models import create_model
from hrnet_train.paths import REPO_ROOT, config_dir
from hrnet_train.trained_model import CheckpointError, load_trained_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MODEL = "hrnet_w18_small_v1_seg"


def _run(overrides: list[str]) -> dict | None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return run_from_config(compose(config_name="eval", overrides=overrides))


def _random_network(num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    network = create_model(MODEL, num_classes=num_classes).eval()
    with torch.no_grad():  # the official init leaves logits ~0; spread them so predictions vary per pixel
        network.last_layer[3].weight.normal_(0.0, 0.5)
    return network


@pytest.fixture(scope="module")
def full_model_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Cityscapes network saved as the official trainer does: FullModel(model, loss).state_dict()."""
    state = {f"model.{k}": v for k, v in _random_network(19).state_dict().items()}
    state["loss.criterion.weight"] = torch.tensor(CITYSCAPES_CLASSES.class_weights.copy())
    path = tmp_path_factory.mktemp("pth") / "seg_w18_small_v1_fullmodel.pth"
    torch.save(state, path)
    return path


def test_official_pth_on_the_cityscapes_layout(full_model_pth: Path, cityscapes_synthetic: Path, tmp_path: Path) -> None:
    metrics = _run([f"ckpt={full_model_pth}", f"model={MODEL}", "data=cityscapes", f"data.root={cityscapes_synthetic}",
                    "num_workers=0", "accelerator=cpu", "save_predictions=true", f"output_dir={tmp_path}"])
    # The same network and images by hand: argmax of the logits upsampled to each label (spec B.8).
    network = load_trained_model(full_model_pth, model=MODEL).network
    dataset = CityscapesDataset(cityscapes_synthetic, "val", train=False)
    confusion = np.zeros((19, 19), dtype=np.int64)
    with torch.no_grad():
        for index in range(len(dataset)):
            item = dataset[index]
            logits = upsample_logits(network(item["image"][None]), item["label"].shape, align_corners=False)
            confusion += batch_confusion(logits.argmax(1), item["label"][None], 19)[0].numpy()
    expected = SegScores.from_confusion(confusion)
    assert metrics["settings"]["kind"] == "state_dict" and metrics["settings"]["classes"] == "cityscapes"
    assert metrics["stats"]["num_pixels"] == expected.pixels == sum(int((dataset[i]["label"] != 255).sum()) for i in range(2))
    assert metrics["stats"]["mIoU"] == pytest.approx(expected.miou, abs=1e-12)
    assert metrics["stats"]["IoU_traffic_light"] == pytest.approx(expected.iou[6], abs=1e-12)
    written = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (tmp_path / PREDICTIONS_DIR).glob("*.png")}
    assert sorted(written) == ["synthcity_000000_000019.png", "synthcity_000001_000019.png"]
    assert written["synthcity_000001_000019.png"].shape == (256, 512)
    assert set(np.unique(np.concatenate([w.ravel() for w in written.values()]))) <= set(TRAIN_TO_LABEL_ID.tolist())


def test_loader_refusals_name_the_file_or_setting(full_model_pth: Path, cityscapes_synthetic: Path, tmp_path: Path) -> None:
    common = [f"ckpt={full_model_pth}", f"model={MODEL}", "data=cityscapes", f"data.root={cityscapes_synthetic}",
              "num_workers=0", f"output_dir={tmp_path}"]
    with pytest.raises(ConfigError, match=r"boxes, det_file: keypoint settings, but .* is a segmentation network"):
        _run([*common, "boxes=det", f"det_file={full_model_pth}"])
    with pytest.raises(ConfigError, match="a segmentation network has no keypoint set or codec; drop keypoints"):
        _run([*common, "keypoints=coco17"])
    with pytest.raises(ConfigError, match=r"data: .* is a segmentation network; score it on segmentation data"):
        _run([f"ckpt={full_model_pth}", f"model={MODEL}", "data.root=/tmp", f"output_dir={tmp_path}"])
    state = {k: v for k, v in torch.load(full_model_pth, weights_only=True).items() if k != "model.last_layer.3.bias"}
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"short.pth: does not match HRNet:\n  missing \(1\):\n    last_layer.3.bias"):
        load_trained_model(tmp_path / "short.pth", model=MODEL)
    torch.save(_random_network(19), tmp_path / "whole_module.pth")  # a pickled nn.Module, not weights
    with pytest.raises(CheckpointError, match=r"whole_module.pth: not a loadable checkpoint \(UnpicklingError: Weights only load failed"):
        load_trained_model(tmp_path / "whole_module.pth", model=MODEL)


@pytest.mark.slow  # two fresh processes (gloo): about a minute on a loaded 2-core machine
def test_two_process_ddp_counts_every_pixel_once(tmp_path: Path) -> None:
    # 5 val images of 96x96: DistributedSampler gives rank 1 a repeat of image 0 to even out 3 + 3.
    root = ensure_synthetic_dataset(tmp_path / "data", num_train=2, num_val=5, seed=7, image_size="96x96", min_person_height=40.0)
    torch.save(_random_network(2).state_dict(), tmp_path / "net.pth")
    common = [f"ckpt={tmp_path / 'net.pth'}", f"model={MODEL}", "data=seg_synthetic", f"data.root={root}",
              "data.generate_synthetic=false", "data.val_batch_size=1", "num_workers=0", "accelerator=cpu"]
    single = _run([*common, f"output_dir={tmp_path / 'one'}"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), *common, "devices=2", f"output_dir={tmp_path / 'two'}"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    double = json.loads((tmp_path / "two" / "metrics.json").read_text())
    labelled = sum(int((item["label"] != 255).sum()) for item in synthetic_seg_dataset(root, "val", train=False))
    assert double["throughput"]["world_size"] == 2
    assert double["stats"]["num_pixels"] == single["stats"]["num_pixels"] == labelled
    assert double["stats"] == single["stats"]  # the same confusion matrix, so every score is the same
