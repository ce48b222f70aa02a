"""``SegmentationResult``: one segmented image, and the folder it is saved as.

The client (:mod:`clothseg_tools.api`), the CLI and the exports share one on-disk layout::

    <folder>/masks.json + <class>.png          MaskSet.save(folder)
    <folder>/parts/masks.json + <part>.png     only when there are parts
    <folder>/parsing.png                       the fine label map (arms, legs, neck...)
                                               when the engine made one; its label set
                                               is in result.json
    <folder>/result.json                       written last: its presence = complete
                                               (also the options, notes and, from
                                               engines with a pose, its keypoints)

Every file is written atomically and ``result.json`` holds the SHA-256 of every file the
result wrote, so a resumed batch can trust a folder that has a ``result.json`` and
:meth:`SegmentationResult.load` can tell a damaged folder from a good one.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import atomic_write_json
from .classes import classes_for_type
from .contract import check_options
from .errors import MaskDecodeError
from .labelsets import LABELSETS, LabelSet
from .masks import INDEX_NAME, MaskSet
from .parsing import Parsing
from .task import Task

if TYPE_CHECKING:
    from .engines.base import Engine

__all__ = [
    "PARSING_NAME",
    "PARTS_DIR",
    "RESULT_FORMAT",
    "RESULT_NAME",
    "SegmentationResult",
    "segment_with_engine",
]

#: Name of the file that marks a complete result folder.
RESULT_NAME = "result.json"
#: Sub-folder of the per-garment instance masks.
PARTS_DIR = "parts"
#: The index PNG of the fine parsing, when there is one.
PARSING_NAME = "parsing.png"
#: ``format`` field of ``result.json``.
RESULT_FORMAT = "clothseg-result"
_VERSION = 1

#: Placeholder default of ``SegmentationResult.parts``; replaced by an empty set of the
#: masks' shape in ``__post_init__``.
_NO_PARTS = MaskSet({}, shape=(0, 0))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _maskset_files(folder: Path, prefix: str = "") -> list[str]:
    """Files (relative to the result folder) a saved MaskSet consists of, index last."""
    index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    return [prefix + f for f in index.get("files", {}).values()] + [prefix + INDEX_NAME]


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
            from .errors import ShapeMismatchError

            raise ShapeMismatchError(
                f"parts have shape {self.parts.shape} but masks have shape {self.masks.shape}; "
                "both must be at the source image's size."
            )
        self.notes = tuple(self.notes)
        if self.parsing is not None and self.parsing.shape != self.masks.shape:
            from .errors import ShapeMismatchError

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

    def to_json(self, checksums: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The content of ``result.json`` (see the module docstring)."""
        h, w = self.masks.shape
        return {
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

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the masks, the parts and ``result.json`` into ``folder``.

        Every file is written atomically; ``result.json`` is removed first and written
        last, so a folder that has one is complete even if an earlier save crashed.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (out / RESULT_NAME).unlink()
        self.masks.save(out)
        files = _maskset_files(out)
        if len(self.parts):
            self.parts.save(out / PARTS_DIR)
            files += _maskset_files(out / PARTS_DIR, prefix=f"{PARTS_DIR}/")
        if self.parsing is not None:
            self.parsing.save(out / PARSING_NAME)
            files.append(PARSING_NAME)
        checksums = {name: _sha256(out / name) for name in files}
        atomic_write_json(out / RESULT_NAME, self.to_json(checksums))
        return out

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
        """
        src = Path(folder)
        meta_path = src / RESULT_NAME
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
                if not path.is_file() or _sha256(path) != expected:
                    raise MaskDecodeError(
                        f"{path} is missing or does not match the checksum in {RESULT_NAME}; "
                        "the folder was changed or damaged. Segment the image again."
                    )
        masks = MaskSet.load(src)
        parts = (
            MaskSet.load(src / PARTS_DIR) if meta.get("parts") else MaskSet({}, shape=masks.shape)
        )
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
    from .inputs import decode_input_image, load_input

    opts = check_options(
        class_type=class_type, output_type=output_type, detail_mode=detail_mode, quality=quality
    )
    start = time.perf_counter()
    data, filename = load_input(image)
    pixels = decode_input_image(data)
    decoded = time.perf_counter()
    out = engine.segment(
        pixels,
        classes=classes_for_type(opts["class_type"]),
        detail_mode=opts["detail_mode"],
        quality=opts["quality"],
        image_bytes=data,
    )
    done = time.perf_counter()
    shape = out.masks.shape
    masks = out.masks if opts["output_type"] in (1, 3) else MaskSet({}, shape=shape)
    parts = MaskSet(out.parts if opts["output_type"] in (2, 3) else {}, shape=shape)
    if source is None:
        source = str(image) if isinstance(image, (str, os.PathLike)) else filename
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
