"""``SegmentationResult``: one segmented image, and the folder it is saved as.

This module alone writes, reads, verifies and finds result folders; the client, the
batch runner, the exports and the report go through it. The layout (file names in
:data:`LAYOUT`)::

    <folder>/masks.json + <class>.png          MaskSet.save(folder)
    <folder>/parts/masks.json + <part>.png     only when there are parts
    <folder>/parsing.png                       the fine label map (arms, legs, neck...)
                                               when the engine made one; its label set
                                               is in result.json
    <folder>/result.json                       written last: its presence = complete
                                               (also the options, notes and, from
                                               engines with a pose, its keypoints)
    <folder>/.saving                           only while a save runs

Every file is written atomically and ``result.json`` holds the SHA-256 of every file the
result wrote, so a resumed batch can trust a folder that has a ``result.json`` and
:meth:`SegmentationResult.load` can tell a damaged folder from a good one. A folder
written by :meth:`MaskSet.save <clothseg_tools.masks.MaskSet.save>` alone (no
``result.json``, no save under way) is a result folder too: its masks, no metadata.

``result.json`` also records the seconds each stage took (``timings``) and the
service's task, unless the result is saved ``reproducible``: the batch commands save so,
and keep timings and task in their manifest line, so two runs of the same batch write
byte-identical folders.

Examples
--------
>>> import tempfile
>>> import numpy as np
>>> from clothseg_tools import MaskSet
>>> masks = MaskSet({"tops": np.eye(4, dtype=bool)})
>>> res = SegmentationResult(masks, source="photo.jpg", engine="replay")
>>> folder = res.save(tempfile.mkdtemp())
>>> sorted(p.name for p in folder.iterdir())
['masks.json', 'result.json', 'tops.png']
>>> SegmentationResult.load(folder).masks == masks
True
>>> first = res.save(tempfile.mkdtemp(), reproducible=True).files["result.json"]
>>> res.timings["total"] = 0.31   # measured: differs from run to run
>>> first == res.save(tempfile.mkdtemp(), reproducible=True).files["result.json"]
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import WrittenFolder, atomic_write_bytes, json_bytes, sha256_file, write_hashed
from .classes import classes_for_type
from .contract import check_options
from .errors import MaskDecodeError, ShapeMismatchError
from .inputs import open_photo
from .labelsets import LABELSETS, LabelSet
from .masks import INDEX_NAME, MaskSet
from .parsing import Parsing
from .task import Task

if TYPE_CHECKING:
    from .engines.base import Engine

__all__ = [
    "LAYOUT",
    "PARSING_NAME",
    "PARTS_DIR",
    "RESULT_FORMAT",
    "RESULT_NAME",
    "SegmentationResult",
    "find_results",
    "folder_fingerprint",
    "is_result_folder",
    "segment_with_engine",
]

#: The files and folders of a result folder, by role: the one table of their names.
#: A new kind of file in a result folder gets a row here.
LAYOUT: dict[str, str] = {
    "result": "result.json",  # metadata and checksums; written last, present = complete
    "masks": INDEX_NAME,  # index of the class masks (a MaskSet folder)
    "parts": "parts",  # MaskSet sub-folder of the per-garment parts
    "parsing": "parsing.png",  # the fine parsing's index PNG (its label set in result.json)
    "saving": ".saving",  # present while a save runs: the folder is not a result yet
}
#: Name of the file that marks a complete result folder.
RESULT_NAME = LAYOUT["result"]
#: Sub-folder of the per-garment instance masks.
PARTS_DIR = LAYOUT["parts"]
#: The index PNG of the fine parsing, when there is one.
PARSING_NAME = LAYOUT["parsing"]
#: ``format`` field of ``result.json``.
RESULT_FORMAT = "clothseg-result"
_VERSION = 1

#: Fields of ``result.json`` that describe a run, not its result: left out of a
#: reproducible save (see ``SegmentationResult.save``).
_RUN_FIELDS = ("timings", "task")

#: Placeholder default of ``SegmentationResult.parts``; replaced by an empty set of the
#: masks' shape in ``__post_init__``.
_NO_PARTS = MaskSet({}, shape=(0, 0))


@dataclasses.dataclass
class SegmentationResult:
    """The masks of one image and how they were made.

    Attributes
    ----------
    masks : MaskSet
        One soft mask per class, at the source image's size.
    parts : MaskSet
        Per-garment instance masks (``tops_0``, ``dress_1`` ...); an empty set of the
        same shape when there are none (the default; ``None`` is taken to mean that too).
    task : Task or None
        The service's task (``None`` for an in-process engine).
    source : str or None
        Where the image came from (path, URL or name); never a signed query string.
    options : dict
        The options the image was segmented with.
    timings : dict of str to float
        Seconds spent per stage (``create``, ``wait``, ``download``, ``total`` ...).
    notes : tuple of str
        Remarks a user should see (from the engine or the client).
    engine : str or None
        The engine's name, when known.
    keypoints : dict of str to (float, float), or None
        Pose keypoints of the person, ``(x, y)`` in the image's pixels by MediaPipe /
        COCO name, when the engine gave them (the local engine does); try-on masks
        read them.
    parsing : Parsing or None
        The fine label map with its label set, when the engine made one (the onnx
        engine, ``clothseg import``), at the image's size.
    """

    masks: MaskSet
    parts: MaskSet = dataclasses.field(default_factory=lambda: _NO_PARTS)
    task: Task | None = None
    source: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    engine: str | None = None
    keypoints: dict[str, tuple[float, float]] | None = None
    parsing: Parsing | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.masks, MaskSet):
            self.masks = MaskSet(self.masks)
        parts: Any = self.parts
        if parts is None or parts is _NO_PARTS:  # None is accepted too: "no parts"
            self.parts = MaskSet({}, shape=self.masks.shape)
        elif not isinstance(parts, MaskSet):
            self.parts = MaskSet(parts, shape=self.masks.shape)
        if len(self.parts) and self.parts.shape != self.masks.shape:
            raise ShapeMismatchError(
                f"parts have shape {self.parts.shape} but masks have shape {self.masks.shape}; "
                "both must be at the source image's size."
            )
        self.notes = tuple(self.notes)
        if self.parsing is not None and self.parsing.shape != self.masks.shape:
            raise ShapeMismatchError(
                f"parsing has shape {self.parsing.shape} but masks have shape "
                f"{self.masks.shape}; both must be at the source image's size."
            )
        if self.keypoints is not None:
            self.keypoints = _checked_keypoints(self.keypoints)

    @property
    def shape(self) -> tuple[int, int]:
        """The (H, W) size of the masks (the source image's size)."""
        return self.masks.shape

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes of :attr:`masks`, in order."""
        return self.masks.classes

    # -- saving ---------------------------------------------------------------------

    def to_json(
        self, checksums: Mapping[str, str] | None = None, *, reproducible: bool = False
    ) -> dict[str, Any]:
        """The content of ``result.json`` (see the module docstring).

        With ``reproducible``, without ``timings`` and ``task``: see :meth:`save`.
        """
        h, w = self.masks.shape
        doc: dict[str, Any] = {
            "format": RESULT_FORMAT,
            "version": _VERSION,
            "source": self.source,
            "image_size": [w, h],
            "classes": list(self.masks.classes),
            "parts": list(self.parts.classes),
            "options": dict(self.options),
            "timings": {k: float(v) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "engine": self.engine,
            "keypoints": (
                None
                if self.keypoints is None
                else {name: [x, y] for name, (x, y) in self.keypoints.items()}
            ),
            "parsing": (
                None
                if self.parsing is None
                else {"file": PARSING_NAME, "labelset": self.parsing.labelset.to_json()}
            ),
            "task": None if self.task is None else self.task.to_dict(),
            "checksums": dict(checksums or {}),
        }
        if reproducible:
            for measured in _RUN_FIELDS:
                del doc[measured]
        return doc

    def save(self, folder: str | os.PathLike[str], *, reproducible: bool = False) -> WrittenFolder:
        """Write the masks, the parts and ``result.json`` into ``folder``.

        Every file is written atomically; ``result.json`` is removed first and written
        last, so a folder that has one is complete even if an earlier save crashed
        (whose temporary files are removed).

        Parameters
        ----------
        folder
            The result folder (created when missing).
        reproducible
            Leave out of ``result.json`` what describes the run rather than the result:
            the measured ``timings`` and the service's ``task`` (its id, times and
            links). The folder's bytes then depend on the result alone, so two runs
            that make the same result write the same folder. The batch commands save
            this way and record both in their manifest line instead.

        Returns
        -------
        WrittenFolder
            The folder (a :class:`pathlib.Path`). Its ``files`` map every file written,
            ``result.json`` included, to its SHA-256, hashed while writing.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        _clear_leftovers(out)
        saving = out / LAYOUT["saving"]
        with contextlib.suppress(FileNotFoundError):
            (out / RESULT_NAME).unlink()
        atomic_write_bytes(saving, b"")
        files = dict(self.masks.save(out).files)
        if len(self.parts):
            written = self.parts.save(out / PARTS_DIR).files
            files.update((f"{PARTS_DIR}/{name}", sha) for name, sha in written.items())
        if self.parsing is not None:
            self.parsing.save(out / PARSING_NAME)
            files[PARSING_NAME] = sha256_file(out / PARSING_NAME)
        meta = self.to_json(files, reproducible=reproducible)
        files[RESULT_NAME] = write_hashed(out / RESULT_NAME, json_bytes(meta))
        saving.unlink()
        return WrittenFolder.of(out, files)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, verify: bool = True) -> SegmentationResult:
        """Read a folder written by :meth:`save`.

        Parameters
        ----------
        folder
            The result folder.
        verify
            Check every file against the SHA-256 recorded in ``result.json``.

        Raises
        ------
        FileNotFoundError
            No ``result.json``: the folder is not a result, or its save did not finish.
        MaskDecodeError
            ``result.json`` is invalid, or a file's checksum does not match.
        ShapeMismatchError
            ``result.json`` records another image size than the masks have.

        Notes
        -----
        A folder written by ``MaskSet.save`` alone loads as a result with its masks,
        its ``parts/`` if there is one, and no metadata.
        """
        src = Path(folder)
        meta_path = src / RESULT_NAME
        if not meta_path.is_file() and is_result_folder(src):
            return cls._from_maskset_folder(src)
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{src} has no {RESULT_NAME}: it is not a saved result, or saving it did not "
                "finish. Segment the image again."
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != RESULT_FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, not {RESULT_FORMAT!r}")
            if int(meta.get("version", 0)) > _VERSION:
                raise ValueError(
                    f"version {meta['version']} is newer than this library reads ({_VERSION}); "
                    "upgrade clothseg_tools"
                )
            checksums = dict(meta.get("checksums") or {})
            task = None if meta.get("task") is None else Task.from_data(meta["task"])
            keypoints = meta.get("keypoints")
            if keypoints is not None:
                keypoints = _checked_keypoints(keypoints)
            labelset = _stored_labelset(meta.get("parsing"))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise MaskDecodeError(f"{meta_path} is not a valid result file ({exc}).") from exc
        if verify:
            for name, expected in checksums.items():
                path = src / name
                if not path.is_file() or sha256_file(path) != expected:
                    raise MaskDecodeError(
                        f"{path} is missing or does not match the checksum in {RESULT_NAME}; "
                        "the folder was changed or damaged. Segment the image again."
                    )
        masks = MaskSet.load(src)
        _check_image_size(meta.get("image_size"), masks.shape, meta_path)
        # "parts" lists them; a result.json written by hand may leave it out
        has_parts = meta.get("parts") if "parts" in meta else (src / PARTS_DIR).is_dir()
        parts = MaskSet.load(src / PARTS_DIR) if has_parts else MaskSet({}, shape=masks.shape)
        parsing = None if labelset is None else Parsing.load(src / PARSING_NAME, labelset)
        return cls(
            masks=masks,
            parts=parts,
            task=task,
            source=meta.get("source"),
            options=dict(meta.get("options") or {}),
            timings={k: float(v) for k, v in (meta.get("timings") or {}).items()},
            notes=tuple(meta.get("notes") or ()),
            engine=meta.get("engine"),
            keypoints=keypoints,
            parsing=parsing,
        )

    @classmethod
    def _from_maskset_folder(cls, src: Path) -> SegmentationResult:
        masks = MaskSet.load(src)
        parts_dir = src / PARTS_DIR
        has_parts = (parts_dir / INDEX_NAME).is_file()
        parts = MaskSet.load(parts_dir) if has_parts else MaskSet({}, shape=masks.shape)
        return cls(masks=masks, parts=parts)


