"""COCO run-length encoding (RLE), identical to pycocotools, in vectorized numpy.

COCO stores a binary mask as the lengths of alternating runs of 0s and 1s over the
pixels in column-major (Fortran) order, starting with a run of 0s (which may be empty).
The *compressed* form writes those counts as an ASCII string: each count (from the
fourth on, as the difference to the count two places before) is cut into 5-bit groups,
least significant first, each stored as the character ``48 + group``, with ``0x20`` set
while more groups follow and ``0x10`` of the last group the sign (LEB128 with 6-bit
characters).

Both directions work on whole arrays: run boundaries come from one comparison of the
flattened mask with itself shifted by one pixel, and the string is written one group
position at a time over all the counts that have that many groups (at most seven), so
no Python loop runs per pixel or per run.

Examples
--------
>>> import numpy as np
>>> m = np.zeros((3, 4), bool); m[1, 2] = True
>>> rle = encode_rle(m)
>>> rle
{'size': [3, 4], 'counts': '714'}
>>> encode_rle(m, compressed=False)
{'size': [3, 4], 'counts': [7, 1, 4]}
>>> bool((decode_rle(rle) == m).all()), rle_area(rle), rle_bbox(rle)
(True, 1, [2.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .._convert import MaskLike
from ..errors import MaskDecodeError

__all__ = ["RLE", "binary_mask", "decode_rle", "encode_rle", "rle_area", "rle_bbox", "rle_counts"]

#: A COCO RLE: ``{"size": [height, width], "counts": str | list[int]}``.
RLE = dict[str, Any]

# Largest magnitude that fits in k 5-bit groups with the sign in the top bit, k = 1..6;
# a seventh group covers every count of a mask up to 2**32 pixels.
_GROUP_LIMITS = np.array([1 << (5 * k - 1) for k in range(1, 7)], np.int64)

# Above this many pixels the column-major copy is made in square tiles: a plain
# transposed copy of a 4096 x 4096 mask reads from a new memory page at every pixel;
# tiles keep the reads within a few pages and halve the time.
_TILED_ABOVE = 1 << 21
_TILE = 256


def _check_mask(mask: Any) -> npt.NDArray[Any]:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(
            f"mask must be a 2-D (H, W) array, but got shape {arr.shape}. "
            "Encode the masks of a stack one at a time."
        )
    if arr.dtype != np.bool_ and arr.dtype != np.uint8:
        raise ValueError(
            f"mask must be uint8 (0..255) or bool, but got dtype {arr.dtype}. "
            "Convert with mask.astype(bool) first."
        )
    return arr


def _column_major(arr: npt.NDArray[Any], level: int) -> npt.NDArray[np.bool_]:
    """``arr >= level`` (bool: ``arr``) flattened in column-major order, in one pass."""
    h, w = arr.shape
    out = np.empty((w, h), np.bool_)
    if arr.dtype == np.bool_:
        arr, level = arr.view(np.uint8), 1
    if h * w <= _TILED_ABOVE:
        np.greater_equal(arr.T, level, out=out)
    else:
        for i in range(0, h, _TILE):
            for j in range(0, w, _TILE):
                tile = arr[i : i + _TILE, j : j + _TILE].T
                np.greater_equal(tile, level, out=out[j : j + _TILE, i : i + _TILE])
    return out.reshape(-1)


def _runs(flat: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint32]:
    """Run lengths of a flat bool array, starting with a (maybe empty) run of False."""
    n = flat.size
    change = np.flatnonzero(flat[1:] != flat[:-1])  # a run ends at each change
    lead = 1 if flat[0] else 0
    m = change.size
    counts = np.empty(m + 1 + lead, np.uint32)
    counts[0] = 0
    if m == 0:
        counts[lead] = n
        return counts
    counts[lead] = change[0] + 1
    # differences straight into the uint32 output: no int64 temporaries
    np.subtract(change[1:], change[:-1], out=counts[lead + 1 : lead + m], casting="unsafe")
    counts[-1] = n - 1 - change[-1]
    return counts


def rle_counts(mask: MaskLike, *, level: int = 128) -> npt.NDArray[np.uint32]:
    """Run lengths of ``mask`` in column-major order, starting with a run of 0s.

    Parameters
    ----------
    mask
        (H, W) bool or uint8 mask (see :func:`encode_rle` for how uint8 is read).
    level
        Threshold for uint8 masks.

    Returns
    -------
    numpy.ndarray
        uint32 counts summing to H * W (none for a mask without pixels).

    Examples
    --------
    >>> rle_counts(np.array([[0, 1], [1, 1]], bool)).tolist()
    [1, 3]
    """
    arr = _check_mask(mask)
    if arr.size == 0:
        return np.zeros(0, np.uint32)
    counts = _runs(_column_major(arr, level))
    # COCO tools hand out 0/1 uint8 masks, and thresholding those at 128 would encode
    # nothing. Checked only when nothing reached the threshold: ordinary masks pay no
    # extra pass.
    if counts.size == 1 and arr.dtype == np.uint8 and level > 1 and int(arr.max()) == 1:
        counts = _runs(_column_major(arr, 1))
    return counts


def _counts_to_string(counts: npt.NDArray[np.uint32]) -> str:
    """COCO's compressed string for ``counts`` (``rleToString`` in maskApi.c)."""
    if counts.size == 0:
        return ""
    wide = int(counts.sum(dtype=np.uint64)) >= 1 << 30
    x: npt.NDArray[np.signedinteger[Any]] = counts.astype(np.int64 if wide else np.int32)
    if x.size > 3:
        x[3:] -= x[1:-2].copy()
    # Groups each value needs: 1 + the number of limits that x (x >= 0) or ~x (x < 0)
    # reaches; ``x ^ (x >> sign bit)`` is x or ~x.
    mag = x ^ (x >> (8 * x.itemsize - 1))
    k = np.ones(x.size, np.uint8)
    for limit in _GROUP_LIMITS:
        k += mag >= limit
    chars = (x & 0x1F).astype(np.uint8)
    sub = np.flatnonzero(k > 1)
    if sub.size:
        chars[sub] |= 0x20  # more groups follow
        # The later groups of the few long values are inserted after their first;
        # built group by group, and np.insert keeps that order at equal positions.
        at, extra = [], []
        xs, ks, ss = x[sub], k[sub], sub
        for g in range(1, int(ks.max())):
            keep = ks > g
            xs, ks, ss = xs[keep], ks[keep], ss[keep]
            ch = ((xs >> (5 * g)) & 0x1F).astype(np.uint8)
            ch[ks > g + 1] |= 0x20
            at.append(ss + 1)
            extra.append(ch)
        chars = np.insert(chars, np.concatenate(at), np.concatenate(extra))
    chars += np.uint8(48)
    return chars.tobytes().decode("ascii")


