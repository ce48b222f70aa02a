"""Where the body is: the hip and shoulder lines, and which skin is arms, hands,
legs or feet, from pose keypoints when given and from the masks' geometry otherwise.

Everything here works at the reduced work resolution of :mod:`._shaping`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger("clothseg_tools")

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
