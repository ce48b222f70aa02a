"""Corrected labels back into result folders: the import side of the labeling round trip.

A reader of :mod:`clothseg_tools.export` (:data:`LABEL_READERS`: ``coco``, ``cvat``,
``yolo``) yields one :class:`~clothseg_tools.export.LabeledItem` per image; each is
saved as a result folder ``<out>/<name>/`` (masks, parts, ``result.json`` with the
photo as its source), which every command that reads results (stats, tryon, report,
the exports) takes as it takes a segmented one. One manifest line per image goes to
``<out>/manifest-import-labels.jsonl``. A folder already complete is kept unless
``overwrite``: a rerun after an interruption carries on where it stopped.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from clothseg_tools import MaskSet
>>> from clothseg_tools.export import LabeledItem
>>> item = LabeledItem("shop/a", MaskSet({"tops": np.eye(3, dtype=bool)}))
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> summary = save_labeled([item], out, fmt="yolo")
>>> summary.done, (out / "shop" / "a" / "result.json").is_file()
(1, True)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..export import LabeledItem, read_coco, read_cvat, read_yolo
from ..masks import MaskSet
from ..result import RESULT_NAME, SegmentationResult
from .manifest import Manifest, manifest_path
from .runner import sha256_file

__all__ = ["LABEL_READERS", "LabelImportSummary", "import_labels", "save_labeled"]

#: Format name -> reader of a labeling tool's export.
LABEL_READERS: dict[str, Callable[..., Iterator[LabeledItem]]] = {
    "coco": read_coco,
    "cvat": read_cvat,
    "yolo": read_yolo,
}


@dataclass
class LabelImportSummary:
    """What an import wrote.

    Attributes
    ----------
    done : int
        Result folders written.
    skipped : int
        Folders complete from an earlier run, kept.
    folders : list of pathlib.Path
        Every result folder of the import, written or kept.
    manifest : pathlib.Path
        The manifest file.
    """

    done: int = 0
    skipped: int = 0
    folders: list[Path] = field(default_factory=list)
    manifest: Path = Path()


def _folder(out: Path, name: str) -> Path:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"Image name {name!r} would leave the output folder.")
    return out.joinpath(*rel.parts)


def save_labeled(
    items: Iterable[LabeledItem],
    out: str | os.PathLike[str],
    *,
    fmt: str,
    source: str | None = None,
    overwrite: bool = False,
) -> LabelImportSummary:
    """Save imported items as result folders under ``out``.

    Parameters
    ----------
    items
        From a reader of :data:`LABEL_READERS` (or any ``LabeledItem``).
    out
        The results folder.
    fmt
        The format the labels came in (recorded as the result's engine,
        ``labels-<fmt>``).
    source
        The dataset imported (recorded in the manifest).
    overwrite
        Write folders that are complete already (default: keep them).

    Returns
    -------
    LabelImportSummary
    """
    root = Path(out)
    summary = LabelImportSummary(manifest=manifest_path(root, "import-labels"))
    with Manifest(summary.manifest) as manifest:
        for item in items:
            folder = _folder(root, item.name)
            summary.folders.append(folder)
            if not overwrite and (folder / RESULT_NAME).is_file():
                summary.skipped += 1
                continue
            start = time.perf_counter()
            result = SegmentationResult(
                masks=item.masks,
                parts=item.parts if item.parts is not None else MaskSet({}, shape=item.masks.shape),
                source=None if item.photo is None else str(Path(item.photo).resolve()),
                engine=f"labels-{fmt}",
                notes=(f"labels imported from {fmt}",),
            )
            result.save(folder, reproducible=True)
            manifest.append(
                {
                    "source": f"{source or fmt}#{item.name}",
                    "key": item.name,
                    "status": "done",
                    "error": None,
                    "seconds": round(time.perf_counter() - start, 4),
                    "checksums": {f"{item.name}/{RESULT_NAME}": sha256_file(folder / RESULT_NAME)},
                    "command": "import-labels",
                    "options": {"format": fmt},
                }
            )
            summary.done += 1
    return summary


def import_labels(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str,
    overwrite: bool = False,
    **options: Any,
) -> LabelImportSummary:
    """Read a labeling tool's export with the reader of ``fmt`` and save result folders.

    Parameters
    ----------
    path
        The export: a COCO JSON file, a CVAT ZIP or folder, a YOLO dataset folder.
    out
        The results folder.
    fmt
        ``"coco"``, ``"cvat"`` or ``"yolo"``.
    overwrite
        Rewrite folders complete from an earlier run.
    **options
        Passed to the reader (``parts=False``; ``images=`` for COCO; ``names=`` for
        YOLO).

    Raises
    ------
    ValueError
        Unknown ``fmt``.
    LabelFormatError
        What the reader refuses, naming the file and line.
    """
    reader = LABEL_READERS.get(fmt)
    if reader is None:
        raise ValueError(f"Unknown label format {fmt!r}; choose from {', '.join(LABEL_READERS)}.")
    return save_labeled(
        reader(path, **options), out, fmt=fmt, source=os.fspath(path), overwrite=overwrite
    )
