"""COCO-format top-down keypoint dataset: person instances (GT or detector boxes) -> training samples.

The instance database follows the official ``lib/dataset/coco.py`` rules (spec 3.1-3.3) exactly,
including its quirks (1-px box shrink of ``clean_bbox``, raw detector boxes, v=1 and v=2 both
"labelled"), because training/evaluation numbers depend on them. Samples follow
``JointsDataset.__getitem__`` (spec 3.4) with the crop geometry and target encoding delegated to a
:class:`~hrnet_train.codecs.base.HeatmapCodec`.

Two areas are kept per instance: ``area`` is the annotation's (segmentation) area, what COCOeval uses;
``padded_area`` = (200 s_w)(200 s_h) is the padded crop-box area the reference feeds to OKS-NMS
(spec 6.3 / 9.8). ``meta["area"]`` carries the padded area so evaluation reproduces the reference;
``meta["gt_area"]`` carries the annotation area.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO

from hrnet_train.data.annotation_checks import (
    check_structure,
    detection_problems,
    keypoint_annotation_problems,
    resolve_problems,
)
from hrnet_train.data.augment import (
    AugmentConfig,
    bind_crop_augmentation_rng,
    build_crop_augmentation,
    flip_joints,
    sample_augmentation,
)
from hrnet_train.config_schema import INSTANCE_KINDS
from hrnet_train.data.face_records import face_records
from hrnet_train.data.records import InstanceRecord  # noqa: F401 (callers import the record type from here)
from hrnet_train.data.skips import SkipCounts
from hrnet_train.image_io import read_image, read_jpeg_bytes, reduced_to_full
from hrnet_train.pipeline_options import CROP_AUGMENTATIONS, check_pipeline
from hrnet_train.keypoints import KeypointSet
from hrnet_train.geometry import PIXEL_STD, affine_points, box_to_center_scale
from hrnet_train.normalization import normalize_image

log = logging.getLogger(__name__)

PERSON_CATEGORY_ID = 1


# --------------------------------------------------------------------------- paths and loading


def resolve_coco_paths(
    root: str | Path | None,
    split: str,
    ann_file: str | Path | None = None,
    img_dir: str | Path | None = None,
    need_images: bool = True,
    ann_key: str = "data.ann_file",
    img_key: str = "data.img_dir",
) -> tuple[Path, Path | None]:
    """Find ``(annotation file, image dir)`` of ``split`` (e.g. "val2017"): the one path rule of
    training, evaluation and the tools.

    Defaults under ``root``: the standard COCO download layout (``annotations/person_keypoints_{split}.json``
    + ``{split}/``) or the official repo's (``images/{split}/``). ``ann_file``/``img_dir`` override them;
    an absolute override is used as is, a relative one is looked up under ``root`` first, then in the
    working directory. Without ``need_images`` (scoring a results file) a missing image dir gives None.
    Raises FileNotFoundError listing every path tried; when ``root/annotations`` holds keypoint files
    with other names, the message says which key (``ann_key``) to set to which file.
    """
    base = None if root is None else Path(root).expanduser()
    if base is None and ann_file is None:
        raise FileNotFoundError(f"COCO split {split!r}: give the dataset root (data.root) or {ann_key} as a path")

    def candidates(override: str | Path | None, defaults: list[Path]) -> list[Path]:
        if override is None:
            return defaults
        override = Path(override).expanduser()
        if override.is_absolute() or base is None:
            return [override]
        return [base / override, override]

    ann_defaults = [base / "annotations" / f"person_keypoints_{split}.json"] if base is not None else []
    img_defaults = [base / "images" / split, base / split] if base is not None else []
    ann_tried = candidates(ann_file, ann_defaults)
    img_tried = candidates(img_dir, img_defaults)
    ann = next((p for p in ann_tried if p.is_file()), None)
    img = next((p for p in img_tried if p.is_dir()), None)
    problems = []
    if ann is None:
        problems.append("annotation file not found; tried: " + ", ".join(str(p) for p in ann_tried) + _other_files_hint(base, ann_key))
    if img is None and (need_images or img_dir is not None):
        problems.append(f"image directory not found ({img_key}); tried: " + ", ".join(str(p) for p in img_tried))
    if problems:
        raise FileNotFoundError(f"COCO split {split!r} under {base}: " + "; ".join(problems))
    return ann, img  # type: ignore[return-value]


def _other_files_hint(root: Path | None, ann_key: str) -> str:
    """`` -- found annotations/x.json: set data.train_ann_file=annotations/x.json`` when other JSONs are there."""
    folder = None if root is None else root / "annotations"
    if folder is None or not folder.is_dir():
        return ""
    found = sorted(p.name for p in folder.glob("*.json"))
    if not found:
        return ""
    listed = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
    return f" -- {folder} holds {listed}: set {ann_key}=annotations/{found[0]} (or the right one of them)"


def load_coco(ann_file: str | Path) -> COCO:
    """Load and index a COCO annotation file, checking its structure first (pycocotools does not)."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file not found: {ann_file}")
    try:
        with ann_file.open() as handle:
            dataset = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{ann_file}: not valid JSON ({error})") from None
    if not isinstance(dataset, dict):
        raise ValueError(
            f"{ann_file}: not a COCO annotation file: expected a JSON object with 'images' and 'annotations', "
            f"got a JSON {type(dataset).__name__} (a results/detections file?)"
        )
    missing = [key for key in ("images", "annotations") if not isinstance(dataset.get(key), list)]
    if missing:
        raise ValueError(f"{ann_file}: not a COCO annotation file: missing or non-list key(s) {missing}")
    check_structure(dataset, ann_file)
    return _indexed(dataset)


