"""Confusion-matrix segmentation metrics (spec B.8) and their exact reduction across DDP ranks.

M[gt, pred] counts the pixels whose label is ``gt`` (255 = ignored, not counted) and whose predicted
class is ``pred``. IoU_k = M[k,k] / max(1, row_k + col_k - M[k,k]); mIoU is the mean over ALL K classes
(a class absent from both ground truth and prediction counts as 0, D.17); pixel accuracy =
trace / total; mean accuracy = mean_k M[k,k] / max(1, row_k).

DDP: a DistributedSampler pads the last round with repeated samples, so summing the ranks' matrices
would count those pixels twice. :class:`ConfusionAccumulator` therefore keeps one (sparse) matrix per
dataset index; :meth:`~ConfusionAccumulator.gather` collects all ranks' matrices, keeps each index
once and sums. This is exact for any sampler (shuffled, padded, uneven) and costs a few hundred bytes
per image (only non-zero cells are stored), unlike masking the padded tail, which needs the
sampler's layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hrnet_train.seg_classes import IGNORE_LABEL


def batch_confusion(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_LABEL
) -> torch.Tensor:
    """Per-sample confusion matrices (N, K, K) int64 of predicted class maps vs labels, both (N, H, W).

    Raises ValueError for a label outside 0..K-1 that is not ``ignore_index`` or a prediction outside 0..K-1.
    """
    if predictions.shape != labels.shape or predictions.ndim != 3:
        raise ValueError(
            f"batch_confusion: predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} must both be (N, H, W)"
        )
    labels = labels.long()
    predictions = predictions.long()
    valid = labels != ignore_index
    if bool(((labels < 0) | (labels >= num_classes))[valid].any()):
        raise ValueError(f"batch_confusion: label values outside 0..{num_classes - 1} (and not {ignore_index})")
    if bool(((predictions < 0) | (predictions >= num_classes)).any()):
        raise ValueError(f"batch_confusion: predicted classes outside 0..{num_classes - 1}")
    batch = labels.shape[0]
    cells = num_classes * num_classes
    sample = torch.arange(batch, device=labels.device).view(batch, 1, 1).expand_as(labels)
    flat = (sample * cells + labels * num_classes + predictions)[valid]
    return torch.bincount(flat, minlength=batch * cells).view(batch, num_classes, num_classes)


@dataclass(frozen=True)
class SegScores:
    """Scores of one confusion matrix; ``iou``/``accuracy`` per class (K,), the rest scalars."""

    iou: np.ndarray
    accuracy: np.ndarray
    miou: float
    pixel_accuracy: float
    mean_accuracy: float
    pixels: int

    @classmethod
    def from_confusion(cls, confusion: np.ndarray | torch.Tensor) -> SegScores:
        matrix = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"SegScores: expected a square (K, K) confusion matrix, got shape {matrix.shape}")
        diagonal = np.diag(matrix)
        rows, cols = matrix.sum(axis=1), matrix.sum(axis=0)
        iou = diagonal / np.maximum(1.0, rows + cols - diagonal)
        accuracy = diagonal / np.maximum(1.0, rows)
        total = matrix.sum()
        return cls(
            iou=iou,
            accuracy=accuracy,
            miou=float(iou.mean()),
            pixel_accuracy=float(diagonal.sum() / max(1.0, total)),
            mean_accuracy=float(accuracy.mean()),
            pixels=int(total),
        )

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics for logging: ``{prefix}mIoU``, ``pixel_acc``, ``mean_acc``."""
        return {f"{prefix}mIoU": self.miou, f"{prefix}pixel_acc": self.pixel_accuracy, f"{prefix}mean_acc": self.mean_accuracy}


def iou_table(scores: SegScores, class_names: Sequence[str]) -> str:
    """Markdown table: one row per class (IoU %, accuracy %), then the mean row."""
    if len(class_names) != len(scores.iou):
        raise ValueError(f"iou_table: {len(class_names)} class names for {len(scores.iou)} classes")
    lines = ["| id | class | IoU % | acc % |", "|---:|---|---:|---:|"]
    for index, (name, iou, accuracy) in enumerate(zip(class_names, scores.iou, scores.accuracy)):
        lines.append(f"| {index} | {name} | {100 * iou:.2f} | {100 * accuracy:.2f} |")
    lines.append(f"| | **mean** | **{100 * scores.miou:.2f}** | **{100 * scores.mean_accuracy:.2f}** |")
    lines.append("")
    lines.append(f"pixel accuracy {100 * scores.pixel_accuracy:.2f} % over {scores.pixels:,} labelled pixels")
    return "\n".join(lines)


SparseConfusion = tuple[np.ndarray, np.ndarray]  # (flat cell indices int32, counts int64) of the non-zero cells


class ConfusionAccumulator:
    """Per-dataset-index confusion matrices of one evaluation pass: ``add`` per batch, ``gather`` at the end."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_LABEL) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.per_sample: dict[int, SparseConfusion] = {}

    def reset(self) -> None:
        self.per_sample.clear()

    def add(self, indices: Iterable[int] | torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Count a batch: ``indices`` (N,) dataset indices, ``predictions``/``labels`` (N, H, W).

        A repeated index (a padded duplicate on this rank) keeps its first matrix.
        """
        matrices = batch_confusion(predictions, labels, self.num_classes, self.ignore_index).reshape(len(labels), -1).cpu()
        for index, flat in zip((int(i) for i in indices), matrices.numpy(), strict=True):
            if index not in self.per_sample:
                cells = np.flatnonzero(flat).astype(np.int32)
                self.per_sample[index] = (cells, flat[cells].astype(np.int64))

    def confusion(self) -> np.ndarray:
        """(K, K) int64 sum over the samples held here."""
        return merge_confusions([self.per_sample], self.num_classes)

    def gather(self, world_size: int) -> np.ndarray:
        """(K, K) int64 over all ranks, each dataset index once (call on every rank; ``world_size`` 1 = local)."""
        if world_size == 1:
            return self.confusion()
        parts: list[dict[int, SparseConfusion] | None] = [None] * world_size
        torch.distributed.all_gather_object(parts, self.per_sample)
        return merge_confusions([part for part in parts if part is not None], self.num_classes)


def merge_confusions(parts: Sequence[Mapping[int, SparseConfusion]], num_classes: int) -> np.ndarray:
    """Sum of per-index sparse matrices over ``parts``, the first occurrence of each index counted once."""
    total = np.zeros(num_classes * num_classes, dtype=np.int64)
    seen: set[int] = set()
    for part in parts:
        for index, (cells, counts) in part.items():
            if index not in seen:
                seen.add(index)
                total[cells] += counts  # cells are unique within one sample
    return total.reshape(num_classes, num_classes)
