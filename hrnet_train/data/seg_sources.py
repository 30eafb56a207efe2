"""Which segmentation dataset a validated data section names: class set, augmentation and split datasets.

Training (the segmentation data module) and ``evaluate.py`` both build their datasets here, so a split
means the same files in both. The readers are :mod:`~hrnet_train.data.seg_synthetic`,
:mod:`~hrnet_train.data.seg_cityscapes`, :mod:`~hrnet_train.data.seg_folder` and
:mod:`~hrnet_train.data.seg_coco_person` (``data.dataset``: synthetic | cityscapes | folder | coco_person).
"""

from __future__ import annotations

from pathlib import Path

from hrnet_train.config_schema import SegDataConfig
from hrnet_train.data.coco import resolve_coco_paths
from hrnet_train.data.seg_augment import SegAugmentConfig
from hrnet_train.data.seg_cityscapes import CITYSCAPES_CLASSES, CityscapesDataset
from hrnet_train.data.seg_coco_person import COCO_PERSON_CLASSES, CocoPersonSegDataset
from hrnet_train.data.seg_dataset import SegmentationDataset
from hrnet_train.data.seg_folder import FolderSegDataset
from hrnet_train.data.seg_synthetic import (
    SYNTHETIC_PART_CLASSES,
    SYNTHETIC_PERSON_CLASSES,
    synthetic_image_size,
    synthetic_seg_dataset,
)
from hrnet_train.seg_classes import SegClasses, seg_classes_from_mapping


def seg_classes_of(data: SegDataConfig) -> SegClasses:
    """The label space of the data section (fixed by the reader, or ``data.classes`` for folders)."""
    if data.dataset == "synthetic":
        return SYNTHETIC_PART_CLASSES if data.parts else SYNTHETIC_PERSON_CLASSES
    if data.dataset == "cityscapes":
        return CITYSCAPES_CLASSES
    if data.dataset == "coco_person":
        return COCO_PERSON_CLASSES
    return seg_classes_from_mapping(data.classes)


def seg_augment_config(data: SegDataConfig) -> SegAugmentConfig:
    """Training augmentation: ``data.augment`` with the crop ``data.crop_size``. The synthetic images' scale-1
    long side defaults to their own (the official 2048 is Cityscapes')."""
    options = dict(data.augment)
    if "crop_size" in options:
        raise ValueError("data.augment.crop_size: the training crop is data.crop_size")
    if data.dataset == "synthetic" and "base_size" not in options:
        options["base_size"] = max(synthetic_image_size(data.root))
    return SegAugmentConfig.from_mapping({**options, "crop_size": data.crop_size})


def build_seg_dataset(data: SegDataConfig, split: str, train: bool, seed: int | None = None) -> SegmentationDataset:
    """The samples of ``split`` (augmented when ``train``). The list files and COCO file overrides of
    ``data.train_split`` / ``data.val_split`` apply to those splits; any other split uses the reader's layout."""
    augment = seg_augment_config(data) if train else None
    root = Path(data.root).expanduser()
    if data.dataset == "synthetic":
        return synthetic_seg_dataset(root, split, train, parts=data.parts, augment=augment, seed=seed)
    if data.dataset == "cityscapes":
        list_file = {data.train_split: data.train_list, data.val_split: data.val_list}.get(split)
        return CityscapesDataset(root, split, train, list_file=list_file, label_kind=data.label_kind, augment=augment, seed=seed)
    if data.dataset == "folder":
        return FolderSegDataset(
            root / data.image_dir / split, root / data.label_dir / split, seg_classes_of(data), train, augment, seed,
            label_suffix=data.label_suffix, label_values=data.label_values or None,
        )
    named = {data.train_split: ("train", data.train_ann_file, data.train_img_dir),
             data.val_split: ("val", data.val_ann_file, data.val_img_dir)}
    which, ann_override, img_override = named.get(split, ("val", None, None))
    ann_file, img_dir = resolve_coco_paths(
        root, split, ann_override, img_override, ann_key=f"data.{which}_ann_file", img_key=f"data.{which}_img_dir"
    )
    return CocoPersonSegDataset(ann_file, img_dir, train, augment, seed, person_images_only=data.person_images_only)
