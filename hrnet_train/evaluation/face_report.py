"""Writing a face evaluation's outputs: the predicted landmarks, ``metrics.json`` (NME, FR@0.08/0.10,
AUC@0.1 + the settings that produced them), the summary table, the per-landmark error table and the
cumulative error distribution (CED) plot.

The face counterpart of :mod:`hrnet_train.evaluation.report_writer` (same file names for the metrics
and the table, so a run folder reads the same for either task); evaluate.py picks it by the model's task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

from hrnet_train.decoding.instances import DecodedInstances
from hrnet_train.evaluation.nme import format_nme_table, plot_ced
from hrnet_train.evaluation.report_writer import METRICS_FILE, TABLE_FILE
from hrnet_train.evaluation.validation import face_metrics
from hrnet_train.keypoints import KeypointSet

LANDMARKS_FILE = "landmark_results.json"
PER_LANDMARK_FILE = "per_landmark_nme.md"
CED_FILE = "ced.png"


def write_face_report(
    out_dir: str | Path,
    coco: COCO,
    keypoint_set: KeypointSet,
    instances: DecodedInstances,
    annotation_ids: Sequence[int],
    settings: Mapping[str, Any],
    run_label: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score every face of ``coco`` (row i of ``instances`` is annotation ``annotation_ids[i]``), write
    the files of the module docstring into ``out_dir``, print the tables; return metrics.json's content."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = face_metrics(coco, keypoint_set, instances, annotation_ids)
    landmarks = [
        {"annotation_id": int(ann_id), "image_id": int(image_id), "landmarks": points.tolist()}
        for ann_id, image_id, points in zip(annotation_ids, instances.image_ids, instances.keypoints, strict=True)
    ]
    landmarks_path = out / LANDMARKS_FILE
    landmarks_path.write_text(json.dumps(landmarks))
    print(f"results: {len(landmarks)} faces ([x, y, heatmap score] per landmark) -> {landmarks_path}", flush=True)
    stats = result.summary()
    table = format_nme_table({run_label: stats})
    (out / TABLE_FILE).write_text(table + "\n")
    per_landmark = result.to_markdown()
    (out / PER_LANDMARK_FILE).write_text(
        f"# Per-landmark NME ({keypoint_set.name}, {len(result.per_image)} faces)\n\n"
        f"Mean error of each landmark divided by the face's normaliser, in %.\n\n{per_landmark}\n"
    )
    ced = plot_ced({run_label: result.per_image}, out / CED_FILE, result.auc_threshold)
    print(table, flush=True)
    metrics: dict[str, Any] = {
        "results_file": str(landmarks_path),
        "settings": dict(settings),
        **dict(extra or {}),
        "metric": f"NME ({_normaliser(keypoint_set)})",
        "stats": stats,
        "num_faces": len(result.per_image),
        "per_landmark": dict(zip(result.landmark_names, result.per_landmark.tolist(), strict=True)),
        "ced": str(ced),
        "per_landmark_table": str(out / PER_LANDMARK_FILE),
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    print(f"per-landmark table -> {out / PER_LANDMARK_FILE}, CED -> {ced}, metrics -> {out / METRICS_FILE}", flush=True)
    return metrics


def _normaliser(keypoint_set: KeypointSet) -> str:
    """What the NME is divided by, in words (spec A.8)."""
    rule = keypoint_set.nme_normalizer
    if rule is None or rule.uses_box_size:
        return "face box size"
    first, second = rule.points
    return f"distance of {keypoint_set.names[first]} and {keypoint_set.names[second]}"
