"""COCO JSON export of segmentation results.

One COCO file describes many images. Categories are the twelve classes of
:data:`~clothseg_tools.CLASSES`, with ids ``1..12`` in that order (the same numbers as
label PNGs). Two modes:

``"instances"``
    One annotation per non-empty class mask of each image; a class that has per-garment
    parts (``tops_0``, ``tops_1``...) is represented by one annotation per part
    instead, so each garment is its own instance. The service's classes overlap (for
    example ``clothes`` covers ``tops``), and so may the annotations, as instances may.
``"semantic"``
    Each pixel belongs to at most one class (the first in a priority order, specific
    before generic) and each image has one annotation per class present, as
    semantic-segmentation training code expects. Parts are not used.

Every annotation carries ``iscrowd: 0``, ``area`` (pixels) and ``bbox``
(``[x, y, width, height]``, from the RLE as pycocotools computes it); ``segmentation``
is a compressed RLE (``counts`` as an ASCII string) or polygons.

Examples
--------
>>> import numpy as np, tempfile, json
>>> from clothseg_tools import MaskSet
>>> tops = np.zeros((4, 4), bool); tops[1:3, 1:3] = True
>>> path = export_coco([("a.jpg", MaskSet({"tops": tops}))], tempfile.mkdtemp() + "/c.json")
>>> doc = json.loads(path.read_text())
>>> doc["images"][0]["file_name"], doc["annotations"][0]["category_id"]
('a.jpg', 5)
>>> doc["annotations"][0]["bbox"], doc["annotations"][0]["area"]
([1.0, 1.0, 2.0, 2.0], 4)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._io import atomic_open
from ..classes import CLASSES, LABEL_PRIORITY
from ._source import ExportItem, instance_masks, iter_items, part_category, semantic_masks
from .polygons import mask_to_polygons
from .rle import encode_rle, rle_area, rle_bbox

__all__ = [
    "SEMANTIC_PRIORITY",
    "check_coco_options",
    "coco_document",
    "export_coco",
    "image_entry",
    "part_category",
    "write_coco",
]

logger = logging.getLogger("clothseg_tools")

#: Where classes overlap in ``mode="semantic"``, the one earliest here wins
#: (:data:`clothseg_tools.classes.LABEL_PRIORITY`).
SEMANTIC_PRIORITY: tuple[str, ...] = LABEL_PRIORITY

_SUPERCATEGORY = {
    "hair": "person",
    "face": "person",
    "head": "person",
    "body": "person",
    "clothes": "garment",
    "tops": "garment",
    "bottoms": "garment",
    "dress": "garment",
    "bag": "accessory",
    "shoes": "accessory",
    "acc": "accessory",
    "others": "other",
}


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name`` with ``-2``, ``-3``... before its extension when an earlier
    image of the file already has it (COCO tools look images up by file name)."""
    stem, ext = os.path.splitext(name)
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    taken.add(candidate.casefold())
    return candidate


def _segmentation(
    mask: npt.NDArray[np.bool_], encoding: str, tolerance: float
) -> tuple[Any, int, list[float]]:
    rle = encode_rle(mask)
    area, bbox = rle_area(rle), rle_bbox(rle)
    if encoding == "polygon":
        polygons = mask_to_polygons(mask, tolerance=tolerance)
        if polygons:
            return polygons, area, bbox
    return rle, area, bbox


def export_coco(
    results: Iterable[Any] | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    mode: str = "instances",
    encoding: str = "rle",
    parts: bool = True,
    level: int = 128,
    tolerance: float = 0.25,
    priority: Sequence[str] = SEMANTIC_PRIORITY,
) -> Path:
    """Write a COCO JSON file for a set of segmentation results.

    Parameters
    ----------
    results
        Saved result folders (read by :meth:`SegmentationResult.load
        <clothseg_tools.result.SegmentationResult.load>`; the ``source`` in
        ``result.json`` gives the image's file name, else the folder's name does), a
        folder that holds such folders at any depth (read in natural order), or
        ``(file_name, MaskSet)`` / ``(file_name, MaskSet, parts)`` tuples, or
        ``SegmentationResult`` objects.
        Folders are read one at a time, so any number fits in memory. Below a folder
        of results, an image's ``file_name`` is its photo's name under the result's
        relative folder (``shop1/shirt.jpg``), as ``clothseg segment`` mirrors the
        input tree; a name an earlier image already has gets ``-2``, ``-3``... added.
    path
        The JSON file to write (atomically; compact JSON).
    mode
        ``"instances"`` (default) or ``"semantic"``; see the module notes.
    encoding
        ``"rle"`` (default; exact, and what pycocotools and detectron2 read fastest)
        or ``"polygon"`` (what polygon editors such as Label Studio import).
    parts
        In ``"instances"`` mode, annotate each per-garment part instead of its
        class's merged mask when parts are present (default ``True``).
    level
        Masks are ``>= level`` (default 128, the middle of 0..255).
    tolerance
        Polygon simplification, see :func:`~clothseg_tools.mask_to_polygons`.
    priority
        Class order that settles overlaps in ``"semantic"`` mode.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unknown ``mode`` or ``encoding``.
    FileNotFoundError
        A folder that is missing or is not a result folder.
    ShapeMismatchError
        A result whose recorded image size differs from its masks.

    Examples
    --------
    >>> import tempfile
    >>> from clothseg_tools import MaskSet
    >>> ms = MaskSet({"tops": np.eye(3, dtype=bool), "body": np.ones((3, 3), bool)})
    >>> p = export_coco([("a.png", ms)], tempfile.mkdtemp() + "/s.json", mode="semantic")
    >>> [a["area"] for a in json.loads(p.read_text())["annotations"]]
    [3, 6]
    """
    check_coco_options(mode, encoding)
    entries = (
        image_entry(
            item,
            mode=mode,
            encoding=encoding,
            parts=parts,
            level=level,
            tolerance=tolerance,
            priority=priority,
        )
        for item in iter_items(results)
    )
    return write_coco(coco_document(entries, mode=mode), path)


