"""Coverage statistics per class, overlap scores, and dataset summaries.

Conventions used throughout:

* a class *covers* a pixel when its mask value is ``>= min_value`` (default 128);
* ``bbox`` is ``(x0, y0, x1, y1)`` in pixels with **exclusive** ends, so
  ``x1 - x0`` is the box width and ``image[y0:y1, x0:x1]`` is the box;
* ``centroid`` is ``(x, y)``: the mean column and mean row of the covered pixels
  (pixel centres at integer coordinates, as in scikit-image's ``regionprops``);
* an empty class has ``pixels == 0``, ``fraction == 0.0``, ``bbox`` and ``centroid``
  ``None``: never an error.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import MaskSet, coverage
>>> tops = np.zeros((4, 6), np.uint8); tops[1:3, 2:5] = 255
>>> cov = coverage(MaskSet({"tops": tops, "dress": np.zeros((4, 6), bool)}))
>>> cov["tops"].pixels, cov["tops"].bbox, cov["tops"].centroid
(6, (2, 1, 5, 3), (3.0, 1.5))
>>> cov["dress"].bbox is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._convert import as_bool, check_same_shape
from .ops import MasksLike, _check_level, _masks_stack

__all__ = ["COVERAGE_COLUMNS", "Coverage", "coverage", "coverage_table", "dice", "iou", "summarize"]

#: Column names of :func:`coverage_table` rows, in order.
COVERAGE_COLUMNS: tuple[str, ...] = (
    "image", "class", "pixels", "fraction", "x0", "y0", "x1", "y1", "cx", "cy", "components",
)  # fmt: skip

# Bytes of thresholded stack per row block: a few MB keeps it cheap to walk twice
# (row sums and column sums) while the block is still warm in cache.
_COVERAGE_BLOCK_BYTES = 1 << 22


@dataclass(frozen=True)
class Coverage:
    """How much of the image one class covers, and where.

    Attributes
    ----------
    pixels : int
        Number of covered pixels.
    fraction : float
        ``pixels / (H * W)``.
    bbox : tuple of int or None
        ``(x0, y0, x1, y1)``, exclusive ends; ``None`` when empty.
    centroid : tuple of float or None
        ``(x, y)``, mean column and row; ``None`` when empty.
    components : int or None
        Number of connected regions, when :func:`coverage` was asked to count them.
    """

    pixels: int
    fraction: float
    bbox: tuple[int, int, int, int] | None
    centroid: tuple[float, float] | None
    components: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists).

        Examples
        --------
        >>> Coverage(0, 0.0, None, None).to_dict()
        {'pixels': 0, 'fraction': 0.0, 'bbox': None, 'centroid': None, 'components': None}
        """
        return {
            "pixels": self.pixels,
            "fraction": self.fraction,
            "bbox": None if self.bbox is None else list(self.bbox),
            "centroid": None if self.centroid is None else list(self.centroid),
            "components": self.components,
        }


