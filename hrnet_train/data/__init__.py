"""Data: the COCO top-down dataset (coco) with its instance records (records) and augmentation (augment),
face landmark files (face_formats) and face instances (face_records) for the same dataset, the
synthetic people (synthetic) and faces (synthetic_faces) generators with their shared file layout
(generated), the LSPET converter (lspet) and the dataset browser (browse).

Submodules are imported explicitly so that importing the package stays light.
"""
