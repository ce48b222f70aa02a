"""``Parsing``: a human-parsing label map with its label set, next to ``MaskSet``.

A parsing map holds one integer per pixel, the index of a label of a
:class:`~clothseg_tools.labelsets.LabelSet` (``Left-arm``, ``Upper-clothes``...). It is
finer than the service's twelve classes, which is what try-on and exports want (arms,
legs, neck), and :meth:`Parsing.to_maskset` maps it to the twelve classes in one pass.

When the model's per-label probabilities come along (``probs``, a (C, h, w) float array
at any resolution), the class masks are soft: each class is the sum of the
probabilities of the labels that land in it, upsampled to the map's size the way
SegFormer's post-processing does (bilinear, pixel centres aligned), in row blocks so
that no full-size float copy of all channels is ever made.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import Parsing
>>> labels = np.zeros((4, 6), np.uint8); labels[:, 3:] = 5      # right half Upper-clothes
>>> p = Parsing(labels, "lip")
>>> int(p.mask("Upper-clothes").sum()), int(p.mask("Face", "Hair").sum())
(12, 0)
>>> ms = p.to_maskset(["tops", "clothes", "face"])
>>> [int(ms[c].max()) for c in ms]
[255, 255, 0]
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._io import atomic_write_bytes
from .classes import CLASSES, canonical_classes
from .errors import LabelSetError
from .labelsets import LABELSETS, LabelSet, get_labelset, index_palette
from .masks import MaskSet

__all__ = ["Parsing", "upsampled_blocks"]

# Elements (pixels x channels) per row block of the vectorized passes: big enough for
# numpy's per-call overhead to vanish, small enough for a block's float temporaries
# (4 MB each) small beside any stack they fill.
_BLOCK_PIXELS = 1 << 20


def _row_block(width: int, channels: int = 1) -> int:
    return max(1, _BLOCK_PIXELS // max(1, width * channels))


class Parsing:
    """An (H, W) integer label map plus the label set that names its values.

    Parameters
    ----------
    labels
        (H, W) array of non-negative integers (any integer dtype), each below the size
        of the label set. Kept as uint8 (uint16 for sets of more than 256 labels).
    labelset
        A :class:`~clothseg_tools.labelsets.LabelSet` or a registered name (``"lip"``).
    probs
        Optional (C, h, w) float per-label probabilities (C = size of the set) at any
        resolution covering the same view as ``labels``; makes :meth:`to_maskset` soft.
    probs_extent
        (rows, cols) of ``probs`` pixels that the map covers, when it covers less than
        all of ``probs`` (a model's output for a padded input, cropped to whole pixels:
        the map then spans, say, 96.5 of 97 columns). Default: all of ``probs``.

    Raises
    ------
    LabelSetError
        A value of ``labels`` outside the set (the message names the value, the set
        and its size), probabilities with another channel count, or values that are
        not probabilities (logits: apply a softmax first).
    ValueError
        ``labels`` not 2-D or not integer, ``probs`` not 3-D.

    Examples
    --------
    >>> p = Parsing(np.array([[0, 13], [14, 15]]), "lip")
    >>> p.shape, p.labelset.name, p.labels.dtype.name
    ((2, 2), 'lip', 'uint8')
    """

    __slots__ = ("_extent", "_labels", "_labelset", "_probs")

    def __init__(
        self,
        labels: Any,
        labelset: LabelSet | str,
        *,
        probs: Any = None,
        probs_extent: tuple[float, float] | None = None,
    ) -> None:
        self._labelset = get_labelset(labelset)
        self._labels = _checked_labels(labels, self._labelset)
        self._probs = None if probs is None else _checked_probs(probs, self._labelset)
        self._extent = _checked_extent(probs_extent, self._probs)

    # -- properties ------------------------------------------------------------------

    @property
    def labels(self) -> npt.NDArray[np.unsignedinteger[Any]]:
        """The (H, W) read-only label map (uint8, or uint16 for sets over 256 labels)."""
        return self._labels

    @property
    def labelset(self) -> LabelSet:
        """The label set naming the map's values."""
        return self._labelset

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the map."""
        h, w = self._labels.shape
        return int(h), int(w)

    @property
    def probs(self) -> npt.NDArray[np.float32] | None:
        """The (C, h, w) read-only float32 per-label probabilities, or ``None``."""
        return self._probs

    @property
    def probs_extent(self) -> tuple[float, float] | None:
        """(rows, cols) of ``probs`` the map covers, or ``None`` for all of them."""
        return self._extent

    def __repr__(self) -> str:
        h, w = self.shape
        soft = ", probs" if self._probs is not None else ""
        return f"Parsing(shape=({h}, {w}), labelset={self._labelset.name!r}{soft})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parsing):
            return NotImplemented
        return (
            self._labelset == other._labelset
            and bool(np.array_equal(self._labels, other._labels))
            and (
                (self._probs is None and other._probs is None)
                or (
                    self._probs is not None
                    and other._probs is not None
                    and bool(np.array_equal(self._probs, other._probs))
                )
            )
        )

    __hash__ = None  # type: ignore[assignment]

    # -- masks -----------------------------------------------------------------------

    def mask(self, *names: str) -> npt.NDArray[np.bool_]:
        """(H, W) bool mask of the pixels whose label is any of ``names``.

        Raises
        ------
        LabelSetError
            A name that is not a label of the set (the message lists its labels).

        Examples
        --------
        >>> p = Parsing(np.array([[14, 15, 0]]), "lip")
        >>> p.mask("left-arm", "Right_arm").tolist()
        [[True, True, False]]
        """
        lut = np.zeros((len(self._labelset), 1), dtype=bool)
        for name in names:
            lut[self._labelset.index(name), 0] = True
        out = np.empty((1, *self.shape), dtype=bool)
        _apply_lut(lut, self._labels, out)
        return out[0]

    def to_maskset(self, classes: Sequence[str] | None = None) -> MaskSet:
        """The twelve-class (or ``classes``) uint8 :class:`~clothseg_tools.MaskSet`.

        Hard 0/255 masks from the labels, or soft 0..255 masks from ``probs`` when the
        parsing has them: a class's value is the summed probability of the labels that
        land in it (so ``clothes`` is tops + bottoms + dress), bilinearly upsampled to
        (H, W) with pixel centres aligned, in row blocks.

        Parameters
        ----------
        classes
            Class names in the order wanted; default all of ``CLASSES``.

        Examples
        --------
        >>> p = Parsing(np.array([[5, 12], [13, 0]]), "lip")
        >>> ms = p.to_maskset()
        >>> ms["clothes"].tolist(), ms["head"].tolist()
        ([[255, 255], [0, 0]], [[0, 0], [255, 0]])
        """
        names = CLASSES if classes is None else canonical_classes(classes)
        columns = [CLASSES.index(c) for c in names]
        table = self._labelset.class_table()[:, columns]  # (n_labels, k)
        stack = np.empty((len(names), *self.shape), dtype=np.uint8)
        if self._probs is None:
            _apply_lut(table.astype(np.uint8) * np.uint8(255), self._labels, stack)
        else:
            _soft_classes(self._probs, table, stack, self._extent)
        return MaskSet.from_stack(stack, names)

    # -- files -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], labelset: LabelSet | str) -> Parsing:
        """Read an index PNG (palette or grey, 8 or 16 bit) as a parsing of ``labelset``.

        A palette PNG's pixel values are the indices (the palette only colours them);
        a grey PNG's grey levels are the indices.

        Raises
        ------
        LabelSetError
            A colour (RGB) picture, which holds colours rather than indices, or a value
            outside the set.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.png"
        >>> Parsing(np.array([[0, 2], [11, 17]]), "atr").save(f)
        >>> Parsing.load(f, "atr").labels.tolist()
        [[0, 2], [11, 17]]
        """
        from PIL import Image  # Pillow loads on first file read, not on import

        path = Path(path)
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("P", "L", "I;16", "I;16B", "I;16L", "I"):
                labels = np.asarray(img)
            else:
                raise LabelSetError(
                    f"{path} is a {mode} picture, not an index map: a parsing map is a palette "
                    "or grey PNG whose pixel values are label indices. Save the model's "
                    "arg-max as such a PNG (Parsing(...).save does)."
                )
        try:
            return cls(labels, labelset)
        except LabelSetError as exc:
            raise LabelSetError(f"{path}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the map as an index PNG, atomically: palette (8 bit) or 16-bit grey.

        The palette is the one SCHP and Pascal VOC colour their maps with, so the file
        looks like what the parsers write and reads back with :meth:`load`.
        """
        from PIL import Image

        n = len(self._labelset)
        buf = io.BytesIO()
        if n <= 256:
            img = Image.fromarray(np.ascontiguousarray(self._labels, dtype=np.uint8), mode="L")
            img.putpalette(index_palette(n))  # L + palette -> P
        else:
            img = Image.fromarray(np.ascontiguousarray(self._labels, dtype=np.uint16))
        img.save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(path, buf.getvalue())


