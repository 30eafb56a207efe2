"""Data: keypoint sets (keypoints), crop geometry (transforms), the COCO top-down dataset (coco) and its
augmentation (augment), image reading with clear errors (image_io), the synthetic people generator
(synthetic) with its mean-pose baseline, the LSPET converter (lspet) and the dataset browser (browse).
Training batches built on the accelerator (``data.pipeline=device``): the options and their rules
(pipeline_options), packed images and the batched crop (packed_images), collate + device-side build
(device_pipeline) and the optional nvJPEG decoder (gpu_decode).

Submodules are imported explicitly so that importing the package stays light.
"""
