"""CVAT "Segmentation mask 1.1" datasets (the Pascal VOC layout), written and read back.

::

    dataset/ (or dataset.zip)
      labelmap.txt                          name:r,g,b:: per class, background first
      SegmentationClass/<name>.png          class colours (palette PNG, our PALETTE)
      SegmentationObject/<name>.png         one index per instance (VOC colour map)
      ImageSets/Segmentation/default.txt    one <name> per line
      JPEGImages/<name>.jpg                 the photos, when asked for

Upload the ZIP to a CVAT task with "Upload annotations" -> "Segmentation mask 1.1".
The format holds one class per pixel: where our classes overlap (``clothes`` covers
``tops``) the earliest in :data:`~clothseg_tools.classes.LABEL_PRIORITY` wins, as in
label PNGs. An instance is a connected region of one class.

Reading back is exact for the label map: the masks read back give the same
:func:`~clothseg_tools.label_map` as the masks exported. Colours are matched to
``labelmap.txt`` exactly; a colour it does not list is an error, never a guess.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from clothseg_tools import MaskSet
>>> tops = np.zeros((4, 6), bool); tops[1:3, 1:3] = True
>>> out = pathlib.Path(tempfile.mkdtemp()) / "cvat.zip"
>>> export_cvat([("a.jpg", MaskSet({"tops": tops}))], out).images
1
>>> item = next(read_cvat(out))
>>> item.name, item.masks.classes, bool(((item.masks["tops"] > 0) == tops).all())
('a', ('tops',), True)
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import limits
from .._io import atomic_open
from ..classes import CLASSES, LABEL_PRIORITY, canonical_class
from ..errors import LabelFormatError, UnsafeZipError
from ._dataset import ExportSummary, checked_photo, photo_size, staged_folder
from ._labeled import LabeledItem, labeled_item
from ._source import iter_items, semantic_labels
from .labels import cvat_labelmap, label_palette

__all__ = ["export_cvat", "read_cvat", "read_labelmap", "voc_colormap"]

logger = logging.getLogger("clothseg_tools")

LABELMAP = "labelmap.txt"
CLASS_DIR = "SegmentationClass"
OBJECT_DIR = "SegmentationObject"
IMAGE_DIR = "JPEGImages"
SUBSET = "ImageSets/Segmentation/default.txt"


def voc_colormap(n: int = 256) -> npt.NDArray[np.uint8]:
    """Pascal VOC's colour map: index ``i`` -> the colour VOC tools draw it in.

    Examples
    --------
    >>> voc_colormap()[:3].tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    idx = np.arange(n)
    cmap = np.zeros((n, 3), np.int64)
    for shift in range(7, -1, -1):  # bits of the index spread over the channels
        for channel in range(3):
            cmap[:, channel] |= ((idx >> (3 * (7 - shift) + channel)) & 1) << shift
    return cmap.astype(np.uint8)


def _png(array: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8]) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array))
    image.putpalette(palette.tobytes())
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _objects(labels: npt.NDArray[np.uint8], name: str) -> npt.NDArray[np.uint8]:
    """Instance indices 1..n: each 8-connected region of one class."""
    from skimage.measure import label

    objects, n = label(labels, background=0, connectivity=2, return_num=True)
    if n > 255:
        # a PNG index holds 255 objects: the largest keep theirs, the specks go without
        # one (their class stays in SegmentationClass, and reading back keeps it)
        sizes = np.bincount(objects.reshape(-1), minlength=n + 1)
        sizes[0] = 0
        keep = np.argsort(sizes, kind="stable")[::-1][:255]
        table = np.zeros(n + 1, np.uint8)
        table[np.sort(keep)] = np.arange(1, 256, dtype=np.uint8)
        logger.warning(
            "export_cvat: %s: %d regions; the %d smallest have no instance of their own",
            name,
            n,
            n - 255,
        )
        return table[objects]
    return objects.astype(np.uint8)


