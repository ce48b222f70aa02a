"""Where the person is: the models' agreement, the body the pose outlines, what the hands hold.

The pose model's person mask sometimes runs off along a strong edge of the background
(a skyline beside a camera) and drags the pose's wrist with it; the selfie model does
not follow it there. The person is therefore what the pose mask holds *near* the
selfie foreground, and a landmark off that support is treated as unseen.

The body silhouette is the pose skeleton thickened to limb widths plus the head. A
part of the person mask that a hand reaches and that lies off the silhouette is an
object the person holds (a camera, a helmet): no garment, no hair.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .models import PoseIndex as P
from .scene import Scene

__all__ = [
    "Silhouette",
    "body_silhouette",
    "hands",
    "held_objects",
    "keep_connected",
    "person_support",
    "supported_pose",
    "torso_region",
]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Limb segments of the pose and their half-widths, in shoulder widths.
_LIMBS: tuple[tuple[int, int, float], ...] = (
    (P.LEFT_SHOULDER, P.LEFT_ELBOW, 0.24),
    (P.RIGHT_SHOULDER, P.RIGHT_ELBOW, 0.24),
    (P.LEFT_ELBOW, P.LEFT_WRIST, 0.2),
    (P.RIGHT_ELBOW, P.RIGHT_WRIST, 0.2),
    (P.LEFT_HIP, P.LEFT_KNEE, 0.3),
    (P.RIGHT_HIP, P.RIGHT_KNEE, 0.3),
    (P.LEFT_KNEE, P.LEFT_ANKLE, 0.22),
    (P.RIGHT_KNEE, P.RIGHT_ANKLE, 0.22),
    (P.LEFT_ANKLE, P.LEFT_FOOT, 0.18),
    (P.RIGHT_ANKLE, P.RIGHT_FOOT, 0.18),
)
_HANDS = ((P.LEFT_WRIST, *P.LEFT_HAND), (P.RIGHT_WRIST, *P.RIGHT_HAND))


def person_support(person: FloatArray, foreground: FloatArray) -> FloatArray:
    """The pose model's person mask, kept only near the selfie model's foreground.

    Both models see the person; each errs elsewhere. Within a margin of the selfie
    foreground (a twentieth of the picture's long side, wide enough for the pose
    mask's finer edge and for limbs the selfie model trims) the pose mask stands;
    beyond it, the pose mask alone is not believed.

    Examples
    --------
    >>> person = np.zeros((40, 40), np.float32); person[5:35, 5:15] = 1; person[5:8, 15:40] = 1
    >>> fg = np.zeros((40, 40), np.float32); fg[5:35, 5:15] = 1
    >>> out = person_support(person, fg)
    >>> float(out[20, 10]), float(out[6, 37])
    (1.0, 0.0)
    """
    h, w = person.shape
    # a square margin: rectangular dilation costs the same at any size
    side = 2 * round(0.05 * max(h, w)) + 1
    near = cv2.dilate((foreground > 0.3).astype(np.uint8), np.ones((side, side), np.uint8))
    return person * near.astype(np.float32)


def supported_pose(pose: FloatArray, support: FloatArray) -> FloatArray:
    """``pose`` with the visibility of landmarks off the person's support set to zero.

    A landmark counts as on the support when the support reaches it within a few
    pixels (feet and hands sit at the mask's edge).
    """
    h, w = support.shape
    side = 2 * round(0.015 * max(h, w)) + 3
    near = cv2.dilate((support > 0.5).astype(np.uint8), np.ones((side, side), np.uint8))
    out = pose.copy()
    xs = np.clip(np.round(pose[:, 0]).astype(np.int64), 0, w - 1)
    ys = np.clip(np.round(pose[:, 1]).astype(np.int64), 0, h - 1)
    inside = (pose[:, 0] >= 0) & (pose[:, 0] < w) & (pose[:, 1] >= 0) & (pose[:, 1] < h)
    out[inside & (near[ys, xs] == 0), 2] = 0.0
    return out


@dataclass(frozen=True)
class Silhouette:
    """The body the pose outlines, as (h, w) bool masks."""

    body: BoolArray  # torso, limbs at their widths, hands and head
    hands: BoolArray  # the hands alone


def body_silhouette(scene: Scene, head: BoolArray, *, level: float = 0.1) -> Silhouette:
    """The body the pose outlines: torso, limbs at their widths, hands, and ``head``.

    Segments are drawn between landmarks rated at ``level`` or better and on the
    person: a limb the pose sees only dimly (behind what the hand holds) is still body.
    """
    h, w = scene.shape
    sw = scene.shoulder_width

    def seen(i: int) -> bool:
        return scene.visible(i, level)

    def limbs(parts: tuple[tuple[int, int, float], ...]) -> npt.NDArray[np.uint8]:
        canvas = np.zeros((h, w), np.uint8)
        for a, b, half in parts:
            if seen(a) and seen(b):
                pa = tuple(int(v) for v in np.round(scene.point(a)))
                pb = tuple(int(v) for v in np.round(scene.point(b)))
                cv2.line(canvas, pa, pb, (1,), thickness=max(round(2 * half * sw), 1))
        return canvas

    body = limbs(_LIMBS)
    hull = _torso_hull(scene, level)
    if hull is not None:
        cv2.fillConvexPoly(body, hull, (1,))
        cv2.polylines(body, [hull], True, (1,), thickness=max(round(0.3 * sw), 1))
    grip = hands(scene, level=level)
    return Silhouette(body.astype(bool) | grip | head, grip)


def hands(scene: Scene, *, level: float = 0.1) -> BoolArray:
    """Disks around the hand landmarks the pose rates at ``level`` or better."""
    h, w = scene.shape
    canvas = np.zeros((h, w), np.uint8)
    for side in _HANDS:
        for i in side:
            if scene.visible(i, level):
                centre = tuple(int(v) for v in np.round(scene.point(i)))
                cv2.circle(canvas, centre, max(round(0.12 * scene.shoulder_width), 1), (1,), -1)
    return canvas.astype(bool)


def _torso_hull(scene: Scene, level: float) -> npt.NDArray[np.int32] | None:
    """Hull of the seen shoulders and hips, run down to the picture's edge when the
    hips are out of it; None with fewer than two of them seen."""
    h = scene.shape[0]
    torso = [P.LEFT_SHOULDER, P.RIGHT_SHOULDER, P.RIGHT_HIP, P.LEFT_HIP]
    corners = [scene.point(i) for i in torso if scene.visible(i, level)]
    if len(corners) < 2:
        return None
    pts = np.round(np.stack(corners)).astype(np.int32)
    if len(corners) < 4:
        low = pts.copy()
        low[:, 1] = h
        pts = np.concatenate([pts, low])
    return np.asarray(cv2.convexHull(pts), np.int32)


def torso_region(scene: Scene, *, level: float = 0.5) -> BoolArray:
    """The torso: the hull of the seen shoulders and hips (down to the picture's edge
    when the hips are out of it)."""
    canvas = np.zeros(scene.shape, np.uint8)
    hull = _torso_hull(scene, level)
    if hull is not None:
        cv2.fillConvexPoly(canvas, hull, (1,))
    return canvas.astype(bool)


def held_objects(scene: Scene, silhouette: Silhouette) -> BoolArray:
    """Parts of the person mask a hand reaches that lie off the body silhouette.

    The hand's landmarks count even when the pose rates them unseen (a hand behind
    what it holds), as long as they lie on the person. A part that runs along the
    body for much of its outline (beyond the hand) is clothing cut wider than the
    outline (a flared skirt beside the hand, a loose sleeve), not an object.
    """
    h, w = scene.shape
    off = (scene.person > 0.5) & ~silhouette.body
    out = np.zeros((h, w), bool)
    if not off.any():
        return out
    reach = np.zeros((h, w), np.uint8)
    radius = max(round(0.2 * scene.shoulder_width), 2)
    for side in _HANDS:
        for i in side:
            if scene.visible(i, level=0.05):
                centre = tuple(int(v) for v in np.round(scene.point(i)))
                cv2.circle(reach, centre, radius, (1,), -1)
    start = reach.astype(bool) & off
    if not start.any():
        return out
    _, regions = cv2.connectedComponents(off.astype(np.uint8), connectivity=8)
    touched = np.unique(regions[start])
    # a speck beside the hand is the hand's own edge, not an object; a region larger
    # than the chest is body the pose's outline missed
    least, most = 0.05 * scene.shoulder_width**2, 1.0 * scene.shoulder_width**2
    ring = np.ones((3, 3), np.uint8)
    for region in touched[touched > 0]:
        mask = regions == region
        if not least <= mask.sum() <= most:
            continue
        rim = cv2.dilate(mask.astype(np.uint8), ring).astype(bool) & ~mask
        if (rim & silhouette.body & ~silhouette.hands).sum() > 0.35 * rim.sum():
            continue
        out |= mask
    return out


def keep_connected(mask: BoolArray, seeds: BoolArray) -> BoolArray:
    """The parts of ``mask`` (8-connected) that hold a pixel of ``seeds``.

    Examples
    --------
    >>> m = np.zeros((5, 7), bool); m[1:4, 0:2] = True; m[1:4, 5:7] = True
    >>> s = np.zeros((5, 7), bool); s[2, 0] = True
    >>> keep_connected(m, s).sum(axis=0).tolist()
    [3, 3, 0, 0, 0, 0, 0]
    """
    out = np.zeros(mask.shape, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(mask.any(axis=0))
    # label only the box around the mask
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    sub = mask[box]
    count, regions = cv2.connectedComponents(sub.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(regions[seeds[box] & sub])] = True
    keep[0] = False
    out[box] = keep[regions]
    return out
