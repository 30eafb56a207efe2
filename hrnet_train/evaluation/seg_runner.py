"""evaluate.py for segmentation networks: class maps of a split -> mIoU, per-class IoU table, overlay picture.

Sources: a checkpoint of ours (its class set is in its hyper_parameters) or an official-format ``.pth``
of a segmentation architecture (``model=hrnet_w48_seg``; the trainer's FullModel layout with ``model.``
prefixes and ``loss.*`` entries too), loaded strictly by :func:`hrnet_train.trained_model.load_trained_model`.
The data section is a segmentation one (``data=seg_synthetic | cityscapes | seg_folder | coco_person``)
whose class names must be the network's. Inference runs in ``Trainer.validate`` around the shared loop
(:class:`~hrnet_train.evaluation.seg_validation.SegValidation`): under DDP each rank predicts its share
and the per-image confusion matrices are gathered with every image counted once.

Written to ``output_dir``: ``metrics.json`` (mIoU, pixel/mean accuracy, per-class IoU, labelled pixel
count, settings, throughput), ``miou.md`` (the per-class table), ``overlays.png`` (image | ground truth |
prediction of the first ``seg.num_vis_images`` images) and, with ``save_predictions=true``,
``predictions/<name>.png`` per image: Cityscapes labelIds (what the benchmark server reads), class ids
for other class sets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch

from hrnet_train.config_schema import ConfigError, EvalConfig, EvaluateConfig, SegDataConfig, validate_seg_data_config
from hrnet_train.data.seg_cityscapes import CITYSCAPES_CLASSES, write_label_id_png
from hrnet_train.data.seg_dataset import SegmentationDataset, pad_collate
from hrnet_train.data.seg_sources import build_seg_dataset, seg_classes_of
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.evaluation.eval_trainer import evaluation_trainer
from hrnet_train.evaluation.miou import SegScores, iou_table
from hrnet_train.evaluation.report_writer import METRICS_FILE
from hrnet_train.evaluation.seg_overlay import save_panel
from hrnet_train.evaluation.seg_validation import SegValidation, overlay_sheet, seg_stats
from hrnet_train.seg_classes import SegClasses
from hrnet_train.trained_model import TrainedModel

TABLE_FILE = "miou.md"
OVERLAYS_FILE = "overlays.png"
PREDICTIONS_DIR = "predictions"
# evaluate.py settings that belong to one task: the other task's checkpoints refuse them when changed.
SEGMENTATION_SETTINGS = ("seg", "save_predictions")
KEYPOINT_SETTINGS = ("keypoints", "codec", "flip_shift", "post_process", "format_only", "batch_size", "gallery_size",
                     "pck", "pck_alpha")  # and every EvalConfig key (boxes, det_file, flip_test, nms, ...)
EVALUATE_DATA_KEYS = ("split", "ann_file", "img_dir")  # what conf/eval.yaml adds to every data section


def segmentation_data(data: Mapping[str, Any]) -> SegDataConfig | None:
    """evaluate.py's data section as a segmentation data config (the split to score as its val split), or
    None for keypoint data (no ``dataset`` field). Raises ConfigError naming a bad field."""
    if "dataset" not in data:
        return None
    raw = {k: v for k, v in data.items() if k not in EVALUATE_DATA_KEYS}
    ann_file, img_dir = data.get("ann_file"), data.get("img_dir")
    if (ann_file or img_dir) and raw.get("dataset") != "coco_person":
        raise ConfigError("data.ann_file / data.img_dir: COCO files, for data.dataset=coco_person only "
                          "(other segmentation sets: data.root and data.split)")
    split = data.get("split") or raw.get("val_split", "val")
    if split != raw.get("val_split", "val"):  # another split: its own files, not the val split's overrides
        raw.update(val_split=split, val_list=None, val_ann_file=None, val_img_dir=None)
    raw.update({key: value for key, value in (("val_ann_file", ann_file), ("val_img_dir", img_dir)) if value})
    return validate_seg_data_config(raw)


def refuse_other_task_settings(config: EvaluateConfig, segmentation: bool) -> None:
    """Settings of the other task must keep their defaults: ``boxes=det`` for a segmentation network, or
    ``seg.flip=true`` for a keypoint one, is a mistake, not something to ignore."""
    names = KEYPOINT_SETTINGS if segmentation else SEGMENTATION_SETTINGS
    changed = [name for name in names if getattr(config, name) != _default(name)]
    if segmentation:
        # null (flip_test: "the model's own") is no setting; anything else than the default is one
        changed += [f.name for f in fields(EvalConfig) if getattr(config.eval, f.name) not in (None, getattr(EvalConfig(), f.name))]
    if changed:
        task, other = ("segmentation", "keypoint") if segmentation else ("keypoint", "segmentation")
        raise ConfigError(f"{', '.join(changed)}: {other} settings, but {config.ckpt} is a {task} network")


def _default(name: str) -> Any:
    field = next(f for f in fields(EvaluateConfig) if f.name == name)
    return field.default_factory() if field.default is MISSING else field.default  # type: ignore[misc]


class SegEvaluator(pl.LightningModule):
    """``Trainer.validate`` around :class:`SegValidation`; afterwards every rank holds ``confusion``."""

    def __init__(self, trained: TrainedModel, validation: SegValidation, predictions_dir: Path | None) -> None:
        super().__init__()
        self.model = trained.network
        self.validation = validation
        self.predictions_dir = predictions_dir
        self.confusion: np.ndarray | None = None

    def on_validation_epoch_start(self) -> None:
        self.validation.start()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        for name, prediction in self.validation.add(self.model, batch):
            if self.predictions_dir is not None:
                write_prediction(self.predictions_dir / f"{name}.png", prediction.cpu().numpy(), self.validation.classes)

    def on_validation_epoch_end(self) -> None:
        self.confusion = self.validation.gather(self.trainer.world_size)


def write_prediction(path: Path, prediction: np.ndarray, classes: SegClasses) -> None:
    """A class map as an 8-bit PNG: Cityscapes labelIds (benchmark server format), else the class ids."""
    if classes.names == CITYSCAPES_CLASSES.names:
        write_label_id_png(path, prediction)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), prediction.astype(np.uint8)):
        raise OSError(f"cannot write prediction PNG: {path}")


def evaluate_segmentation(config: EvaluateConfig, trained: TrainedModel, data: SegDataConfig | None) -> dict[str, Any] | None:
    """Everything evaluate.py does for a segmentation network; returns metrics.json's content (None on
    DDP ranks other than 0). Raises ConfigError for a bad setting or input found before inference."""
    refuse_other_task_settings(config, segmentation=True)
    if data is None:
        raise ConfigError(f"data: {config.ckpt} is a segmentation network; score it on segmentation data "
                          f"(data=seg_synthetic | cityscapes | seg_folder | coco_person), got data.name={config.data.get('name')!r}")
    assert trained.classes is not None
    classes = seg_classes_of(data)
    if classes.names != trained.classes.names:
        raise ConfigError(f"data: the classes of {data.name} ({classes.name}: {list(classes.names)}) are not the "
                          f"network's ({trained.classes.name}: {list(trained.classes.names)})")
    try:
        if data.generate_synthetic:
            ensure_synthetic_dataset(data.root, **data.synthetic)
        dataset = build_seg_dataset(data, data.val_split, train=False)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error)) from None
    out_dir = Path(config.output_dir).expanduser()
    predictions_dir = out_dir / PREDICTIONS_DIR if config.save_predictions else None
    align_corners = bool(trained.network.spec.align_corners)
    module = SegEvaluator(trained, SegValidation(trained.classes, config.seg, align_corners), predictions_dir)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=data.val_batch_size, shuffle=False, num_workers=config.loader_workers(),
        pin_memory=torch.cuda.is_available(), collate_fn=pad_collate,
    )
    trainer = evaluation_trainer(config)
    start = time.perf_counter()
    trainer.validate(module, dataloaders=loader, verbose=False)
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return None
    assert module.confusion is not None
    timing = {"images": len(dataset), "seconds": seconds, "images_per_second": len(dataset) / seconds if seconds > 0 else 0.0,
              "world_size": trainer.world_size}
    settings = {**trained.source, "classes": classes.name, "dataset": data.dataset, "root": data.root,
                "split": data.val_split, "align_corners": align_corners, "seg": _plain_settings(config),
                "batch_size": data.val_batch_size, "accelerator": config.accelerator, "devices": config.devices,
                "precision": config.precision}
    return _write_outputs(out_dir, SegScores.from_confusion(module.confusion), classes, dataset, module.validation,
                          settings, timing, predictions_dir)


def _plain_settings(config: EvaluateConfig) -> dict[str, Any]:
    seg = config.seg
    return {"scales": list(seg.scales), "flip": seg.flip, "base_size": seg.base_size, "window": seg.window}


def _write_outputs(
    out_dir: Path, scores: SegScores, classes: SegClasses, dataset: SegmentationDataset, validation: SegValidation,
    settings: Mapping[str, Any], timing: Mapping[str, Any], predictions_dir: Path | None,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = iou_table(scores, classes.names)
    (out_dir / TABLE_FILE).write_text(f"# {settings['model']} on {dataset.source}\n\n{table}\n")
    sheet = overlay_sheet(validation.vis, classes)
    overlays = None if sheet is None else str(save_panel(out_dir / OVERLAYS_FILE, sheet))
    metrics = {"task": "segmentation", "settings": dict(settings), "stats": seg_stats(scores, classes),
               "throughput": dict(timing), "overlays": overlays,
               "predictions": None if predictions_dir is None else str(predictions_dir)}
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    print(table, flush=True)
    print(f"inference: {timing['images']} images in {timing['seconds']:.1f} s ({timing['world_size']} process(es)) "
          f"-> {out_dir / METRICS_FILE}", flush=True)
    return metrics
