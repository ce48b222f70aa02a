"""Try-on preprocessing: the region of a photo to repaint for a new garment.

Virtual try-on models (VITON-HD, DressCode, OOTDiffusion, IDM-VTON, CatVTON...) take
the person photo with an *agnostic* region greyed out or masked and paint the new
garment into it. Their pipelines build that region from a human-parsing map with a
few rules, which :func:`tryon_mask` follows on the service's classes:

1. **Garment.** The classes of the garment being replaced: ``tops`` and the upper part
   of ``dress`` for ``"upper_body"``; ``bottoms`` and the lower part of ``dress`` for
   ``"lower_body"``; ``tops``, ``bottoms`` and ``dress`` for ``"dresses"``. The dress is
   split at the hip line. ``clothes`` stands in for them when a set has none of the
   three (class type 1 without subdivisions).
2. **Skin the new garment may cover.** The arms (for upper body and dresses) and the
   legs (for lower body and dresses), so that a short sleeve can replace a long one
   and the other way round. *Arms* is all ``body`` skin above the hip line: arms,
   shoulders, neck and midriff, like OOTDiffusion's arm and neck regions; *legs* is
   the skin below it.
3. **Shaping**, on a reduced copy whose longer side is at most ``work_size`` px
   (the rules are about shapes, not pixels): dilation by a disk whose radius is a
   fraction of the image's longer side (so the mask scales with the image instead of
   thinning at 4K), hole filling, then the largest connected region plus the regions
   within the dilation radius of it (a sleeve or leg cut off by a thin gap stays, a
   stray blob elsewhere in the picture goes), then an optional convex hull and an
   optional bounding box.
4. **Protected regions, subtracted last** at full resolution, so no dilation or hull
   eats them: ``face``, ``hair``, ``head`` (head accessories such as hats) and the
   ``acc`` pixels near the head (glasses, earrings); hands and feet; ``shoes`` and
   ``bag``; and the garments of the other category (``bottoms`` and the lower dress
   when replacing tops, ``tops``, the upper dress and the arms when replacing
   bottoms).

**Hands and feet.** With ``keypoints`` (pose landmarks in pixels, COCO or MediaPipe
names: ``left_shoulder``, ``left_elbow``, ``left_wrist``, ``left_hip``, ``left_knee``,
``left_ankle``, optionally ``left_index``, ``left_pinky``, ``left_thumb``,
``left_heel``, ``left_foot_index`` and the ``right_`` ones), each skin pixel belongs to
the nearest limb segment of the skeleton: the hand is the skin nearest the segment
beyond the wrist, the foot the skin nearest the segment beyond the ankle, and the hip
line is the hips' height. Without keypoints, geometry stands in: the hand is the far
end of the arm skin on each side of the body, within one hand length (about one face
height) of the point farthest from the shoulder; the foot is the skin beside the
shoes, or, barefoot, the lowest foot length of each leg; and the hip line is the top
of ``bottoms``, else the bottom of ``tops``, else 45 % down the dress or the clothes.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import MaskSet
>>> h, w = 200, 100
>>> face = np.zeros((h, w), bool); face[10:40, 35:65] = True
>>> tops = np.zeros((h, w), bool); tops[45:110, 25:75] = True
>>> bottoms = np.zeros((h, w), bool); bottoms[110:190, 30:70] = True
>>> ms = MaskSet({"face": face, "tops": tops, "bottoms": bottoms})
>>> m = tryon_mask(ms, "upper_body")
>>> bool(m[tops].all()), bool(m[face].any()), bool(m[bottoms].any())
(True, False, False)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._convert import ImageLike, MaskLike, as_image, as_mask, check_same_shape
from .masks import MaskSet

__all__ = ["CATEGORIES", "agnostic_image", "garment_mask", "tryon_mask"]

logger = logging.getLogger("clothseg_tools")

#: The garment categories of try-on datasets (DressCode, VITON-HD), in their spelling.
CATEGORIES: tuple[str, ...] = ("upper_body", "lower_body", "dresses")

# Body proportions the geometric rules rely on, in face heights (chin to hairline),
# the one body measure a portrait or a full-length photo both show. An adult hand is
# about one face long; a foot seen from the front spans ankle height and some length.
_HAND_FACES = 1.1
_FOOT_FACES = 0.8
# Arm skin that reaches no farther than this from the shoulder has no hand in it
# (a neckline or a shoulder, not an arm ending in a hand).
_MIN_REACH_FACES = 2.0
# Fingertips of a hanging arm end about 1.2 face heights below the hips; skin joined
# to the arms that ends within this many face heights below the hip line is arm.
_HANG_FACES = 2.0
# Half the shoulder width (biacromial breadth is about two face heights).
_HALF_SHOULDER_FACES = 1.0
# Without a face, a face height is taken as this fraction of the person's height.
_FACE_OF_HEIGHT = 0.12
# Without bottoms or tops, the hip line lies this far down the dress (or clothes):
# shoulders to hips over shoulders to hem is about 0.55 for a knee-length dress and
# 0.4 for a maxi dress.
_HIP_OF_DRESS = 0.45
# Acc pixels within this many face heights of the head count as head accessories.
_HEAD_ZONE_FACES = 0.5

_SIDES = ("left", "right")
_JOINT_MARGIN = 0.12


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


# -- geometry ---------------------------------------------------------------------------


@dataclass
class _Frame:
    """Where the body is, in work-resolution pixels."""

    hip: int  # first row below the hip line
    shoulder: float
    mid: float  # the body's vertical midline (column)
    face: float  # one face height


def _rows(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    return np.flatnonzero(mask.any(axis=1))


def _cols(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    return np.flatnonzero(mask.any(axis=0))


def _point(
    keypoints: Mapping[str, Any] | None, name: str, f: int
) -> npt.NDArray[np.float64] | None:
    """A keypoint as (row, col) at work resolution, or None when absent / not visible."""
    if not keypoints or name not in keypoints or keypoints[name] is None:
        return None
    value = tuple(keypoints[name])
    if len(value) < 2:
        raise ValueError(f"keypoint {name!r} must be (x, y) or (x, y, score), got {value!r}.")
    if len(value) > 2 and float(value[2]) <= 0:
        return None  # COCO visibility 0 / zero score: not there
    x, y = float(value[0]), float(value[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return np.array([y / f, x / f])


def _mean_point(
    keypoints: Mapping[str, Any] | None, names: Sequence[str], f: int
) -> npt.NDArray[np.float64] | None:
    pts = [p for p in (_point(keypoints, n, f) for n in names) if p is not None]
    return np.mean(pts, axis=0) if pts else None


def _frame(
    low: Mapping[str, npt.NDArray[np.bool_]],
    keypoints: Mapping[str, Any] | None,
    f: int,
    shape: tuple[int, int],
) -> _Frame:
    h, w = shape
    empty = np.zeros(shape, bool)
    face, person = low.get("face", empty), np.zeros(shape, bool)
    for m in low.values():
        person |= m
    face_rows, person_rows = _rows(face), _rows(person)
    if face_rows.size:
        face_h = float(face_rows[-1] - face_rows[0] + 1)
    elif person_rows.size:
        face_h = _FACE_OF_HEIGHT * (person_rows[-1] - person_rows[0] + 1)
    else:
        face_h = _FACE_OF_HEIGHT * h
    face_h = max(face_h, 1.0)

    tops, bottoms, dress = (low.get(c, empty) for c in ("tops", "bottoms", "dress"))
    clothes = low.get("clothes", empty)
    hip_pt = _mean_point(keypoints, ("left_hip", "right_hip"), f)
    if hip_pt is not None:
        hip = round(float(hip_pt[0]))
    elif (rows := _rows(bottoms)).size:
        hip = int(rows[0])
    elif (rows := _rows(tops)).size and not dress.any():
        hip = int(rows[-1]) + 1
    elif (rows := _rows(dress if dress.any() else clothes)).size:
        hip = int(rows[0] + _HIP_OF_DRESS * (rows[-1] - rows[0] + 1))
    elif person_rows.size:
        hip = int((person_rows[0] + person_rows[-1]) // 2)
    else:
        hip = h // 2

    sh_pt = _mean_point(keypoints, ("left_shoulder", "right_shoulder"), f)
    upper = tops | dress | clothes
    if sh_pt is not None:
        shoulder = float(sh_pt[0])
    elif (rows := _rows(upper)).size:
        shoulder = float(rows[0])
    elif face_rows.size:
        shoulder = float(face_rows[-1] + 0.3 * face_h)
    else:
        shoulder = 0.25 * h

    if sh_pt is not None:
        mid = float(sh_pt[1])
    elif (cols := _cols(face)).size or (cols := _cols(upper if upper.any() else person)).size:
        mid = float(cols[0] + cols[-1]) / 2
    else:
        mid = w / 2
    return _Frame(hip=int(np.clip(hip, 0, h)), shoulder=shoulder, mid=mid, face=face_h)


# -- skin: arms, hands, legs, feet --------------------------------------------------------


@dataclass
class _Skin:
    arms: npt.NDArray[np.bool_]  # all skin above the hip line, hands included
    hands: npt.NDArray[np.bool_]
    legs: npt.NDArray[np.bool_]  # skin below the hip line, feet included
    feet: npt.NDArray[np.bool_]


def _skin_geometric(
    body: npt.NDArray[np.bool_], low: Mapping[str, npt.NDArray[np.bool_]], fr: _Frame
) -> _Skin:
    from scipy import ndimage

    above = np.zeros_like(body)
    above[: fr.hip] = True
    arms = body & above
    legs = body & ~above
    if legs.any() and arms.any():
        # Arms hang below the hip line: skin below it that is connected to skin above
        # it, and reaches no lower than a hanging hand can, is arm. (A swimsuit's
        # belly joined to the legs reaches much lower and stays split at the line.)
        labels, n = ndimage.label(body, structure=np.ones((3, 3)))
        lowest = np.zeros(n + 1, np.intp)
        rows = np.nonzero(body)[0]
        np.maximum.at(lowest, labels[body], rows)
        reaching_up = np.zeros(n + 1, bool)
        reaching_up[labels[arms]] = True
        hanging = reaching_up & (lowest < fr.hip + _HANG_FACES * fr.face)
        hanging[0] = False
        moved = legs & hanging[labels]
        arms |= moved
        legs &= ~moved
    hands = _extremities(arms, fr)
    feet = _feet_geometric(legs, low, fr)
    return _Skin(arms=arms, hands=hands, legs=legs, feet=feet)


def _extremities(arms: npt.NDArray[np.bool_], fr: _Frame) -> npt.NDArray[np.bool_]:
    """The far end of the arm skin on each side of the midline: the skin within one
    hand length of the point farthest from that side's shoulder."""
    hands = np.zeros_like(arms)
    ys, xs = np.nonzero(arms)
    if not ys.size:
        return hands
    hand = _HAND_FACES * fr.face
    for sign in (-1.0, 1.0):
        side = (xs - fr.mid) * sign >= 0
        if not side.any():
            continue
        sy, sx = ys[side], xs[side]
        shoulder_x = fr.mid + sign * _HALF_SHOULDER_FACES * fr.face
        reach = np.hypot(sy - fr.shoulder, sx - shoulder_x)
        far = float(reach.max())
        if far < _MIN_REACH_FACES * fr.face:
            continue
        pick = reach >= far - hand
        hands[sy[pick], sx[pick]] = True
    return hands


