"""The vectorized mask core: merge, threshold, label maps, clean-up, feathering, resizing.

Functions that combine classes take a :class:`~clothseg_tools.MaskSet`, a plain
``{name: mask}`` mapping, or a (C, H, W) uint8/bool stack (whose classes are then
named ``"0"``, ``"1"``, ...). A class may be selected by name or by its integer
position. Work over the whole stack runs in cache-sized row blocks with in-place
writes, so no full-size temporary is made per class.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import MaskSet, label_map, merge
>>> tops = np.zeros((2, 4), np.uint8); tops[:, :2] = 255
>>> dress = np.zeros((2, 4), np.uint8); dress[:, 1:3] = 200
>>> ms = MaskSet({"tops": tops, "dress": dress})
>>> merge(ms)[0]
array([255, 255, 200,   0], dtype=uint8)
>>> label_map(ms)[0]
array([1, 1, 2, 0], dtype=uint8)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union, overload

import numpy as np
import numpy.typing as npt

from ._convert import as_mask
from .classes import CLASSES
from .masks import MaskSet

__all__ = [
    "clean",
    "feather",
    "label_map",
    "masks_from_labels",
    "merge",
    "resize_mask",
    "threshold",
]

#: Anything the class-combining functions accept as a set of masks.
MasksLike = Union[MaskSet, Mapping[str, Any], "npt.NDArray[np.uint8]", "npt.NDArray[np.bool_]"]
#: A class chosen by name or by its position in the set.
ClassKey = str | int

# Bytes of one class's slice of a row block: small enough that the block's output and
# scratch buffers stay in L2 while every class streams through them once.
_BLOCK_BYTES = 1 << 18


def _row_step(width: int, bytes_per_pixel: int = 1) -> int:
    """Rows per block so that one (rows, width) slice is about ``_BLOCK_BYTES``."""
    return max(1, _BLOCK_BYTES // max(1, width * bytes_per_pixel))


def _masks_stack(
    masks: Any, *, name: str = "masks"
) -> tuple[npt.NDArray[np.uint8], tuple[str, ...]]:
    """Return ``(stack, names)`` for a MaskSet, a mapping or a (C, H, W) stack, without copying
    a MaskSet or a C-contiguous uint8 stack."""
    if isinstance(masks, MaskSet):
        return masks.stack(), masks.classes
    if isinstance(masks, Mapping):
        ms = MaskSet(masks)
        return ms.stack(), ms.classes
    arr = np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a MaskSet, a {{name: mask}} mapping or a (C, H, W) stack, but got "
            f"an array of shape {arr.shape}. For a single (H, W) mask pass mask[None]."
        )
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8) * np.uint8(255)
    elif arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255) or bool, but got dtype {arr.dtype}.")
    return arr, tuple(str(i) for i in range(arr.shape[0]))


def _class_indices(names: Sequence[str], selected: Sequence[ClassKey]) -> list[int | None]:
    """Positions in ``names`` of the selected classes; ``None`` for a vocabulary class the set
    lacks (it counts as an empty mask). Other unknown names raise ``KeyError``."""
    index = {n: i for i, n in enumerate(names)}
    out: list[int | None] = []
    for key in selected:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(names) <= key < len(names):
                raise KeyError(f"Class index {key} is out of range for {len(names)} masks.")
            out.append(int(key) % len(names))
        elif key in index:
            out.append(index[key])
        elif key in CLASSES:
            out.append(None)
        else:
            raise KeyError(
                f"No mask for class {key!r}; the masks have {list(names)}. Names from "
                f"clothseg_tools.CLASSES that are absent count as empty; others must exist."
            )
    return out


def _check_level(value: int, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer in {low}..255, got {value!r}.")
    if not low <= int(value) <= 255:
        raise ValueError(f"{what} must be in {low}..255, got {value}.")
    return int(value)


def merge(
    masks: MasksLike, classes: Sequence[ClassKey] | None = None, *, mode: str = "max"
) -> npt.NDArray[np.uint8]:
    """Combine several classes into one (H, W) uint8 mask.

    Parameters
    ----------
    masks
        A MaskSet, ``{name: mask}`` mapping or (C, H, W) stack.
    classes
        Classes to merge (names or positions); all of them when ``None``. A class of
        :data:`~clothseg_tools.CLASSES` the set lacks counts as empty.
    mode
        ``"max"``: pixel-wise maximum (the union of soft masks). ``"sum"``: pixel-wise
        sum, saturating at 255.

    Returns
    -------
    numpy.ndarray
        (H, W) uint8; all zeros when no class is selected.

    Raises
    ------
    KeyError
        A class that is neither in the set nor in the vocabulary.
    ValueError
        An unknown ``mode``.

    Examples
    --------
    >>> s = np.array([[[100, 0]], [[200, 255]]], np.uint8)
    >>> merge(s)
    array([[200, 255]], dtype=uint8)
    >>> merge(s, mode="sum")
    array([[255, 255]], dtype=uint8)
    """
    if mode not in ("max", "sum"):
        raise ValueError(f"mode must be 'max' or 'sum', got {mode!r}.")
    stack, names = _masks_stack(masks)
    if isinstance(classes, str):  # merge(ms, "tops"): one class, not its letters
        classes = [classes]
    idx = [i for i in _class_indices(names, names if classes is None else classes) if i is not None]
    h, w = stack.shape[1:]
    out = np.zeros((h, w), np.uint8)
    if not idx:
        return out
    step = _row_step(w)
    # 257 classes of 255 still fit in uint16; more need a clip after every add.
    acc = np.empty((step, w), np.uint16) if mode == "sum" else None
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        o = out[r0:r1]
        if acc is None:
            np.copyto(o, stack[idx[0], r0:r1])
            for i in idx[1:]:
                np.maximum(o, stack[i, r0:r1], out=o)
            continue
        a = acc[: r1 - r0]
        np.copyto(a, stack[idx[0], r0:r1])
        for i in idx[1:]:
            np.add(a, stack[i, r0:r1], out=a)
            if len(idx) > 257:
                np.minimum(a, 255, out=a)
        np.minimum(a, 255, out=a)
        np.copyto(o, a, casting="unsafe")
    return out


def threshold(
    mask: Any, level: int | str = 128, *, hysteresis: tuple[int, int] | None = None
) -> npt.NDArray[np.bool_]:
    """Turn a soft uint8 mask into a bool mask.

    Parameters
    ----------
    mask
        (H, W) uint8 or bool. A bool mask is returned as it is.
    level
        Pixels ``>= level`` are foreground (0..255). ``"otsu"`` picks the level with
        Otsu's method (scikit-image) and keeps pixels above it; a constant mask has no
        two populations, so it falls back to ``>= 128``.
    hysteresis
        ``(low, high)``: keep pixels ``>= low`` that are connected (4-connectivity) to a
        pixel ``>= high``. Replaces ``level`` when given.

    Returns
    -------
    numpy.ndarray
        (H, W) bool.

    Raises
    ------
    ValueError
        A level outside 0..255, an unknown level name, or ``low > high``.

    Examples
    --------
    >>> m = np.array([[0, 90, 200, 90, 0, 90]], np.uint8)
    >>> threshold(m)
    array([[False, False,  True, False, False, False]])
    >>> threshold(m, hysteresis=(80, 150))
    array([[False,  True,  True,  True, False, False]])
    """
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        as_mask(arr)  # the shape check
        return arr
    arr = as_mask(arr)
    if hysteresis is not None:
        from skimage.filters import apply_hysteresis_threshold

        low, high = (_check_level(v, "hysteresis value") for v in hysteresis)
        if low > high:
            raise ValueError(f"hysteresis must be (low, high) with low <= high, got {hysteresis}.")
        # skimage keeps values strictly above its thresholds; -0.5 makes them ">=" here
        result: npt.NDArray[np.bool_] = apply_hysteresis_threshold(arr, low - 0.5, high - 0.5)
        return result
    if isinstance(level, str):
        if level != "otsu":
            raise ValueError(f"level must be an integer 0..255 or 'otsu', got {level!r}.")
        if arr.size == 0 or int(arr.min()) == int(arr.max()):
            return arr >= 128
        from skimage.filters import threshold_otsu

        return arr > threshold_otsu(arr)
    return arr >= _check_level(level, "level")


def _priority_order(
    names: Sequence[str], selected: Sequence[ClassKey], priority: Sequence[ClassKey] | None
) -> list[int]:
    """Positions in ``selected``, highest priority first. Keys match by name or position."""
    if priority is None:
        return list(range(len(selected)))

    def ident(key: ClassKey) -> ClassKey | None:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return names[int(key)] if -len(names) <= key < len(names) else None
        return key

    pos = {ident(key): i for i, key in enumerate(selected)}
    order: list[int] = []
    for key in priority:
        i = pos.get(ident(key)) if ident(key) is not None else None
        if i is not None:
            if i in order:
                raise ValueError(f"Class {key!r} appears twice in priority.")
            order.append(i)
    return order + [i for i in range(len(selected)) if i not in order]


def label_map(
    masks: MasksLike,
    classes: Sequence[ClassKey] | None = None,
    *,
    priority: Sequence[ClassKey] | None = None,
    min_value: int = 128,
    mode: str = "priority",
) -> npt.NDArray[np.uint8]:
    """One (H, W) uint8 label per pixel: 0 is background, ``1 + i`` is ``classes[i]``.

    The rule, pixel by pixel. A class *reaches* a pixel when its mask value there is
    ``>= min_value``. No class reaches it: label 0. Otherwise, with
    ``mode="priority"`` the reaching class that comes first in ``priority`` wins; with
    ``mode="soft"`` the reaching class with the highest mask value wins, and among
    equal values the one first in ``priority``. The label is always ``1 + the
    winner's index in classes``, whatever ``priority`` says.

    Parameters
    ----------
    masks
        A MaskSet, ``{name: mask}`` mapping or (C, H, W) stack.
    classes
        Classes that get labels, in label order (names or positions); all classes of
        ``masks`` when ``None``. At most 255. A class of
        :data:`~clothseg_tools.CLASSES` the set lacks counts as empty, so label ids
        stay the same across images whose results hold different classes.
    priority
        Tie-break order, earliest first. Classes it does not list follow in
        ``classes`` order; names not in ``classes`` are ignored, so one global
        priority list can serve every class subset. Default: ``classes`` order.
    min_value
        1..255; a class reaches a pixel at ``value >= min_value``.
    mode
        ``"priority"`` or ``"soft"``, as above.

    Returns
    -------
    numpy.ndarray
        (H, W) uint8 label map.

    Raises
    ------
    KeyError
        A class that is neither in the set nor in the vocabulary.
    ValueError
        More than 255 classes, a class twice in ``priority``, a bad ``min_value`` or
        ``mode``.

    See Also
    --------
    masks_from_labels : the inverse, for disjoint masks.

    Examples
    --------
    >>> s = np.array([[[255, 200, 0]], [[255, 250, 100]]], np.uint8)
    >>> label_map(s)
    array([[1, 1, 0]], dtype=uint8)
    >>> label_map(s, priority=[1])
    array([[2, 2, 0]], dtype=uint8)
    >>> label_map(s, mode="soft")
    array([[1, 2, 0]], dtype=uint8)
    """
    if mode not in ("priority", "soft"):
        raise ValueError(f"mode must be 'priority' or 'soft', got {mode!r}.")
    min_value = _check_level(min_value, "min_value", low=1)
    stack, names = _masks_stack(masks)
    selected = list(names if classes is None else classes)
    if len(selected) > 255:
        raise ValueError(f"A uint8 label map holds at most 255 classes, got {len(selected)}.")
    idx = _class_indices(names, selected)
    # (label, stack index) in priority order; absent classes never win, so skip them
    active = [(pos + 1, idx[pos]) for pos in _priority_order(names, selected, priority)]
    ranked = [(np.uint8(lab), i) for lab, i in active if i is not None]
    h, w = stack.shape[1:]
    out = np.zeros((h, w), np.uint8)
    step = _row_step(w)
    hit = np.empty((step, w), np.bool_)
    best = np.empty((step, w), np.uint8) if mode == "soft" else None
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        o, b = out[r0:r1], hit[: r1 - r0]
        if best is None:
            # lowest priority first: each later write overrides, so the first in
            # priority is the last to write
            for lab, i in reversed(ranked):
                np.greater_equal(stack[i, r0:r1], min_value, out=b)
                np.copyto(o, lab, where=b)
        else:
            # highest priority first with a strict ">": a later class wins only
            # with a higher value, so ties stay with the earlier one
            bst = best[: r1 - r0]
            bst.fill(min_value - 1)
            for lab, i in ranked:
                v = stack[i, r0:r1]
                np.greater(v, bst, out=b)
                np.copyto(o, lab, where=b)
                np.maximum(bst, v, out=bst)
    return out


def masks_from_labels(labels: Any, classes: Sequence[str]) -> MaskSet:
    """Split a label map into one 0/255 mask per class: ``mask[i] = labels == i + 1``.

    The inverse of :func:`label_map` for masks that do not overlap.

    Parameters
    ----------
    labels
        (H, W) integer array; 0 is background, ``i + 1`` is ``classes[i]``.
    classes
        Class names, in label order.

    Returns
    -------
    MaskSet
        One uint8 mask per class, in ``classes`` order.

    Raises
    ------
    ValueError
        Non-integer or non-2-D labels, or a label value with no class (negative or
        above ``len(classes)``).

    Examples
    --------
    >>> ms = masks_from_labels(np.array([[0, 1, 2]]), ["tops", "dress"])
    >>> ms["dress"]
    array([[  0,   0, 255]], dtype=uint8)
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            f"labels must be a 2-D integer array, got dtype {lab.dtype} and shape {lab.shape}."
        )
    names = list(classes)
    if lab.size:
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0 or hi > len(names):
            raise ValueError(
                f"labels hold values {lo}..{hi} but only 0..{len(names)} have a class "
                f"({len(names)} classes given); pass every class of the label map."
            )
    h, w = lab.shape
    stack = np.empty((len(names), h, w), np.uint8)
    step = _row_step(w, lab.itemsize)
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        block = lab[r0:r1]
        for i in range(len(names)):
            s = stack[i, r0:r1]
            np.equal(block, i + 1, out=s.view(np.bool_))
            np.multiply(s, np.uint8(255), out=s)
    return MaskSet.from_stack(stack, names)


