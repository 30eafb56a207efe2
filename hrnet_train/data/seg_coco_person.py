"""Person segmentation from COCO instance masks: 0 background, 1 person, 255 crowd regions.

Label maps are drawn from the annotation file with pycocotools (polygons and RLE alike): the union of
the non-crowd person masks is 1, crowd person regions (``iscrowd=1``, whose masks are coarse and hold
unlabelled people) are 255 so they count in no loss or metric, and a non-crowd person inside a crowd
region stays 1 (it is labelled individually). Other categories are background. The keypoint files
(``person_keypoints_*.json``) carry these masks, so the pose datasets' files serve here too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from hrnet_train.data.coco import PERSON_CATEGORY_ID, load_coco
from hrnet_train.data.seg_augment import SegAugmentConfig
from hrnet_train.data.seg_dataset import SegmentationDataset, SegSample
from hrnet_train.seg_classes import IGNORE_LABEL, SegClasses, make_seg_classes

COCO_PERSON_CLASSES: SegClasses = make_seg_classes(
    "coco_person", ["background", "person"], palette=[(0, 0, 0), (220, 20, 60)]
)


class CocoPersonSegDataset(SegmentationDataset):
    """Images of a COCO annotation file with person label maps (see the module docstring).

    ``person_images_only`` keeps only images with at least one person annotation; image files are
    checked to exist at construction, and each decoded image must have the annotated size.
    """

    def __init__(
        self,
        ann_file: str | Path,
        img_dir: str | Path,
        train: bool,
        augment: SegAugmentConfig | None = None,
        seed: int | None = None,
        person_images_only: bool = False,
    ) -> None:
        self.ann_file, img_dir = Path(ann_file), Path(img_dir)
        self.coco = load_coco(self.ann_file)
        self.image_ids = [
            image_id for image_id in sorted(self.coco.getImgIds())
            if not person_images_only or self.coco.getAnnIds(imgIds=image_id, catIds=[PERSON_CATEGORY_ID])
        ]
        samples = [_sample(img_dir, self.coco.imgs[image_id]) for image_id in self.image_ids]
        missing = [s.image_file for s in samples if not s.image_file.is_file()]
        if missing:
            listed = ", ".join(str(p) for p in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise FileNotFoundError(f"{self.ann_file}: {len(missing)} image file(s) missing under {img_dir}: {listed}")
        super().__init__(samples, COCO_PERSON_CLASSES, train, augment, seed, source=str(self.ann_file))

    def read_label(self, index: int, image_size: tuple[int, int]) -> np.ndarray:
        image_id = self.image_ids[index]
        entry = self.coco.imgs[image_id]
        annotated = (int(entry["height"]), int(entry["width"]))
        if annotated != tuple(image_size):
            raise ValueError(
                f"{self.samples[index].image_file}: decoded {image_size[1]}x{image_size[0]} (WxH), but "
                f"{self.ann_file} gives image {image_id} the size {annotated[1]}x{annotated[0]}"
            )
        return self.person_label(image_id)

    def person_label(self, image_id: int) -> np.ndarray:
        """uint8 (H, W) label map of ``image_id``: 0 background, 1 person, 255 crowd."""
        entry = self.coco.imgs[image_id]
        label = np.zeros((int(entry["height"]), int(entry["width"])), dtype=np.uint8)
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, catIds=[PERSON_CATEGORY_ID]))
        for crowd, value in ((True, IGNORE_LABEL), (False, 1)):
            rles = [self._rle(ann) for ann in annotations if bool(ann.get("iscrowd", 0)) == crowd]
            if rles:
                label[mask_utils.decode(mask_utils.merge(rles)) > 0] = value
        return label

    def _rle(self, ann: dict) -> dict:
        """The annotation's mask as RLE at its image's size; a missing or mis-sized mask raises naming it."""
        entry = self.coco.imgs[ann["image_id"]]
        where = f"{self.ann_file}: image {ann['image_id']} annotation {ann['id']}"
        segmentation = ann.get("segmentation")
        if not segmentation:
            raise ValueError(f"{where}: person annotation has no 'segmentation' (polygons or RLE) to draw a mask from")
        if isinstance(segmentation, dict) and list(segmentation.get("size", [])) != [entry["height"], entry["width"]]:
            raise ValueError(
                f"{where}: RLE size {segmentation.get('size')} differs from the image's [height, width] "
                f"[{entry['height']}, {entry['width']}]"
            )
        return self.coco.annToRLE(ann)


def _sample(img_dir: Path, entry: dict) -> SegSample:
    image_file = img_dir / entry["file_name"]
    return SegSample(image_file, None, image_file.stem)
