"""The slim checkpoint tool's refusals: not a train.py file, non-finite weights, an output that is its
input; and the trained weights when there is no EMA copy (or ema=false). The EMA case end to end --
slim file scored by evaluate.py like the checkpoint it came from -- is in test_recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_estimator import write_tiny_checkpoint

from hrnet_train.cli_args import run_tool
from hrnet_train.models import create_model
from hrnet_train.slim_checkpoint import COMMAND_LINE, main, slim_content
from hrnet_train.trained_model import load_trained_model, read_checkpoint


@pytest.fixture
def training_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return write_tiny_checkpoint(tmp_path / "run.ckpt", create_model("hrnet_tiny", num_joints=17, init="pytorch"), (128, 96))


def test_without_ema_the_trained_weights_are_kept_and_load_the_same(training_checkpoint: Path, tmp_path: Path) -> None:
    content = read_checkpoint(training_checkpoint)
    content["optimizer_states"] = [{"state": {}, "param_groups": []}]
    ema = {f"ema.model.{key[len('model.'):]}": value + 1.0 for key, value in content["state_dict"].items()
           if value.is_floating_point()}
    content["state_dict"].update(ema)
    torch.save(content, training_checkpoint)
    slim = slim_content(read_checkpoint(training_checkpoint), prefer_ema=False, label=str(training_checkpoint))
    assert "optimizer_states" not in slim and slim["slimmed_from"] == {"weights": "model", "file": "run.ckpt"}
    assert all(key.startswith("model.") for key in slim["state_dict"])
    output = main([f"ckpt={training_checkpoint}", f"output_dir={tmp_path / 'out'}", "ema=false"])
    original, slimmed = load_trained_model(training_checkpoint, prefer_ema=False), load_trained_model(output)
    for a, b in zip(original.network.state_dict().values(), slimmed.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert (slimmed.keypoints.names, slimmed.input_size) == (original.keypoints.names, original.input_size)


def test_refusals_name_the_file_and_what_is_wrong(training_checkpoint: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> tuple[int, str]:
        code = run_tool(COMMAND_LINE.prog, lambda: main(list(args)))
        return code, capsys.readouterr().err

    code, err = run(f"ckpt={training_checkpoint}", f"output_dir={training_checkpoint.parent}")
    assert code == 2 and f"output {training_checkpoint} is the ckpt file itself; choose another output_dir or name" in err
    code, err = run(f"ckpt={training_checkpoint}")
    assert code == 2 and "output_dir: required" in err
    bare = tmp_path / "official.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bare)
    code, err = run(f"ckpt={bare}", f"output_dir={tmp_path}", "name=a")
    assert code == 1 and f"{bare}: not a train.py checkpoint" in err and not (tmp_path / "a.ckpt").exists()
    content = read_checkpoint(training_checkpoint)
    content["state_dict"]["model.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(content, training_checkpoint)
    code, err = run(f"ckpt={training_checkpoint}", f"output_dir={tmp_path}", "name=b")
    assert code == 1 and "non-finite weights, not slimmed: 1 of" in err and "conv1.weight" in err
    assert not (tmp_path / "b.ckpt").exists()
