"""Model zoo: HRNet built from specs (pose, face, segmentation, HRNetV2p detection backbone with the
HRFPN neck), PoseResNet baselines, heads, registry and checkpoint loading.

Entry point: :func:`create_model` (``create_model("hrnet_w32", num_joints=17, head="v1")``,
``create_model("hrnet_w48_seg", num_classes=19)``, ``create_model("hrnetv2p_w32")``).
"""

from hrnet_train.models.heads import HEADS
from hrnet_train.models.hrfpn import HRFPN
from hrnet_train.models.hrnet import HRNet
from hrnet_train.models.loading import (
    HRNET_PRETRAINED_LAYERS,
    load_official_state_dict,
    load_pretrained_backbone,
    read_state_dict,
)
from hrnet_train.models.pose_resnet import PoseResNet, PoseResNetSpec
from hrnet_train.models.registry import (
    create_model,
    get_model_entry,
    list_models,
    model_config,
    register_model,
    resolve_spec,
)
from hrnet_train.models.spec import HRNetSpec, Stage1Spec, StageSpec, hrnet_spec

__all__ = [
    "HEADS",
    "HRFPN",
    "HRNET_PRETRAINED_LAYERS",
    "HRNet",
    "HRNetSpec",
    "PoseResNet",
    "PoseResNetSpec",
    "Stage1Spec",
    "StageSpec",
    "create_model",
    "get_model_entry",
    "hrnet_spec",
    "list_models",
    "load_official_state_dict",
    "load_pretrained_backbone",
    "model_config",
    "read_state_dict",
    "register_model",
    "resolve_spec",
]
