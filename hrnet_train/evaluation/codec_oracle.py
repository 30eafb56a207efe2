"""The codec ceiling: COCO AP of a model that outputs exactly its training targets.

Encoding ground-truth joints and decoding the resulting targets through the full inference path
(decode, back-projection, rescoring, OKS-NMS, COCOeval) measures what the codec alone loses to
quantisation and pixel conventions, so codecs can be compared without training anything. With the
legacy codec and the reference settings it reproduces the official implementation's figures, which
makes it an end-to-end check of the evaluation path as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from hrnet_train.data.coco import InstanceRecord, TopDownCocoDataset
from hrnet_train.geometry import affine_points
from hrnet_train.evaluation.coco_metric import evaluate_coco_keypoints
from hrnet_train.decoding.instances import DecodedInstances, PostprocessConfig, decode_batch

BATCH = 256  # instances decoded at once: bounds memory on full COCO val (about 6,000 GT boxes)


def perfect_heatmap(codec, record: InstanceRecord, flip_index: np.ndarray | None = None) -> np.ndarray:
    """Target of ``record``'s crop as the network output that decodes to it (``codec.target_as_output``:
    heatmaps are their own, SimCC logits the log of its labels); with ``flip_index``, averaged with its
    flip-test counterpart.

    The flip test feeds the model the crop with its columns reversed (spec 6.1), in which joint k
    appears where joint ``flip_index[k]`` was, at x -> W_in - 1 - x. A perfect model returns that
    crop's target, which ``codec.flip_back`` maps back before averaging. (Re-cropping a mirrored
    image instead, x -> W_img - 1 - x with the centre mirrored, lands one input pixel away in the
    size convention, and the legacy flip shift then cancels the flip bias that the reference has.)
    """
    crop_joints = affine_points(record.joints[:, :2], codec.crop_transform(record.center, record.scale))
    visible = record.joints[:, 2]
    output = codec.target_as_output(codec.encode(crop_joints, visible)[0])
    if flip_index is None:
        return output
    mirrored = crop_joints[flip_index].copy()
    mirrored[:, 0] = codec.input_size[1] - 1 - mirrored[:, 0]
    mirrored_output = codec.target_as_output(codec.encode(mirrored, visible[flip_index])[0])
    return (output + codec.flip_back(mirrored_output[None], flip_index)[0]) / 2.0


def _batches(n: int) -> Iterator[slice]:
    for start in range(0, n, BATCH):
        yield slice(start, min(start + BATCH, n))


def perfect_instances(dataset: TopDownCocoDataset, flip: bool = False) -> DecodedInstances:
    """Decode perfect heatmaps of every record of ``dataset`` (GT boxes) through the inference path."""
    records: Sequence[InstanceRecord] = dataset.records
    flip_index = dataset.keypoints.flip_index if flip else None
    parts = []
    for part in _batches(len(records)):
        chunk = records[part]
        heatmaps = np.stack(
            [perfect_heatmap(dataset.codec, r, flip_index) for r in chunk]
        )
        meta = {
            "image_id": np.array([r.image_id for r in chunk]),
            "center": np.stack([r.center for r in chunk]),
            "scale": np.stack([r.scale for r in chunk]),
            "score": np.array([r.box_score for r in chunk]),
            "index": np.arange(part.start, part.stop),
        }
        parts.append(decode_batch(heatmaps, meta, dataset.codec))
    return DecodedInstances.concatenate(parts)


def codec_ceiling(
    dataset: TopDownCocoDataset, flip: bool = False, config: PostprocessConfig = PostprocessConfig()
) -> dict[str, float]:
    """COCO keypoint stats of perfect predictions for ``dataset``'s codec and boxes."""
    instances = perfect_instances(dataset, flip)
    results = instances.to_coco_results(dataset.keypoints.sigmas, config)
    return evaluate_coco_keypoints(dataset.coco, results, sigmas=dataset.keypoints.sigmas)
