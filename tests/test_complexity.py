"""Complexity report: the official params/GFLOPs table (spec 1.9, 2.3), exact MAC conventions, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from hrnet_train.cli_args import UsageError
from hrnet_train.complexity import complexity_report, complexity_table, count_macs, main, measure_latency, table_options
from hrnet_train.models import create_model, list_models

# (model, input) -> (params, paper GMACs to 2 decimals) from spec 1.9 / 2.3 (re-derived official values).
OFFICIAL_TABLE = {
    ("hrnet_w32", (256, 192)): (28_536_113, 7.12),
    ("hrnet_w32", (384, 288)): (28_536_113, 16.02),
    ("hrnet_w48", (256, 192)): (63_595_745, 14.61),
    ("hrnet_w48", (384, 288)): (63_595_745, 32.88),
    ("pose_resnet_50", (256, 192)): (33_999_697, 8.99),
    ("pose_resnet_50", (384, 288)): (33_999_697, 20.23),
    ("pose_resnet_101", (256, 192)): (52_991_825, 12.38),
    ("pose_resnet_101", (384, 288)): (52_991_825, 27.85),
    ("pose_resnet_152", (256, 192)): (68_635_473, 15.76),
    ("pose_resnet_152", (384, 288)): (68_635_473, 35.47),
}
README_PARAMS_M = {"hrnet_w32": 28.5, "hrnet_w48": 63.6, "pose_resnet_50": 34.0, "pose_resnet_101": 53.0, "pose_resnet_152": 68.6}


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


@pytest.mark.parametrize(("name", "size"), list(OFFICIAL_TABLE))
def test_official_table_row(name: str, size: tuple[int, int]) -> None:
    report = complexity_report(_meta(name), size)
    params, paper = OFFICIAL_TABLE[name, size]
    assert report["params"] == params
    assert round(report["params"] / 1e6, 1) == README_PARAMS_M[name]
    assert round(report["paper_gmacs"], 2) == paper
    assert report["gflops"] == 2 * report["true_gmacs"]


def test_true_macs_differ_from_paper_only_by_units_for_hrnet() -> None:
    paper, true = count_macs(_meta("hrnet_w32"), (256, 192))
    assert paper == true == 7_645_003_776  # spec 1.9: 7.645e9 conv MACs, / 2**30 = 7.12
    report = complexity_report(_meta("hrnet_w32"), (256, 192))
    assert round(report["true_gmacs"], 3) == 7.645 and round(report["gflops"], 2) == 15.29


def test_transposed_convs_counted_by_input_size() -> None:
    paper, true = count_macs(_meta("pose_resnet_50"), (256, 192))
    assert paper == 9_654_239_232 and true == 5_426_380_800  # spec 2.3: true MACs about 5.4e9
    # The three 4x4 stride-2 deconvs: 2048*256*16 at 8x6 in, 256*256*16 at 16x12, at 32x24.
    deconv_true = 2048 * 256 * 16 * 8 * 6 + 256 * 256 * 16 * (16 * 12 + 32 * 24)
    assert paper - true == 3 * deconv_true


def test_count_macs_by_hand() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),          # 8*3*9 weights x 16*16 outputs
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False),  # 8*4*16 weights x 16*16 inputs (paper: x 32*32)
        nn.Flatten(),
        nn.Linear(4 * 32 * 32, 10),                                   # 4096*10
    )
    paper, true = count_macs(model, (32, 32))
    assert paper == 216 * 256 + 512 * 1024 + 40960
    assert true == 216 * 256 + 512 * 256 + 40960


def test_v2_head_costs_more_than_v1() -> None:
    v1 = complexity_report(_meta("hrnet_w32"), (256, 192))
    v2 = complexity_report(_meta("hrnet_w32", head="v2"), (256, 192))
    # v2 adds multi-scale fusion in stage4.2 and the 480->480->17 head at 64x48
    head_macs = (480 * 480 + 480 * 17) * 64 * 48
    assert v2["true_gmacs"] * 1e9 - v1["true_gmacs"] * 1e9 > head_macs


def test_measure_latency_on_tiny() -> None:
    model = create_model("hrnet_tiny")
    model.train()
    latency = measure_latency(model, (128, 96), batch_sizes=(1, 2), warmup=1, repeats=3)
    assert sorted(latency) == [1, 2] and all(ms > 0 for ms in latency.values())
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="meta device"):
        measure_latency(_meta("hrnet_tiny"), (128, 96), batch_sizes=(1,))


def test_table_with_latency_columns() -> None:
    table = complexity_table(["hrnet_tiny"], [(128, 96)], latency_batch_sizes=(1,), warmup=0, repeats=1)
    header, rule, row = table.splitlines()
    assert header.endswith("| CPU ms b1 |") and rule == "|" + "---|" * 7
    assert row.startswith("| hrnet_tiny | 128x96 | 0.22 | 0.04 | 0.04 | 0.09 | ")


def test_cli_single_model(capsys: pytest.CaptureFixture[str]) -> None:
    main(["model=hrnet_w32", "input_size=256x192"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| model | input | params (M) | paper GMACs (conv, /2^30) | true GMACs (1e9) | GFLOPs (2xMAC) |"
    assert lines[2:] == ["| hrnet_w32 | 256x192 | 28.54 | 7.12 | 7.65 | 15.29 |"]


def test_cli_spec_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    options = table_options(["model=hrnet_tiny", "spec.stage4.num_blocks=[2,2,2,2]", "spec.stage3.num_modules=2", "head=v2"])
    assert options["spec_overrides"] == {"stage4": {"num_blocks": [2, 2, 2, 2]}, "stage3": {"num_modules": 2}}
    main(["model=hrnet_tiny", "input_size=256x192", "spec.stage3.num_modules=2"])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| hrnet_tiny | 256x192 | 0.26 |")  # 221,081 + one 34,192-param stage-3 module


def test_cli_all_and_errors() -> None:
    for args in (["--all"], ["model=all"]):
        options = table_options(args)
        assert options["names"] == list_models() and options["input_sizes"] == [(256, 192), (384, 288)]
        assert options["latency_batch_sizes"] == []
    assert table_options(["model=hrnet_tiny", "latency=true"])["latency_batch_sizes"] == [1, 32]
    with pytest.raises(UsageError, match="give model=<name>"):
        table_options(["input_size=256x192"])
    with pytest.raises(UsageError, match="input_size: cannot read '256'.*expected 'HEIGHTxWIDTH'"):
        table_options(["model=hrnet_w32", "input_size=256"])
    with pytest.raises(UsageError, match="speed: unknown option"):
        table_options(["model=hrnet_w32", "speed=1"])
    with pytest.raises(UsageError, match="laetncy: unknown option \\(did you mean 'latency'\\?\\)"):
        table_options(["model=hrnet_w32", "laetncy=true"])


def test_cli_checkpoint_reports_its_own_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ckpt=: the network and input size come from the checkpoint (the committed LSPET model)."""
    from hrnet_train.paths import REPO_ROOT

    main([f"ckpt={REPO_ROOT / 'models' / 'lspet_cpu' / 'lspet_cpu.ckpt'}"])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| hrnet_w18_small_v1 | 192x160 | 1.28 |")
