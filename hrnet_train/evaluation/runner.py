"""The evaluation run behind ``evaluate.py``: load a network, predict every person box, report.

One path serves every source of poses so their numbers are comparable: a checkpoint of ours
(model, codec and keypoint set come from its ``hyper_parameters``), an official-format ``.pth``
state_dict (architecture named in the config, strict key check), an existing COCO results file,
or the MediaPipe baseline (``mediapipe_baseline.py``). All of them end in :func:`write_report`,
which writes the results JSON, ``metrics.json`` (stats + the settings that produced them), the
box-labelled markdown table, the per-keypoint error analysis, a gallery of the worst persons and,
for single-person sets such as LSPET, torso PCK.

Inference runs through a Lightning ``Trainer.validate`` (CPU/GPU, bf16, DDP): under DDP each rank
decodes its DistributedSampler share, the decoded tables are gathered with
``torch.distributed.all_gather_object`` (ranks may hold different counts) and deduplicated by
dataset index, so N devices give the results of one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from pycocotools.coco import COCO
from torch import nn

from hrnet_train.codecs import create_codec
from hrnet_train.data.coco import TopDownCocoDataset, resolve_coco_paths
from hrnet_train.data.keypoints import KeypointSet, load_keypoint_set
from hrnet_train.evaluation.analysis import ERROR_CLASSES, ErrorAnalysis, analyze_errors
from hrnet_train.evaluation.coco_metric import (
    BOX_SOURCE_LABELS,
    evaluate_coco_keypoints,
    format_stats_table,
    load_coco,
    load_results,
)
from hrnet_train.evaluation.gallery import render_worst_gallery
from hrnet_train.evaluation.pck import annotation_pck, pck_applies
from hrnet_train.evaluation.predictions import DecodedInstances, PostprocessConfig, PredictionAccumulator, flip_test
from hrnet_train.models import create_model, load_official_state_dict
from hrnet_train.paths import config_dir
from hrnet_train.sizes import format_size, parse_size
from hrnet_train.training.checkpointing import inference_state_dict

PRECISIONS = {"32": "32-true", "32-true": "32-true", "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed"}
BOX_SOURCES = {"gt": "gt", "det": "detector"}  # config value -> coco_metric box-source label key
RESULTS_FILE = "keypoint_results.json"
METRICS_FILE = "metrics.json"
TABLE_FILE = "metrics.md"
ANALYSIS_FILE = "error_analysis.md"
PCK_FILE = "pck.md"
DEFAULT_CODEC = "legacy"  # official checkpoints were trained with the reference codec
DEFAULT_KEYPOINTS = "coco17"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class InferenceSettings:
    """How predictions are made: boxes, flip test, batching, devices, precision."""

    boxes: str = "gt"
    det_file: str | None = None
    det_score_thr: float = 0.0
    flip_test: bool = True
    batch_size: int = 32
    num_workers: int = 2
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32"

    def __post_init__(self) -> None:
        if self.boxes not in BOX_SOURCES:
            raise ValueError(f"boxes: expected one of {sorted(BOX_SOURCES)}, got {self.boxes!r}")
        if self.boxes == "det" and not self.det_file:
            raise ValueError("det_file: required with boxes=det (a COCO detection results JSON)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {sorted(PRECISIONS)}, got {self.precision!r}")
        for name in ("batch_size", "devices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a value >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: expected a value >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class ReportSettings:
    """What is written besides the results: metric, error analysis, gallery, PCK."""

    format_only: bool = False  # test-dev: results file only (no ground truth to score against)
    box_source: str = "gt"  # "gt" | "det": labels the AP column
    gallery_size: int = 16  # worst persons in the PNG (0 = none)
    pck: bool | None = None  # None = on for single-person sets (keypoint set named lspet*)
    pck_alpha: float = 0.2
    run_label: str = "evaluation"


@dataclass
class LoadedNetwork:
    """A network in eval mode with the codec and keypoint set its heatmaps are read with."""

    model: nn.Module
    keypoints: KeypointSet
    codec: Any  # HeatmapCodec
    color_rgb: bool
    source: dict[str, Any] = field(default_factory=dict)  # ckpt, kind, model name, input size


# --------------------------------------------------------------------------- loading


def _plain(node: Any) -> Any:
    """OmegaConf nodes to builtin containers (other values unchanged)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        return node
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def default_codec_config(name: str = DEFAULT_CODEC) -> dict[str, Any]:
    """The ``conf/codec/<name>.yaml`` options (used for ``.pth`` files when no codec is configured)."""
    path = config_dir() / "codec" / f"{name}.yaml"
    with path.open() as handle:
        return dict(yaml.safe_load(handle))