def _feet_geometric(
    legs: npt.NDArray[np.bool_], low: Mapping[str, npt.NDArray[np.bool_]], fr: _Frame
) -> npt.NDArray[np.bool_]:
    """Skin beside the shoes; barefoot, the lowest foot length of each leg (unless the
    legs run out of the picture, where the feet are not in it)."""
    feet = np.zeros_like(legs)
    if not legs.any():
        return feet
    h, w = legs.shape
    shoes = low.get("shoes")
    if shoes is not None and (rows := _rows(shoes)).size:
        feet[rows[0] :] = legs[rows[0] :]
        return feet
    foot = _FOOT_FACES * fr.face
    cols = _cols(legs)
    split = int(cols[0] + cols[-1] + 1) // 2
    for lo, hi in ((0, split), (split, w)):
        rows = _rows(legs[:, lo:hi])
        if not rows.size or rows[-1] >= h - 1:
            continue
        start = max(int(rows[-1] - foot) + 1, 0)
        feet[start:, lo:hi] = legs[start:, lo:hi]
    return feet


def _segment_distances(
    pts: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Squared distance of each point (N, 2) to the segment a-b."""
    ab = b - a
    denom = float(ab @ ab)
    ap = pts - a
    t = np.clip(ap @ ab / denom, 0.0, 1.0) if denom > 0 else np.zeros(len(pts))
    d = ap - t[:, None] * ab
    return np.einsum("ij,ij->i", d, d)


def _skeleton(kp: Mapping[str, Any], f: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Limb segments (part, a, b) at work resolution from the keypoints present."""
    segs: list[tuple[str, np.ndarray, np.ndarray]] = []

    def add(part: str, a: np.ndarray | None, b: np.ndarray | None) -> None:
        if a is not None and b is not None:
            segs.append((part, a, b))

    for side in _SIDES:
        sh, el, wr = (_point(kp, f"{side}_{j}", f) for j in ("shoulder", "elbow", "wrist"))
        hip, kn, an = (_point(kp, f"{side}_{j}", f) for j in ("hip", "knee", "ankle"))
        # The wrist and ankle keypoints are joint centres: the hand and the foot are
        # taken to start a little before them (_JOINT_MARGIN of the forearm or shin),
        # so masking never clips the heel of the hand or the ankle bone.
        wrist = wr if wr is None or el is None else wr - _JOINT_MARGIN * (wr - el)
        ankle = an if an is None or kn is None else an - _JOINT_MARGIN * (an - kn)
        add("arms", sh, el)
        add("arms", el, wrist)
        add("arms", sh, hip)  # torso side: skin there counts with the arms (rule 2)
        add("legs", hip, kn)
        add("legs", kn, ankle)
        if wr is not None and wrist is not None:
            fingers = _mean_point(kp, [f"{side}_{j}" for j in ("index", "pinky", "thumb")], f)
            if fingers is not None:
                tip = wr + 1.2 * (fingers - wr)
            elif el is not None:
                tip = wr + 0.6 * (wr - el)  # a hand is about 3/4 of a forearm long
            else:
                tip = wr
            add("hands", wrist, tip)
        if an is not None and ankle is not None:
            toes = _mean_point(kp, [f"{side}_{j}" for j in ("heel", "foot_index")], f)
            if toes is not None:
                tip = toes
            elif kn is not None:
                tip = an + 0.35 * (an - kn)
            else:
                tip = an
            add("feet", ankle, tip)
    ls, rs = _point(kp, "left_shoulder", f), _point(kp, "right_shoulder", f)
    add("arms", ls, rs)
    add("legs", _point(kp, "left_hip", f), _point(kp, "right_hip", f))
    return segs


def _skin_keypoints(body: npt.NDArray[np.bool_], segs: list[tuple[str, Any, Any]]) -> _Skin:
    """Give each skin pixel to the part of its nearest limb segment."""
    ys, xs = np.nonzero(body)
    pts = np.column_stack([ys, xs]).astype(np.float64)
    dist = np.stack([_segment_distances(pts, a, b) for _, a, b in segs])
    nearest = dist.argmin(axis=0)
    parts = np.array([p for p, _, _ in segs])[nearest]
    out = {}
    for part in ("arms", "hands", "legs", "feet"):
        m = np.zeros_like(body)
        pick = parts == part
        m[ys[pick], xs[pick]] = True
        out[part] = m
    return _Skin(
        arms=out["arms"] | out["hands"],
        hands=out["hands"],
        legs=out["legs"] | out["feet"],
        feet=out["feet"],
    )


def _skin(
    low: Mapping[str, npt.NDArray[np.bool_]],
    keypoints: Mapping[str, Any] | None,
    fr: _Frame,
    f: int,
    shape: tuple[int, int],
) -> _Skin:
    body = low.get("body")
    if body is None or not body.any():
        z = np.zeros(shape, bool)
        return _Skin(z, z, z, z)
    segs = _skeleton(keypoints, f) if keypoints else []
    if any(p in ("hands", "feet") for p, _, _ in segs):
        return _skin_keypoints(body, segs)
    if keypoints:
        logger.debug("tryon_mask: keypoints without wrists or ankles; using geometry")
    return _skin_geometric(body, low, fr)


# -- garments ----------------------------------------------------------------------------


def _check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}.")
    return category


