"""Deployment export: pose network + in-graph keypoint decoding (ONNX). CLI: ``python -m hrnet_train.export``."""

from hrnet_train.export.onnx import INPUT_NAME, OUTPUT_NAMES, PoseModelWithDecoder, export_onnx

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "PoseModelWithDecoder", "export_onnx"]
