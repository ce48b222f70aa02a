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
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from .._io import atomic_open
from ..classes import CLASSES, LABEL_PRIORITY, canonical_class
from ..errors import MaskDecodeError, ShapeMismatchError
from ..masks import MaskSet
from .polygons import mask_to_polygons
from .rle import encode_rle, rle_area, rle_bbox

__all__ = ["SEMANTIC_PRIORITY", "export_coco", "part_category"]

logger = logging.getLogger("clothseg_tools")

#: Result file of a saved result folder (see ``SegmentationResult.save``).
RESULT_FILE = "result.json"

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

_PART_SUFFIX = re.compile(r"[_\-\s]*\d+$")
_EXTENSION = re.compile(r"\.(png|jpe?g|webp|bmp|tiff?)$", re.IGNORECASE)


@dataclass(frozen=True)
class _Item:
    file_name: str
    masks: MaskSet
    parts: MaskSet | None
    size: tuple[int, int] | None  # (width, height) recorded with the result


def part_category(name: str) -> str:
    """The class of a per-garment part name; unknown garments count as ``clothes``.

    Part names carry their class as a folder or a prefix (``tops/0``, ``tops_1``,
    ``dress-02``). The service's parts ZIP holds clothing only, so a name that names
    no known class is a garment of some other kind: ``clothes``.

    Examples
    --------
    >>> part_category("tops_1"), part_category("Dress-02"), part_category("scarf_0")
    ('tops', 'dress', 'clothes')
    """
    stem = name.replace("\\", "/").strip("/")
    head = stem.split("/", 1)[0] if "/" in stem else stem
    head = _PART_SUFFIX.sub("", _EXTENSION.sub("", head))
    cls = canonical_class(head)
    return cls if cls in CLASSES else "clothes"


def _file_name(source: Any, fallback: str) -> str:
    """A COCO ``file_name`` from a result's source: the last path part of a path or
    URL (never a URL's query string, which may hold a signature)."""
    if not isinstance(source, str) or not source.strip():
        return fallback
    parts = urlsplit(source)
    path = parts.path if parts.scheme in ("http", "https", "file") else source
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name or fallback


def _read_folder(folder: Path, root: Path | None = None) -> _Item:
    """One saved result; below ``root`` its ``file_name`` keeps the folder's relative
    path, so same-named photos from different folders stay apart (``a/shirt.jpg``)."""
    meta_path = folder / RESULT_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {RESULT_FILE}: it is not a saved result, or its save was "
            "interrupted (result.json is written last). Save or segment it again."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        size = meta.get("image_size")
        wh = (int(size[0]), int(size[1])) if size else None
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise MaskDecodeError(f"{meta_path} is not a valid result file ({exc}).") from exc
    masks = MaskSet.load(folder)
    parts = MaskSet.load(folder / "parts") if (folder / "parts").is_dir() else None
    name = _file_name(meta.get("source"), folder.name)
    if root is not None and folder != root:
        # segment mirrors the input tree: the result folder's parent is the photo's
        parent = folder.relative_to(root).parent.as_posix()
        name = name if parent == "." else f"{parent}/{name}"
    return _Item(name, masks, parts, wh)


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.as_posix())]


def _hidden(path: Path, root: Path) -> bool:
    """True for files under a dot folder (temporary or tool folders) below ``root``."""
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _expand(results: Any) -> Iterator[_Item]:
    """Yield one _Item per result, reading folders lazily (one in memory at a time)."""
    root: Path | None = None
    if isinstance(results, (str, os.PathLike)):
        root = Path(results)
        if (root / RESULT_FILE).is_file():
            results = [root]
        elif root.is_dir():
            # `clothseg segment` mirrors the input tree, so results sit at any depth
            root = root.resolve()
            results = sorted(
                (p.parent for p in root.rglob(RESULT_FILE) if not _hidden(p, root)),
                key=lambda p: _natural_key(p.relative_to(root)),
            )
            if not results:
                raise FileNotFoundError(
                    f"{root} holds no result folders (no {RESULT_FILE} below it)."
                )
        else:
            raise FileNotFoundError(f"No such result folder: {root}")
    for item in results:
        if isinstance(item, (str, os.PathLike)):
            yield _read_folder(Path(item), root)
        elif isinstance(item, tuple) and len(item) in (2, 3):
            parts = item[2] if len(item) == 3 else None
            yield _Item(
                str(item[0]),
                _maskset(item[1], "masks"),
                None if parts is None else _maskset(parts, "parts"),
                None,
            )
        elif hasattr(item, "masks"):  # a SegmentationResult
            name = _file_name(getattr(item, "source", None), "image")
            yield _Item(
                name,
                _maskset(item.masks, "masks"),
                _maskset(getattr(item, "parts", None) or {}, "parts", shape=item.masks.shape),
                None,
            )
        else:
            raise TypeError(
                "results must hold result folders, (file_name, MaskSet[, parts]) tuples or "
                f"SegmentationResult objects; got {type(item).__name__}."
            )


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