def _garment_split(ms: MaskSet, get: Any, hip: int) -> dict[str, Any]:
    """The garment classes of each category, given a getter of bool masks by class and
    the hip row (in the getter's resolution)."""
    has_specific = any(c in ms.classes for c in ("tops", "bottoms", "dress"))
    tops, bottoms, dress = get("tops"), get("bottoms"), get("dress")
    if not has_specific:  # class type 1 without subdivisions: clothes stands in
        dress = get("clothes")
    above = np.zeros(dress.shape[0], bool)
    above[:hip] = True
    dress_up = dress & above[:, None]
    dress_low = dress & ~above[:, None]
    return {
        "upper_body": tops | dress_up,
        "lower_body": bottoms | dress_low,
        "dresses": tops | bottoms | dress,
        "other": {
            "upper_body": bottoms | dress_low,
            "lower_body": tops | dress_up,
            "dresses": np.zeros_like(dress),
        },
    }


def _getter(ms: MaskSet, level: int) -> Any:
    cache: dict[str, npt.NDArray[np.bool_]] = {}

    def get(name: str) -> npt.NDArray[np.bool_]:
        if name not in cache:
            cache[name] = (ms[name] >= level) if name in ms.classes else np.zeros(ms.shape, bool)
        return cache[name]

    return get


