"""Images of different sizes in one flat uint8 buffer, and one batched affine crop sampled from it.

Why a packed buffer and not a padded (B, 3, H_max, W_max) batch for ``grid_sample``: COCO images come
in both orientations and, with reduced JPEG decode, at 1/1 to 1/8 of their size in one batch, so
padding would move and convert mostly zeros. Here every image is stored once (H*W*3 bytes, HWC) and
the crop gathers only the four bilinear taps of each output pixel.

The sampler reproduces ``cv2.warpAffine(image, M, (w, h), flags=INTER_LINEAR)`` with the default
constant-0 border: pixel centres at integer coordinates, output pixel (u, v) samples the source at
M^-1 (u, v, 1), taps outside the image count as 0, the result is rounded to integer grey levels.
It also reproduces OpenCV's fixed-point source coordinates (``imgproc/src/imgwarp.cpp``: the
inverse matrix applied in units of 1/1024 px, ``AB_BITS`` = 10, each term rounded, then rounded to
1/32 px, ``INTER_BITS`` = 5), because exact float coordinates (``grid_sample``'s) differ from it by
up to 1/64 px, which at a sharp edge is up to 5 grey levels (measured on coco_mini crops); with the
same coordinates the crops agree within 1 grey level (OpenCV's 15-bit interpolation weights).
"""

from __future__ import annotations

import torch

# OpenCV's fixed-point warp constants (imgproc: AB_BITS, INTER_BITS; INTER_TAB_SIZE = 1 << INTER_BITS).
_AB_BITS = 10
_AB_SCALE = 1 << _AB_BITS
_INTER_BITS = 5
_INTER_TAB = 1 << _INTER_BITS
_ROUND_DELTA = _AB_SCALE // _INTER_TAB // 2  # rounds the 1/1024 position to the nearest 1/32


def pack_images(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HxWx3 uint8 images -> (flat buffer (sum H*W*3,) uint8, first-pixel offsets (B,) int64, sizes (B, 2) [H, W])."""
    if not images:
        raise ValueError("pack_images: no images")
    for image in images:
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"pack_images: expected HxWx3 uint8 images, got {tuple(image.shape)} {image.dtype}")
    sizes = torch.tensor([image.shape[:2] for image in images], dtype=torch.int64)
    pixels = sizes[:, 0] * sizes[:, 1]
    offsets = torch.cumsum(pixels, 0) - pixels
    return torch.cat([image.reshape(-1) for image in images]), offsets, sizes


def invert_affine_batch(matrices: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) forward affines -> their inverses, in float64 with cv2.invertAffineTransform's formula."""
    m = matrices.to(torch.float64)
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * e - b * d
    inv_det = torch.where(det != 0, 1.0 / det, torch.zeros_like(det))
    a_inv, b_inv, d_inv, e_inv = e * inv_det, -b * inv_det, -d * inv_det, a * inv_det
    rows = [
        torch.stack([a_inv, b_inv, -a_inv * c - b_inv * f], dim=1),
        torch.stack([d_inv, e_inv, -d_inv * c - e_inv * f], dim=1),
    ]
    return torch.stack(rows, dim=1)


def fixed_point_sources(
    inverse: torch.Tensor, output_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source position of every output pixel as OpenCV's INTER_LINEAR warp computes it.

    ``inverse`` (B, 2, 3) float64 crop -> source. Returns the integer top-left tap x0, y0 (B, h, w)
    int64 and the fractions fx, fy (B, h, w) float32 in steps of 1/32 px.
    """
    out_h, out_w = output_hw
    device = inverse.device
    u = torch.arange(out_w, dtype=torch.float64, device=device)
    v = torch.arange(out_h, dtype=torch.float64, device=device)

    def coordinate(row: int) -> torch.Tensor:
        # Per output row: the offset term + half a 1/32 step; per column: the slope term (both 1/1024 px).
        per_row = torch.round((inverse[:, row, 1, None] * v + inverse[:, row, 2, None]) * _AB_SCALE).long()
        per_col = torch.round(inverse[:, row, 0, None] * u * _AB_SCALE).long()
        steps = (per_row[:, :, None] + _ROUND_DELTA + per_col[:, None, :]) >> (_AB_BITS - _INTER_BITS)
        return steps  # (B, h, w) in 1/32 px

    x_steps, y_steps = coordinate(0), coordinate(1)
    fractions = float(_INTER_TAB)
    return (
        x_steps >> _INTER_BITS,
        y_steps >> _INTER_BITS,
        (x_steps & (_INTER_TAB - 1)).to(torch.float32) / fractions,
        (y_steps & (_INTER_TAB - 1)).to(torch.float32) / fractions,
    )


def warp_packed(
    flat: torch.Tensor, offsets: torch.Tensor, sizes: torch.Tensor, matrices: torch.Tensor, output_hw: tuple[int, int],
    mirror: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bilinear affine crops of every packed image: (B, h, w, 3) float32 holding integer grey levels.

    ``matrices`` (B, 2, 3) map source pixels to crop pixels (the matrix ``cv2.warpAffine`` takes).
    ``mirror`` (B,) bool samples image b mirrored (column x read from W-1-x), as ``cv2.flip`` then
    ``cv2.warpAffine`` would: then the matrix applies to the mirrored image. All tensors on one
    device; the output is on it too.
    """
    batch = matrices.shape[0]
    if offsets.shape != (batch,) or sizes.shape != (batch, 2):
        raise ValueError(
            f"warp_packed: {batch} matrices need offsets ({batch},) and sizes ({batch}, 2), "
            f"got {tuple(offsets.shape)} and {tuple(sizes.shape)}"
        )
    if flat.numel() // 3 >= 2**31:
        raise ValueError(f"warp_packed: {flat.numel() // 3} packed pixels exceed int32 indexing; use smaller batches")
    # int32 index arithmetic: the packed pixels fit, and it is several times faster than int64 on CPUs.
    x0, y0, fx, fy = fixed_point_sources(invert_affine_batch(matrices), output_hw)
    x0, y0 = x0.to(torch.int32), y0.to(torch.int32)
    height = sizes[:, 0].to(torch.int32).view(batch, 1, 1)
    width = sizes[:, 1].to(torch.int32).view(batch, 1, 1)
    # The two tap columns / rows of every output pixel (leading axis), their validity and their weights.
    columns = torch.stack([x0, x0 + 1])
    rows = torch.stack([y0, y0 + 1])
    weight_x = torch.stack([1.0 - fx, fx]) * ((columns >= 0) & (columns < width))
    weight_y = torch.stack([1.0 - fy, fy]) * ((rows >= 0) & (rows < height))
    columns = torch.minimum(columns.clamp(min=0), width - 1)
    if mirror is not None:
        columns = torch.where(mirror.view(batch, 1, 1), width - 1 - columns, columns)
    rows = torch.minimum(rows.clamp(min=0), height - 1)
    index = (offsets.to(torch.int32).view(batch, 1, 1) + rows * width)[:, None] + columns[None, :]  # (2, 2, B, h, w)
    # index_select (not advanced indexing: several times faster on CPUs); uint8 taps are promoted to
    # float32 inside the multiply, so no float copy of them is made.
    taps = flat.view(-1, 3).index_select(0, index.reshape(-1)).view(*index.shape, 3)  # (2, 2, B, h, w, 3)
    weight = weight_y[:, None] * weight_x[None, :]  # exact: multiples of 1/1024
    crop = (taps * weight[..., None]).sum(dim=(0, 1))
    return torch.round(crop)
