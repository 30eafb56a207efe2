"""Segmentation losses of the official HRNetV2 code (spec B.6): cross-entropy and OHEM cross-entropy.

Both upsample the logits (bilinear, ``align_corners`` as the model) from 1/4 resolution to the label
size and skip pixels labelled 255. Plain CE is ``nn.CrossEntropyLoss(weight, ignore_index)`` with
'mean' reduction, i.e. sum_i w_{y_i} l_i / sum_i w_{y_i}. OHEM (``OhemCrossEntropy``) keeps, per
process (per GPU batch, D.18), the pixels whose ground-truth probability is below
max(p_sorted[min(min_kept, n_valid - 1)], thresh) and takes the plain mean of their class-weighted
losses. Computed in float32 so autocast cannot underflow the probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hrnet_train.decoding.seg_predict import upsample_logits
from hrnet_train.seg_classes import IGNORE_LABEL

# Official yaml values (LOSS.OHEMTHRES, LOSS.OHEMKEEP); 131,072 = a quarter of one 512x1024 crop.
OHEM_THRESH = 0.9
OHEM_MIN_KEPT = 131_072


def ohem_keep_mask(gt_prob: torch.Tensor, thresh: float = OHEM_THRESH, min_kept: int = OHEM_MIN_KEPT) -> torch.Tensor:
    """Bool mask over the valid pixels' ground-truth probabilities (1-D) of the pixels OHEM keeps.

    threshold = max(k-th smallest probability with k = min(min_kept, n - 1), thresh); kept: p < threshold.
    So at least the min_kept hardest pixels are kept (ties and the very largest aside, as the official).
    """
    if gt_prob.numel() == 0:
        return torch.zeros_like(gt_prob, dtype=torch.bool)
    kth = torch.kthvalue(gt_prob, min(min_kept, gt_prob.numel() - 1) + 1).values
    threshold = torch.clamp(kth, min=thresh)
    return gt_prob < threshold


class SegCrossEntropyLoss(nn.Module):
    """Cross-entropy on logits (N, K, h, w) against labels (N, H, W) int64 with 255 = ignore.

    ``class_weights`` (K,) weights each pixel by its ground-truth class (Cityscapes: spec B.6);
    ``ohem=True`` switches to OHEM with ``ohem_thresh`` / ``ohem_min_kept``. A batch without valid
    pixels gives a zero loss that still backpropagates (the official would give NaN).
    """

    def __init__(
        self,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        ignore_index: int = IGNORE_LABEL,
        align_corners: bool = False,
        ohem: bool = False,
        ohem_thresh: float = OHEM_THRESH,
        ohem_min_kept: int = OHEM_MIN_KEPT,
    ) -> None:
        super().__init__()
        if not 0.0 <= ohem_thresh <= 1.0 or ohem_min_kept < 1:
            raise ValueError(
                f"SegCrossEntropyLoss: ohem_thresh must be in [0, 1] and ohem_min_kept >= 1, got {ohem_thresh}, {ohem_min_kept}"
            )
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        self.ohem = ohem
        self.ohem_thresh = ohem_thresh
        self.ohem_min_kept = ohem_min_kept

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._check(logits, labels)
        logits = upsample_logits(logits.float(), labels.shape[-2:], self.align_corners)
        valid = labels != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        if not self.ohem:
            return F.cross_entropy(logits, labels, weight=self.class_weights, ignore_index=self.ignore_index)
        target = labels.clamp(0, logits.shape[1] - 1)[valid]  # ignored pixels are dropped by [valid]
        nll = -logits.log_softmax(dim=1).permute(0, 2, 3, 1)[valid].gather(1, target[:, None]).squeeze(1)
        pixel_losses = nll if self.class_weights is None else nll * self.class_weights[target]
        keep = ohem_keep_mask(torch.exp(-nll.detach()), self.ohem_thresh, self.ohem_min_kept)
        if not bool(keep.any()):
            return logits.sum() * 0.0
        return pixel_losses[keep].mean()

    def _check(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if logits.ndim != 4 or labels.ndim != 3 or logits.shape[0] != labels.shape[0]:
            raise ValueError(
                f"SegCrossEntropyLoss: expected logits (N, K, h, w) and labels (N, H, W), got "
                f"{tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        classes = logits.shape[1]
        if self.class_weights is not None and self.class_weights.numel() != classes:
            raise ValueError(f"SegCrossEntropyLoss: {self.class_weights.numel()} class weights for {classes} logit channels")
        bad = (labels != self.ignore_index) & ((labels < 0) | (labels >= classes))
        if bool(bad.any()):
            raise ValueError(
                f"SegCrossEntropyLoss: label value(s) {torch.unique(labels[bad])[:10].tolist()} outside 0..{classes - 1} "
                f"and not the ignore label {self.ignore_index}"
            )
