"""Evaluation: flip test, decoding to COCO results (rescoring, OKS-NMS), the COCO OKS metric, the codec
ceiling oracle, per-joint error analysis, torso PCK and a worst-case gallery.

Submodules are imported directly (``from hrnet_train.evaluation.coco_metric import ...``); this package
re-exports the main entry points.
"""

from hrnet_train.evaluation.coco_metric import STAT_NAMES, evaluate_coco_keypoints, format_stats_table
from hrnet_train.evaluation.nms import oks_iou, oks_nms, soft_oks_nms
from hrnet_train.evaluation.predictions import (
    DecodedInstances,
    PostprocessConfig,
    PredictionAccumulator,
    decode_batch,
    flip_test,
)
from hrnet_train.evaluation.rescoring import rescore

__all__ = [
    "STAT_NAMES",
    "DecodedInstances",
    "PostprocessConfig",
    "PredictionAccumulator",
    "decode_batch",
    "evaluate_coco_keypoints",
    "flip_test",
    "format_stats_table",
    "oks_iou",
    "oks_nms",
    "rescore",
    "soft_oks_nms",
]
