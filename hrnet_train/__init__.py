"""hrnet-train: HRNet human pose estimation, built from specs, trained with Lightning + Hydra."""

__version__ = "0.1.0"
