"""Evaluation: the COCO OKS metric (coco_metric), per-joint error analysis (analysis), torso PCK (pck),
face landmark NME / FR / AUC (nme),
the codec ceiling oracle (codec_oracle), a worst-case gallery (gallery) and the ``evaluate.py`` run (runner).

Decoding (flip test, rescoring, OKS-NMS, COCO results) lives one floor down in ``hrnet_train.decoding``.
Submodules are imported directly (``from hrnet_train.evaluation.coco_metric import ...``); this package
re-exports the metric entry points.
"""

from hrnet_train.evaluation.coco_metric import STAT_NAMES, evaluate_coco_keypoints, format_stats_table

__all__ = ["STAT_NAMES", "evaluate_coco_keypoints", "format_stats_table"]
