"""The evaluation run behind ``evaluate.py``: validated settings -> network -> poses of every box -> report.

The checkpoint's task decides the path: segmentation networks go to
:func:`hrnet_train.evaluation.seg_runner.evaluate_segmentation` (mIoU), keypoint networks stay here.

One path serves every source of poses so their numbers are comparable: a checkpoint of ours or an
official-format ``.pth`` (both through :func:`hrnet_train.trained_model.load_trained_model`), or an
existing COCO results file. All of them end in :func:`hrnet_train.evaluation.report_writer.write_report`;
face models (the model's task decides) in :func:`hrnet_train.evaluation.face_report.write_face_report`
(NME, FR, AUC, per-landmark table, CED plot).

Inference runs through a Lightning ``Trainer.validate`` (CPU/GPU, bf16, DDP) around the shared
validation loop (:class:`hrnet_train.evaluation.validation.PoseValidation`), the same one training
uses for ``val/AP``: under DDP each rank decodes its DistributedSampler share, the tables are
gathered and deduplicated, so N devices give the results of one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from hrnet_train.config_schema import ConfigError, EvalConfig, EvaluateConfig, check_accelerator, validate_evaluate_config
from hrnet_train.data.coco import TopDownCocoDataset, checked_annotations, resolve_coco_paths
from hrnet_train.data.seg_sources import seg_classes_of
from hrnet_train.data.skips import SkipCounts
from hrnet_train.decoding.instances import DecodedInstances
from hrnet_train.evaluation.coco_metric import load_coco, load_results
from hrnet_train.evaluation.face_report import write_face_report
from hrnet_train.evaluation.eval_trainer import evaluation_trainer
from hrnet_train.evaluation.report_writer import ReportSettings, output_files, write_report
from hrnet_train.evaluation.seg_runner import evaluate_segmentation, refuse_other_task_settings, segmentation_data
from hrnet_train.evaluation.validation import PoseValidation, gt_box_predictions, leave_out_unread
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.output_guard import refuse_overwriting_inputs
from hrnet_train.trained_model import DEFAULT_KEYPOINTS, SEGMENTATION_TASK, TrainedModel, load_trained_model


class PoseEvaluator(pl.LightningModule):
    """``Trainer.validate`` wrapper of :class:`PoseValidation`; afterwards every rank holds ``instances``."""

    def __init__(self, trained: TrainedModel, validation: PoseValidation) -> None:
        super().__init__()
        self.model = trained.network
        self.validation = validation
        self.instances: DecodedInstances | None = None

    def on_validation_epoch_start(self) -> None:
        self.validation.start()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self.validation.add(self.validation.heatmaps(self.model, batch["image"]), batch["meta"])

    def on_validation_epoch_end(self) -> None:
        self.instances = self.validation.gather(self.trainer.world_size)


def predict_instances(
    trained: TrainedModel, dataset: TopDownCocoDataset, config: EvaluateConfig
) -> tuple[DecodedInstances | None, dict[str, float]]:
    """Decoded poses of every box of ``dataset`` (None on DDP ranks other than 0) and throughput."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.loader_workers(),
        pin_memory=torch.cuda.is_available(),
    )
    module = PoseEvaluator(trained, PoseValidation(trained.codec, trained.keypoints, config.eval))
    trainer = evaluation_trainer(config)
    start = time.perf_counter()
    trainer.validate(module, dataloaders=loader, verbose=False)
    seconds = time.perf_counter() - start
    assert module.instances is not None
    count = len(module.instances)
    timing = {"instances": count, "seconds": seconds, "instances_per_second": count / seconds if seconds > 0 else 0.0,
              "world_size": trainer.world_size}
    return (module.instances if trainer.is_global_zero else None), timing


def evaluation_paths(data: Mapping[str, Any], need_images: bool) -> tuple[Path, Path | None]:
    """``(annotation file, image dir)`` of the split to evaluate, by the rule training uses.

    ``data.ann_file``/``data.img_dir``/``data.split`` name the split; they default to the training
    config's ``val_ann_file``/``val_img_dir``/``val_split``.
    """
    root = data.get("root")
    return resolve_coco_paths(
        None if root in (None, "???") else str(root),
        str(data.get("split") or data.get("val_split") or "val2017"),
        data.get("ann_file") or data.get("val_ann_file"),
        data.get("img_dir") or data.get("val_img_dir"),
        need_images=need_images,
    )


def model_settings(settings: EvalConfig, trained: TrainedModel) -> EvalConfig:
    """The evaluation settings for this model: ``flip_test`` null becomes the model's own (a checkpoint's
    eval.flip_test; a pose .pth: on, the reference; a face .pth: off, the official face code has none),
    and a face model needs its annotated face boxes (boxes=gt)."""
    if trained.task == "face" and settings.boxes != "gt":
        raise ConfigError(f"boxes: a face model crops the annotated face boxes, expected gt, got {settings.boxes!r}")
    return settings if settings.flip_test is not None else replace(settings, flip_test=trained.flip_test)


