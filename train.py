"""Train an HRNet pose model: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

With no arguments it generates the synthetic dataset if needed, trains a small HRNet on the CPU and
prints the final report. Real setups are experiments: ``python train.py experiment=lspet_cpu``,
``python train.py experiment=coco_w32_256x192 data.root=/data/coco``. See hrnet_train/cli.py.
"""

from hrnet_train.cli import train_main

if __name__ == "__main__":
    train_main()