def _row_col_sums(
    stack: npt.NDArray[np.uint8], min_value: int
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """Per class, the number of covered pixels in every row (C, H) and column (C, W).

    The stack is thresholded once, block by block; each block's rows are summed in
    uint16 and its columns in uint8 (a block has at most 255 rows), so no wide
    integer copies are made.
    """
    c, h, w = stack.shape
    rows = np.zeros((c, h), np.uint32)
    cols = np.zeros((c, w), np.uint32)
    step = max(1, min(255, _COVERAGE_BLOCK_BYTES // max(1, c * w)))
    hit = np.empty((c, step, w), np.bool_)
    col_block = np.empty((c, w), np.uint8)
    row_dtype = np.uint16 if w < 1 << 16 else np.uint32
    row_block = np.empty((c, step), row_dtype)
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        b = hit[:, : r1 - r0]
        np.greater_equal(stack[:, r0:r1], min_value, out=b)
        u = b.view(np.uint8)
        rb = row_block[:, : r1 - r0]
        np.add.reduce(u, axis=2, dtype=row_dtype, out=rb)
        rows[:, r0:r1] = rb
        np.add.reduce(u, axis=1, dtype=np.uint8, out=col_block)
        cols += col_block
    return rows, cols


def coverage(
    masks: MasksLike,
    *,
    min_value: int = 128,
    components: bool = False,
    connectivity: int = 2,
) -> dict[str, Coverage]:
    """Pixels, fraction, bounding box and centroid of every class.

    All classes are measured together from per-class row and column sums of the
    thresholded stack: the area is the sum of either, the box spans the first and
    last non-zero row and column, and the centroid is the sums' weighted mean index.
    Counting connected components needs a labeling pass per class, the costly part,
    so it is done only when asked.

    Parameters
    ----------
    masks
        A MaskSet, ``{name: mask}`` mapping or (C, H, W) stack (classes ``"0"``, ...).
    min_value
        A class covers a pixel at ``value >= min_value`` (1..255).
    components
        Also count connected regions per class (``Coverage.components``).
    connectivity
        1 (4-neighbours) or 2 (8-neighbours) for the component count.

    Returns
    -------
    dict of str to Coverage
        In the set's class order. See the module notes for the bbox and centroid
        conventions; empty classes give zeros and ``None``.

    Examples
    --------
    >>> m = np.zeros((3, 8), bool); m[:, :2] = True; m[1, 5:7] = True
    >>> c = coverage({"shoes": m}, components=True)["shoes"]
    >>> c.pixels, c.bbox, c.components, round(c.fraction, 3)
    (8, (0, 0, 7, 3), 2, 0.333)
    """
    min_value = _check_level(min_value, "min_value", low=1)
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity!r}.")
    stack, names = _masks_stack(masks)
    c, h, w = stack.shape
    if c == 0:
        return {}
    rows, cols = _row_col_sums(stack, min_value)
    pixels = rows.sum(axis=1, dtype=np.int64)
    cy = rows @ np.arange(h, dtype=np.float64)
    cx = cols @ np.arange(w, dtype=np.float64)
    any_row, any_col = rows > 0, cols > 0
    y0, x0 = any_row.argmax(axis=1), any_col.argmax(axis=1)
    y1, x1 = h - any_row[:, ::-1].argmax(axis=1), w - any_col[:, ::-1].argmax(axis=1)
    total = h * w
    result: dict[str, Coverage] = {}
    for i, name in enumerate(names):
        n = int(pixels[i])
        count = None
        if components:
            count = _count_components(stack[i], min_value, connectivity) if n else 0
        if n == 0:
            result[name] = Coverage(0, 0.0, None, None, count)
            continue
        result[name] = Coverage(
            pixels=n,
            fraction=n / total,
            bbox=(int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])),
            centroid=(float(cx[i] / n), float(cy[i] / n)),
            components=count,
        )
    return result


def _count_components(mask: npt.NDArray[np.uint8], min_value: int, connectivity: int) -> int:
    from skimage.measure import label

    _, num = label(mask >= min_value, connectivity=connectivity, return_num=True)
    return int(num)


def _counts(a: Any, b: Any, level: int) -> tuple[int, int, int]:
    """(|a & b|, |a|, |b|) of two masks thresholded at ``level``."""
    ba = as_bool(a, level=level, name="a")
    bb = as_bool(b, level=level, name="b")
    check_same_shape(ba.shape, bb.shape, what="a", other="b")
    inter = int(np.count_nonzero(np.logical_and(ba, bb)))
    return inter, int(np.count_nonzero(ba)), int(np.count_nonzero(bb))


def iou(a: Any, b: Any, *, level: int = 128) -> float:
    """Intersection over union of two masks: ``|a & b| / |a | b|``.

    Parameters
    ----------
    a, b
        (H, W) bool masks, or uint8 masks thresholded at ``>= level``.
    level
        Threshold for uint8 masks.

    Returns
    -------
    float
        In 0..1. Both masks empty gives **1.0** (they agree perfectly); one empty and
        the other not gives 0.0.

    Raises
    ------
    ShapeMismatchError
        The masks differ in shape (a ``ValueError`` naming both shapes).

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[0, 1, 1, 0]], bool)
    >>> round(iou(a, b), 4), iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    (0.3333, 1.0)
    """
    inter, na, nb = _counts(a, b, level)
    union = na + nb - inter
    return 1.0 if union == 0 else inter / union


def dice(a: Any, b: Any, *, level: int = 128) -> float:
    """Dice coefficient of two masks: ``2 |a & b| / (|a| + |b|)``.

    Same inputs and conventions as :func:`iou`: both masks empty gives **1.0**.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[0, 1, 1, 0]], bool)
    >>> dice(a, b)
    0.5
    """
    inter, na, nb = _counts(a, b, level)
    return 1.0 if na + nb == 0 else 2 * inter / (na + nb)