def run_from_config(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """Validate evaluate.py's (Hydra) config and run it; see ``conf/eval.yaml`` for the fields.

    Raises ConfigError (exit code 2 in the CLI) for a bad setting or input found before inference.
    """
    config = validate_evaluate_config(cfg)
    check_accelerator(config.accelerator, config.devices, prefix="", cpu_setting="accelerator=cpu")
    return run_evaluation(config)


def run_evaluation(config: EvaluateConfig) -> dict[str, Any] | None:
    """Everything ``evaluate.py`` does; returns metrics.json's content (None on DDP ranks other than 0)."""
    out_dir = Path(config.output_dir).expanduser()
    settings = config.eval
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    report = ReportSettings(
        format_only=config.format_only, box_source=settings.boxes, gallery_size=config.gallery_size,
        pck=config.pck, pck_alpha=config.pck_alpha,
    )
    if config.results is not None:
        return _score_results_file(config, out_dir, report)

    data = config.data
    seg_data = segmentation_data(data)  # None for keypoint data
    try:  # everything that can be wrong with the input shows here, before any inference: exit code 2
        trained = load_trained_model(
            config.ckpt,
            model=config.model,
            keypoints=config.keypoints,
            codec=config.codec,
            codec_overrides={"flip_shift": config.flip_shift, "post_process": config.post_process},
            input_size=data.get("input_size"),
            color_rgb=data.get("color_rgb"),
            classes=None if seg_data is None else seg_classes_of(seg_data),
        )
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error)) from None
    if trained.task == SEGMENTATION_TASK:
        return evaluate_segmentation(config, trained, seg_data)
    refuse_other_task_settings(config, segmentation=False)
    if seg_data is not None:
        raise ConfigError(f"data: {data.get('name')} is segmentation data, and {config.ckpt} is a {trained.task} network")
    settings = model_settings(settings, trained)
    config = replace(config, eval=settings)
    try:
        ann_file, img_dir = evaluation_paths(data, need_images=True)
        _check_outputs(config, out_dir, report, ann_file)
        dataset = TopDownCocoDataset(
            ann_file, img_dir, trained.keypoints, trained.codec, train=False, boxes=settings.boxes,
            det_file=settings.det_file, det_score_thr=settings.det_score_thr, color_rgb=trained.color_rgb,
            skip_corrupt=bool(data.get("skip_corrupt", False)),
            drop_invalid_boxes=bool(data.get("drop_invalid_boxes", False)),
            instances="face" if trained.task == "face" else "person",
        )
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error)) from None
    instances, timing = predict_instances(trained, dataset, config)
    if instances is None:
        return None
    print(
        f"inference: {timing['instances']} boxes in {timing['seconds']:.1f} s "
        f"({timing['instances_per_second']:.1f} boxes/s, {timing['world_size']} process(es))",
        flush=True,
    )
    codec = trained.codec
    codec_settings = {"name": codec.name, "flip_shift": codec.flip_shift, "sigma": codec.sigma}
    if hasattr(codec, "post_process"):
        codec_settings["post_process"] = codec.post_process
    run_settings = {
        **trained.source,
        "keypoints": trained.keypoints.name,
        "ann_file": str(ann_file),
        "img_dir": str(img_dir),
        "boxes": settings.boxes,
        "det_file": settings.det_file,
        "det_score_thr": settings.det_score_thr,
        "flip_test": settings.flip_test,
        "batch_size": config.batch_size,
        "num_workers": config.loader_workers(),
        "accelerator": config.accelerator,
        "devices": config.devices,
        "precision": config.precision,
        "codec": codec_settings,
        "color_rgb": trained.color_rgb,
    }
    label = f"{trained.model_name} {trained.input_size} {codec.name}" + (" flip" if settings.flip_test else "")
    annotation_ids = [dataset.records[i].annotation_id for i in instances.indices]  # one per prediction row
    if trained.task == "face":
        return write_face_report(out_dir, dataset.coco, trained.keypoints, instances, annotation_ids,
                                 {**run_settings, "decode": codec.decode_mode}, label, extra={"throughput": timing})
    validation = PoseValidation(trained.codec, trained.keypoints, settings)
    coco, results, unread = leave_out_unread(dataset.coco, validation.results(instances), instances, dataset.records)
    skipped = SkipCounts(dataset.skips)
    skipped.add("corrupt image", len(unread))
    run_settings["postprocess"] = asdict(validation.postprocess)
    pck_predictions = None
    if settings.boxes == "gt":  # one prediction per GT box: PCK reads it directly, before NMS
        pck_predictions = gt_box_predictions(instances, annotation_ids)
    return write_report(
        out_dir, coco, results, trained.keypoints, run_settings,
        ReportSettings(**{**asdict(report), "run_label": label}), img_dir, pck_predictions,
        extra={"throughput": timing, "skipped_image_ids": sorted(unread)}, skipped=skipped,
    )


def _score_results_file(config: EvaluateConfig, out_dir: Path, report: ReportSettings) -> dict[str, Any]:
    """``results=<file>``: score an existing COCO results file with the same metric and analysis.

    The file's boxes were chosen by whoever made it, so its table is labelled "results-file AP".
    """
    try:
        keypoints = load_keypoint_set(config.keypoints or DEFAULT_KEYPOINTS)
        ann_file, img_dir = evaluation_paths(config.data, need_images=False)
        _check_outputs(config, out_dir, report, ann_file)
        coco = checked_annotations(load_coco(ann_file), keypoints, ann_file, drop_invalid_boxes=False,
                                   skip_corrupt=False, skips=SkipCounts())
        results = load_results(Path(config.results).expanduser(), coco, keypoints.sigmas)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error)) from None
    settings = {"results": str(config.results), "ann_file": str(ann_file), "keypoints": keypoints.name}
    label = Path(str(config.results)).name
    return write_report(
        out_dir, coco, results, keypoints, settings,
        ReportSettings(**{**asdict(report), "box_source": "results", "run_label": label}), img_dir,
    )


def _check_outputs(config: EvaluateConfig, out_dir: Path, report: ReportSettings, ann_file: Path) -> None:
    """No output file of the run may be one of its inputs (``results=<out>/keypoint_results.json``...)."""
    inputs = {"ckpt": config.ckpt, "results": config.results, "annotation": ann_file, "det_file": config.eval.det_file}
    refuse_overwriting_inputs(output_files(out_dir, report), inputs, "choose another output_dir")