def _string_to_counts(s: str | bytes) -> npt.NDArray[np.uint32]:
    """Counts of a COCO compressed string (``rleFrString`` in maskApi.c)."""
    try:
        data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    except UnicodeEncodeError:
        data = b"\xff"
    if not data:
        return np.zeros(0, np.uint32)
    c = np.frombuffer(data, np.uint8) - np.uint8(48)  # bytes below '0' wrap past 63
    if int(c.max()) > 63:
        raise MaskDecodeError(
            "RLE counts contain characters outside COCO's alphabet ('0'..'o'); "
            "the string is not a compressed COCO RLE."
        )
    ends = np.flatnonzero(c < 32)  # a group without "more" ends a value
    if ends.size == 0 or ends[-1] != c.size - 1:
        raise MaskDecodeError("RLE counts string ends in the middle of a number.")
    # Read every value as if it had one group (5 bits, sign in 0x10)...
    last = c[ends] if ends.size != c.size else c
    x = (last & 0x1F).astype(np.int64)
    x -= (last & 0x10).astype(np.int64) << 1
    # ...then redo the few that have more: those holding a continuation character.
    more = np.flatnonzero(c >= 32)
    if more.size:
        sub = np.unique(np.searchsorted(ends, more))
        start = np.zeros(sub.size, np.int64)
        inner = sub > 0
        start[inner] = ends[sub[inner] - 1] + 1
        length = ends[sub] - start + 1
        if int(length.max()) > len(_GROUP_LIMITS) + 1:
            raise MaskDecodeError("RLE counts string holds a number too large for a mask.")
        value = np.zeros(sub.size, np.int64)
        for g in range(int(length.max())):
            has = length > g
            value[has] |= (c[start[has] + g] & 0x1F).astype(np.int64) << (5 * g)
        negative = (c[ends[sub]] & 0x10) != 0  # the sign bit of the last group
        value[negative] -= np.left_shift(1, 5 * length[negative])
        x[sub] = value
    # From the fourth value on, each is stored as the difference to the value two
    # places before: two interleaved running sums.
    x[3::2] = np.cumsum(x[1::2])[1:]
    x[4::2] = np.cumsum(x[2::2])[1:]
    return (x & 0xFFFFFFFF).astype(np.uint32)