def build_codec(codec_config: Mapping[str, Any], input_size: tuple[int, int], overrides: Mapping[str, Any]) -> Any:
    """A codec from its config with ``overrides`` (None values ignored) such as flip_shift/post_process."""
    options = {k: v for k, v in dict(codec_config).items() if not str(k).startswith("_")}
    options.update({k: v for k, v in overrides.items() if v is not None})
    if "name" not in options:
        raise ValueError(f"codec: config has no 'name' (expected legacy, dark or udp), got {sorted(options)}")
    return create_codec(options.pop("name"), input_size, **options)


def _lightning_hparams(path: Path) -> dict[str, Any] | None:
    """``(hyper_parameters)`` when ``path`` is a checkpoint of ours, None for a bare state_dict."""
    content = torch.load(path, map_location="cpu", weights_only=True)
    hparams = content.get("hyper_parameters") if isinstance(content, Mapping) else None
    if isinstance(hparams, Mapping) and "model" in hparams and "state_dict" in content:
        return {"hparams": dict(hparams), "checkpoint": content}
    return None


def load_network(
    ckpt: str | Path,
    model_config: Mapping[str, Any] | None = None,
    keypoints_config: str | Mapping[str, Any] | None = None,
    codec_config: Mapping[str, Any] | None = None,
    input_size: tuple[int, int] = (256, 192),
    color_rgb: bool = True,
    codec_overrides: Mapping[str, Any] | None = None,
) -> LoadedNetwork:
    """Rebuild the network of ``ckpt`` with an exact key check.

    A Lightning checkpoint of ours carries model, keypoint set, codec, input size and colour order;
    ``keypoints_config``/``codec_config`` given here replace its own. A bare (official-format)
    state_dict needs ``model_config``; ``input_size``/``color_rgb`` and the codec (default legacy)
    come from the arguments. Raises ValueError listing missing/unexpected/mis-shaped keys.
    """
    path = Path(ckpt).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt: checkpoint file not found: {path}")
    overrides = dict(codec_overrides or {})
    ours = _lightning_hparams(path)
    if ours is not None:
        hparams = ours["hparams"]
        keypoints = load_keypoint_set(keypoints_config if keypoints_config is not None else hparams["keypoints"])
        model = create_model(hparams["model"], num_joints=keypoints.num_joints)
        load_official_state_dict(model, inference_state_dict(ours["checkpoint"]))
        input_size = tuple(hparams["input_size"])  # type: ignore[assignment]
        codec = build_codec(codec_config if codec_config is not None else hparams["codec"], input_size, overrides)
        color_rgb = bool(hparams.get("color_rgb", True))
        kind, model_name = "lightning", str(hparams.get("model_name", hparams["model"].get("name")))
    else:
        if model_config is None:
            raise ValueError(
                f"ckpt={path} is a plain state_dict (no hrnet-train hyper_parameters): name its architecture, "
                f"e.g. model=hrnet_w32"
            )
        keypoints = load_keypoint_set(keypoints_config if keypoints_config is not None else DEFAULT_KEYPOINTS)
        model = create_model(dict(model_config), num_joints=keypoints.num_joints)
        load_official_state_dict(model, path)
        codec = build_codec(codec_config if codec_config is not None else default_codec_config(), input_size, overrides)
        kind, model_name = "state_dict", str(dict(model_config).get("name"))
    source = {"ckpt": str(path), "kind": kind, "model": model_name, "input_size": format_size(input_size)}
    return LoadedNetwork(model.eval(), keypoints, codec, color_rgb, source)


