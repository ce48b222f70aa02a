"""Synthetic ATR + neck parsing maps of a standing figure, with OpenPose keypoints.

The figure is drawn label by label on a 384 x 512 canvas (scaled as asked), later
labels over earlier ones, the way a parser's argmax would read a dressed person:
skin first, then garments, then accessories on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

# ootd label indices (ATR order, 18 = Neck)
BG, HAT, HAIR, GLASSES, UPPER, SKIRT, PANTS, DRESS, BELT = range(9)
LSHOE, RSHOE, FACE, LLEG, RLEG, LARM, RARM, BAG, SCARF, NECK = range(9, 19)

# BODY_18 points of the base pose, (x, y) on 384 x 512; the figure faces the camera,
# so its right side is on the picture's left.
BASE_POSE = {
    0: (192, 70),  # nose
    1: (192, 112),  # neck
    2: (150, 116), 3: (136, 184), 4: (128, 246),  # right shoulder, elbow, wrist
    5: (234, 116), 6: (248, 184), 7: (256, 246),  # left shoulder, elbow, wrist
    8: (168, 250), 9: (166, 350), 10: (166, 450),  # right hip, knee, ankle
    11: (216, 250), 12: (218, 350), 13: (218, 450),  # left hip, knee, ankle
    14: (182, 62), 15: (202, 62), 16: (172, 68), 17: (212, 68),  # eyes, ears
}  # fmt: skip


@dataclass
class Outfit:
    sleeves: str = "long"  # long, short, none
    bottom: str = "pants"  # pants, shorts, skirt, dress (dress replaces top and bottom)
    hat: bool = False
    glasses: bool = False
    bag: bool = False
    belt: bool = False
    scarf: bool = False
    missing: tuple[int, ...] = ()  # BODY_18 indices reported as (0, 0)
    pose: dict[int, tuple[float, float]] = field(default_factory=dict)  # overrides


def _limb(draw, a, b, width, value, scale):
    a, b = np.asarray(a, float) * scale, np.asarray(b, float) * scale
    d = b - a
    n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * width * scale / 2
    draw.polygon([tuple(p) for p in (a + n, b + n, b - n, a - n)], fill=value)
    r = width * scale / 2
    for p in (a, b):  # round joints
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=value)


def _poly(draw, pts, value, scale):
    draw.polygon([(x * scale, y * scale) for x, y in pts], fill=value)


def _ell(draw, cx, cy, rx, ry, value, scale):
    cx, cy, rx, ry = cx * scale, cy * scale, rx * scale, ry * scale
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=value)


def figure(outfit: Outfit | None = None, scale: float = 1.0):
    """(labels (H, W) uint8, pose {index: (x, y)} in the labels' pixels, keypoints dict).

    ``keypoints`` is the OpenPose dict in the 384 x 512 frame the reference reads.
    """
    o = outfit or Outfit()
    P = {**BASE_POSE, **o.pose}
    h, w = round(512 * scale), round(384 * scale)
    canvas = Image.new("L", (w, h))
    lab = ImageDraw.Draw(canvas)  # drawn on in order, later labels over earlier ones
    s = scale
    # skin
    for (hip, knee, ankle), leg in (((8, 9, 10), RLEG), ((11, 12, 13), LLEG)):
        _limb(lab, P[hip], P[knee], 40, leg, s)
        _limb(lab, P[knee], P[ankle], 30, leg, s)
    for (sh, el, wr), arm in (((2, 3, 4), RARM), ((5, 6, 7), LARM)):
        _limb(lab, P[sh], P[el], 26, arm, s)
        _limb(lab, P[el], P[wr], 22, arm, s)
        hand = np.asarray(P[wr], float) + 0.35 * (np.asarray(P[wr], float) - P[el])
        _limb(lab, P[wr], hand, 20, arm, s)
    _limb(lab, (192, 88), (192, 120), 30, NECK, s)
    _ell(lab, 192, 64, 24, 32, FACE, s)
    _ell(lab, 192, 40, 30, 18, HAIR, s)
    # garments
    torso = [(146, 108), (238, 108), (228, 262), (156, 262)]
    if o.bottom == "dress":
        _poly(lab, [(150, 108), (234, 108), (262, 400), (122, 400)], DRESS, s)
    else:
        _poly(lab, torso, UPPER, s)
    sleeve = {"long": 1.0, "short": 0.45, "none": 0.0}[o.sleeves]
    top = DRESS if o.bottom == "dress" else UPPER
    for sh, el, wr in ((2, 3, 4), (5, 6, 7)):
        if sleeve >= 0.45:
            end = np.asarray(P[sh], float) + sleeve * 2 * (np.asarray(P[el], float) - P[sh])
            if sleeve == 1.0:
                _limb(lab, P[sh], P[el], 32, top, s)
                _limb(lab, P[el], P[wr], 28, top, s)
            else:
                _limb(lab, P[sh], end if sleeve < 0.5 else P[el], 32, top, s)
    if o.bottom == "pants":
        _poly(lab, [(154, 250), (230, 250), (234, 440), (200, 440), (192, 300), (184, 440),
                    (150, 440)], PANTS, s)  # fmt: skip
    elif o.bottom == "shorts":
        _poly(lab, [(154, 250), (230, 250), (236, 320), (196, 320), (192, 290), (188, 320),
                    (148, 320)], PANTS, s)  # fmt: skip
    elif o.bottom == "skirt":
        _poly(lab, [(156, 250), (228, 250), (250, 360), (134, 360)], SKIRT, s)
    # feet
    _ell(lab, P[10][0] - 6, P[10][1] + 22, 18, 12, RSHOE, s)
    _ell(lab, P[13][0] + 6, P[13][1] + 22, 18, 12, LSHOE, s)
    # accessories
    if o.belt:
        _poly(lab, [(154, 246), (230, 246), (230, 258), (154, 258)], BELT, s)
    if o.scarf:
        _poly(lab, [(168, 100), (216, 100), (210, 124), (200, 190), (186, 190), (174, 124)],
              SCARF, s)  # fmt: skip
    if o.hat:
        _ell(lab, 192, 26, 40, 14, HAT, s)
    if o.glasses:
        _poly(lab, [(170, 56), (214, 56), (214, 66), (170, 66)], GLASSES, s)
    if o.bag:
        _poly(lab, [(270, 230), (320, 230), (324, 300), (266, 300)], BAG, s)
        _limb(lab, (240, 118), (294, 230), 6, BAG, s)
    flat: list[float] = []
    for i in range(18):
        x, y = (0.0, 0.0) if i in o.missing else P[i]
        flat += [float(x), float(y)]
    pose = {i: (P[i][0] * s, P[i][1] * s) for i in range(18) if i not in o.missing}
    return np.array(canvas), pose, {"pose_keypoints_2d": flat}


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def reference_cases():
    """(case id, outfit, scale, category, model type): the cases whose masks from the
    reference implementation are stored in ``data/ootd_reference.npz``."""
    rng = np.random.default_rng(2024)
    outfits = [Outfit(sleeves, bottom) for sleeves in ("long", "short", "none")
               for bottom in ("pants", "shorts", "skirt", "dress")]  # fmt: skip
    outfits += [
        Outfit("long", "pants", hat=True, glasses=True, bag=True, belt=True, scarf=True),
        Outfit("short", "skirt", missing=(4,)),
        Outfit("none", "pants", missing=(7,)),
        Outfit("long", "dress", missing=(3, 4)),
    ]
    for i, outfit in enumerate(outfits):
        pose = {k: (x + rng.normal(0, 10), y + rng.normal(0, 10)) for k, (x, y) in
                BASE_POSE.items()}  # fmt: skip
        if i % 4 == 3:  # forearms raised
            pose[4] = (pose[3][0] - 30, pose[3][1] - 60)
            pose[7] = (pose[6][0] + 30, pose[6][1] - 60)
        dressed = Outfit(**{**outfit.__dict__, "pose": pose})
        scale = (1.0, 2.0, 0.75)[i % 3]
        for category in ("upper_body", "lower_body", "dresses"):
            for model_type in ("hd", "dc"):
                yield f"{i:02d}-{category}-{model_type}", dressed, scale, category, model_type
