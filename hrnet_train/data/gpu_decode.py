"""Optional JPEG decoding on the GPU (``data.decode=gpu``) with torchvision's nvJPEG ``decode_jpeg``.

Never a dependency: torchvision is looked up only when this option is asked for
(:func:`~hrnet_train.pipeline_options.gpu_decode_available`), and imported only when the
decoder is built, so CPU-only installs never load it. Install a torchvision built for the
same torch and CUDA as the environment's torch to use it; without it the loader workers decode.
(NVIDIA DALI or nvImageCodec would decode as well; torchvision is what CUDA torch installs usually have.)
"""

from __future__ import annotations

import torch

from hrnet_train.data.device_pipeline import JpegDecoder


def nvjpeg_decoder(device: torch.device) -> JpegDecoder:
    """A function decoding a list of encoded JPEGs (uint8 CPU tensors) in one batched nvJPEG call on ``device``.

    Returns RGB CHW uint8 images on ``device``; EXIF orientation is ignored, as the CPU reader does.
    """
    if device.type != "cuda":
        raise ValueError(f"data.decode: gpu decodes with nvJPEG on a CUDA device, got {device}")
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError as error:
        raise RuntimeError(
            f"data.decode=gpu needs torchvision (built for this torch and CUDA): {error}; use data.decode=cpu"
        ) from None

    def decode(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)

    return decode
