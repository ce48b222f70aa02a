"""What every dataset export reads: the results to export, one at a time.

An export takes saved result folders (or a folder holding them at any depth),
``(file_name, MaskSet[, parts])`` tuples, or ``SegmentationResult`` objects, and sees
each as an :class:`ExportItem`: its masks, its parts, the photo's file name, a unique
relative *name* that the dataset's files are called after (``a/b`` for the result
folder ``results/a/b``), and the photo's path when it is on disk.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import MaskSet
>>> item = next(iter_items([("shop/a.jpg", MaskSet({"tops": np.eye(2, dtype=bool)}))]))
>>> item.name, item.file_name, item.masks.shape
('a', 'a.jpg', (2, 2))
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from ..classes import CLASSES, GARMENT_CLASSES, canonical_class
from ..errors import ShapeMismatchError
from ..masks import MaskSet
from ..ops import label_map
from ..result import PARTS_DIR, RESULT_NAME, SegmentationResult, find_results, is_result_folder

__all__ = [
    "PARTS_DIR",
    "RESULT_NAME",
    "ExportItem",
    "instance_masks",
    "iter_items",
    "natural_key",
    "part_category",
    "result_item",
    "semantic_masks",
]

logger = logging.getLogger("clothseg_tools")

_PART_SUFFIX = re.compile(r"[_\-\s]*\d+$")
_EXTENSION = re.compile(r"\.(png|jpe?g|webp|bmp|tiff?)$", re.IGNORECASE)
_URL_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class ExportItem:
    """One result as an export sees it.

    Attributes
    ----------
    name : str
        Unique ``/``-separated relative name without extension; the dataset's files
        for this image are called after it.
    file_name : str
        The photo's file name (the last part of the result's ``source``).
    masks : MaskSet
        The class masks.
    parts : MaskSet or None
        Per-garment instance masks, when saved.
    size : tuple of int or None
        ``(width, height)`` recorded with the result, to check against the masks.
    photo : pathlib.Path or None
        The photo on disk, when the result's ``source`` names a file that exists.
    """

    name: str
    file_name: str
    masks: MaskSet
    parts: MaskSet | None
    size: tuple[int, int] | None
    photo: Path | None = None

    def check(self) -> None:
        """Raise :class:`ShapeMismatchError` when sizes recorded and held disagree."""
        h, w = self.masks.shape
        if self.size is not None and self.size != (w, h):
            raise ShapeMismatchError(
                f"{self.file_name}: result.json records image size {list(self.size)} "
                f"(width, height) but the masks are {w} x {h}; the folder is inconsistent."
            )
        if self.parts is not None and len(self.parts) and self.parts.shape != (h, w):
            raise ShapeMismatchError(
                f"{self.file_name}: parts have shape {self.parts.shape} but the masks "
                f"have shape {(h, w)}."
            )


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


def file_name_of(source: Any, fallback: str) -> str:
    """A photo's file name from a result's source: the last path part of a path or
    URL (never a URL's query string, which may hold a signature).

    Examples
    --------
    >>> file_name_of("https://cdn.example/x/a.jpg?sig=1", "f"), file_name_of(None, "f")
    ('a.jpg', 'f')
    """
    if not isinstance(source, str) or not source.strip():
        return fallback
    parts = urlsplit(source)
    path = parts.path if parts.scheme in _URL_SCHEMES else source
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name or fallback


def _photo_of(source: Any, base: Path | None = None) -> Path | None:
    """The photo named by ``source`` when it is a file on disk (never fetched)."""
    if not isinstance(source, str) or not source.strip():
        return None
    if urlsplit(source).scheme in ("http", "https"):
        return None
    path = Path(source)
    for candidate in (path, *(() if path.is_absolute() or base is None else (base / path,))):
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            continue
    return None


def _read_folder(folder: Path, name: str, parent: str = ".") -> ExportItem:
    """One saved result. ``parent`` is its folder's parent below the results root: the
    photo's file name keeps it, so same-named photos of different folders stay apart
    (``shop1/shirt.jpg``), as ``clothseg segment`` mirrors the input tree."""
    result = SegmentationResult.load(folder, verify=False)
    file_name = file_name_of(result.source, folder.name)
    return ExportItem(
        name,
        file_name if parent == "." else f"{parent}/{file_name}",
        result.masks,
        result.parts if len(result.parts) else None,
        None,  # the recorded image size was checked against the masks by load()
        _photo_of(result.source, folder),
    )


def natural_key(path: str | PurePosixPath | Path) -> list[Any]:
    """The order exports read result folders in: by relative path, numbers as numbers.

    Examples
    --------
    >>> sorted(["a/10", "a/9", "B"], key=natural_key)
    ['a/9', 'a/10', 'B']
    """
    text = path if isinstance(path, str) else path.as_posix()
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def result_item(folder: str | os.PathLike[str], rel: str) -> ExportItem:
    """The result folder ``folder``, found at ``rel`` below a results root, as an export
    of that root sees it (its photo's file name keeps ``rel``'s parent folders).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = MaskSet({"tops": np.eye(2, dtype=bool)}).save(root / "shop" / "a")
    >>> result_item(root / "shop" / "a", "shop/a").file_name
    'shop/a'
    """
    parent = PurePosixPath(rel).parent.as_posix() if "/" in rel else "."
    return _read_folder(Path(folder), rel, parent)


def _stem(file_name: str) -> str:
    return _EXTENSION.sub("", file_name) or "image"


def _maskset(value: Any, what: str, shape: tuple[int, int] | None = None) -> MaskSet:
    if isinstance(value, MaskSet):
        return value
    try:
        return MaskSet(value, shape=shape)
    except (TypeError, AttributeError) as exc:
        raise TypeError(f"{what} must be a MaskSet or a mapping of name -> mask.") from exc


def _folders(root: Path) -> list[tuple[Path, str]]:
    """Result folders under ``root`` with their names relative to it."""
    if not root.is_dir():
        raise FileNotFoundError(f"No such result folder: {root}")
    if is_result_folder(root):
        return [(root, root.resolve().name or "image")]
    # `clothseg segment` mirrors the input tree, so results sit at any depth
    found = sorted(find_results(root), key=lambda p: natural_key(p.relative_to(root)))
    if not found:
        raise FileNotFoundError(f"{root} holds no result folders (no {RESULT_NAME} below it).")
    return [(p, p.relative_to(root).as_posix()) for p in found]


def _unique(name: str, seen: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when taken (dataset files must not clash)."""
    candidate, n = name, 1
    while candidate.lower() in seen:
        n += 1
        candidate = f"{name}_{n}"
    seen.add(candidate.lower())
    return candidate


def iter_items(results: Any) -> Iterator[ExportItem]:
    """Yield one :class:`ExportItem` per result, reading folders lazily.

    Parameters
    ----------
    results
        A result folder, a folder holding result folders at any depth (read in
        natural order), or an iterable of result folders, ``(file_name, MaskSet)`` /
        ``(file_name, MaskSet, parts)`` tuples or ``SegmentationResult`` objects.

    Raises
    ------
    FileNotFoundError
        A folder that is missing or holds no result.
    TypeError
        Something that is none of the above.
    """
    seen: set[str] = set()
    if isinstance(results, (str, os.PathLike)):
        for folder, name in _folders(Path(results)):
            parent = PurePosixPath(name).parent.as_posix() if "/" in name else "."
            yield _read_folder(folder, _unique(name, seen), parent)
        return
    for entry in results:
        if isinstance(entry, (str, os.PathLike)):
            folder = Path(entry)
            yield _read_folder(folder, _unique(folder.resolve().name or "image", seen))
        elif isinstance(entry, tuple) and len(entry) in (2, 3):
            parts = entry[2] if len(entry) == 3 else None
            file_name = file_name_of(str(entry[0]), "image")
            yield ExportItem(
                _unique(_stem(file_name), seen),
                file_name,
                _maskset(entry[1], "masks"),
                None if parts is None else _maskset(parts, "parts"),
                None,
                _photo_of(str(entry[0])),
            )
        elif hasattr(entry, "masks"):  # a SegmentationResult
            source = getattr(entry, "source", None)
            file_name = file_name_of(source, "image")
            yield ExportItem(
                _unique(_stem(file_name), seen),
                file_name,
                _maskset(entry.masks, "masks"),
                _maskset(getattr(entry, "parts", None) or {}, "parts", shape=entry.masks.shape),
                None,
                _photo_of(source),
            )
        else:
            raise TypeError(
                "results must hold result folders, (file_name, MaskSet[, parts]) tuples or "
                f"SegmentationResult objects; got {type(entry).__name__}."
            )


def instance_masks(
    item: ExportItem, level: int, use_parts: bool
) -> Iterator[tuple[str, npt.NDArray[np.bool_]]]:
    """(class, bool mask) per instance: parts replace their class's merged mask.

    Masks that name no known class are skipped with a warning.
    """
    by_class: dict[str, list[str]] = {}
    if use_parts and item.parts is not None:
        for name in item.parts.classes:
            by_class.setdefault(part_category(name), []).append(name)
    for name in item.masks.classes:
        cls = canonical_class(name)
        if cls not in CLASSES:
            logger.warning("export: %s: skipping mask %r (not a known class)", item.file_name, name)
            continue
        if cls in by_class:
            continue
        yield cls, item.masks[name] >= level
    for cls, names in by_class.items():
        for name in names:
            assert item.parts is not None
            yield cls, item.parts[name] >= level


def semantic_masks(
    item: ExportItem, level: int, priority: Sequence[str]
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


def semantic_labels(item: ExportItem, level: int, priority: Sequence[str]) -> npt.NDArray[np.uint8]:
    """The (H, W) label map of an item over :data:`CLASSES` (0 background, i = CLASSES[i-1])."""
    masks = item.masks
    if len(masks) == 0 and item.parts is not None and len(item.parts):
        # parts only (output_type=2): each part counts as its class
        merged: dict[str, npt.NDArray[np.uint8]] = {}
        for name in item.parts.classes:
            cls = part_category(name)
            merged[cls] = np.maximum(merged.get(cls, 0), item.parts[name])
        masks = MaskSet(merged, shape=item.parts.shape)
    known = [n for n in masks.classes if canonical_class(n) in CLASSES]
    renamed = MaskSet({canonical_class(n): masks[n] for n in known}, shape=masks.shape)
    return label_map(renamed, CLASSES, priority=list(priority), min_value=level)


#: Classes whose instances become per-garment parts when labels come back.
PART_CLASSES: tuple[str, ...] = GARMENT_CLASSES
