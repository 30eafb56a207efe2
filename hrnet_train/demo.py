"""Pose (and face landmark) demo on images, folders, videos and webcams: annotated media + keypoints as
JSON and CSV.

``python -m hrnet_train.demo input=clip.mp4 ckpt=run.ckpt output_dir=out detector=hog detect_every=3``
Options are ``key=value`` overrides of ``conf/demo.yaml`` (Hydra's compose API: same syntax and type
checks as training, but no working-directory change or Hydra output folder, so relative paths mean
what the user typed). Videos are tracked (IoU + OKS), optionally One-Euro smoothed, and the detector
can run every k-th frame with the boxes in between taken from the previous poses. Bad input ends with a
one-line message: exit code 2 when it is found before the first frame (a missing file, an unfit
checkpoint, a mistyped key -- with "did you mean"), 1 when a frame fails mid-run (the keypoints of
the frames before it are still written). ``--help`` lists every option (conf/demo.yaml).

A face landmark checkpoint (task face) draws its landmarks and contour lines on face boxes from
OpenCV's Haar face detector (``detector=haar_face``, the default for face models) or the whole image
(``detector=full_image``, an image that is one cropped face). Face sets define no OKS sigmas, so their
poses are neither OKS-suppressed nor tracked: video frames are estimated one by one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from hrnet_train.decoding.nms import oks_nms
from hrnet_train.inference.detectors import HogPeopleDetector, PersonDetector, boxes_from_poses, create_detector
from hrnet_train.drawing import draw_poses
from hrnet_train.inference.estimator import PoseEstimator
from hrnet_train.inference.media import Frame, FrameSource, VideoWriter, open_frames, write_keypoints_csv, write_keypoints_json
from hrnet_train.inference.smoothing import PoseSmoother
from hrnet_train.inference.tracking import Tracker
from hrnet_train.cli_args import EXIT_FAILURE, EXIT_USAGE, UsageError, error_line
from hrnet_train.config_schema import ConfigError
from hrnet_train.override_check import check_overrides
from hrnet_train.paths import config_dir

OKS_NMS_THRESHOLD = 0.9  # reference TEST.OKS_THRE: drops duplicate poses from overlapping boxes


@dataclass
class StageTimes:
    """Seconds spent per stage over all frames (reading and writing files are not counted)."""

    detection: float = 0.0
    pose: float = 0.0
    drawing: float = 0.0
    frames: int = 0

    def summary(self) -> str:
        def stage(name: str, seconds: float) -> str:
            per_frame = seconds / max(self.frames, 1)
            fps = 1.0 / per_frame if per_frame > 0 else float("inf")
            return f"{name} {1000 * per_frame:.1f} ms/frame ({fps:.1f} FPS)"

        total = self.detection + self.pose + self.drawing
        return (f"{self.frames} frames: " + ", ".join(
            [stage("detection", self.detection), stage("pose", self.pose), stage("drawing", self.drawing),
             stage("total", total)]))


@dataclass
class DemoResult:
    """What a run produced: per-frame persons (as written), the files, and the stage timings."""

    frames: list[list[dict]] = field(default_factory=list)
    frame_names: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)


def load_config(overrides: Sequence[str]) -> DictConfig:
    """``conf/demo.yaml`` with ``key=value`` overrides applied (a mistyped key raises ConfigError with
    "did you mean")."""
    check_overrides("demo", overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="demo", overrides=list(overrides))


def help_text() -> str:
    """The module docstring, the options of conf/demo.yaml and the exit codes."""
    options = (config_dir() / "demo.yaml").read_text()
    examples = "\n".join(f"  {e}" for e in (
        "python -m hrnet_train.demo input=clip.mp4 ckpt=models/lspet_cpu/lspet_cpu.ckpt output_dir=outputs/demo detector=hog",
        "python -m hrnet_train.demo input=photo.jpg ckpt=pose_hrnet_w32_256x192.pth model=hrnet_w32 input_size=256x192",
        "python -m hrnet_train.demo input=face.jpg ckpt=HR18-WFLW.pth model=hrnet_w18_face keypoints=wflw98 "
        "input_size=256x256 draw.radius=2 draw.thickness=1",
    ))
    return (f"{__doc__.strip()}\n\nexamples:\n{examples}\n\nexit codes: 0 done, {EXIT_USAGE} bad input before the first frame, "
            f"{EXIT_FAILURE} a frame failed\n\noptions (conf/demo.yaml; set any as key=value):\n\n{options}")


DEFAULT_DETECTORS = {"pose": "hog", "face": "haar_face"}  # detector=null


def _build_detector(cfg: DictConfig, task: str) -> PersonDetector:
    name = DEFAULT_DETECTORS[task] if cfg.detector is None else str(cfg.detector)
    if name == "hog":
        return HogPeopleDetector(**OmegaConf.to_container(cfg.hog))
    return create_detector(name)


def _build_estimator(cfg: DictConfig) -> PoseEstimator:
    return PoseEstimator.from_checkpoint(
        cfg.ckpt, device=cfg.device, precision=str(cfg.precision), model=cfg.model,
        keypoints=cfg.keypoints, input_size=cfg.input_size, codec=cfg.codec, color_rgb=cfg.color_rgb,
        flip_test=cfg.flip_test, max_batch=cfg.max_batch,
    )


def _check_options(cfg: DictConfig) -> None:
    if int(cfg.detect_every) < 1:
        raise ValueError(f"detect_every: expected an integer >= 1, got {cfg.detect_every}")
    if cfg.max_frames is not None and int(cfg.max_frames) < 1:
        raise ValueError(f"max_frames: expected an integer >= 1 or null, got {cfg.max_frames}")
    if cfg.num_threads is not None and int(cfg.num_threads) < 1:
        raise ValueError(f"num_threads: expected an integer >= 1 or null, got {cfg.num_threads}")
    if cfg.smooth and not cfg.track:
        raise ValueError("smooth=true needs track=true (the filter state follows track ids)")


def _suppress_duplicates(poses: list[dict], sigmas: np.ndarray) -> list[dict]:
    if len(poses) < 2:
        return poses
    keypoints = np.stack([pose["keypoints"] for pose in poses])
    areas = np.array([pose["box"][2] * pose["box"][3] for pose in poses])
    scores = np.array([pose["score"] for pose in poses])
    return [poses[i] for i in sorted(oks_nms(keypoints, scores, areas, OKS_NMS_THRESHOLD, sigmas))]


def _media_path(output: Path, source: FrameSource, frame_name: str) -> Path:
    if source.kind in ("image", "folder"):
        return output / frame_name
    stem = f"webcam_{source.label.split()[-1]}" if source.kind == "webcam" else Path(source.label).stem
    return output / f"{stem}.mp4"


def _orientation_note(frame: Frame, exif_rotate: bool) -> str:
    """What was done with an image's EXIF orientation tag, so keypoints are read in the right frame."""
    if exif_rotate:
        return f"{frame.name}: EXIF orientation {frame.exif_orientation} applied (exif_rotate=true): keypoints refer to the upright image"
    return (f"{frame.name}: EXIF orientation {frame.exif_orientation} not applied (exif_rotate=false): keypoints refer to "
            "the stored pixels, as in evaluation")


