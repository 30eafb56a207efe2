"""The one validation loop of keypoint models, shared by training (``val/AP``, faces ``val/NME``, every
epoch) and evaluate.py.

Per batch: the network's heatmaps (flip test when on), decoded at once into a small table of poses
(``codec.decode`` + ``codec.to_image``: image pixels). At the end: the tables of all DDP ranks are
gathered (``all_gather_object``: ranks may hold different counts), deduplicated by dataset index
(DistributedSampler pads with repeats) and restored to dataset order, so N processes give exactly the
results of one. Scoring is per task: :func:`pose_metrics` (COCO OKS AP, the shares of the error
classes of Ronchi & Perona, plus torso PCK for single-person LSPET-style sets) and :func:`face_metrics` (NME with the keypoint set's normaliser, FR, AUC), the
numbers both paths report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from hrnet_train.config_schema import EvalConfig
from hrnet_train.data.coco import InstanceRecord, without
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.decoding.instances import DecodedInstances, PostprocessConfig, PredictionAccumulator
from hrnet_train.evaluation.analysis import analyze_errors
from hrnet_train.evaluation.coco_metric import evaluate_coco_keypoints
from hrnet_train.evaluation.nme import NMEResult, annotation_nme
from hrnet_train.evaluation.pck import annotation_pck, pck_applies
from hrnet_train.keypoints import KeypointSet


def postprocess_config(settings: EvalConfig) -> PostprocessConfig:
    """The rescoring/NMS part of the evaluation settings."""
    return PostprocessConfig(
        in_vis_thre=settings.in_vis_thre, nms=settings.nms, oks_thre=settings.oks_thre,
        soft_update_scores=settings.soft_update_scores,
    )


class PoseValidation:
    """Collects the decoded poses (or face landmarks) of one validation pass: ``start``,
    ``heatmaps``/``add`` per batch, ``gather``. Only :meth:`results` (OKS rescoring and NMS) needs the
    keypoint set's OKS sigmas, so face sets, which have none, use the same loop."""

    def __init__(self, codec: Any, keypoints: KeypointSet, settings: EvalConfig) -> None:
        self.codec = codec
        self.keypoints = keypoints
        self.settings = settings
        self.postprocess = postprocess_config(settings)
        self._accumulator = PredictionAccumulator(codec, keypoints.oks_sigmas, self.postprocess)

    def start(self) -> None:
        self._accumulator.reset()

    def heatmaps(self, network: Callable[[torch.Tensor], Any], images: torch.Tensor) -> torch.Tensor:
        """float32 heatmaps of ``images`` (flip-averaged when the settings ask for the flip test)."""
        if self.settings.flip_test:
            return flip_test(network, images, self.codec, self.keypoints.flip_index).float()
        output = network(images)
        return (output[-1] if isinstance(output, (list, tuple)) else output).float()  # last stage's maps

    def add(self, heatmaps: torch.Tensor, meta: Mapping[str, Any]) -> None:
        self._accumulator.add(heatmaps, meta)

    def gather(self, world_size: int) -> DecodedInstances:
        """Every rank's poses, one row per dataset index, in dataset order (call on every rank)."""
        local = self._accumulator.instances()
        if world_size > 1:
            parts: list[dict[str, np.ndarray] | None] = [None] * world_size
            torch.distributed.all_gather_object(parts, local.as_arrays())
            local = DecodedInstances.concatenate([DecodedInstances(**part) for part in parts if part is not None])
        return local.deduplicate()

    def results(self, instances: DecodedInstances) -> list[dict]:
        """COCO keypoint results (rescoring + NMS per image)."""
        return self._accumulator.results(instances)


def leave_out_unread(
    coco: COCO, results: list[dict], instances: DecodedInstances, records: Sequence[InstanceRecord]
) -> tuple[COCO, list[dict], set[int]]:
    """Ground truth and results without the images of records that produced no pose, and those image ids.

    A record has no pose only when its image was skipped as unreadable (``skip_corrupt``; every other
    record gets exactly one row, DDP included). Its image leaves the evaluation, ground truth and
    predictions alike, so COCOeval does not count its persons as missed.
    """
    predicted = np.zeros(len(records), dtype=bool)
    predicted[instances.indices] = True
    unread = {records[i].image_id for i in np.nonzero(~predicted)[0]}
    if not unread:
        return coco, results, unread
    return without(coco, image_ids=unread), [r for r in results if r["image_id"] not in unread], unread


def gt_box_predictions(instances: DecodedInstances, annotation_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Annotation id -> predicted keypoints, one prediction per GT box (before NMS), for PCK."""
    return dict(zip([int(i) for i in annotation_ids], instances.keypoints, strict=True))


def pose_metrics(
    coco: COCO,
    results: list[dict],
    keypoints: KeypointSet,
    gt_box_poses: Mapping[int, np.ndarray] | None = None,
    pck_alpha: float = 0.2,
) -> dict[str, float]:
    """COCO OKS stats of ``results``, the error-class shares ``err_good`` ... ``err_miss`` (fractions of
    the matched labelled keypoints, :mod:`hrnet_train.evaluation.analysis`), plus ``PCK_limbs``/``PCK_all``
    for LSPET-style sets when one prediction per GT box is given (``gt_box_poses``: annotation id -> keypoints)."""
    stats = evaluate_coco_keypoints(coco, results, sigmas=keypoints.sigmas)
    stats.update({f"err_{name}": share for name, share in analyze_errors(coco, results, keypoints).shares.items()})
    if gt_box_poses is not None and pck_applies(keypoints):
        pck = annotation_pck(coco, keypoints, gt_box_poses, pck_alpha)
        stats = {**stats, "PCK_limbs": pck.limbs, "PCK_all": pck.all_joints}
    return stats


def secondary_stats_line(stats: Mapping[str, float]) -> str:
    """One line after the AP table: torso PCK (when computed) and the error-class shares, in percent."""
    parts = [f"PCK@0.2 limbs {100 * stats['PCK_limbs']:.1f} %, all {100 * stats['PCK_all']:.1f} %"] if "PCK_limbs" in stats else []
    shares = [f"{name[4:]} {100 * value:.1f}" for name, value in stats.items() if name.startswith("err_")]
    if shares:
        parts.append("keypoints (%): " + ", ".join(shares))
    return "; ".join(parts)
def face_metrics(
    coco: COCO, keypoints: KeypointSet, instances: DecodedInstances, annotation_ids: Sequence[int], complete: bool = True
) -> NMEResult:
    """NME / FR / AUC of the decoded faces (row i is the face of annotation ``annotation_ids[i]``),
    normalised by the keypoint set's ``nme_normalizer``. ``complete`` requires every face of ``coco`` to
    be predicted (evaluate.py); training with ``limit_val_batches`` scores the faces it saw."""
    return annotation_nme(coco, keypoints, gt_box_predictions(instances, annotation_ids), complete=complete)
