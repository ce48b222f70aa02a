"""Human parsing at working resolution: from model observations to class confidences.

The output is a stack of *leaf* confidences that, together with the background, sum
to one at every pixel: face, hair, acc, bag, shoes, body, tops, bottoms, dress,
others. The API's composite classes are sums of leaves (head = face + hair, clothes =
tops + bottoms + dress), so every class lies within the person, garments within
clothes, and face and hair within head, by construction.

Leaves are claimed in order of how sure the evidence is: the face oval first, then
hair, accessories, shoes and skin; what is left of the person goes to the garment of
the nearest skeleton part, or to "others" when it is far from the skeleton.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
from skimage.measure import label

from .garments import (
    BOTTOM,
    DRESS,
    OTHER,
    TOP,
    bag_membership,
    garment_labels,
    shoe_membership,
    wrist_acc_membership,
)
from .models import Observations
from .scene import FaceFrame, Scene, SkinModel, fill_polygon, lab_image

__all__ = ["LEAVES", "Parsing", "parse"]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

# Largest colour spread (delta E) of hair samples that still counts as one hair colour.
_HAIR_SPREAD = 22.0

# Contrast applied to the person mask's rim (see _sharpen).
_RIM_CONTRAST = 2.5

#: The mutually exclusive classes the engine estimates; background is the rest.
LEAVES: tuple[str, ...] = (
    "face",
    "hair",
    "acc",
    "bag",
    "shoes",
    "body",
    "tops",
    "bottoms",
    "dress",
    "others",
)


@dataclass
class Parsing:
    """Leaf confidences of one image at working resolution.

    Attributes
    ----------
    leaves : ndarray
        (len(LEAVES), h, w) float32; each pixel's leaves sum to at most 1 and the
        remainder is background.
    notes : list of str
        Remarks for the user (fallbacks taken).
    details : dict
        What was decided and from what (for logs and tests).
    """

    leaves: FloatArray
    notes: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def leaf(self, name: str) -> FloatArray:
        """One leaf's (h, w) confidence (a view)."""
        return self.leaves[LEAVES.index(name)]


def parse(rgb: npt.NDArray[np.uint8], obs: Observations) -> Parsing:
    """Estimate the leaf confidences of one working-resolution image.

    Parameters
    ----------
    rgb
        (h, w, 3) uint8 image at working resolution.
    obs
        The models' observations of it (:func:`.models.observe`).

    Returns
    -------
    Parsing
        All zeros (and a note) when no person was found.
    """
    h, w = rgb.shape[:2]
    leaves = np.zeros((len(LEAVES), h, w), np.float32)
    if obs.pose is None:
        return Parsing(leaves, ["no person found; every mask is empty"], {"person": False})
    scene = Scene(lab_image(rgb), _sharpen(obs.person), obs.pose)
    notes: list[str] = []
    details: dict[str, object] = {"person": True}

    face = FaceFrame.from_mesh(obs.face) if obs.face is not None else FaceFrame.from_pose(scene)
    details["face"] = "mesh" if obs.face is not None else ("pose" if face else "none")
    if face is not None and not face.measured:
        notes.append("the face mesh found no face; face outline estimated from the pose")

    skin_model: SkinModel | None = None
    if _colourless(scene.lab):
        details["skin_model"] = "none"
        notes.append("the photo has no colour: skin (body) cannot be told from clothing")
        skin = np.zeros(scene.shape, np.float32)
    else:
        skin_model = _skin_model(scene, face)
        details["skin_model"] = "face" if skin_model.learned else "generic"
        if not skin_model.learned:
            notes.append("no face to learn skin colour from; used a generic skin model")
        skin = skin_model.probability(scene.lab)

    bag = bag_membership(scene, obs.foreground, obs.face_boxes)
    claims: dict[str, FloatArray] = {}
    if face is not None:
        claims.update(_head_memberships(scene, face, skin_model, skin))
    acc_wrist = wrist_acc_membership(scene, skin)
    claims["acc"] = np.maximum(claims["acc"], acc_wrist) if "acc" in claims else acc_wrist
    claims["shoes"] = shoe_membership(scene, skin)
    claims["body"] = _without_thin_parts(skin, face)

    # sequential claiming: each leaf takes its share of what earlier leaves left
    rest = scene.person.copy()
    for name in ("face", "hair", "acc", "shoes", "body"):
        if name in claims:
            share = rest * claims[name]
            leaves[LEAVES.index(name)] = share
            rest -= share
    bag_leaf = np.maximum(bag - scene.person, 0.0)
    leaves[LEAVES.index("bag")] = bag_leaf

    split = garment_labels(scene, rest > 0.5, face)
    details.update(waist=split.waist, waist_edge=split.waist_edge, dress=split.dress)
    for name, value in (("tops", TOP), ("bottoms", BOTTOM), ("dress", DRESS), ("others", OTHER)):
        leaves[LEAVES.index(name)] = rest * (split.labels == value)
    return Parsing(leaves, notes, details)


