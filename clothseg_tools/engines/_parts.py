"""Per-garment parts: a garment class's mask split into its garments (``tops_0``,
``tops_1`` ...), the in-process engines' answer to the service's ZIP of parts.

Both engines find garments on a small map (the local engine's working grid, or the
ONNX engine's label map thinned to at most :data:`REGION_GRID` pixels a side), where
connected-component labelling is cheap, and cut the full-size soft mask along those
regions. Small specks join the nearest large region, so the parts add up to the mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.measure import label

from ..classes import CLASSES
from ..parsing import Parsing

__all__ = ["PART_CLASSES", "parsing_parts", "split_parts"]

#: Garment classes subdivided into per-garment parts.
PART_CLASSES: tuple[str, ...] = ("tops", "bottoms", "dress")

#: Longest side of the map garments are found on (the parsing's labels are thinned to it).
REGION_GRID = 512

# A garment part covers at least this fraction of the map; smaller specks join the
# nearest part. At most _MAX_PARTS parts per class.
_MIN_PART = 0.002
_MAX_PARTS = 32

UInt8Array = npt.NDArray[np.uint8]


def split_parts(
    name: str, mask: UInt8Array, regions: npt.NDArray[np.integer[Any]], weight: npt.NDArray[Any]
) -> dict[str, UInt8Array]:
    """Split the full-size ``mask`` of class ``name`` along labelled ``regions``.

    Parameters
    ----------
    name
        The garment class (``"tops"``): parts are named ``tops_0``, ``tops_1`` ...
    mask
        (H, W) uint8 mask of the class at the photo's size.
    regions
        Candidate garments on a smaller map of the same photo: 0 for none, 1..n for
        each region. Regions under a tenth of the largest, or under 0.2 % of the map,
        are specks that join the nearest large region.
    weight
        Per-pixel weight on the same map (confidence, or 1), ranking the parts: the
        part holding the most weight is ``name_0``.

    Returns
    -------
    dict of str to (H, W) uint8 array
        One mask per garment, largest first; they add up to ``mask``. Empty when no
        region is large enough.

    Examples
    --------
    >>> regions = np.array([[1, 1, 0, 2]])  # two garments, found on a half-size map
    >>> mask = np.array([[200, 210, 220, 230, 0, 0, 90, 90]], np.uint8)
    >>> parts = split_parts("tops", mask, regions, regions > 0)
    >>> {k: v.tolist() for k, v in parts.items()}
    {'tops_0': [[200, 210, 220, 230, 0, 0, 0, 0]], 'tops_1': [[0, 0, 0, 0, 0, 0, 90, 90]]}
    """
    count = int(regions.max(initial=0))
    if count == 0:
        return {}
    areas = np.bincount(regions.ravel(), minlength=count + 1)[1:]
    big = np.flatnonzero(areas >= max(0.1 * areas.max(), _MIN_PART * regions.size)) + 1
    if big.size == 0:
        return {}  # only specks: no garment worth a part
    big = big[np.argsort(-areas[big - 1], kind="stable")][:_MAX_PARTS]
    if big.size == 1:
        return {f"{name}_0": mask.copy()}
    ranks = np.zeros(count + 1, np.uint8)
    ranks[big] = np.arange(1, big.size + 1, dtype=np.uint8)
    ranked = ranks[regions]
    # every pixel takes the rank of its nearest large region
    _, (iy, ix) = ndimage.distance_transform_edt(ranked == 0, return_indices=True)
    nearest = ranked[iy, ix]
    # number the parts by how much of the garment each ends up with, largest first
    w = np.asarray(weight, np.float64).ravel()
    held = np.bincount(nearest.ravel(), weights=w, minlength=big.size + 1)[1:]
    order = np.argsort(-held, kind="stable")
    full = _nearest_resize(nearest, (mask.shape[0], mask.shape[1]))
    return {f"{name}_{i}": np.where(full == k + 1, mask, np.uint8(0)) for i, k in enumerate(order)}


def parsing_parts(parsing: Parsing, masks: Any) -> dict[str, UInt8Array]:
    """Per-garment parts of a human parser's answer: each garment label's connected
    regions (so a coat and the shirt under it are two ``tops`` parts), found on the
    label map thinned to :data:`REGION_GRID`, cutting the classes of ``masks`` that are
    in :data:`PART_CLASSES`.

    Examples
    --------
    >>> p = Parsing(np.array([[4, 4, 0, 7, 7, 0, 4, 4]]), "atr")  # Upper-clothes, Dress
    >>> sorted(parsing_parts(p, p.to_maskset(["tops", "dress"])))
    ['dress_0', 'tops_0', 'tops_1']
    """
    h, w = parsing.shape
    step = max(1, -(-max(h, w) // REGION_GRID))
    small = parsing.labels[::step, ::step]
    table = parsing.labelset.class_table()
    parts: dict[str, UInt8Array] = {}
    for name in PART_CLASSES:
        if name not in masks.classes:
            continue
        regions = np.zeros(small.shape, np.int32)
        for value in np.flatnonzero(table[:, CLASSES.index(name)]):
            found, n = label(small == value, connectivity=2, return_num=True)
            if n:
                # number this label's regions after the earlier labels' regions
                np.add(regions, found + regions.max() * (found > 0), out=regions)
        parts.update(split_parts(name, masks[name], regions, regions > 0))
    return parts


def _nearest_resize(small: UInt8Array, shape: tuple[int, int]) -> UInt8Array:
    """``small`` scaled to ``shape`` by nearest neighbour (pixel centres aligned)."""
    H, W = shape
    h, w = small.shape
    rows = ((np.arange(H) + 0.5) * (h / H)).astype(np.intp)
    cols = ((np.arange(W) + 0.5) * (w / W)).astype(np.intp)
    np.minimum(rows, h - 1, out=rows)
    np.minimum(cols, w - 1, out=cols)
    return small[rows[:, None], cols[None, :]]
