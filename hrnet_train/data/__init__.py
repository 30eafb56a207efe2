"""Data: the COCO top-down dataset (coco) and its augmentation (augment), instance records (records),
the synthetic people generator (synthetic), the LSPET converter (lspet), your own keypoint exports
(custom_keypoints), the dataset browser (browse), segmentation datasets (seg_*), and training batches
built on the accelerator (``data.pipeline=device``, rules in hrnet_train/pipeline_options.py): packed
images and the batched crop (packed_images), collate + device-side build (device_pipeline) and the
optional nvJPEG decoder (gpu_decode).

Submodules are imported explicitly so that importing the package stays light.
"""
