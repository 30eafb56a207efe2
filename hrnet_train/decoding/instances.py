"""From model heatmaps to COCO keypoint results: decoding, rescoring, OKS-NMS (spec 6.2-6.3).

The same path serves the Lightning validation loop and ``evaluate.py``. Batches are decoded as
they arrive (heatmaps are large, decoded poses are small) into a ``DecodedInstances`` table that
carries each sample's dataset ``index``; under DDP the per-rank tables are gathered, duplicates
from DistributedSampler padding are dropped by that index, and only then are the per-image steps
(rescoring, NMS) run, so every rank count gives the same results as one process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from hrnet_train.geometry import PIXEL_STD
from hrnet_train.decoding.nms import oks_nms, soft_oks_nms
from hrnet_train.decoding.rescoring import IN_VIS_THRE, rescore

NMS_MODES = ("oks", "soft", "none")
META_KEYS = ("image_id", "center", "scale", "score", "index")


def to_numpy(value: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    """A numpy view of a (possibly GPU) tensor, array or list, as collated batches hold any of them."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        # numpy has no bfloat16: bf16-mixed precision outputs are widened first.
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return np.asarray(value)


@dataclass(frozen=True)
class PostprocessConfig:
    """Per-image steps after decoding; defaults are the reference settings (spec 6.3)."""

    in_vis_thre: float = IN_VIS_THRE
    nms: str = "oks"  # "oks" (reference), "soft" (Gaussian soft-OKS-NMS), "none"
    oks_thre: float = 0.9
    soft_update_scores: bool = False  # soft-NMS: report decayed scores (reference keeps originals)

    def __post_init__(self) -> None:
        if self.nms not in NMS_MODES:
            raise ValueError(f"postprocess nms must be one of {NMS_MODES}, got {self.nms!r}")


@dataclass
class DecodedInstances:
    """One row per evaluated person box: its pose in image pixels and what NMS/COCO need.

    ``keypoints`` is float32 (N, J, 3) = x, y, heatmap maxval, as the reference stores predictions
    (its results therefore hold float32-rounded coordinates).
    """

    keypoints: np.ndarray  # (N, J, 3) float32
    centers: np.ndarray  # (N, 2) float64
    scales: np.ndarray  # (N, 2) float64
    box_scores: np.ndarray  # (N,) float64 (1 for GT boxes)
    image_ids: np.ndarray  # (N,) int64
    indices: np.ndarray  # (N,) int64 dataset index, for DDP deduplication

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if self.keypoints.ndim != 3 or self.keypoints.shape[2] != 3:
            raise ValueError(f"keypoints must be (N, J, 3), got {self.keypoints.shape}")
        for field in fields(self)[1:]:
            value = getattr(self, field.name)
            if len(value) != n:
                raise ValueError(f"{field.name} has {len(value)} rows, keypoints has {n}")

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def areas(self) -> np.ndarray:
        """Padded-box areas (200 s_w)(200 s_h): the reference's NMS area (not the GT area)."""
        return np.prod(self.scales * PIXEL_STD, axis=1)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, torch.Tensor | np.ndarray]) -> DecodedInstances:
        """Rebuild from ``as_arrays()`` output; leading dims are flattened, so the (world, N, ...)
        arrays of an all-gather load directly."""
        trailing = {"keypoints": 2, "centers": 1, "scales": 1}
        values = {}
        for field in fields(cls):
            if field.name not in arrays:
                raise ValueError(f"DecodedInstances arrays lack '{field.name}'")
            array = to_numpy(arrays[field.name])
            keep = trailing.get(field.name, 0)
            values[field.name] = array.reshape(-1, *array.shape[array.ndim - keep :]) if keep else array.reshape(-1)
        return cls(**values)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Field name -> array, the form to all-gather across ranks."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def concatenate(cls, parts: Sequence[DecodedInstances]) -> DecodedInstances:
        if not parts:
            raise ValueError("no decoded instances to concatenate (was any batch added?)")
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def deduplicate(self) -> DecodedInstances:
        """One row per dataset index (first occurrence), in dataset order.

        DistributedSampler pads the last rank with repeated samples; after gathering, those
        repeats would be evaluated twice. Dataset order also restores the single-process order,
        which decides COCOeval's tie-breaking between equal scores.
        """
        _, first = np.unique(self.indices, return_index=True)
        return DecodedInstances(**{f.name: getattr(self, f.name)[first] for f in fields(self)})

    def to_coco_results(
        self, sigmas: np.ndarray, config: PostprocessConfig = PostprocessConfig()
    ) -> list[dict]:
        """Rescore, run NMS per image and emit COCO result dicts (category 1)."""
        scores = rescore(self.keypoints[:, :, 2], self.box_scores, config.in_vis_thre)
        areas = self.areas
        results: list[dict] = []
        for image_id, rows in _rows_by_image(self.image_ids):
            kept, kept_scores = _suppress(self.keypoints[rows], scores[rows], areas[rows], sigmas, config)
            for row, score in zip(rows[kept], kept_scores, strict=True):
                results.append(
                    {
                        "image_id": int(image_id),
                        "category_id": 1,
                        "keypoints": self.keypoints[row].reshape(-1).tolist(),
                        "score": float(score),
                    }
                )
        return results