# --------------------------------------------------------------------------- inference


class HeatmapEvaluator(pl.LightningModule):
    """Runs the network (with flip test) over a validation loader and decodes every batch.

    After ``Trainer.validate`` every rank holds ``instances``: all ranks' decoded boxes, one row
    per dataset index.
    """

    def __init__(self, network: LoadedNetwork, flip: bool) -> None:
        super().__init__()
        self.model = network.model
        self.codec = network.codec
        self.keypoints = network.keypoints
        self.flip = flip
        self.instances: DecodedInstances | None = None
        self._accumulator: PredictionAccumulator | None = None

    def on_validation_epoch_start(self) -> None:
        self._accumulator = PredictionAccumulator(self.codec, self.keypoints.sigmas)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        images = batch["image"]
        if self.flip:
            heatmaps = flip_test(self.model, images, self.codec, self.keypoints.flip_index)
        else:
            output = self.model(images)
            heatmaps = output[-1] if isinstance(output, (list, tuple)) else output  # last stage's maps
        assert self._accumulator is not None
        self._accumulator.add(heatmaps.float(), batch["meta"])

    def on_validation_epoch_end(self) -> None:
        assert self._accumulator is not None
        local = self._accumulator.instances()
        if self.trainer.world_size > 1:
            parts: list[dict[str, np.ndarray] | None] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, local.as_arrays())
            local = DecodedInstances.concatenate([DecodedInstances(**p) for p in parts if p is not None])
        self.instances = local.deduplicate()


def predict_instances(
    network: LoadedNetwork, dataset: TopDownCocoDataset, settings: InferenceSettings
) -> tuple[DecodedInstances | None, dict[str, float]]:
    """Decoded poses of every box of ``dataset`` (None on DDP ranks other than 0) and throughput."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=settings.num_workers,
        pin_memory=torch.cuda.is_available(),
    )
    module = HeatmapEvaluator(network, settings.flip_test)
    trainer = pl.Trainer(
        accelerator=settings.accelerator,
        devices=settings.devices,
        strategy="ddp" if settings.devices > 1 else "auto",
        precision=PRECISIONS[settings.precision],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
    )
    start = time.perf_counter()
    trainer.validate(module, dataloaders=loader, verbose=False)
    seconds = time.perf_counter() - start
    assert module.instances is not None
    count = len(module.instances)
    timing = {"instances": count, "seconds": seconds, "instances_per_second": count / seconds if seconds > 0 else 0.0,
              "world_size": trainer.world_size}
    return (module.instances if trainer.is_global_zero else None), timing


# --------------------------------------------------------------------------- reporting


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
) -> dict[str, Any]:
    """Write results + metrics + analysis into ``out_dir``, print the tables; return metrics.json's content.

    ``pck_predictions`` (annotation id -> keypoints) gives PCK one prediction per GT box; without it
    the OKS matching of the error analysis decides. ``extra`` (e.g. throughput) goes into metrics.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    results_path.write_text(json.dumps(results))
    print(f"results: {len(results)} person poses -> {results_path}", flush=True)
    metrics: dict[str, Any] = {"results_file": str(results_path), "settings": dict(settings), **dict(extra or {})}
    if report.format_only:
        print("format_only: results written, no metric computed (no ground-truth keypoints)", flush=True)
        return metrics

    sigmas = keypoint_set.sigmas
    stats = evaluate_coco_keypoints(coco, results, sigmas=sigmas)
    table = format_stats_table({report.run_label: stats}, BOX_SOURCES[report.box_source])
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
            analysis, coco, results, img_dir, keypoint_set, out / f"worst_{report.gallery_size}.png", n=report.gallery_size
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