def _low_masks(ms: MaskSet, level: int, f: int) -> dict[str, npt.NDArray[np.bool_]]:
    names = list(ms.classes)
    pooled = _pool(ms.stack(), f) >= level
    return {n: pooled[i] for i, n in enumerate(names)}


def garment_mask(
    ms: MaskSet,
    category: str,
    *,
    keypoints: Mapping[str, Any] | None = None,
    level: int = 128,
) -> npt.NDArray[np.bool_]:
    """Just the garment of ``category`` that a try-on would replace, unshaped.

    For cloth-agnostic training pairs (the garment cut out of the photo of a person
    wearing it) and for checking what :func:`tryon_mask` starts from.

    Parameters
    ----------
    ms
        The person's masks.
    category
        ``"upper_body"`` (``tops`` and the dress above the hip line),
        ``"lower_body"`` (``bottoms`` and the dress below it) or ``"dresses"``
        (``tops``, ``bottoms`` and ``dress``). ``clothes`` stands in when the set has
        none of ``tops``, ``bottoms``, ``dress``.
    keypoints
        Optional pose keypoints; only the hips are used, to place the hip line.
    level
        Masks are ``>= level``.

    Returns
    -------
    numpy.ndarray
        (H, W) bool.

    Raises
    ------
    ValueError
        Unknown category.

    Examples
    --------
    >>> dress = np.zeros((10, 4), bool); dress[2:9] = True
    >>> g = garment_mask(MaskSet({"dress": dress}), "lower_body")
    >>> np.flatnonzero(g.any(axis=1)).tolist()  # the dress below the hip line
    [5, 6, 7, 8]
    """
    _check_category(category)
    if not isinstance(ms, MaskSet):
        ms = MaskSet(ms)
    f = _factor(ms.shape, 512)
    low = _low_masks(ms, level, f)
    fr = _frame(low, keypoints, f, _low_shape(low, ms.shape, f))
    split = _garment_split(ms, _getter(ms, level), min(fr.hip * f, ms.shape[0]))
    return np.asarray(split[category])


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