def _rows_by_image(image_ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(image id, its row indices) in order of first appearance, rows in original order."""
    if len(image_ids) == 0:
        return []
    _, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    appearance_rank = np.argsort(np.argsort(first))[inverse.reshape(-1)]
    order = np.argsort(appearance_rank, kind="stable")
    boundaries = np.flatnonzero(np.diff(appearance_rank[order])) + 1
    return [(int(image_ids[rows[0]]), rows) for rows in np.split(order, boundaries)]


def _suppress(
    keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, config: PostprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    if config.nms == "oks":
        kept = oks_nms(keypoints, scores, areas, config.oks_thre, sigmas)
        return kept, scores[kept]
    if config.nms == "soft":
        return soft_oks_nms(keypoints, scores, areas, config.oks_thre, sigmas, update_scores=config.soft_update_scores)
    return np.arange(len(scores)), scores


def decode_batch(heatmaps: torch.Tensor | np.ndarray, meta: Mapping, codec) -> DecodedInstances:
    """Decode a batch of heatmaps (N, J, h, w) with the meta of its samples (collated dict).

    ``meta`` needs image_id, center, scale, score (box score) and index per sample.
    """
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise ValueError(f"batch meta lacks {missing} (needed to build COCO results)")
    coords, maxvals = codec.decode(to_numpy(heatmaps).astype(np.float32, copy=False))
    centers = to_numpy(meta["center"]).astype(np.float64).reshape(-1, 2)
    scales = to_numpy(meta["scale"]).astype(np.float64).reshape(-1, 2)
    image_coords = codec.to_image(coords, centers, scales)
    keypoints = np.concatenate([image_coords, np.asarray(maxvals)[..., None]], axis=2).astype(np.float32)
    return DecodedInstances(
        keypoints=keypoints,
        centers=centers,
        scales=scales,
        box_scores=to_numpy(meta["score"]).astype(np.float64).reshape(-1),
        image_ids=to_numpy(meta["image_id"]).astype(np.int64).reshape(-1),
        indices=to_numpy(meta["index"]).astype(np.int64).reshape(-1),
    )


class PredictionAccumulator:
    """Collects decoded batches during a validation/evaluation pass and builds the COCO results.

    Single process: ``add`` every batch, then ``results()``. DDP: ``add`` on every rank, gather
    ``instances().as_arrays()``, rebuild with ``DecodedInstances.from_arrays`` and call
    ``results(gathered)``; deduplication by dataset index happens there in both cases.
    """

    def __init__(self, codec, sigmas: np.ndarray | None, config: PostprocessConfig = PostprocessConfig()) -> None:
        self.codec = codec
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)  # face sets have none
        self.config = config
        self._parts: list[DecodedInstances] = []

    def add(self, heatmaps: torch.Tensor | np.ndarray, meta: Mapping) -> None:
        self._parts.append(decode_batch(heatmaps, meta, self.codec))

    def instances(self) -> DecodedInstances:
        """Everything added so far on this process (not deduplicated)."""
        return DecodedInstances.concatenate(self._parts)

    def results(self, instances: DecodedInstances | None = None) -> list[dict]:
        """COCO results of ``instances`` (default: this process's), deduplicated by index."""
        if self.sigmas is None:
            raise ValueError("COCO results need the keypoint set's OKS sigmas (rescoring and OKS-NMS); this set has none")
        chosen = self.instances() if instances is None else instances
        return chosen.deduplicate().to_coco_results(self.sigmas, self.config)

    def reset(self) -> None:
        self._parts.clear()
