"""Decoding network outputs into poses: flip test (flip_test), heatmaps -> per-box poses -> COCO results
(instances), reference rescoring (rescoring) and OKS non-maximum suppression (nms); segmentation logits -> class maps,
single scale or the official multi-scale + flip (seg_predict).

Below evaluation and inference, which both use it and never import each other.
"""