def _per_image(coverages: Any) -> list[Mapping[str, Coverage]]:
    """A list of ``{class: Coverage}`` from a list of them or an ``{image: {...}}`` map."""
    if isinstance(coverages, Mapping):
        values = list(coverages.values())
        if values and all(isinstance(v, Coverage) for v in values):
            return [coverages]
        return values
    return list(coverages)


def summarize(
    coverages: Iterable[Mapping[str, Coverage]] | Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Dataset statistics per class from many images' :func:`coverage` results.

    Parameters
    ----------
    coverages
        An iterable of ``{class: Coverage}`` (one per image), or a mapping
        ``{image name: {class: Coverage}}``.

    Returns
    -------
    dict of str to dict
        Per class, in order of first appearance: ``images`` (how many results include
        the class), ``present`` (how many of those have pixels), ``presence_rate``
        (``present / images``), ``mean_fraction`` and ``median_fraction`` (over those
        images, absent = 0), and ``mean_fraction_present`` (over images where present;
        ``None`` if never present). A class a result does not include is not counted
        for that image.

    Examples
    --------
    >>> box, centre = (0, 0, 1, 1), (0.0, 0.0)
    >>> a = {"tops": Coverage(10, 0.1, box, centre), "dress": Coverage(0, 0.0, None, None)}
    >>> b = {"tops": Coverage(30, 0.3, box, centre)}
    >>> s = summarize([a, b])
    >>> s["tops"]["presence_rate"], round(s["tops"]["mean_fraction"], 3), s["dress"]["present"]
    (1.0, 0.2, 0)
    """
    fractions: dict[str, list[float]] = {}
    for per_class in _per_image(coverages):
        for name, cov in per_class.items():
            fractions.setdefault(name, []).append(float(cov.fraction))
    out: dict[str, dict[str, Any]] = {}
    for name, values in fractions.items():
        arr = np.asarray(values, dtype=np.float64)
        present = arr[arr > 0]
        out[name] = {
            "images": int(arr.size),
            "present": int(present.size),
            "presence_rate": float(present.size / arr.size),
            "mean_fraction": float(arr.mean()),
            "median_fraction": float(np.median(arr)),
            "mean_fraction_present": float(present.mean()) if present.size else None,
        }
    return out


def coverage_table(
    coverages: Mapping[str, Coverage] | Mapping[str, Mapping[str, Coverage]],
    *,
    image: str | None = None,
) -> list[dict[str, Any]]:
    """Flat rows, one per (image, class), ready for ``csv.DictWriter``.

    Parameters
    ----------
    coverages
        One image's ``{class: Coverage}``, or ``{image name: {class: Coverage}}``.
    image
        The image name for a single image's result (default ``""``).

    Returns
    -------
    list of dict
        Keys :data:`COVERAGE_COLUMNS`: ``image, class, pixels, fraction, x0, y0, x1, y1,
        cx, cy, components``. Empty cells (no box, no centroid, components not
        counted) are ``None``, which ``csv`` writes as an empty field. ``fraction`` is
        rounded to 6 decimals, the centroid to 2.

    Examples
    --------
    >>> rows = coverage_table({"tops": Coverage(6, 0.25, (2, 1, 5, 3), (3.0, 1.5))}, image="a.jpg")
    >>> rows[0]["class"], rows[0]["x1"], rows[0]["cx"], rows[0]["components"]
    ('tops', 5, 3.0, None)
    """
    values = list(coverages.values())
    if values and all(isinstance(v, Coverage) for v in values):
        per_image: Mapping[str, Mapping[str, Coverage]] = {image or "": coverages}  # type: ignore[dict-item]
    else:
        per_image = coverages  # type: ignore[assignment]
    rows: list[dict[str, Any]] = []
    for name, per_class in per_image.items():
        for cls, cov in per_class.items():
            x0, y0, x1, y1 = cov.bbox if cov.bbox is not None else (None,) * 4
            cx, cy = (round(v, 2) for v in cov.centroid) if cov.centroid else (None, None)
            rows.append({
                "image": name, "class": cls, "pixels": cov.pixels,
                "fraction": round(cov.fraction, 6), "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                "cx": cx, "cy": cy, "components": cov.components,
            })  # fmt: skip
    return rows
