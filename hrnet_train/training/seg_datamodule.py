"""LightningDataModule of segmentation runs: the train/val datasets a segmentation data section names.

The loaders follow the pose data module's rules (:func:`~hrnet_train.training.datamodule.training_loader`):
epoch-seeded shuffling, the partial last batch dropped, training workers re-created every epoch so
they see the epoch the ``DatasetEpochSeeder`` sets. Samples of different sizes are batched by
:func:`~hrnet_train.data.seg_dataset.pad_collate` (labels padded with 255).
"""

from __future__ import annotations

import hashlib

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from hrnet_train.config_schema import SegDataConfig
from hrnet_train.data.seg_dataset import SegmentationDataset, pad_collate
from hrnet_train.data.seg_sources import build_seg_dataset, seg_classes_of
from hrnet_train.training.datamodule import make_loader, training_loader


def samples_sha256(dataset: SegmentationDataset, length: int = 12) -> str:
    """Short hash of a split's file list (paths and sizes of images and labels), printed with every run so
    results can be tied to the exact files without reading them all."""
    digest = hashlib.sha256()
    for sample in dataset.samples:
        for path in (sample.image_file, sample.label_file):
            if path is not None:
                digest.update(f"{path}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:length]


class SegDataModule(pl.LightningDataModule):
    """Builds the train/val datasets of the validated segmentation data section."""

    def __init__(self, data: SegDataConfig, seed: int, uses_gpu: bool = False) -> None:
        super().__init__()
        self.data = data
        self.seed = seed
        self.uses_gpu = uses_gpu
        self.classes = seg_classes_of(data)
        self.train_dataset: SegmentationDataset | None = None
        self.val_dataset: SegmentationDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = build_seg_dataset(self.data, self.data.train_split, train=True, seed=self.seed)
        if self.val_dataset is None:
            self.val_dataset = build_seg_dataset(self.data, self.data.val_split, train=False, seed=self.seed)

    def file_hashes(self) -> dict[str, str]:
        """sha256 (short) of the train and val file lists."""
        self.setup()
        assert self.train_dataset is not None and self.val_dataset is not None
        return {"train_files": samples_sha256(self.train_dataset), "val_files": samples_sha256(self.val_dataset)}

    def train_dataloader(self) -> DataLoader:
        assert self.train_dataset is not None, "setup('fit') must run first"
        return training_loader(self, self.train_dataset, self.data, self.seed, self.uses_gpu,
                               what="training images", source=self.train_dataset.source, collate_fn=pad_collate)

    def val_dataloader(self) -> DataLoader:
        assert self.val_dataset is not None, "setup() must run first"
        return make_loader(self.val_dataset, self.data, self.data.val_batch_size, None, drop_last=False,
                           persistent=self.data.persistent_workers, uses_gpu=self.uses_gpu, collate_fn=pad_collate)
