"""Top-down pose estimation on whole images: boxes -> crops -> network (+ flip test) -> keypoints.

The same geometry as evaluation (``codec.image_transform`` for the crop, ``codec.decode`` +
``codec.to_image`` back, reference rescoring), so a pose predicted here equals the one the COCO
evaluation scores for the same box. Face models (``task="face"``) take face boxes the way the official
face code builds its crop box: the box centre and its longer side, x1.25, cropped with the official
face warp; their landmarks come back in the same person dicts. Crops of ALL images of a call share
forward batches and the mirrored crops of the flip test ride in the same batch as the originals: on
small images the fixed cost per forward pass dominates, so fewer, fuller batches are what makes
inference fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from hrnet_train.codecs import HeatmapCodec
from hrnet_train.normalization import normalize_image
from hrnet_train.keypoints import KeypointSet
from hrnet_train.geometry import box_to_center_scale
from hrnet_train.image_io import check_image_array, read_image
from hrnet_train.decoding.flip_test import flip_test
from hrnet_train.decoding.rescoring import IN_VIS_THRE, rescore
from hrnet_train.inference.detectors import FullImage, PersonDetector, validate_boxes
from hrnet_train.data.face_records import face_box_center_scale
from hrnet_train.trained_model import DEFAULT_CODEC, KEYPOINT_TASKS, TrainedModel, load_trained_model

PRECISIONS = ("32", "bf16")
CHANNEL_ORDERS = ("bgr", "rgb")
BOX_PADDING = 1.25  # reference: the person box is enlarged by 25 % before cropping (spec 3.2)

ImageInput = np.ndarray | str | Path


@dataclass
class _Crop:
    """One person crop waiting for the network: which image it came from and how to map back."""

    image_index: int
    box: np.ndarray  # (5,) xywh + score
    center: np.ndarray  # (2,)
    scale: np.ndarray  # (2,)
    pixels: np.ndarray  # (3, H, W) float32, normalised


class PoseEstimator:
    """Predict keypoints of every person in images, given boxes or a person detector.

    ``color_rgb``: whether the network was trained on RGB (True for the HRNet configs) or BGR input.
    ``max_batch``: network inputs per forward pass, mirrored crops included (so with flip test
    ``max_batch // 2`` persons per pass). ``precision`` '32' or 'bf16' (autocast; outputs in float32).
    """

    def __init__(
        self,
        model: nn.Module,
        codec: HeatmapCodec,
        keypoints: KeypointSet,
        device: str | torch.device = "cpu",
        precision: str = "32",
        flip_test: bool = True,
        max_batch: int = 32,
        color_rgb: bool = True,
        in_vis_thre: float = IN_VIS_THRE,
        task: str = "pose",
    ):
        if task not in KEYPOINT_TASKS:
            raise ValueError(f"task: expected one of {list(KEYPOINT_TASKS)}, got {task!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
        if max_batch < (2 if flip_test else 1):
            raise ValueError(f"max_batch: expected >= {2 if flip_test else 1} (flip test doubles each crop), got {max_batch}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.codec = codec
        self.keypoints = keypoints
        self.precision = precision
        self.flip_test = flip_test
        self.max_batch = max_batch
        self.color_rgb = color_rgb
        self.in_vis_thre = in_vis_thre
        self.task = task
        self.aspect_ratio = codec.input_size[1] / codec.input_size[0]

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        precision: str = "32",
        model: str | None = None,
        keypoints: str | KeypointSet | None = None,
        input_size: str | tuple[int, int] | None = None,
        codec: str | None = None,
        color_rgb: bool | None = None,
        flip_test: bool | None = None,
        max_batch: int = 32,
        prefer_ema: bool = True,
    ) -> PoseEstimator:
        """Build an estimator from a checkpoint file (through :func:`hrnet_train.trained_model.load_trained_model`).

        Without ``model``: one of our training checkpoints; model, codec, keypoint set, colour order and
        flip-test default come from its ``hyper_parameters`` (EMA weights when it has them).
        With ``model`` (e.g. 'hrnet_w32'): an official-format state dict (.pth); then ``keypoints``
        (default coco17), ``input_size`` (required, e.g. '256x192'), ``codec`` (default legacy) and
        ``color_rgb`` (default True) describe it.
        """
        if model is not None and input_size is None:
            raise ValueError(f"{path}: an official checkpoint needs input_size (e.g. '256x192') next to model")
        trained = load_trained_model(
            path, model=model, keypoints=keypoints, input_size=input_size, color_rgb=color_rgb, prefer_ema=prefer_ema,
            codec=None if codec is None else {**DEFAULT_CODEC, "name": codec},
        )
        return cls.from_trained(trained, device, precision, flip_test, max_batch)

    @classmethod
    def from_trained(
        cls, trained: TrainedModel, device: str | torch.device = "cpu", precision: str = "32",
        flip_test: bool | None = None, max_batch: int = 32,
    ) -> PoseEstimator:
        """An estimator around a loaded keypoint model (pose or face)."""
        if trained.codec is None or trained.keypoints is None:
            raise ValueError(f"{trained.source.get('ckpt')}: a {trained.task} model has no keypoints to estimate")
        return cls(trained.network, trained.codec, trained.keypoints, device, precision,
                   trained.flip_test if flip_test is None else flip_test, max_batch, trained.color_rgb, task=trained.task)

    # ------------------------------------------------------------------ public API

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        boxes: np.ndarray | Sequence | None = None,
        detector: PersonDetector | None = None,
        return_heatmaps: bool = False,
        channel_order: str = "bgr",
        exif_rotate: bool = False,
    ) -> list[list[dict]]:
        """Poses of every person in each image: one list of person dicts per image.

        ``images``: one image or a list; arrays are uint8 (H, W, 3), H, W >= 1, in ``channel_order``
        ('bgr' as OpenCV reads, or 'rgb'); paths are read by the one image reader of training and
        evaluation (:func:`hrnet_train.image_io.read_image`: a damaged or truncated file is an
        ImageReadError naming it), as stored -- EXIF orientation ignored, so keypoints match what
        evaluation computes on the same file -- unless ``exif_rotate`` (keypoints then refer to the
        upright image). ``boxes``: for one image an (N, 4|5) xywh(+score) array, for a list one such
        array per image; a box must overlap its image. Or a ``detector`` (see detectors.py); neither means
        one box covering each whole image. Each person dict has ``keypoints`` (J, 3) [x, y, score] in
        image pixels, ``keypoint_names`` (J names, the order of ``keypoints``), ``box`` (5,) [x, y, w, h,
        score] (xywh in image pixels and the detector's box score, 1 for given 4-value boxes), ``score``
        (box score x mean keypoint score above ``in_vis_thre``, the reference rescoring) and, with
        ``return_heatmaps``, ``heatmaps`` (C*J, h, w).
        """
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order: expected one of {list(CHANNEL_ORDERS)}, got {channel_order!r}")
        if boxes is not None and detector is not None:
            raise ValueError("predict: give boxes or a detector, not both")
        single = isinstance(images, (np.ndarray, str, Path))
        image_list = [images] if single else list(images)
        loaded = [self._load(image, index, channel_order, exif_rotate) for index, image in enumerate(image_list)]
        per_image_boxes = self._boxes_per_image(loaded, boxes, detector, single)
        crops = [
            self._crop(image, order, index, box)
            for index, ((image, order), image_boxes) in enumerate(zip(loaded, per_image_boxes))
            for box in image_boxes
        ]
        results: list[list[dict]] = [[] for _ in image_list]
        if not crops:
            return results
        heatmaps = self._heatmaps(np.stack([crop.pixels for crop in crops]))
        coords, maxvals = self.codec.decode(heatmaps)
        centers = np.stack([crop.center for crop in crops])
        scales = np.stack([crop.scale for crop in crops])
        points = self.codec.to_image(coords, centers, scales)
        box_scores = np.array([crop.box[4] for crop in crops])
        scores = rescore(maxvals, box_scores, self.in_vis_thre)
        for row, crop in enumerate(crops):
            person = {
                "keypoints": np.concatenate([points[row], maxvals[row, :, None].astype(np.float64)], axis=1),
                "keypoint_names": self.keypoints.names,
                "box": crop.box.copy(),
                "score": float(scores[row]),
            }
            if return_heatmaps:
                person["heatmaps"] = heatmaps[row]
            results[crop.image_index].append(person)
        return results

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _load(image: ImageInput, index: int, channel_order: str, exif_rotate: bool) -> tuple[np.ndarray, str]:
        """(uint8 HxWx3 array, its channel order); paths are decoded as BGR."""
        if isinstance(image, (str, Path)):
            return read_image(image, color_rgb=False, exif_rotate=exif_rotate), "bgr"
        return check_image_array(image, f"images[{index}]"), channel_order

    @staticmethod
    def _boxes_per_image(
        loaded: list[tuple[np.ndarray, str]], boxes: np.ndarray | Sequence | None, detector: PersonDetector | None,
        single: bool,
    ) -> list[np.ndarray]:
        if boxes is None:
            finder = detector if detector is not None else FullImage()
            return [validate_boxes(finder(image if order == "bgr" else np.ascontiguousarray(image[..., ::-1])),
                                   f"detector boxes of images[{index}]", image.shape[:2])
                    for index, (image, order) in enumerate(loaded)]
        if single:
            return [validate_boxes(boxes, "boxes", loaded[0][0].shape[:2])]
        if len(boxes) != len(loaded):
            raise ValueError(f"boxes: expected one box array per image ({len(loaded)} images), got {len(boxes)}")
        return [validate_boxes(image_boxes, f"boxes[{index}]", image.shape[:2])
                for index, ((image, _), image_boxes) in enumerate(zip(loaded, boxes))]

    def _crop(self, image: np.ndarray, order: str, image_index: int, box: np.ndarray) -> _Crop:
        if self.task == "face":
            center, scale = face_box_center_scale(box[:4])
        else:
            center, scale = box_to_center_scale(box[:4], self.aspect_ratio, padding=BOX_PADDING)
        height, width = self.codec.input_size
        warp = self.codec.image_transform(center, scale, 0.0, image.shape[:2])
        crop = cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_LINEAR)
        if (order == "rgb") != self.color_rgb:
            crop = crop[..., ::-1]
        return _Crop(image_index, box, center, scale, normalize_image(crop))

    def _heatmaps(self, pixels: np.ndarray) -> np.ndarray:
        """(N, C*J, h, w) float32 heatmaps of normalised crops, flip-averaged when ``flip_test``."""
        per_pass = self.max_batch // 2 if self.flip_test else self.max_batch
        outputs = []
        for start in range(0, len(pixels), per_pass):
            batch = torch.from_numpy(pixels[start : start + per_pass]).to(self.device)
            if self.flip_test:  # the shared evaluation flip test: crops and mirrors in one pass
                heatmaps = flip_test(self._forward, batch, self.codec, self.keypoints.flip_index)
            else:
                heatmaps = self._forward(batch)
            outputs.append(heatmaps.cpu().numpy())
        return np.concatenate(outputs)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            output = self.model(batch)
        # models with intermediate supervision return a list; the last map is the prediction
        output = output[-1] if isinstance(output, (list, tuple)) else output
        return output.float()
