"""Shaping at reduced resolution: pooling, upsampling, scaled dilation, the main region.

The rules of a try-on mask are about shapes, not pixels, so they run on a copy whose
longer side is at most ``work_size``: at 4096 px that is 64 times fewer pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..masks import MaskSet
from ._body import _cols, _rows

# -- resolution helpers ---------------------------------------------------------------


def _factor(shape: tuple[int, int], work_size: int) -> int:
    return max(1, math.ceil(max(shape) / work_size))


def _pool(stack: npt.NDArray[np.uint8], f: int) -> npt.NDArray[np.uint8]:
    """Max-pool a (C, H, W) stack by ``f``: any pixel of a block above the threshold
    marks the block, so thin garments and fingers survive the reduction.

    Done as ``f`` element-wise maxima of strided slices per axis: numpy reduces a
    short trailing axis (``reshape(..., f).max(-1)``) many times slower.
    """
    if f == 1:
        return stack
    rows = stack[:, ::f].copy()
    for i in range(1, f):
        part = stack[:, i::f]
        np.maximum(rows[:, : part.shape[1]], part, out=rows[:, : part.shape[1]])
    out = rows[:, :, ::f].copy()
    for j in range(1, f):
        part = rows[:, :, j::f]
        np.maximum(out[:, :, : part.shape[2]], part, out=out[:, :, : part.shape[2]])
    return out


def _upsample(mask: npt.NDArray[np.bool_], f: int, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Nearest-neighbour upsampling by ``f``, cropped to ``shape``."""
    if f == 1:
        return mask
    h, w = shape
    rows = np.repeat(mask, f, axis=0)[:h]
    return np.repeat(rows, f, axis=1)[:, :w]


def _low_masks(ms: MaskSet, level: int, f: int) -> dict[str, npt.NDArray[np.bool_]]:
    names = list(ms.classes)
    pooled = _pool(ms.stack(), f) >= level
    return {n: pooled[i] for i, n in enumerate(names)}


def _low_shape(low: Mapping[str, Any], shape: tuple[int, int], f: int) -> tuple[int, int]:
    """Shape of the work-resolution copy."""
    if low:
        s = next(iter(low.values())).shape
        return (int(s[0]), int(s[1]))
    return (-(-shape[0] // f), -(-shape[1] // f))


def _disk_dilate(mask: npt.NDArray[np.bool_], radius: float) -> npt.NDArray[np.bool_]:
    """Dilation by a disk of ``radius`` px through the distance transform: the cost
    does not grow with the radius, as a footprint's would."""
    from scipy import ndimage

    if radius <= 0 or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _main_region(mask: npt.NDArray[np.bool_], join: float) -> npt.NDArray[np.bool_]:
    """The largest connected region plus every region within ``join`` px of it."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n <= 1:
        return mask
    sizes = np.bincount(labels.reshape(-1))
    sizes[0] = 0
    largest = labels == int(sizes.argmax())
    near = _disk_dilate(largest, join)
    keep = np.unique(labels[near & mask])
    return np.isin(labels, keep[keep > 0])


def _shape(
    core: npt.NDArray[np.bool_],
    protected: npt.NDArray[np.bool_],
    radius: float,
    *,
    fill_holes: bool,
    hull: bool,
    box: bool,
) -> npt.NDArray[np.bool_]:
    from scipy import ndimage

    region = _disk_dilate(core, radius)
    if fill_holes:
        region = ndimage.binary_fill_holes(region)
    region &= ~protected
    region = _main_region(region, max(radius, 1.0))
    if hull and region.any():
        from skimage.morphology import convex_hull_image

        region = convex_hull_image(region)
    if box and region.any():
        rows, cols = _rows(region), _cols(region)
        region = np.zeros_like(region)
        region[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    return region
