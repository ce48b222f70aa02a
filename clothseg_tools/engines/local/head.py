"""Face, hair and headwear: the head's classes from its geometry first, colour second.

The face mesh gives the face (its oval) and a frame around it; the pose's nose and
ears say which way the head is turned. Together they place the head: in a profile the
skull lies behind the face, toward the ear, not around it. Hair is what the person
mask holds above and beside the face within that head, never ahead of the face (a
camera held to the eye is not hair); colour only refines it (skin beside the oval is
face, hair-coloured pixels over the forehead are bangs, long hair below the chin
follows the hair's colour).

A head covering is a region above the forehead whose colour differs from the hair's,
learned at the temples where a cap's brim does not reach; what lies above a covering
is covering too. Where the temples show no usable hair colour (a low brim, glasses,
shadow), a crown patterned as no hair is (a badge, braid, a light top over a dark
band) is a covering too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from skimage.measure import label

from .models import PoseIndex as P
from .scene import FaceFrame, Scene, SkinModel, fill_polygon

__all__ = ["HeadFrame", "colour_model", "head_memberships", "mahalanobis"]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
ColourModel = tuple[FloatArray, FloatArray]

# Largest colour spread (delta E) of hair samples that still counts as one hair colour.
_HAIR_SPREAD = 24.0
# Lightness step per pixel (L units) that counts as a strong edge in a head covering.
_PATTERN_EDGE = 15.0
# A head turned further than this (the ears' offset behind the nose, in head
# half-widths) is seen in profile: the face has a front, and nothing ahead of it is hair.
_PROFILE = 0.45


@dataclass(frozen=True)
class HeadFrame:
    """The head around a face: where its centre lies and which way it looks.

    Head coordinates of a pixel: ``s`` across the head in half-widths from the head's
    axis (shifted behind the face in a profile), ``t`` along the face's up direction in
    face half-heights (chin at -1, forehead at +1, as in :class:`.FaceFrame`), and
    ``ahead``: how far the pixel lies in front of the nose tip along the gaze, in face
    half-heights (minus infinity for a face seen from the front).
    """

    face: FaceFrame
    back: FloatArray  # shift from the face's axis to the head's, in pixels, across `up`
    half_width: float  # the head's half-width in pixels
    nose: FloatArray
    gaze: FloatArray | None  # unit vector the face looks along; None when frontal

    @classmethod
    def from_scene(cls, scene: Scene, face: FaceFrame, mesh: FloatArray | None) -> HeadFrame:
        """Place the head from the face frame and the pose's nose and ears.

        The ears' midpoint, taken across the face's up direction, lies on the face's
        axis for a frontal face and behind the nose in a profile.
        """
        up = face.up
        nose = mesh[1] if mesh is not None else scene.point(P.NOSE)
        ears = (scene.point(P.LEFT_EAR) + scene.point(P.RIGHT_EAR)) / 2
        rel = ears - nose
        across = rel - up * np.float32(rel @ up)
        width = max(face.half_width, 0.8 * face.half_height)
        length = float(np.linalg.norm(across))
        length = min(length, 1.2 * face.half_height)
        gaze = None
        back = np.zeros(2, np.float32)
        if length > _PROFILE * width:
            direction = across / np.float32(max(float(np.linalg.norm(across)), 1e-6))
            back = direction * np.float32(0.8 * length)
            gaze = -direction
        return cls(face, back.astype(np.float32), width, nose.astype(np.float32), gaze)

    def coords(self, box: tuple[int, int, int, int]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(s, t, ahead) of every pixel of ``box`` (see the class notes)."""
        y0, y1, x0, x1 = box
        face = self.face
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        right = face.right
        cx, cy = face.centre + self.back
        s = ((xs - cx) * right[0] + (ys - cy) * right[1]) / np.float32(self.half_width)
        t = ((xs - face.centre[0]) * face.up[0] + (ys - face.centre[1]) * face.up[1]) / np.float32(
            face.half_height
        )
        if self.gaze is None:
            ahead = np.full(s.shape, -np.inf, np.float32)
        else:
            g = self.gaze
            ahead = ((xs - self.nose[0]) * g[0] + (ys - self.nose[1]) * g[1]) / np.float32(
                face.half_height
            )
        return s.astype(np.float32), t.astype(np.float32), ahead.astype(np.float32)

    def window(self, shape: tuple[int, int], reach: float) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) box around the head, ``reach`` face half-heights each way."""
        r = reach * max(self.face.half_height, self.half_width)
        cx, cy = (float(v) for v in self.face.centre + self.back * np.float32(0.5))
        h, w = shape
        return (
            int(max(cy - r, 0)),
            int(min(cy + r + 1, h)),
            int(max(cx - r, 0)),
            int(min(cx + r + 1, w)),
        )


def head_memberships(
    scene: Scene,
    face: FaceFrame,
    mesh: FloatArray | None,
    skin_model: SkinModel | None,
    skin: FloatArray,
) -> tuple[dict[str, FloatArray], BoolArray]:
    """Face, hair and headwear (``acc``) memberships, each (h, w) float32 in 0..1, and
    the head itself: the (h, w) bool zone the head may occupy, with the face oval,
    wherever the person is or not.

    The head zone is an ellipse around the head, above the chin. In it, the face is the
    face-mesh oval, plus skin just outside it (ears, a high forehead); the rest of the
    person there is hair, except what lies ahead of a face in profile and a head
    covering. Hair-coloured pixels inside the oval's upper part and rim are hair
    (bangs, hair over the cheeks), and long hair is followed below the chin.
    """
    h, w = scene.shape
    head = HeadFrame.from_scene(scene, face, mesh)
    box = head.window(scene.shape, reach=3.4)
    y0, y1, x0, x1 = box
    s, t, ahead = head.coords(box)
    person = scene.person[y0:y1, x0:x1] > 0.5
    lab = scene.lab[y0:y1, x0:x1]
    skin_w = skin[y0:y1, x0:x1]
    offset = np.array([x0, y0], np.float32)
    shape = (y1 - y0, x1 - x0)
    oval = fill_polygon(shape, face.oval - offset)
    near_oval = fill_polygon(shape, _scaled(face, 1.2) - offset) > 0.5
    inner_oval = fill_polygon(shape, _scaled(face, 0.8) - offset) > 0.5

    zone = _zone(s, t, ahead)
    around = zone & person & (oval < 0.5)
    non_skin = around & (skin_w < 0.3)
    temples = non_skin & (np.abs(s) >= 0.8) & (np.abs(s) <= 1.6) & (t >= -0.3) & (t <= 0.5)
    hair_model = colour_model(lab[temples], max_spread=_HAIR_SPREAD)
    hat = _headwear(lab, s, t, non_skin, hair_model)
    if not hat.any() and _patterned(lab, non_skin & (t > 0.9)):
        hat = non_skin & (t > 0.9)

    # skin next to the oval (ears, a high forehead) is face unless it is more like hair
    face_ext = np.zeros(shape, bool)
    if skin_model is not None:
        cand = around & near_oval & ~hat & (t > -0.7)  # ears, forehead; not the neck
        d_skin = skin_model.distance(lab[cand])
        skin_like = d_skin < SkinModel.FAR
        if hair_model is not None:
            skin_like &= d_skin < mahalanobis(lab[cand], hair_model)
        face_ext[cand] = skin_like
    face_m = np.maximum(oval, face_ext.astype(np.float32))
    face_m[hat] = 0.0
    hair_m = (zone & ~face_ext & ~hat).astype(np.float32)
    if hair_model is not None and skin_model is not None:
        # the mesh's oval reaches over hair at the forehead and, on a wide face, at the
        # cheeks: hair-coloured pixels there, unlike skin, are hair
        rim = (oval > 0.5) & ((t > 0.6) | ~inner_oval) & ~hat
        hairy = mahalanobis(lab[rim], hair_model) < 2.5
        hairy &= skin_model.distance(lab[rim]) > SkinModel.FAR
        face_m[rim] = np.where(hairy, 0.0, face_m[rim])
        long_hair = _hair_below_chin(lab, s, t, person, skin_w, temples, hair_model)
        np.maximum(hair_m, long_hair, out=hair_m)

    out = {name: np.zeros((h, w), np.float32) for name in ("face", "hair", "acc")}
    out["face"][y0:y1, x0:x1] = face_m
    out["hair"][y0:y1, x0:x1] = hair_m
    out["acc"][y0:y1, x0:x1] = hat
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = zone | (oval > 0.5)
    return out, region


def _zone(s: FloatArray, t: FloatArray, ahead: FloatArray) -> BoolArray:
    """The head zone: an ellipse around and above the face, cut at the chin and at the
    front of a face in profile."""
    return ((s / 1.7) ** 2 + ((t - 0.4) / 2.3) ** 2 <= 1.0) & (t >= -1.0) & (ahead < -0.2)


def _scaled(face: FaceFrame, factor: float) -> FloatArray:
    return face.centre + (face.oval - face.centre) * np.float32(factor)


def colour_model(samples: FloatArray, *, max_spread: float = np.inf) -> ColourModel | None:
    """Robust mean and inverse covariance of (n, 3) Lab samples.

    Samples of a region are rarely pure (hair shows skin and background through
    it): the model keeps the 70% nearest the median colour, widens their spread
    back by the factor that trimming removed, and floors it at 3 units of delta E.
    None for fewer than 30 samples, or when the kept samples spread more than
    ``max_spread`` (root of the summed variances, in delta E): a mixture of
    colours is no model of one material.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mean, inv = colour_model(rng.normal((40, 10, 20), 2, (200, 3)).astype(np.float32))
    >>> np.round(mean).tolist()
    [40.0, 10.0, 20.0]
    """
    if samples.shape[0] < 30:
        return None
    x = samples.astype(np.float64)
    median = np.median(x, axis=0)
    dist = np.linalg.norm(x - median, axis=1)
    core = x[dist <= np.quantile(dist, 0.7)]
    cov = np.cov(core, rowvar=False) * 1.7
    if float(np.sqrt(np.trace(cov))) > max_spread:
        return None
    cov += np.eye(3) * 9.0
    return core.mean(axis=0).astype(np.float32), np.linalg.inv(cov).astype(np.float32)


def mahalanobis(lab: FloatArray, model: ColourModel) -> FloatArray:
    """Distance of (n, 3) Lab samples from a colour model."""
    mean, inv = model
    d = lab - mean
    return np.sqrt(((d @ inv) * d).sum(axis=-1)).astype(np.float32)


def _headwear(
    lab: FloatArray,
    s: FloatArray,
    t: FloatArray,
    non_skin: BoolArray,
    hair_model: ColourModel | None,
) -> BoolArray:
    """A head covering: the top of the head in a colour far from the hair at the temples.

    Light from above brightens hair on the crown and shade darkens it at the sides,
    so the crown differs in lightness alone only by a wide margin (a dark cap on
    white hair); otherwise it must differ in hue or saturation. The differing pixels
    must cover a good part of the crown and reach the top of the head, and the
    crown's typical colour must differ too. Everything of the crown above the
    covering's lower edge belongs to it (a badge or a white top on a dark cap).
    """
    none = np.zeros(t.shape, bool)
    crown = non_skin & (t > 0.9)
    n_crown = int(crown.sum())
    if hair_model is None or n_crown < 30:
        return none
    samples = lab[crown]
    diff = samples - hair_model[0]
    chroma = np.hypot(diff[:, 1], diff[:, 2])
    far = none.copy()
    far[crown] = (mahalanobis(samples, hair_model) > 4.0) & (
        (chroma > 15.0) | (np.abs(diff[:, 0]) > 40.0)
    )
    if far.sum() < 0.3 * n_crown:
        return none
    typical = np.median(samples, axis=0) - hair_model[0]
    if float(np.hypot(typical[1], typical[2])) < 12.0 and abs(float(typical[0])) < 40.0:
        return none
    top_t = float(t[crown].max())
    regions = label(far, connectivity=2)
    keep = np.unique(regions[far & (t >= top_t - 0.35)])
    if np.isin(regions, keep[keep > 0]).sum() < 0.2 * n_crown:
        return none
    # everything of the crown above the covering's lower edge, column by column
    bins = np.clip(((s + 2.0) * 10).astype(np.int32), 0, 40)
    lowest = np.full(41, np.inf, np.float32)
    np.minimum.at(lowest, bins[far], t[far])
    return crown & (t >= lowest[bins])


def _patterned(lab: FloatArray, crown: BoolArray) -> bool:
    """The crown shows a pattern no hair has: many sharp, strong lightness edges.

    Hair's strands and highlights make soft or faint edges; a cap's badge, braid and
    the line between a light top and a dark band make sharp, strong ones. True when
    more than an eighth of the crown lies on such an edge (hair stays under a
    sixteenth on the photos of the regression set).
    """
    if crown.sum() < 30:
        return False
    light = np.ascontiguousarray(lab[:, :, 0])
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3)
    strong = np.hypot(gx, gy) > np.float32(8 * _PATTERN_EDGE)  # Sobel's 3x3 gain is 8
    return bool(strong[crown].mean() > 0.125)


def _hair_below_chin(
    lab: FloatArray,
    s: FloatArray,
    t: FloatArray,
    person: BoolArray,
    skin: FloatArray,
    hair: BoolArray,
    model: ColourModel,
) -> FloatArray:
    """Long hair beside the neck: hair-coloured, connected to the hair above."""
    out = np.zeros(s.shape, np.float32)
    below = (t < -1.0) & (t >= -3.2) & (np.abs(s) >= 0.55) & (np.abs(s) <= 2.0)
    candidates = below & person & (skin < 0.3)
    samples = lab[candidates]
    candidates[candidates] = (mahalanobis(samples, model) < 2.5) & (
        np.linalg.norm(samples - model[0], axis=1) < 15.0
    )
    if not candidates.any():
        return out
    regions = label(candidates | hair, connectivity=2)
    keep = np.unique(regions[hair])
    out[candidates & np.isin(regions, keep[keep > 0])] = 1.0
    return out
