"""The per-garment ZIP (``output_type`` 2/3): read it safely, group its parts, write one.

The service packs one grayscale mask per garment instance into a ZIP. Its layout is
not documented, so the reader does not depend on one: each entry's class is inferred
from its file or folder name (``tops/0.png``, ``tops_1.png``, ``dress-02.png``) and
unknown names are kept as they are.

A ZIP from the network is untrusted. Before anything is inflated, the reader refuses
(with :class:`~clothseg_tools.errors.UnsafeZipError`) entries with absolute paths or
``..``, more than ``max_entries`` entries (counted from the end record, before the
central directory is parsed), and declared sizes or compression ratios over the
limits. While inflating it counts the bytes again, so an entry whose header lies
about its size is cut off at the declared size and refused. Before any image is
decoded, the sizes in the entries' image headers are summed against a pixel budget
(``max_total_pixels``), since small PNGs may declare huge images. Junk (``__MACOSX/``, dot
files, ``Thumbs.db``, non-images, links) is skipped and reported.

Examples
--------
>>> import numpy as np
>>> parts = {"tops_10": np.zeros((2, 2), np.uint8), "tops_2": np.ones((2, 2), np.uint8),
...          "dress-01": np.ones((2, 2), np.uint8)}
>>> data = write_mask_zip(parts)
>>> list(read_mask_zip(data))
['dress-01', 'tops_2', 'tops_10']
>>> {k: list(v) for k, v in group_parts(read_mask_zip(data)).items()}
{'tops': ['tops_2', 'tops_10'], 'dress': ['dress-01']}
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np
import numpy.typing as npt

from . import limits
from ._convert import as_mask
from ._io import encode_png, open_regular_file, write_png
from .classes import CLASSES, canonical_class
from .decode import _open_mask, _Opened, _run_all
from .errors import ClothsegError, MaskZipError, UnsafeZipError

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11 on

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_ZIP_ENTRIES",
    "MAX_ZIP_ENTRY_BYTES",
    "MAX_ZIP_RATIO",
    "MAX_ZIP_TOTAL_BYTES",
    "MAX_ZIP_TOTAL_PIXELS",
    "MaskZipReport",
    "SkippedEntry",
    "ZipReadOptions",
    "extract_mask_zip",
    "group_parts",
    "natural_key",
    "normalize_part_names",
    "part_class",
    "read_mask_zip",
    "read_mask_zip_report",
    "write_mask_zip",
]

logger = logging.getLogger("clothseg_tools")

#: Most entries a mask ZIP may have (one per garment instance: dozens in practice).
MAX_ZIP_ENTRIES = 1000
#: Largest uncompressed entry: a 4096 x 4096 mask is 16 MiB even stored raw.
MAX_ZIP_ENTRY_BYTES = limits.MAX_MASK_BYTES
#: Largest total uncompressed size of the entries read.
MAX_ZIP_TOTAL_BYTES = 512 * 1024 * 1024
#: Largest total of decoded pixels (width x height summed over the mask entries):
#: 32 full-size 4096 x 4096 masks, 512 MiB of uint8. Small PNGs can declare huge
#: images, so the byte limits alone let a 22 MB ZIP decode to gigabytes.
MAX_ZIP_TOTAL_PIXELS = 32 * limits.MAX_PIXELS
#: Largest compression ratio of an entry. PNG, JPEG and WebP entries barely compress
#: (about 1:1); a raw BMP/TIFF mask of mostly background may reach 100:1; a bomb is
#: near deflate's 1032:1.
MAX_ZIP_RATIO = 100
# Entries smaller than this are not ratio-checked: a few kB of zeros compress
# 100:1 and can do no harm.
_RATIO_FLOOR = 1024 * 1024
_READ_CHUNK = 1024 * 1024

#: File suffixes read as masks; any other entry is skipped as "not an image".
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", ".ds_store"})
_INDEX_SUFFIX = re.compile(r"[\s_\-.]*(?:\(\d+\)|\d+)$")


@dataclass(frozen=True)
class SkippedEntry:
    """An entry the reader left out, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class MaskZipReport:
    """What :func:`read_mask_zip_report` found.

    Attributes
    ----------
    parts : dict of str to ndarray
        Natural-sorted ``{name: (H, W) uint8 mask}``; names are entry paths without
        the image suffix (``"tops/0"``, ``"tops_1"``).
    skipped : tuple of SkippedEntry
        Junk entries left out (directories are not listed).
    """

    parts: dict[str, npt.NDArray[np.uint8]]
    skipped: tuple[SkippedEntry, ...]