# -- checks ---------------------------------------------------------------------------------


def _checked_labels(labels: Any, labelset: LabelSet) -> npt.NDArray[np.unsignedinteger[Any]]:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(
            f"A parsing map must be a 2-D (H, W) array of label indices, got shape {arr.shape}."
        )
    if arr.dtype.kind not in "ui":
        raise ValueError(
            f"A parsing map must hold integers (label indices), got dtype {arr.dtype}. "
            "Pass the arg-max of the model's output, or its probabilities as probs=."
        )
    n = len(labelset)
    if arr.size:
        low, high = int(arr.min()), int(arr.max())
        bad = low if low < 0 else high if high >= n else None
        if bad is not None:
            fits = [ls.name for ls in LABELSETS.values() if len(ls) > high and low >= 0]
            hint = f" Sets with room for {high}: {', '.join(fits)}." if fits else ""
            raise LabelSetError(
                f"The parsing map holds the value {bad}, outside label set {labelset.name!r} "
                f"of {n} labels (0..{n - 1}). Pass the label set the map was made "
                f"with.{hint}"
            )
    dtype = np.uint8 if n <= 256 else np.uint16
    out = arr if arr.dtype == dtype else arr.astype(dtype)
    out = np.ascontiguousarray(out)
    if out is arr or np.shares_memory(out, arr):
        out = out.copy()  # never freeze or alias the caller's array
    out.flags.writeable = False
    return out  # type: ignore[return-value]


