"""Clothing, shoes, bags and wrist accessories from the pose skeleton and the colours.

Garments are assigned to the nearest part of a skeleton drawn from the pose: the arms
and the chest belong to the top, the legs and the pelvis to the bottom. The waist cut
sits at the strongest colour change near the hip line; when no change is found and
one garment runs from the chest down between the thighs, it is a dress.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from skimage.measure import label

from .models import PoseIndex as P
from .scene import FaceFrame, Scene

__all__ = [
    "BOTTOM",
    "DRESS",
    "OTHER",
    "TOP",
    "GarmentSplit",
    "bag_membership",
    "garment_labels",
    "shoe_membership",
    "wrist_acc_membership",
]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Garment label values of :func:`garment_labels`.
TOP, BOTTOM, DRESS, OTHER = 1, 2, 3, 4

# Colour difference (CIE76 delta E) that counts as a different garment at the waist.
_WAIST_EDGE = 14.0
# A garment farther than this many shoulder widths from the skeleton is "others".
_REACH = 0.8


@dataclass(frozen=True)
class GarmentSplit:
    """Garment labels of the person's pixels and how they were decided."""

    labels: npt.NDArray[np.uint8]  # (h, w): TOP, BOTTOM, DRESS or OTHER
    waist: float  # the cut, in torso lengths from the shoulders (hips at 1)
    waist_edge: float  # colour change found there (delta E); 0 when not measured
    dress: bool
    legs: bool  # hips and knees in view: a bottom garment may be found


def _capsule(shape: tuple[int, int], a: FloatArray, b: FloatArray, radius: float) -> BoolArray:
    """Pixels within ``radius`` of the segment a-b."""
    canvas = np.zeros(shape, np.uint8)
    pa = (round(float(a[0])), round(float(a[1])))
    pb = (round(float(b[0])), round(float(b[1])))
    cv2.line(canvas, pa, pb, (1,), thickness=max(round(2 * radius), 1))
    return canvas.astype(bool)


