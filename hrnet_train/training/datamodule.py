"""LightningDataModule: COCO-format train/val splits (real COCO, converted LSPET, synthetic people; with
``data.instances=face`` face landmark files: converted official sets or synthetic faces).

Shuffling uses an epoch-seeded sampler and augmentation an epoch-seeded dataset stream, so a run
resumed from a checkpoint sees exactly the batches the uninterrupted run would have seen. Lightning
creates the first training iterator of a fit while it sets up the optimisers, before it restores a
checkpoint's epoch; with loader workers that iterator has already forked the workers (each with a
copy of the dataset at epoch 0) and drawn the first indices, so a resumed run replayed epoch 0. The
training loader (:class:`EpochStartLoader`) therefore starts its iterator at the first batch: the
dataset's epoch is set by then (``DatasetEpochSeeder``, at epoch start) and the sampler's is set to the
trainer's epoch (also the sampler that Lightning wraps for DDP, which its own ``set_epoch`` misses).

A train split in which no instance has a labelled joint is refused (every target weight would be 0).

Training drops the last, partial batch (each epoch a different remainder, as the order is reshuffled):
a one-sample batch makes BatchNorm's batch statistics meaningless, and on GPU every new batch shape
costs a cuDNN autotune pass. Training workers are never persistent: they must be re-created each
epoch to pick up the dataset's new epoch seed (``DatasetEpochSeeder``); ``data.persistent_workers``
applies to validation only, whose samples are deterministic.

With ``data.pipeline=device`` the training loader yields geometry batches (decoded images + crop
matrices, ``hrnet_train/data/device_pipeline.py``) that ``on_after_batch_transfer`` turns into crops
and targets on the device; validation batches always come from the CPU path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.config_schema import DataConfig, EvalConfig, SegDataConfig
from hrnet_train.data.augment import AugmentConfig
from hrnet_train.data.coco import TopDownCocoDataset, resolve_coco_paths, seed_worker
from hrnet_train.data.device_pipeline import (
    DeviceBatchTransform,
    JpegDecoder,
    collate_geometry,
    decode_jpeg_batch,
    is_geometry_batch,
)
from hrnet_train.data.skips import SkipCounts
from hrnet_train.keypoints import KeypointSet

DataSection = DataConfig | SegDataConfig  # what the loaders read: batch size, workers, pin memory


class EpochSeededRandomSampler(Sampler[int]):
    """A fresh permutation per epoch drawn from ``seed + epoch`` (not from the global torch RNG).

    Lightning calls ``set_epoch`` before every epoch, and :class:`EpochStartLoader` at the first batch
    of each, so the order depends only on (seed, epoch).
    """

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class EpochStartLoader(DataLoader):
    """A DataLoader whose iterator starts at its first batch: ``start_epoch()`` runs first (setting the
    sampler's epoch), then the workers are forked with the dataset as it is then and the order is drawn."""

    def __init__(self, *args: Any, start_epoch: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_epoch = start_epoch

    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing below runs when Lightning calls iter(), only at the first next().
        self.start_epoch()
        yield from super().__iter__()


def _require_labelled_joints(dataset: TopDownCocoDataset) -> None:
    """Refuse a train split without a single labelled joint: the loss would be 0 and nothing learned."""
    labelled = sum(1 for record in dataset.records if (record.joints[:, 2] > 0).any())
    if labelled == 0:
        raise ValueError(
            f"{dataset.ann_file}: no training instance has a labelled joint (0 of {len(dataset.records)} instances "
            f"with a visibility flag > 0): every target weight would be 0 and nothing would be learned; "
            f"check the visibility flags of the 'keypoints' lists (0 = unlabelled, 1 or 2 = labelled)"
        )


def _unreadable_on_any_rank(flags: torch.Tensor) -> torch.Tensor:
    """The union of every DDP process's unreadable-image flags (the flags themselves outside DDP)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flags
    parts: list[list[int] | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, torch.nonzero(flags).flatten().tolist())
    union = torch.zeros_like(flags)
    for indices in parts:
        union[indices or []] = True
    return union


def file_sha256(path: str | Path, length: int = 12) -> str:
    """Short content hash printed with every run so results can be tied to the exact annotation file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


class PoseDataModule(pl.LightningDataModule):
    """Builds the train/val TopDownCocoDatasets from the validated data and eval config sections."""

    def __init__(
        self, data: DataConfig, evaluation: EvalConfig, keypoints: KeypointSet, codec: HeatmapCodec, seed: int,
        uses_gpu: bool = False,
    ) -> None:
        super().__init__()
        self.uses_gpu = uses_gpu
        self.data = data
        self.evaluation = evaluation
        self.keypoints = keypoints
        self.codec = codec
        self.seed = seed
        root = Path(data.root).expanduser()
        self.train_ann, self.train_img = resolve_coco_paths(
            root, data.train_split, data.train_ann_file, data.train_img_dir,
            ann_key="data.train_ann_file", img_key="data.train_img_dir",
        )
        self.val_ann, self.val_img = resolve_coco_paths(
            root, data.val_split, data.val_ann_file, data.val_img_dir, ann_key="data.val_ann_file", img_key="data.val_img_dir"
        )
        self.train_dataset: TopDownCocoDataset | None = None
        self.val_dataset: TopDownCocoDataset | None = None
        self._device_transform: DeviceBatchTransform | None = None
        self._jpeg_decoder: JpegDecoder | None = None

    def file_hashes(self) -> dict[str, str]:
        """sha256 (short) of the annotation files and of the detection file when used."""
        hashes = {"train_ann": file_sha256(self.train_ann), "val_ann": file_sha256(self.val_ann)}
        if self.evaluation.boxes == "det" and self.evaluation.det_file:
            hashes["det_file"] = file_sha256(self.evaluation.det_file)
        return hashes

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = TopDownCocoDataset(
                self.train_ann,
                self.train_img,
                self.keypoints,
                self.codec,
                train=True,
                augment=AugmentConfig.from_mapping(self.data.augment),
                color_rgb=self.data.color_rgb,
                skip_corrupt=self.data.skip_corrupt,
                drop_invalid_boxes=self.data.drop_invalid_boxes,
                seed=self.seed,
                pipeline=self.data.pipeline,
                decode=self.data.decode,
                instances=self.data.instances,
            )
            _require_labelled_joints(self.train_dataset)
        if self.val_dataset is None:
            self.val_dataset = self.build_val_dataset()

    def build_val_dataset(self) -> TopDownCocoDataset:
        return TopDownCocoDataset(
            self.val_ann,
            self.val_img,
            self.keypoints,
            self.codec,
            train=False,
            boxes=self.evaluation.boxes,
            det_file=self.evaluation.det_file,
            det_score_thr=self.evaluation.det_score_thr,
            color_rgb=self.data.color_rgb,
            skip_corrupt=self.data.skip_corrupt,
            drop_invalid_boxes=self.data.drop_invalid_boxes,
            seed=self.seed,
            instances=self.data.instances,
        )

    def skip_counts(self) -> SkipCounts:
        """What the train and val datasets skipped: the records every process drops alike, and the images
        found unreadable by any process (loader workers included). Under DDP every rank must call it."""
        datasets = [d for d in (self.train_dataset, self.val_dataset) if d is not None]
        return SkipCounts.merged(d.skip_counts(_unreadable_on_any_rank(d.unreadable)) for d in datasets)

    def train_dataloader(self) -> DataLoader:
        assert self.train_dataset is not None, "setup('fit') must run first"
        return training_loader(self, self.train_dataset, self.data, self.seed, self.uses_gpu,
                               what="training instances", source=str(self.train_ann),
                               collate_fn=collate_geometry if self.data.pipeline == "device" else None)

    def val_dataloader(self) -> DataLoader:
        assert self.val_dataset is not None, "setup() must run first"
        return make_loader(self.val_dataset, self.data, self.data.val_batch_size, None, drop_last=False,
                           persistent=self.data.persistent_workers, uses_gpu=self.uses_gpu)

    # ------------------------------------------------------------------ device pipeline (data.pipeline=device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """data.decode=gpu: decode the batch's JPEGs with nvJPEG straight into device memory."""
        if is_geometry_batch(batch) and "jpeg" in batch:
            if self._jpeg_decoder is None:
                from hrnet_train.data.gpu_decode import nvjpeg_decoder  # torchvision only when asked for

                # The device Lightning trains on; outside a Trainer (benchmarks) the current CUDA device.
                device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cuda")
                self._jpeg_decoder = nvjpeg_decoder(device)
            return decode_jpeg_batch(batch, self._jpeg_decoder, self.data.color_rgb)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Device pipeline: crop, normalise and encode the training batch where it now is."""
        if not is_geometry_batch(batch):
            return batch
        if self._device_transform is None:
            self._device_transform = DeviceBatchTransform(self.codec)
        return self._device_transform.to(batch["pixels"].device)(batch)


def training_loader(
    owner: pl.LightningDataModule, dataset: Dataset, data: DataSection, seed: int, uses_gpu: bool, what: str,
    source: str, collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """The epoch-shuffled, last-batch-dropping training loader of every task (see the module docstring).

    ``owner`` is the data module: its trainer gives the process count and, at each epoch's first batch,
    the epoch of the sampler order (0 outside a Trainer). ``what`` and ``source`` name the samples and
    where they come from in the error for a batch larger than one process's share (e.g. "training
    instances", the annotation file).
    """
    world_size = owner.trainer.world_size if owner.trainer is not None else 1
    per_rank = -(-len(dataset) // world_size)  # DistributedSampler pads up to the ceiling
    if per_rank < data.batch_size:
        raise ValueError(
            f"data.batch_size: {data.batch_size} is larger than the {per_rank} {what} per process ({len(dataset)} in "
            f"{source}, {world_size} process(es)); the partial last batch is dropped, so no batch would be left"
        )
    sampler = EpochSeededRandomSampler(len(dataset), seed)

    def start_epoch() -> None:
        sampler.set_epoch(owner.trainer.current_epoch if owner.trainer is not None else 0)

    return make_loader(dataset, data, data.batch_size, sampler, drop_last=True, persistent=False, uses_gpu=uses_gpu,
                       collate_fn=collate_fn, start_epoch=start_epoch)


def make_loader(
    dataset: Dataset, data: DataSection, batch_size: int, sampler: Sampler | None, drop_last: bool, persistent: bool,
    uses_gpu: bool, collate_fn: Callable[[list[Any]], Any] | None = None, start_epoch: Callable[[], None] | None = None,
) -> DataLoader:
    """A DataLoader in dataset order (or ``sampler``'s) with the data section's workers and pinning; with
    ``start_epoch`` an :class:`EpochStartLoader` that calls it at each iterator's first batch."""
    workers = data.loader_workers()
    loader_class, extra = (DataLoader, {}) if start_epoch is None else (EpochStartLoader, {"start_epoch": start_epoch})
    return loader_class(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        pin_memory=data.pin_memory_for(uses_gpu),
        drop_last=drop_last,
        worker_init_fn=seed_worker if workers > 0 else None,
        persistent_workers=persistent and workers > 0,
        collate_fn=collate_fn,
        **extra,
    )