def tryon_mask(
    ms: MaskSet,
    category: str,
    *,
    keypoints: Mapping[str, Any] | None = None,
    dilate: float = 0.02,
    fill_holes: bool = True,
    hull: bool = False,
    box: bool = False,
    keep: Sequence[str] = (),
    level: int = 128,
    work_size: int = 512,
) -> npt.NDArray[np.bool_]:
    """The region to inpaint when a garment of ``category`` replaces what the person wears.

    See the module notes for the rules; every default below says why it is what it is.

    Parameters
    ----------
    ms
        The person's masks (class type 4 gives the best result: the rules use
        ``body``, ``face``, ``hair``, ``head``, ``shoes``, ``bag`` and ``acc``; missing
        classes are taken as empty).
    category
        ``"upper_body"``, ``"lower_body"`` or ``"dresses"``.
    keypoints
        Optional pose keypoints ``{name: (x, y)}`` or ``(x, y, score)`` in pixels of
        the image (a score <= 0 means absent). With wrists and ankles they place
        hands and feet exactly; without them geometry estimates the extremities.
    dilate
        Dilation radius as a fraction of the image's longer side. The default 0.02 is
        what OOTDiffusion's 5 x 5 kernel applied 5 times amounts to at its 512 px
        (10 px): room for a garment a little larger than the old one while the mask
        stays close to the body. 0 disables it.
    fill_holes
        Fill enclosed gaps (default ``True``): a hole in the region is a bit of
        garment the segmentation missed, never something to keep.
    hull
        Replace the region by its convex hull (default ``False``: the hull also takes
        the background between arms and body, which suits loose garments only).
    box
        Extend the region to its bounding box (default ``False``), for garments
        whose outline may differ a lot from the old one.
    keep
        More classes to protect, for example ``("acc",)`` to keep every accessory or
        ``("others",)``.
    level
        Masks are ``>= level`` (default 128, the middle of 0..255).
    work_size
        Longer side, in pixels, of the reduced copy the shaping runs on (default 512:
        enough to place a dilated outline within a few pixels, and 30 times less work
        than 4096 px). Garment and protected pixels are re-applied at full size.

    Returns
    -------
    numpy.ndarray
        (H, W) bool: True where the try-on model should paint.

    Raises
    ------
    ValueError
        Unknown category or options out of range.

    Examples
    --------
    >>> h, w = 120, 80
    >>> bottoms = np.zeros((h, w), bool); bottoms[60:110, 25:55] = True
    >>> tops = np.zeros((h, w), bool); tops[25:60, 20:60] = True
    >>> m = tryon_mask(MaskSet({"tops": tops, "bottoms": bottoms}), "lower_body")
    >>> bool(m[bottoms].all()), bool(m[tops].any())
    (True, False)
    """
    _check_category(category)
    if not isinstance(ms, MaskSet):
        ms = MaskSet(ms)
    if not 0 <= dilate <= 0.5:
        raise ValueError(f"dilate must be a fraction of the image side in [0, 0.5], got {dilate}.")
    if work_size < 16:
        raise ValueError(f"work_size must be at least 16 px, got {work_size}.")
    shape = ms.shape
    f = _factor(shape, work_size)
    low = _low_masks(ms, level, f)
    lshape = _low_shape(low, shape, f)
    fr = _frame(low, keypoints, f, lshape)
    skin = _skin(low, keypoints, fr, f, lshape)

    def low_get(name: str) -> npt.NDArray[np.bool_]:
        return low.get(name, np.zeros(lshape, bool))

    garments = _garment_split(ms, low_get, fr.hip)
    covered = {"upper_body": skin.arms, "lower_body": skin.legs, "dresses": skin.arms | skin.legs}[
        category
    ]
    extremities = skin.hands | skin.feet
    core = garments[category] | (covered & ~extremities)
    # Protected at work resolution too, so hole filling and the region choice see
    # the layout the final subtraction will leave.
    derived = extremities | (skin.arms if category == "lower_body" else np.zeros(lshape, bool))
    protected_low = derived | garments["other"][category]
    for name in ("face", "hair", "head", "shoes", "bag", *keep):
        protected_low |= low_get(name)
    radius = dilate * max(lshape)
    region = _shape(core, protected_low, radius, fill_holes=fill_holes, hull=hull, box=box)

    full = _upsample(region, f, shape)
    return full & ~_protected_full(ms, category, level, fr, f, keep, _upsample(derived, f, shape))