def encode_rle(mask: MaskLike, *, compressed: bool = True, level: int = 128) -> RLE:
    """Encode a mask as a COCO RLE, exactly as ``pycocotools.mask.encode`` does.

    Parameters
    ----------
    mask
        (H, W) bool or uint8 mask, any memory order. uint8 masks are 0..255 and read
        as ``>= level``; a uint8 mask whose largest value is 1 is read as a 0/1 mask
        (what COCO tools return), so it is not silently encoded as empty.
    compressed
        ``True`` (default): ``counts`` is COCO's compressed ASCII ``str``, ready for
        JSON (``counts.encode()`` equals pycocotools' bytes). ``False``: the
        uncompressed ``list[int]`` of run lengths.
    level
        Threshold for uint8 masks.

    Returns
    -------
    dict
        ``{"size": [H, W], "counts": ...}``.

    Raises
    ------
    ValueError
        The mask is not 2-D, or not bool / uint8.

    See Also
    --------
    decode_rle, rle_area, rle_bbox

    Examples
    --------
    >>> encode_rle(np.ones((2, 2), bool))
    {'size': [2, 2], 'counts': '04'}
    >>> encode_rle(np.array([[0, 1]], np.uint8), compressed=False)  # a 0/1 mask
    {'size': [1, 2], 'counts': [1, 1]}
    """
    counts = rle_counts(mask, level=level)
    h, w = np.shape(mask)
    out = _counts_to_string(counts) if compressed else counts.tolist()
    return {"size": [int(h), int(w)], "counts": out}