def _clear_leftovers(folder: Path) -> None:
    """Remove temporary files a killed save left mid-write (they are never outputs)."""
    for sub in (folder, folder / PARTS_DIR):
        with contextlib.suppress(OSError):
            for entry in sub.iterdir():
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        entry.unlink()


def _check_image_size(size: Any, shape: tuple[int, int], meta_path: Path) -> None:
    if not size:
        return
    try:
        wh = (int(size[0]), int(size[1]))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MaskDecodeError(f"{meta_path} is not a valid result file ({exc}).") from exc
    h, w = shape
    if wh != (w, h):
        raise ShapeMismatchError(
            f"{meta_path.parent.name}: {RESULT_NAME} records image size {list(wh)} "
            f"(width, height) but the masks are {w} x {h}; the folder is inconsistent."
        )


# -- finding result folders ------------------------------------------------------------


def is_result_folder(folder: str | os.PathLike[str]) -> bool:
    """True for a folder holding a saved result.

    That is a folder with ``result.json``, or one written by ``MaskSet.save`` (its
    ``masks.json``) where no save is under way.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> d = tempfile.mkdtemp()
    >>> is_result_folder(d)
    False
    >>> _ = MaskSet({"tops": np.eye(2, dtype=bool)}).save(d)
    >>> is_result_folder(d)
    True
    """
    here = Path(folder)
    if (here / RESULT_NAME).is_file():
        return True
    return (here / INDEX_NAME).is_file() and not (here / LAYOUT["saving"]).exists()


