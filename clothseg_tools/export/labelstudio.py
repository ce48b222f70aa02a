"""Label Studio pre-annotations: a tasks file whose predictions hold our masks.

::

    out/
      tasks.json               [{"data": {"image": ...}, "predictions": [...]}, ...]
      labeling_config.xml      the labeling interface to paste into the project
      images/<name>.jpg        the photos, when copied

Import ``tasks.json`` into a project whose labeling interface is
``labeling_config.xml``; every task opens with our masks as editable predictions.

Two kinds of region:

``"brush"`` (default)
    ``brushlabels`` in Label Studio's own brush RLE (not COCO's): the picture as
    RGBA bytes, row by row, run-length coded in a bit stream (a 32-bit length, the
    word size, four run-length field widths, then per run a flag, a width index, the
    length and the byte). :func:`brush_rle` writes it from the mask's runs in whole
    arrays, byte for byte what ``label_studio_converter.brush.mask2rle`` writes.
    Exact: the brush holds every pixel.
``"polygon"``
    ``polygonlabels``, one region per connected part, points in percent of the
    image's width and height, holes joined in by zero-width slits.

Photos are referenced by URL (``image_root``: a web server or cloud bucket holding
them under their relative names) or, by default, as Label Studio local files below a
document root (``/data/local-files/?d=<path>``; start Label Studio with
``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to that root).

Examples
--------
>>> import numpy as np
>>> m = np.zeros((2, 3), bool); m[0, 1:] = True
>>> brush_rle(m)[:6]  # the header: 24 values (2 x 3 pixels x RGBA), word size 8 ...
[0, 0, 0, 24, 57, 27]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
import numpy.typing as npt

from .._convert import MaskLike
from .._io import atomic_write_bytes
from ..classes import CLASSES, class_color
from ._dataset import ExportSummary, place_photo, staged_folder
from ._source import ExportItem, instance_masks, iter_items
from .polygons import mask_to_polygons
from .rle import binary_mask

__all__ = ["brush_rle", "export_labelstudio", "labelstudio_config"]

logger = logging.getLogger("clothseg_tools")

# The field widths of a run's length; Label Studio's encoder always uses these.
_RLE_SIZES = (3, 4, 8, 16)
_WORD = 8
_LONGEST = 1 << 16  # the longest run one 16-bit field holds


def _header_bits(num: int) -> npt.NDArray[np.uint8]:
    """32-bit value count, 5-bit word size - 1, four 4-bit field widths - 1."""
    fields = [(num, 32), (_WORD - 1, 5)] + [(s - 1, 4) for s in _RLE_SIZES]
    return np.array([(v >> (w - 1 - i)) & 1 for v, w in fields for i in range(w)], np.uint8)


def _run_codes(
    lengths: npt.NDArray[np.int64], values: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
    """The code and bit width of every run, as Label Studio's encoder writes them.

    A run of 1 is a literal (flag 0, width index 0, length 0, the byte); a run of
    2..8, 9..16 or 17..256 takes the 3-, 4- or 8-bit length field; a longer one the
    16-bit field, cut into pieces of at most 65536, every piece in the 16-bit form.
    """
    index = np.searchsorted(np.array([8, 16, 256]), lengths, side="left")  # 0..3
    index[lengths <= 1] = 0
    size = np.array(_RLE_SIZES)[index]
    pieces = np.where(index == 3, (lengths - 1) // _LONGEST + 1, 1)
    # expand long runs into their pieces: every piece but the last holds 65536
    run = np.repeat(np.arange(lengths.size), pieces)
    first = np.cumsum(pieces) - pieces
    k = np.arange(run.size) - first[run]
    piece_len = np.where(k < pieces[run] - 1, _LONGEST, lengths[run] - k * _LONGEST)
    size, index, value = size[run], index[run], values[run]
    flag = (lengths[run] > 1).astype(np.int64)
    width = 1 + 2 + size + _WORD
    code = (
        (flag << (2 + size + _WORD))
        | (index << (size + _WORD))
        | ((piece_len - 1) << _WORD)
        | value
    )
    return code.astype(np.uint32), width


def brush_rle(mask: MaskLike, *, level: int = 128) -> list[int]:
    """A mask as Label Studio's brush RLE (``value.rle`` of a ``brushlabels`` region).

    The picture is RGBA with every channel 255 inside the mask and 0 outside, as
    Label Studio draws a brush; the result equals
    ``label_studio_converter.brush.mask2rle(mask * 255)`` (a test checks it), computed
    from the mask's runs rather than bit string by bit string.

    Parameters
    ----------
    mask
        (H, W) bool or uint8 mask (uint8 is ``>= level``).
    level
        Threshold for uint8 masks.

    Returns
    -------
    list of int
        The bytes of the bit stream, as Label Studio's JSON holds them.

    Examples
    --------
    >>> len(brush_rle(np.ones((64, 64), bool)))  # one run of 16384 values: 11 bytes
    11
    """
    binary = binary_mask(mask, level=level)
    flat = np.ascontiguousarray(binary).reshape(-1)
    n = flat.size
    if n == 0:
        lengths = np.zeros(0, np.int64)
        values = np.zeros(0, np.int64)
    else:
        ends = np.flatnonzero(flat[1:] != flat[:-1])
        bounds = np.concatenate([[-1], ends, [n - 1]])
        lengths = np.diff(bounds).astype(np.int64) * 4  # each pixel is four RGBA bytes
        values = flat[bounds[1:]].astype(np.int64) * 255
    code, width = _run_codes(lengths, values)
    # each code left-aligned in 32 bits, unpacked, and its first `width` bits kept
    aligned = (code.astype(np.uint64) << (32 - width).astype(np.uint64)).astype(">u4")
    bits = np.unpackbits(aligned.view(np.uint8).reshape(-1, 4), axis=1)
    keep = np.arange(32) < width[:, None]
    stream = np.concatenate([_header_bits(4 * n), bits[keep]])
    # Label Studio pads with 1..8 zero bits: a stream already whole in bytes gains one
    padded = np.zeros(stream.size // 8 * 8 + 8, np.uint8)
    padded[: stream.size] = stream
    return np.packbits(padded).tolist()


def labelstudio_config(
    kind: str = "brush",
    classes: Sequence[str] = CLASSES,
    *,
    from_name: str = "label",
    to_name: str = "image",
) -> str:
    """The labeling interface XML for pre-annotations of ``kind``.

    Examples
    --------
    >>> print(labelstudio_config("polygon", ["tops"]))
    <View>
      <Image name="image" value="$image" zoom="true"/>
      <PolygonLabels name="label" toName="image" strokeWidth="2">
        <Label value="tops" background="#d62728"/>
      </PolygonLabels>
    </View>
    <BLANKLINE>
    """
    tag = _tag(kind)
    extra = ' strokeWidth="2"' if kind == "polygon" else ""
    labels = "\n".join(f'    <Label value={quoteattr(c)} background="{_hex(c)}"/>' for c in classes)
    return (
        "<View>\n"
        f'  <Image name={quoteattr(to_name)} value="$image" zoom="true"/>\n'
        f"  <{tag} name={quoteattr(from_name)} toName={quoteattr(to_name)}{extra}>\n"
        f"{labels}\n"
        f"  </{tag}>\n"
        "</View>\n"
    )


def _hex(name: str) -> str:
    r, g, b = class_color(name)
    return f"#{r:02x}{g:02x}{b:02x}"


def _tag(kind: str) -> str:
    if kind not in ("brush", "polygon"):
        raise ValueError(f"kind must be 'brush' or 'polygon', got {kind!r}.")
    return "BrushLabels" if kind == "brush" else "PolygonLabels"


def _regions(
    item: ExportItem,
    kind: str,
    *,
    level: int,
    parts: bool,
    tolerance: float,
    from_name: str,
    to_name: str,
) -> list[dict[str, Any]]:
    h, w = item.masks.shape
    regions: list[dict[str, Any]] = []
    for cls, mask in instance_masks(item, level, parts):
        if not mask.any():
            continue
        if kind == "brush":
            shapes: list[dict[str, Any]] = [
                {"format": "rle", "rle": brush_rle(mask), "brushlabels": [cls]}
            ]
        else:
            shapes = []
            for polygon in mask_to_polygons(mask, tolerance=tolerance):
                xy = np.asarray(polygon).reshape(-1, 2) * (100.0 / w, 100.0 / h)
                points = [[round(float(x), 4), round(float(y), 4)] for x, y in xy]
                shapes.append({"points": points, "closed": True, "polygonlabels": [cls]})
        for value in shapes:
            regions.append(
                {
                    "id": f"r{len(regions)}",
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "brushlabels" if kind == "brush" else "polygonlabels",
                    "original_width": w,
                    "original_height": h,
                    "image_rotation": 0,
                    "value": value,
                }
            )
    return regions


def _relative_photo(item: ExportItem) -> str:
    suffix = Path(item.file_name).suffix.lower() or ".jpg"
    return f"{item.name}{suffix}"


def export_labelstudio(
    results: Any,
    out: str | os.PathLike[str],
    *,
    kind: str = "brush",
    image_root: str | None = None,
    local_root: str | os.PathLike[str] | None = None,
    images: bool = True,
    parts: bool = True,
    level: int = 128,
    tolerance: float = 0.25,
    from_name: str = "label",
    to_name: str = "image",
    model_version: str = "clothseg_tools",
    overwrite: bool = False,
) -> ExportSummary:
    """Write Label Studio tasks with our masks as predictions, and the labeling config.

    Parameters
    ----------
    results
        Result folders, a folder holding them, ``(file_name, MaskSet[, parts])``
        tuples or ``SegmentationResult`` objects.
    out
        The output folder (``tasks.json``, ``labeling_config.xml``, ``images/``).
    kind
        ``"brush"`` (exact brush masks, default) or ``"polygon"``.
    image_root
        URL prefix the photos are served under by their relative names
        (``https://bucket.example/shop/`` + ``a.jpg``). Without it, photos are
        Label Studio local files.
    local_root
        The local-files document root (default: ``out``): tasks name each photo
        copied to ``out/images/`` by its path below this root.
    images
        Copy the photos into ``out/images/`` (default).
    parts
        One region per per-garment part where parts were saved.
    level, tolerance
        Mask threshold; polygon simplification in pixels.
    from_name, to_name
        The names of the labels tag and the image tag in the labeling config.
    model_version
        Recorded with each prediction.
    overwrite
        Replace ``out`` if it exists and is not empty.

    Returns
    -------
    ExportSummary
        ``annotations`` counts the regions.

    Raises
    ------
    ValueError
        Unknown ``kind``, or photos outside ``local_root``.
    FileNotFoundError
        A photo not on disk (with ``images``).
    """
    _tag(kind)
    target = Path(out)
    root = Path(local_root) if local_root is not None else target
    tasks: list[dict[str, Any]] = []
    n_regions = 0
    with staged_folder(target, overwrite=overwrite) as stage:
        for item in iter_items(results):
            item.check()
            rel = _relative_photo(item)
            if images:
                rel = place_photo(item, stage / "images").relative_to(stage / "images").as_posix()
            if image_root is not None:
                url = image_root.rstrip("/") + "/" + quote(rel)
            else:
                url = "/data/local-files/?d=" + quote(_below(root, target / "images" / rel))
            regions = _regions(
                item,
                kind,
                level=level,
                parts=parts,
                tolerance=tolerance,
                from_name=from_name,
                to_name=to_name,
            )
            n_regions += len(regions)
            tasks.append(
                {
                    "data": {"image": url, "name": item.name},
                    "predictions": [{"model_version": model_version, "result": regions}],
                }
            )
        atomic_write_bytes(
            stage / "tasks.json",
            json.dumps(tasks, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        )
        config = labelstudio_config(kind, from_name=from_name, to_name=to_name)
        atomic_write_bytes(stage / "labeling_config.xml", config.encode("utf-8"))
    logger.info("export_labelstudio: wrote %d tasks, %d regions", len(tasks), n_regions)
    return ExportSummary(target, len(tasks), n_regions)


def _below(root: Path, path: Path) -> str:
    """``path`` relative to the document root, ``/``-separated."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ValueError(
            f"{path} is not below the local-files document root {root}; pass a local_root "
            "that holds the output folder."
        ) from None
