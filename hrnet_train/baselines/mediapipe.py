"""MediaPipe PoseLandmarker as a cross-topology baseline, scored by our own evaluation code.

SINGLE PERSON PER CROP: MediaPipe finds one person per image by design, so it is run on each
ground-truth person box, cropped with our padding (box x1.25, square), and its 33 landmarks are
mapped back to the image and renamed to the target keypoint set by joint name. COCO-17 takes the
17 body landmarks; LSPET-14 takes the 12 limb joints, while its neck and head top have no MediaPipe
landmark: they are emitted at (0, 0) with score 0, so LSPET should be compared on the limb-12 PCK
(all-14 PCK and OKS AP count those two joints as wrong). The results go through
:func:`hrnet_train.evaluation.runner.write_report`, i.e. the same COCO AP / PCK code as our models.

MediaPipe replaces headless OpenCV with its GUI build, so it lives in its own venv
(``make mediapipe-venv``)::

    .venv-mediapipe/bin/python -m hrnet_train.baselines.mediapipe data=coco_mini
    .venv-mediapipe/bin/python -m hrnet_train.baselines.mediapipe data=lspet
    ... data=custom ann_file=<gt json> img_dir=<images> keypoints=coco17 [output_dir=...] [crop_size=384]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnet_train.data.coco import InstanceRecord, checked_annotations, gt_records, load_coco
from hrnet_train.data.skips import SkipCounts
from hrnet_train.image_io import read_image
from hrnet_train.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.cli_args import CommandLine, Option, UsageError, run_tool
from hrnet_train.data.lspet import convert_lspet
from hrnet_train.geometry import affine_points, get_affine_transform
from hrnet_train.decoding.rescoring import rescore
from hrnet_train.evaluation.report_writer import ReportSettings, write_report
from hrnet_train.inference.detectors import open_pose_landmarker
from hrnet_train.paths import data_dir, shared_data_dir

# The 33 PoseLandmarker landmarks in output order (MediaPipe pose landmark model card / PoseLandmark
# enum), spelled like our keypoint-set joint names so sets map by name.
MEDIAPIPE_LANDMARKS: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
DEFAULT_MODEL = "models/mediapipe/pose_landmarker_full_from_legacy.task"  # under shared data
CROP_SIZE = 384  # square crop side; the landmark model itself sees a 256x256 ROI inside it
BOX_PADDING = 1.25  # our crops' padding (reference box_to_center_scale)
# Every crop holds a person (it is a GT box), so a pose is wanted even at low confidence: MediaPipe's
# default 0.5 leaves 90 of the 500 LSPET val crops without a pose, 0.1 leaves 35 (limb PCK 54.2 -> 57.1 %).
MIN_CONFIDENCE = 0.1
RUN_LABEL = "MediaPipe PoseLandmarker full (single person per GT crop)"


def landmark_index(keypoint_set: KeypointSet) -> list[int | None]:
    """For each joint of ``keypoint_set``, the MediaPipe landmark of the same name (None: no counterpart)."""
    return [MEDIAPIPE_LANDMARKS.index(n) if n in MEDIAPIPE_LANDMARKS else None for n in keypoint_set.names]


def to_keypoint_set(landmarks: np.ndarray, mapping: Sequence[int | None]) -> np.ndarray:
    """(33, 3) landmarks [x, y, visibility] -> (J, 3) keypoints; joints without a landmark get (0, 0, 0)."""
    keypoints = np.zeros((len(mapping), 3), dtype=np.float64)
    for joint, landmark in enumerate(mapping):
        if landmark is not None:
            keypoints[joint] = landmarks[landmark]
    return keypoints


def crop_transform(record: InstanceRecord, crop_size: int) -> np.ndarray:
    """Image -> square crop affine of a record whose scale came from a square (aspect 1) box."""
    return get_affine_transform(record.center, record.scale, 0.0, (crop_size, crop_size))


def landmarks_to_image(normalized: np.ndarray, record: InstanceRecord, crop_size: int) -> np.ndarray:
    """(33, 3) [x, y, visibility] with x, y normalised to the crop -> image pixels (visibility kept)."""
    inverse = get_affine_transform(record.center, record.scale, 0.0, (crop_size, crop_size), inv=True)
    points = affine_points(normalized[:, :2] * crop_size, inverse)
    return np.concatenate([points, normalized[:, 2:3]], axis=1)


class MediaPipePoseEstimator:
    """PoseLandmarker in IMAGE mode, one pose per call; a context manager so ``close()`` always runs."""

    def __init__(
        self, model_asset: str | Path, min_detection_confidence: float = MIN_CONFIDENCE, min_presence_confidence: float = MIN_CONFIDENCE
    ) -> None:
        self._mp, self._landmarker = open_pose_landmarker(model_asset, 1, min_detection_confidence, min_presence_confidence)

    def __enter__(self) -> MediaPipePoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._landmarker.close()

    def estimate(self, rgb: np.ndarray) -> np.ndarray | None:
        """(33, 3) [x, y normalised to the image, visibility] of the one pose found, or None."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect(image)
        if not result.pose_landmarks:
            return None
        return np.array([[lm.x, lm.y, lm.visibility] for lm in result.pose_landmarks[0]], dtype=np.float64)


