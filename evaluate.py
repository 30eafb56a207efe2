"""Evaluate a pose model with COCO OKS AP: ``python evaluate.py ckpt=<file> data.root=<coco> [key=value ...]``.

Sources: a checkpoint of ours (``.ckpt``), an official-format state_dict (``ckpt=x.pth model=hrnet_w32``)
or an existing results file (``results=<json> data.ann_file=<gt json>``). Writes the COCO results
JSON, ``metrics.json`` (10 stats + settings), the box-labelled table, the per-keypoint error analysis
and a gallery of the worst persons into the Hydra run dir (or ``output_dir=``). Segmentation checkpoints
(and ``.pth`` files with ``model=hrnet_*_seg``) on segmentation data (``data=seg_synthetic | cityscapes |
seg_folder | coco_person``) get mIoU instead: metrics.json, miou.md, overlays.png, optional prediction PNGs
(hrnet_train/evaluation/seg_runner.py). Settings: conf/eval.yaml.
"""

from hrnet_train.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