def _checked_extent(
    extent: tuple[float, float] | None, probs: npt.NDArray[np.float32] | None
) -> tuple[float, float] | None:
    if extent is None:
        return None
    if probs is None:
        raise ValueError("probs_extent= describes probs=; pass both or neither.")
    rows, cols = (float(v) for v in extent)
    _, h, w = probs.shape
    if not (0 < rows <= h and 0 < cols <= w):
        raise ValueError(
            f"probs_extent={extent} must lie within the probabilities' (h, w) = ({h}, {w}), "
            "above zero."
        )
    return rows, cols


def _checked_probs(probs: Any, labelset: LabelSet) -> npt.NDArray[np.float32]:
    arr = np.asarray(probs)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]  # a batch of one, as models return it
    if arr.ndim != 3:
        raise ValueError(
            f"probs must be a (C, h, w) array of per-label probabilities, got shape {arr.shape}."
        )
    if arr.shape[0] != len(labelset):
        raise LabelSetError(
            f"probs has {arr.shape[0]} channels but label set {labelset.name!r} has "
            f"{len(labelset)} labels; pass the set the model was trained with."
        )
    if arr.dtype.kind != "f":
        raise ValueError(f"probs must be floating point, got dtype {arr.dtype}.")
    out = np.array(arr, dtype=np.float32, order="C", copy=True)
    if out.size and (float(out.min()) < -1e-3 or float(out.max()) > 1 + 1e-3):
        raise LabelSetError(
            f"probs has values from {float(out.min()):.3g} to {float(out.max()):.3g}, which "
            "are not probabilities (logits?); apply a softmax over the label axis first."
        )
    out.flags.writeable = False
    return out


# -- the vectorized passes ------------------------------------------------------------------


def _apply_lut(lut: npt.NDArray[Any], labels: npt.NDArray[Any], out: npt.NDArray[Any]) -> None:
    """``out[k] = lut[labels, k]`` for every column k of ``lut``, in row blocks.

    One gather per block for all columns; the blocks keep the intp index temporary
    numpy makes for fancy indexing small instead of eight bytes per pixel.
    """
    h, w = labels.shape
    step = _row_block(w, lut.shape[1])
    for r0 in range(0, h, step):
        block = lut[labels[r0 : r0 + step]]  # (b, w, k)
        out[:, r0 : r0 + step] = np.moveaxis(block, -1, 0)


