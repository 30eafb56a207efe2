"""Inference: the batched top-down PoseEstimator (estimator), person detectors (detectors), IoU+OKS
tracking (tracking), One-Euro smoothing (smoothing), drawing (drawing), image/video I/O (media) and the
NumPy crop-to-image back-projection reference (backproject). The CLI is ``python -m hrnet_train.demo``.
"""
