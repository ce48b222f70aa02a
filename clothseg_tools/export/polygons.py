"""Masks as COCO polygons: every part of a mask, holes included.

COCO draws a polygon annotation by filling each polygon and taking the union, so a
hole cannot be a polygon of its own (it would be filled in). Each hole is therefore
joined to the outline around it by a zero-width slit: the ring goes in along a short
segment, around the hole, and back out along the same segment. Filled with the
even-odd rule, as pycocotools does, the two passes over the slit cancel and the hole
stays empty. A mask of several separate parts gives several polygons, one per part.

Outlines come from marching squares at the half-way level (``skimage.measure.
find_contours``), so they run along pixel edges and cut pixel corners diagonally, and
are simplified with Douglas-Peucker (``skimage.measure.approximate_polygon``).

Examples
--------
>>> import numpy as np
>>> m = np.zeros((6, 6), bool); m[1:5, 1:5] = True
>>> mask_to_polygons(m)
[[4.5, 5.0, 1.5, 5.0, 1.0, 4.5, 1.0, 1.5, 1.5, 1.0, 4.5, 1.0, 5.0, 1.5, 5.0, 4.5]]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._convert import MaskLike
from .rle import binary_mask

__all__ = ["mask_to_polygons"]


def _ring_area(ring: npt.NDArray[np.float64]) -> float:
    """Signed area of a closed (first == last) ring by the shoelace formula."""
    y, x = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _simplify(ring: npt.NDArray[np.float64], tolerance: float) -> npt.NDArray[np.float64]:
    """Douglas-Peucker on a closed ring, keeping at least a triangle; drops the
    repeated closing point."""
    if tolerance > 0:
        # Marching squares puts a point on every pixel edge it crosses, so long straight
        # runs carry many points in a line; dropping those first (exactly, in one array
        # pass) leaves Douglas-Peucker, a Python loop in scikit-image, a fraction of the
        # points. The outline is the same.
        simple = approximate_polygon(_drop_collinear(ring), tolerance)
        if len(simple) >= 4:  # three corners plus the closing point
            ring = simple
    return ring[:-1]


def approximate_polygon(
    coords: npt.NDArray[np.float64], tolerance: float
) -> npt.NDArray[np.float64]:
    """Douglas-Peucker simplification, the same points as
    ``skimage.measure.approximate_polygon`` keeps, every pending segment at once.

    Where a segment splits depends on that segment alone, so splitting all segments
    of one round together (rather than one at a time, a Python loop step each, as
    scikit-image does) keeps the same points in a few dozen array passes.

    Examples
    --------
    >>> square = np.array([[0, 0], [0, 1], [0, 2], [2, 2], [2, 0], [0, 0]], float)
    >>> approximate_polygon(square, 0.5).tolist()
    [[0.0, 0.0], [0.0, 2.0], [2.0, 2.0], [2.0, 0.0], [0.0, 0.0]]
    """
    n = coords.shape[0]
    if tolerance <= 0 or n < 3:
        return coords
    r, c = coords[:, 0], coords[:, 1]
    keep = np.zeros(n, np.bool_)
    keep[[0, -1]] = True
    pending = np.ones(n, np.bool_)  # inner points of segments not yet within tolerance
    pending[[0, -1]] = False
    while True:
        pts = np.flatnonzero(pending)
        if pts.size == 0:
            return coords[keep]
        bounds = np.flatnonzero(keep)
        seg = np.searchsorted(bounds, pts) - 1  # the segment each point lies in
        s, e = bounds[seg], bounds[seg + 1]
        r0, c0, r1, c1 = r[s], c[s], r[e], c[e]
        dr, dc = r1 - r0, c1 - c0
        # scikit-image's formulas, so that distances (and ties) come out the same
        angle = -np.arctan2(dr, dc)
        line = c0 * np.sin(angle) + r0 * np.cos(angle)
        dr0, dc0, dr1, dc1 = r[pts] - r0, c[pts] - c0, r[pts] - r1, c[pts] - c1
        perp = ((dr0 * dr + dc0 * dc) > 0) & ((-dr1 * dr - dc1 * dc) > 0)
        dist = np.where(
            perp,
            np.abs(r[pts] * np.cos(angle) + c[pts] * np.sin(angle) - line),
            np.minimum(np.sqrt(dc0**2 + dr0**2), np.sqrt(dc1**2 + dr1**2)),
        )
        starts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
        group = np.cumsum(np.concatenate([[False], seg[1:] != seg[:-1]]))
        top = np.maximum.reduceat(dist, starts)
        # the first point of each segment at its largest distance
        at_top = np.flatnonzero(dist == top[group])
        first = at_top[np.concatenate([[True], group[at_top][1:] != group[at_top][:-1]])]
        split = top[group[first]] > tolerance
        keep[pts[first[split]]] = True
        pending[pts[first[split]]] = False
        pending[pts[~split[group]]] = False  # segments within tolerance are final


def _drop_collinear(ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A closed ring without the points that lie on the straight line through their
    neighbours (the closing point kept)."""
    pts = ring[:-1]
    if len(pts) < 4:
        return ring
    prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (
        nxt[:, 0] - pts[:, 0]
    )
    keep = np.abs(cross) > 1e-9
    keep[0] = True  # the ring starts and ends here
    if keep.sum() < 3:
        return ring
    kept = pts[keep]
    return np.concatenate([kept, kept[:1]])