def bag_membership(scene: Scene, foreground: FloatArray, face_boxes: FloatArray) -> FloatArray:
    """Carried bags: selfie foreground outside the person, hanging from a visible hand.

    The selfie model's foreground includes what a person holds; the pose model's
    person mask does not. A foreground region the person mask leaves out, touching
    the person and reaching a visible wrist or hand, is a bag when it hangs: most of
    it lies below that hand. A camera raised to the eye is held, not carried, and
    regions holding another detected face are people.
    """
    h, w = scene.shape
    person = scene.person > 0.5
    extra = (foreground > 0.5) & ~person
    out = np.zeros((h, w), np.float32)
    if not extra.any():
        return out
    regions = label(extra, connectivity=2)
    grown = cv2.dilate(person.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    touching = {int(v) for v in np.unique(regions[grown & extra]) if v}
    reach = 0.3 * scene.shoulder_width
    held: dict[int, float] = {}  # region -> height of the lowest hand holding it
    for side in ((P.LEFT_WRIST, *P.LEFT_HAND), (P.RIGHT_WRIST, *P.RIGHT_HAND)):
        points = [scene.point(i) for i in side if scene.visible(i)]
        if not points:
            continue
        near = np.zeros((h, w), np.uint8)
        for pt in points:
            centre = (round(float(pt[0])), round(float(pt[1])))
            cv2.circle(near, centre, int(reach) + 1, (1,), -1)
        hand_y = float(np.mean([pt[1] for pt in points]))
        for v in np.unique(regions[near.astype(bool)]):
            if v:
                held[int(v)] = max(held.get(int(v), -np.inf), hand_y)
    min_area = 0.002 * h * w
    for region, hand_y in held.items():
        if region not in touching:
            continue
        mask = regions == region
        ys = np.nonzero(mask)[0]
        if ys.size < min_area or (ys > hand_y).mean() < 0.6 or _holds_face(mask, face_boxes):
            continue
        out[mask] = foreground[mask]
    return out


def _holds_face(mask: BoolArray, face_boxes: FloatArray) -> bool:
    h, w = mask.shape
    for x0, y0, x1, y1 in face_boxes:
        cx = int(np.clip((x0 + x1) / 2, 0, w - 1))
        cy = int(np.clip((y0 + y1) / 2, 0, h - 1))
        if mask[cy, cx]:
            return True
    return False


def shoe_membership(scene: Scene, skin: FloatArray) -> FloatArray:
    """Shoes: non-skin pixels around each visible ankle, heel and toe."""
    h, w = scene.shape
    region = np.zeros((h, w), np.uint8)
    for ankle, heel, toe in (
        (P.LEFT_ANKLE, P.LEFT_HEEL, P.LEFT_FOOT),
        (P.RIGHT_ANKLE, P.RIGHT_HEEL, P.RIGHT_FOOT),
    ):
        if not (scene.visible(heel) and scene.visible(toe)):
            continue
        a, he, to = scene.point(ankle), scene.point(heel), scene.point(toe)
        foot = float(np.linalg.norm(to - he))
        foot = max(foot, 0.25 * scene.shoulder_width)
        # the shoe starts a little above the heel-ankle level and wraps the foot
        top = he + (a - he) * np.float32(0.6)
        triangle = np.round(np.stack([top, he, to]) * 16).astype(np.int32)
        cv2.fillConvexPoly(region, triangle, (1,), lineType=cv2.LINE_8, shift=4)
        # a shoe is about half a foot length wider than the heel-toe-ankle triangle
        cv2.polylines(region, [triangle], True, (1,), thickness=max(int(foot * 0.9), 1), shift=4)
    if not region.any():
        return np.zeros((h, w), np.float32)
    return region.astype(np.float32) * (1.0 - skin)


def wrist_acc_membership(scene: Scene, skin: FloatArray) -> FloatArray:
    """Watches, bracelets, gloves: a non-skin band at the wrist of a bare forearm."""
    h, w = scene.shape
    out = np.zeros((h, w), np.float32)
    person = scene.person > 0.5
    for elbow, wrist in ((P.LEFT_ELBOW, P.LEFT_WRIST), (P.RIGHT_ELBOW, P.RIGHT_WRIST)):
        if not (scene.visible(elbow) and scene.visible(wrist)):
            continue
        e, wr = scene.point(elbow), scene.point(wrist)
        forearm = float(np.linalg.norm(wr - e))
        if forearm < 4:
            continue
        radius = 0.1 * scene.shoulder_width
        mid = _capsule((h, w), e + (wr - e) * 0.3, e + (wr - e) * 0.75, radius) & person
        if mid.sum() < 10 or float(skin[mid].mean()) < 0.6:
            continue  # a sleeve covers the forearm: the wrist is the sleeve's
        band = _capsule((h, w), e + (wr - e) * 0.85, wr + (wr - e) * 0.1, radius * 1.3)
        band &= person
        out[band] = 1.0 - skin[band]
    return out


def _torso(scene: Scene) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Shoulder midpoint, hip midpoint, unit axis between them, torso length."""
    shoulders = (scene.point(P.LEFT_SHOULDER) + scene.point(P.RIGHT_SHOULDER)) / 2
    hips = (scene.point(P.LEFT_HIP) + scene.point(P.RIGHT_HIP)) / 2
    axis = hips - shoulders
    length = max(float(np.linalg.norm(axis)), 1.0)
    return shoulders, hips, axis / np.float32(length), length


def _waist_cut(
    scene: Scene, clothes: BoolArray
) -> tuple[float, float, FloatArray | None, FloatArray | None]:
    """Find the waist: the strongest colour change along the torso near the hips.

    Returns the cut (torso lengths from the shoulders; the hip line, 1.0, when no
    change is strong enough), the colour change found (delta E), and the mean Lab
    colours of the garments just above and below it (None when the torso has too few
    clothed pixels to tell).
    """
    shoulders, _, axis, length = _torso(scene)
    half_width = 0.35 * max(
        scene.shoulder_width,
        float(np.linalg.norm(scene.point(P.LEFT_HIP) - scene.point(P.RIGHT_HIP))),
    )
    ys, xs = np.nonzero(clothes)
    rel = np.stack([xs, ys], axis=1).astype(np.float32) - shoulders
    along = rel @ axis / np.float32(length)
    across = np.abs(rel @ np.array([-axis[1], axis[0]], np.float32))
    lo, hi, step = 0.55, 1.45, 0.025
    keep = (across <= half_width) & (along >= lo) & (along < hi)
    bins = ((along[keep] - lo) / step).astype(np.int64)
    n = round((hi - lo) / step)
    counts = np.bincount(bins, minlength=n).astype(np.float64)
    colour = scene.lab[ys[keep], xs[keep]].astype(np.float64)
    sums = np.stack([np.bincount(bins, colour[:, c], minlength=n) for c in range(3)], axis=1)
    span = 4  # bins on each side of a candidate cut
    cut_bins = range(int((0.75 - lo) / step), int((1.2 - lo) / step) + 1)
    best, best_edge, best_above, best_below = 1.0, 0.0, None, None
    for k in cut_bins:
        above_n, below_n = counts[k - span : k].sum(), counts[k : k + span].sum()
        if above_n < 20 or below_n < 20:
            continue
        above = sums[k - span : k].sum(axis=0) / above_n
        below = sums[k : k + span].sum(axis=0) / below_n
        edge = float(np.linalg.norm(above - below))
        if edge > best_edge:
            best, best_edge = lo + k * step, edge
            best_above = above.astype(np.float32)
            best_below = below.astype(np.float32)
    if best_edge < _WAIST_EDGE:
        best = 1.0
    return best, best_edge, best_above, best_below


def _skirt_between_thighs(scene: Scene, clothes: BoolArray) -> FloatArray | None:
    """Mean colour of the garment filling the gap between the thighs, if it does.

    Trousers leave the gap between the legs open below the crotch; a skirt or dress
    spans it. Returns None when the legs are not visible or the gap is open.
    """
    if not all(scene.visible(i) for i in (P.LEFT_HIP, P.RIGHT_HIP, P.LEFT_KNEE, P.RIGHT_KNEE)):
        return None
    hips = (scene.point(P.LEFT_HIP) + scene.point(P.RIGHT_HIP)) / 2
    knees = (scene.point(P.LEFT_KNEE) + scene.point(P.RIGHT_KNEE)) / 2
    probe = _capsule(
        scene.shape,
        hips + (knees - hips) * 0.4,
        hips + (knees - hips) * 0.75,
        0.06 * scene.shoulder_width,
    )
    n = int(probe.sum())
    if n < 10 or clothes[probe].mean() < 0.75:
        return None
    return scene.lab[probe & clothes].mean(axis=0).astype(np.float32)


def garment_labels(scene: Scene, clothes: BoolArray, face: FaceFrame | None) -> GarmentSplit:
    """Assign every pixel to the nearest skeleton part: top, bottom, dress or other.

    Parameters
    ----------
    scene
        The image and pose.
    clothes
        Person pixels no other class has claimed (where the waist is looked for).
    face
        The face frame, when found: the neck line from the shoulders to the chin
        belongs to the top (collars).

    Returns
    -------
    GarmentSplit
        Pixels farther from the skeleton than 0.8 shoulder widths are OTHER.
    """
    h, w = scene.shape
    # a bottom garment needs legs to sit on: both hips and both knees in view, and
    # clothing below the hip line
    legs = all(scene.visible(i) for i in (P.LEFT_HIP, P.RIGHT_HIP, P.LEFT_KNEE, P.RIGHT_KNEE))
    below = None
    if legs:
        waist, edge, above, below = _waist_cut(scene, clothes)
    else:
        # hips or knees hidden or out of the picture (a portrait, a long coat seen
        # from the side): what the torso wears, down to the picture's edge, is the top
        waist, edge, above = 9.0, 0.0, None
    shoulders, _, axis, length = _torso(scene)

    def along(t: float) -> FloatArray:
        return shoulders + axis * np.float32(t * length)

    left = scene.point(P.LEFT_SHOULDER) - shoulders
    right = scene.point(P.RIGHT_SHOULDER) - shoulders
    hip_left = scene.point(P.LEFT_HIP) - along(1.0)
    hip_right = scene.point(P.RIGHT_HIP) - along(1.0)

    def torso_polygon(t0: float, t1: float) -> npt.NDArray[np.int32]:
        # side offsets move linearly from shoulder width to hip width
        f0, f1 = min(t0, 1.0), min(t1, 1.0)
        pts = [
            along(t0) + left + (hip_left - left) * f0,
            along(t1) + left + (hip_left - left) * f1,
            along(t1) + right + (hip_right - right) * f1,
            along(t0) + right + (hip_right - right) * f0,
        ]
        return np.round(np.stack(pts) * (16 / grid)).astype(np.int32)

    # The skeleton: 0 = empty, then label values; later drawings win overlaps. It is
    # drawn at half the working size: the nearest-part assignment needs no more.
    grid = 2 if max(h, w) > 384 else 1
    skeleton = np.zeros((-(-h // grid), -(-w // grid)), np.uint8)
    if legs:
        cv2.fillPoly(skeleton, [torso_polygon(waist, 1.2)], (BOTTOM,), shift=4)
        for a, b in (
            (P.LEFT_HIP, P.LEFT_KNEE),
            (P.LEFT_KNEE, P.LEFT_ANKLE),
            (P.RIGHT_HIP, P.RIGHT_KNEE),
            (P.RIGHT_KNEE, P.RIGHT_ANKLE),
        ):
            _line(skeleton, scene.point(a) / grid, scene.point(b) / grid, BOTTOM)
    cv2.fillPoly(skeleton, [torso_polygon(0.0, waist)], (TOP,), shift=4)
    if face is not None:
        chin = face.centre - face.up * np.float32(face.half_height)
        _line(skeleton, shoulders / grid, chin / grid, TOP)  # collars and scarves
    for a, b in (
        (P.LEFT_SHOULDER, P.LEFT_ELBOW),
        (P.LEFT_ELBOW, P.LEFT_WRIST),
        (P.RIGHT_SHOULDER, P.RIGHT_ELBOW),
        (P.RIGHT_ELBOW, P.RIGHT_WRIST),
    ):
        _line(skeleton, scene.point(a) / grid, scene.point(b) / grid, TOP)

    labels, distance = _nearest_label(skeleton)
    labels[distance > _REACH * scene.shoulder_width / grid] = OTHER
    if grid > 1:
        labels = np.asarray(cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST))
    if legs and above is not None and below is not None and edge >= _WAIST_EDGE:
        _follow_waist(labels, scene, clothes, waist, above, below)

    skirt = _skirt_between_thighs(scene, clothes)
    dress = False
    if skirt is not None and edge < _WAIST_EDGE and above is not None:
        dress = float(np.linalg.norm(skirt - above)) < _WAIST_EDGE * 1.5
    if dress and above is not None and skirt is not None:
        colour = (above + skirt) / 2
        similar = np.linalg.norm(scene.lab - colour, axis=2) < 25.0
        labels[((labels == TOP) | (labels == BOTTOM)) & similar] = DRESS
    return GarmentSplit(labels, waist, edge, dress, legs)


def _follow_waist(
    labels: npt.NDArray[np.uint8],
    scene: Scene,
    clothes: BoolArray,
    waist: float,
    above: FloatArray,
    below: FloatArray,
) -> None:
    """Move the top/bottom boundary near the waist onto the garments' own colours.

    In a band around the cut, each clothed pixel goes to the garment whose colour
    (measured above and below the cut) it is nearer to, so the boundary follows a
    tucked-in shirt or a slanted hem instead of a straight line.
    """
    shoulders, _, axis, length = _torso(scene)
    ys, xs = np.nonzero(clothes & ((labels == TOP) | (labels == BOTTOM)))
    rel = np.stack([xs, ys], axis=1).astype(np.float32) - shoulders
    along = rel @ axis / np.float32(length)
    band = np.abs(along - waist) < 0.2
    ys, xs = ys[band], xs[band]
    colour = scene.lab[ys, xs]
    nearer_top = np.linalg.norm(colour - above, axis=1) < np.linalg.norm(colour - below, axis=1)
    labels[ys, xs] = np.where(nearer_top, TOP, BOTTOM).astype(np.uint8)


def _line(canvas: npt.NDArray[np.uint8], a: FloatArray, b: FloatArray, value: int) -> None:
    pa = np.round(a * 16).astype(np.int64)
    pb = np.round(b * 16).astype(np.int64)
    cv2.line(
        canvas,
        (int(pa[0]), int(pa[1])),
        (int(pb[0]), int(pb[1])),
        (value,),
        1,
        lineType=cv2.LINE_8,
        shift=4,
    )


def _nearest_label(skeleton: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], FloatArray]:
    """For every pixel, the value of the nearest non-zero skeleton pixel and its distance."""
    if not skeleton.any():
        return np.full(skeleton.shape, OTHER, np.uint8), np.zeros(skeleton.shape, np.float32)
    free = (skeleton == 0).astype(np.uint8)
    distance, nearest = cv2.distanceTransformWithLabels(
        free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # DIST_LABEL_PIXEL numbers the zero pixels of `free` 1, 2, ... in raster order
    values = np.concatenate([[OTHER], skeleton[free == 0]]).astype(np.uint8)
    return values[nearest], distance