def check_coco_options(mode: str, encoding: str) -> None:
    """Raise ``ValueError`` for an unknown ``mode`` or ``encoding``.

    Examples
    --------
    >>> check_coco_options("semantic", "polygon")
    """
    if mode not in ("instances", "semantic"):
        raise ValueError(f"mode must be 'instances' or 'semantic', got {mode!r}.")
    if encoding not in ("rle", "polygon"):
        raise ValueError(f"encoding must be 'rle' or 'polygon', got {encoding!r}.")


def image_entry(
    item: ExportItem,
    *,
    mode: str = "instances",
    encoding: str = "rle",
    parts: bool = True,
    level: int = 128,
    tolerance: float = 0.25,
    priority: Sequence[str] = SEMANTIC_PRIORITY,
) -> dict[str, Any]:
    """One image's share of a COCO file, before ids are given: what a shard of a
    sharded export writes per result, and :func:`coco_document` puts together.

    Parameters are those of :func:`export_coco`.

    Returns
    -------
    dict
        ``file_name`` (before a repeated name gets ``-2``...), ``width``, ``height``
        and ``annotations`` (``category_id``, ``segmentation``, ``area``, ``bbox``,
        ``iscrowd``), JSON-ready.

    Raises
    ------
    ValueError
        Unknown ``mode`` or ``encoding``.
    ShapeMismatchError
        A result whose recorded image size differs from its masks.

    Examples
    --------
    >>> from clothseg_tools import MaskSet
    >>> from clothseg_tools.export._source import iter_items
    >>> item = next(iter_items([("a.png", MaskSet({"tops": np.eye(3, dtype=bool)}))]))
    >>> entry = image_entry(item)
    >>> entry["file_name"], [a["area"] for a in entry["annotations"]]
    ('a.png', [3])
    """
    check_coco_options(mode, encoding)
    item.check()
    category_id = _category_ids()
    h, w = item.masks.shape
    pairs = (
        semantic_masks(item, level, priority)
        if mode == "semantic"
        else instance_masks(item, level, parts)
    )
    annotations = []
    for cls, mask in pairs:
        if not mask.any():
            continue
        segmentation, area, bbox = _segmentation(mask, encoding, tolerance)
        annotations.append(
            {
                "category_id": category_id[cls],
                "segmentation": segmentation,
                "area": area,
                "bbox": bbox,
                "iscrowd": 0,
            }
        )
    return {"file_name": item.file_name, "width": w, "height": h, "annotations": annotations}


def _category_ids() -> dict[str, int]:
    return {c: i + 1 for i, c in enumerate(CLASSES)}


def coco_document(
    entries: Iterable[Mapping[str, Any]], *, mode: str = "instances"
) -> dict[str, Any]:
    """The COCO document of :func:`image_entry` results, ids given in their order.

    Images are numbered from 1 in the order given, annotations from 1 over all images;
    a file name an earlier image already has gets ``-2``, ``-3``... before its
    extension. The same entries in the same order give the same document, whether
    they were made in one process or by many shards.

    Examples
    --------
    >>> entry = {"file_name": "a.png", "width": 2, "height": 2, "annotations": [
    ...     {"category_id": 5, "segmentation": [], "area": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0}]}
    >>> doc = coco_document([entry, entry])
    >>> [i["file_name"] for i in doc["images"]], [a["image_id"] for a in doc["annotations"]]
    (['a.png', 'a-2.png'], [1, 2])
    """
    category_id = _category_ids()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    taken: set[str] = set()
    for image_id, entry in enumerate(entries, start=1):
        file_name = _unique(str(entry["file_name"]), taken)
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": entry["width"],
                "height": entry["height"],
            }
        )
        for ann in entry["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    return {
        "info": {"description": f"clothseg_tools COCO export ({mode})", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": category_id[c], "name": c, "supercategory": _SUPERCATEGORY[c]} for c in CLASSES
        ],
    }


def write_coco(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a COCO document as compact JSON, atomically; return ``path``."""
    target = Path(path)
    with atomic_open(target, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"), ensure_ascii=False)
    logger.info(
        "export_coco: wrote %d images, %d annotations to %s",
        len(doc["images"]),
        len(doc["annotations"]),
        target,
    )
    return target
