"""Writing an evaluation's outputs: the COCO results JSON, ``metrics.json`` (stats + the settings that
produced them), the box-labelled markdown table, the per-keypoint error analysis, a gallery of the
worst persons and, for single-person LSPET-style sets, torso PCK.

Every source of poses ends here (a checkpoint through evaluate.py, a results file, the baselines), so
their numbers are written and labelled the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from hrnet_train.data.skips import SkipCounts
from hrnet_train.evaluation.analysis import ERROR_CLASSES, ErrorAnalysis, analyze_errors
from hrnet_train.evaluation.coco_metric import BOX_SOURCE_LABELS, evaluate_coco_keypoints, format_stats_table
from hrnet_train.evaluation.gallery import render_worst_gallery
from hrnet_train.evaluation.pck import annotation_pck, pck_applies
from hrnet_train.keypoints import KeypointSet

RESULTS_FILE = "keypoint_results.json"
METRICS_FILE = "metrics.json"
TABLE_FILE = "metrics.md"
ANALYSIS_FILE = "error_analysis.md"
PCK_FILE = "pck.md"
BOX_SOURCES = {"gt": "gt", "det": "detector", "results": "results"}  # config value -> coco_metric label key


@dataclass(frozen=True)
class ReportSettings:
    """What is written besides the results: metric, error analysis, gallery, PCK."""

    format_only: bool = False  # test-dev: results file only (no ground truth to score against)
    box_source: str = "gt"  # "gt" | "det" | "results" (a results file of unknown boxes): labels the AP column
    gallery_size: int = 16  # worst persons in the PNG (0 = none)
    pck: bool | None = None  # None = on for single-person sets (keypoint set named lspet*)
    pck_alpha: float = 0.2
    run_label: str = "evaluation"


def output_files(out_dir: str | Path, report: ReportSettings) -> list[Path]:
    """Every file :func:`write_report` may write into ``out_dir`` (checked against the inputs first)."""
    names = [RESULTS_FILE, METRICS_FILE, TABLE_FILE, ANALYSIS_FILE, PCK_FILE]
    return [Path(out_dir) / name for name in names] + ([_gallery_file(out_dir, report)] if report.gallery_size > 0 else [])


def _gallery_file(out_dir: str | Path, report: ReportSettings) -> Path:
    return Path(out_dir) / f"worst_{report.gallery_size}.png"


def matched_predictions(analysis: ErrorAnalysis, results: Sequence[Mapping]) -> dict[int, np.ndarray]:
    """Annotation id -> predicted keypoints of the result the OKS matching assigned to it."""
    return {m.annotation_id: np.asarray(results[m.result_index]["keypoints"]) for m in analysis.matches}


def error_class_table(analysis: ErrorAnalysis) -> str:
    """Markdown: counts and shares of good/jitter/inversion/swap/miss over all matched keypoints."""
    totals = analysis.totals
    overall = max(sum(totals.values()), 1)
    lines = ["| error class | keypoints | share (%) |", "|---|---|---|"]
    lines += [f"| {name} | {totals[name]} | {100.0 * totals[name] / overall:.1f} |" for name in ERROR_CLASSES]
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    coco: COCO,
    results: list[dict],
    keypoint_set: KeypointSet,
    settings: Mapping[str, Any],
    report: ReportSettings,
    img_dir: str | Path | None = None,
    pck_predictions: Mapping[int, np.ndarray] | None = None,
    extra: Mapping[str, Any] | None = None,
    skipped: SkipCounts | None = None,
) -> dict[str, Any]:
    """Write results + metrics + analysis into ``out_dir``, print the tables; return metrics.json's content.

    ``pck_predictions`` (annotation id -> keypoints) gives PCK one prediction per GT box; without it
    the OKS matching of the error analysis decides. ``extra`` (e.g. throughput) goes into metrics.json.
    ``skipped`` (what the tolerance options left out of ``coco`` and ``results``) is said under the
    metrics table and stored in metrics.json, so a number computed on fewer images says so.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    results_path.write_text(json.dumps(results))
    print(f"results: {len(results)} person poses -> {results_path}", flush=True)
    metrics: dict[str, Any] = {"results_file": str(results_path), "settings": dict(settings), **dict(extra or {})}
    skip_line = ""
    if skipped is not None:
        metrics["skipped"] = dict(skipped)
        skip_line = f"\n\n{skipped.summary()} (left out of the evaluation: ground truth and predictions alike)"
    if report.format_only:
        print("format_only: results written, no metric computed (no ground-truth keypoints)" + skip_line, flush=True)
        return metrics

    sigmas = keypoint_set.sigmas
    stats = evaluate_coco_keypoints(coco, results, sigmas=sigmas)
    table = format_stats_table({report.run_label: stats}, BOX_SOURCES[report.box_source]) + skip_line
    metrics.update({"box_source": BOX_SOURCE_LABELS[BOX_SOURCES[report.box_source]], "stats": stats})
    print(table, flush=True)
    (out / TABLE_FILE).write_text(table + "\n")

    analysis = analyze_errors(coco, results, keypoint_set)
    classes = error_class_table(analysis)
    (out / ANALYSIS_FILE).write_text(
        f"# Error analysis ({keypoint_set.name})\n\n## Per keypoint\n\n{analysis.to_markdown()}\n\n"
        f"## Error classes (Ronchi & Perona 2017)\n\n{classes}\n"
    )
    print(classes, flush=True)
    metrics["error_classes"] = analysis.totals
    if report.gallery_size > 0 and img_dir is not None and analysis.matches:
        gallery = render_worst_gallery(
            analysis, coco, results, img_dir, keypoint_set, _gallery_file(out, report), n=report.gallery_size
        )
        metrics["gallery"] = str(gallery)

    if report.pck if report.pck is not None else pck_applies(keypoint_set):
        chosen = pck_predictions if pck_predictions is not None else matched_predictions(analysis, results)
        pck = annotation_pck(coco, keypoint_set, chosen, report.pck_alpha)
        (out / PCK_FILE).write_text(pck.to_markdown() + "\n")
        print(pck.to_markdown(), flush=True)
        metrics["pck"] = {
            "alpha": pck.alpha,
            "limbs": pck.limbs,
            "num_limb_joints": len(pck.limb_ids),
            "all_joints": pck.all_joints,
            "num_joints": keypoint_set.num_joints,
            "num_persons": pck.num_persons,
            "per_joint": dict(zip(pck.joint_names, [None if np.isnan(v) else float(v) for v in pck.per_joint], strict=True)),
        }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    print(f"metrics -> {out / METRICS_FILE}", flush=True)
    return metrics
