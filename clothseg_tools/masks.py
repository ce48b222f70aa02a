"""``MaskSet``: the one central type, an ordered mapping of class name -> (H, W) uint8 mask.

All masks of a set share one shape. Internally they live in a single C-contiguous
(C, H, W) uint8 stack, so the vectorized core works on the whole set in one pass and
``ms.stack()`` costs nothing. Masks are soft (0..255) until someone thresholds them.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import MaskSet
>>> tops = np.zeros((4, 6), np.uint8); tops[:2] = 255
>>> ms = MaskSet({"tops": tops, "hair": np.zeros((4, 6), bool)})
>>> ms.classes, ms.shape
(('tops', 'hair'), (4, 6))
>>> int(ms["tops"].sum() // 255)
12
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._convert import as_mask
from ._io import WrittenFolder, encode_png, json_bytes, write_hashed
from .classes import CLASSES, class_color
from .decode import decode_stack, read_mask_file
from .errors import MaskDecodeError, ShapeMismatchError

if TYPE_CHECKING:
    pass

__all__ = ["INDEX_NAME", "MaskSet", "decode_masks"]

#: Name of the JSON index that ``MaskSet.save`` writes beside the PNGs.
INDEX_NAME = "masks.json"


class MaskSet(Mapping[str, "npt.NDArray[np.uint8]"]):
    """An ordered set of same-shaped (H, W) uint8 masks keyed by class name.

    Parameters
    ----------
    masks
        Mapping (or iterable of pairs) of name -> (H, W) mask, uint8 (0..255) or
        bool (becomes 0/255). Order is kept.
    shape
        The (H, W) shape, required only for an empty set.

    Raises
    ------
    ValueError
        A mask that is not 2-D, not uint8/bool, or whose shape differs from the
        others (:class:`~clothseg_tools.errors.ShapeMismatchError`, naming both shapes).

    Notes
    -----
    A MaskSet is immutable: the arrays it hands out are read-only views of its stack.
    Build a new set with :meth:`with_masks`, :meth:`select` or :meth:`drop`.

    Examples
    --------
    >>> ms = MaskSet({"tops": np.full((2, 2), 255, np.uint8)})
    >>> ms.stack().shape
    (1, 2, 2)
    """

    __slots__ = ("_index", "_names", "_stack")

    def __init__(
        self,
        masks: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        shape: tuple[int, int] | None = None,
    ) -> None:
        items = list(masks.items()) if isinstance(masks, Mapping) else list(masks)
        names: list[str] = []
        arrays: list[npt.NDArray[np.uint8]] = []
        for name, mask in items:
            if not isinstance(name, str) or not name:
                raise ValueError(f"Mask names must be non-empty strings, got {name!r}.")
            if name in names:
                raise ValueError(f"Duplicate mask name {name!r}.")
            arr = as_mask(mask, name=f"mask {name!r}")
            if arrays and arr.shape != arrays[0].shape:
                raise ShapeMismatchError(
                    f"mask {name!r} has shape {arr.shape} but mask {names[0]!r} has shape "
                    f"{arrays[0].shape}; all masks of a MaskSet must share one shape."
                )
            names.append(name)
            arrays.append(arr)
        if arrays:
            if shape is not None and tuple(shape) != arrays[0].shape:
                raise ShapeMismatchError(
                    f"shape={tuple(shape)} was given but the masks have shape {arrays[0].shape}."
                )
            stack = np.empty((len(arrays), *arrays[0].shape), dtype=np.uint8)
            for i, arr in enumerate(arrays):
                stack[i] = arr
        else:
            if shape is None:
                raise ValueError("An empty MaskSet needs shape=(H, W).")
            stack = np.zeros((0, int(shape[0]), int(shape[1])), dtype=np.uint8)
        self._init(names, stack)

    def _init(self, names: Sequence[str], stack: npt.NDArray[np.uint8]) -> None:
        stack.flags.writeable = False
        self._names: tuple[str, ...] = tuple(names)
        self._stack: npt.NDArray[np.uint8] = stack
        self._index: dict[str, int] = {n: i for i, n in enumerate(self._names)}

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_stack(cls, stack: Any, classes: Sequence[str]) -> MaskSet:
        """Wrap a (C, H, W) uint8 or bool stack; a C-contiguous uint8 stack is not copied.

        Parameters
        ----------
        stack
            Array of shape (C, H, W).
        classes
            C names, in stack order.

        Notes
        -----
        The wrapped array is marked read-only; copy it first if you need to keep
        writing to it.

        Examples
        --------
        >>> s = np.zeros((2, 3, 4), np.uint8)
        >>> ms = MaskSet.from_stack(s, ["tops", "bottoms"])
        >>> np.shares_memory(ms.stack(), s)
        True
        """
        arr = np.asarray(stack)
        if arr.ndim != 3:
            raise ValueError(f"stack must be a 3-D (C, H, W) array, but got shape {arr.shape}.")
        names = list(classes)
        if len(names) != arr.shape[0]:
            raise ValueError(
                f"stack has {arr.shape[0]} masks but {len(names)} class names were given."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate class names in {names}.")
        if arr.dtype == np.bool_:
            arr = arr.view(np.uint8) * np.uint8(255)
        elif arr.dtype != np.uint8:
            raise ValueError(f"stack must be uint8 (0..255) or bool, but got dtype {arr.dtype}.")
        arr = np.ascontiguousarray(arr)
        ms = cls.__new__(cls)
        ms._init(names, arr)
        return ms

    # -- mapping protocol -----------------------------------------------------------

    def __getitem__(self, name: str) -> npt.NDArray[np.uint8]:
        try:
            return self._stack[self._index[name]]
        except KeyError:
            raise KeyError(
                f"No mask for class {name!r}; this MaskSet has {list(self._names)}."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaskSet):
            return NotImplemented
        return (
            self._names == other._names
            and self.shape == other.shape
            and bool(np.array_equal(self._stack, other._stack))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        h, w = self.shape
        return f"MaskSet(classes={list(self._names)}, shape=({h}, {w}))"

    # -- properties -----------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, in order."""
        return self._names

    @property
    def shape(self) -> tuple[int, int]:
        """The (H, W) shape every mask shares."""
        return (int(self._stack.shape[1]), int(self._stack.shape[2]))

    @property
    def nbytes(self) -> int:
        """Bytes held by the mask stack."""
        return int(self._stack.nbytes)

    # -- views and derived sets -----------------------------------------------------

    def stack(self, classes: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
        """Return the masks as a C-contiguous (C, H, W) uint8 array, C in ``classes`` order.

        With ``classes=None`` (or the set's own order, or a run of consecutive
        classes in order) the result is a read-only view with no copy; any other
        selection is a new array. Classes not in the set raise ``KeyError``.

        Examples
        --------
        >>> ms = MaskSet({"a": np.zeros((2, 2), bool), "b": np.ones((2, 2), bool)})
        >>> int(ms.stack(["b"])[0, 0, 0])
        255
        """
        if classes is None:
            return self._stack
        idx = [self._index_of(c) for c in classes]
        if idx and idx == list(range(idx[0], idx[0] + len(idx))):
            return self._stack[idx[0] : idx[0] + len(idx)]
        return self._stack[idx]

    def _index_of(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"No mask for class {name!r}; this MaskSet has {list(self._names)}."
            ) from None

    def get_or_empty(self, name: str) -> npt.NDArray[np.uint8]:
        """The mask of ``name``, or a zero mask of the set's shape when it is absent.

        Examples
        --------
        >>> MaskSet({}, shape=(1, 2)).get_or_empty("hair")
        array([[0, 0]], dtype=uint8)
        """
        if name in self._index:
            return self[name]
        return np.zeros(self.shape, dtype=np.uint8)

    def select(self, classes: Sequence[str], *, missing: str = "error") -> MaskSet:
        """A new set with just ``classes``, in that order.

        Parameters
        ----------
        classes
            Names to keep.
        missing
            ``"error"`` (default) raises ``KeyError`` for a class not in the set,
            ``"skip"`` leaves it out, ``"zeros"`` adds an empty mask.

        Examples
        --------
        >>> ms = MaskSet({"a": np.zeros((1, 1), bool)})
        >>> ms.select(["a", "z"], missing="zeros").classes
        ('a', 'z')
        """
        if missing not in ("error", "skip", "zeros"):
            raise ValueError(f"missing must be 'error', 'skip' or 'zeros', got {missing!r}.")
        if missing == "skip":
            classes = [c for c in classes if c in self._index]
        if missing == "zeros":
            return MaskSet({c: self.get_or_empty(c) for c in classes}, shape=self.shape)
        return MaskSet.from_stack(self.stack(list(classes)), list(classes))

    def drop(self, classes: Iterable[str]) -> MaskSet:
        """A new set without ``classes`` (absent names are ignored)."""
        gone = set(classes)
        return self.select([c for c in self._names if c not in gone])

    def with_masks(self, masks: Mapping[str, Any]) -> MaskSet:
        """A new set with ``masks`` added, replacing same-named masks in place.

        Examples
        --------
        >>> ms = MaskSet({"a": np.zeros((1, 1), bool)})
        >>> ms.with_masks({"b": np.ones((1, 1), bool)}).classes
        ('a', 'b')
        """
        merged: dict[str, Any] = dict(self.items())
        merged.update(masks)
        return MaskSet(merged, shape=self.shape)

    def rename(self, mapping: Mapping[str, str]) -> MaskSet:
        """A new set with classes renamed; the stack is shared, not copied."""
        return MaskSet.from_stack(self._stack, [mapping.get(n, n) for n in self._names])

    def to_dict(self) -> dict[str, npt.NDArray[np.uint8]]:
        """A plain ``dict`` of name -> writable copy of each mask."""
        return {n: self._stack[i].copy() for i, n in enumerate(self._names)}

    # -- I/O ------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> WrittenFolder:
        """Write one grayscale PNG per class and a ``masks.json`` index into ``folder``.

        Every file is written atomically; the index is written last, so a folder
        with an index is always complete.

        Returns
        -------
        WrittenFolder
            The folder (a :class:`pathlib.Path`); its ``files`` map each file written
            to its SHA-256.

        Examples
        --------
        >>> import tempfile
        >>> ms = MaskSet({"tops": np.eye(3, dtype=bool)})
        >>> d = ms.save(tempfile.mkdtemp())
        >>> sorted(d.files)
        ['masks.json', 'tops.png']
        >>> MaskSet.load(d) == ms
        True
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        written = {}
        for name in self._names:
            fname = f"{_safe_file_stem(name)}.png"
            written[fname] = write_hashed(out / fname, encode_png(self[name]))
            files[name] = fname
        index = {
            "format": "clothseg-maskset",
            "version": 1,
            "shape": list(self.shape),
            "classes": list(self._names),
            "files": files,
        }
        written[INDEX_NAME] = write_hashed(out / INDEX_NAME, json_bytes(index))
        return WrittenFolder.of(out, written)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MaskSet:
        """Read a set written by :meth:`save`.

        A folder without ``masks.json`` is read too: every ``<class>.png`` whose
        name is a known class, in :data:`~clothseg_tools.CLASSES` order.

        Raises
        ------
        FileNotFoundError
            The folder does not exist or holds no masks.
        MaskDecodeError
            A PNG cannot be decoded.
        """
        src = Path(folder)
        if not src.is_dir():
            raise FileNotFoundError(f"No such mask folder: {src}")
        index_path = src / INDEX_NAME
        if index_path.exists():
            try:
                index = json.loads(index_path.read_text(encoding="utf-8"))
                names = list(index["classes"])
                files = dict(index.get("files") or {})
                shape = tuple(index["shape"])
            except (ValueError, KeyError, TypeError) as exc:
                raise MaskDecodeError(
                    f"{index_path} is not a valid MaskSet index ({exc}); delete the folder "
                    "and write it again."
                ) from exc
            paths = [src / files.get(n, f"{_safe_file_stem(n)}.png") for n in names]
        else:
            names = [c for c in CLASSES if (src / f"{c}.png").exists()]
            if not names:
                raise FileNotFoundError(
                    f"{src} has neither {INDEX_NAME} nor any <class>.png mask files."
                )
            paths = [src / f"{n}.png" for n in names]
            shape = ()
        if not names:
            return cls({}, shape=(int(shape[0]), int(shape[1])))
        first = read_mask_file(paths[0])
        stack = np.empty((len(names), *first.shape), dtype=np.uint8)
        stack[0] = first
        for i, p in enumerate(paths[1:], start=1):
            m = read_mask_file(p)
            if m.shape != first.shape:
                raise ShapeMismatchError(
                    f"{p.name} has shape {m.shape} but {paths[0].name} has shape "
                    f"{first.shape}; the folder {src} is inconsistent."
                )
            stack[i] = m
        return cls.from_stack(stack, names)

    # -- display --------------------------------------------------------------------

    def to_rgb(self, *, max_side: int | None = None) -> npt.NDArray[np.uint8]:
        """Render the set as an (H, W, 3) picture, each pixel in the palette colour of
        its strongest class, scaled by that class's value.

        Parameters
        ----------
        max_side
            Downsample (by striding) so the longer side is at most this many pixels.

        Examples
        --------
        >>> MaskSet({"tops": np.ones((2, 2), bool)}).to_rgb()[0, 0]
        array([214,  39,  40], dtype=uint8)
        """
        stack = self._stack
        if max_side is not None and max(self.shape) > max_side:
            step = -(-max(self.shape) // max_side)
            stack = stack[:, ::step, ::step]
        h, w = stack.shape[1:]
        if not len(self._names):
            return np.zeros((h, w, 3), dtype=np.uint8)
        colors = np.array([class_color(n) for n in self._names], dtype=np.uint16)
        strongest = stack.argmax(axis=0)
        value = np.take_along_axis(stack, strongest[None], axis=0)[0].astype(np.uint16)
        rgb = colors[strongest] * value[..., None] // 255
        return rgb.astype(np.uint8)

    def _repr_png_(self) -> bytes:
        """PNG shown by Jupyter: the classes in palette colours."""
        return encode_png(self.to_rgb(max_side=1024))


def decode_masks(
    mapping: Mapping[str, Any], *, shape: tuple[int, int] | None = None, **options: Any
) -> MaskSet:
    """Decode many mask values at once, in threads, into one :class:`MaskSet`.

    Masks are decoded straight into the MaskSet's stack by
    :func:`clothseg_tools.decode.decode_stack`, whose parameters and errors these are.

    Parameters
    ----------
    mapping
        Class name -> mask value (anything :func:`~clothseg_tools.decode.decode_mask`
        accepts). Order is kept.
    shape
        Expected (H, W) of every mask (the source image's size), if known. Required
        when ``mapping`` is empty.
    **options
        ``workers``, ``session``, ``timeout``, ``max_bytes``, ``max_pixels``,
        ``allow_paths``: as for :func:`~clothseg_tools.decode.decode_stack`.

    Returns
    -------
    MaskSet
        The masks in ``mapping`` order.

    Examples
    --------
    >>> import base64
    >>> png = encode_png(np.full((2, 3), 255, np.uint8))
    >>> ms = decode_masks({"tops": base64.b64encode(png).decode(), "hair": png})
    >>> ms.classes, ms.shape
    (('tops', 'hair'), (2, 3))
    """
    names, stack = decode_stack(mapping, shape=shape, **options)
    if not names:
        return MaskSet({}, shape=(stack.shape[1], stack.shape[2]))
    return MaskSet.from_stack(stack, names)


def _safe_file_stem(name: str) -> str:
    """A file name for a class name: keeps letters, digits, ``-`` and ``_``."""
    stem = "".join(ch if (ch.isalnum() or ch in "-_.") else "_" for ch in name).strip(".")
    return stem or "mask"
