"""Face landmark files -> one in-memory form (:class:`FaceAnnotation`) -> a COCO-style keypoint JSON.

WHY: face sets ship in four layouts (the official HRNet CSVs, COFW's MATLAB ``.mat``, mmpose's
COCO-style JSON, iBUG ``.pts`` files); the training data path reads only COCO-style JSON
(:class:`~hrnet_train.data.coco.TopDownCocoDataset` with ``instances="face"``), so each layout gets a
reader here and :func:`write_face_coco` writes what they read.

Coordinates. The CSVs and the JSON are used as stored, like the official code. COFW ``.mat`` and
``.pts`` files store 1-based coordinates (MATLAB, iBUG convention): with ``zero_based=True`` (default)
their readers subtract 1, so the points address 0-based pixel centres like the image arrays, the crop
warp and mmpose's COFW JSON (whose converter subtracted 1 too); ``zero_based=False`` keeps the stored
values, as the official HRNet COFW loader and mmpose's 300VW JSON do. NME does not change (a shift of
all points), crops and drawings move by one pixel.

Bad input raises :class:`FaceFormatError` naming the file, the record (1-based line for CSVs), the
field and what was expected.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hrnet_train.image_io import read_image
from hrnet_train.keypoints import KeypointSet

# mmpose's face files use category 1 ("face"; 300VW calls it "person").
FACE_CATEGORY_ID = 1
PTS_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
_MATLAB_73_HEADER = b"MATLAB 7.3 MAT-file"
_COFW_KEYS = (("IsTr", "phisTr"), ("IsT", "phisT"))  # (images, shapes) of the train / test file


class FaceFormatError(ValueError):
    """A face annotation file does not have the expected layout (the message names file, record, field)."""


@dataclass
class FaceAnnotation:
    """One annotated face in the layout-independent form every reader returns.

    ``image`` is the image path relative to the data root (COFW: a generated file name); ``pixels``
    holds the image itself when the file embeds it (COFW ``.mat``, RGB uint8). ``visibility`` is 2
    visible, 1 labelled but occluded (COFW flags), 0 not labelled. ``center``/``scale`` are the
    official face box (scale = side / 200, before the x1.25), ``box_size`` AFLW's NME normaliser;
    None when the file has none (the dataset then derives center/scale from the landmarks).
    """

    image: str
    landmarks: np.ndarray  # (L, 2) float64
    visibility: np.ndarray  # (L,) int64
    source: str  # "file: record" for messages
    center: np.ndarray | None = None
    scale: float | None = None
    box_size: float | None = None
    bbox: np.ndarray | None = None  # (4,) xywh from the file
    image_size: tuple[int, int] | None = None  # (height, width)
    pixels: np.ndarray | None = field(default=None, repr=False)


def _check_count(points: int, keypoint_set: KeypointSet, where: str, field_name: str) -> None:
    if points != keypoint_set.num_joints:
        raise FaceFormatError(
            f"{where}: field {field_name}: {points} landmarks, expected {keypoint_set.num_joints} "
            f"(keypoint set {keypoint_set.name!r})"
        )


# --------------------------------------------------------------------------- official CSV


def read_face_csv(
    path: str | Path, keypoint_set: KeypointSet, image_root: str | Path | None = None
) -> list[FaceAnnotation]:
    """An official HRNet face CSV (spec A.7): first line a header (skipped), columns by position.

    300W / WFLW: ``image, scale, center_x, center_y, x1, y1, x2, y2, ...``; AFLW: ``image, scale,
    box_size, center_x, center_y, x1, y1, ...``. The layout follows from the column count (4 or 5 +
    2 per landmark of ``keypoint_set``). With ``image_root`` every image must exist under it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face CSV not found: {path}")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise FaceFormatError(f"{path}: empty file (expected a header line, then one face per line)")
    expected = {4 + 2 * keypoint_set.num_joints: 4, 5 + 2 * keypoint_set.num_joints: 5}
    faces = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{path}: line {line}"
        first = expected.get(len(row))
        if first is None:
            layouts = " or ".join(f"{n} (image, scale, {'box_size, ' if k == 5 else ''}center x/y, "
                                  f"{keypoint_set.num_joints} x/y pairs)" for n, k in expected.items())
            raise FaceFormatError(f"{where}: {len(row)} columns, expected {layouts} for keypoint set {keypoint_set.name!r}")
        values = []
        for column, cell in enumerate(row[1:], start=1):
            try:
                values.append(float(cell))
            except ValueError:
                raise FaceFormatError(f"{where}: column {column + 1}: expected a number, got {cell!r}") from None
        image = row[0].strip()
        if image_root is not None and not (Path(image_root) / image).is_file():
            raise FileNotFoundError(f"{where}: image {image!r} not found under {image_root}")
        box_size = values[1] if first == 5 else None
        center = np.array(values[first - 3:first - 1])
        landmarks = np.array(values[first - 1:]).reshape(-1, 2)
        faces.append(FaceAnnotation(image, landmarks, np.ones(len(landmarks), dtype=np.int64), where,
                                    center=center, scale=values[0], box_size=box_size))
    return faces


