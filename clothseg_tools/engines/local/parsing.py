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
from .head import head_memberships
from .models import Observations
from .scene import FaceFrame, Scene, SkinModel, fill_polygon, lab_image
from .silhouette import (
    body_silhouette,
    hands,
    held_objects,
    keep_connected,
    person_support,
    supported_pose,
    torso_region,
)

__all__ = ["LEAVES", "Parsing", "parse"]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

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
    pose : ndarray or None
        (33, 3) float32: the pose landmarks as the parsing trusted them (x, y in
        working pixels, visibility), a landmark off the person's support rated unseen;
        None when no person was found.
    """

    leaves: FloatArray
    notes: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    pose: FloatArray | None = None

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
    # the person is where the pose model's mask and the selfie model agree, and a
    # landmark off it is not seen (a wrist dragged along a skyline)
    person = person_support(obs.person, obs.foreground)
    scene = Scene(lab_image(rgb), _sharpen(person), supported_pose(obs.pose, person))
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
    head = np.zeros(scene.shape, bool)
    if face is not None:
        memberships, head = head_memberships(scene, face, obs.face, skin_model, skin)
        claims.update(memberships)
    silhouette = body_silhouette(scene, head)
    held = held_objects(scene, silhouette)
    details["held"] = int(held.sum())
    acc_wrist = wrist_acc_membership(scene, skin)
    claims["acc"] = np.maximum(claims["acc"], acc_wrist) if "acc" in claims else acc_wrist
    claims["shoes"] = shoe_membership(scene, skin)
    claims["body"] = _without_thin_parts(skin, face, head | hands(scene, level=0.5))
    for name in ("hair", "acc", "shoes", "body"):
        if name in claims:
            claims[name][held] = 0.0  # what a hand holds is none of these

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
    details.update(
        waist=split.waist, waist_edge=split.waist_edge, dress=split.dress, legs=split.legs
    )
    labels = split.labels.copy()
    labels[held] = OTHER
    for name, value in (("tops", TOP), ("bottoms", BOTTOM), ("dress", DRESS), ("others", OTHER)):
        leaves[LEAVES.index(name)] = rest * (labels == value)
    # A held object is what the selfie model (which sees them) keeps of it; the rest
    # the pose mask alone claims. The person hangs together: what the person mask
    # holds apart from the torso and head, or joined to them only through a held
    # object, is not the person.
    body = (scene.person > 0.5) & ~held
    seeds = (torso_region(scene) | head) & body
    drop = held & (obs.foreground <= 0.5)
    if seeds.any():
        drop |= body & ~keep_connected(body, seeds)
    details["dropped"] = int(drop.sum())
    if details["dropped"]:
        leaves *= ~drop
    return Parsing(leaves, notes, details, scene.pose)


def _colourless(lab: FloatArray) -> bool:
    """A greyscale (or nearly so) photo: chroma carries no information."""
    step = max(1, lab.shape[0] // 128)  # a sample of rows is plenty
    sample = lab[::step, ::step]
    return float(np.hypot(sample[:, :, 1], sample[:, :, 2]).mean()) < 2.0


def _without_thin_parts(
    skin: FloatArray, face: FaceFrame | None, anchors: BoolArray | None = None
) -> FloatArray:
    """Skin with structures thinner than a finger and stray specks removed.

    Skin-coloured clothing details are usually thin lines (straps, seams,
    highlights); limbs are not. The opening's size follows the face, the one body
    measure known in pixels. What survives must also be a sizeable patch (a tenth of
    the face's area) or touch ``anchors`` (the head, where the neck joins, and the
    hands): a light strap's wider stretches are small patches inside the clothes.
    """
    radius = max(1, round(0.06 * face.half_width)) if face is not None else 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    solid = cv2.morphologyEx((skin >= 0.5).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    if face is not None and solid.any():
        _, regions, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
        big = stats[:, cv2.CC_STAT_AREA] >= 0.1 * np.pi * face.half_width * face.half_height
        if anchors is not None:
            big[np.unique(regions[anchors & (solid > 0)])] = True
        big[0] = False
        solid = big[regions].astype(np.uint8)
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