def _parse(rle: Mapping[str, Any]) -> tuple[int, int, npt.NDArray[np.uint32]]:
    """Validate an RLE dict and return (H, W, counts)."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        got = sorted(rle) if isinstance(rle, Mapping) else type(rle).__name__
        raise MaskDecodeError(
            f"An RLE must be a dict with 'size' [height, width] and 'counts'; got {got}."
        )
    try:
        h, w = (int(v) for v in rle["size"])
    except (TypeError, ValueError):
        raise MaskDecodeError(f"RLE 'size' must be [height, width], got {rle['size']!r}.") from None
    if h < 0 or w < 0:
        raise MaskDecodeError(f"RLE 'size' must not be negative, got {[h, w]}.")
    raw = rle["counts"]
    if isinstance(raw, (str, bytes, bytearray)):
        counts = _string_to_counts(raw if isinstance(raw, str) else bytes(raw))
    else:
        arr = np.asarray(raw)
        if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0)):
            raise MaskDecodeError(
                "RLE 'counts' must be a compressed string or a list of non-negative "
                f"integers; got {type(raw).__name__}."
            )
        counts = arr.astype(np.uint32)
    total = int(counts.sum(dtype=np.uint64))
    if total != h * w:
        raise MaskDecodeError(
            f"RLE counts add up to {total} pixels but its size {[h, w]} has {h * w}; "
            "the RLE belongs to another image size or is damaged."
        )
    return h, w, counts


def decode_rle(rle: Mapping[str, Any]) -> npt.NDArray[np.bool_]:
    """Decode a COCO RLE (compressed or not) into an (H, W) bool mask.

    The values equal ``pycocotools.mask.decode``'s 0/1 array. Like it, the result is
    Fortran-ordered (a transposed view, no copy); use ``np.ascontiguousarray`` where
    C order matters.

    Parameters
    ----------
    rle
        ``{"size": [H, W], "counts": str | bytes | list[int]}``.

    Returns
    -------
    numpy.ndarray
        (H, W) bool.

    Raises
    ------
    MaskDecodeError
        A malformed RLE, or counts that do not add up to H * W.

    Examples
    --------
    >>> decode_rle({"size": [2, 2], "counts": [1, 2, 1]}).astype(int)
    array([[0, 1],
           [1, 0]])
    """
    h, w, counts = _parse(rle)
    values = np.zeros(counts.size, np.bool_)
    values[1::2] = True
    return np.repeat(values, counts).reshape(w, h).T


def rle_area(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels of an RLE (``pycocotools.mask.area``).

    Raises
    ------
    MaskDecodeError
        A malformed RLE.

    Examples
    --------
    >>> rle_area({"size": [2, 2], "counts": [1, 2, 1]})
    2
    """
    _, _, counts = _parse(rle)
    return int(counts[1::2].sum(dtype=np.uint64))


def rle_bbox(rle: Mapping[str, Any]) -> list[float]:
    """Bounding box ``[x, y, width, height]`` of an RLE (``pycocotools.mask.toBbox``).

    An empty mask gives ``[0.0, 0.0, 0.0, 0.0]``. Values are floats, as in COCO files
    and pycocotools.

    Raises
    ------
    MaskDecodeError
        A malformed RLE.

    Examples
    --------
    >>> rle_bbox(encode_rle(np.eye(3, dtype=bool)[:, ::-1]))
    [0.0, 0.0, 3.0, 3.0]
    """
    h, _, counts = _parse(rle)
    m = (counts.size // 2) * 2
    if m == 0 or h == 0:
        return [0.0, 0.0, 0.0, 0.0]
    # maskApi.c's rleToBbox over all runs at once, in its uint32 arithmetic: the first
    # and last pixel of each run of 1s; a run that wraps into the next column spans
    # the full height.
    cc = np.cumsum(counts[:m], dtype=np.uint32)
    t = cc - (np.arange(m, dtype=np.uint32) & np.uint32(1))
    y = t % np.uint32(h)
    x = (t - y) // np.uint32(h)
    xs, xe = int(x.min()), int(x.max())
    ys, ye = int(y.min()), int(y.max())
    if bool((x[0::2] < x[1::2]).any()):
        ys, ye = 0, h - 1
    return [float(xs), float(ys), float(xe - xs + 1), float(ye - ys + 1)]


def binary_mask(mask: MaskLike, *, level: int = 128) -> npt.NDArray[np.bool_]:
    """A mask as (H, W) bool, read as :func:`encode_rle` reads it.

    bool stays as it is; uint8 is ``>= level``, except a mask whose largest value is 1,
    which is read as 0/1 (COCO tools' convention).

    Examples
    --------
    >>> binary_mask(np.array([[0, 1]], np.uint8)).tolist()
    [[False, True]]
    >>> binary_mask(np.array([[1, 200]], np.uint8)).tolist()
    [[False, True]]
    """
    arr = _check_mask(mask)
    if arr.dtype == np.bool_:
        return arr
    out = arr >= level
    if level > 1 and arr.size and not out.any() and int(arr.max()) == 1:
        return arr.view(np.bool_)
    return out
