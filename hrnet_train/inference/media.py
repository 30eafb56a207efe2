"""Reading frames (image, folder of images, video file, webcam) and writing results (mp4, JSON, CSV).

All frames are BGR uint8 arrays as OpenCV returns them; every failure names the file it concerns.
Still images go through the one image reader (:func:`hrnet_train.image_io.read_image`): the same
strict decode as training and evaluation, and its EXIF policy -- stored pixels unless ``exif_rotate``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnet_train.image_io import exif_orientation, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Frame:
    """One input frame: ``index`` counts from 0, ``name`` is the image file name or ``frame_000123``,
    ``time_s`` the video timestamp (``index / fps``; None for still images)."""

    index: int
    image: np.ndarray
    name: str
    time_s: float | None
    exif_orientation: int = 1  # the still image's EXIF tag (1 = none; applied only with exif_rotate)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; ValueError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return images


class VideoReader:
    """Frames of a video file or webcam (int device id) through cv2.VideoCapture.

    Opening checks that the first frame decodes, so an unreadable file fails here, not mid-pipeline.
    """

    def __init__(self, source: str | Path | int):
        self.source = source
        if isinstance(source, int):
            label = f"webcam {source}"
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"video file not found: {path}")
            label = str(path)
        self.label = label
        self._capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
        first = self._capture.read()[1] if self._capture.isOpened() else None
        if first is None:
            self._capture.release()
            raise ValueError(f"{label}: cannot be opened or decoded as a video by OpenCV")
        self._first: np.ndarray | None = first
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count: int | None = count if count > 0 and not isinstance(source, int) else None
        self.size = (first.shape[0], first.shape[1])  # (height, width)

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            raise RuntimeError(f"{self.label}: frames can be iterated only once")
        image, index = self._first, 0
        self._first = None
        try:
            while image is not None:
                yield Frame(index, image, f"frame_{index:06d}", index / self.fps)
                index += 1
                image = self._capture.read()[1]
        finally:
            self._capture.release()

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class FrameSource:
    """An opened input: its frames plus what writers and filters need to know about it.

    ``kind`` is 'image', 'folder', 'video' or 'webcam'; ``fps`` is None for still images (frames are
    unrelated, so tracking and smoothing do not apply); ``frame_count`` is None when unknown (webcam).
    """

    frames: Iterator[Frame]
    kind: str
    label: str
    fps: float | None
    frame_count: int | None


def _still_frame(index: int, path: Path, exif_rotate: bool) -> Frame:
    """One still image as a frame, read by the one image reader; it keeps its EXIF orientation tag so
    the caller can say whether the tag was applied."""
    return Frame(index, read_image(path, color_rgb=False, exif_rotate=exif_rotate), path.name, None,
                 exif_orientation(path))


def _folder_frames(images: Sequence[Path], exif_rotate: bool) -> Iterator[Frame]:
    for index, image_path in enumerate(images):
        yield _still_frame(index, image_path, exif_rotate)


def open_frames(source: str | Path | int, exif_rotate: bool = False) -> FrameSource:
    """Open an image file, a folder of images (sorted by name), a video file or a webcam id.

    Checks happen now (missing path, empty folder, undecodable video or single image), not at the
    first frame. ``exif_rotate`` applies still images' EXIF orientation (default: stored pixels, as
    evaluation reads them; videos are never rotated).
    """
    if isinstance(source, int):
        reader = VideoReader(source)
        return FrameSource(iter(reader), "webcam", reader.label, reader.fps, None)
    path = Path(source)
    if path.is_dir():
        images = list_images(path)
        return FrameSource(_folder_frames(images, exif_rotate), "folder", str(path), None, len(images))
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path} (expected an image, a folder of images, a video or a webcam id)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource(iter([_still_frame(0, path, exif_rotate)]), "image", str(path), None, 1)
    reader = VideoReader(path)
    return FrameSource(iter(reader), "video", reader.label, reader.fps, reader.frame_count)


def iter_frames(source: str | Path | int, exif_rotate: bool = False) -> Iterator[Frame]:
    """Frames from an image file, a folder of images (sorted by name), a video file or a webcam id."""
    yield from open_frames(source, exif_rotate).frames


class VideoWriter:
    """Writes BGR frames to an mp4 (``mp4v`` codec, playable without extra codecs); the frame size is
    taken from the first frame and every later frame must match it."""

    def __init__(self, path: str | Path, fps: float, fourcc: str = "mp4v"):
        if fps <= 0:
            raise ValueError(f"fps: expected > 0, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.fourcc = fourcc
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be uint8 BGR (H, W, 3), got {image.dtype} {image.shape}")
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
            if not self._writer.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot write video with fourcc {self.fourcc!r}")
            self._size = size
        elif size != self._size:
            raise ValueError(f"{self.path}: frame {self.frames_written} is {size[0]}x{size[1]} (WxH), "
                             f"expected {self._size[0]}x{self._size[1]} like the first frame")
        self._writer.write(image)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _person_record(pose: Mapping, keypoint_names: Sequence[str], where: str) -> dict:
    keypoints = np.asarray(pose["keypoints"], dtype=np.float64)
    if keypoints.shape != (len(keypoint_names), 3):
        raise ValueError(f"{where}.keypoints: expected shape ({len(keypoint_names)}, 3), got {keypoints.shape}")
    box = pose.get("box")
    track_id = pose.get("track_id")
    return {
        "track_id": None if track_id is None else int(track_id),
        "box": None if box is None else [float(v) for v in np.asarray(box).ravel()[:4]],
        "score": float(pose.get("score", float(keypoints[:, 2].mean()))),
        "keypoints": keypoints.tolist(),
    }


def write_keypoints_json(path: str | Path, frames: Sequence[Sequence[Mapping]], keypoint_names: Sequence[str],
                         frame_names: Sequence[str] | None = None, fps: float | None = None) -> None:
    """One entry per frame: ``{"frame": i, "name": ..., "persons": [{track_id, box, score, keypoints}]}``;
    ``keypoints`` is a list of [x, y, score] in ``keypoint_names`` order (stored once at the top)."""
    if frame_names is not None and len(frame_names) != len(frames):
        raise ValueError(f"frame_names: {len(frame_names)} names for {len(frames)} frames")
    entries = []
    for index, persons in enumerate(frames):
        entries.append({
            "frame": index,
            "name": frame_names[index] if frame_names is not None else f"frame_{index:06d}",
            "time_s": None if fps is None else index / fps,
            "persons": [_person_record(p, keypoint_names, f"frames[{index}][{k}]") for k, p in enumerate(persons)],
        })
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"keypoint_names": list(keypoint_names), "frames": entries}, handle)


CSV_COLUMNS = ("frame", "person", "track_id", "joint", "joint_name", "x", "y", "score")


def write_keypoints_csv(path: str | Path, frames: Sequence[Sequence[Mapping]], keypoint_names: Sequence[str]) -> None:
    """One row per frame x person x joint with columns ``CSV_COLUMNS`` (track_id empty when untracked)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for index, persons in enumerate(frames):
            for person_index, pose in enumerate(persons):
                record = _person_record(pose, keypoint_names, f"frames[{index}][{person_index}]")
                track = "" if record["track_id"] is None else record["track_id"]
                for joint, (name, (x, y, score)) in enumerate(zip(keypoint_names, record["keypoints"])):
                    writer.writerow([index, person_index, track, joint, name, f"{x:.3f}", f"{y:.3f}", f"{score:.4f}"])