def clean(
    mask: Any,
    *,
    min_size: int = 64,
    fill_holes: bool = True,
    max_hole: float | None = None,
    level: int = 128,
) -> Any:
    """Remove specks and fill pinholes, keeping soft values where the mask was soft.

    An *object* is a connected (8-connectivity) region of nonzero pixels. An object is
    removed (set to 0) when fewer than ``min_size`` of its pixels are ``>= level``, so
    a speck goes with its faint halo. A *hole* is a connected (4-connectivity) region
    of pixels ``< level`` that does not touch the image border; holes with fewer than
    ``max_hole`` pixels are set to 255. Every other pixel keeps its value.

    Parameters
    ----------
    mask
        (H, W) uint8 or bool.
    min_size
        Smallest object to keep, in pixels at or above ``level``; 0 keeps all.
    fill_holes
        Fill holes smaller than ``max_hole``.
    max_hole
        Holes with fewer pixels than this are filled. ``None`` means ``min_size``;
        ``math.inf`` fills every hole.
    level
        Foreground level for uint8 masks.

    Returns
    -------
    numpy.ndarray
        A new mask of the input's dtype (bool in, bool out).

    Examples
    --------
    >>> m = np.zeros((7, 9), np.uint8)
    >>> m[1:6, 1:6] = 255; m[3, 3] = 0; m[1, 8] = 255
    >>> out = clean(m, min_size=4)
    >>> int(out[3, 3]), int(out[1, 8])
    (255, 0)
    """
    from scipy import ndimage as ndi

    arr = np.asarray(mask)
    is_bool = arr.dtype == np.bool_
    soft = as_mask(arr)
    fg = arr.copy() if is_bool else soft >= _check_level(level, "level")
    out = fg.copy() if is_bool else soft.copy()
    if min_size > 0:
        objects, n = ndi.label(soft > 0, structure=np.ones((3, 3), bool))
        strong = np.bincount(objects[fg], minlength=n + 1)
        small = strong < min_size
        small[0] = False
        if small.any():
            gone = small[objects]
            out[gone] = 0
            fg[gone] = False
    limit = min_size if max_hole is None else max_hole
    if fill_holes and limit > 0:
        holes, n = ndi.label(~fg)
        sizes = np.bincount(holes.ravel(), minlength=n + 1)
        fill = sizes < limit
        fill[0] = False
        for edge in (holes[0], holes[-1], holes[:, 0], holes[:, -1]):
            fill[edge] = False
        if fill.any():
            out[fill[holes]] = True if is_bool else 255
    return out


