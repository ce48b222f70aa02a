"""The ``replay`` engine: serves recorded results, keyed by the SHA-256 of the image bytes.

A replay directory holds one record per image. The key is the lower-case hex SHA-256 of
the image file's bytes exactly as they are uploaded, so the same file always finds the
same record and any re-encoding (even lossless) does not. A record is either

``<dir>/<sha>/``
    a :class:`~clothseg_tools.MaskSet` folder (``masks.json`` plus one PNG per class,
    or just ``<class>.png`` files), with an optional ``parts/`` MaskSet folder of
    per-garment instance masks named like ``tops_0``;
``<dir>/<sha>.png``
    a label PNG (8-bit grayscale or palette): pixel value ``i`` is ``CLASSES[i - 1]``,
    ``0`` is background. A label image holds one class per pixel and no parts.

Requested classes the record does not have come back as empty masks (the image has
none of them); recorded classes that were not requested are left out. An image with no
record raises :class:`~clothseg_tools.errors.NoRecordError`, which the server answers
with 422. :func:`record` writes a record, so a real engine's output (or hand-made
masks) can be replayed later, offline and deterministically.

Examples
--------
>>> import tempfile
>>> import numpy as np
>>> from clothseg_tools import MaskSet
>>> from clothseg_tools.engines.replay import ReplayEngine, record
>>> image = np.zeros((4, 6, 3), np.uint8)
>>> tops = np.zeros((4, 6), np.uint8); tops[:2] = 255
>>> folder = tempfile.mkdtemp()
>>> _ = record(folder, b"the uploaded bytes", MaskSet({"tops": tops}))
>>> out = ReplayEngine(folder).segment(image, classes=["tops", "dress"],
...                                    image_bytes=b"the uploaded bytes")
>>> out.masks.classes, int(out.masks["tops"].sum() // 255), int(out.masks["dress"].max())
(('tops', 'dress'), 12, 0)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .. import limits
from ..classes import CLASSES
from ..contract import REPLAY_DIR_ENV
from ..errors import ConfigurationError, EngineError, NoRecordError, ShapeMismatchError
from ..masks import MaskSet
from .base import Engine, EngineOutput

__all__ = ["REPLAY_DIR_ENV", "ReplayEngine", "record", "replay_key"]

logger = logging.getLogger("clothseg_tools")


#: Name of the per-garment sub-folder of a MaskSet record.
PARTS_DIR = "parts"


def replay_key(image_bytes: bytes) -> str:
    """The record key of an image: the lower-case hex SHA-256 of its bytes.

    Examples
    --------
    >>> replay_key(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(image_bytes).hexdigest()


class _Record(NamedTuple):
    masks: MaskSet
    parts: MaskSet | None


class ReplayEngine(Engine):
    """Serve recorded masks for images seen before.

    Parameters
    ----------
    replay_dir
        Folder of records (see the module docstring). Defaults to the
        ``CLOTHSEG_REPLAY_DIR`` environment variable.
    cache_size
        How many decoded records to keep in memory; a server replaying the same few
        images then skips the PNG decoding.

    Raises
    ------
    ConfigurationError
        No folder was given, or it does not exist.

    Notes
    -----
    One instance may be shared by several threads: lookups only read files, and the
    cache is guarded by a lock.
    """

    name = "replay"
    keys_on_bytes = True

    def __init__(
        self, replay_dir: str | os.PathLike[str] | None = None, *, cache_size: int = 64
    ) -> None:
        if replay_dir is None:
            replay_dir = os.environ.get(REPLAY_DIR_ENV) or None
        if replay_dir is None:
            raise ConfigurationError(
                "The replay engine needs a folder of recorded results: pass replay_dir "
                f"(clothseg serve --replay-dir DIR) or set {REPLAY_DIR_ENV}."
            )
        self.replay_dir = Path(replay_dir)
        if not self.replay_dir.is_dir():
            raise ConfigurationError(
                f"Replay folder {self.replay_dir} does not exist; create it, or record "
                "results into it with clothseg_tools.engines.replay.record()."
            )
        self._cache: OrderedDict[str, tuple[tuple[int, int], _Record]] = OrderedDict()
        self._cache_size = int(cache_size)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReplayEngine({str(self.replay_dir)!r})"

    def has_record(self, image_bytes: bytes) -> bool:
        """True when the folder holds a record for ``image_bytes``."""
        key = replay_key(image_bytes)
        return (self.replay_dir / key).is_dir() or (self.replay_dir / f"{key}.png").is_file()

    def _segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        if image_bytes is None:
            raise NoRecordError(
                "The replay engine looks images up by the SHA-256 of their file bytes, but "
                "none were given; pass image_bytes (the file exactly as uploaded)."
            )
        key = replay_key(image_bytes)
        rec = self._load(key)
        shape = image.shape[:2]
        if rec.masks.shape != shape:
            raise EngineError(
                f"The replay record {key} has masks of shape {rec.masks.shape} but the image "
                f"has shape {shape}; record the result again for this image."
            )
        masks = rec.masks.select(classes, missing="zeros")
        parts: dict[str, npt.NDArray[np.uint8]] = {}
        if rec.parts is not None:
            parts = {name: rec.parts[name] for name in rec.parts.classes}
        return EngineOutput(masks, parts)

    def _stamp(self, key: str) -> tuple[int, int] | None:
        """Identity of the record on disk: a re-recorded image gets a new stamp."""
        for path in (self.replay_dir / key, self.replay_dir / f"{key}.png"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            return (st.st_ino, st.st_mtime_ns)
        return None

    def _load(self, key: str) -> _Record:
        stamp = self._stamp(key)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and stamp is not None and cached[0] == stamp:
                self._cache.move_to_end(key)
                return cached[1]
        rec = self._read(key)
        if stamp is not None:
            with self._lock:
                self._cache[key] = (stamp, rec)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return rec

    def _read(self, key: str) -> _Record:
        folder = self.replay_dir / key
        if folder.is_dir():
            try:
                masks = MaskSet.load(folder)
                parts_dir = folder / PARTS_DIR
                parts = MaskSet.load(parts_dir) if parts_dir.is_dir() else None
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"The replay record {folder} cannot be read ({exc}); record it again."
                ) from exc
            if parts is not None and parts.shape != masks.shape:
                raise EngineError(
                    f"The replay record {folder} has parts of shape {parts.shape} but masks "
                    f"of shape {masks.shape}; record it again."
                )
            return _Record(masks, parts)
        label_png = self.replay_dir / f"{key}.png"
        if label_png.is_file():
            return _Record(_read_label_png(label_png), None)
        raise NoRecordError(
            f"The replay engine has no record of this image (SHA-256 {key}) in "
            f"{self.replay_dir}. Upload an image that was recorded, or record this one with "
            "clothseg_tools.engines.replay.record()."
        )


def _read_label_png(path: Path) -> MaskSet:
    """Read a label PNG into one mask per class present (value i -> CLASSES[i - 1])."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.width * img.height > limits.MAX_PIXELS:
                raise EngineError(
                    f"The label image {path} has {img.width} x {img.height} pixels, more "
                    f"than the {limits.MAX_PIXELS} allowed."
                )
            if img.mode not in ("L", "P"):
                raise EngineError(
                    f"The label image {path} has mode {img.mode}; a label PNG is 8-bit "
                    "grayscale or palette, one class index per pixel."
                )
            # palette images are read as their indices, not their colours
            labels = np.asarray(img)
    except OSError as exc:
        raise EngineError(f"The label image {path} cannot be decoded ({exc}).") from exc
    top = int(labels.max(initial=0))
    if top > len(CLASSES):
        raise EngineError(
            f"The label image {path} holds the value {top}, but labels go from 0 "
            f"(background) to {len(CLASSES)} ({CLASSES[-1]})."
        )
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(CLASSES) + 1)[1:])
    names = [CLASSES[i] for i in present]
    # one broadcast comparison gives the whole (C, H, W) stack
    stack = labels[None, :, :] == (present + 1).astype(labels.dtype)[:, None, None]
    if not names:
        return MaskSet({}, shape=(int(labels.shape[0]), int(labels.shape[1])))
    return MaskSet.from_stack(stack, names)


def record(
    replay_dir: str | os.PathLike[str],
    image_bytes: bytes,
    masks: MaskSet | Mapping[str, Any],
    parts: MaskSet | Mapping[str, Any] | None = None,
) -> Path:
    """Record ``masks`` (and optional per-garment ``parts``) as the result for an image.

    The record is written into a temporary folder and moved into place, so a replay
    engine reading the folder at the same time sees either the old record or the new
    one, never half of one.

    Parameters
    ----------
    replay_dir
        The replay folder (created when missing).
    image_bytes
        The image file's bytes, exactly as they will be uploaded.
    masks
        One mask per class (a MaskSet or a mapping of class -> (H, W) uint8/bool mask).
    parts
        Per-garment instance masks (``{"tops_0": mask, ...}``), same shape as ``masks``.

    Returns
    -------
    pathlib.Path
        The record folder ``<replay_dir>/<sha256>``.

    Raises
    ------
    ValueError
        Masks (or parts) of different shapes (ShapeMismatchError).

    Examples
    --------
    >>> import tempfile
    >>> p = record(tempfile.mkdtemp(), b"img", {"hair": np.ones((2, 2), bool)})
    >>> p.name == replay_key(b"img"), sorted(f.name for f in p.iterdir())
    (True, ['hair.png', 'masks.json'])
    """

    mask_set = masks if isinstance(masks, MaskSet) else MaskSet(masks)
    part_set: MaskSet | None = None
    if parts is not None and len(parts):
        part_set = parts if isinstance(parts, MaskSet) else MaskSet(parts)
        if part_set.shape != mask_set.shape:
            raise ShapeMismatchError(
                f"parts have shape {part_set.shape} but masks have shape {mask_set.shape}; "
                "they must match."
            )
    root = Path(replay_dir)
    root.mkdir(parents=True, exist_ok=True)
    key = replay_key(image_bytes)
    target = root / key
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=root))
    try:
        if part_set is not None:
            part_set.save(staging / PARTS_DIR)
        mask_set.save(staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    label_png = root / f"{key}.png"
    if label_png.exists():
        # the folder record wins on lookup; drop the stale label image so the two cannot disagree
        label_png.unlink()
    return target


def _swap_into_place(staging: Path, target: Path) -> None:
    """Move a finished folder to ``target``, replacing an older one."""
    if not target.exists():
        os.replace(staging, target)
        return
    # a non-empty directory cannot be renamed over: move the old one aside first
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{threading.get_ident()}")
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
