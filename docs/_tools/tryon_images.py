"""Make the pictures of docs/tryon.md: the try-on presets side by side.

- ``tryon_presets.jpg``: scikit-image's astronaut segmented by the local engine, then
  the ``upper_body`` region of the default preset and of the ``ootd`` preset (``hd``
  and ``dc``), each painted grey over the photo the way try-on models receive it.
- ``tryon_ootd_rules.png``: a drawn ATR + neck parsing map of a standing figure with
  OpenPose keypoints, and the ``ootd`` mask of each category over it.

Run it again when the engine or the presets change::

    python docs/_tools/tryon_images.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

import clothseg_tools as cst
from clothseg_tools.result import segment_with_engine

OUT = Path(__file__).resolve().parents[1] / "images"
PANEL = 256  # pixels per picture side: four panels stay small as JPEG


def presets_picture() -> npt.NDArray[np.uint8]:
    """Photo | default | ootd hd | ootd dc, for ``upper_body``."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[..., :3])
    result = segment_with_engine(cst.get_engine("local"), photo, class_type=4)
    ms, kp = result.masks, result.keypoints
    regions = [
        cst.tryon_mask(ms, "upper_body", keypoints=kp),
        cst.tryon_mask(ms, "upper_body", keypoints=kp, preset="ootd", model_type="hd"),
        cst.tryon_mask(ms, "upper_body", keypoints=kp, preset="ootd", model_type="dc"),
    ]
    panels = [photo] + [cst.agnostic_image(photo, r) for r in regions]
    return np.hstack([_fit(p) for p in panels])


# ootd label indices (ATR order, 18 = Neck) and a colour for each
_COLOURS = {
    0: (255, 255, 255), 1: (120, 60, 20), 2: (60, 40, 30), 3: (20, 20, 20), 4: (200, 40, 50),
    5: (230, 150, 40), 6: (40, 70, 160), 7: (150, 60, 170), 8: (240, 220, 60),
    9: (90, 90, 90), 10: (90, 90, 90), 11: (240, 200, 170), 12: (225, 180, 150),
    13: (225, 180, 150), 14: (235, 190, 160), 15: (235, 190, 160), 16: (30, 140, 90),
    17: (60, 180, 200), 18: (250, 210, 180),
}  # fmt: skip


def _figure() -> tuple[npt.NDArray[np.uint8], dict[str, list[float]]]:
    """A standing figure in a short-sleeved top, a skirt, a hat, sunglasses and a bag."""
    pose = [(192, 70), (192, 112), (150, 116), (136, 184), (128, 246), (234, 116),
            (250, 182), (262, 240), (168, 250), (166, 350), (166, 450), (216, 250),
            (218, 350), (218, 450), (182, 62), (202, 62), (172, 68), (212, 68)]  # fmt: skip
    canvas = Image.new("L", (384, 512))
    draw = ImageDraw.Draw(canvas)

    def limb(a: tuple[float, float], b: tuple[float, float], width: int, label: int) -> None:
        draw.line([a, b], fill=label, width=width)
        for x, y in (a, b):
            r = width / 2
            draw.ellipse([x - r, y - r, x + r, y + r], fill=label)

    for hip, knee, ankle, label in ((8, 9, 10, 13), (11, 12, 13, 12)):
        limb(pose[hip], pose[knee], 40, label)
        limb(pose[knee], pose[ankle], 30, label)
    for shoulder, elbow, wrist, label in ((2, 3, 4, 15), (5, 6, 7, 14)):
        limb(pose[shoulder], pose[elbow], 26, label)
        limb(pose[elbow], pose[wrist], 22, label)
        hand = tuple(np.add(pose[wrist], 0.35 * np.subtract(pose[wrist], pose[elbow])))
        limb(pose[wrist], hand, 20, label)  # type: ignore[arg-type]
    limb((192, 88), (192, 120), 30, 18)  # neck
    draw.ellipse([168, 32, 216, 96], fill=11)  # face
    draw.ellipse([162, 22, 222, 58], fill=2)  # hair
    draw.polygon([(146, 108), (238, 108), (228, 262), (156, 262)], fill=4)  # top
    for shoulder, elbow in ((2, 3), (5, 6)):
        limb(pose[shoulder], tuple(np.add(pose[shoulder], np.subtract(pose[elbow],  # type: ignore[arg-type]
             pose[shoulder]) * 0.9)), 32, 4)  # fmt: skip
    draw.polygon([(156, 250), (228, 250), (250, 360), (134, 360)], fill=5)  # skirt
    draw.ellipse([142, 460, 178, 484], fill=10)
    draw.ellipse([206, 460, 242, 484], fill=9)  # shoes
    draw.ellipse([152, 12, 232, 40], fill=1)  # hat
    draw.rectangle([170, 56, 214, 66], fill=3)  # sunglasses
    draw.polygon([(276, 230), (326, 230), (330, 300), (272, 300)], fill=16)  # bag
    return np.asarray(canvas), {"pose_keypoints_2d": [float(v) for p in pose for v in p]}


def rules_picture() -> npt.NDArray[np.uint8]:
    """The parsing map, then the ootd mask of each category over it."""
    labels, keypoints = _figure()
    palette = np.array([_COLOURS[i] for i in range(19)], np.uint8)
    coloured = palette[labels]
    parsing = cst.Parsing(labels, "ootd")
    panels = [coloured]
    for category in cst.tryon.CATEGORIES:
        mask = cst.tryon_mask(parsing, category, keypoints=keypoints, preset="ootd")
        panels.append(cst.agnostic_image(coloured, mask))
    return np.hstack([_fit(p) for p in panels])


def _fit(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``image`` scaled to PANEL pixels high."""
    h, w = image.shape[:2]
    size = (round(w * PANEL / h), PANEL)
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(presets_picture()).save(OUT / "tryon_presets.jpg", quality=85)
    Image.fromarray(rules_picture()).save(OUT / "tryon_ootd_rules.png", optimize=True)


if __name__ == "__main__":
    main()
