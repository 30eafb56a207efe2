"""Checks of a training config that need its builders but no data: run after the schema, before anything heavy.

The schema (``config_schema``) checks types and ranges of every section; some mistakes only show when
the pieces meet: an augmentation key the dataset would reject in its first epoch, a codec option, a
loss option the codec's loss does not have, or a head whose output is not what the codec decodes
(``codec=simcc`` with the heatmap head, or a SimCC head built for another input size). Building the
codec and the network on the ``meta`` device (shapes only, no memory, no arithmetic) finds them in a
second; each raises :class:`ConfigError` naming the field, which ``train.py`` turns into exit code 2.
"""

from __future__ import annotations

import torch

from hrnet_train.config_schema import ConfigError, TrainConfig
from hrnet_train.data.augment import AugmentConfig
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.models import create_model
from hrnet_train.trained_model import build_codec
from hrnet_train.training.losses import build_loss


def check_components(config: TrainConfig) -> None:
    """Build augmentation, codec, loss and a shapes-only network; raise ConfigError naming what does not fit."""
    try:
        AugmentConfig.from_mapping(config.data.augment)
    except ValueError as error:
        raise ConfigError(f"data.augment: {error}") from None
    keypoints = load_keypoint_set(config.keypoints)
    try:
        codec = build_codec(config.codec, config.data.input_hw)
    except ValueError as error:
        raise ConfigError(f"codec: {error}") from None
    try:
        build_loss(codec, config.loss, keypoints)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    expected = codec.output_shape(keypoints.num_joints)
    try:
        with torch.device("meta"):
            network = create_model(config.model, num_joints=keypoints.num_joints).eval()
            output = network(torch.zeros(1, 3, *config.data.input_hw))
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None
    shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
    if shape != expected:
        raise ConfigError(
            f"model.head: head {config.model.get('head', 'v1')!r} outputs {shape} per crop, codec "
            f"{codec.name!r} decodes {expected}; pick a matching pair (codec=simcc needs model.head=simcc "
            f"with head_options input_size and split_ratio: +recipe=simcc sets all three)"
        )
