"""Codecs (target encoding, decoding, flip alignment, back-projection) and their factory.

Heatmap codecs: ``legacy`` = official HRNet/MSRA (default, parity with official checkpoints),
``dark`` = Zhang et al. CVPR 2020, ``udp`` = Huang et al. CVPR 2020, ``face`` = the official HRNet
face-landmark code. Coordinate classification: ``simcc`` = Li et al. ECCV 2022 (with head ``simcc``).
Configs: ``conf/codec/<name>.yaml``.
"""

from __future__ import annotations

from typing import Any

from hrnet_train.codecs.base import HeatmapCodec
from hrnet_train.codecs.dark import DarkCodec
from hrnet_train.codecs.face import FaceCodec
from hrnet_train.codecs.legacy import LegacyCodec
from hrnet_train.codecs.simcc import SimCCCodec
from hrnet_train.codecs.udp import UdpCodec

CODECS: dict[str, type[HeatmapCodec]] = {
    "legacy": LegacyCodec, "dark": DarkCodec, "udp": UdpCodec, "face": FaceCodec, "simcc": SimCCCodec,
}


def create_codec(name: str, input_size: tuple[int, int], sigma: float | None = None, **options: Any) -> HeatmapCodec:
    """Build a codec by name, e.g. ``create_codec("legacy", (256, 192), sigma=2.0, flip_shift=True)``.

    ``sigma`` None takes the codec's own default (2.0 for the pose codecs, 1.5 for face). ``options``
    are the codec's own keyword options (see each class); an unknown option raises a ValueError naming
    it, so a typo in ``conf/codec/*.yaml`` is not silently ignored.
    """
    if name not in CODECS:
        raise ValueError(f"codec.name: unknown codec {name!r}, expected one of {sorted(CODECS)}")
    cls = CODECS[name]
    if sigma is not None:
        options = {"sigma": sigma, **options}
    try:
        return cls(tuple(input_size), **options)
    except TypeError as error:
        raise ValueError(f"codec {name!r}: bad options {sorted(options)}: {error}") from None


__all__ = ["CODECS", "DarkCodec", "FaceCodec", "HeatmapCodec", "LegacyCodec", "SimCCCodec", "UdpCodec", "create_codec"]
