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

**The ootd preset** (``preset="ootd"``) reproduces the agnostic mask of OOTDiffusion
(``get_mask_location`` in ``run/utils_ootd.py`` of levihsu/OOTDiffusion), which
IDM-VTON's preprocessing reuses, so a model trained on it gets the mask it expects.
It reads an ATR label map with a neck label (the ``ootd`` label set) and OpenPose
points, at 384 x 512 (``work_size``), and returns the mask resized to the source's
size by nearest neighbour, as the reference's pipeline does:

- *painted*: the garment (``upper_body``: upper clothes and dress; ``lower_body``:
  pants, skirt and legs; ``dresses``: dress, upper clothes, skirt and pants) dilated
  by a 5 x 5 square 5 times; for ``upper_body`` and ``dresses`` also each arm drawn
  along shoulder, elbow and the wrist pushed out 1.2 times from the elbow, 60 px
  (``model_type="hd"``) or 45 px (``"dc"``) wide per 512 px of height, dilated 4
  times, and the neck label dilated once;
- *fixed*: hat, sunglasses, face, shoes and bag; skirt and pants for ``upper_body``;
  upper clothes and arms for ``lower_body``; the hands (arm pixels outside the drawn
  arm). Hair, belts, scarves and background are kept where the dilation does not
  reach;
- then holes are filled from the border and only the largest region stays.

A side whose wrist is missing (OpenPose's ``(0, 0)``) keeps its parsed arm instead of
a drawn one. Sources: a :class:`~clothseg_tools.Parsing` in ``ootd`` (as is), ``atr``
(no neck label: the neck rule is skipped) or any other set, whose labels take the ATR
roles by name (``Coat`` as upper clothes, ``Jumpsuits`` as dress, side-less arms and
legs split to the side of the nearer limb of the skeleton, ``Torso-skin`` as neck);
or a :class:`~clothseg_tools.MaskSet` of the twelve classes. From a MaskSet the
result is approximate where the classes say less than ATR: ``body`` is split into
arms, legs and neck/torso by the nearest limb of the skeleton (a wrist not found is
guessed on a straight arm); ``bottoms`` stands for
both pants and skirt (the rules treat them alike); ``acc`` counts as sunglasses
(fixed) near the head and as a belt (kept) elsewhere; ``head`` outside face and hair
is a hat. The largest region is kept as pixels, where the reference redraws it from
a corner-simplified outline: edges on slants differ by about a pixel.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._convert import ImageLike, MaskLike, as_image, as_mask, check_same_shape
from ..masks import MaskSet
from ..parsing import Parsing
from ._body import _HEAD_ZONE_FACES, _cols, _Frame, _frame, _rows, _skin
from ._ootd_front import _pair, ootd_mask
from ._shaping import _factor, _low_masks, _low_shape, _shape, _upsample

if TYPE_CHECKING:
    from ..parsing import Parsing

__all__ = ["CATEGORIES", "agnostic_image", "garment_mask", "tryon_mask"]

#: The garment categories of try-on datasets (DressCode, VITON-HD), in their spelling.
CATEGORIES: tuple[str, ...] = ("upper_body", "lower_body", "dresses")

# Bool masks by class name.
_Getter = Callable[[str], "npt.NDArray[np.bool_]"]


def _check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}.")
    return category


@dataclass(frozen=True)
class _Garments:
    """The garments split by category, at one resolution."""

    upper: npt.NDArray[np.bool_]  # tops and the dress above the hip line
    lower: npt.NDArray[np.bool_]  # bottoms and the dress below it
    whole: npt.NDArray[np.bool_]  # tops, bottoms and dress

    def of(self, category: str) -> npt.NDArray[np.bool_]:
        """The garment a new one of ``category`` replaces."""
        return {"upper_body": self.upper, "lower_body": self.lower}.get(category, self.whole)

    def other(self, category: str) -> npt.NDArray[np.bool_]:
        """The garments of the other category, which stay (where garments overlap,
        the one that stays wins: replacing tops never touches bottoms)."""
        if category == "upper_body":
            return self.lower
        if category == "lower_body":
            return self.upper
        return np.zeros_like(self.whole)


def _garments(ms: MaskSet, get: _Getter, hip: int) -> _Garments:
    """Split the garment classes at the hip row (in ``get``'s resolution)."""
    tops, bottoms, dress = get("tops"), get("bottoms"), get("dress")
    if not any(c in ms.classes for c in ("tops", "bottoms", "dress")):
        dress = get("clothes")  # class type 1 without subdivisions: clothes stands in
    above = np.zeros((dress.shape[0], 1), bool)
    above[:hip] = True
    return _Garments(
        upper=tops | (dress & above), lower=bottoms | (dress & ~above), whole=tops | bottoms | dress
    )


def _getter(ms: MaskSet, level: int) -> _Getter:
    """Bool masks by class name at full resolution, thresholded once each."""
    cache: dict[str, npt.NDArray[np.bool_]] = {}

    def get(name: str) -> npt.NDArray[np.bool_]:
        if name not in cache:
            cache[name] = (ms[name] >= level) if name in ms.classes else np.zeros(ms.shape, bool)
        return cache[name]

    return get


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
    return _garments(ms, _getter(ms, level), min(fr.hip * f, ms.shape[0])).of(category)


