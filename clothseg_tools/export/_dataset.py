"""What the folder-shaped exports share: a staged output folder, photos, a summary.

A dataset folder is built under a hidden temporary name beside its target and renamed
into place when complete, so an interrupted export never leaves a half-written dataset
that a labeling tool or a training run would take for a whole one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import limits
from ..errors import ImageDecodeError, ImageTooLargeError, ShapeMismatchError
from ._source import ExportItem

__all__ = ["ExportSummary", "checked_photo", "photo_size", "place_photo", "staged_folder"]


@dataclass(frozen=True)
class ExportSummary:
    """What a dataset export wrote.

    Attributes
    ----------
    path : pathlib.Path
        The dataset folder (or file).
    images : int
        Images exported.
    annotations : int
        Annotations written (polygons, brush masks, instances; 0 when the format
        has one label map per image).
    """

    path: Path
    images: int
    annotations: int


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it when the block succeeds.

    Raises
    ------
    FileExistsError
        ``target`` exists, is not empty, and ``overwrite`` is false.
    """
    out = Path(target)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out} already exists and is not empty; choose another output or pass "
            "overwrite=True (--overwrite) to replace it."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield stage
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def photo_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            w, h = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ImageDecodeError(f"{path} is not a readable image ({exc}).") from exc
    if w * h > limits.MAX_PIXELS:
        raise ImageTooLargeError(
            f"{path} is {w} x {h} pixels, over the limit of {limits.MAX_PIXELS} pixels."
        )
    return int(w), int(h)


def checked_photo(item: ExportItem) -> Path:
    """An item's photo, checked to be on disk and of the masks' size.

    Raises
    ------
    FileNotFoundError
        The result does not name a photo on disk.
    ShapeMismatchError
        The photo's size differs from the masks'.
    """
    if item.photo is None:
        raise FileNotFoundError(
            f"{item.name}: the photo {item.file_name!r} of this result is not on disk "
            "(moved, or segmented from a URL); put it back, or export without images."
        )
    h, w = item.masks.shape
    pw, ph = photo_size(item.photo)
    if (pw, ph) != (w, h):
        raise ShapeMismatchError(
            f"{item.name}: the photo {item.photo} is {pw} x {ph} but the masks are "
            f"{w} x {h}; the photo was replaced after segmenting."
        )
    return item.photo


def place_photo(item: ExportItem, folder: Path, *, link: bool = False) -> Path:
    """Copy (or hard-link) an item's photo to ``folder/<name><ext>``, checked as
    :func:`checked_photo` checks it."""
    photo = checked_photo(item)
    target = folder / f"{item.name}{photo.suffix.lower()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(photo, target)
            return target
        except OSError:
            pass  # another file system, or links not allowed: copy instead
    shutil.copyfile(photo, target)
    return target