def _protected_full(
    ms: MaskSet,
    category: str,
    level: int,
    fr: _Frame,
    f: int,
    keep: Sequence[str],
    derived: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Every protected pixel at full resolution."""
    get = _getter(ms, level)
    out = derived.copy()
    names = [n for n in ("face", "hair", "head", "shoes", "bag", *keep) if n in ms.classes]
    if names:
        out |= (ms.stack(names) >= level).any(axis=0)
    out |= _garment_split(ms, get, min(fr.hip * f, ms.shape[0]))["other"][category]
    if "acc" in ms.classes and "acc" not in keep:
        out |= _head_accessories(ms, get, fr, f)
    return out


def _head_accessories(ms: MaskSet, get: Any, fr: _Frame, f: int) -> npt.NDArray[np.bool_]:
    """``acc`` pixels in a box around the head (face, hair, head)."""
    head = get("face") | get("hair") | get("head")
    rows, cols = _rows(head), _cols(head)
    zone = np.zeros(ms.shape, bool)
    if rows.size:
        m = round(_HEAD_ZONE_FACES * fr.face * f)
        zone[max(rows[0] - m, 0) : rows[-1] + m + 1, max(cols[0] - m, 0) : cols[-1] + m + 1] = True
    return get("acc") & zone


def agnostic_image(
    image: ImageLike,
    mask: MaskLike,
    *,
    fill: tuple[int, int, int] = (128, 128, 128),
) -> npt.NDArray[np.uint8]:
    """The person photo with the try-on region painted over in a flat colour.

    Parameters
    ----------
    image
        Path, PIL image or (H, W, 3|4) uint8 array.
    mask
        (H, W) region, bool or uint8. A soft uint8 mask blends the fill in
        proportionally (255 = all fill), so feathered edges carry over.
    fill
        RGB fill colour. The default mid grey is the "agnostic" colour VITON-HD and
        DressCode train with.

    Returns
    -------
    numpy.ndarray
        A new (H, W, 3) or (H, W, 4) uint8 array (alpha is kept as it was).

    Raises
    ------
    ShapeMismatchError
        The mask's shape differs from the image's.

    Examples
    --------
    >>> img = np.full((2, 2, 3), 200, np.uint8)
    >>> out = agnostic_image(img, np.array([[True, False], [False, False]]))
    >>> out[0, 0].tolist(), out[1, 1].tolist()
    ([128, 128, 128], [200, 200, 200])
    """
    arr = as_image(image)
    m = as_mask(mask)
    check_same_shape(m.shape, arr.shape)
    colour = np.asarray(fill, dtype=np.uint16).reshape(-1)
    if colour.size != 3 or colour.max() > 255:
        raise ValueError(f"fill must be an (R, G, B) tuple of 0..255, got {fill!r}.")
    out = arr.copy()
    rgb = out[..., :3]
    if np.isin(m, (0, 255)).all():
        rgb[m == 255] = colour.astype(np.uint8)
        return out
    a = m.astype(np.uint16)[..., None]
    rgb[...] = ((rgb.astype(np.uint16) * (255 - a) + colour * a + 127) // 255).astype(np.uint8)
    return out