def tryon_mask(
    source: MaskSet | Parsing,
    category: str,
    *,
    keypoints: Mapping[str, Any] | None = None,
    preset: str = "default",
    model_type: str = "hd",
    keypoint_size: tuple[int, int] | None = None,
    dilate: float = 0.02,
    fill_holes: bool = True,
    hull: bool = False,
    box: bool = False,
    keep: Sequence[str] = (),
    level: int = 128,
    work_size: int | tuple[int, int] | None = None,
) -> npt.NDArray[np.bool_]:
    """The region to inpaint when a garment of ``category`` replaces what the person wears.

    See the module notes for the rules of ``preset="default"``; every default below
    says why it is what it is. ``preset="ootd"`` follows OOTDiffusion's rules instead
    (module notes, *The ootd preset*).

    Parameters
    ----------
    source
        The person's masks (class type 4 gives the best result: the rules use
        ``body``, ``face``, ``hair``, ``head``, ``shoes``, ``bag`` and ``acc``; missing
        classes are taken as empty), or a :class:`~clothseg_tools.Parsing` (the
        default preset reads its twelve classes, the ``ootd`` preset its labels).
    category
        ``"upper_body"``, ``"lower_body"`` or ``"dresses"``.
    keypoints
        Optional pose keypoints ``{name: (x, y)}`` or ``(x, y, score)`` in pixels of
        the image (a score <= 0 means absent). With wrists and ankles they place
        hands and feet exactly; without them geometry estimates the extremities.
        The ``ootd`` preset also takes an OpenPose dict and needs keypoints for
        ``"upper_body"`` and ``"dresses"``.
    preset
        ``"default"`` (the rules above) or ``"ootd"`` (OOTDiffusion's).
    model_type
        ``ootd`` preset: ``"hd"`` (VITON-HD model, 60 px arms per 512 px of height) or
        ``"dc"`` (DressCode model, 45 px).
    keypoint_size
        ``ootd`` preset: the (width, height) frame an OpenPose dict's pixels refer to
        (default 384 x 512, where OOTDiffusion runs OpenPose). Named keypoints are
        always in the source's pixels.
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
        enough to place a dilated outline within a few pixels, and 64 times fewer
        pixels than 4096 px). Garment and protected pixels are re-applied at full size.
        For the ``ootd`` preset, the (width, height) it works at (default 384 x 512).

    Returns
    -------
    numpy.ndarray
        (H, W) bool: True where the try-on model should paint.

    Raises
    ------
    ValueError
        Unknown category or preset, or options out of range.
    KeypointError
        ``ootd`` preset: keypoints needed but absent, or malformed.

    Examples
    --------
    >>> h, w = 120, 80
    >>> bottoms = np.zeros((h, w), bool); bottoms[60:110, 25:55] = True
    >>> tops = np.zeros((h, w), bool); tops[25:60, 20:60] = True
    >>> m = tryon_mask(MaskSet({"tops": tops, "bottoms": bottoms}), "lower_body")
    >>> bool(m[bottoms].all()), bool(m[tops].any())
    (True, False)

    OOTDiffusion's mask from an ATR + neck label map (4 = Upper-clothes, 6 = Pants):

    >>> from clothseg_tools import Parsing
    >>> lab = np.zeros((512, 384), np.uint8); lab[150:300, 140:241] = 4; lab[300:400, 150:231] = 6
    >>> m = tryon_mask(Parsing(lab, "ootd"), "lower_body", preset="ootd")
    >>> bool(m[300:400, 150:231].all()), bool(m[150:300].any())
    (True, False)
    """
    _check_category(category)
    if preset == "ootd":
        shaping = {"dilate": dilate != 0.02, "fill_holes": not fill_holes, "hull": hull,
                   "box": box, "keep": bool(keep)}  # fmt: skip
        if any(shaping.values()):
            changed = ", ".join(k for k, v in shaping.items() if v)
            raise ValueError(
                f"The ootd preset follows OOTDiffusion's fixed rules; {changed} only apply "
                'to preset="default".'
            )
        return ootd_mask(
            source,
            category,
            keypoints=keypoints,
            model_type=model_type,
            keypoint_size=keypoint_size,
            work_size=None if work_size is None else _pair(work_size),
            level=level,
        )
    if preset != "default":
        raise ValueError(f"preset must be 'default' or 'ootd', got {preset!r}.")
    if work_size is None:
        work_size = 512
    if not isinstance(work_size, int):
        raise ValueError(f"work_size must be one number (the longer side), got {work_size!r}.")
    ms = _as_maskset(source)
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

    garments = _garments(ms, low_get, fr.hip)
    covered = {"upper_body": skin.arms, "lower_body": skin.legs, "dresses": skin.arms | skin.legs}[
        category
    ]
    extremities = skin.hands | skin.feet
    core = garments.of(category) | (covered & ~extremities)
    # Protected at work resolution too, so hole filling and the region choice see
    # the layout the final subtraction will leave.
    derived = extremities | (skin.arms if category == "lower_body" else np.zeros(lshape, bool))
    protected_low = derived | garments.other(category)
    for name in ("face", "hair", "head", "shoes", "bag", *keep):
        protected_low |= low_get(name)
    radius = dilate * max(lshape)
    region = _shape(core, protected_low, radius, fill_holes=fill_holes, hull=hull, box=box)

    full = _upsample(region, f, shape)
    return full & ~_protected_full(ms, category, level, fr, f, keep, _upsample(derived, f, shape))


def _as_maskset(source: Any) -> MaskSet:
    """The twelve classes of a MaskSet, a Parsing (through its label set) or a mapping."""
    if isinstance(source, MaskSet):
        return source
    if isinstance(source, Parsing):
        return source.to_maskset()
    return MaskSet(source)


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
    out |= _garments(ms, get, min(fr.hip * f, ms.shape[0])).other(category)
    if "acc" in ms.classes and "acc" not in keep:
        out |= _head_accessories(ms, get, fr, f)
    return out


def _head_accessories(ms: MaskSet, get: _Getter, fr: _Frame, f: int) -> npt.NDArray[np.bool_]:
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