def folder_fingerprint(folder: str | os.PathLike[str]) -> str | None:
    """A checksum that changes whenever the result in ``folder`` is saved again.

    The SHA-256 of ``result.json`` (which lists every file's checksum), or of
    ``masks.json`` for a folder written by ``MaskSet.save``; ``None`` when there is
    neither.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> d = tempfile.mkdtemp()
    >>> folder_fingerprint(d) is None
    True
    >>> saved = SegmentationResult(MaskSet({"tops": np.eye(2, dtype=bool)})).save(d)
    >>> folder_fingerprint(d) == saved.files[RESULT_NAME]
    True
    """
    here = Path(folder)
    for name in (RESULT_NAME, INDEX_NAME):
        with contextlib.suppress(OSError):
            return sha256_file(here / name)
    return None


def find_results(
    root: str | os.PathLike[str], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Every result folder at or below ``root``, at any depth, sorted by relative path.

    Folders whose names start with ``.`` are not searched, nor the ``parts`` folder of
    a result, nor the folders in ``exclude``.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> ms = MaskSet({"tops": np.eye(2, dtype=bool)})
    >>> _ = SegmentationResult(ms).save(root / "shoot" / "a")
    >>> _ = ms.save(root / "b")
    >>> [p.relative_to(root).as_posix() for p in find_results(root)]
    ['b', 'shoot/a']
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"No such result folder: {base}")
    skip = {Path(p).resolve() for p in exclude}
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(base):
        here = Path(dirpath)
        is_result = is_result_folder(here)
        if is_result:
            found.append(here)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and not (is_result and d == PARTS_DIR)
            and not (skip and (here / d).resolve() in skip)
        )
    return sorted(found, key=lambda p: p.relative_to(base).as_posix())


