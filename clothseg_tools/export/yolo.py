"""YOLO segmentation datasets (the Ultralytics layout), written and read back.

::

    dataset/
      data.yaml                 names: {0: hair, 1: face, ...}; train/val: images
      images/<name>.jpg         the photos, as segmented
      labels/<name>.txt         one line per instance: class x1 y1 x2 y2 ...

Coordinates are normalised to 0..1 by the image's width and height. Class ids are
:data:`~clothseg_tools.CLASSES` positions from 0. A line is one instance: each
per-garment part when the result has parts (a part in several pieces is joined into
one polygon), else each connected region of a class mask. A YOLO line holds a single
polygon, so holes are joined to their outline by zero-width slits (see
:func:`~clothseg_tools.mask_to_polygons`): Ultralytics, which fills polygons with
OpenCV, and any even-odd or non-zero filler leave the holes empty.

Reading back rasterises every polygon at pixel centres (``skimage.draw.polygon``):
a pixel belongs to the instance when its centre is inside. Polygons lose what an
outline cannot carry; after a round trip every changed pixel touches the original
outline (it lies in the one-pixel band on either side of it), and with
``tolerance=0`` nothing changes for shapes whose parts are more than a pixel wide.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from PIL import Image
>>> from clothseg_tools import MaskSet
>>> work = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("RGB", (8, 8)).save(work / "a.png")
>>> tops = np.zeros((8, 8), bool); tops[2:6, 1:7] = True; tops[3:5, 3:5] = False
>>> export_yolo([(str(work / "a.png"), MaskSet({"tops": tops}))], work / "yolo").annotations
1
>>> (work / "yolo" / "labels" / "a.txt").read_text().split()[0]  # class id of tops
'4'
>>> item = next(read_yolo(work / "yolo"))
>>> item.name, item.photo.name, bool(((item.masks["tops"] > 0) == tops).all())
('a', 'a.png', True)
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._io import atomic_write_bytes
from ..classes import CLASSES, canonical_class
from ..errors import LabelFormatError
from ._dataset import ExportSummary, photo_size, place_photo, staged_folder
from ._labeled import LabeledItem, labeled_item
from ._source import ExportItem, instance_masks, iter_items, part_category
from .polygons import mask_to_polygons

__all__ = ["export_yolo", "fill_polygon", "read_names", "read_yolo", "yolo_lines"]

logger = logging.getLogger("clothseg_tools")

#: Photo extensions Ultralytics reads, in the order a reader looks for them.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def yolo_lines(
    instances: Sequence[tuple[int, npt.NDArray[np.bool_], bool]],
    *,
    tolerance: float = 0.25,
    min_area: float = 0,
) -> list[str]:
    """The label-file lines of an image's instances.

    Parameters
    ----------
    instances
        ``(class id, bool mask, whole)``: with ``whole`` the mask is one instance
        (its pieces joined into one polygon); otherwise each connected region is
        an instance of its own.
    tolerance, min_area
        See :func:`~clothseg_tools.mask_to_polygons`.

    Returns
    -------
    list of str
        ``"<id> x1 y1 x2 y2 ..."`` with coordinates normalised to 0..1.

    Examples
    --------
    >>> m = np.zeros((4, 4), bool); m[1:3, 1:3] = True
    >>> yolo_lines([(4, m, False)], tolerance=0)
    ['4 0.625 0.75 0.375 0.75 0.25 0.625 0.25 0.375 0.375 0.25 0.625 0.25 0.75 0.375 0.75 0.625']
    """
    lines = []
    for class_id, mask, whole in instances:
        h, w = mask.shape
        scale = np.array([1.0 / w, 1.0 / h])
        for polygon in mask_to_polygons(mask, tolerance=tolerance, min_area=min_area, join=whole):
            xy = np.asarray(polygon).reshape(-1, 2) * scale
            coords = " ".join(f"{v:.6g}" for v in np.clip(xy, 0.0, 1.0).reshape(-1))
            lines.append(f"{class_id} {coords}")
    return lines


def _data_yaml(classes: Sequence[str]) -> str:
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(classes))
    return (
        "# Ultralytics YOLO segmentation dataset written by clothseg_tools.\n"
        "# Paths are relative to this file's folder.\n"
        "train: images\n"
        "val: images\n"
        f"nc: {len(classes)}\n"
        f"names:\n{names}\n"
    )


def export_yolo(
    results: Any,
    out: str | os.PathLike[str],
    *,
    parts: bool = True,
    level: int = 128,
    tolerance: float = 0.25,
    min_area: float = 0,
    images: bool = True,
    link: bool = False,
    overwrite: bool = False,
) -> ExportSummary:
    """Write a YOLO segmentation dataset (Ultralytics layout) for a set of results.

    Parameters
    ----------
    results
        Result folders, a folder holding them, ``(file_name, MaskSet[, parts])``
        tuples or ``SegmentationResult`` objects (see
        :func:`~clothseg_tools.export_coco`).
    out
        The dataset folder; built beside it and moved into place when complete.
    parts
        One line per per-garment part where parts were saved (default); else one
        line per connected region of each class mask.
    level
        Masks are ``>= level``.
    tolerance
        Outline simplification in pixels (:func:`~clothseg_tools.mask_to_polygons`).
    min_area
        Regions of fewer pixels are dropped and smaller holes filled.
    images
        Copy each photo into ``images/`` (default). ``False`` writes labels only.
    link
        Hard-link the photos instead of copying them, where the file system allows.
    overwrite
        Replace ``out`` if it exists and is not empty.

    Returns
    -------
    ExportSummary
        The folder, the number of images and of label lines.

    Raises
    ------
    FileExistsError
        ``out`` is not empty and ``overwrite`` is false.
    FileNotFoundError
        A result's photo is not on disk (with ``images``).
    ShapeMismatchError
        A photo or recorded size that differs from the masks.
    """
    class_id = {c: i for i, c in enumerate(CLASSES)}
    n_images = n_lines = 0
    with staged_folder(out, overwrite=overwrite) as stage:
        for item in iter_items(results):
            item.check()
            use_parts = parts and item.parts is not None and len(item.parts) > 0
            instances = _instances(item, level, use_parts, class_id)
            lines = yolo_lines(instances, tolerance=tolerance, min_area=min_area)
            if images:
                place_photo(item, stage / "images", link=link)
            label_path = stage / "labels" / f"{item.name}.txt"
            label_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.write_text("".join(f"{line}\n" for line in lines), encoding="ascii")
            n_images += 1
            n_lines += len(lines)
        atomic_write_bytes(stage / "data.yaml", _data_yaml(CLASSES).encode("utf-8"))
    logger.info("export_yolo: wrote %d images, %d instances to %s", n_images, n_lines, out)
    return ExportSummary(Path(out), n_images, n_lines)


def _instances(
    item: ExportItem, level: int, use_parts: bool, class_id: dict[str, int]
) -> list[tuple[int, npt.NDArray[np.bool_], bool]]:
    """Instances with a flag: a part is one instance, a class mask one per region."""
    part_classes = (
        {part_category(p) for p in item.parts.classes} if use_parts and item.parts else set()
    )
    return [
        (class_id[cls], mask, cls in part_classes)
        for cls, mask in instance_masks(item, level, use_parts)
    ]


_NAMES_ENTRY = re.compile(r"""^\s*(?:-\s*|(\d+)\s*:\s*)?['"]?([^'"#]*?)['"]?\s*(?:#.*)?$""")


def read_names(path: str | os.PathLike[str]) -> list[str]:
    """The class names of a YOLO ``data.yaml``: ``names`` as a mapping or a list.

    Raises
    ------
    LabelFormatError
        No ``names``, a name twice, or mapping keys that are not 0, 1, 2...

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "data.yaml"
    >>> _ = p.write_text("names:\\n  0: tops\\n  1: 'bottoms'\\n")
    >>> read_names(p)
    ['tops', 'bottoms']
    >>> _ = p.write_text("nc: 2\\nnames: [tops, dress]\\n")
    >>> read_names(p)
    ['tops', 'dress']
    """
    src = Path(path)
    try:
        lines = src.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise LabelFormatError(f"not UTF-8 text ({exc}).", path=src) from exc
    for number, line in enumerate(lines, start=1):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:") :].split("#", 1)[0].strip()
        if rest:  # flow style: [a, b] or {0: a, 1: b}
            if rest[0] not in "[{" or rest[-1] != {"[": "]", "{": "}"}[rest[0]]:
                raise LabelFormatError(
                    "names must be a list [a, b] or a mapping {0: a}.", path=src, line=number
                )
            entries = [(e, number) for e in rest[1:-1].split(",") if e.strip()]
        else:
            entries = []
            for k, more in enumerate(lines[number:], start=number + 1):
                if more.strip() and not more[0].isspace() and not more.startswith("-"):
                    break
                if more.strip() and not more.strip().startswith("#"):
                    entries.append((more, k))
        return _names_from(entries, src)
    raise LabelFormatError("has no 'names:' list of classes.", path=src)


def _names_from(entries: list[tuple[str, int]], src: Path) -> list[str]:
    names: list[str] = []
    for text, number in entries:
        match = _NAMES_ENTRY.match(text)
        if match is None or not match.group(2).strip():
            raise LabelFormatError(
                f"cannot read a class name in {text.strip()!r}.", path=src, line=number
            )
        key, name = match.group(1), match.group(2).strip()
        if key is not None and int(key) != len(names):
            raise LabelFormatError(
                f"class ids must run 0, 1, 2... in order; found {key} where {len(names)} "
                "was expected.",
                path=src,
                line=number,
            )
        names.append(name)
    if not names:
        raise LabelFormatError("'names' is empty.", path=src)
    return names


def _class_table(names: list[str], src: Path | None) -> list[str]:
    """Our class for each YOLO class id; unknown names are refused."""
    table = []
    for i, name in enumerate(names):
        cls = canonical_class(name)
        if cls not in CLASSES:
            raise LabelFormatError(
                f"class {i} is {name!r}, which is not one of {', '.join(CLASSES)}; rename "
                "it to the class it stands for.",
                path=src or "names",
            )
        table.append(cls)
    return table


def _find_image(images: Path, rel_stem: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        for candidate in (images / f"{rel_stem}{ext}", images / f"{rel_stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _parse_line(
    text: str, number: int, src: Path, n_classes: int
) -> tuple[int, npt.NDArray[np.float64]]:
    fields = text.split()
    try:
        class_id = int(fields[0])
        values = np.array([float(v) for v in fields[1:]], np.float64)
    except ValueError:
        raise LabelFormatError(
            f"expected 'class x1 y1 x2 y2 ...' with an integer class and numbers, got "
            f"{text.strip()[:60]!r}.",
            path=src,
            line=number,
        ) from None
    if not 0 <= class_id < n_classes:
        raise LabelFormatError(
            f"class id {class_id} is not among the {n_classes} names of data.yaml.",
            path=src,
            line=number,
        )
    if values.size == 4:
        raise LabelFormatError(
            "this is a detection box (x y w h), not a segmentation polygon; export the "
            "dataset as YOLO segmentation.",
            path=src,
            line=number,
        )
    if values.size < 6 or values.size % 2:
        raise LabelFormatError(
            f"a polygon needs an even number of coordinates, at least 6 (3 points); got "
            f"{values.size}.",
            path=src,
            line=number,
        )
    if not np.isfinite(values).all() or values.min() < -1e-3 or values.max() > 1 + 1e-3:
        raise LabelFormatError(
            "coordinates must be normalised to 0..1 (divided by the image's width and height).",
            path=src,
            line=number,
        )
    return class_id, values.reshape(-1, 2)


def fill_polygon(xy: npt.NDArray[np.float64], shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Pixels whose centres lie inside the polygon ``xy`` (pixel coordinates, corners at
    integers), filled even-odd, so zero-width slits leave holes open.

    A scanline fill over the polygon's edges in whole arrays: each edge gives the rows
    whose centre line it crosses (half-open, so a vertex is counted once), the
    crossings are sorted along each row and every other gap filled. Its cost grows with
    the outline, where a point-in-polygon test per pixel of the bounding box (what
    ``skimage.draw.polygon`` does) grows with the area times the outline.

    Examples
    --------
    >>> fill_polygon(np.array([[1, 1], [3, 1], [3, 2], [1, 2]], float), (3, 4)).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    h, w = shape
    mask = np.zeros(shape, np.bool_)
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    # rows r whose centre r + 0.5 lies in [lo, hi): horizontal edges cross none
    first = np.clip(np.ceil(lo - 0.5), 0, h).astype(np.int64)
    stop = np.clip(np.ceil(hi - 0.5), 0, h).astype(np.int64)
    spans = np.maximum(stop - first, 0)
    total = int(spans.sum())
    if total == 0:
        return mask
    edge = np.repeat(np.arange(xy.shape[0]), spans)
    row = np.arange(total) - np.repeat(np.cumsum(spans) - spans, spans) + first[edge]
    t = (row + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
    x = x0[edge] + t * (x1[edge] - x0[edge])
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    # crossings pair up within each row (every row has an even number)
    rows = row[0::2]
    start = np.clip(np.ceil(x[0::2] - 0.5), 0, w).astype(np.int64)
    end = np.clip(np.ceil(x[1::2] - 0.5), 0, w).astype(np.int64)
    keep = end > start
    rows, start, end = rows[keep], start[keep], end[keep]
    if rows.size == 0:
        return mask
    # +1 where a run starts, -1 where it ends, summed along each row
    steps = np.zeros((h, w + 1), np.int32)
    np.add.at(steps, (rows, start), 1)
    np.add.at(steps, (rows, end), -1)
    np.cumsum(steps[:, :w], axis=1, out=steps[:, :w])
    np.greater(steps[:, :w], 0, out=mask)
    return mask


def read_yolo(
    root: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    parts: bool = True,
) -> Iterator[LabeledItem]:
    """Read a YOLO segmentation dataset back as masks, one item per image.

    Parameters
    ----------
    root
        The dataset folder: ``labels/`` and ``images/`` (any sub-folders, mirrored),
        and ``data.yaml`` for the class names.
    names
        The class names by id, when the folder has no ``data.yaml`` (default: the
        names it holds, else :data:`~clothseg_tools.CLASSES`). Each must name one of
        our classes (aliases such as ``upper_clothes`` count).
    parts
        Also give each instance of a garment class as a per-garment part.

    Yields
    ------
    LabeledItem
        Named after the label file's path under ``labels/``; images without a label
        file are yielded with no masks (YOLO's background images).

    Raises
    ------
    FileNotFoundError
        No ``labels/`` folder.
    LabelFormatError
        A class name we do not know, a label file without its image (the size is
        needed to undo the normalisation), or a bad line (naming file and line).
    """
    base = Path(root)
    labels_dir, images_dir = base / "labels", base / "images"
    if not labels_dir.is_dir():
        raise FileNotFoundError(
            f"{base} has no labels/ folder; name the folder that holds data.yaml, images/ "
            "and labels/."
        )
    yaml_path = base / "data.yaml"
    if names is None:
        names = read_names(yaml_path) if yaml_path.is_file() else list(CLASSES)
    table = _class_table(list(names), yaml_path if yaml_path.is_file() else None)
    stems = {
        p.relative_to(labels_dir).with_suffix("").as_posix() for p in labels_dir.rglob("*.txt")
    }
    if images_dir.is_dir():
        stems |= {
            p.relative_to(images_dir).with_suffix("").as_posix()
            for p in images_dir.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        }
    for stem in sorted(stems):
        yield _read_one(
            labels_dir / f"{stem}.txt", _find_image(images_dir, stem), stem, table, parts
        )


def _read_one(
    label_path: Path, photo: Path | None, stem: str, table: list[str], parts: bool
) -> LabeledItem:
    if photo is None:
        raise LabelFormatError(
            "has no image under images/ with the same name; YOLO coordinates are "
            "fractions of the image's size, so the image is needed to read them.",
            path=label_path,
        )
    w, h = photo_size(photo)
    instances = []
    if label_path.is_file():
        text = label_path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            class_id, xy = _parse_line(line, number, label_path, len(table))
            instances.append((table[class_id], fill_polygon(xy * (w, h), (h, w))))
    return labeled_item(stem, (h, w), instances, photo, parts=parts)