# --------------------------------------------------------------------------- COFW .mat


def read_cofw_mat(path: str | Path, zero_based: bool = True) -> list[FaceAnnotation]:
    """COFW's ``COFW_{train,test}_color.mat`` (spec A.7): images ``IsTr``/``IsT`` (N cells of H x W or
    H x W x 3 uint8; grey is replicated to RGB) and shapes ``phisTr``/``phisT`` (N x 87: 29 x, 29 y,
    29 occlusion flags). MATLAB v5 files are read with scipy; v7.3 (HDF5, the official files) needs
    h5py, the ``faces`` extra. Faces get generated image names ``cofw_00001.png``... and ``pixels``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COFW .mat file not found: {path}")
    with path.open("rb") as handle:
        is_hdf5 = handle.read(len(_MATLAB_73_HEADER)) == _MATLAB_73_HEADER
    images, shapes = (_read_mat_73 if is_hdf5 else _read_mat_v5)(path)
    if shapes.ndim != 2 or shapes.shape[1] != 87:
        raise FaceFormatError(f"{path}: field phis: shape {shapes.shape}, expected (N, 87) = 29 x, 29 y, 29 occlusion flags")
    if len(images) != len(shapes):
        raise FaceFormatError(f"{path}: {len(images)} images but {len(shapes)} shapes (expected one per image)")
    faces = []
    for index, (image, shape) in enumerate(zip(images, shapes)):
        where = f"{path}: record {index + 1}"
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
            raise FaceFormatError(f"{where}: field images: expected an H x W or H x W x 3 uint8 image, "
                                  f"got {pixels.dtype} {pixels.shape}")
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        landmarks = np.stack([shape[:29], shape[29:58]], axis=1) - (1.0 if zero_based else 0.0)
        occluded = shape[58:87] > 0.5
        faces.append(FaceAnnotation(f"cofw_{index + 1:05d}.png", landmarks, np.where(occluded, 1, 2), where,
                                    image_size=pixels.shape[:2], pixels=np.ascontiguousarray(pixels)))
    return faces


def _cofw_keys(path: Path, available: Iterable[str]) -> tuple[str, str]:
    names = set(available)
    for keys in _COFW_KEYS:
        if set(keys) <= names:
            return keys
    raise FaceFormatError(f"{path}: expected the COFW variables IsTr/phisTr or IsT/phisT, found {sorted(names)}")


def _read_mat_v5(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    from scipy.io import loadmat

    try:
        content = loadmat(path)
    except (ValueError, NotImplementedError) as error:
        raise FaceFormatError(f"{path}: not a readable MATLAB file ({error})") from None
    image_key, shape_key = _cofw_keys(path, (k for k in content if not k.startswith("__")))
    cells = np.asarray(content[image_key], dtype=object).reshape(-1)
    return list(cells), np.asarray(content[shape_key], dtype=np.float64)


def _read_mat_73(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise ImportError(
            f"{path} is a MATLAB v7.3 (HDF5) file: reading it needs h5py, install the faces extra "
            f"(pip install 'hrnet-train[faces]')"
        ) from None
    with h5py.File(path, "r") as mat:
        image_key, shape_key = _cofw_keys(path, mat.keys())
        # MATLAB stores column-major: HDF5 shows every array transposed (an H x W x 3 image as 3 x W x H).
        shapes = np.asarray(mat[shape_key], dtype=np.float64).T
        images = [np.asarray(mat[reference]).T for reference in np.asarray(mat[image_key]).reshape(-1)]
    return images, shapes


# --------------------------------------------------------------------------- COCO-style JSON


def read_face_json(path: str | Path, keypoint_set: KeypointSet) -> list[FaceAnnotation]:
    """mmpose's COCO-style face file: ``images`` {id, file_name, height, width}, ``annotations``
    {image_id, keypoints [x, y, v] * L, bbox, and when present ``center``, ``scale``, ``box_size``}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face JSON not found: {path}")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise FaceFormatError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(content, dict) or not isinstance(content.get("images"), list) \
            or not isinstance(content.get("annotations"), list):
        raise FaceFormatError(f"{path}: expected a JSON object with 'images' and 'annotations' lists")
    images = {}
    for entry in content["images"]:
        missing = [k for k in ("id", "file_name", "height", "width") if k not in entry]
        if missing:
            raise FaceFormatError(f"{path}: image {entry.get('id', '?')}: missing field(s) {missing}")
        images[entry["id"]] = entry
    faces = []
    for ann in content["annotations"]:
        where = f"{path}: annotation {ann.get('id', '?')}"
        if ann.get("image_id") not in images:
            raise FaceFormatError(f"{where}: field image_id: {ann.get('image_id')!r} is not an image id of the file")
        values = ann.get("keypoints")
        if not isinstance(values, list) or len(values) % 3:
            raise FaceFormatError(f"{where}: field keypoints: expected [x, y, v] triples, got {type(values).__name__}")
        _check_count(len(values) // 3, keypoint_set, where, "keypoints")
        points = np.asarray(values, dtype=np.float64).reshape(-1, 3)
        image = images[ann["image_id"]]
        faces.append(FaceAnnotation(
            image["file_name"], points[:, :2].copy(), points[:, 2].astype(np.int64), where,
            center=None if ann.get("center") is None else np.asarray(ann["center"], dtype=np.float64),
            scale=None if ann.get("scale") is None else float(ann["scale"]),
            box_size=None if ann.get("box_size") is None else float(ann["box_size"]),
            bbox=None if ann.get("bbox") is None else np.asarray(ann["bbox"], dtype=np.float64),
            image_size=(int(image["height"]), int(image["width"])),
        ))
    return faces


# --------------------------------------------------------------------------- iBUG .pts


def read_pts(path: str | Path, zero_based: bool = True) -> np.ndarray:
    """An iBUG PTS v1 file (``version: 1``, ``n_points: N``, ``{``, N lines ``x y``, ``}``) -> (N, 2).

    The stored values are 1-based; ``zero_based`` subtracts 1 (module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pts file not found: {path}")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    header = {}
    body_start = None
    for number, line in enumerate(lines):
        if line == "{":
            body_start = number + 1
            break
        key, sep, value = line.partition(":")
        if not sep:
            raise FaceFormatError(f"{path}: header line {line!r}: expected 'key: value' (version, n_points) before '{{'")
        header[key.strip()] = value.strip()
    if body_start is None or "}" not in lines[body_start:]:
        raise FaceFormatError(f"{path}: expected the points between a '{{' line and a '}}' line")
    try:
        count = int(header["n_points"])
    except (KeyError, ValueError):
        raise FaceFormatError(f"{path}: header field n_points: expected an integer, got {header.get('n_points')!r}") from None
    body = lines[body_start:lines.index("}", body_start)]
    if len(body) != count:
        raise FaceFormatError(f"{path}: n_points is {count} but {len(body)} point lines follow")
    points = []
    for number, line in enumerate(body, start=1):
        cells = line.split()
        try:
            if len(cells) != 2:
                raise ValueError
            points.append((float(cells[0]), float(cells[1])))
        except ValueError:
            raise FaceFormatError(f"{path}: point {number}: expected two numbers 'x y', got {line!r}") from None
    return np.asarray(points, dtype=np.float64) - (1.0 if zero_based else 0.0)


def pts_image(pts_file: Path) -> Path:
    """The image of a ``.pts`` file: same stem beside it (menpo, 300-W), or in the sibling ``imgs/``
    folder of an ``annot/`` folder (300-VW frames). FileNotFoundError lists the paths tried."""
    folders = [pts_file.parent]
    if pts_file.parent.name == "annot":
        folders.append(pts_file.parent.parent / "imgs")
    tried = [folder / (pts_file.stem + suffix) for folder in folders for suffix in PTS_IMAGE_SUFFIXES]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{pts_file}: no image found for it; tried {', '.join(str(p) for p in tried)}")


def read_pts_faces(
    root: str | Path, keypoint_set: KeypointSet, pattern: str = "**/*.pts", zero_based: bool = True
) -> list[FaceAnnotation]:
    """Every ``.pts`` file under ``root`` (sorted) with its image (:func:`pts_image`), one face each."""
    root = Path(root)
    files = sorted(root.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no .pts files matching {pattern!r} under {root}")
    faces = []
    for pts_file in files:
        landmarks = read_pts(pts_file, zero_based)
        _check_count(len(landmarks), keypoint_set, str(pts_file), "n_points")
        image = pts_image(pts_file).relative_to(root).as_posix()
        faces.append(FaceAnnotation(image, landmarks, np.ones(len(landmarks), dtype=np.int64), str(pts_file)))
    return faces


# --------------------------------------------------------------------------- writer


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight xywh box of the landmarks."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    return np.concatenate([low, high - low])


def face_category(keypoint_set: KeypointSet) -> dict:
    """The face category with the set's point names and 1-based contour lines."""
    return {"supercategory": "face", "id": FACE_CATEGORY_ID, "name": "face", "keypoints": list(keypoint_set.names),
            "skeleton": [[a + 1, b + 1] for a, b in keypoint_set.skeleton]}


def write_face_coco(
    faces: Sequence[FaceAnnotation], keypoint_set: KeypointSet, ann_file: str | Path, image_dir: str | Path
) -> Path:
    """Write ``faces`` as a COCO-style face keypoint JSON that ``TopDownCocoDataset(instances="face")`` reads.

    Images are grouped by ``image`` (several faces per image); embedded ``pixels`` are written to
    ``image_dir`` as PNG, other images must exist there (their size is read unless the face knows it).
    ``center``/``scale``/``box_size`` are kept when known; ``bbox`` defaults to the landmark box.
    """
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    images: dict[str, dict] = {}
    annotations = []
    for face in faces:
        _check_count(len(face.landmarks), keypoint_set, face.source, "landmarks")
        if face.image not in images:
            images[face.image] = {"id": len(images) + 1, "file_name": face.image,
                                  **_image_entry_size(face, image_dir)}
        bbox = landmark_box(face.landmarks) if face.bbox is None else face.bbox
        keypoints = np.concatenate([face.landmarks, face.visibility[:, None]], axis=1)
        annotation = {
            "id": len(annotations) + 1, "image_id": images[face.image]["id"], "category_id": FACE_CATEGORY_ID,
            "iscrowd": 0, "num_keypoints": int((face.visibility > 0).sum()),
            "keypoints": [float(v) for v in keypoints.reshape(-1)], "bbox": [float(v) for v in bbox],
            "area": float(bbox[2] * bbox[3]),
        }
        if face.center is not None:
            annotation["center"] = [float(v) for v in face.center]
        for name in ("scale", "box_size"):
            if getattr(face, name) is not None:
                annotation[name] = float(getattr(face, name))
        annotations.append(annotation)
    content = {"images": list(images.values()), "annotations": annotations, "categories": [face_category(keypoint_set)]}
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(content))
    return ann_file


def _image_entry_size(face: FaceAnnotation, image_dir: Path) -> dict[str, int]:
    """{height, width} of the face's image, writing embedded pixels to ``image_dir`` first."""
    if face.pixels is not None:
        target = image_dir / face.image
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), cv2.cvtColor(face.pixels, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{face.source}: could not write its image to {target}")
        height, width = face.pixels.shape[:2]
    elif face.image_size is not None:
        height, width = face.image_size
    else:
        try:
            height, width = read_image(image_dir / face.image).shape[:2]
        except FileNotFoundError:
            raise FileNotFoundError(f"{face.source}: image {face.image!r} not found under {image_dir}") from None
    return {"height": int(height), "width": int(width)}