def _stored_labelset(entry: Any) -> LabelSet | None:
    """The label set ``result.json`` records for ``parsing.png`` (``None``: no parsing).

    The registered set of that name when its labels are the same, else the set exactly
    as recorded, so a folder made with a user's own set reads back anywhere.
    """
    if entry is None:
        return None
    stored = entry["labelset"]
    name, labels = str(stored["name"]), tuple(str(n) for n in stored["labels"])
    known = LABELSETS.get(name)
    if known is not None and known.labels == labels:
        return known
    classes = {str(k): tuple(v) for k, v in dict(stored["classes"]).items()}
    return LabelSet(name, labels, classes)


def _checked_keypoints(value: Any) -> dict[str, tuple[float, float]]:
    """``{name: (x, y)}`` with float coordinates, or ValueError saying what is wrong.

    Examples
    --------
    >>> _checked_keypoints({"nose": [3, 4.5]})
    {'nose': (3.0, 4.5)}
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"keypoints must map names to (x, y), got {type(value).__name__}")
    out: dict[str, tuple[float, float]] = {}
    for name, point in value.items():
        x, y = point  # exactly two numbers
        out[str(name)] = (float(x), float(y))
    return out


def segment_with_engine(
    engine: Engine,
    image: Any,
    *,
    class_type: int = 1,
    output_type: int = 1,
    detail_mode: int = 1,
    quality: int = 1,
    source: str | None = None,
) -> SegmentationResult:
    """Segment one image in-process with ``engine``, as the service would.

    The image goes through the same checks as an upload (format, 20 MB, 4096 x 4096),
    so an in-process run refuses what the service refuses. Like the service,
    ``output_type=1`` gives class masks only, ``2`` per-garment parts only (the class
    mask set is then empty) and ``3`` both.

    Parameters
    ----------
    engine
        A :class:`~clothseg_tools.engines.base.Engine`.
    image
        Path, bytes, binary file object, PIL image or (H, W, 3) uint8 array.
    class_type, output_type, detail_mode, quality
        The API's options (see API.md).
    source
        Name to record as the result's source (default: the path or file name).

    Returns
    -------
    SegmentationResult

    Raises
    ------
    InputError
        The image breaks the service's limits (typed subclass).
    InvalidRequestError
        An option outside its documented values.
    EngineError
        The engine failed.

    Examples
    --------
    >>> import numpy as np
    >>> from clothseg_tools.engines.base import Engine, EngineOutput
    >>> from clothseg_tools import MaskSet
    >>> class Half(Engine):
    ...     name = "half"
    ...     def _segment(self, image, *, classes, **_):
    ...         h, w = image.shape[:2]
    ...         m = np.zeros((h, w), np.uint8); m[: h // 2] = 255
    ...         return EngineOutput(MaskSet({c: m for c in classes}), {"tops_0": m})
    >>> res = segment_with_engine(Half(), np.zeros((4, 6, 3), np.uint8), output_type=3)
    >>> res.masks.classes, res.parts.classes, res.shape
    (('clothes', 'tops', 'bottoms', 'dress', 'acc'), ('tops_0',), (4, 6))
    """
    opts = check_options(
        class_type=class_type, output_type=output_type, detail_mode=detail_mode, quality=quality
    )
    start = time.perf_counter()
    # checked and decoded once; an array is encoded only for an engine keyed on bytes
    photo = open_photo(image, need_bytes=bool(getattr(engine, "keys_on_bytes", False)))
    decoded = time.perf_counter()
    out = engine.segment(
        photo.pixels,
        classes=classes_for_type(opts["class_type"]),
        detail_mode=opts["detail_mode"],
        quality=opts["quality"],
        image_bytes=photo.data,
    )
    done = time.perf_counter()
    shape = out.masks.shape
    masks = out.masks if opts["output_type"] in (1, 3) else MaskSet({}, shape=shape)
    parts = MaskSet(out.parts if opts["output_type"] in (2, 3) else {}, shape=shape)
    if source is None:
        source = str(image) if isinstance(image, (str, os.PathLike)) else photo.filename
    return SegmentationResult(
        masks=masks,
        parts=parts,
        task=None,
        source=source,
        options=opts,
        timings={"decode": decoded - start, "segment": done - decoded, "total": done - start},
        notes=tuple(out.notes),
        engine=getattr(engine, "name", None) or type(engine).__name__,
        keypoints=out.keypoints,
        parsing=out.parsing,
    )