def _colourless(lab: FloatArray) -> bool:
    """A greyscale (or nearly so) photo: chroma carries no information."""
    step = max(1, lab.shape[0] // 128)  # a sample of rows is plenty
    sample = lab[::step, ::step]
    return float(np.hypot(sample[:, :, 1], sample[:, :, 2]).mean()) < 2.0


def _without_thin_parts(skin: FloatArray, face: FaceFrame | None) -> FloatArray:
    """Skin with structures thinner than a finger removed (straps, seams, highlights).

    Skin-coloured clothing details are usually thin lines; limbs are not. The
    opening's size follows the face, the one body measure known in pixels.
    """
    radius = max(1, round(0.06 * face.half_width)) if face is not None else 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    solid = cv2.morphologyEx((skin >= 0.5).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    # keep the soft rim of what survives: dilate back by one pixel before gating
    solid = cv2.dilate(solid, np.ones((3, 3), np.uint8))
    return skin * solid


def _skin_model(scene: Scene, face: FaceFrame | None) -> SkinModel:
    """Skin colour learned from the inner face, or a generic prior without one."""
    if face is not None:
        inner = face.centre + (face.oval - face.centre) * np.float32(0.75)
        sample = (fill_polygon(scene.shape, inner) > 0.5) & (scene.person > 0.5)
        model = SkinModel.from_pixels(scene.lab[sample])
        if model is not None:
            return model
    return SkinModel.generic()


def _head_memberships(
    scene: Scene, face: FaceFrame, skin_model: SkinModel | None, skin: FloatArray
) -> dict[str, FloatArray]:
    """Face, hair and headwear memberships around the face.

    The head zone is an ellipse around and above the face, cut at the chin. In it,
    the face is the face-mesh oval, plus skin just outside it (ears, a high
    forehead); the rest of the person there is hair. The hair colour is learned
    beside the cheeks, where hats do not reach; with it the engine finds a hat (a
    region on top of the head in a clearly different colour: acc), bangs over the
    forehead, and long hair falling beside the neck.
    """
    h, w = scene.shape
    box = face.window(scene.shape, reach=3.4)
    y0, y1, x0, x1 = box
    s, t = face.coords(box)
    person = scene.person[y0:y1, x0:x1] > 0.5
    lab = scene.lab[y0:y1, x0:x1]
    skin_w = skin[y0:y1, x0:x1]
    offset = np.array([x0, y0], np.float32)
    oval = fill_polygon((y1 - y0, x1 - x0), face.oval - offset)
    near_oval = (
        fill_polygon(
            (y1 - y0, x1 - x0), face.centre + (face.oval - face.centre) * np.float32(1.2) - offset
        )
        > 0.5
    )

    zone = ((s / 1.7) ** 2 + ((t - 0.4) / 2.3) ** 2 <= 1.0) & (t >= -1.0)
    around = zone & person & (oval < 0.5)
    non_skin = around & (skin_w < 0.3)
    beside = non_skin & (np.abs(s) >= 0.85) & (np.abs(s) <= 1.6) & (t >= -0.6) & (t <= 0.4)
    hair_model = _colour_model(lab[beside], max_spread=_HAIR_SPREAD)
    hat = _headwear(lab, t, non_skin, hair_model)

    # skin next to the oval (ears, a high forehead) is face unless it is more like hair
    face_ext = np.zeros(s.shape, bool)
    if skin_model is not None:
        cand = around & near_oval
        d_skin = skin_model.distance(lab[cand])
        skin_like = d_skin < SkinModel.FAR
        if hair_model is not None:
            skin_like &= d_skin < _mahalanobis(lab[cand], hair_model)
        face_ext[cand] = skin_like
    face_m = np.maximum(oval, face_ext.astype(np.float32))
    hair_m = (zone & ~face_ext & ~hat).astype(np.float32)
    if hair_model is not None and skin_model is not None:
        upper = (oval > 0.5) & (t > 0.6)
        bangs = _mahalanobis(lab[upper], hair_model) < 2.5
        bangs &= skin_model.distance(lab[upper]) > SkinModel.FAR
        face_m[upper] = np.where(bangs, 0.0, face_m[upper])
        long_hair = _hair_below_chin(lab, s, t, person, skin_w, beside, hair_model)
        np.maximum(hair_m, long_hair, out=hair_m)

    out = {name: np.zeros((h, w), np.float32) for name in ("face", "hair", "acc")}
    out["face"][y0:y1, x0:x1] = face_m
    out["hair"][y0:y1, x0:x1] = hair_m
    out["acc"][y0:y1, x0:x1] = hat
    return out


def _colour_model(
    samples: FloatArray, *, max_spread: float = np.inf
) -> tuple[FloatArray, FloatArray] | None:
    """Robust mean and inverse covariance of (n, 3) Lab samples.

    Samples of a region are rarely pure (hair shows skin and background through
    it): the model keeps the 70% nearest the median colour, widens their spread
    back by the factor that trimming removed, and floors it at 3 units of delta E.
    None for fewer than 30 samples, or when the kept samples spread more than
    ``max_spread`` (root of the summed variances, in delta E): a mixture of
    colours is no model of one material.
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


def _mahalanobis(lab: FloatArray, model: tuple[FloatArray, FloatArray]) -> FloatArray:
    """Distance of (n, 3) Lab samples from a colour model."""
    mean, inv = model
    d = lab - mean
    return np.sqrt(((d @ inv) * d).sum(axis=-1)).astype(np.float32)


def _headwear(
    lab: FloatArray,
    t: FloatArray,
    non_skin: BoolArray,
    hair_model: tuple[FloatArray, FloatArray] | None,
) -> BoolArray:
    """A hat: the top of the head in a colour far from the hair beside the face.

    At least 30% of the crown must differ, and only the differing regions that
    reach the top of the head count.
    """
    none = np.zeros(t.shape, bool)
    crown = non_skin & (t > 0.8)
    n_crown = int(crown.sum())
    if hair_model is None or n_crown < 30:
        return none
    far = none.copy()
    samples = lab[crown]
    diff = samples - hair_model[0]
    # light on top of the head and shade beside it change the hair's lightness a
    # lot but its chroma little: a hat must differ in chroma
    far[crown] = (_mahalanobis(samples, hair_model) > 4.0) & (
        np.hypot(diff[:, 1], diff[:, 2]) > 15.0
    )
    if far.sum() < 0.3 * n_crown:
        return none
    # keep the parts that reach the top of the head
    top_t = float(t[crown].max())
    regions = label(far, connectivity=2)
    keep = np.unique(regions[far & (t >= top_t - 0.35)])
    return np.isin(regions, keep[keep > 0])


def _hair_below_chin(
    lab: FloatArray,
    s: FloatArray,
    t: FloatArray,
    person: BoolArray,
    skin: FloatArray,
    hair: BoolArray,
    model: tuple[FloatArray, FloatArray],
) -> FloatArray:
    """Long hair beside the neck: hair-coloured, connected to the hair above."""
    out = np.zeros(s.shape, np.float32)
    below = (t < -1.0) & (t >= -3.2) & (np.abs(s) >= 0.55) & (np.abs(s) <= 2.0)
    candidates = below & person & (skin < 0.3)
    samples = lab[candidates]
    candidates[candidates] = (_mahalanobis(samples, model) < 2.5) & (
        np.linalg.norm(samples - model[0], axis=1) < 15.0
    )
    if not candidates.any():
        return out
    regions = label(candidates | hair, connectivity=2)
    keep = np.unique(regions[hair])
    out[candidates & np.isin(regions, keep[keep > 0])] = 1.0
    return out


def _sharpen(person: FloatArray) -> FloatArray:
    """Steepen the person mask's soft rim around its 0.5 contour.

    The pose model's mask is upsampled from a 256-pixel grid, so its rim is a ramp
    several pixels wide. The guided filter moves the edge onto the photo's, but it
    spreads whatever ramp it is given: a steeper ramp leaves less halo.
    """
    out = person - np.float32(0.5)
    out *= np.float32(_RIM_CONTRAST)
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)
