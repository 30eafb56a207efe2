"""Training losses; each codec names its own (``codec.loss_name``) and :func:`build_loss` builds it,
so the Lightning module never asks which codec it trains.

* ``joints_mse``: the heatmap regression loss of the reference implementation (spec section 4). The
  reference ``JointsMSELoss`` multiplies BOTH prediction and target by the joint weight, so the
  weight acts squared, and averages over every pixel, which makes the loss tiny (~1e-4). We keep
  both properties for parity.
* ``simcc_kl``: SimCC's KL divergence between the Gaussian-smoothed labels and the softmax of the
  x and y logits (Li et al., ECCV 2022).

Both are computed in float32 so bf16/fp16 autocast cannot underflow them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.config_schema import LossConfig
from hrnet_train.keypoints import KeypointSet


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
        weight = joint_weighting(type(self).__name__, self.use_target_weight, self.joint_weights, batch, joints, target_weight, pred.device)
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


def joint_weighting(
    owner: str, use_target_weight: bool, joint_weights: torch.Tensor | None, batch: int, joints: int,
    target_weight: torch.Tensor | None, device: torch.device,
) -> torch.Tensor | None:
    """(B, J) float32 weight of every (sample, joint): target weight times the keypoint set's joint
    weight (either optional), or None when neither applies."""
    weight = None
    if use_target_weight:
        if target_weight is None:
            raise ValueError(f"{owner}: use_target_weight=True needs target_weight (B, J)")
        weight = target_weight.float().reshape(batch, joints)
    if joint_weights is not None:
        if joint_weights.numel() != joints:
            raise ValueError(f"{owner}: {joint_weights.numel()} joint weights for {joints} output channels")
        per_joint = joint_weights.to(device)[None, :]
        weight = per_joint.expand(batch, joints) if weight is None else weight * per_joint
    return weight


class SimCCKLLoss(nn.Module):
    """Mean over samples and joints of ``w_bj (KL_x + KL_y) / 2``, ``KL = sum_bins t (log t - log softmax(logits))``.

    ``pred`` are logits (B, J, x_bins + y_bins), x first; ``target`` the codec's labels (each axis a
    distribution). ``w_bj`` = target weight x joint weight (each optional); a weight-0 joint adds 0,
    and the mean still counts it, as ``JointsMSELoss`` does.
    """

    def __init__(self, x_bins: int, use_target_weight: bool = True, joint_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.x_bins = int(x_bins)
        self.use_target_weight = use_target_weight
        weights = None if joint_weights is None else torch.as_tensor(list(joint_weights), dtype=torch.float32)
        self.register_buffer("joint_weights", weights, persistent=False)

    def per_joint(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, J) float32: the mean of the x and y KL divergences of every (sample, joint)."""
        if pred.shape != target.shape or pred.ndim != 3:
            raise ValueError(f"SimCCKLLoss: expected logits and labels (B, J, bins) of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
        pred32, target32 = pred.float(), target.float()
        divergences = []
        for part in (slice(None, self.x_bins), slice(self.x_bins, None)):
            labels = target32[..., part]
            log_probs = torch.log_softmax(pred32[..., part], dim=-1)
            divergences.append((torch.xlogy(labels, labels) - labels * log_probs).sum(dim=-1))
        return 0.5 * (divergences[0] + divergences[1])

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None) -> torch.Tensor:
        losses = self.per_joint(pred, target)
        weight = joint_weighting(type(self).__name__, self.use_target_weight, self.joint_weights, *losses.shape, target_weight, pred.device)
        return (losses if weight is None else losses * weight).mean()


def _joints_mse(codec: HeatmapCodec, config: LossConfig, joint_weights: list[float] | None) -> nn.Module:
    return JointsMSELoss(config.use_target_weight, joint_weights, config.ohkm_topk)


def _simcc_kl(codec: HeatmapCodec, config: LossConfig, joint_weights: list[float] | None) -> nn.Module:
    if config.ohkm_topk is not None:
        raise ValueError("loss.ohkm_topk: hard keypoint mining is a heatmap-loss option (JointsMSELoss); codec simcc has none")
    return SimCCKLLoss(codec.x_bins, config.use_target_weight, joint_weights)


LOSSES: dict[str, Callable[[HeatmapCodec, LossConfig, list[float] | None], nn.Module]] = {
    "joints_mse": _joints_mse,
    "simcc_kl": _simcc_kl,
}


def build_loss(codec: HeatmapCodec, config: LossConfig, keypoints: KeypointSet) -> nn.Module:
    """The loss ``codec`` names, with the run's loss settings (target weights, joint weights, OHKM)."""
    if codec.loss_name not in LOSSES:
        raise ValueError(f"codec {codec.name!r} names loss {codec.loss_name!r}, expected one of {sorted(LOSSES)}")
    joint_weights = keypoints.joint_weights.tolist() if config.use_joint_weights else None
    return LOSSES[codec.loss_name](codec, config, joint_weights)
