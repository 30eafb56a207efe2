"""Pretrained backbones (model.pretrained), fine-tuning onto another keypoint set (init_from), resume checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.models import create_model, model_config
from hrnet_train.trained_model import resume_mismatches
from hrnet_train.training.fine_tune import BackboneFreeze, InitFromError, initialize_from

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Keys of the ImageNet classification HRNet that a pose net does not have (spec 1.7).
CLASSIFICATION_ONLY = {
    "incre_modules.0.0.conv1.weight": (32, 32, 1, 1),
    "downsamp_modules.0.0.weight": (256, 128, 3, 3),
    "final_layer.0.weight": (2048, 1024, 1, 1),
    "classifier.weight": (1000, 2048),
    "classifier.bias": (1000,),
}


def imagenet_layout(name: str) -> dict[str, torch.Tensor]:
    """An ImageNet-layout HRNet state dict: the pose backbone's keys with a multi-scale last stage-4
    module (its extra fuse layers) plus the classification-only keys, random values."""
    torch.manual_seed(1)
    backbone = create_model(name, multi_scale_output=True)
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("final_layer")}
    state.update({k: torch.randn(shape) for k, shape in CLASSIFICATION_ONLY.items()})
    return state


@pytest.mark.parametrize("name", ["hrnet_w32", "hrnet_w48"])
def test_imagenet_checkpoint_leaves_exactly_the_head_fresh(name: str, tmp_path: Path) -> None:
    state = imagenet_layout(name)
    assert any(k.startswith("stage4.2.fuse_layers.1.") for k in state)  # the multi-scale extra keys are there
    pth, safetensors = tmp_path / "imagenet.pth", tmp_path / "imagenet.safetensors"
    torch.save({f"module.{k}": v for k, v in state.items()}, pth)  # DataParallel prefix
    save_file({f"backbone.{k}": v.contiguous() for k, v in state.items()}, str(safetensors))  # mmpose-style prefix
    for source in (pth, safetensors):
        model = create_model({**model_config(name), "pretrained": str(source)}, num_joints=17)
        load = model.pretrained_load
        assert load.fresh == ("final_layer.bias", "final_layer.weight")
        assert len(load.loaded) == len(model.state_dict()) - 2
        assert torch.equal(model.stage4[2].branches[3][3].conv2.weight, state["stage4.2.branches.3.3.conv2.weight"])
        summary = load.summary()
        assert f"loaded {len(load.loaded)} tensors" in summary and "fresh init kept by 2 (final_layer)" in summary
        assert "classifier" in summary and "incre_modules" in summary and "stage4.2.fuse_layers.1" in summary


def test_imagenet_checkpoint_with_a_missing_or_misshaped_tensor_is_refused(tmp_path: Path) -> None:
    state = imagenet_layout("hrnet_w32")
    missing = dict(state)
    del missing["stage3.1.branches.2.0.bn1.running_var"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing \(1\):\n    stage3.1.branches.2.0.bn1.running_var"):
        create_model("hrnet_w32", pretrained=tmp_path / "missing.pth")
    misshaped = dict(state)
    misshaped["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    save_file({k: v.contiguous() for k, v in misshaped.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"shape mismatch \(1\):\n    conv1.weight: checkpoint \(64, 3, 5, 5\) vs model \(64, 3, 3, 3\)"):
        create_model("hrnet_w32", pretrained=tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors: not a readable .safetensors file"):
        create_model("hrnet_w32", pretrained=tmp_path / "junk.safetensors")


def _our_checkpoint(path: Path, model_name: str, keypoints: str, input_size: tuple[int, int] = (128, 96)) -> dict:
    """A checkpoint in train.py's layout (model.* weights + the hyper_parameters the loader reads)."""
    from hrnet_train.paths import config_dir
    import yaml

    keypoint_cfg = yaml.safe_load((config_dir() / "keypoints" / f"{keypoints}.yaml").read_text())
    torch.manual_seed(2)
    network = create_model(model_name, num_joints=len(keypoint_cfg["names"]))
    from hrnet_train.training.checkpointing import checkpoint_hparams

    resolved = {"model": model_config(model_name), "keypoints": keypoint_cfg, "codec": {"name": "dark", "sigma": 2.0},
                "data": {"color_rgb": True, "input_size": f"{input_size[0]}x{input_size[1]}"}, "eval": {"flip_test": True}}
    torch.save({"state_dict": {f"model.{k}": v for k, v in network.state_dict().items()},
                "hyper_parameters": checkpoint_hparams(resolved, input_size, len(keypoint_cfg["names"]))}, path)
    return {"network": network, "resolved": resolved}


