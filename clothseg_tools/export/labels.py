"""Palette label PNGs: one 8-bit image per photo, pixel value = class index.

Value 0 is background and value ``i`` is ``classes[i - 1]`` (the order of
:data:`~clothseg_tools.CLASSES` unless told otherwise), as in a label map. The PNG is
mode ``"P"`` with the project palette, so any image viewer shows the classes in their
usual colours while training code reads the indices directly (Pascal VOC's
``SegmentationClass`` convention, which CVAT imports). The class names are also kept
in a ``classes`` text chunk, so a file saved with another class list is read back
right.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> labels = np.zeros((4, 4), np.uint8); labels[1:3, 1:3] = 5  # 5 = "tops"
>>> path = save_label_png(labels, pathlib.Path(tempfile.mkdtemp()) / "a.png")
>>> back = load_label_png(path)
>>> bool((back == labels).all()), back.dtype.name
(True, 'uint8')
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import limits
from .._io import atomic_write_bytes
from ..classes import CLASSES, class_color
from ..errors import MaskDecodeError

__all__ = [
    "cvat_labelmap",
    "encode_label_png",
    "label_palette",
    "load_label_png",
    "save_label_png",
]

#: PNG text chunk that records the class order of a label PNG.
CLASSES_KEY = "classes"


def label_palette(classes: Sequence[str] = CLASSES) -> npt.NDArray[np.uint8]:
    """The (256, 3) palette of a label PNG: black, then each class's colour.

    Examples
    --------
    >>> label_palette()[:2].tolist()
    [[0, 0, 0], [140, 86, 75]]
    """
    palette = np.zeros((256, 3), np.uint8)
    palette[1 : len(classes) + 1] = [class_color(c) for c in classes]
    return palette


def _as_labels(labels: Any, n_classes: int) -> npt.NDArray[np.uint8]:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) array, but got shape {arr.shape}.")
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be an integer array (0 = background, i = classes[i-1]), but got "
            f"dtype {arr.dtype}. Build one with clothseg_tools.label_map."
        )
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > n_classes:
            raise ValueError(
                f"labels hold values {lo}..{hi} but only 0..{n_classes} have a meaning "
                f"with {n_classes} classes; pass the classes the label map was built with."
            )
    return arr.astype(np.uint8, copy=False)


def save_label_png(
    labels: npt.NDArray[np.integer[Any]],
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] = CLASSES,
) -> Path:
    """Save a label map as a palette PNG, atomically.

    Parameters
    ----------
    labels
        (H, W) integer array: 0 = background, ``i`` = ``classes[i - 1]``.
    path
        Target file; parent folders are created.
    classes
        The class of each value from 1 on (at most 255); default
        :data:`~clothseg_tools.CLASSES`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        ``labels`` not 2-D, not integer, or with values beyond ``len(classes)``.

    Examples
    --------
    >>> import tempfile
    >>> p = save_label_png(np.ones((2, 2), np.uint8), tempfile.mkdtemp() + "/x.png")
    >>> from PIL import Image
    >>> with Image.open(p) as im:
    ...     im.mode
    'P'
    """
    target = Path(path)
    atomic_write_bytes(target, encode_label_png(labels, classes=classes))
    return target


def encode_label_png(
    labels: npt.NDArray[np.integer[Any]], *, classes: Sequence[str] = CLASSES
) -> bytes:
    """The bytes of the palette PNG :func:`save_label_png` writes.

    Examples
    --------
    >>> encode_label_png(np.zeros((2, 2), np.uint8))[:4]
    b'\\x89PNG'
    """
    from PIL import Image, PngImagePlugin

    names = list(classes)
    if len(names) > 255:
        raise ValueError(f"A label PNG holds at most 255 classes, got {len(names)}.")
    arr = _as_labels(labels, len(names))
    image = Image.fromarray(np.ascontiguousarray(arr))
    image.putpalette(label_palette(names).tobytes())  # mode "L" becomes "P"
    info = PngImagePlugin.PngInfo()
    info.add_text(CLASSES_KEY, json.dumps(names))
    buf = io.BytesIO()
    # Label maps are long runs of a few values: the default zlib level compresses them
    # several times better than the fastest one, at little cost, for files written
    # once and read by every training run.
    image.save(buf, format="PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def _colour_indices(
    rgb: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8], n: int, where: Path
) -> npt.NDArray[np.uint8]:
    """Map an RGB label picture back to indices through ``palette[: n + 1]``."""

    def key(a: npt.NDArray[np.uint8]) -> npt.NDArray[np.integer[Any]]:
        a32 = a.astype(np.uint32)
        return (a32[..., 0] << 16) | (a32[..., 1] << 8) | a32[..., 2]

    keys = key(palette[: n + 1])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    pixel_keys = key(rgb)
    pos = np.clip(np.searchsorted(sorted_keys, pixel_keys), 0, n)
    known = sorted_keys[pos] == pixel_keys
    if not known.all():
        y, x = (int(v[0]) for v in np.nonzero(~known))
        raise MaskDecodeError(
            f"{where} has colour {tuple(int(c) for c in rgb[y, x])} at (x={x}, y={y}), "
            "which is not in the label palette; pass the classes it was drawn with, or "
            "save it as a palette (mode 'P') PNG."
        )
    return order[pos].astype(np.uint8)


def load_label_png(
    path: str | os.PathLike[str], *, classes: Sequence[str] | None = None
) -> npt.NDArray[np.uint8]:
    """Read a label PNG written by :func:`save_label_png` (or a labelling tool).

    Parameters
    ----------
    path
        A palette PNG (indices read as they are), an RGB(A) PNG in palette colours
        (mapped back to indices), or a grayscale PNG of indices.
    classes
        The class order wanted. When the file records its own class list (the
        ``classes`` text chunk :func:`save_label_png` writes) and it differs, the
        indices are translated. ``None`` (default) returns the indices as stored;
        RGB files are then read with :data:`~clothseg_tools.CLASSES`' palette.

    Returns
    -------
    numpy.ndarray
        (H, W) uint8 label map.

    Raises
    ------
    FileNotFoundError
        No such file.
    MaskDecodeError
        Not a readable image, too large, an RGB colour outside the palette, or a
        recorded class missing from ``classes``.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = save_label_png(np.array([[0, 1, 2]]), d + "/l.png", classes=["tops", "hair"])
    >>> load_label_png(p, classes=["hair", "face", "tops"]).tolist()
    [[0, 3, 1]]
    """
    from PIL import Image, UnidentifiedImageError

    src = Path(path)
    try:
        with Image.open(src) as image:
            w, h = image.size
            if w * h > limits.MAX_PIXELS:
                raise MaskDecodeError(
                    f"{src} is {w} x {h} pixels, over the limit of {limits.MAX_PIXELS}."
                )
            stored = _stored_classes(image.info.get(CLASSES_KEY), src)
            if image.mode in ("P", "L"):
                labels = np.array(image, dtype=np.uint8)
            elif image.mode in ("RGB", "RGBA"):
                names = stored or list(classes or CLASSES)
                rgb = np.asarray(image.convert("RGB"))
                labels = _colour_indices(rgb, label_palette(names), len(names), src)
            else:
                raise MaskDecodeError(
                    f"{src} is a mode {image.mode!r} image; a label PNG is mode 'P', 'L' or 'RGB'."
                )
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise MaskDecodeError(f"{src} is not a readable label PNG ({exc}).") from exc
    if classes is None or stored is None or list(classes) == stored:
        return labels
    return _translate(labels, stored, list(classes), src)


def _stored_classes(raw: Any, src: Path) -> list[str] | None:
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise MaskDecodeError(f"{src} has a damaged '{CLASSES_KEY}' text chunk: {raw!r}.")
    return names


def _translate(
    labels: npt.NDArray[np.uint8], stored: list[str], wanted: list[str], src: Path
) -> npt.NDArray[np.uint8]:
    """Renumber ``labels`` from the ``stored`` class order to the ``wanted`` one."""
    table = np.zeros(256, np.uint8)
    present = np.flatnonzero(np.bincount(labels.reshape(-1), minlength=256))
    for value in present[present > 0]:
        if value > len(stored):
            raise MaskDecodeError(
                f"{src} holds label {value} but records only {len(stored)} classes."
            )
        name = stored[value - 1]
        if name not in wanted:
            raise MaskDecodeError(
                f"{src} labels class {name!r}, which is not among the classes asked for "
                f"({wanted}); add it or pass classes=None."
            )
        table[value] = wanted.index(name) + 1
    return table[labels]


def cvat_labelmap(classes: Sequence[str] = CLASSES) -> str:
    """The ``labelmap.txt`` of CVAT's "Segmentation mask 1.1" format for ``classes``.

    Examples
    --------
    >>> print(cvat_labelmap(["tops"]))
    # label:color_rgb:parts:actions
    background:0,0,0::
    tops:214,39,40::
    <BLANKLINE>
    """
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{c}:{','.join(str(v) for v in class_color(c))}::" for c in classes]
    return "\n".join(lines) + "\n"