def feather(mask: Any, radius: float) -> npt.NDArray[np.uint8]:
    """Soften a mask's edges with a Gaussian blur of standard deviation ``radius`` pixels.

    The ramp from 0 to 255 spans about ``4 * radius`` pixels centred on the old edge.
    Uses Pillow's Gaussian blur (C, cost independent of ``radius``).

    Parameters
    ----------
    mask
        (H, W) uint8 or bool.
    radius
        Standard deviation in pixels, ``>= 0``; 0 returns a copy.

    Returns
    -------
    numpy.ndarray
        (H, W) uint8.

    Examples
    --------
    >>> m = np.zeros((1, 9), np.uint8); m[:, 4:] = 255
    >>> out = feather(m, 1)
    >>> bool(np.all(np.diff(out[0].astype(int)) >= 0)), int(out[0, 0]), int(out[0, -1])
    (True, 0, 255)
    """
    from PIL import Image, ImageFilter

    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius!r}.")
    arr = as_mask(mask)
    if radius == 0 or arr.size == 0:
        return arr.copy()
    blurred = Image.fromarray(arr).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred).copy()


@overload
def resize_mask(mask: MaskSet, shape: Sequence[int], *, method: str = ...) -> MaskSet: ...
@overload
def resize_mask(mask: Any, shape: Sequence[int], *, method: str = ...) -> Any: ...
def resize_mask(mask: Any, shape: Sequence[int], *, method: str = "bilinear") -> Any:
    """Resize a mask (or every mask of a MaskSet) to ``shape = (H, W)``.

    Parameters
    ----------
    mask
        (H, W) uint8 or bool, or a MaskSet.
    shape
        Target (H, W); a longer shape such as an image's (H, W, 3) uses its first two.
    method
        ``"bilinear"`` (Pillow's, which averages when shrinking) gives soft uint8
        edges; ``"nearest"`` keeps the values as they are and keeps bool as bool.

    Returns
    -------
    numpy.ndarray or MaskSet
        Same kind as ``mask``.

    Examples
    --------
    >>> resize_mask(np.array([[0, 255]], np.uint8), (1, 4), method="nearest")
    array([[  0,   0, 255, 255]], dtype=uint8)
    >>> resize_mask(np.array([[True, False]]), (2, 2), method="nearest").dtype
    dtype('bool')
    """
    from PIL import Image

    if method not in ("bilinear", "nearest"):
        raise ValueError(f"method must be 'bilinear' or 'nearest', got {method!r}.")
    if len(shape) < 2 or min(int(shape[0]), int(shape[1])) < 1:
        raise ValueError(f"shape must be (H, W) with positive sides, got {tuple(shape)}.")
    h, w = int(shape[0]), int(shape[1])
    if isinstance(mask, MaskSet):
        resized = {n: resize_mask(m, (h, w), method=method) for n, m in mask.items()}
        return MaskSet(resized, shape=(h, w))
    arr = np.asarray(mask)
    keep_bool = arr.dtype == np.bool_ and method == "nearest"
    src = as_mask(arr)
    if src.shape == (h, w):
        return arr.copy() if keep_bool else src.copy()
    resample = Image.Resampling.BILINEAR if method == "bilinear" else Image.Resampling.NEAREST
    out = np.asarray(Image.fromarray(src).resize((w, h), resample)).copy()
    return out.astype(bool) if keep_bool else out