@dataclass(frozen=True)
class BaselinePredictions:
    """COCO results (one per GT box where a pose was found) and the same poses by annotation id."""

    results: list[dict]
    by_annotation: dict[int, np.ndarray]
    num_boxes: int
    num_without_pose: int
    seconds: float


def predict_gt_boxes(
    records: Sequence[InstanceRecord], keypoint_set: KeypointSet, estimator: MediaPipePoseEstimator, crop_size: int = CROP_SIZE
) -> BaselinePredictions:
    """Run ``estimator`` on every GT-box crop and express its poses in ``keypoint_set``.

    Instance score = reference rescoring of the mapped joint visibilities (box score 1), so joints
    without a MediaPipe counterpart (score 0) do not lower it.
    """
    mapping = landmark_index(keypoint_set)
    results: list[dict] = []
    by_annotation: dict[int, np.ndarray] = {}
    missed = 0
    start = time.perf_counter()
    image_cache: tuple[Path, np.ndarray] | None = None
    for record in records:
        if image_cache is None or image_cache[0] != record.image_file:
            image_cache = (record.image_file, read_image(record.image_file, color_rgb=True))
        crop = cv2.warpAffine(image_cache[1], crop_transform(record, crop_size), (crop_size, crop_size), flags=cv2.INTER_LINEAR)
        landmarks = estimator.estimate(crop)
        if landmarks is None:
            missed += 1
            continue
        keypoints = to_keypoint_set(landmarks_to_image(landmarks, record, crop_size), mapping)
        score = float(rescore(keypoints[None, :, 2], np.ones(1))[0])
        results.append({"image_id": record.image_id, "category_id": 1, "keypoints": keypoints.reshape(-1).tolist(), "score": score})
        by_annotation[record.annotation_id] = keypoints
    return BaselinePredictions(results, by_annotation, len(records), missed, time.perf_counter() - start)


def dataset_paths(name: str, ann_file: str | None, img_dir: str | None, keypoints: str | None) -> tuple[Path, Path, str]:
    """(annotation file, image dir, keypoint set) of a preset (coco_mini, coco_tiny, lspet) or ``custom``.

    ``lspet`` converts ``shared/data/lspet`` into ``data/lspet_coco`` first if needed (val = images 8,501-9,000).
    """
    shared = shared_data_dir()
    if name == "coco_mini":
        root = shared / "coco_mini"
        return root / "annotations/person_keypoints_val2017_mini.json", root / "images/val2017", keypoints or "coco17"
    if name == "coco_tiny":
        root = shared / "coco_tiny"
        return root / "annotations/person_keypoints_val2017_tiny.json", root / "images/val2017", keypoints or "coco17"
    if name == "lspet":
        ann = data_dir() / "lspet_coco" / "annotations" / "person_keypoints_val.json"
        if not ann.is_file():
            convert_lspet(shared / "lspet", data_dir() / "lspet_coco")
        return ann, shared / "lspet" / "images", keypoints or "lspet14"
    if name == "custom":
        if ann_file is None or img_dir is None:
            raise ValueError("data=custom needs ann_file=<COCO keypoint json> and img_dir=<image folder>")
        return Path(ann_file), Path(img_dir), keypoints or "coco17"
    raise ValueError(f"data: expected coco_mini, coco_tiny, lspet or custom, got {name!r}")


