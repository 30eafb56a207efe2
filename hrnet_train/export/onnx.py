"""ONNX export of a pose (or face landmark) network with its codec's decoding inside the graph.

A deployed model should answer "where are the joints in my crop", not hand out heatmaps that every
consumer must decode (and get the pixel convention wrong, spec section 9). The exported graph takes
normalised crops ``images`` [B, 3, H, W] (B dynamic) and returns ``heatmaps`` [B, C*J, h, w],
``keypoints`` [B, J, 2] (x, y in input-crop pixels) and ``scores`` [B, J]. Mapping crop pixels to
the original image is one affine per crop: :func:`hrnet_train.inference.backproject.backproject`.

Uses the TorchScript-based exporter (``dynamo=False``): it handles the dynamic batch axis here and
exports in seconds; the graph contains only standard opset-17 operators (Conv, ArgMax, GatherElements...).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.codecs.torch_decode import HeatmapDecoder
from hrnet_train.normalization import normalization_metadata

INPUT_NAME = "images"
OUTPUT_NAMES = ("heatmaps", "keypoints", "scores")
DEFAULT_OPSET = 17


def max_opset() -> int:
    """The newest opset the TorchScript exporter writes (torch's own constant: 20 from torch 2.5 on); a
    larger ``opset`` fails only after the model is traced, so it is refused before."""
    constants = getattr(torch.onnx, "_constants", None)
    return int(getattr(constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(constants, "ONNX_MAX_OPSET", DEFAULT_OPSET)))


def check_opset(opset: int) -> None:
    """ValueError unless ``DEFAULT_OPSET <= opset <= max_opset()`` (the graph needs opset-17 operators)."""
    if not DEFAULT_OPSET <= opset <= max_opset():
        raise ValueError(f"opset: must be between {DEFAULT_OPSET} and {max_opset()} (the newest the TorchScript exporter "
                         f"of torch {torch.__version__} writes), got {opset}")


class PoseModelWithDecoder(nn.Module):
    """Network followed by the torch decoder: images -> (heatmaps, crop keypoints, scores)."""

    def __init__(self, network: nn.Module, decoder: HeatmapDecoder) -> None:
        super().__init__()
        self.network = network
        self.decoder = decoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        heatmaps = self.network(images)
        keypoints, scores = self.decoder(heatmaps)
        return heatmaps, keypoints, scores


def export_metadata(codec: HeatmapCodec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Key/value strings stored in the ONNX file so a consumer can rebuild the pre/post-processing."""
    (in_h, in_w), (h, w) = codec.input_size, codec.heatmap_size
    metadata = {
        "codec": codec.name,
        "pixel_convention": codec.pixel_convention,
        "input_size": f"{in_h}x{in_w}",
        "heatmap_size": f"{h}x{w}",
        "keypoints_unit": "input-crop pixels; image = backproject(keypoints, center, scale, input_size, codec)",
        "normalization": json.dumps(normalization_metadata()),
    }
    if getattr(codec, "integer_image_coords", False):  # the official face decoding's last step, in image pixels
        metadata["image_rounding"] = "trunc_plus_one"
        metadata["keypoints_unit"] += ", then trunc(x) + 1 (backproject(..., trunc_plus_one=True))"
    metadata.update(extra or {})
    return metadata


def export_onnx(
    network: nn.Module,
    codec: HeatmapCodec,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``network`` + ``codec`` decoding to ``path`` as ONNX with a dynamic batch axis; returns the path.

    The network is exported in eval mode on CPU (a traced batch of 2 crops of ``codec.input_size``).
    ``metadata`` entries are added to :func:`export_metadata`'s.
    """
    import onnx

    check_opset(opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = PoseModelWithDecoder(network, codec.torch_decoder()).to("cpu").eval()
    example = torch.zeros(2, 3, *codec.input_size)
    batch_axis = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: batch_axis for name in (INPUT_NAME, *OUTPUT_NAMES)},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    for key, value in export_metadata(codec, metadata).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return path
