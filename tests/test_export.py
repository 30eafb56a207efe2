"""ONNX export with in-graph decoding: parity with PyTorch and with the numpy codecs, dynamic batch,
crop -> image back-projection, and the ``python -m hrnet_train.export`` entry point.

Three kinds of maps: (a) the network's own outputs (kaiming-init hrnet_tiny, bias shifted so most peaks
are positive) through the full exported graph for every codec, (b) codec-encoded Gaussian peaks plus noise
through the exported decoder graph, and (c) the committed trained lspet_cpu model on real LSPET crops.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from scipy.ndimage import gaussian_filter

from hrnet_train.codecs import create_codec
from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.geometry import box_to_center_scale
from hrnet_train.codecs.torch_decode import create_decoder
from hrnet_train.export import OUTPUT_NAMES, export_onnx
from hrnet_train.export.__main__ import main as export_main
from hrnet_train.cli_args import UsageError, run_tool
from hrnet_train.export.__main__ import parse_arguments
from hrnet_train.inference.backproject import backproject
from hrnet_train.models import create_model, model_config
from hrnet_train.paths import config_dir
from hrnet_train.training.checkpointing import checkpoint_hparams

INPUT_SIZE = (128, 96)  # small crops keep export + inference fast; the graph does not depend on the size
NUM_JOINTS = 17
TIE_GAP = 1e-4
CODEC_CASES = {
    "legacy": ("legacy", {}),
    "dark": ("dark", {}),
    "udp": ("udp", {}),
    "udp_combined": ("udp", {"target_type": "combined"}),
}


def make_codec(case: str) -> HeatmapCodec:
    name, options = CODEC_CASES[case]
    return create_codec(name, INPUT_SIZE, sigma=2.0, **options)


def crop_scale(codec: HeatmapCodec) -> np.ndarray:
    """Heatmap px -> crop px factors (x, y) per codec convention (module docstring of torch_decode)."""
    (in_h, in_w), (h, w) = codec.input_size, codec.heatmap_size
    if codec.name == "udp":
        return np.array([(in_w - 1) / (w - 1), (in_h - 1) / (h - 1)])
    return np.array([in_w / w, in_h / h])


def untied(heatmaps: np.ndarray) -> np.ndarray:
    """(N, J) mask of maps whose two highest values differ by at least TIE_GAP (argmax is stable)."""
    top2 = np.sort(heatmaps.reshape(*heatmaps.shape[:2], -1), axis=2)[..., -2:]
    return (top2[..., 1] - top2[..., 0]) >= TIE_GAP


def curved_peaks(heatmaps: np.ndarray, blur_sigma: float, min_curvature: float = 0.004) -> np.ndarray:
    """(N, J) mask of maps whose blurred log-map bends down by >= ``min_curvature`` per px^2 in x and y at
    the argmax (a sigma-2 Gaussian peak: 0.125). DARK's step divides by this curvature, so on the
    flat-topped peaks of an untrained network float32 rounding moves it by up to ~1 px; trained peaks are curved.
    """
    log_maps = np.log(np.maximum(gaussian_filter(heatmaps.astype(np.float64), (0, 0, blur_sigma, blur_sigma),
                                                 mode="constant", truncate=3.0), 1e-10))
    n, j, h, w = heatmaps.shape
    index = heatmaps.reshape(n, j, -1).argmax(axis=2)
    x, y = np.clip(index % w, 1, w - 2), np.clip(index // w, 1, h - 2)
    n_idx, j_idx = np.indices((n, j))
    centre = log_maps[n_idx, j_idx, y, x]
    curve_x = log_maps[n_idx, j_idx, y, x + 1] + log_maps[n_idx, j_idx, y, x - 1] - 2 * centre
    curve_y = log_maps[n_idx, j_idx, y + 1, x] + log_maps[n_idx, j_idx, y - 1, x] - 2 * centre
    return (curve_x <= -min_curvature) & (curve_y <= -min_curvature)


def encoded_peaks(codec: HeatmapCodec, count: int, seed: int = 0) -> np.ndarray:
    """Codec targets of random joints (some near or past the border) + noise; one all-negative map."""
    rng = np.random.default_rng(seed)
    height, width = codec.input_size
    maps = []
    for _ in range(count):
        joints = rng.uniform([-6.0, -6.0], [width + 6.0, height + 6.0], size=(NUM_JOINTS, 2))
        maps.append(codec.encode(joints, np.ones(NUM_JOINTS))[0])
    heatmaps = np.stack(maps)
    heatmaps += rng.normal(0.0, 0.01, size=heatmaps.shape).astype(np.float32)
    heatmaps[0, 0] = -np.abs(heatmaps[0, 0]) - 0.1
    return heatmaps


def run_onnx(path, images: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(OUTPUT_NAMES, session.run(None, {"images": images})))


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("hrnet_tiny", num_joints=NUM_JOINTS, init="pytorch").eval()
    with torch.no_grad():
        model.final_layer.bias.add_(0.3)
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(5, 3, *INPUT_SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(network, tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("onnx")
    return {case: export_onnx(network, make_codec(case), folder / f"{case}.onnx") for case in ("legacy", "dark", "udp")}


@pytest.mark.parametrize("case", list(CODEC_CASES))
def test_torch_decoder_matches_numpy_codec(case: str) -> None:
    codec = make_codec(case)
    heatmaps = encoded_peaks(codec, 6)
    expected, expected_scores = codec.decode(heatmaps)
    keypoints, scores = create_decoder(codec)(torch.from_numpy(heatmaps))
    np.testing.assert_array_equal(scores.numpy(), expected_scores)
    difference = np.abs(keypoints.numpy() - expected * crop_scale(codec))
    # legacy: integer peaks + quarter offsets are exact in float32; the Taylor step is float32 vs float64.
    assert difference.max() <= (0.0 if case == "legacy" else 1e-3), difference.max()


@pytest.mark.parametrize("case", list(CODEC_CASES))
def test_exported_decoder_graph_matches_numpy_codec(case: str, tmp_path) -> None:
    """The decoding ops alone, exported and run in onnxruntime on well-formed peaks."""
    codec = make_codec(case)
    path = tmp_path / "decoder.onnx"
    torch.onnx.export(
        create_decoder(codec).eval(), (torch.zeros(2, codec.channels_per_joint * NUM_JOINTS, *codec.heatmap_size),),
        str(path), input_names=["heatmaps"], output_names=["keypoints", "scores"],
        dynamic_axes={"heatmaps": {0: "batch"}}, opset_version=17, dynamo=False,
    )
    heatmaps = encoded_peaks(codec, 5, seed=3)
    keypoints, scores = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"heatmaps": heatmaps})
    expected, expected_scores = codec.decode(heatmaps)
    np.testing.assert_array_equal(scores, expected_scores)
    assert np.abs(keypoints - expected * crop_scale(codec)).max() <= (0.0 if case == "legacy" else 1e-3)


@pytest.mark.parametrize("case", ["legacy", "dark", "udp"])
def test_onnx_matches_pytorch_and_codec(case: str, network, images, exported) -> None:
    codec = make_codec(case)
    outputs = run_onnx(exported[case], images)
    with torch.no_grad():
        heatmaps = network(torch.from_numpy(images))
        keypoints, scores = create_decoder(codec)(heatmaps)
    heatmaps = heatmaps.numpy()
    stable = untied(heatmaps) & untied(outputs["heatmaps"])
    if case != "legacy":
        stable &= curved_peaks(heatmaps, codec.blur_sigma)
    assert stable.sum() >= (0.9 if case == "legacy" else 0.25) * stable.size
    assert np.abs(outputs["heatmaps"] - heatmaps).max() <= 1e-4
    assert np.abs(outputs["scores"] - scores.numpy())[stable].max() <= 1e-4
    assert np.abs(outputs["keypoints"] - keypoints.numpy())[stable].max() <= 1e-3
    # The graph's keypoints are the numpy codec's decode of the graph's own heatmaps, mapped to crop px.
    expected, _ = codec.decode(outputs["heatmaps"])
    assert np.abs(outputs["keypoints"] - expected * crop_scale(codec))[stable].max() <= 1e-3


def test_dynamic_batch(exported, images) -> None:
    single = run_onnx(exported["dark"], images[:1])
    batch = run_onnx(exported["dark"], images)
    assert single["keypoints"].shape == (1, NUM_JOINTS, 2) and batch["keypoints"].shape == (5, NUM_JOINTS, 2)
    assert batch["heatmaps"].shape == (5, NUM_JOINTS, INPUT_SIZE[0] // 4, INPUT_SIZE[1] // 4)
    assert batch["scores"].shape == (5, NUM_JOINTS)
    np.testing.assert_allclose(batch["heatmaps"][:1], single["heatmaps"], atol=1e-5)
    np.testing.assert_allclose(batch["keypoints"][:1], single["keypoints"], atol=1e-4)
    graph = onnx.load(str(exported["dark"]))
    assert graph.opset_import[0].version >= 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {p.key: p.value for p in graph.metadata_props}["input_size"] == "128x96"


@pytest.mark.parametrize("case", ["legacy", "dark", "udp"])
def test_backproject_matches_codec_to_image(case: str) -> None:
    codec = create_codec(case, (256, 192))
    rng = np.random.default_rng(2)
    boxes = np.column_stack([rng.uniform(0, 600, 8), rng.uniform(0, 400, 8), rng.uniform(10, 300, 8), rng.uniform(10, 400, 8)])
    centers, scales = box_to_center_scale(boxes, aspect_ratio=192 / 256)
    coords = rng.uniform(-2.0, 66.0, size=(8, NUM_JOINTS, 2))
    expected = codec.to_image(coords, centers, scales)
    actual = backproject(coords * crop_scale(codec), centers, scales, (256, 192), case)
    # legacy/dark: the reference builds its matrix from float32 points (measured <= 3e-5 px here).
    assert np.abs(actual - expected).max() <= (1e-4 if case != "udp" else 1e-9)


def test_backproject_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown codec 'nosuchcodec'"):
        backproject(np.zeros((1, 17, 2)), np.zeros((1, 2)), np.ones((1, 2)), (256, 192), "nosuchcodec")
    with pytest.raises(ValueError, match=r"expected keypoints \(N, J, 2\)"):
        backproject(np.zeros((2, 17, 2)), np.zeros((1, 2)), np.ones((1, 2)), (256, 192), "legacy")


def test_cli_exports_a_training_checkpoint(network, images, tmp_path) -> None:
    """A checkpoint laid out as the Lightning module writes it (model.* weights + checkpoint_hparams)."""
    config = {
        "model": model_config("hrnet_tiny"),
        "keypoints": yaml.safe_load((config_dir() / "keypoints" / "coco17.yaml").read_text()),
        "codec": {"name": "legacy", "sigma": 2.0, "stride": 4, "flip_shift": True, "post_process": True},
        "data": {"input_size": "128x96", "color_rgb": True},
        "eval": {"flip_test": True},
    }
    checkpoint = {
        "state_dict": {f"model.{k}": v for k, v in network.state_dict().items()},
        "hyper_parameters": checkpoint_hparams(config, INPUT_SIZE, NUM_JOINTS),
    }
    ckpt = tmp_path / "last.ckpt"
    torch.save(checkpoint, ckpt)
    out = export_main([f"ckpt={ckpt}", f"output_dir={tmp_path}", "name=pose", "codec=dark"])
    assert out == tmp_path / "pose.onnx"
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (metadata["codec"], metadata["model"], metadata["input_size"]) == ("dark", "hrnet_tiny", "128x96")
    assert metadata["keypoints"].split(",")[:2] == ["nose", "left_eye"]
    with torch.no_grad():
        expected = network(torch.from_numpy(images)).numpy()
    assert np.abs(run_onnx(out, images)["heatmaps"] - expected).max() <= 1e-4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["output_dir=x"], "exactly one of ckpt"),
        (["ckpt=a.ckpt", "model=hrnet_tiny"], "exactly one of ckpt"),
        (["ckpt=a.ckpt", "sigma=3"], r"\['sigma'\] cannot be combined with ckpt"),
        (["model=hrnet_tiny", "format=tflite"], "format: must be one of"),
        (["model=hrnet_tiny", "batch=4"], "batch: unknown option"),
        (["model=hrnet_tiny", "out=a.onnx"], "out: unknown option"),
        (["model=hrnet_tiny", "ema=maybe"], "ema: expected true or false"),
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_arguments(argv)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=hrnet_tiny", "opset=abc"], "opset: cannot read 'abc'"),
        (["model=hrnet_tiny", "opset=16"], "opset: must be between 17 and"),
        (["model=hrnet_tiny", "opset=99"], "opset: must be between 17 and"),  # was exit 1 after tracing the model
        (["model=hrnet_tiny", "colour=red"], "colour: unknown option"),
        (["ckpt={tmp}/missing.ckpt"], "checkpoint file not found: {tmp}/missing.ckpt"),
        (["model=hrnet_tiny", "output_dir={tmp}/a_file"], "output_dir: {tmp}/a_file is a file, not a folder"),  # was exit 1
        (["model=hrnet_tiny", "output_dir={tmp}/a_file/sub"], "output_dir: {tmp}/a_file/sub lies below {tmp}/a_file, which is a file"),
    ],
)
def test_cli_argument_errors_exit_2_with_one_line(args: list[str], message: str, tmp_path, capsys) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    assert run_tool("export", lambda: export_main([arg.format(tmp=tmp_path) for arg in args])) == 2
    err = capsys.readouterr().err
    assert err.startswith("export: error: ") and message.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.rglob("*.onnx")) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_cli_refuses_an_unwritable_output_dir(tmp_path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert run_tool("export", lambda: export_main(["model=hrnet_tiny", f"output_dir={locked / 'sub'}"])) == 2
    assert f"output_dir: {locked / 'sub'} cannot be written ({locked} is not writable" in capsys.readouterr().err


def test_cli_refuses_to_overwrite_its_input(network, tmp_path) -> None:
    """An output path equal to an input (a weights file named like the export) is refused, the file kept."""
    weights = tmp_path / "pose.onnx"
    torch.save(network.state_dict(), weights)
    before = weights.read_bytes()
    with pytest.raises(UsageError, match="is the weights file itself"):
        export_main(["model=hrnet_tiny", f"weights={weights}", "input_size=128x96", f"output_dir={tmp_path}"])
    assert weights.read_bytes() == before


def test_cli_refuses_to_overwrite_its_checkpoint(network, tmp_path) -> None:
    """export ckpt=x.onnx output_dir=<its folder>: the output would be the checkpoint; refused, file kept."""
    ckpt = tmp_path / "pose.onnx"
    config = {"model": model_config("hrnet_tiny"), "keypoints": yaml.safe_load((config_dir() / "keypoints" / "coco17.yaml").read_text()),
              "codec": {"name": "legacy", "sigma": 2.0}, "data": {"input_size": "128x96"}, "eval": {}}
    torch.save({"state_dict": {f"model.{k}": v for k, v in network.state_dict().items()},
                "hyper_parameters": checkpoint_hparams(config, INPUT_SIZE, NUM_JOINTS)}, ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(UsageError, match="is the ckpt file itself; choose another output_dir or name"):
        export_main([f"ckpt={ckpt}", f"output_dir={tmp_path}"])
    assert ckpt.read_bytes() == before


def test_cli_exports_a_state_dict_file(network, images, tmp_path) -> None:
    weights = tmp_path / "pose_hrnet_tiny.pth"
    torch.save(network.state_dict(), weights)
    out = export_main(["model=hrnet_tiny", f"weights={weights}", "input_size=128x96", "codec=udp", f"output_dir={tmp_path}"])
    assert out == tmp_path / "pose_hrnet_tiny.onnx"
    outputs = run_onnx(out, images[:2])
    with torch.no_grad():
        heatmaps = network(torch.from_numpy(images[:2])).numpy()
    assert np.abs(outputs["heatmaps"] - heatmaps).max() <= 1e-4
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["source"] == str(weights)


def test_trained_lspet_checkpoint_onnx_parity(lspet_dir, tmp_path) -> None:
    """The issue's parity check on a TRAINED model: the committed lspet_cpu checkpoint (DARK codec),
    exported through the CLI and run by onnxruntime on real LSPET val crops. Heatmaps within 1e-4;
    keypoints within 1e-3 px wherever the two highest values of a map differ by >= 1e-4 (argmax ties)."""
    from hrnet_train.inference.estimator import PoseEstimator
    from hrnet_train.paths import REPO_ROOT

    ckpt = REPO_ROOT / "models" / "lspet_cpu" / "lspet_cpu.ckpt"
    estimator = PoseEstimator.from_checkpoint(ckpt, flip_test=False)
    out = export_main([f"ckpt={ckpt}", f"output_dir={tmp_path}"])
    codec = estimator.codec
    crops = []
    for number in range(8501, 8509):  # held-out LSPET images, whole-image boxes
        image = cv2.imread(str(lspet_dir / "images" / f"im{number:05d}.jpg"))
        center, scale = box_to_center_scale(np.array([0, 0, image.shape[1], image.shape[0]], dtype=np.float64),
                                            codec.input_size[1] / codec.input_size[0])
        crop = cv2.warpAffine(image, codec.crop_transform(center, scale), codec.input_size[::-1], flags=cv2.INTER_LINEAR)
        rgb = crop[:, :, ::-1].astype(np.float32) / 255.0
        crops.append(((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1))
    images = np.stack(crops).astype(np.float32)
    outputs = run_onnx(out, images)
    with torch.no_grad():
        heatmaps = estimator.model(torch.from_numpy(images))
        keypoints, _ = create_decoder(codec)(heatmaps)
    heatmaps = heatmaps.numpy()
    stable = untied(heatmaps) & untied(outputs["heatmaps"])
    heatmap_diff = np.abs(outputs["heatmaps"] - heatmaps).max()
    keypoint_diff = np.abs(outputs["keypoints"] - keypoints.numpy())[stable].max()
    print(f"trained lspet_cpu: {stable.mean():.1%} of maps untied, heatmaps max diff {heatmap_diff:.2e}, keypoints {keypoint_diff:.2e} px")
    assert codec.name == "dark" and stable.mean() > 0.9  # a trained model has clear peaks
    assert heatmap_diff <= 1e-4
    assert keypoint_diff <= 1e-3