def run_baseline(
    ann_file: str | Path,
    img_dir: str | Path,
    keypoints: str | KeypointSet,
    output_dir: str | Path,
    model_asset: str | Path | None = None,
    crop_size: int = CROP_SIZE,
    min_detection_confidence: float = MIN_CONFIDENCE,
    min_presence_confidence: float = MIN_CONFIDENCE,
    gallery_size: int = 16,
) -> dict[str, Any]:
    """Predict every GT box of ``ann_file`` with MediaPipe and write the standard report; returns metrics."""
    keypoint_set = load_keypoint_set(keypoints)
    coco = checked_annotations(load_coco(ann_file), keypoint_set, ann_file, drop_invalid_boxes=False, skip_corrupt=False,
                               skips=SkipCounts())
    # Square crops (aspect 1): MediaPipe's detector and landmark model take square inputs.
    records = gt_records(coco, img_dir, keypoint_set, aspect_ratio=1.0, ann_file=ann_file)
    if not records:
        raise ValueError(f"{ann_file}: no ground-truth person with keypoints to crop")
    asset = Path(model_asset) if model_asset is not None else shared_data_dir() / DEFAULT_MODEL
    with MediaPipePoseEstimator(asset, min_detection_confidence, min_presence_confidence) as estimator:
        predictions = predict_gt_boxes(records, keypoint_set, estimator, crop_size)
    print(
        f"MediaPipe: {predictions.num_boxes} GT boxes ({RUN_LABEL}), {predictions.num_without_pose} without a pose, "
        f"{1000 * predictions.seconds / predictions.num_boxes:.1f} ms per box",
        flush=True,
    )
    settings = {
        "model": "mediapipe_pose_landmarker",
        "model_asset": str(asset),
        "single_person_per_crop": True,
        "ann_file": str(ann_file),
        "img_dir": str(img_dir),
        "keypoints": keypoint_set.name,
        "unmapped_joints": [n for n, i in zip(keypoint_set.names, landmark_index(keypoint_set), strict=True) if i is None],
        "boxes": "gt",
        "crop_size": crop_size,
        "box_padding": BOX_PADDING,
        "min_detection_confidence": min_detection_confidence,
        "min_presence_confidence": min_presence_confidence,
    }
    extra = {
        "boxes_without_pose": predictions.num_without_pose,
        "throughput": {"instances": predictions.num_boxes, "seconds": predictions.seconds,
                       "instances_per_second": predictions.num_boxes / predictions.seconds},
    }
    report = ReportSettings(box_source="gt", gallery_size=gallery_size, run_label=RUN_LABEL)
    return write_report(output_dir, coco, predictions.results, keypoint_set, settings, report, img_dir,
                        pck_predictions=predictions.by_annotation, extra=extra)


COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.baselines.mediapipe",
    summary="MediaPipe BlazePose (PoseLandmarker) on GT boxes, scored and reported like evaluate.py "
            "(needs the mediapipe venv: make mediapipe-venv).",
    options=(
        Option("data", "coco_mini | coco_tiny | lspet (shared data), or custom with ann_file/img_dir", str, "coco_mini"),
        Option("ann_file", "COCO keypoint annotation file (custom data)"),
        Option("img_dir", "its image folder (custom data)"),
        Option("keypoints", "keypoint set (custom data)"),
        Option("output_dir", "report folder (default outputs/mediapipe_baseline/<data>)"),
        Option("model_asset", "PoseLandmarker .task file (default: the shared data's)"),
        Option("crop_size", "square crop side fed to MediaPipe", int),
        Option("min_detection_confidence", "MediaPipe detection threshold", float),
        Option("min_presence_confidence", "MediaPipe presence threshold", float),
        Option("gallery_size", "worst persons in the gallery", int),
    ),
    examples=(".venv-mediapipe/bin/python -m hrnet_train.baselines.mediapipe data=lspet",),
)


def main(argv: list[str] | None = None) -> None:
    args = {k: v for k, v in COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv).items() if v is not None}
    name = str(args.pop("data"))
    try:
        ann_file, img_dir, keypoints = dataset_paths(name, args.pop("ann_file", None), args.pop("img_dir", None), args.pop("keypoints", None))
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    output_dir = args.pop("output_dir", f"outputs/mediapipe_baseline/{name}")
    run_baseline(ann_file, img_dir, keypoints, output_dir, **args)


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
