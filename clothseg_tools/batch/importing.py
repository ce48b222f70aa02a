"""``clothseg import``: masks made elsewhere (parsing maps, labeling exports) into result folders.

A *reader* turns a source (a folder of parsing maps, an export file) into
:class:`ImportItem` s: the item's relative name (its result folder), where it comes from,
a function that reads its masks (a :class:`~clothseg_tools.Parsing` or a
:class:`~clothseg_tools.MaskSet`) when the item runs, and its photo when the source
knows it. The driver matches photos the reader left out by relative path, then by stem,
in ``--images``, and writes each item as the result folder ``segment`` writes
(``SegmentationResult.save``: atomic files, checksums, ``result.json`` last), with a
manifest, so that a rerun resumes and every other command (stats, coco, report, cutout,
tryon) reads the output.

Readers are registered by format name, as a callable or a lazily imported
``"module:attr"`` string; ``parsing`` (index PNGs in SCHP / CIHP / ATR dataset style) is
built in.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from clothseg_tools import Parsing
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> Parsing(np.full((4, 6), 5, np.uint8), "lip").save(root / "maps" / "a.png")
>>> summary = import_batch(root / "maps", root / "results", labels="lip")
>>> folder = root / "results" / "a"
>>> summary.done, (folder / "parsing.png").is_file(), (folder / "result.json").is_file()
(1, True, True)
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import limits
from ..classes import CLASSES
from ..errors import ConfigurationError, ShapeMismatchError
from ..labelsets import LabelSet, get_labelset
from ..masks import MaskSet
from ..parsing import Parsing
from ..result import SegmentationResult
from .discover import BatchItem
from .runner import BatchOptions, BatchSummary, ItemOutput, Job, Progress, run_job

__all__ = [
    "DEFAULT_FORMAT",
    "ImportItem",
    "PhotoIndex",
    "available_formats",
    "import_batch",
    "import_job",
    "read_parsing_dir",
    "register_reader",
]

#: The format ``clothseg import`` reads when ``--format`` is not given.
DEFAULT_FORMAT = "parsing"
#: What the import writes as the result's engine.
IMPORT_ENGINE = "import"
#: Parsing map files a ``parsing`` folder is searched for.
MAP_EXTENSIONS = frozenset({".png", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class ImportItem:
    """One image's masks from an outside source.

    Attributes
    ----------
    name : str
        ``/``-separated name relative to the source, without extension: the result
        folder under the output, and the key photos are matched by.
    source : str
        The file (or ``file#entry``) the masks come from; names the item in the
        manifest and in error messages.
    read : callable
        ``read() -> Parsing | MaskSet``, called when the item runs (in a worker thread),
        so a large source is never held in memory all at once.
    photo : pathlib.Path or None
        The photo the masks belong to, when the source knows it; otherwise the driver
        looks for it in ``images``.
    """

    name: str
    source: str
    read: Callable[[], Parsing | MaskSet] = field(compare=False, repr=False)
    photo: Path | None = None


#: ``reader(source, *, labels, images) -> iterable of ImportItem``.
Reader = Callable[..., Iterable[ImportItem]]

_READERS: dict[str, Reader | str] = {
    "parsing": "clothseg_tools.batch.importing:read_parsing_dir",
}


def register_reader(name: str, reader: Reader | str) -> None:
    """Make ``reader`` (a callable or ``"module:attr"``) the reader of format ``name``.

    A reader is called as ``reader(source, labels=LabelSet | None, images=Path | None)``
    and yields :class:`ImportItem` s; it raises a ``ClothsegError`` for a source it
    cannot read as a whole (items that fail alone fail in the manifest).

    Examples
    --------
    >>> register_reader("parsing", "clothseg_tools.batch.importing:read_parsing_dir")
    >>> "parsing" in available_formats()
    True
    """
    _READERS[name] = reader


def available_formats() -> tuple[str, ...]:
    """The format names :func:`import_batch` reads."""
    return tuple(_READERS)


def _reader(fmt: str) -> Reader:
    try:
        reader = _READERS[fmt]
    except KeyError:
        raise ConfigurationError(
            f"Unknown import format {fmt!r}; choose one of {', '.join(_READERS)}."
        ) from None
    if isinstance(reader, str):
        module, _, attr = reader.partition(":")
        reader = getattr(importlib.import_module(module), attr)
    return reader


# -- the parsing-map reader -----------------------------------------------------------------


def _visible_files(root: Path, extensions: Iterable[str]) -> Iterator[Path]:
    """Files under ``root`` with one of ``extensions``, hidden ones left out, sorted."""
    wanted = {e.lower() for e in extensions}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in wanted:
                yield Path(dirpath) / name


def read_parsing_dir(
    source: str | os.PathLike[str],
    *,
    labels: LabelSet | str | None = None,
    images: str | os.PathLike[str] | None = None,
) -> Iterator[ImportItem]:
    """Items of a folder of parsing maps (index PNGs), searched recursively.

    Each map ``sub/a.png`` is the item ``sub/a``; its values are indices of ``labels``
    (palette or grey, 8 or 16 bit; see :meth:`Parsing.load`).

    Raises
    ------
    ConfigurationError
        No label set given, or ``source`` is not a folder of maps.
    """
    del images  # photos are matched by the driver
    if labels is None:
        raise ConfigurationError(
            "Parsing maps need their label set: pass --labels (atr, ootd, lip, cihp, "
            "pascal_person_part, fashn, or a .json file), labels= in Python."
        )
    labelset = get_labelset(labels)
    root = Path(source)
    if root.is_file() and root.suffix.lower() in MAP_EXTENSIONS:
        files, root = [root], root.parent
    elif root.is_dir():
        files = list(_visible_files(root, MAP_EXTENSIONS))
    else:
        raise ConfigurationError(
            f"{root} is not a folder of parsing maps (or one map); pass the folder that holds "
            "the index PNGs."
        )
    for path in files:
        yield ImportItem(
            name=path.relative_to(root).with_suffix("").as_posix(),
            source=str(path.resolve()),
            read=functools.partial(Parsing.load, path, labelset),
        )


# -- photos ------------------------------------------------------------------------------------


class PhotoIndex:
    """The photos of a folder, found by an item's relative name, then by its stem.

    ``sub/a`` finds ``sub/a.jpg`` (any supported extension); failing that, the one photo
    named ``a.*`` anywhere in the folder. A stem shared by several photos in other
    folders matches none of them (the wrong photo would be worse than none).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "x").mkdir(); _ = (d / "x" / "a.jpg").write_bytes(b"")
    >>> PhotoIndex(d).find("a") == d / "x" / "a.jpg", PhotoIndex(d).find("b")
    (True, None)
    """

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self.folder = None if folder is None else Path(folder)
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, list[Path]] = {}
        if self.folder is None:
            return
        if not self.folder.is_dir():
            raise ConfigurationError(f"The photo folder {self.folder} does not exist.")
        for path in _visible_files(self.folder, limits.INPUT_EXTENSIONS):
            rel = path.relative_to(self.folder).with_suffix("").as_posix()
            self._by_name.setdefault(rel, path)
            self._by_stem.setdefault(path.stem, []).append(path)

    def find(self, name: str) -> Path | None:
        """The photo of the item ``name``, or ``None``."""
        if name in self._by_name:
            return self._by_name[name]
        same_stem = self._by_stem.get(name.rsplit("/", 1)[-1], [])
        return same_stem[0] if len(same_stem) == 1 else None


def _photo_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    return h, w


# -- the job -------------------------------------------------------------------------------------


def _to_result(item: ImportItem, photo: Path | None, fmt: str) -> SegmentationResult:
    masks_or_parsing = item.read()
    if isinstance(masks_or_parsing, Parsing):
        parsing: Parsing | None = masks_or_parsing
        masks = masks_or_parsing.to_maskset(CLASSES)
    else:
        parsing, masks = None, masks_or_parsing
    notes: tuple[str, ...] = ()
    if photo is not None:
        size = _photo_size(photo)
        if size != masks.shape:
            raise ShapeMismatchError(
                f"{item.source} is {masks.shape[1]} x {masks.shape[0]} pixels but its photo "
                f"{photo} is {size[1]} x {size[0]}; pass --images with the photos the maps "
                "were made from (nothing is resized)."
            )
    else:
        notes = ("no photo found: cutout, overlay and try-on need one (--images)",)
    options: dict[str, Any] = {"format": fmt}
    if parsing is not None:
        options["labels"] = parsing.labelset.name
    return SegmentationResult(
        masks=masks,
        parsing=parsing,
        source=None if photo is None else str(photo.resolve()),
        options=options,
        notes=notes,
        engine=IMPORT_ENGINE,
    )


def import_job(
    items: Mapping[str, ImportItem],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = DEFAULT_FORMAT,
    photos: PhotoIndex | None = None,
) -> Job:
    """The :class:`Job` writing each item (keyed by its source) as a result folder."""
    out = Path(out_dir)
    index = photos or PhotoIndex(None)

    def work(batch_item: BatchItem) -> ItemOutput:
        t0 = time.perf_counter()
        item = items[batch_item.source]
        photo = item.photo or index.find(item.name)
        result = _to_result(item, photo, fmt)
        t1 = time.perf_counter()
        # as segment saves: the same folder every run (the timings are in the manifest)
        folder = result.save(out / batch_item.key, reproducible=True)
        checksums = {f"{batch_item.key}/{name}": sha for name, sha in folder.files.items()}
        return ItemOutput(
            checksums=checksums,
            timings={"read": t1 - t0, "save": time.perf_counter() - t1},
            notes=result.notes,
        )

    def fingerprint(batch_item: BatchItem) -> str | None:
        item = items.get(batch_item.source)
        parts = []
        for path in (batch_item.source.split("#", 1)[0], item and item.photo):
            if path:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        return "/".join(parts) or None

    return Job("import", work, out, options={"format": fmt}, fingerprint=fingerprint)


def import_batch(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = DEFAULT_FORMAT,
    labels: LabelSet | str | None = None,
    images: str | os.PathLike[str] | None = None,
    batch: BatchOptions | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    **settings: Any,
) -> BatchSummary:
    """Turn ``source`` (parsing maps, or another registered format) into result folders.

    Parameters
    ----------
    source
        A folder of parsing maps (``fmt="parsing"``), or what the format's reader reads.
    out_dir
        The results folder: ``out_dir/<name>/`` per item, and the manifest.
    fmt
        The reader's name (:func:`available_formats`).
    labels
        The maps' label set (a name, a ``.json`` path or a LabelSet); required for
        ``parsing``.
    images
        Folder of the photos, matched by relative path, then by stem.
    batch
        How the batch runs (:class:`~clothseg_tools.batch.BatchOptions`: workers,
        resume, shard, executor); default one worker, resuming, on threads.
    progress, stop
        As for every batch (see :func:`~clothseg_tools.batch.runner.run_job`).
    **settings
        :class:`~clothseg_tools.batch.BatchOptions` fields replacing ``batch``'s
        (``workers=4``, ``overwrite=True``, ``shard="1/3"``, ``executor="ray"`` ...).

    Returns
    -------
    BatchSummary

    Raises
    ------
    ConfigurationError
        An unknown format, a missing label set or photo folder, or a source the reader
        cannot read.
    LabelSetError
        An unknown label set (and, per item in the manifest, a map value outside it).
    """
    reader = _reader(fmt)
    labelset = None if labels is None else get_labelset(labels)
    photos = PhotoIndex(images)
    items: dict[str, ImportItem] = {}
    names: dict[str, str] = {}
    work: list[BatchItem] = []
    for item in reader(source, labels=labelset, images=photos.folder):
        if item.name in names:
            raise ConfigurationError(
                f"{names[item.name]} and {item.source} would both become the result folder "
                f"{item.name!r}; rename one of them."
            )
        names[item.name] = item.source
        items[item.source] = item
        work.append(BatchItem(source=item.source, key=item.name))
    job = import_job(items, out_dir, fmt=fmt, photos=photos)
    return run_job(job, work, batch, progress=progress, stop=stop, **settings)
