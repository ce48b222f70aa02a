"""The class vocabulary of the segmentation service.

``CLASSES`` lists the twelve semantic classes in the order of ``class_type=4``;
``CLASS_TYPES`` maps the API's ``class_type`` option (1..4) to the classes it returns.
Names are matched case-insensitively, and a few common aliases are accepted
(``accessories`` -> ``acc``). ``PALETTE`` gives each class a fixed, clearly distinct
colour used for overlays and label PNGs.

Examples
--------
>>> from clothseg_tools.classes import CLASS_TYPES, canonical_class
>>> CLASS_TYPES[3]
('hair', 'face', 'head', 'body')
>>> canonical_class("Accessories")
'acc'
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ALIASES",
    "CLASSES",
    "CLASS_TYPES",
    "GARMENT_CLASSES",
    "LABEL_PRIORITY",
    "PALETTE",
    "canonical_class",
    "canonical_classes",
    "class_color",
    "classes_for_type",
]

CLASSES: tuple[str, ...] = (
    "hair",
    "face",
    "head",
    "clothes",
    "tops",
    "bottoms",
    "dress",
    "bag",
    "shoes",
    "acc",
    "body",
    "others",
)

CLASS_TYPES: dict[int, tuple[str, ...]] = {
    1: ("clothes", "tops", "bottoms", "dress", "acc"),
    2: ("clothes", "tops", "bottoms", "dress", "bag", "shoes", "acc"),
    3: ("hair", "face", "head", "body"),
    4: CLASSES,
}

#: Classes whose subdivided per-garment masks the ZIP output (``output_type`` 2/3) carries.
GARMENT_CLASSES: tuple[str, ...] = ("clothes", "tops", "bottoms", "dress")

#: Where classes overlap and one label per pixel is wanted (label PNGs, semantic COCO,
#: review overlays), the class earliest here wins: face and hair before the ``head``
#: that contains them, accessories, bags and shoes before the garments they sit on,
#: specific garments before the generic ``clothes`` that contains them, and skin and
#: ``others`` last. With plain ``CLASSES`` order ``clothes`` would hide every top,
#: bottom and dress.
LABEL_PRIORITY: tuple[str, ...] = (
    "face",
    "hair",
    "head",
    "acc",
    "bag",
    "shoes",
    "dress",
    "tops",
    "bottoms",
    "clothes",
    "body",
    "others",
)

ALIASES: dict[str, str] = {
    "accessories": "acc",
    "accessory": "acc",
    "top": "tops",
    "upper": "tops",
    "upper_clothes": "tops",
    "bottom": "bottoms",
    "lower": "bottoms",
    "pants": "bottoms",
    "skirt": "bottoms",
    "dresses": "dress",
    "shoe": "shoes",
    "bags": "bag",
    "cloth": "clothes",
    "clothing": "clothes",
    "skin": "body",
    "other": "others",
}

# Twelve colours picked to stay distinct from each other and from skin tones, in
# CLASSES order. Index 0 of a label PNG (background) is black.
PALETTE: dict[str, tuple[int, int, int]] = {
    "hair": (140, 86, 75),
    "face": (255, 187, 120),
    "head": (255, 127, 14),
    "clothes": (31, 119, 180),
    "tops": (214, 39, 40),
    "bottoms": (44, 160, 44),
    "dress": (148, 103, 189),
    "bag": (227, 119, 194),
    "shoes": (127, 127, 127),
    "acc": (188, 189, 34),
    "body": (255, 152, 150),
    "others": (23, 190, 207),
}


def canonical_class(name: str) -> str:
    """Return the canonical class name for ``name``, or ``name`` lower-cased if unknown.

    Parameters
    ----------
    name
        A class name in any case, or an alias such as ``"accessories"``.

    Returns
    -------
    str
        One of :data:`CLASSES`, or the cleaned name when it is not a known class
        (unknown names are kept, never dropped).

    Examples
    --------
    >>> canonical_class(" TOPS ")
    'tops'
    >>> canonical_class("scarf")
    'scarf'
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(key, key)


def canonical_classes(names: Iterable[str], *, strict: bool = True) -> tuple[str, ...]:
    """Canonicalise several class names, refusing unknown ones when ``strict``.

    Examples
    --------
    >>> canonical_classes(["Hair", "accessories"])
    ('hair', 'acc')
    """
    out = tuple(canonical_class(n) for n in names)
    if strict:
        unknown = [n for n in out if n not in CLASSES]
        if unknown:
            raise ValueError(
                f"Unknown class name(s) {unknown}; expected some of {', '.join(CLASSES)}."
            )
    return out


def classes_for_type(class_type: int) -> tuple[str, ...]:
    """Return the classes the service returns for ``class_type`` (1..4).

    Examples
    --------
    >>> classes_for_type(1)
    ('clothes', 'tops', 'bottoms', 'dress', 'acc')
    """
    try:
        return CLASS_TYPES[int(class_type)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"class_type must be one of 1, 2, 3, 4 (got {class_type!r}).") from None


def class_color(name: str) -> tuple[int, int, int]:
    """Return the palette colour of a class; unknown names get a stable derived colour.

    Examples
    --------
    >>> class_color("tops")
    (214, 39, 40)
    """
    key = canonical_class(name)
    if key in PALETTE:
        return PALETTE[key]
    # A stable colour for names outside the vocabulary (garment parts such as
    # "scarf_1"), so the same name always looks the same across runs.
    h = 0
    for ch in key:
        h = (h * 131 + ord(ch)) & 0xFFFFFF
    return (64 + (h & 0x7F) + 64, 64 + ((h >> 8) & 0x7F), 64 + ((h >> 16) & 0x7F))
