"""Reading COCO JSON back into masks: RLE (compressed or not) and polygons.

The reader takes what :func:`~clothseg_tools.export_coco` writes and what labeling
tools give back (CVAT's "COCO 1.0", Label Studio's COCO export): categories are
matched to our classes by name (aliases count), each annotation is an instance, and
a class's mask is the union of its instances. RLE comes back exactly; polygons are
filled at pixel centres (even-odd, so slits joining holes leave them open), which
keeps every pixel whose centre lies inside the outline.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from clothseg_tools import MaskSet, export_coco
>>> tops = np.zeros((5, 5), bool); tops[1:4, 1:4] = True; tops[2, 2] = False
>>> path = export_coco([("a.jpg", MaskSet({"tops": tops}))], tempfile.mkdtemp() + "/c.json")
>>> item = next(read_coco(path))
>>> item.name, bool(((item.masks["tops"] > 0) == tops).all())
('a', True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from ..classes import CLASSES, canonical_class
from ..errors import LabelFormatError, MaskDecodeError
from ._labeled import LabeledItem, labeled_item
from .rle import decode_rle
from .yolo import fill_polygon

__all__ = ["read_coco"]


def _load(src: Path) -> dict[str, Any]:
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise LabelFormatError(f"is not UTF-8 text ({exc}).", path=src) from exc
    except json.JSONDecodeError as exc:
        raise LabelFormatError(
            f"is not valid JSON ({exc.msg}).", path=src, line=exc.lineno
        ) from exc
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise LabelFormatError(
            "is not a COCO file: it needs 'images', 'annotations' and 'categories' lists.",
            path=src,
        )
    return doc


def _categories(doc: dict[str, Any], src: Path) -> dict[int, str]:
    table: dict[int, str] = {}
    for cat in doc["categories"]:
        try:
            table[int(cat["id"])] = str(cat["name"])
        except (KeyError, TypeError, ValueError):
            raise LabelFormatError(
                f"category {cat!r} needs an integer 'id' and a 'name'.", path=src
            ) from None
    return table


def _photo_dir(src: Path, images: str | os.PathLike[str] | None) -> Path:
    if images is not None:
        return Path(images)
    # COCO's layout: annotations/instances.json beside images/
    for candidate in (src.parent.parent / "images", src.parent / "images"):
        if candidate.is_dir():
            return candidate
    return src.parent


def _segmentation(ann: dict[str, Any], shape: tuple[int, int], src: Path) -> npt.NDArray[np.bool_]:
    seg = ann.get("segmentation")
    what = f"annotation {ann.get('id')!r}"
    h, w = shape
    if isinstance(seg, dict):
        try:
            mask = decode_rle(seg)
        except MaskDecodeError as exc:
            raise LabelFormatError(f"{what}: {exc}", path=src) from exc
        if mask.shape != shape:
            raise LabelFormatError(
                f"{what}: its RLE is {mask.shape[1]} x {mask.shape[0]} but its image is {w} x {h}.",
                path=src,
            )
        return np.ascontiguousarray(mask)
    if not isinstance(seg, list) or not seg:
        raise LabelFormatError(
            f"{what}: 'segmentation' must be an RLE dict or a list of polygons.", path=src
        )
    mask = np.zeros(shape, np.bool_)
    for polygon in seg:
        try:
            xy = np.asarray(polygon, np.float64)
        except (TypeError, ValueError):
            xy = np.zeros(0)
        if xy.ndim != 1 or xy.size < 6 or xy.size % 2 or not np.isfinite(xy).all():
            raise LabelFormatError(
                f"{what}: a polygon must be a flat list [x1, y1, x2, y2, ...] of at least "
                "3 points.",
                path=src,
            )
        mask |= fill_polygon(xy.reshape(-1, 2), shape)
    return mask


def read_coco(
    path: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | None = None,
    parts: bool = True,
) -> Iterator[LabeledItem]:
    """Read a COCO JSON file back as masks, one item per image.

    Parameters
    ----------
    path
        The COCO JSON (instances; RLE or polygon segmentations).
    images
        Where the photos are, by their ``file_name`` (default: ``images/`` beside
        or above the JSON's folder, else the JSON's folder). Photos are optional.
    parts
        Also give each instance of a garment class as a per-garment part.

    Yields
    ------
    LabeledItem
        Named after ``file_name`` without its extension.

    Raises
    ------
    FileNotFoundError
        No such file.
    LabelFormatError
        Not COCO JSON; a category that is not one of our classes; an annotation of an
        unknown image or category; an RLE of the wrong size; a bad polygon.
    """
    src = Path(path)
    doc = _load(src)
    categories = _categories(doc, src)
    photo_dir = _photo_dir(src, images)
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in doc["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            raise LabelFormatError(
                f"annotation {ann!r:.80} needs 'image_id' and 'category_id'.", path=src
            )
        by_image.setdefault(ann["image_id"], []).append(ann)
    known_ids = set()
    for image in doc["images"]:
        try:
            image_id, file_name = image["id"], str(image["file_name"])
            shape = (int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError):
            raise LabelFormatError(
                f"image {image!r:.80} needs 'id', 'file_name', 'width' and 'height'.", path=src
            ) from None
        known_ids.add(image_id)
        instances = []
        for ann in by_image.get(image_id, ()):
            name = categories.get(ann["category_id"])
            if name is None:
                raise LabelFormatError(
                    f"annotation {ann.get('id')!r} has category {ann['category_id']!r}, which "
                    "the file does not define.",
                    path=src,
                )
            cls = canonical_class(name)
            if cls not in CLASSES:
                raise LabelFormatError(
                    f"annotation {ann.get('id')!r} is labelled {name!r}, which is not one of "
                    f"{', '.join(CLASSES)}; rename the category to the class it stands for.",
                    path=src,
                )
            instances.append((cls, _segmentation(ann, shape, src)))
        stem = PurePosixPath(file_name.replace("\\", "/")).with_suffix("").as_posix().lstrip("/")
        photo = photo_dir / file_name
        yield labeled_item(stem, shape, instances, photo if photo.is_file() else None, parts=parts)
    stray = set(by_image) - known_ids
    if stray:
        raise LabelFormatError(
            f"annotations refer to image id(s) {sorted(stray, key=str)[:5]} that 'images' "
            "does not list.",
            path=src,
        )