# -- names ----------------------------------------------------------------------------


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``tops_2`` before ``tops_10``.

    Examples
    --------
    >>> sorted(["tops_10", "Tops_2", "dress-1"], key=natural_key)
    ['dress-1', 'Tops_2', 'tops_10']
    """
    return tuple(
        (0, int(tok)) if tok.isdigit() else (1, tok.lower())
        for tok in re.split(r"(\d+)", name)
        if tok
    )


def _strip_suffix(stem: str) -> str:
    root, ext = os.path.splitext(stem)
    return root if ext.lower() in IMAGE_SUFFIXES else stem


def part_class(name: str) -> str:
    """Infer the class of a part from its file or folder name.

    The file name without its index (``tops_1``, ``dress-02``, ``Tops (3)``) is tried
    first, then the folders from the innermost out; names and aliases are matched
    case-insensitively (``upper_clothes`` -> ``tops``). An unknown name is kept as it
    is (without its index), or the innermost folder when the file name is only an
    index.

    Examples
    --------
    >>> [part_class(n) for n in ["tops/0.png", "tops_1.png", "dress-02.png", "Skirt 3"]]
    ['tops', 'tops', 'dress', 'bottoms']
    >>> part_class("result/scarf_2.png"), part_class("extras/7.png")
    ('scarf', 'extras')
    """
    pieces = [p for p in name.replace("\\", "/").split("/") if p]
    if not pieces:
        return name
    stem = _strip_suffix(pieces[-1])
    base = stem
    while True:  # "tops_1_2" -> "tops"
        stripped = _INDEX_SUFFIX.sub("", base)
        if stripped == base:
            break
        base = stripped
    folders = pieces[:-1]
    for candidate in [base, *reversed(folders)]:
        if candidate and canonical_class(candidate) in CLASSES:
            return canonical_class(candidate)
    if base:
        return base
    return folders[-1] if folders else stem


def group_parts(
    parts: Mapping[str, npt.NDArray[np.uint8]],
) -> dict[str, dict[str, npt.NDArray[np.uint8]]]:
    """Group parts by inferred class: ``{class: {name: mask}}``.

    Classes come in :data:`~clothseg_tools.CLASSES` order, unknown ones after them in
    order of first appearance; names within a class are natural-sorted.

    Examples
    --------
    >>> m = np.zeros((1, 1), np.uint8)
    >>> g = group_parts({"scarf_1": m, "tops/10": m, "tops/9": m, "hair_0": m})
    >>> {k: list(v) for k, v in g.items()}
    {'hair': ['hair_0'], 'tops': ['tops/9', 'tops/10'], 'scarf': ['scarf_1']}
    """
    groups: dict[str, dict[str, npt.NDArray[np.uint8]]] = {}
    for name in sorted(parts, key=natural_key):
        groups.setdefault(part_class(name), {})[name] = parts[name]
    order = {c: i for i, c in enumerate(CLASSES)}
    ranked = sorted(enumerate(groups), key=lambda ic: (order.get(ic[1], len(order)), ic[0]))
    return {cls: groups[cls] for _, cls in ranked}


def normalize_part_names(
    parts: Mapping[str, npt.NDArray[np.uint8]],
) -> dict[str, npt.NDArray[np.uint8]]:
    """Rename parts to ``<class>_<k>`` (k = 0, 1, ... per class, natural order).

    Examples
    --------
    >>> m = np.zeros((1, 1), np.uint8)
    >>> list(normalize_part_names({"tops/2.png": m, "tops/10.png": m, "Dress-1": m}))
    ['tops_0', 'tops_1', 'dress_0']
    """
    out: dict[str, npt.NDArray[np.uint8]] = {}
    for cls, members in group_parts(parts).items():
        for k, mask in enumerate(members.values()):
            out[f"{cls}_{k}"] = mask
    return out


# -- safety checks --------------------------------------------------------------------


def _unsafe_reason(name: str) -> str | None:
    if not name or "\0" in name:
        return "an empty name or a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "an absolute path"
    if ".." in norm.split("/"):
        return "a '..' path component"
    return None


def _junk_reason(info: zipfile.ZipInfo) -> str | None:
    pieces = [p for p in info.filename.replace("\\", "/").split("/") if p]
    if any(p.lower() in _JUNK_NAMES for p in pieces):
        return "operating-system metadata"
    if any(p.startswith(".") for p in pieces):
        return "hidden (dot) file"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if os.path.splitext(pieces[-1])[1].lower() not in IMAGE_SUFFIXES:
        return "not an image"
    return None


def _declared_entry_count(fp: IO[bytes]) -> int | None:
    """Entry count from the end-of-central-directory record, or None if not found.

    Read before zipfile parses the central directory, so a ZIP declaring millions
    of entries is refused without building millions of ZipInfo objects.
    """
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    tail_len = min(size, 22 + 65535)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return None
    (count,) = struct.unpack("<H", tail[pos + 10 : pos + 12])
    if count == 0xFFFF and pos >= 20 and tail[pos - 20 : pos - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[pos - 12 : pos - 4])
        fp.seek(offset)
        record = fp.read(56)
        if record[:4] == b"PK\x06\x06" and len(record) == 56:
            (count,) = struct.unpack("<Q", record[32:40])
    return int(count)


def _open_source(source: Any, max_total_bytes: int) -> tuple[IO[bytes], bool]:
    """A seekable binary file for ``source`` and whether we must close it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, (str, os.PathLike)):
        return open_regular_file(source), True  # closed by the caller
    if hasattr(source, "read"):
        if getattr(source, "seekable", lambda: False)():
            return source, False
        data = source.read(max_total_bytes + 1)
        if len(data) > max_total_bytes:
            raise UnsafeZipError(
                f"The ZIP stream is larger than {max_total_bytes:,} bytes; refusing it."
            )
        return io.BytesIO(data), True
    raise MaskZipError(
        f"Cannot read a ZIP from a {type(source).__name__}; pass bytes, a path or a "
        "binary file object."
    )


