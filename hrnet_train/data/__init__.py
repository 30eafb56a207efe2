"""Data: keypoint sets (keypoints), crop geometry (transforms), the COCO top-down dataset (coco) and its
augmentation (augment), image reading with clear errors (image_io), the synthetic people generator
(synthetic) with its mean-pose baseline, the LSPET converter (lspet) and the dataset browser (browse).

Submodules are imported explicitly so that importing the package stays light.
"""
