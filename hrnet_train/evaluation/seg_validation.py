"""The one validation loop of segmentation models, shared by training (``val/mIoU`` every epoch) and evaluate.py.

Per batch: the class map of every image at its own size. A padded batch (``pad_collate``) is split by
original image size and each group is cropped back to it, so padding never reaches the network and
the numbers are those of batch size 1. Prediction is single scale or the official multi-scale + flip
(:mod:`hrnet_train.decoding.seg_predict`), counted into per-image confusion matrices. At the end the
matrices of all DDP ranks are gathered, each dataset index counted once (DistributedSampler pads
with repeats), and scored (spec B.8). The first ``num_vis_images`` images this rank sees are kept
(image, label, prediction) for the overlay pictures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hrnet_train.config_schema import SegEvalConfig
from hrnet_train.decoding.seg_predict import multi_scale_scores, network_logits, upsample_logits
from hrnet_train.evaluation.miou import ConfusionAccumulator, SegScores
from hrnet_train.evaluation.seg_overlay import overlay_panel
from hrnet_train.normalization import denormalize
from hrnet_train.seg_classes import SegClasses


@dataclass(frozen=True)
class SegVisSample:
    """One validation image for the overlays: RGB uint8, its label map and the predicted class map."""

    index: int
    name: str
    image: np.ndarray
    label: np.ndarray
    prediction: np.ndarray


def seg_stats(scores: SegScores, classes: SegClasses) -> dict[str, float]:
    """The logged and reported numbers: mIoU, pixel/mean accuracy, per-class IoU (``IoU_<name>``), pixel count."""
    per_class = {f"IoU_{name.replace(' ', '_')}": float(iou) for name, iou in zip(classes.names, scores.iou, strict=True)}
    return {**scores.as_dict(), **per_class, "num_pixels": float(scores.pixels)}


def stats_table(stats: Mapping[str, float], classes: SegClasses, label: str) -> str:
    """Markdown table of logged stats (per-class IoU where present, then the means), headed by ``label``."""
    lines = [f"| {label} | IoU % |", "|---|---:|"]
    for name in classes.names:
        key = f"IoU_{name.replace(' ', '_')}"
        if key in stats:
            lines.append(f"| {name} | {100 * stats[key]:.2f} |")
    lines.append(f"| **mIoU** | **{100 * stats['mIoU']:.2f}** |")
    lines.append("")
    lines.append(f"pixel accuracy {100 * stats['pixel_acc']:.2f} %, mean accuracy {100 * stats['mean_acc']:.2f} %")
    return "\n".join(lines)


def overlay_sheet(samples: list[SegVisSample], classes: SegClasses) -> np.ndarray | None:
    """The samples' image | ground truth | prediction panels stacked top to bottom (white right margins
    where widths differ), uint8 RGB; None without samples."""
    if not samples:
        return None
    panels = [overlay_panel(s.image, s.label, s.prediction, classes) for s in samples]
    width = max(panel.shape[1] for panel in panels)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
    return np.concatenate(padded, axis=0)


class SegValidation:
    """Collects one pass: ``start``, ``add`` per batch, ``gather`` (every rank) at the end."""

    def __init__(self, classes: SegClasses, settings: SegEvalConfig, align_corners: bool) -> None:
        self.classes = classes
        self.settings = settings
        self.align_corners = align_corners
        self.accumulator = ConfusionAccumulator(classes.num_classes)
        self.vis: list[SegVisSample] = []

    def start(self) -> None:
        self.accumulator.reset()
        self.vis = []

    @torch.no_grad()
    def predict(self, network: Callable[[torch.Tensor], Any], images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) int64 class maps of normalised same-size ``images`` (N, 3, H, W)."""
        s = self.settings
        if tuple(s.scales) == (1.0,) and not s.flip:  # the official single-scale test: argmax of the upsampled logits
            return upsample_logits(network_logits(network, images), images.shape[-2:], self.align_corners).argmax(1)
        flip_index = self.classes.flip_index if self.classes.flip_pairs else None
        window = s.window_hw
        return multi_scale_scores(
            network, images, s.scales, s.flip, s.base_size, None if window is None else tuple(window), flip_index,
            self.align_corners,
        ).argmax(1)

    def add(self, network: Callable[[torch.Tensor], Any], batch: Mapping[str, Any]) -> list[tuple[str, torch.Tensor]]:
        """Predict and count a ``pad_collate`` batch (image, label, index, name, height, width); returns
        (name, class map at the image's size) of each image, for callers that write the predictions."""
        sizes = torch.stack([batch["height"], batch["width"]], dim=1).tolist()
        predicted: list[tuple[str, torch.Tensor]] = []
        for height, width in sorted({tuple(size) for size in sizes}):
            rows = [row for row, size in enumerate(sizes) if tuple(size) == (height, width)]
            images = batch["image"][rows, :, :height, :width]
            labels = batch["label"][rows, :height, :width]
            predictions = self.predict(network, images)
            indices = batch["index"][rows]
            self.accumulator.add(indices, predictions, labels)
            for slot, row in enumerate(rows):
                predicted.append((str(batch["name"][row]), predictions[slot]))
                if len(self.vis) < self.settings.num_vis_images:
                    self.vis.append(SegVisSample(
                        int(indices[slot]), str(batch["name"][row]), denormalize(images[slot].float().cpu().numpy()),
                        labels[slot].cpu().numpy(), predictions[slot].cpu().numpy(),
                    ))
        return predicted

    def gather(self, world_size: int) -> np.ndarray:
        """(K, K) confusion over every rank, each dataset index once (call on every rank)."""
        return self.accumulator.gather(world_size)