# --------------------------------------------------------------------------- config entry point


def _find(value: str, root: Path | None, exists: Any, field_name: str) -> Path:
    """An existing path from a config value: absolute, else under ``root``, else relative to the cwd."""
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [*([root / path] if root is not None else []), path]
    for candidate in candidates:
        if exists(candidate):
            return candidate
    raise FileNotFoundError(f"{field_name}: not found; tried {', '.join(str(c) for c in candidates)}")


def resolve_annotation_paths(data: Mapping[str, Any], need_images: bool) -> tuple[Path, Path | None]:
    """``(annotation file, image dir)`` from the data config.

    ``ann_file``/``img_dir`` (or the training config's ``val_ann_file``/``val_img_dir``) override the
    defaults; they may be absolute, under ``root``, or relative to the working directory. Otherwise
    ``root`` + ``split`` (default ``val_split``) in the standard or official COCO layout. Without
    ``need_images`` (scoring a results file) the image dir is optional: None when not found.
    """
    ann_file = data.get("ann_file") or data.get("val_ann_file")
    img_dir = data.get("img_dir") or data.get("val_img_dir")
    root = None if data.get("root") in (None, "???") else Path(str(data["root"])).expanduser()
    split = str(data.get("split") or data.get("val_split") or "val2017")
    if root is None and ann_file is None:
        raise ValueError("data.root: give the dataset root, or data.ann_file (and data.img_dir) as paths")
    if root is not None and ann_file is None and img_dir is None:
        try:
            return resolve_coco_paths(root, split)
        except FileNotFoundError:
            if need_images:
                raise
    ann = _find(str(ann_file or f"annotations/person_keypoints_{split}.json"), root, Path.is_file, "data.ann_file")
    if img_dir is not None:
        return ann, _find(str(img_dir), root, Path.is_dir, "data.img_dir")
    if root is not None:
        for candidate in (root / "images" / split, root / split):
            if candidate.is_dir():
                return ann, candidate
    if need_images:
        raise ValueError(f"data.img_dir: no image directory for {ann}; give data.img_dir")
    return ann, None


def _selected(cfg: Mapping[str, Any], key: str) -> Any:
    value = cfg.get(key)
    return None if value is None else _plain(value)


