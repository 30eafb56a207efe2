"""Data: the COCO top-down dataset (coco) with its instance records (records), the checks of what it reads
(annotation_checks) and the counts of what tolerance options skipped (skips), and augmentation (augment),
face landmark files (face_formats), face instances (face_records) for the same dataset and the converter
of the official face downloads (face_convert), the
synthetic people (synthetic) and faces (synthetic_faces) generators with their shared file layout
(generated), the LSPET converter (lspet), your own keypoint exports (custom_keypoints), the dataset
browser (browse), segmentation datasets (seg_*), and training batches built on the accelerator
(``data.pipeline=device``, rules in hrnet_train/pipeline_options.py): packed images and the batched crop
(packed_images), collate + device-side build (device_pipeline) and the optional nvJPEG decoder (gpu_decode).

Submodules are imported explicitly so that importing the package stays light.
"""

import os

# albumentations (the optional photometric/occlusion augmentation) asks pypi.org for a newer version of
# itself when imported, unless NO_ALBUMENTATIONS_UPDATE is set: a network call from every training run
# (and a 2 s stall offline). Every import of it in this project is below this package, so this line runs
# first; a value the user set is kept.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