def test_init_from_transfers_the_head_by_joint_name(tmp_path: Path) -> None:
    """A COCO-17 model fine-tuned to LSPET-14: the 12 limb joints keep their output channels, neck and
    head top start fresh; the backbone is copied whole; the different input size is allowed and said."""
    source = _our_checkpoint(tmp_path / "coco.ckpt", "hrnet_tiny", "coco17")["network"]
    lspet, coco = load_keypoint_set("lspet14"), load_keypoint_set("coco17")
    torch.manual_seed(3)
    target = create_model("hrnet_tiny", num_joints=lspet.num_joints)
    fresh_head = target.final_layer.weight.detach().clone()
    report = initialize_from(target, model_config("hrnet_tiny"), lspet, 1, (192, 160), tmp_path / "coco.ckpt")
    assert report.joints_fresh == ("neck", "head_top") and len(report.joints_copied) == 12
    for name in report.joints_copied:
        t, s = lspet.names.index(name), coco.names.index(name)
        assert torch.equal(target.final_layer.weight[t], source.final_layer.weight[s])
        assert torch.equal(target.final_layer.bias[t], source.final_layer.bias[s])
    neck = lspet.names.index("neck")
    assert torch.equal(target.final_layer.weight[neck], fresh_head[neck])
    assert torch.equal(target.stage4[0].branches[1][0].conv1.weight, source.stage4[0].branches[1][0].conv1.weight)
    summary = report.summary()
    assert "head by joint name: 12 joints copied, 2 fresh" in summary and "fresh joints : neck, head_top" in summary
    assert "input size 128x96 (source) -> 192x160 (this run): the weights do not depend on it" in summary


def test_init_from_refuses_another_architecture_naming_both(tmp_path: Path) -> None:
    _our_checkpoint(tmp_path / "tiny.ckpt", "hrnet_tiny", "coco17")
    target = create_model("hrnet_w18_small_v1", num_joints=17)
    with pytest.raises(InitFromError, match="holds a hrnet_tiny network .* this run trains hrnet_w18_small_v1"):
        initialize_from(target, model_config("hrnet_w18_small_v1"), load_keypoint_set("coco17"), 1, (128, 96), tmp_path / "tiny.ckpt")
    torch.save(create_model("hrnet_tiny").state_dict(), tmp_path / "official.pth")  # a bare .pth of another architecture
    with pytest.raises(InitFromError, match="official.pth \\(state_dict\\) does not fit this run's hrnet_w18_small_v1"):
        initialize_from(target, model_config("hrnet_w18_small_v1"), load_keypoint_set("coco17"), 1, (128, 96), tmp_path / "official.pth")


def test_init_from_an_official_state_dict_with_its_keypoint_set(tmp_path: Path) -> None:
    torch.manual_seed(4)
    official = create_model("hrnet_tiny", num_joints=17)
    torch.save({f"module.{k}": v for k, v in official.state_dict().items()}, tmp_path / "pose_hrnet_tiny.pth")
    target = create_model("hrnet_tiny", num_joints=14)
    report = initialize_from(target, model_config("hrnet_tiny"), load_keypoint_set("lspet14"), 1, (128, 96),
                             tmp_path / "pose_hrnet_tiny.pth", source_keypoints="coco17")
    assert report.source_model == "state_dict" and len(report.joints_copied) == 12
    assert torch.equal(target.conv1.weight, official.conv1.weight)


def test_backbone_freeze_trains_only_the_head_first() -> None:
    class Module:
        model = create_model("hrnet_tiny")

    class Trainer:
        current_epoch = 0

    freeze, module, trainer = BackboneFreeze(2, "final_layer"), Module(), Trainer()
    freeze.on_train_epoch_start(trainer, module)
    assert not module.model.conv1.weight.requires_grad and module.model.final_layer.weight.requires_grad
    assert not module.model.bn1.training  # frozen BatchNorm keeps its statistics
    trainer.current_epoch = 2
    freeze.on_train_epoch_start(trainer, module)
    assert module.model.conv1.weight.requires_grad


def test_resume_with_another_setup_is_one_message(tmp_path: Path) -> None:
    made = _our_checkpoint(tmp_path / "last.ckpt", "hrnet_tiny", "coco17")
    assert resume_mismatches(tmp_path / "last.ckpt", {**made["resolved"], "data": {"input_size": "128x96"}}) == []
    other = {**made["resolved"], "model": model_config("hrnet_w18_small_v1"), "data": {"input_size": "256x192"},
             "keypoints": {"name": "lspet14", "names": load_keypoint_set("lspet14").names}}
    differences = resume_mismatches(tmp_path / "last.ckpt", other)
    assert differences == ["model hrnet_tiny (checkpoint) vs hrnet_w18_small_v1 (this run)",
                           "keypoints coco17 (17 joints) vs lspet14 (14 joints)", "data.input_size 128x96 vs 256x192"]


def test_train_cli_resume_errors_before_training(tmp_path: Path) -> None:
    """ckpt_path=last in a new run dir, another model's checkpoint, and init_from + ckpt_path: exit 2 with
    the one-line reason, nothing trained."""
    import subprocess
    import sys

    from hrnet_train.paths import REPO_ROOT

    _our_checkpoint(tmp_path / "other.ckpt", "hrnet_tiny", "coco17")
    base = [sys.executable, str(REPO_ROOT / "train.py"), f"output_dir={tmp_path / 'run'}", "data.root=" + str(tmp_path),
            "data.generate_synthetic=false", "data.train_ann_file=a.json", "data.val_ann_file=a.json"]
    (tmp_path / "a.json").write_text('{"images": [], "annotations": [], "categories": []}')
    cases = {
        "ckpt_path=last": "this run dir has no checkpoint of its own",
        f"ckpt_path={tmp_path / 'other.ckpt'}": "cannot be resumed by this config: model hrnet_tiny (checkpoint) vs hrnet_w18_small_v1",
        f"init_from={tmp_path / 'other.ckpt'} ckpt_path=last": "ckpt_path / init_from: give one",
    }
    for args, message in cases.items():
        done = subprocess.run([*base, *args.split()], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        assert message in done.stderr
        assert not (tmp_path / "run" / "checkpoints").exists()
