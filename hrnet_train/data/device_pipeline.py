"""Training batches built on the accelerator (``data.pipeline=device``): crops, normalisation and targets.

The loader workers only decode (or, with ``data.decode=gpu``, only read) the images and draw the
augmentation (:class:`~hrnet_train.data.coco.TopDownCocoDataset` with ``pipeline="device"``); a
batch then carries the uint8 images packed in one buffer, each sample's source -> crop matrix and
its meta (crop-pixel joints included). After the batch reached the device,
:class:`DeviceBatchTransform` builds what the CPU path builds per sample, for the whole batch at once:
one affine sampling of every crop (:func:`~hrnet_train.data.packed_images.warp_packed`), the
ImageNet normalisation and the codec's batched torch encoder. Augmentation parameters come from the
same (seed, epoch, worker) stream as the CPU path, so resuming a run reproduces it exactly.

Batch keys: ``pixels`` (packed uint8), ``pixel_offsets`` (B,), ``image_hw`` (B, 2), ``crop_matrix``
(B, 2, 3) float64 and ``mirror`` (B,) bool (how to sample each image, as the CPU path does), ``meta``; with GPU decode ``jpeg`` (packed bytes) + ``jpeg_lengths`` (B,)
instead of the three pixel keys until :func:`decode_jpeg_batch` ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.data.packed_images import pack_images, warp_packed
from hrnet_train.normalization import normalize_pixels

JpegDecoder = Callable[[list[torch.Tensor]], list[torch.Tensor]]  # encoded bytes -> CHW uint8 RGB images


def collate_geometry(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` of the device pipeline: pack the images (or JPEG bytes), stack the matrices."""
    if not samples:
        raise ValueError("collate_geometry: empty batch")
    batch: dict[str, Any] = {
        "crop_matrix": torch.stack([sample["crop_matrix"] for sample in samples]),
        "mirror": torch.tensor([sample["mirror"] for sample in samples], dtype=torch.bool),
        "meta": default_collate([sample["meta"] for sample in samples]),
    }
    if "jpeg" in samples[0]:
        encoded = [sample["jpeg"] for sample in samples]
        batch["jpeg"] = torch.cat(encoded)
        batch["jpeg_lengths"] = torch.tensor([len(data) for data in encoded], dtype=torch.int64)
    else:
        batch["pixels"], batch["pixel_offsets"], batch["image_hw"] = pack_images([sample["pixels"] for sample in samples])
    return batch


def is_geometry_batch(batch: Any) -> bool:
    """A device-pipeline batch (crops and targets still to build), as opposed to a finished CPU one."""
    return isinstance(batch, Mapping) and "crop_matrix" in batch


def decode_jpeg_batch(batch: Mapping[str, Any], decode: JpegDecoder, color_rgb: bool = True) -> dict[str, Any]:
    """Replace a batch's JPEG bytes by packed pixels decoded with ``decode`` (on whatever device it decodes).

    ``decode`` returns RGB CHW images; ``color_rgb=False`` turns them into BGR like the CPU reader.
    """
    chunks = list(torch.split(batch["jpeg"], batch["jpeg_lengths"].tolist()))
    images = decode(chunks)
    channels = [0, 1, 2] if color_rgb else [2, 1, 0]
    hwc = [image[channels].permute(1, 2, 0) for image in images]
    decoded = {key: value for key, value in batch.items() if key not in ("jpeg", "jpeg_lengths")}
    decoded["pixels"], decoded["pixel_offsets"], decoded["image_hw"] = pack_images(hwc)
    return decoded


class DeviceBatchTransform(nn.Module):
    """Geometry batch -> training batch (``image``, ``target``, ``target_weight``, ``meta``) where its tensors are.

    ``joint_weights`` (J,) multiplies the target weights as the dataset's ``use_joint_weights`` does.
    Images come out as a channels-last (B, 3, H, W) view. Raises NotImplementedError at construction
    for a codec without a torch encoder.
    """

    def __init__(self, codec: HeatmapCodec, joint_weights: np.ndarray | None = None) -> None:
        super().__init__()
        self.encoder = codec.torch_encoder()
        self.output_hw = codec.input_size
        weights = None if joint_weights is None else torch.as_tensor(np.asarray(joint_weights, dtype=np.float64))
        self.register_buffer("joint_weights", weights, persistent=False)

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if "pixels" not in batch:
            raise ValueError("DeviceBatchTransform: the batch holds no decoded pixels (run decode_jpeg_batch first)")
        crops = warp_packed(
            batch["pixels"], batch["pixel_offsets"], batch["image_hw"], batch["crop_matrix"], self.output_hw, batch["mirror"]
        )
        joints = batch["meta"]["joints"]
        target, weight = self.encoder(joints[..., :2], joints[..., 2])
        if self.joint_weights is not None:
            weight = (weight.to(torch.float64) * self.joint_weights).to(torch.float32)
        return {"image": normalize_pixels(crops), "target": target, "target_weight": weight, "meta": batch["meta"]}