def _indexed(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def without(coco: COCO, image_ids: Collection[int] = (), annotation_ids: Collection[int] = ()) -> COCO:
    """A re-indexed copy of ``coco`` lacking these images (with their annotations) and annotations:
    what is skipped leaves the ground truth too, so the metric does not count it as missed."""
    if not image_ids and not annotation_ids:
        return coco
    images, annotations = set(image_ids), set(annotation_ids)
    dataset = dict(coco.dataset)
    dataset["images"] = [image for image in coco.dataset["images"] if image["id"] not in images]
    dataset["annotations"] = [ann for ann in coco.dataset["annotations"]
                              if ann["image_id"] not in images and ann["id"] not in annotations]
    return _indexed(dataset)


def checked_annotations(
    coco: COCO, keypoints: KeypointSet, ann_file: str | Path, drop_invalid_boxes: bool, skip_corrupt: bool,
    skips: SkipCounts,
) -> COCO:
    """``coco`` whose keypoint annotations passed :func:`keypoint_annotation_problems`; the others raise a
    ValueError naming file, image, annotation, field and what was expected, or are left out and counted
    in ``skips`` under the option for their kind."""
    problems = keypoint_annotation_problems(coco, keypoint_category_id(coco, keypoints, ann_file), keypoints)
    dropped = resolve_problems(
        problems, lambda ann_id: f"{ann_file}: image {coco.anns[ann_id]['image_id']} annotation {ann_id}",
        drop_invalid_boxes, skip_corrupt, skips,
    )
    return without(coco, annotation_ids=dropped)


def keypoint_category_id(coco: COCO, keypoints: KeypointSet, ann_file: str | Path = "<annotations>") -> int:
    """The category whose annotations are the keypoint instances: COCO's person (1) when present, the
    file's only category, or the one category that lists this keypoint set's joint names (custom
    exports number their categories as they like: Label Studio from 0)."""
    if PERSON_CATEGORY_ID in coco.cats or not coco.cats:
        return PERSON_CATEGORY_ID
    if len(coco.cats) == 1:
        return int(next(iter(coco.cats)))
    matching = [cid for cid, cat in coco.cats.items() if list(cat.get("keypoints") or []) == list(keypoints.names)]
    if len(matching) == 1:
        return int(matching[0])
    listed = ", ".join(f"{cid} ({cat.get('name')})" for cid, cat in coco.cats.items())
    raise ValueError(f"{ann_file}: no person category (id 1) and no single category listing the joints of "
                     f"keypoint set {keypoints.name!r}; categories: {listed}")


def clean_bbox(bbox: Sequence[float], width: int, height: int) -> tuple[float, float, float, float] | None:
    """Reference box sanitising (spec 3.1): clip to the image with the 1-px shrink; None if empty."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 >= x1 and y2 >= y1:
        return x1, y1, x2 - x1, y2 - y1
    return None


def gt_records(
    coco: COCO,
    img_dir: str | Path,
    keypoints: KeypointSet,
    aspect_ratio: float,
    ann_file: str | Path = "<annotations>",
    drop_invalid_boxes: bool = False,
) -> list[InstanceRecord]:
    """Ground-truth person instances by the reference rules (spec 3.1-3.2).

    Per image (in ``coco.getImgIds()`` order): non-crowd person annotations whose keypoint list is not
    all zero, box cleaned by :func:`clean_bbox`, kept when ``area > 0``. Values are expected checked
    (:func:`checked_annotations`); a box that clean_bbox empties is still raised here (naming file,
    image and annotation id) unless ``drop_invalid_boxes`` (the reference silently drops it).
    """
    img_dir = Path(img_dir)
    expected = 3 * keypoints.num_joints
    category_id = keypoint_category_id(coco, keypoints, ann_file)
    records = []
    for image_id in coco.getImgIds():
        image = coco.imgs[image_id]
        width, height = int(image["width"]), int(image["height"])
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
            where = f"{ann_file}: image {image_id} annotation {ann['id']}"
            if ann["category_id"] != category_id:
                continue
            raw = ann.get("keypoints")
            if raw is None:
                raise ValueError(
                    f"{where}: person annotation has no 'keypoints' field (a box-only annotation: Label Studio's COCO "
                    "export writes boxes and keypoints separately -- check the file with python -m "
                    "hrnet_train.data.custom_keypoints ann_file=...)"
                )
            if len(raw) != expected:
                raise ValueError(
                    f"{where}: keypoint list has {len(raw)} values, expected {expected} "
                    f"(3 x {keypoints.num_joints} joints of keypoint set {keypoints.name!r})"
                )
            box = clean_bbox(ann["bbox"], width, height)
            if box is None:
                if drop_invalid_boxes:
                    continue
                raise ValueError(
                    f"{where}: bbox {ann['bbox']} lies outside the {width}x{height} image "
                    f"(pass drop_invalid_boxes=True to skip such boxes like the reference)"
                )
            if float(ann["area"]) <= 0.0 or max(raw) == 0:  # the reference's filters (spec 3.1)
                continue
            joints = np.asarray(raw, dtype=np.float64).reshape(-1, 3)
            joints[:, 2] = np.minimum(joints[:, 2], 1.0)
            center, scale = box_to_center_scale(box, aspect_ratio)
            records.append(
                InstanceRecord(
                    image_id=int(image_id),
                    image_file=img_dir / image["file_name"],
                    center=center,
                    scale=scale,
                    joints=joints,
                    box_score=1.0,
                    area=float(ann["area"]),
                    bbox=np.asarray(box, dtype=np.float64),
                    image_size=(height, width),
                    annotation_id=int(ann["id"]),
                )
            )
    return records


def detection_records(
    coco: COCO, det_file: str | Path, img_dir: str | Path, keypoints: KeypointSet, aspect_ratio: float, score_thr: float,
    drop_invalid_boxes: bool = False, skip_corrupt: bool = False, skips: SkipCounts | None = None,
) -> list[InstanceRecord]:
    """Detector boxes (spec 3.3): category 1, score >= ``score_thr``, raw box, joints zero / labelled.

    Entries are checked by :func:`detection_problems` (an object, integer image id, numeric finite
    score, a bbox of four numbers overlapping its image); a bad one raises a ValueError naming the
    file, entry and field, or with ``drop_invalid_boxes`` (boxes) / ``skip_corrupt`` (the rest) is
    left out and counted in ``skips``.
    """
    det_file = Path(det_file)
    if not det_file.is_file():
        raise FileNotFoundError(f"detection file not found: {det_file}")
    try:
        with det_file.open() as handle:
            detections = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{det_file}: not valid JSON ({error})") from None
    if not isinstance(detections, list):
        raise ValueError(f"{det_file}: expected a JSON list of COCO detection results, got {type(detections).__name__}")
    used, boxes, problems = detection_problems(detections, coco, PERSON_CATEGORY_ID, score_thr)
    dropped = resolve_problems(problems, lambda i: f"{det_file}: entry {i}", drop_invalid_boxes, skip_corrupt,
                               SkipCounts() if skips is None else skips)
    img_dir = Path(img_dir)
    joints = np.zeros((keypoints.num_joints, 3), dtype=np.float64)
    joints[:, 2] = 1.0
    records = []
    for index, box in zip(used.tolist(), boxes):
        if index in dropped:
            continue
        det = detections[index]
        image = coco.imgs.get(det["image_id"])
        if image is None:
            raise ValueError(f"{det_file}: entry {index} refers to image {det['image_id']}, absent from the annotations")
        center, scale = box_to_center_scale(box, aspect_ratio)
        records.append(
            InstanceRecord(
                image_id=int(det["image_id"]),
                image_file=img_dir / image["file_name"],
                center=center,
                scale=scale,
                joints=joints.copy(),
                box_score=float(det["score"]),
                area=float(box[2] * box[3]),
                bbox=box.copy(),
                image_size=(int(image["height"]), int(image["width"])),
            )
        )
    return records


# --------------------------------------------------------------------------- samples


class TopDownCocoDataset(torch.utils.data.Dataset):
    """Person crops + heatmap targets from a COCO-format keypoint file (spec 3.4).

    ``boxes="gt"`` uses annotation boxes, ``"det"`` detector boxes from ``det_file``. ``train=True``
    applies :class:`AugmentConfig`; validation has none. Randomness comes from ``self.rng``, a numpy
    Generator seeded from (seed, epoch, worker id): pass :func:`seed_worker` as the DataLoader's
    ``worker_init_fn`` and call :meth:`set_epoch` each epoch (non-persistent workers), so augmentations
    differ across workers and epochs while a seed reproduces a run. ``seed=None`` takes
    ``torch.initial_seed()`` at construction (so ``seed_everything`` controls it).

    Person annotations and detections are checked when read (:mod:`hrnet_train.data.annotation_checks`):
    a bad record raises, naming file, record, field and what was expected. ``drop_invalid_boxes`` skips
    unusable boxes (outside the image, empty, non-finite) instead, ``skip_corrupt`` the other bad
    records, missing image files (``check_files``) and images found unreadable when loaded; what they
    skip leaves ``self.coco`` too and is counted (:meth:`skip_counts`).

    Options beyond the contract: ``use_joint_weights`` multiplies target weights by
    ``keypoints.joint_weights``; ``check_files`` verifies every image exists at construction;
    ``max_decode_reduction`` (1 = off,
    reference pixels) lets JPEGs be decoded at 1/2, 1/4 or 1/8 size when the crop shrinks the box at
    least that much: the crop then samples a DCT box-filtered image (different, slightly smoother pixels,
    identical geometry and targets), decode is cheaper.
    Normalisation is ImageNet mean/std as one float32 multiply-add (:func:`normalize_image`).

    ``pipeline="device"`` (training on the accelerator, see ``hrnet_train/data/device_pipeline.py``):
    a sample is only the decoded uint8 image (``"pixels"``), how to sample it (``"crop_matrix"``,
    ``"mirror"``: :func:`pixel_transform`) and ``"meta"`` (crop-pixel joints included), drawn from the
    same random stream as the CPU path; the batch is cropped and encoded on the device. ``decode="gpu"`` (device pipeline
    only) hands over the JPEG bytes (``"jpeg"``) instead, for nvJPEG decoding there.

    ``instances="face"`` reads a COCO-style face file instead (:func:`~hrnet_train.data.face_records.face_records`:
    center/scale from the annotation or the landmark extent, x1.25; GT boxes only); pair it with the
    face codec and ``FACE_AUGMENT``. Flip mirroring and the image warp follow the codec
    (``image_flip_offset``, ``image_transform``), which for the pose codecs are the reference's.
    """

    def __init__(
        self,
        ann_file: str | Path,
        img_dir: str | Path,
        keypoints: KeypointSet,
        codec: Any,  # HeatmapCodec
        train: bool,
        boxes: str = "gt",
        det_file: str | Path | None = None,
        det_score_thr: float = 0.0,
        augment: AugmentConfig | None = None,
        color_rgb: bool = True,
        skip_corrupt: bool = False,
        use_joint_weights: bool = False,
        seed: int | None = None,
        check_files: bool = True,
        drop_invalid_boxes: bool = False,
        max_decode_reduction: int = 1,
        pipeline: str = "cpu",
        decode: str = "cpu",
        instances: str = "person",
    ) -> None:
        self.ann_file = Path(ann_file)
        self.img_dir = Path(img_dir)
        if not self.img_dir.is_dir():
            raise FileNotFoundError(f"image directory not found: {self.img_dir}")
        self.keypoints = keypoints
        self.codec = codec
        self.train = train
        self.augment_schedule = augment if augment is not None else AugmentConfig()  # as configured, with its stage 2
        self.augment = self.augment_schedule  # the settings in force (set_epoch switches to stage 2)
        self.color_rgb = color_rgb
        self.skip_corrupt = skip_corrupt
        self.use_joint_weights = use_joint_weights
        if max_decode_reduction not in (1, 2, 4, 8):
            raise ValueError(f"TopDownCocoDataset: max_decode_reduction must be 1, 2, 4 or 8, got {max_decode_reduction}")
        self.max_decode_reduction = max_decode_reduction
        crop_augmentations = [name for name in CROP_AUGMENTATIONS if train and getattr(self.augment, name)]
        check_pipeline(pipeline, decode, crop_augmentations)
        self.pipeline, self.decode = pipeline, decode
        if instances not in INSTANCE_KINDS or (instances == "face" and boxes != "gt"):
            raise ValueError(f"TopDownCocoDataset: instances must be one of {INSTANCE_KINDS} (face: boxes='gt'), "
                             f"got instances={instances!r}, boxes={boxes!r}")
        self.instances = instances
        height, width = codec.input_size
        self.aspect_ratio = width / height
        self.coco = load_coco(self.ann_file)
        self._check_categories()
        self.skips = SkipCounts()  # what the options skipped while reading the files
        if boxes not in ("gt", "det") or (boxes == "det" and det_file is None):
            raise ValueError(f"TopDownCocoDataset: boxes must be 'gt' or 'det' (with det_file, a COCO detection "
                             f"results JSON), got boxes={boxes!r}, det_file={det_file!r}")
        if instances == "face":
            self.records = face_records(self.coco, self.img_dir, keypoints, self.ann_file)
        else:
            self.coco = checked_annotations(self.coco, keypoints, self.ann_file, drop_invalid_boxes, skip_corrupt, self.skips)
            if boxes == "gt":
                self.records = gt_records(
                    self.coco, self.img_dir, keypoints, self.aspect_ratio, self.ann_file, drop_invalid_boxes
                )
            else:
                self.records = detection_records(
                    self.coco, det_file, self.img_dir, keypoints, self.aspect_ratio, det_score_thr,
                    drop_invalid_boxes, skip_corrupt, self.skips,
                )
        if check_files:
            self._check_image_files()
        if not self.records:
            source = self.ann_file if boxes == "gt" else f"{det_file} (score >= {det_score_thr})"
            raise ValueError(f"{source}: no {instances} instances to use (empty split)")
        # Records whose image turned out unreadable (skip_corrupt), in shared memory so that the
        # DataLoader workers' finds reach the run's summary.
        self.unreadable = torch.zeros(len(self.records), dtype=torch.bool).share_memory_()
        self._crop_augmentation = build_crop_augmentation(self.augment) if train else None
        self.seed = int(torch.initial_seed() % 2**63) if seed is None else int(seed)
        self.epoch = 0
        self.worker_id = 0
        self.reseed()

    # ------------------------------------------------------------------ randomness

    def reseed(self, worker_id: int | None = None) -> None:
        """(Re)create ``self.rng`` from (seed, epoch, worker id)."""
        if worker_id is not None:
            self.worker_id = worker_id
        self.rng = np.random.default_rng([self.seed, self.epoch, self.worker_id])
        bind_crop_augmentation_rng(self._crop_augmentation, self.rng)

    def set_epoch(self, epoch: int, max_epochs: int | None = None) -> None:
        """Start the random stream of ``epoch`` (call before each epoch's DataLoader iteration); with
        the run's ``max_epochs``, also the augmentation stage of that epoch (``AugmentConfig.for_epoch``)."""
        self.epoch = int(epoch)
        if self.train:
            active = self.augment_schedule.for_epoch(self.epoch, max_epochs)
            if active != self.augment:
                self.augment = active
                self._crop_augmentation = build_crop_augmentation(active)
        self.reseed()

    @property
    def augment_stage(self) -> int:
        """1, or 2 once ``set_epoch`` has switched to the ``stage2`` settings."""
        return 1 if self.augment is self.augment_schedule else 2

    # ------------------------------------------------------------------ checks

    def _check_categories(self) -> None:
        category_id = keypoint_category_id(self.coco, self.keypoints, self.ann_file)
        category = self.coco.cats.get(category_id)
        names = category.get("keypoints") if category else None
        if self.instances == "face" and not names:
            return  # mmpose's face files list no landmark names in their category
        if names is not None and len(names) != self.keypoints.num_joints:
            raise ValueError(
                f"{self.ann_file}: category {category_id} lists {len(names)} keypoints, keypoint set "
                f"{self.keypoints.name!r} has {self.keypoints.num_joints}"
            )

    def _check_image_files(self) -> None:
        missing = {}
        for record in self.records:
            if record.image_id not in missing and not record.image_file.is_file():
                missing[record.image_id] = record.image_file
        if not missing:
            return
        listed = ", ".join(f"image {i}: {p}" for i, p in list(missing.items())[:5])
        if not self.skip_corrupt:
            raise FileNotFoundError(
                f"{self.ann_file}: {len(missing)} image file(s) missing under {self.img_dir} ({listed}"
                f"{', ...' if len(missing) > 5 else ''}); pass skip_corrupt=True to drop their instances"
            )
        before = len(self.records)
        self.records = [r for r in self.records if r.image_id not in missing]
        self.coco = without(self.coco, image_ids=missing)
        self.skips.add("missing image", len(missing))
        log.warning("%s: dropped %d instances of %d missing images (%s)", self.ann_file, before - len(self.records), len(missing), listed)

    def skip_counts(self, unreadable: torch.Tensor | None = None) -> SkipCounts:
        """What was skipped so far: records left out while reading the files, and images found unreadable
        while loading samples (in any worker; counted per image). ``unreadable``: flags to count instead
        of this process's own (the union over DDP processes, each of which reads its share)."""
        counts = SkipCounts(self.skips)
        flags = self.unreadable if unreadable is None else unreadable
        unread = {self.records[i].image_id for i in torch.nonzero(flags).flatten().tolist()}
        counts.add("corrupt image", len(unread))
        return counts

    # ------------------------------------------------------------------ samples

    def __len__(self) -> int:
        return len(self.records)

    def _read(self, index: int, reduce: int = 1) -> np.ndarray:
        """Decoded HxWx3 pixels, or with ``decode="gpu"`` the checked JPEG bytes (decoded on the device)."""
        record = self.records[index]
        try:
            if self.decode == "gpu":
                return read_jpeg_bytes(record.image_file)
            return read_image(record.image_file, color_rgb=self.color_rgb, reduce=reduce)
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(
                f"{error} (image id {record.image_id}, annotation {record.annotation_id}, record {index}; "
                "data.skip_corrupt=true skips unreadable images and leaves them out of the evaluation)"
            ) from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load_sample(index, self.rng)

    def load_sample(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Build sample ``index`` drawing augmentation from ``rng``.

        With ``skip_corrupt`` an unreadable image is logged, flagged in ``self.unreadable`` and another
        index is drawn from ``rng`` instead (an evaluation then leaves the image out: see
        :func:`~hrnet_train.evaluation.validation.unread_images`).
        """
        for _ in range(len(self.records)):
            if not self.unreadable[index]:
                try:
                    return self._sample(index, rng)
                except (FileNotFoundError, ValueError) as error:
                    if not self.skip_corrupt:
                        raise
                    self.unreadable[index] = True
                    log.warning("skipping unreadable image (%d records skipped so far): %s",
                                int(self.unreadable.sum()), error)
            index = int(rng.integers(len(self.records)))
        raise RuntimeError(f"{self.ann_file}: no readable image left ({int(self.unreadable.sum())} records skipped)")

    def _decode_factor(self, scale: np.ndarray) -> int:
        """Largest JPEG reduction (<= ``max_decode_reduction``) that still leaves >= 1 source px per crop px."""
        shrink = scale[0] * PIXEL_STD / self.codec.input_size[1]
        factor = 1
        while factor * 2 <= self.max_decode_reduction and shrink >= factor * 2:
            factor *= 2
        return factor

    def _sample(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        record = self.records[index]
        joints = record.joints[:, :2].copy()
        visible = record.joints[:, 2].copy()
        center, scale, rotation, flip = record.center.copy(), record.scale.copy(), 0.0, False
        if self.train:
            params = sample_augmentation(
                rng, joints, visible, center, scale, self.keypoints, self.augment, self.aspect_ratio
            )
            center, scale, rotation, flip = params.center, params.scale, params.rotation, params.flip
        reduce = 1 if self.decode == "gpu" else self._decode_factor(scale)
        image = self._read(index, reduce)
        # The reference flips with the decoded width; a reduced (or deferred GPU) decode only knows the
        # annotated width.
        image_width = image.shape[1] if reduce == 1 and self.decode == "cpu" else record.image_size[1]
        mirror = self.codec.image_flip_offset
        if flip:
            joints, visible = flip_joints(joints, visible, image_width, self.keypoints, mirror)
            center[0] = image_width - mirror - center[0]
        trans = self.codec.crop_transform(center, scale, rotation)
        labelled = visible > 0
        joints[labelled] = affine_points(joints[labelled], trans)
        meta = {
            "image_id": record.image_id,
            "center": center,
            "scale": scale,
            "score": record.box_score,
            "area": record.padded_area,
            "gt_area": record.area,
            "rotation": rotation,
            "flipped": flip,
            # (J, 3) [x, y, v] in input-crop pixels after augmentation (unlabelled: v = 0).
            "joints": np.concatenate([joints, visible[:, None]], axis=1),
            "index": index,
        }
        decoded_size = image.shape[:2] if reduce == 1 and self.decode == "cpu" else record.image_size
        image_trans = self.codec.image_transform(center, scale, rotation, decoded_size)
        pixel_trans, mirror_image = pixel_transform(image_trans, flip, image_width, reduce)
        if self.pipeline == "device":
            # Geometry only: the device crops (matrix + mirror) and encodes (meta joints) the whole batch.
            source = "pixels" if self.decode == "cpu" else "jpeg"
            return {source: torch.from_numpy(image), "crop_matrix": torch.from_numpy(pixel_trans), "mirror": mirror_image,
                    "meta": meta}
        if mirror_image:
            image = cv2.flip(image, 1)  # same pixels as the reference's image[:, ::-1]
        height, width = self.codec.input_size
        crop = cv2.warpAffine(image, pixel_trans, (width, height), flags=cv2.INTER_LINEAR)
        if self._crop_augmentation is not None:
            crop = self._crop_augmentation(image=crop)["image"]
        target, target_weight = self.codec.encode(joints, visible)
        if self.use_joint_weights:
            target_weight = target_weight * self.keypoints.joint_weights
        return {
            "image": torch.from_numpy(normalize_image(crop)),
            "target": torch.from_numpy(np.asarray(target, dtype=np.float32)),
            "target_weight": torch.from_numpy(np.asarray(target_weight, dtype=np.float32)),
            "meta": meta,
        }


def pixel_transform(trans: np.ndarray, flip: bool, image_width: int, reduce: int) -> tuple[np.ndarray, bool]:
    """How the decoded image is sampled for the crop: (2x3 matrix, whether to mirror the image first).

    A full-size decode is mirrored (the reference's flip) and sampled with ``trans``. A decode at
    1/``reduce`` size is sampled unflipped through crop <- flipped full image <- full image <- reduced
    image (:func:`reduced_to_full`), so no flipped or resized copy of it is made.
    """
    if reduce == 1:
        return trans, flip
    full_to_source = np.eye(3)
    if flip:
        full_to_source = np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return (np.vstack([trans, [0.0, 0.0, 1.0]]) @ full_to_source @ reduced_to_full(reduce))[:2], False


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker its own stream (seed, epoch, worker id)."""
    info = torch.utils.data.get_worker_info()
    if info is not None and isinstance(info.dataset, TopDownCocoDataset):
        info.dataset.reseed(worker_id + 1)  # worker 0 must not repeat the main process stream