def run_demo(cfg: DictConfig) -> DemoResult:
    """Run the whole pipeline for a composed config.

    Raises UsageError for bad input found before the first frame, ValueError/OSError for a failure
    during the run (after writing the keypoints of the frames processed until then).
    """
    try:
        _check_options(cfg)
        if cfg.num_threads is not None:
            torch.set_num_threads(int(cfg.num_threads))
        source = open_frames(int(cfg.input) if isinstance(cfg.input, int) else str(cfg.input), bool(cfg.exif_rotate))
        estimator = _build_estimator(cfg)
        detector = _build_detector(cfg, estimator.task)
    except (FileNotFoundError, ValueError, ImportError) as error:
        raise UsageError(str(error)) from None
    keypoint_set = estimator.keypoints
    is_video = source.fps is not None
    oks = keypoint_set.has_sigmas  # face sets have none: no OKS-NMS, no tracking (module docstring)
    tracker = Tracker(keypoint_set.sigmas, **OmegaConf.to_container(cfg.tracking)) if is_video and cfg.track and oks else None
    smoother = PoseSmoother(source.fps, **OmegaConf.to_container(cfg.smoothing)) if tracker and cfg.smooth else None
    output = Path(cfg.output_dir)
    if cfg.save_media and source.kind in ("image", "folder"):
        input_folder = Path(source.label) if source.kind == "folder" else Path(source.label).parent
        if output.resolve() == input_folder.resolve():
            raise UsageError(f"output_dir: {output} is the input folder; annotated images would overwrite the inputs")
    output.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    times = result.times
    total = source.frame_count if cfg.max_frames is None else min(source.frame_count or cfg.max_frames, cfg.max_frames)
    writer: VideoWriter | None = None
    previous: list[dict] = []
    progress = tqdm(total=total, unit="frame", disable=not cfg.progress, desc=source.label)
    try:
        for frame in source.frames:
            if cfg.max_frames is not None and frame.index >= cfg.max_frames:
                break
            if frame.exif_orientation != 1:
                progress.write(_orientation_note(frame, bool(cfg.exif_rotate)))
            start = time.perf_counter()
            if is_video and previous and frame.index % cfg.detect_every:
                boxes = boxes_from_poses(previous, frame.image.shape[:2], **OmegaConf.to_container(cfg.propagate))
            else:
                boxes = detector(frame.image)
            detected = time.perf_counter()
            (poses,) = estimator.predict(frame.image, boxes=boxes)
            poses = [pose for pose in poses if pose["score"] >= cfg.min_pose_score]
            if oks:
                poses = _suppress_duplicates(poses, keypoint_set.sigmas)
            if tracker is not None:
                for pose, track_id in zip(poses, tracker.update(poses)):
                    pose["track_id"] = track_id
            previous = poses
            if smoother is not None:
                smoothed = smoother.update(frame.index, [p["track_id"] for p in poses], [p["keypoints"] for p in poses])
                poses = [{**pose, "keypoints": points, "keypoints_raw": pose["keypoints"]}
                         for pose, points in zip(poses, smoothed)]
            estimated = time.perf_counter()
            canvas = draw_poses(frame.image, poses, keypoint_set.skeleton, keypoint_set.flip_pairs, cfg.draw.threshold,
                                cfg.draw.radius, cfg.draw.thickness, cfg.draw.boxes)
            drawn = time.perf_counter()
            times.detection += detected - start
            times.pose += estimated - detected
            times.drawing += drawn - estimated
            times.frames += 1
            if cfg.save_media:
                media_path = _media_path(output, source, frame.name)
                if is_video:
                    if writer is None:
                        writer = VideoWriter(media_path, fps=source.fps)
                        result.outputs.append(media_path)
                    writer.write(canvas)
                else:
                    if not cv2.imwrite(str(media_path), canvas):
                        raise ValueError(f"{media_path}: OpenCV cannot write this image file")
                    result.outputs.append(media_path)
            result.frames.append(poses)
            result.frame_names.append(frame.name)
            progress.update(1)
    except KeyboardInterrupt:  # a webcam runs until interrupted; keep what was processed
        pass
    finally:  # also when a frame failed: the frames before it keep their keypoints
        progress.close()
        if writer is not None:
            writer.close()
        json_path, csv_path = output / "keypoints.json", output / "keypoints.csv"
        write_keypoints_json(json_path, result.frames, keypoint_set.names, result.frame_names, source.fps)
        write_keypoints_csv(csv_path, result.frames, keypoint_set.names)
        result.outputs += [json_path, csv_path]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 bad input before the first frame, 1 a failed frame)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if any(arg in ("-h", "--help") for arg in args):
        print(help_text())
        return 0
    try:
        cfg = load_config(args)
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        return _report_error(error, EXIT_USAGE)
    try:
        result = run_demo(cfg)
    except UsageError as error:
        return _report_error(error, EXIT_USAGE)
    except (FileNotFoundError, ValueError, OSError) as error:
        return _report_error(error, EXIT_FAILURE)
    print(f"wrote {', '.join(str(p) for p in result.outputs[-3:])}" + (" and more" if len(result.outputs) > 3 else ""))
    print(result.times.summary())
    return 0


def _report_error(error: BaseException, code: int) -> int:
    print(f"hrnet_train.demo: {'error' if code == EXIT_USAGE else 'failed'}: {error_line(error)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