class _Sink:
    """Files into a folder or a ZIP, one interface for both."""

    def __init__(self, folder: Path | None, archive: zipfile.ZipFile | None) -> None:
        self.folder, self.archive = folder, archive

    def write(self, rel: str, data: bytes) -> None:
        if self.archive is not None:
            # PNGs are compressed already: stored, not deflated again
            method = zipfile.ZIP_STORED if rel.endswith(".png") else zipfile.ZIP_DEFLATED
            self.archive.writestr(rel, data, compress_type=method)
        else:
            assert self.folder is not None
            target = self.folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def export_cvat(
    results: Any,
    out: str | os.PathLike[str],
    *,
    level: int = 128,
    priority: Sequence[str] = LABEL_PRIORITY,
    images: bool = False,
    overwrite: bool = False,
) -> ExportSummary:
    """Write a CVAT "Segmentation mask 1.1" dataset, as a ZIP or a folder.

    Parameters
    ----------
    results
        Result folders, a folder holding them, ``(file_name, MaskSet[, parts])``
        tuples or ``SegmentationResult`` objects.
    out
        ``*.zip`` writes a ZIP (what CVAT uploads), anything else a folder; either
        is built aside and moved into place when complete.
    level
        Masks are ``>= level``.
    priority
        Where classes overlap, the earliest here wins.
    images
        Also copy the photos into ``JPEGImages/`` (for a new task; CVAT's
        annotation upload does not need them).
    overwrite
        Replace ``out`` if it exists.

    Returns
    -------
    ExportSummary
        ``annotations`` counts the instances (regions) written.

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    FileNotFoundError
        A photo that is not on disk (with ``images``).
    """
    target = Path(out)
    if target.suffix.lower() != ".zip":
        with staged_folder(target, overwrite=overwrite) as stage:
            counts = _write(_Sink(stage, None), results, level, priority, images)
        return ExportSummary(target, *counts)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; choose another output or pass overwrite=True "
            "(--overwrite) to replace it."
        )
    with atomic_open(target, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
        counts = _write(_Sink(None, archive), results, level, priority, images)
    return ExportSummary(target, *counts)


def _write(
    sink: _Sink, results: Any, level: int, priority: Sequence[str], images: bool
) -> tuple[int, int]:
    class_palette = label_palette(CLASSES)
    object_palette = voc_colormap()
    names: list[str] = []
    n_objects = 0
    for item in iter_items(results):
        item.check()
        labels = semantic_labels(item, level, priority)
        objects = _objects(labels, item.name)
        sink.write(f"{CLASS_DIR}/{item.name}.png", _png(labels, class_palette))
        sink.write(f"{OBJECT_DIR}/{item.name}.png", _png(objects, object_palette))
        if images:
            photo = checked_photo(item)
            sink.write(f"{IMAGE_DIR}/{item.name}{photo.suffix.lower()}", photo.read_bytes())
        names.append(item.name)
        n_objects += int(objects.max())
    sink.write(LABELMAP, cvat_labelmap(CLASSES).encode("utf-8"))
    sink.write(SUBSET, "".join(f"{n}\n" for n in names).encode("utf-8"))
    logger.info("export_cvat: wrote %d images, %d instances", len(names), n_objects)
    return len(names), n_objects


# -- reading back ------------------------------------------------------------------

_LABELMAP_LINE = re.compile(r"^([^:]+):(\d+),(\d+),(\d+):[^:]*:[^:]*$")


def read_labelmap(text: str, where: str | os.PathLike[str]) -> dict[tuple[int, int, int], str]:
    """Colour -> class of a ``labelmap.txt``; ``background`` maps to ``""``.

    Raises
    ------
    LabelFormatError
        A line that is not ``name:r,g,b:parts:actions``, a class we do not know, or
        a colour given twice (naming the line).

    Examples
    --------
    >>> read_labelmap("# label:color_rgb:parts:actions\\nbackground:0,0,0::\\ntop:1,2,3::", "x")
    {(0, 0, 0): '', (1, 2, 3): 'tops'}
    """
    table: dict[tuple[int, int, int], str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LABELMAP_LINE.match(line)
        if match is None:
            raise LabelFormatError(
                f"expected 'name:r,g,b:parts:actions', got {line[:60]!r}.", path=where, line=number
            )
        name = match.group(1).strip()
        rgb = tuple(int(match.group(i)) for i in (2, 3, 4))
        if max(rgb) > 255:
            raise LabelFormatError(f"colour {rgb} is not 0..255.", path=where, line=number)
        cls = "" if name.lower() == "background" else canonical_class(name)
        if cls and cls not in CLASSES:
            raise LabelFormatError(
                f"label {name!r} is not one of {', '.join(CLASSES)}; rename it in CVAT to "
                "the class it stands for.",
                path=where,
                line=number,
            )
        key = (rgb[0], rgb[1], rgb[2])
        if key in table:
            raise LabelFormatError(
                f"colour {key} is given to both {table[key] or 'background'!r} and {name!r}.",
                path=where,
                line=number,
            )
        table[key] = cls
    return table


class _Source:
    """Files of a folder or a ZIP, read the same way."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archive: zipfile.ZipFile | None = None
        self.prefix = ""
        if root.is_file():
            try:
                self.archive = zipfile.ZipFile(root)
            except zipfile.BadZipFile as exc:
                raise LabelFormatError(f"not a ZIP file ({exc}).", path=root) from exc
            names = self.archive.namelist()
            if len(names) > 1_000_000:
                raise UnsafeZipError(f"{root} lists {len(names)} entries; refusing it.")
            # the dataset may sit in a top folder inside the ZIP
            hits = [n for n in names if PurePosixPath(n).name == LABELMAP]
            if hits:
                self.prefix = min(hits, key=len)[: -len(LABELMAP)]
            self._names = set(names)
        elif not root.is_dir():
            raise FileNotFoundError(f"No such CVAT dataset: {root}")

    def where(self, rel: str) -> str:
        return f"{self.root}/{self.prefix}{rel}" if self.archive else str(self.root / rel)

    def exists(self, rel: str) -> bool:
        if self.archive is not None:
            return f"{self.prefix}{rel}" in self._names
        return (self.root / rel).is_file()

    def read(self, rel: str) -> bytes:
        if self.archive is not None:
            info = self.archive.getinfo(f"{self.prefix}{rel}")
            if info.file_size > limits.MAX_MASK_BYTES:
                raise UnsafeZipError(f"{self.where(rel)} unpacks to {info.file_size} bytes.")
            return self.archive.read(info)
        return (self.root / rel).read_bytes()

    def listdir(self, folder: str) -> list[str]:
        """Relative paths of the files under ``folder``."""
        if self.archive is not None:
            start = f"{self.prefix}{folder}/"
            return sorted(
                n[len(self.prefix) :]
                for n in self._names
                if n.startswith(start) and not n.endswith("/")
            )
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())


def _decode_png(data: bytes, where: str) -> npt.NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
            if w * h > limits.MAX_PIXELS:
                raise LabelFormatError(f"is {w} x {h} pixels, over the limit.", path=where)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise LabelFormatError(f"is not a readable PNG ({exc}).", path=where) from exc


def _colour_keys(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    a = rgb.astype(np.uint32)
    keys = (a[..., 0] << np.uint32(16)) | (a[..., 1] << np.uint32(8)) | a[..., 2]
    return keys.astype(np.uint32, copy=False)


def _present(labels: npt.NDArray[np.uint8]) -> list[int]:
    """The non-zero values of a label map (a count, not a sort)."""
    counts = np.bincount(labels.reshape(-1), minlength=256)
    return [int(v) for v in np.flatnonzero(counts[1:]) + 1]


def _dense_ids(
    keys: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.intp]]:
    """The distinct values of ``keys`` and each pixel's index among them.

    Found from the starts of runs (far fewer than pixels) and looked up with a binary
    search, instead of sorting every pixel as ``np.unique`` would.
    """
    flat = keys.reshape(-1)
    starts = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]]))
    ids = np.unique(flat[starts])
    return ids, np.searchsorted(ids, flat).reshape(keys.shape)


def _class_labels(
    rgb: npt.NDArray[np.uint8], colours: dict[tuple[int, int, int], str], where: str
) -> npt.NDArray[np.uint8]:
    """RGB class picture -> label map over CLASSES, every colour checked."""
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], np.uint32)
    values = np.array([CLASSES.index(c) + 1 if c else 0 for c in colours.values()], np.uint8)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    pixel = _colour_keys(rgb)
    pos = np.clip(np.searchsorted(keys, pixel), 0, len(keys) - 1)
    known = keys[pos] == pixel
    if not known.all():
        y, x = (int(v[0]) for v in np.nonzero(~known))
        raise LabelFormatError(
            f"colour {tuple(int(c) for c in rgb[y, x])} at (x={x}, y={y}) is not in "
            f"{LABELMAP}; the mask was drawn with labels the label map does not list.",
            path=where,
        )
    return values[pos]


def read_cvat(path: str | os.PathLike[str], *, parts: bool = True) -> Iterator[LabeledItem]:
    """Read a CVAT "Segmentation mask 1.1" export (ZIP or folder) back as masks.

    Parameters
    ----------
    path
        The ZIP CVAT gave (``Export annotations`` -> ``Segmentation mask 1.1``) or
        its unpacked folder.
    parts
        Also give each instance of ``SegmentationObject/`` whose class is a garment
        as a per-garment part.

    Yields
    ------
    LabeledItem
        One per image of ``ImageSets/Segmentation/default.txt`` (or, without it,
        per PNG of ``SegmentationClass/``).

    Raises
    ------
    FileNotFoundError
        No such file or folder.
    LabelFormatError
        No ``labelmap.txt``, a bad or unknown label in it, a listed image without
        its class PNG, a colour the label map does not give, or a class and an
        object PNG (or a photo) of different sizes.
    """
    src = _Source(Path(path))
    if not src.exists(LABELMAP):
        raise LabelFormatError(
            f"has no {LABELMAP}; export the task as 'Segmentation mask 1.1'.", path=src.root
        )
    colours = read_labelmap(src.read(LABELMAP).decode("utf-8", "replace"), src.where(LABELMAP))
    if src.exists(SUBSET):
        names = [n.strip() for n in src.read(SUBSET).decode("utf-8", "replace").splitlines()]
        names = [n for n in names if n]
    else:
        names = [p[len(CLASS_DIR) + 1 : -4] for p in src.listdir(CLASS_DIR) if p.endswith(".png")]
    photos = {
        PurePosixPath(p).with_suffix("").as_posix()[len(IMAGE_DIR) + 1 :]: p
        for p in src.listdir(IMAGE_DIR)
    }
    for number, name in enumerate(names, start=1):
        yield _read_item(src, name, number, colours, photos.get(name), parts)


def _read_item(
    src: _Source,
    name: str,
    number: int,
    colours: dict[tuple[int, int, int], str],
    photo_rel: str | None,
    parts: bool,
) -> LabeledItem:
    class_rel = f"{CLASS_DIR}/{name}.png"
    if not src.exists(class_rel):
        raise LabelFormatError(
            f"lists {name!r} but {class_rel} is missing.", path=src.where(SUBSET), line=number
        )
    labels = _class_labels(
        _decode_png(src.read(class_rel), src.where(class_rel)), colours, src.where(class_rel)
    )
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    photo = None
    if photo_rel is not None and src.archive is None:
        photo = src.root / photo_rel
        w, h = photo_size(photo)
        if (h, w) != shape:
            raise LabelFormatError(
                f"is {w} x {h} but {class_rel} is {shape[1]} x {shape[0]}.", path=photo
            )
    instances = _instances(src, name, labels) if parts else []
    if not instances:
        instances = [(CLASSES[v - 1], labels == v) for v in _present(labels)]
    return labeled_item(name, shape, instances, photo, parts=parts)


def _instances(
    src: _Source, name: str, labels: npt.NDArray[np.uint8]
) -> list[tuple[str, npt.NDArray[np.bool_]]]:
    """(class, mask) per object of SegmentationObject/, the class read from the class PNG."""
    rel = f"{OBJECT_DIR}/{name}.png"
    if not src.exists(rel):
        return []
    rgb = _decode_png(src.read(rel), src.where(rel))
    if rgb.shape[:2] != labels.shape:
        raise LabelFormatError(
            f"is {rgb.shape[1]} x {rgb.shape[0]} but {CLASS_DIR}/{name}.png is "
            f"{labels.shape[1]} x {labels.shape[0]}; both must have the image's size.",
            path=src.where(rel),
        )
    ids, inverse = _dense_ids(_colour_keys(rgb))
    # the class of every object at once: a table of (object, class) pixel counts
    n = len(CLASSES) + 1
    table = np.bincount((inverse.astype(np.int64) * n + labels).reshape(-1), minlength=ids.size * n)
    table = table.reshape(ids.size, n)
    table[:, 0] = 0  # an object drawn over background pixels still has its class
    out = []
    for i, key in enumerate(ids):
        if key == 0 or not table[i].any():
            continue  # background, or an object over background only
        value = int(table[i].argmax())
        out.append((CLASSES[value - 1], (inverse == i) & (labels == value)))
    # pixels of a class that no object covers still belong to the class
    covered = np.zeros(labels.shape, bool)
    for _, m in out:
        covered |= m
    rest = labels * ~covered
    out += [(CLASSES[v - 1], rest == v) for v in _present(rest)]
    return out
