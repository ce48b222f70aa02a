"""OOTDiffusion's agnostic mask, rule for rule, on an ATR + neck label map.

OOTDiffusion (``run/utils_ootd.py`` of levihsu/OOTDiffusion, ``get_mask_location``) and
the pipelines that reuse its preprocessing (IDM-VTON) paint into a mask built from an
ATR parsing map with an extra *neck* label (18) and the OpenPose BODY_18 keypoints, at
384 x 512. This module restates those rules on numpy arrays; the facts, in order:

1. The label map is brought to the working size by nearest-neighbour sampling (the
   sampling positions are Pillow's, so the same pixels are picked).
2. **Garment** (to paint), by category: ``upper_body`` Upper-clothes and Dress;
   ``lower_body`` Pants, Skirt and both legs; ``dresses`` Dress, Upper-clothes, Skirt
   and Pants (legs stay out).
3. **Fixed** (never painted): shoes, hat, sunglasses and bag always; Skirt and Pants
   for ``upper_body``; Upper-clothes and both arms for ``lower_body``.
4. **Arms** (``upper_body`` and ``dresses``): each arm is a polyline through shoulder,
   elbow and the wrist pushed out to 1.2 times its distance from the elbow, drawn
   60 px wide (``"hd"``) or 45 px (``"dc"``) per 512 px of working height, with round
   joints and a disk of half that width at the shoulder. A side whose wrist is missing
   keeps its parsed arm as the drawn arm instead. **Hands** are the parsed arm pixels
   outside the drawn arm of their side: fixed.
5. Hat, sunglasses and face join the fixed set (the *head*; hair does not).
6. **Dilation** with a 5 x 5 square, zero outside the picture: the garment 5 times; the
   neck label once, minus the head; the drawn arms 4 times.
7. The mask is what is dilated and not fixed; its one-pixel frame is cleared, holes
   (background not 4-connected to the frame) are filled, and only the largest
   8-connected region stays.

A point counts as missing when both its coordinates are at most 1 px (OpenPose's
``(0, 0)``); a present wrist with a missing elbow or shoulder is drawn towards the
missing point's ``(0, 0)``, as the reference does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ..labelsets import get_labelset

BoolArray = npt.NDArray[np.bool_]

#: The reference's working size, (width, height).
WORK_SIZE: tuple[int, int] = (384, 512)

#: Arm line width in pixels per 512 px of working height, by model type.
ARM_WIDTH: dict[str, int] = {"hd": 60, "dc": 45}

# Label indices of the ``ootd`` set (ATR order plus Neck), as the rules name them; the
# order itself belongs to the label-set registry.
_OOTD = get_labelset("ootd")
HAT, HAIR, SUNGLASSES, UPPER, SKIRT, PANTS, DRESS, BELT = (
    _OOTD.index(n)
    for n in ("Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt")
)
LEFT_SHOE, RIGHT_SHOE, FACE, LEFT_LEG, RIGHT_LEG = (
    _OOTD.index(n) for n in ("Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg")
)
LEFT_ARM, RIGHT_ARM, BAG, SCARF, NECK = (
    _OOTD.index(n) for n in ("Left-arm", "Right-arm", "Bag", "Scarf", "Neck")
)

_GARMENT: dict[str, tuple[int, ...]] = {
    "upper_body": (UPPER, DRESS),
    "lower_body": (PANTS, LEFT_LEG, RIGHT_LEG, SKIRT),
    "dresses": (DRESS, UPPER, SKIRT, PANTS),
}
_ALWAYS_FIXED = (LEFT_SHOE, RIGHT_SHOE, HAT, SUNGLASSES, BAG)
_FIXED_BY_CATEGORY: dict[str, tuple[int, ...]] = {
    "upper_body": (SKIRT, PANTS),
    "lower_body": (UPPER, LEFT_ARM, RIGHT_ARM),
    "dresses": (),
}
_HEAD = (HAT, SUNGLASSES, FACE)

# The 5 x 5 kernel and how often each region is dilated with it.
_KERNEL = 5
_GARMENT_ITERATIONS = 5
_NECK_ITERATIONS = 1
_ARM_ITERATIONS = 4

# The wrist is pushed out from the elbow by this factor, so the drawn forearm reaches
# past the wrist joint to where a sleeve may end.
_WRIST_REACH = 1.2

# A point with both coordinates at or below this many pixels is missing.
_MISSING_AT = 1.0

# OpenPose BODY_18 indices of (shoulder, elbow, wrist) per side.
_ARM_POINTS: dict[str, tuple[int, int, int]] = {"right": (2, 3, 4), "left": (5, 6, 7)}
_ARM_LABEL: dict[str, int] = {"right": RIGHT_ARM, "left": LEFT_ARM}


# -- primitives ------------------------------------------------------------------------


def nearest_indices(src: int, dst: int) -> npt.NDArray[np.intp]:
    """Source index of each of ``dst`` samples in Pillow's nearest-neighbour resize.

    Pillow picks, per axis, the source pixel whose span holds the destination pixel's
    centre; asking Pillow itself (on a one-row integer image) keeps the choice exact.

    Examples
    --------
    >>> nearest_indices(4, 2).tolist(), nearest_indices(2, 5).tolist()
    ([1, 3], [0, 0, 1, 1, 1])
    """
    from PIL import Image

    row = Image.fromarray(np.arange(src, dtype=np.int32)[None, :], mode="I")
    return np.asarray(row.resize((dst, 1), Image.Resampling.NEAREST), np.intp)[0]


def resize_nearest(array: npt.NDArray[np.generic], size: tuple[int, int]) -> npt.NDArray:
    """``array`` (H, W) resized to ``size`` = (width, height) as Pillow's NEAREST does.

    Examples
    --------
    >>> resize_nearest(np.arange(4).reshape(2, 2), (4, 1)).tolist()
    [[2, 2, 3, 3]]
    """
    w, h = size
    rows = nearest_indices(array.shape[0], h)
    cols = nearest_indices(array.shape[1], w)
    return array.take(rows, axis=0).take(cols, axis=1)


def dilate_square(mask: BoolArray, size: int, iterations: int = 1) -> BoolArray:
    """Dilation by a ``size`` x ``size`` square, ``iterations`` times, nothing outside.

    Repeated dilation by a square is one dilation by a larger square (side
    ``1 + (size - 1) * iterations``), done as a row then a column pass.

    Examples
    --------
    >>> m = np.zeros((7, 7), bool); m[3, 3] = True
    >>> int(dilate_square(m, 3, 2).sum())
    25
    """
    from skimage.morphology import dilation, footprint_rectangle

    side = 1 + (size - 1) * iterations
    if side <= 1 or not mask.any():
        return mask.copy()
    square = footprint_rectangle((side, side), decomposition="separable")
    return np.asarray(dilation(mask, square, mode="constant", cval=0), bool)


def fill_from_border(mask: BoolArray) -> BoolArray:
    """Clear the one-pixel frame, then fill every hole.

    A hole is a background region not 4-connected to the (cleared) frame.

    Examples
    --------
    >>> m = np.zeros((6, 6), bool); m[1:5, 1:5] = True; m[2:4, 2:4] = False
    >>> bool(fill_from_border(m)[1:5, 1:5].all())
    True
    """
    from skimage.measure import label

    out = mask.copy()
    out[[0, -1], :] = False
    out[:, [0, -1]] = False
    if out.shape[0] < 3 or out.shape[1] < 3:
        return out
    # the cleared frame is one 4-connected background region: the outside
    regions = label(~out, connectivity=1)
    return np.asarray(regions != regions[0, 0], bool)


def largest_region(mask: BoolArray) -> BoolArray:
    """The largest 8-connected region of ``mask`` (the first in raster order on a tie).

    Regions are ranked by the area of the outline through their boundary pixels'
    centres (pixels minus half the boundary pixels), the measure a traced contour
    gives: a one-pixel line has almost none.

    Examples
    --------
    >>> m = np.zeros((5, 9), bool); m[1:4, 1:4] = True; m[1:3, 6:8] = True
    >>> np.argwhere(largest_region(m)).min(axis=0).tolist()
    [1, 1]
    """
    from skimage.measure import label

    regions, count = label(mask, connectivity=2, return_num=True)
    if count <= 1:
        return mask.copy()
    padded = np.pad(mask, 1)
    inner = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )  # all four neighbours set: not on the boundary
    pixels = np.bincount(regions.ravel(), minlength=count + 1)
    boundary = np.bincount(regions[mask & ~inner], minlength=count + 1)
    area = pixels - boundary / 2.0
    area[0] = -1.0
    return np.asarray(regions == int(np.argmax(area)), bool)


def _as_uint16(points: npt.NDArray[np.float64]) -> list[int]:
    """Coordinates as the reference hands them to Pillow: truncated towards zero and
    wrapped to 16 bits (its ``astype(uint16)``; a point off the top edge wraps far away
    instead of clamping)."""
    return [int(v) & 0xFFFF for v in np.trunc(points).ravel().astype(np.int64)]


def draw_arm(
    shoulder: npt.NDArray[np.float64],
    elbow: npt.NDArray[np.float64],
    wrist: npt.NDArray[np.float64],
    width: int,
    shape: tuple[int, int],
    *,
    from_wrist: bool = False,
) -> BoolArray:
    """One drawn arm: the wide polyline shoulder-elbow-wrist plus the shoulder disk.

    Parameters
    ----------
    shoulder, elbow, wrist
        (x, y) in working pixels; ``wrist`` already pushed out from the elbow.
    width
        Line width in pixels.
    shape
        (height, width) of the working picture.
    from_wrist
        Draw the polyline from the wrist end. Pillow's wide lines are not symmetric
        under reversal; the reference draws the left arm from the wrist.

    Examples
    --------
    >>> m = draw_arm(np.array([10.0, 10]), np.array([10.0, 30]), np.array([10.0, 50]), 6, (64, 32))
    >>> bool(m[30, 10]), bool(m[30, 20])
    (True, False)
    """
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (shape[1], shape[0]))
    draw = ImageDraw.Draw(canvas)
    chain = np.stack([shoulder, elbow, wrist])
    if from_wrist:
        chain = chain[::-1]
    draw.line(_as_uint16(chain), fill=255, width=width, joint="curve")
    half = width // 2
    x, y = float(shoulder[0]), float(shoulder[1])
    draw.arc([x - half, y - half, x + half, y + half], 0, 360, fill=255, width=half)
    return np.asarray(canvas) > 0


# -- the mask --------------------------------------------------------------------------


def missing(point: npt.NDArray[np.float64]) -> bool:
    """A point at (0, 0), give or take a pixel: OpenPose's 'not found'.

    Examples
    --------
    >>> missing(np.array([0.0, 0.0])), missing(np.array([0.5, 40.0]))
    (True, False)
    """
    return bool(point[0] <= _MISSING_AT and point[1] <= _MISSING_AT)


def drawn_arms(
    labels: npt.NDArray[np.integer],
    points: npt.NDArray[np.float64],
    width: int,
) -> dict[str, BoolArray]:
    """Each side's arm region: drawn from the keypoints, or its parsed arm when the
    wrist is missing."""
    out: dict[str, BoolArray] = {}
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    for side, (s, e, w) in _ARM_POINTS.items():
        shoulder, elbow, wrist = points[s], points[e], points[w]
        if missing(wrist):
            out[side] = labels == _ARM_LABEL[side]
            continue
        reach = elbow + _WRIST_REACH * (wrist - elbow)
        out[side] = draw_arm(shoulder, elbow, reach, width, shape, from_wrist=side == "left")
    return out


def agnostic_mask(
    labels: npt.NDArray[np.integer],
    category: str,
    points: npt.NDArray[np.float64] | None,
    *,
    model_type: str = "hd",
    neck: bool = True,
) -> BoolArray:
    """The reference's mask on a label map already at the working size.

    Parameters
    ----------
    labels
        (h, w) integer map in the ``ootd`` index order (ATR, 18 = Neck).
    category
        ``"upper_body"``, ``"lower_body"`` or ``"dresses"``.
    points
        (18, 2) OpenPose BODY_18 (x, y) in working pixels, ``(0, 0)`` for missing;
        ``None`` means every point is missing. Unused for ``"lower_body"``.
    model_type
        ``"hd"`` (60 px arms per 512 px) or ``"dc"`` (45 px).
    neck
        Apply the neck rule (off for label maps without a neck label).

    Returns
    -------
    numpy.ndarray
        (h, w) bool: where to paint.

    Examples
    --------
    >>> lab = np.zeros((64, 48), np.uint8); lab[20:40, 14:34] = UPPER; lab[40:60, 16:32] = PANTS
    >>> m = agnostic_mask(lab, "lower_body", None)
    >>> bool(m[45:60, 16:32].all()), bool(m[20:40, 14:34].any())
    (True, False)
    """
    is_label = np.zeros(256, bool)

    def of(ids: Sequence[int]) -> BoolArray:
        is_label[:] = False
        is_label[list(ids)] = True
        return is_label[np.clip(labels, 0, 255)]

    fixed = of(_ALWAYS_FIXED + _FIXED_BY_CATEGORY[category])
    head = of(_HEAD)
    paint = dilate_square(of(_GARMENT[category]), _KERNEL, _GARMENT_ITERATIONS)
    if category != "lower_body":
        h = labels.shape[0]
        width = int(ARM_WIDTH[model_type] / 512 * h)
        pts = np.zeros((18, 2)) if points is None else np.asarray(points, np.float64)
        arms = drawn_arms(labels, pts, width)
        for side, drawn in arms.items():
            fixed |= (labels == _ARM_LABEL[side]) & ~drawn  # the hand
        if neck:
            paint |= dilate_square(labels == NECK, _KERNEL, _NECK_ITERATIONS) & ~head
        paint |= dilate_square(arms["left"] | arms["right"], _KERNEL, _ARM_ITERATIONS)
    fixed |= head
    # The reference keeps (changeable and not painted) or fixed, where changeable is
    # everything not fixed before hands and head joined; the complement of that is
    # exactly what is painted and not fixed.
    return largest_region(fill_from_border(paint & ~fixed))


def openpose_points(
    keypoints: Mapping[str, object] | Sequence[float],
) -> npt.NDArray[np.float64]:
    """(18, 2) points from ``pose_keypoints_2d`` (pairs or triples, 18 or 25 points).

    Triples carry a confidence; a point with confidence 0 is missing. BODY_25 shares
    BODY_18's first eight points (nose to left wrist), the only ones the rules use.

    Examples
    --------
    >>> openpose_points({"pose_keypoints_2d": [1.0, 2.0] * 18})[3].tolist()
    [1.0, 2.0]
    """
    raw = keypoints["pose_keypoints_2d"] if isinstance(keypoints, Mapping) else keypoints
    values = np.asarray(raw, np.float64).ravel()
    layouts = {36: (18, 2), 50: (25, 2), 54: (18, 3), 75: (25, 3)}
    if values.size not in layouts:
        raise ValueError(
            f"pose_keypoints_2d must hold 18 or 25 points as (x, y) pairs or (x, y, "
            f"confidence) triples (36, 50, 54 or 75 numbers), got {values.size}."
        )
    table = values.reshape(layouts[values.size])
    pts = np.zeros((18, 2))
    pts[:8] = table[:8, :2]
    if table.shape[0] == 18:
        pts[8:] = table[8:, :2]
    if table.shape[1] == 3:
        pts[:8][table[:8, 2] <= 0] = 0.0
    pts[~np.isfinite(pts).all(axis=1)] = 0.0
    return pts
