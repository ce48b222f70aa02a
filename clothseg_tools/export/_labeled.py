"""What the label readers yield: one image's corrected masks, ready for a result folder.

Every reader (:func:`~clothseg_tools.export.read_coco`,
:func:`~clothseg_tools.export.read_cvat`, :func:`~clothseg_tools.export.read_yolo`)
yields :class:`LabeledItem` tuples ``(name, masks, photo, parts)``: the image's
relative name without extension (where its result folder goes), one 0/255 mask per
class present, the photo's path when the dataset holds it, and per-garment parts
(one per instance of a garment class) when the format has instances.

Examples
--------
>>> import numpy as np
>>> a = np.zeros((2, 3), bool); a[0, 0] = True
>>> b = np.zeros((2, 3), bool); b[1, 2] = True
>>> item = labeled_item("x", (2, 3), [("tops", a), ("tops", b)], None)
>>> item.masks.classes, item.parts.classes, int(item.masks["tops"].sum() // 255)
(('tops',), ('tops_0', 'tops_1'), 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..classes import CLASSES, GARMENT_CLASSES
from ..masks import MaskSet

__all__ = ["LabeledItem", "labeled_item"]


class LabeledItem(NamedTuple):
    """One image read back from a labeling tool's export.

    Attributes
    ----------
    name : str
        Relative name without extension, ``/``-separated (``shop/a``).
    masks : MaskSet
        One 0/255 mask per class present, in :data:`~clothseg_tools.CLASSES` order.
    photo : pathlib.Path or None
        The photo, when the dataset holds it.
    parts : MaskSet or None
        One mask per instance of a garment class (``tops_0``, ``tops_1``...), for
        formats with instances; ``None`` otherwise.
    """

    name: str
    masks: MaskSet
    photo: Path | None = None
    parts: MaskSet | None = None


def labeled_item(
    name: str,
    shape: tuple[int, int],
    instances: Iterable[tuple[str, npt.NDArray[np.bool_]]],
    photo: Path | None,
    *,
    parts: bool = True,
) -> LabeledItem:
    """Build a :class:`LabeledItem` from ``(class, bool mask)`` instances.

    Each class's mask is the union of its instances; with ``parts``, every instance
    of a garment class (:data:`~clothseg_tools.classes.GARMENT_CLASSES`) also becomes
    a part named ``<class>_<k>``, numbered in reading order.
    """
    union: dict[str, npt.NDArray[np.bool_]] = {}
    garments: list[tuple[str, npt.NDArray[np.bool_]]] = []
    counts: dict[str, int] = {}
    for cls, mask in instances:
        if cls in union:
            union[cls] |= mask
        else:
            union[cls] = mask.copy()
        if parts and cls in GARMENT_CLASSES:
            k = counts.get(cls, 0)
            counts[cls] = k + 1
            garments.append((f"{cls}_{k}", mask))
    masks = MaskSet({c: union[c] for c in CLASSES if c in union}, shape=shape)
    part_set = MaskSet(dict(garments), shape=shape) if parts else None
    return LabeledItem(name, masks, photo, part_set)
