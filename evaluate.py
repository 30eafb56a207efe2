"""Evaluate a pose model with COCO OKS AP: ``python evaluate.py ckpt=<file> data.root=<coco> [key=value ...]``.

Sources: a checkpoint of ours (``.ckpt``), an official-format state_dict (``ckpt=x.pth model=hrnet_w32``)
or an existing results file (``results=<json> data.ann_file=<gt json>``). Writes the COCO results
JSON, ``metrics.json`` (10 stats + settings), the box-labelled table, the per-keypoint error analysis
and a gallery of the worst persons into the Hydra run dir (or ``output_dir=``). Settings: conf/eval.yaml.
Bad input (missing file, wrong checkpoint keys) prints the reason and exits with code 1.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from hrnet_train.paths import config_dir, data_dir

INPUT_ERROR_EXIT = 1

OmegaConf.register_new_resolver("hrnet_data_dir", lambda: str(data_dir()), replace=True)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    from hrnet_train.evaluation.runner import run_from_config

    try:
        run_from_config(cfg)
    except (ValueError, FileNotFoundError) as error:
        print(f"evaluate.py: {error}", file=sys.stderr, flush=True)
        sys.exit(INPUT_ERROR_EXIT)


if __name__ == "__main__":
    main()