def _maskset(value: Any, what: str, shape: tuple[int, int] | None = None) -> MaskSet:
    if isinstance(value, MaskSet):
        return value
    try:
        return MaskSet(value, shape=shape)
    except (TypeError, AttributeError) as exc:
        raise TypeError(f"{what} must be a MaskSet or a mapping of name -> mask.") from exc


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


def _instance_masks(
    item: _Item, level: int, use_parts: bool
) -> Iterator[tuple[str, npt.NDArray[np.bool_]]]:
    """(class, bool mask) per instance: parts replace their class's merged mask."""
    by_class: dict[str, list[str]] = {}
    if use_parts and item.parts is not None:
        for name in item.parts.classes:
            by_class.setdefault(part_category(name), []).append(name)
    for name in item.masks.classes:
        cls = canonical_class(name)
        if cls not in CLASSES:
            logger.warning(
                "export_coco: %s: skipping mask %r (not a known class)", item.file_name, name
            )
            continue
        if cls in by_class:
            continue
        yield cls, item.masks[name] >= level
    for cls, names in by_class.items():
        for name in names:
            assert item.parts is not None
            yield cls, item.parts[name] >= level


def _semantic_masks(
    item: _Item, level: int, priority: Sequence[str]
) -> Iterator[tuple[str, npt.NDArray[np.bool_]]]:
    """(class, bool mask) per class present, overlaps given to the earliest in priority."""
    names = {canonical_class(n): n for n in item.masks.classes}
    order = [c for c in priority if c in names]
    order += [c for c in CLASSES if c in names and c not in order]
    if not order:
        return
    on = item.masks.stack([names[c] for c in order]) >= level
    # argmax of a bool stack is the first True: the highest-priority class per pixel
    winner = np.where(on.any(axis=0), on.argmax(axis=0), -1)
    for i, cls in enumerate(order):
        yield cls, winner == i


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
        Saved result folders (``masks.json`` + PNGs, optional ``parts/``, and a
        ``result.json`` whose ``source`` gives the image's file name), a folder that
        holds such folders (read in natural order), or ``(file_name, MaskSet)`` /
        ``(file_name, MaskSet, parts)`` tuples, or ``SegmentationResult`` objects.
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
        A folder that is missing or has no ``result.json``.
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
    if mode not in ("instances", "semantic"):
        raise ValueError(f"mode must be 'instances' or 'semantic', got {mode!r}.")
    if encoding not in ("rle", "polygon"):
        raise ValueError(f"encoding must be 'rle' or 'polygon', got {encoding!r}.")
    category_id = {c: i + 1 for i, c in enumerate(CLASSES)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    taken: set[str] = set()
    for image_id, item in enumerate(_expand(results), start=1):
        h, w = item.masks.shape
        file_name = _unique(item.file_name, taken)
        if item.size is not None and item.size != (w, h):
            raise ShapeMismatchError(
                f"{item.file_name}: result.json records image size {list(item.size)} "
                f"(width, height) but the masks are {w} x {h}; the folder is inconsistent."
            )
        if item.parts is not None and len(item.parts) and item.parts.shape != (h, w):
            raise ShapeMismatchError(
                f"{item.file_name}: parts have shape {item.parts.shape} but the masks "
                f"have shape {(h, w)}."
            )
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        pairs = (
            _semantic_masks(item, level, priority)
            if mode == "semantic"
            else _instance_masks(item, level, parts)
        )
        for cls, mask in pairs:
            if not mask.any():
                continue
            segmentation, area, bbox = _segmentation(mask, encoding, tolerance)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id[cls],
                    "segmentation": segmentation,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
    doc = {
        "info": {"description": f"clothseg_tools COCO export ({mode})", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": category_id[c], "name": c, "supercategory": _SUPERCATEGORY[c]} for c in CLASSES
        ],
    }
    target = Path(path)
    with atomic_open(target, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"), ensure_ascii=False)
    logger.info(
        "export_coco: wrote %d images, %d annotations to %s", len(images), len(annotations), target
    )
    return target
