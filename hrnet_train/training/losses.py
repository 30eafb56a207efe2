"""Heatmap regression loss of the reference implementation (spec section 4).

The reference ``JointsMSELoss`` multiplies BOTH prediction and target by the joint weight, so the
weight acts squared, and averages over every pixel, which makes the loss tiny (~1e-4). We keep
both properties for parity and compute in float32 so bf16/fp16 autocast cannot underflow it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class JointsMSELoss(nn.Module):
    """0.5 * weighted MSE per joint, averaged over joints (optionally online hard keypoint mining).

    ``L = 1/(2·J·B·H·W) · Σ_{b,j,p} w_bj² (pred - gt)²`` with ``w_bj = target_weight[b,j] · joint_weights[j]``.
    With ``ohkm_topk=k`` each sample keeps only its k largest per-joint losses (mean of those), and the
    result is averaged over the batch (reference ``JointsOHKMMSELoss``).
    """

    def __init__(
        self,
        use_target_weight: bool = True,
        joint_weights: Sequence[float] | None = None,
        ohkm_topk: int | None = None,
    ) -> None:
        super().__init__()
        if ohkm_topk is not None and ohkm_topk < 1:
            raise ValueError(f"loss.ohkm_topk: expected a positive integer or null, got {ohkm_topk}")
        self.use_target_weight = use_target_weight
        self.ohkm_topk = ohkm_topk
        weights = None if joint_weights is None else torch.as_tensor(list(joint_weights), dtype=torch.float32)
        self.register_buffer("joint_weights", weights, persistent=False)

    def per_joint(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None) -> torch.Tensor:
        """Loss of every (sample, joint): ``(B, J)`` float32, 0.5 · mean over pixels of the weighted squared error."""
        if pred.shape != target.shape:
            raise ValueError(f"JointsMSELoss: prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        batch, joints = pred.shape[:2]
        pred32 = pred.float().reshape(batch, joints, -1)
        target32 = target.float().reshape(batch, joints, -1)
        weight = self._weights(batch, joints, target_weight, pred.device)
        if weight is not None:
            diff = pred32 * weight[..., None] - target32 * weight[..., None]
        else:
            diff = pred32 - target32
        return 0.5 * diff.pow(2).mean(dim=2)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None) -> torch.Tensor:
        losses = self.per_joint(pred, target, target_weight)
        if self.ohkm_topk is None:
            return losses.mean(dim=0).sum() / losses.shape[1]
        k = min(self.ohkm_topk, losses.shape[1])
        hardest, _ = losses.topk(k, dim=1)
        return (hardest.sum(dim=1) / k).mean()

    def _weights(
        self, batch: int, joints: int, target_weight: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor | None:
        weight = None
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError("JointsMSELoss: use_target_weight=True needs target_weight (B, J)")
            weight = target_weight.float().reshape(batch, joints)
        if self.joint_weights is not None:
            if self.joint_weights.numel() != joints:
                raise ValueError(
                    f"JointsMSELoss: {self.joint_weights.numel()} joint weights for {joints} heatmap channels"
                )
            per_joint = self.joint_weights.to(device)[None, :]
            weight = per_joint.expand(batch, joints) if weight is None else weight * per_joint
        return weight