def _select_entries(
    zf: zipfile.ZipFile,
    *,
    max_entries: int,
    max_total_bytes: int,
    max_entry_bytes: int,
    max_ratio: float,
) -> tuple[list[zipfile.ZipInfo], list[SkippedEntry]]:
    """Check every entry's name and declared sizes; nothing is inflated here."""
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise UnsafeZipError(
            f"The ZIP has {len(infos):,} entries, over the limit of {max_entries:,}."
        )
    selected: list[zipfile.ZipInfo] = []
    skipped: list[SkippedEntry] = []
    total = 0
    for info in infos:
        reason = _unsafe_reason(info.filename)
        if reason is not None:
            raise UnsafeZipError(
                f"ZIP entry {info.filename!r} has {reason}; refusing the whole archive."
            )
        if info.is_dir():
            continue
        junk = _junk_reason(info)
        if junk is not None:
            skipped.append(SkippedEntry(info.filename, junk))
            continue
        if info.flag_bits & 0x1:
            raise MaskZipError(f"ZIP entry {info.filename!r} is encrypted; it cannot be read.")
        if info.file_size > max_entry_bytes:
            raise UnsafeZipError(
                f"ZIP entry {info.filename!r} declares {info.file_size:,} bytes uncompressed, "
                f"over the per-entry limit of {max_entry_bytes:,}."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > max_ratio:
            raise UnsafeZipError(
                f"ZIP entry {info.filename!r} has a compression ratio of {ratio:,.0f}:1, over "
                f"the limit of {max_ratio:,.0f}:1 (a decompression bomb?)."
            )
        total += info.file_size
        if total > max_total_bytes:
            raise UnsafeZipError(
                f"The ZIP's entries declare over {max_total_bytes:,} bytes uncompressed "
                "in total; refusing it."
            )
        selected.append(info)
    return selected, skipped


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """Inflate one entry, never past its declared size or ``budget`` bytes."""
    limit = min(info.file_size, budget)
    buf = bytearray()
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(min(_READ_CHUNK, limit + 1 - len(buf)))
            if not chunk:
                break
            buf += chunk
            if len(buf) > limit:
                raise UnsafeZipError(
                    f"ZIP entry {info.filename!r} inflates past its declared "
                    f"{info.file_size:,} bytes (or the size budget); refusing it."
                )
    if len(buf) != info.file_size:
        raise MaskZipError(
            f"ZIP entry {info.filename!r} is truncated ({len(buf):,} of {info.file_size:,} bytes)."
        )
    return bytes(buf)


def _entry_key(filename: str) -> str:
    return _strip_suffix(filename.replace("\\", "/").strip("/"))


# -- reading --------------------------------------------------------------------------


class ZipReadOptions(TypedDict, total=False):
    """The limits and threads of a ZIP read, as keywords: the readers take these
    (:func:`read_mask_zip`, :func:`extract_mask_zip`) and pass them on to
    :func:`read_mask_zip_report`, which has their defaults and meanings."""

    max_entries: int
    max_total_bytes: int
    max_entry_bytes: int
    max_ratio: float
    max_pixels: int | None
    max_total_pixels: int | None
    workers: int


def read_mask_zip_report(
    source: bytes | str | os.PathLike[str] | IO[bytes],
    *,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
    max_entry_bytes: int = MAX_ZIP_ENTRY_BYTES,
    max_ratio: float = MAX_ZIP_RATIO,
    max_pixels: int | None = limits.MAX_PIXELS,
    max_total_pixels: int | None = MAX_ZIP_TOTAL_PIXELS,
    workers: int = 2,
) -> MaskZipReport:
    """Read a per-garment mask ZIP and say what was skipped.

    Parameters
    ----------
    source
        The ZIP as bytes, a path, or a binary file object.
    max_entries
        Most entries (of any kind) the archive may have.
    max_total_bytes, max_entry_bytes
        Largest total / per-entry uncompressed size of the mask entries.
    max_ratio
        Largest uncompressed / compressed ratio of an entry over 1 MiB.
    max_pixels
        Pixel cap of each mask (see :func:`~clothseg_tools.decode.mask_from_bytes`).
    max_total_pixels
        Pixel budget of the whole archive: width x height summed over the mask
        entries, read from each entry's header before anything is decoded (``None``:
        no budget).
    workers
        Threads that decode the images.

    Returns
    -------
    MaskZipReport
        ``parts`` natural-sorted, and the ``skipped`` junk entries.

    Raises
    ------
    UnsafeZipError
        Path tricks, too many entries, sizes or ratios over the limits, or an entry
        inflating past its declared size. Checked before anything is inflated,
        except the last, which is enforced while inflating. Also entries whose
        images add up to more than ``max_total_pixels``, checked from their headers
        before any image is decoded.
    MaskZipError
        Not a ZIP, a corrupt or encrypted entry, an entry that is not a decodable
        image, or two entries with the same name.

    Examples
    --------
    >>> import zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("tops/0.png", encode_png(np.zeros((2, 2), np.uint8)))
    ...     zf.writestr("__MACOSX/tops/._0.png", b"junk")
    >>> report = read_mask_zip_report(buf.getvalue())
    >>> list(report.parts), [s.reason for s in report.skipped]
    (['tops/0'], ['operating-system metadata'])
    """
    fp, close = _open_source(source, max_total_bytes)
    try:
        declared = _declared_entry_count(fp)
        if declared is not None and declared > max_entries:
            raise UnsafeZipError(
                f"The ZIP declares {declared:,} entries, over the limit of {max_entries:,}."
            )
        fp.seek(0)
        try:
            zf = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise MaskZipError(f"Not a readable ZIP archive ({exc}).") from exc
        with zf:
            selected, skipped = _select_entries(
                zf,
                max_entries=max_entries,
                max_total_bytes=max_total_bytes,
                max_entry_bytes=max_entry_bytes,
                max_ratio=max_ratio,
            )
            blobs: list[tuple[str, bytes]] = []
            budget = max_total_bytes
            for info in selected:
                try:
                    data = _read_entry(zf, info, min(budget, max_entry_bytes))
                except ClothsegError:
                    raise
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                    raise MaskZipError(
                        f"ZIP entry {info.filename!r} cannot be read ({exc})."
                    ) from exc
                budget -= len(data)
                blobs.append((info.filename, data))
    finally:
        if close:
            fp.close()

    keys: dict[str, str] = {}
    for filename, _ in blobs:
        key = _entry_key(filename)
        if key in keys:
            raise MaskZipError(
                f"ZIP entries {keys[key]!r} and {filename!r} both give the part name {key!r}."
            )
        keys[key] = filename

    opened = _open_within_budget(blobs, max_pixels, max_total_pixels)

    def decode(item: tuple[str, _Opened]) -> npt.NDArray[np.uint8]:
        filename, image = item
        try:
            return image.decode()
        except ClothsegError as exc:
            raise MaskZipError(f"ZIP entry {filename!r}: {exc}") from exc

    masks = _run_all(decode, opened, workers)
    parts = {_entry_key(f): m for (f, _), m in zip(blobs, masks, strict=True)}
    ordered = {k: parts[k] for k in sorted(parts, key=natural_key)}
    if skipped:
        logger.info(
            "mask ZIP: skipped %d entr%s: %s",
            len(skipped),
            "y" if len(skipped) == 1 else "ies",
            ", ".join(f"{s.name} ({s.reason})" for s in skipped),
        )
    return MaskZipReport(ordered, tuple(skipped))


def _open_within_budget(
    blobs: list[tuple[str, bytes]], max_pixels: int | None, max_total_pixels: int | None
) -> list[tuple[str, _Opened]]:
    """Open every entry (header only) and refuse the archive once its pixels pass the
    budget: nothing is decoded until every entry has been counted."""
    opened: list[tuple[str, _Opened]] = []
    total = 0
    for filename, data in blobs:
        what = f"mask {filename!r}"
        try:
            image = _Opened(_open_mask(data, what, max_pixels), what)
        except ClothsegError as exc:
            raise MaskZipError(f"ZIP entry {filename!r}: {exc}") from exc
        width, height = image.image.size
        total += width * height
        if max_total_pixels is not None and total > max_total_pixels:
            raise UnsafeZipError(
                f"The ZIP's mask images add up to more than {max_total_pixels:,} pixels "
                f"(the decoded-pixel budget, max_total_pixels) by entry {filename!r} "
                f"({width} x {height}), {len(opened) + 1} of {len(blobs)}; refusing it "
                "before decoding. If such archives are expected, pass a larger "
                "max_total_pixels (or None) to read_mask_zip."
            )
        opened.append((filename, image))
    return opened


def read_mask_zip(
    source: bytes | str | os.PathLike[str] | IO[bytes], **options: Unpack[ZipReadOptions]
) -> dict[str, npt.NDArray[np.uint8]]:
    """Read a per-garment mask ZIP into a natural-sorted ``{name: (H, W) uint8}``.

    Names are entry paths without the image suffix (``"tops/0"``, ``"tops_1"``);
    use :func:`group_parts` to group them by class. Skipped junk is logged; use
    :func:`read_mask_zip_report` to get the list. Parameters and Raises are those
    of :func:`read_mask_zip_report`.

    Examples
    --------
    >>> data = write_mask_zip({"tops_0": np.zeros((1, 1), np.uint8)}, layout="folders")
    >>> list(read_mask_zip(data))
    ['tops/0']
    """
    return read_mask_zip_report(source, **options).parts


def extract_mask_zip(
    source: bytes | str | os.PathLike[str] | IO[bytes],
    folder: str | os.PathLike[str],
    **options: Unpack[ZipReadOptions],
) -> list[Path]:
    """Read a mask ZIP safely and write each part as an 8-bit grayscale PNG in ``folder``.

    Every file lands inside ``folder`` (``<folder>/<name>.png``, subfolders kept):
    names were already checked for path tricks, and each target is resolved again
    (symbolic links included) before writing. Files are written atomically. The
    ``options`` are those of :func:`read_mask_zip_report`.

    Returns
    -------
    list of pathlib.Path
        The files written, in natural order.

    Raises
    ------
    UnsafeZipError, MaskZipError
        As :func:`read_mask_zip_report`; also a target that would resolve outside
        ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> data = write_mask_zip({"tops_0": np.ones((1, 1), np.uint8)}, layout="folders")
    >>> [p.name for p in extract_mask_zip(data, tempfile.mkdtemp())]
    ['0.png']
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    real_root = root.resolve()
    written: list[Path] = []
    for name, mask in read_mask_zip_report(source, **options).parts.items():
        target = root / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.resolve().is_relative_to(real_root):
            raise UnsafeZipError(
                f"ZIP part {name!r} would be written outside {root} (through a link); refusing it."
            )
        write_png(target, mask)
        written.append(target)
    return written


# -- writing --------------------------------------------------------------------------


def _flat_name(name: str) -> str:
    return _strip_suffix(name).replace("\\", "/").strip("/").replace("/", "_")


def write_mask_zip(
    parts: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    layout: Literal["flat", "folders"] = "flat",
) -> bytes:
    """Pack masks as a ZIP of grayscale PNGs (what the service returns for parts).

    Parameters
    ----------
    parts
        ``{name: (H, W) uint8 or bool mask}``.
    layout
        ``"flat"``: ``<name>.png`` at the top (folders in names become ``_``);
        ``"folders"``: ``<class>/<k>.png`` with the class inferred by
        :func:`part_class` and k counting from 0 in natural order.

    Returns
    -------
    bytes
        The ZIP. PNGs are stored, not deflated again, and timestamps are fixed, so
        the same masks give the same bytes.

    Examples
    --------
    >>> import zipfile
    >>> data = write_mask_zip({"tops_1": np.zeros((1, 1), bool)}, layout="folders")
    >>> zipfile.ZipFile(io.BytesIO(data)).namelist()
    ['tops/0.png']
    """
    items = dict(parts.items() if isinstance(parts, Mapping) else parts)
    if layout == "flat":
        named = {f"{_flat_name(n)}.png": m for n, m in items.items()}
        if len(named) != len(items):
            raise ValueError("Two part names give the same file name in the flat layout.")
    elif layout == "folders":
        named = {}
        for cls, members in group_parts(items).items():
            for k, mask in enumerate(members.values()):
                named[f"{_flat_name(cls)}/{k}.png"] = mask
    else:
        raise ValueError(f"layout must be 'flat' or 'folders', got {layout!r}.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for arcname, mask in named.items():
            if _unsafe_reason(arcname) is not None:
                raise ValueError(f"Unsafe part name {arcname!r}.")
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, encode_png(as_mask(mask, name=f"part {arcname!r}")))
    return buf.getvalue()