def _linear_weights(
    n_out: int, n_in: int, extent: float | None = None
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Source indices and weights of bilinear resizing with pixel centres aligned.

    The mapping of ``align_corners=False`` (torch, and so SegFormer's post-processing):
    output pixel i samples source position (i + 0.5) * extent / n_out - 0.5, clamped,
    where ``extent`` (default ``n_in``) is how many source pixels the output spans.
    """
    span = float(n_in if extent is None else extent)
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (span / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def upsampled_blocks(
    src: npt.NDArray[np.float32],
    shape: tuple[int, int],
    *,
    extent: tuple[float, float] | None = None,
    channels: int | None = None,
    reduce: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]] | None = None,
) -> Iterator[tuple[int, int, npt.NDArray[np.float32]]]:
    """Bilinearly upsample a (C, h, w) float array to ``shape``, one block of rows at a time.

    Yields ``(r0, r1, block)`` with ``block`` the (K, r1 - r0, W) float32 rows ``r0:r1``
    of the result. A block is made from the few source rows it samples, so no
    full-size array of any channel ever exists; the caller reduces each block (an
    arg-max, a rounding into uint8) before the next.

    Parameters
    ----------
    src
        (C, h, w) values at their own resolution (probabilities, logits).
    shape
        (H, W) of the result.
    extent
        (rows, cols) of ``src`` pixels the result spans, when it covers only part of
        ``src`` (logits of a padded input, cropped to whole pixels); default all of it.
    channels
        K, the number of channels ``reduce`` returns (default C), which sets the block
        height so that a block stays about a megabyte.
    reduce
        Applied to each block's source rows (C, s, w) -> (K, s, w) before resizing, so
        that a reduction that commutes with interpolation (summing the labels of a
        class) runs at the source resolution.

    Examples
    --------
    >>> src = np.array([[[0.0, 1.0]]], np.float32)
    >>> [b.round(2).tolist() for _, _, b in upsampled_blocks(src, (1, 4))]
    [[[[0.0, 0.25, 0.75, 1.0]]]]
    """
    c, h, w = src.shape
    big_h, big_w = shape
    k = c if channels is None else channels
    ext_h, ext_w = (None, None) if extent is None else extent
    x0, x1, wx = _linear_weights(big_w, w, ext_w)
    y0, y1, wy = _linear_weights(big_h, h, ext_h)
    resize_x = w != big_w or ext_w is not None
    step = _row_block(big_w, k)
    # Source rows already reduced and widened, by index: consecutive blocks share
    # source rows (an upsampled source row serves many output rows), and each is
    # widened once. Rows behind the current block are dropped.
    wide_rows: dict[int, npt.NDArray[np.float32]] = {}
    for r0 in range(0, big_h, step):
        r1 = min(r0 + step, big_h)
        s0, s1 = int(y0[r0]), int(y1[r1 - 1]) + 1
        for j in [j for j in wide_rows if j < s0]:
            del wide_rows[j]
        first_new = max(s0, max(wide_rows, default=s0 - 1) + 1)
        if first_new < s1:
            rows = src[:, first_new:s1]
            if reduce is not None:
                rows = reduce(rows)
            if resize_x:
                new = rows[:, :, x0]
                new += (rows[:, :, x1] - new) * wx
            else:
                new = np.array(rows, dtype=np.float32)
            for i, j in enumerate(range(first_new, s1)):
                wide_rows[j] = new[:, i]
        wide = np.stack([wide_rows[j] for j in range(s0, s1)], axis=1)  # (k, s1 - s0, W)
        top = wide[:, y0[r0:r1] - s0]
        block = wide[:, y1[r0:r1] - s0]
        block -= top  # in place: two block-sized temporaries in all
        block *= wy[r0:r1, None]
        block += top
        yield r0, r1, block


def _soft_classes(
    probs: npt.NDArray[np.float32],
    table: npt.NDArray[np.bool_],
    out: npt.NDArray[np.uint8],
    extent: tuple[float, float] | None = None,
) -> None:
    """Sum label probabilities per class at their resolution, upsample by blocks, round."""
    # 255 and the rounding offset go into the sums at the source resolution: linear
    # interpolation keeps them, and the full-size blocks are spared two passes
    weights = table.T.astype(np.float32) * np.float32(255)  # (k, c)

    def class_sums(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        sums = np.tensordot(weights, rows, axes=1)  # (k, s, w), 0..255
        sums += 0.5
        return sums

    for r0, r1, block in upsampled_blocks(
        probs, (out.shape[1], out.shape[2]), extent=extent, channels=out.shape[0], reduce=class_sums
    ):
        np.minimum(block, 255, out=block)  # sums of probabilities a little over 1
        out[:, r0:r1] = block  # float -> uint8 truncates; the +0.5 made it round
