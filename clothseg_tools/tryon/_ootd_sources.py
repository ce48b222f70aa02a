"""What the ``ootd`` preset reads: an ATR + neck label map and OpenPose points, at the
working size, made from whatever the caller has.

- Keypoints: a mapping of COCO / MediaPipe names to ``(x, y)`` or ``(x, y, score)`` in
  the source's pixels, or an OpenPose dict (``{"pose_keypoints_2d": [...]}``) in the
  pixels of the frame it was detected in (the reference's 384 x 512 unless told).
- Label maps: a :class:`~clothseg_tools.Parsing` in the ``ootd`` set (as is), in
  ``atr`` (no neck label), or in another set whose labels are mapped to the ATR roles
  by name; or a 12-class :class:`~clothseg_tools.MaskSet`, whose ``body`` is split
  into arms, legs and neck by the keypoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import KeypointError
from ..labelsets import normalize_label
from ..masks import MaskSet
from . import _ootd as R
from ._body import _frame, _segment_distances

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: OpenPose BODY_18 point names, in index order, as COCO / MediaPipe spell them.
BODY_18: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)

# -- keypoints -------------------------------------------------------------------------


def is_openpose(keypoints: object) -> bool:
    """An OpenPose dict (``pose_keypoints_2d``), as opposed to a name mapping."""
    return isinstance(keypoints, Mapping) and "pose_keypoints_2d" in keypoints


def _named_point(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        seq = [float(v) for v in value]
    except (TypeError, ValueError):
        raise KeypointError(
            f"keypoint {name!r} must be (x, y) or (x, y, score) numbers, got {value!r}."
        ) from None
    if len(seq) < 2:
        raise KeypointError(f"keypoint {name!r} must be (x, y) or (x, y, score), got {value!r}.")
    if len(seq) > 2 and seq[2] <= 0:
        return None  # zero score / COCO visibility 0: not there
    if not (np.isfinite(seq[0]) and np.isfinite(seq[1])):
        return None
    return seq[0], seq[1]


def work_points(
    keypoints: Mapping[str, Any] | None,
    source_shape: tuple[int, int],
    work_size: tuple[int, int],
    *,
    keypoint_size: tuple[int, int] | None = None,
) -> FloatArray | None:
    """(18, 2) BODY_18 points in working pixels, ``(0, 0)`` where missing.

    Parameters
    ----------
    keypoints
        Name mapping in the source's pixels, or an OpenPose dict.
    source_shape
        (H, W) of the source the name mapping's pixels refer to.
    work_size
        (width, height) of the working picture.
    keypoint_size
        (width, height) of the frame an OpenPose dict's pixels refer to (default: the
        reference's 384 x 512, where its OpenPose step runs).

    Examples
    --------
    >>> pts = work_points({"left_wrist": (100, 200)}, (1024, 768), (384, 512))
    >>> pts[7].tolist(), pts[4].tolist()
    ([50.0, 100.0], [0.0, 0.0])
    """
    if keypoints is None:
        return None
    ww, wh = work_size
    if is_openpose(keypoints):
        try:
            pts = R.openpose_points(keypoints)
        except (TypeError, ValueError) as exc:
            raise KeypointError(str(exc)) from None
        kw, kh = keypoint_size or R.WORK_SIZE
        return pts * np.array([ww / kw, wh / kh])
    if not isinstance(keypoints, Mapping):
        raise KeypointError(
            "keypoints must be a mapping of names to (x, y) pixels or an OpenPose dict "
            f'{{"pose_keypoints_2d": [...]}}, got {type(keypoints).__name__}.'
        )
    h, w = source_shape
    pts = np.zeros((len(BODY_18), 2))
    for i, name in enumerate(BODY_18):
        p = _named_point(keypoints.get(name), name)
        if p is not None:
            pts[i] = (p[0] * ww / w, p[1] * wh / h)
    if R.missing(pts[1]) and not (R.missing(pts[2]) or R.missing(pts[5])):
        pts[1] = (pts[2] + pts[5]) / 2  # COCO has no neck point: between the shoulders
    return pts


# -- label maps ------------------------------------------------------------------------

# Label names (as normalize_label folds them) -> ootd index. "arm" and "leg"
# stand for labels without a side, split by the keypoints.
_ARM, _LEG = -1, -2
_ROLES: dict[str, int] = {
    "background": 0,
    "hat": R.HAT,
    "hair": R.HAIR,
    "sunglasses": R.SUNGLASSES,
    "glasses": R.SUNGLASSES,
    "upperclothes": R.UPPER,
    "top": R.UPPER,
    "tops": R.UPPER,
    "coat": R.UPPER,
    "skirt": R.SKIRT,
    "pants": R.PANTS,
    "dress": R.DRESS,
    "jumpsuits": R.DRESS,
    "belt": R.BELT,
    "leftshoe": R.LEFT_SHOE,
    "rightshoe": R.RIGHT_SHOE,
    "shoes": R.LEFT_SHOE,
    "feet": R.LEFT_SHOE,
    "face": R.FACE,
    "head": R.FACE,
    "leftleg": R.LEFT_LEG,
    "rightleg": R.RIGHT_LEG,
    "legs": _LEG,
    "upperlegs": _LEG,
    "lowerlegs": _LEG,
    "socks": _LEG,
    "leftarm": R.LEFT_ARM,
    "rightarm": R.RIGHT_ARM,
    "arms": _ARM,
    "hands": _ARM,
    "upperarms": _ARM,
    "lowerarms": _ARM,
    "glove": _ARM,
    "bag": R.BAG,
    "scarf": R.SCARF,
    "neck": R.NECK,
    "torsoskin": R.NECK,
    "torso": R.NECK,
}
# Pascal-Person-Part's torso is the whole torso, clothed or not: the upper garment.
_SET_ROLES: dict[str, dict[str, int]] = {"pascal_person_part": {"torso": R.UPPER}}


def label_roles(set_name: str, names: Sequence[str]) -> npt.NDArray[np.int16]:
    """The ootd index of each label of a set (unknown names: 0, kept like background).

    Examples
    --------
    >>> label_roles("lip", ["Background", "Coat", "Left-arm", "Jumpsuits"]).tolist()
    [0, 4, 14, 7]
    """
    extra = _SET_ROLES.get(set_name, {})
    keys = [normalize_label(n) for n in names]
    return np.array([extra.get(k, _ROLES.get(k, 0)) for k in keys], np.int16)


def _side_split(
    mask: BoolArray,
    points: FloatArray | None,
    segments: Sequence[tuple[int, int]],
    labels: tuple[int, int],
) -> npt.NDArray[np.int16]:
    """``labels`` = (left, right) per pixel of ``mask``: the side of the nearer limb of
    ``segments`` (BODY_18 index pairs, the right side's first)."""
    out = np.zeros(mask.shape, np.int16)
    ys, xs = np.nonzero(mask)
    if ys.size:
        pxy = np.column_stack([xs, ys]).astype(np.float64)
        out[ys, xs] = np.where(_nearer_left(pxy, points, segments), *labels)
    return out


def _nearer_left(
    pxy: FloatArray, points: FloatArray | None, segments: Sequence[tuple[int, int]]
) -> BoolArray:
    """True where a pixel (x, y) is nearer the person's left limb than the right one."""
    half = len(segments) // 2
    nearest = {True: np.full(len(pxy), np.inf), False: np.full(len(pxy), np.inf)}
    if points is not None:
        for k, (a, b) in enumerate(segments):
            if not (R.missing(points[a]) or R.missing(points[b])):
                d = _segment_distances(pxy, points[a], points[b])
                np.minimum(nearest[k >= half], d, out=nearest[k >= half])
    if np.isfinite(nearest[True]).all() and np.isfinite(nearest[False]).all():
        return np.asarray(nearest[True] < nearest[False], bool)
    # Without both limbs: the person faces the camera, so their left is the picture's
    # right of the pixels' midline.
    return np.asarray(pxy[:, 0] >= pxy[:, 0].mean(), bool)


_ARM_SEGMENTS = ((2, 3), (3, 4), (5, 6), (6, 7))
_LEG_SEGMENTS = ((8, 9), (9, 10), (11, 12), (12, 13))


def labels_from_parsing(
    labels: npt.NDArray[np.integer],
    set_name: str,
    names: Sequence[str],
    points: FloatArray | None,
    work_size: tuple[int, int],
) -> tuple[npt.NDArray[np.int16], bool]:
    """A label map of any set as the ootd map at the working size, and whether it has
    a neck label (``atr`` has none; the neck rule then has nothing to do)."""
    small = R.resize_nearest(np.asarray(labels), work_size)
    if set_name == "ootd":
        return small.astype(np.int16), True
    roles = label_roles(set_name, names)
    valid = (small >= 0) & (small < len(roles))
    out = np.where(valid, roles[np.clip(small, 0, len(roles) - 1)], 0).astype(np.int16)
    for role, segs, left, right in (
        (_ARM, _ARM_SEGMENTS, R.LEFT_ARM, R.RIGHT_ARM),
        (_LEG, _LEG_SEGMENTS, R.LEFT_LEG, R.RIGHT_LEG),
    ):
        sideless = out == role
        if sideless.any():
            out[sideless] = _side_split(sideless, points, segs, (left, right))[sideless]
    return out, bool((roles == R.NECK).any())


# The skeleton that splits a MaskSet's body skin: arms, legs and the torso line from
# the neck point to the middle of the hips (neck and torso skin take the Neck label).
_BODY_PARTS: tuple[tuple[int, int, int], ...] = (
    (2, 3, R.RIGHT_ARM),
    (3, 4, R.RIGHT_ARM),
    (5, 6, R.LEFT_ARM),
    (6, 7, R.LEFT_ARM),
    (8, 9, R.RIGHT_LEG),
    (9, 10, R.RIGHT_LEG),
    (11, 12, R.LEFT_LEG),
    (12, 13, R.LEFT_LEG),
)


def _split_body(body: BoolArray, points: FloatArray | None, hip_row: int) -> npt.NDArray[np.int16]:
    """Arms, legs and neck/torso labels for the skin pixels of ``body``."""
    out = np.zeros(body.shape, np.int16)
    ys, xs = np.nonzero(body)
    if not ys.size:
        return out
    pxy = np.column_stack([xs, ys]).astype(np.float64)
    segs: list[tuple[FloatArray, FloatArray, int]] = []
    if points is not None:
        points = points.copy()
        for shoulder, elbow, wrist in ((2, 3, 4), (5, 6, 7)):
            if R.missing(points[wrist]) and not (
                R.missing(points[shoulder]) or R.missing(points[elbow])
            ):
                # a wrist not found: guess a straight arm, so the forearm's skin does
                # not go to the nearest leg
                points[wrist] = 2 * points[elbow] - points[shoulder]
        for a, b, part in _BODY_PARTS:
            if not (R.missing(points[a]) or R.missing(points[b])):
                pa, pb = points[a], points[b]
                # the hand and the foot continue past the wrist and the ankle
                tip = pb + 0.35 * (pb - pa) if b in (4, 7, 10, 13) else pb
                segs.append((pa, tip, part))
        hips = [points[i] for i in (8, 11) if not R.missing(points[i])]
        if not R.missing(points[1]) and hips:
            segs.append((points[1], np.mean(hips, axis=0), R.NECK))
    if segs:
        dist = np.stack([_segment_distances(pxy, a, b) for a, b, _ in segs])
        parts = np.array([p for _, _, p in segs], np.int16)[dist.argmin(axis=0)]
    else:
        # no skeleton: skin below the hip line is legs, the rest neck and torso
        below = ys >= hip_row
        left = xs >= xs.mean()
        parts = np.where(below, np.where(left, R.LEFT_LEG, R.RIGHT_LEG), R.NECK).astype(np.int16)
    out[ys, xs] = parts
    return out


# MaskSet classes painted onto the label map, lowest priority first (the order of
# LABEL_PRIORITY reversed: a face pixel inside ``head`` stays face).
_PAINT_ORDER: tuple[tuple[str, int], ...] = (
    ("bottoms", R.PANTS),
    ("tops", R.UPPER),
    ("dress", R.DRESS),
    ("shoes", R.LEFT_SHOE),
    ("bag", R.BAG),
)


def labels_from_masks(
    ms: MaskSet, points: FloatArray | None, work_size: tuple[int, int], level: int
) -> npt.NDArray[np.int16]:
    """The 12 service classes as an ootd label map at the working size."""
    w, h = work_size
    rows = R.nearest_indices(ms.shape[0], h)
    cols = R.nearest_indices(ms.shape[1], w)

    low = {name: ms[name].take(rows, axis=0).take(cols, axis=1) >= level for name in ms.classes}

    def get(name: str) -> BoolArray:
        return low[name] if name in low else np.zeros((h, w), bool)

    out = np.zeros((h, w), np.int16)
    hip = _frame(low, None, 1, (h, w)).hip
    body = get("body")
    out[body] = _split_body(body, points, hip)[body]
    if not any(c in ms.classes for c in ("tops", "bottoms", "dress")):
        out[get("clothes")] = R.DRESS  # class type 1 without subdivisions
    for name, role in _PAINT_ORDER:
        out[get(name)] = role
    face, hair = get("face"), get("hair")
    head_zone = _head_zone(face | hair | get("head"))
    acc = get("acc")
    out[acc] = R.BELT  # kept like background unless the garment's dilation reaches it
    out[acc & head_zone] = R.SUNGLASSES  # glasses and earrings: the head, fixed
    out[get("head") & ~face & ~hair] = R.HAT
    out[hair] = R.HAIR
    out[face] = R.FACE
    return out


def _head_zone(head: BoolArray) -> BoolArray:
    """The head's bounding box grown by a quarter of its height."""
    zone = np.zeros(head.shape, bool)
    rows, cols = np.flatnonzero(head.any(axis=1)), np.flatnonzero(head.any(axis=0))
    if rows.size:
        m = (rows[-1] - rows[0] + 1) // 4
        zone[max(rows[0] - m, 0) : rows[-1] + m + 1, max(cols[0] - m, 0) : cols[-1] + m + 1] = True
    return zone