def _bridge(
    outer: npt.NDArray[np.float64], holes: list[npt.NDArray[np.float64]]
) -> npt.NDArray[np.float64]:
    """Join each hole to ``outer`` by a zero-width slit at their closest vertices."""
    if not holes:
        return outer
    from scipy.spatial import cKDTree

    tree = cKDTree(outer)
    inserts: list[tuple[int, npt.NDArray[np.float64]]] = []
    for hole in holes:
        dist, nearest = tree.query(hole)
        j = int(np.argmin(dist))
        # around the hole starting and ending at its vertex j, then back to outer[i]
        i = int(nearest[j])
        loop = np.concatenate([hole[j:], hole[: j + 1], outer[i : i + 1]])
        inserts.append((i, loop))
    pieces = []
    start = 0
    for i, loop in sorted(inserts, key=lambda t: t[0]):
        pieces.append(outer[start : i + 1])
        pieces.append(loop)
        start = i + 1
    pieces.append(outer[start:])
    return np.concatenate(pieces)


def mask_to_polygons(
    mask: MaskLike,
    *,
    tolerance: float = 0.25,
    level: int = 128,
    min_area: float = 0,
    join: bool = False,
) -> list[list[float]]:
    """Outline a mask as COCO polygons: one per connected part, holes kept.

    Parameters
    ----------
    mask
        (H, W) bool or uint8 mask (uint8 is ``>= level``; a 0/1 uint8 mask is read
        as such).
    tolerance
        Largest distance, in pixels, a simplified outline may stray from the exact
        one. The default, 0.25 px, drops the points that lie on straight runs of
        the outline (about two thirds of them) while pycocotools still fills the
        polygons back into exactly the same pixels on smooth shapes (a test checks
        it); 0.5 px halves the points again at about 1 % loss of IoU; 0 keeps all.
    level
        Threshold for uint8 masks.
    min_area
        Parts of fewer pixels than this are dropped, and holes of a smaller area
        (in square pixels) filled: specks a labeler would only have to delete.
    join
        Join all parts into one polygon by zero-width slits, as holes are joined,
        for formats that hold one polygon per instance (YOLO segmentation). Filled
        with the even-odd or the non-zero rule it gives the same pixels.

    Returns
    -------
    list of list of float
        COCO's nested form ``[[x0, y0, x1, y1, ...], ...]`` in pixel coordinates
        (pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``), one
        polygon of at least three points per part of the mask (8-connected), with
        that part's holes joined in by zero-width slits (with ``join``, at most one
        polygon for the whole mask). Empty for an empty mask.

    Raises
    ------
    ValueError
        The mask is not 2-D, or not bool / uint8.

    Notes
    -----
    pycocotools fills the polygons back into masks (``annToMask``); tests check
    that the round trip keeps the mask (intersection over union well above 0.9 for
    shapes a few pixels wide, higher for larger ones). Pixels a polygon can only cut
    (single pixels joined at a corner, one-pixel lines) may be lost or gained:
    prefer RLE when every pixel matters.

    Examples
    --------
    >>> m = np.zeros((5, 9), bool); m[1:4, 1:4] = True; m[1:4, 5:8] = True
    >>> len(mask_to_polygons(m))  # two separate parts, two polygons
    2
    """
    from skimage.measure import find_contours, label, regionprops

    binary = binary_mask(mask, level=level)
    polygons: list[list[float]] = []
    if not binary.any():
        return polygons
    rings: list[npt.NDArray[np.float64]] = []
    # label only the mask's bounding box: garments cover a fraction of the picture
    rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
    y0, x0 = int(rows[0]), int(cols[0])
    labels = label(binary[y0 : int(rows[-1]) + 1, x0 : int(cols[-1]) + 1], connectivity=2)
    for region in regionprops(labels):
        if region.area < min_area:
            continue
        # the 1-pixel pad below, and the crop's offset
        top, left = y0 + region.bbox[0] - 1, x0 + region.bbox[1] - 1
        crop = np.pad(region.image, 1).astype(np.float32)
        contours = find_contours(crop, 0.5, fully_connected="high")
        if not contours:
            continue
        areas = [abs(_ring_area(r)) for r in contours]
        outer_at = int(np.argmax(areas))
        outer = _simplify(contours[outer_at], tolerance)
        holes = [
            _simplify(r, tolerance)
            for i, r in enumerate(contours)
            if i != outer_at and areas[i] >= min_area
        ]
        ring = _bridge(outer, holes)
        ring += (top, left)
        rings.append(ring)
    if join and len(rings) > 1:
        rings = [_bridge(rings[0], rings[1:])]
    for ring in rings:
        # (row, col) of pixel centres -> COCO (x, y) with pixel corners at integers
        xy = np.empty((len(ring), 2))
        xy[:, 0] = ring[:, 1] + 0.5
        xy[:, 1] = ring[:, 0] + 0.5
        polygons.append([round(float(v), 2) for v in xy.reshape(-1)])
    return polygons