def run_from_config(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """Everything ``evaluate.py`` does, from its (Hydra) config; returns metrics.json's content
    (None on DDP ranks other than 0). See ``conf/eval.yaml`` for the fields."""
    data = dict(_plain(cfg["data"]))
    if cfg.get("output_dir") in (None, ""):
        raise ValueError("output_dir: required (evaluate.py sets it to Hydra's run dir)")
    out_dir = Path(str(cfg["output_dir"])).expanduser()
    postprocess = PostprocessConfig(
        in_vis_thre=float(cfg["in_vis_thre"]), nms=str(cfg["nms"]), oks_thre=float(cfg["oks_thre"]),
        soft_update_scores=bool(cfg.get("soft_update_scores", False)),
    )
    report = ReportSettings(
        format_only=bool(cfg["format_only"]),
        box_source=str(cfg["boxes"]),
        gallery_size=int(cfg["gallery_size"]),
        pck=cfg.get("pck"),
        pck_alpha=float(cfg["pck_alpha"]),
    )
    if str(cfg["boxes"]) not in BOX_SOURCES:
        raise ValueError(f"boxes: expected one of {sorted(BOX_SOURCES)}, got {cfg['boxes']!r}")
    if (cfg.get("ckpt") is None) == (cfg.get("results") is None):
        raise ValueError("give exactly one of ckpt=<.ckpt or .pth file> or results=<COCO results json>")

    if cfg.get("results") is not None:
        return _score_results_file(cfg, data, out_dir, report)

    settings = InferenceSettings(
        boxes=str(cfg["boxes"]),
        det_file=cfg.get("det_file"),
        det_score_thr=float(cfg["det_score_thr"]),
        flip_test=bool(cfg["flip_test"]),
        batch_size=int(cfg["batch_size"]),
        num_workers=int(cfg["num_workers"]),
        accelerator=str(cfg["accelerator"]),
        devices=int(cfg["devices"]),
        precision=str(cfg["precision"]),
    )
    network = load_network(
        cfg["ckpt"],
        model_config=_selected(cfg, "model"),
        keypoints_config=_selected(cfg, "keypoints"),
        codec_config=_selected(cfg, "codec"),
        input_size=parse_size(str(data.get("input_size", "256x192")), "data.input_size"),
        color_rgb=bool(data.get("color_rgb", True)),
        codec_overrides={"flip_shift": cfg.get("flip_shift"), "post_process": cfg.get("post_process")},
    )
    ann_file, img_dir = resolve_annotation_paths(data, need_images=True)
    dataset = TopDownCocoDataset(
        ann_file, img_dir, network.keypoints, network.codec, train=False, boxes=settings.boxes,
        det_file=settings.det_file, det_score_thr=settings.det_score_thr, color_rgb=network.color_rgb,
    )
    instances, timing = predict_instances(network, dataset, settings)
    if instances is None:
        return None
    results = instances.to_coco_results(network.keypoints.sigmas, postprocess)
    print(
        f"inference: {timing['instances']} boxes in {timing['seconds']:.1f} s "
        f"({timing['instances_per_second']:.1f} boxes/s, {timing['world_size']} process(es))",
        flush=True,
    )
    codec_settings = {"name": network.codec.name, "flip_shift": network.codec.flip_shift, "sigma": network.codec.sigma}
    if hasattr(network.codec, "post_process"):
        codec_settings["post_process"] = network.codec.post_process
    run_settings = {
        **network.source,
        "keypoints": network.keypoints.name,
        "ann_file": str(ann_file),
        "img_dir": str(img_dir),
        **asdict(settings),
        "codec": codec_settings,
        "postprocess": asdict(postprocess),
        "color_rgb": network.color_rgb,
    }
    label = f"{network.source['model']} {network.source['input_size']} {network.codec.name}" + (
        " flip" if settings.flip_test else ""
    )
    pck_predictions = None
    if settings.boxes == "gt":  # one prediction per GT box: PCK reads it directly, before NMS
        annotation_ids = [dataset.records[i].annotation_id for i in instances.indices]
        pck_predictions = dict(zip(annotation_ids, instances.keypoints, strict=True))
    return write_report(
        out_dir, dataset.coco, results, network.keypoints, run_settings,
        replace(report, run_label=label), img_dir, pck_predictions,
        extra={"throughput": timing},
    )


def _score_results_file(cfg: Mapping[str, Any], data: Mapping[str, Any], out_dir: Path, report: ReportSettings) -> dict[str, Any]:
    """``results=<file>``: score an existing COCO results file with the same metric and analysis."""
    if report.format_only:
        raise ValueError("format_only=true with results=<file>: nothing to do (the results file exists)")
    keypoints = load_keypoint_set(_selected(cfg, "keypoints") or DEFAULT_KEYPOINTS)
    ann_file, img_dir = resolve_annotation_paths(data, need_images=False)
    coco = load_coco(ann_file)
    results = load_results(Path(str(cfg["results"])).expanduser(), coco, keypoints.sigmas)
    settings = {"results": str(cfg["results"]), "ann_file": str(ann_file), "keypoints": keypoints.name, "boxes": report.box_source}
    label = Path(str(cfg["results"])).name
    return write_report(
        out_dir, coco, results, keypoints, settings, replace(report, run_label=label), img_dir
    )
