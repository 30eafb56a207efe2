"""LightningModule of the face task: the pose module's training, NME validation (spec A.8).

Training is the pose path unchanged (heatmap MSE; the face codec's target weights are all ones, as the
official loss has none). Validation scores one prediction per annotated face with NME under the
keypoint set's normaliser, FR@0.08/0.10 and AUC@0.1 (``val/NME`` selects the best checkpoint, lowest).
"""

from __future__ import annotations

from collections.abc import Mapping

from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.decoding.instances import DecodedInstances
from hrnet_train.evaluation.nme import format_nme_table
from hrnet_train.evaluation.validation import face_metrics
from hrnet_train.training.module import PoseLightningModule


class FaceLightningModule(PoseLightningModule):
    """Face landmarks: :class:`PoseLightningModule` with NME validation."""

    TABLE_TAG = "val/NME_table"

    def validation_metrics(self, instances: DecodedInstances, dataset: TopDownCocoDataset) -> dict[str, float]:
        """NME / FR / AUC of the faces this pass predicted (all of them unless ``limit_val_batches``)."""
        annotation_ids = [dataset.records[i].annotation_id for i in instances.indices]
        return face_metrics(dataset.coco, self.keypoints, instances, annotation_ids, complete=False).summary()

    def metrics_table(self, stats: Mapping[str, float], label: str) -> str:
        return format_nme_table({label: stats})
