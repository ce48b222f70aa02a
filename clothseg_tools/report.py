"""A self-contained HTML review page of a folder of segmentation results.

:func:`build_report` writes ``report.html`` and a ``report_files/`` folder of small
pictures beside it. Per image it shows the photo, the overlay of the classes, the
garment cutout and the image's coverage row; for the dataset, charts of how often
each class appears and how much of the picture it covers (inline SVG drawn here, no
plotting library); and every failure recorded in the batch manifests, with its reason.
Nothing is fetched from the network, so the page works offline and can be zipped
with its folder.

Examples
--------
>>> svg = svg_bar_chart(["tops", "dress"], [0.5, 0.25], title="Share")
>>> svg.startswith("<svg") and "tops" in svg and "50%" in svg
True
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._io import atomic_write_bytes
from .batch.discover import BatchItem, require_results
from .batch.manifest import read_manifest
from .batch.post import load_photo, result_masks, wearable_classes
from .classes import CLASSES, LABEL_PRIORITY, class_color
from .composite import cutout, overlay
from .ops import label_map, merge, resize_mask
from .result import SegmentationResult
from .stats import Coverage, coverage, summarize

__all__ = [
    "REPORT_FILES",
    "REPORT_NAME",
    "build_report",
    "svg_bar_chart",
    "svg_histogram",
]

logger = logging.getLogger("clothseg_tools")

#: Default file name of the report, in the results folder.
REPORT_NAME = "report.html"
#: Folder of the report's pictures, beside the HTML file.
REPORT_FILES = "report_files"

# Post-processing outputs linked at full size when they exist in a result folder.
_FULL_SIZE = {"overlay": "overlay.png", "cutout": "cutout.png", "labels": "labels.png"}


# -- charts ------------------------------------------------------------------------------

#: Colour of the charts that are about no one class (the worn share).
_WORN_COLOR = (31, 119, 180)
#: Longest bar label drawn in full; longer ones are cut with an ellipsis (the bar's
#: tooltip keeps the whole).
_LABEL_CHARS = 28


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb[:3]))


def svg_bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    colors: Sequence[Sequence[int]] | None = None,
    max_value: float | None = None,
    value_format: str = "{:.0%}",
    width: int = 520,
    bar_height: int = 18,
) -> str:
    """A horizontal bar chart as an inline ``<svg>`` element.

    Parameters
    ----------
    labels
        One label per bar, drawn left of it (the label column widens to fit, up to half
        the chart; labels over 28 characters keep their end, after an ellipsis).
    values
        Bar lengths (non-negative).
    title
        Caption above the bars.
    colors
        RGB per bar (default: the class palette colour of each label).
    max_value
        Value of a full-width bar (default: the largest value, or 1).
    value_format
        Format of the number printed after each bar.
    width, bar_height
        Size in pixels.

    Returns
    -------
    str
        SVG markup; text is escaped.
    """
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels but {len(values)} values.")
    top = 26 if title else 6
    shown = [_short(str(label)) for label in labels]
    # room for the longest label (about 7 px a character at 12 px), at least 90 px
    label_w = max(90, min(7 * max((len(t) for t in shown), default=0) + 12, width // 2))
    value_w = 60
    plot_w = width - label_w - value_w
    height = top + len(values) * (bar_height + 6) + 4
    peak = max_value if max_value else max([float(v) for v in values] + [0.0]) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">'
    ]
    if title:
        parts.append(f'<text x="0" y="16" class="title">{html.escape(title)}</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * (bar_height + 6)
        color = _hex(colors[i]) if colors is not None else _hex(class_color(label))
        length = max(0.0, min(1.0, float(value) / peak)) * plot_w
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_height - 5}" text-anchor="end">'
            f"{html.escape(shown[i])}</text>"
            f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_height}" '
            f'fill="{color}"><title>{html.escape(str(label))}: '
            f"{html.escape(value_format.format(value))}</title></rect>"
            f'<text x="{label_w + length + 4:.1f}" y="{y + bar_height - 5}">'
            f"{html.escape(value_format.format(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else "…" + label[-(_LABEL_CHARS - 1) :]


def svg_histogram(
    values: Sequence[float] | npt.NDArray[Any],
    *,
    bins: int = 10,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str = "",
    tick_format: str = "{:.0%}",
    width: int = 520,
    height: int = 180,
    color: Sequence[int] = _WORN_COLOR,
) -> str:
    """A histogram as an inline ``<svg>`` element.

    Examples
    --------
    >>> svg = svg_histogram([0.1, 0.15, 0.8], bins=4, title="Garment share")
    >>> svg.count("<rect"), "Garment share" in svg
    (4, True)
    """
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins, range=value_range)
    top = 26 if title else 6
    bottom, left = 22, 30
    plot_h = height - top - bottom
    plot_w = width - left - 24  # room for the last tick label, centred on the edge
    peak = int(counts.max()) if counts.size and counts.max() > 0 else 1
    bar_w = plot_w / bins
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">'
    ]
    if title:
        parts.append(f'<text x="0" y="16" class="title">{html.escape(title)}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>')
    for i, count in enumerate(counts):
        h = plot_h * int(count) / peak
        x = left + i * bar_w
        lo, hi = tick_format.format(edges[i]), tick_format.format(edges[i + 1])
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{h:.1f}" fill="{_hex(color)}"><title>{html.escape(lo)}–'
            f"{html.escape(hi)}: {int(count)}</title></rect>"
        )
        if count:  # the count on the bar: readable without hovering
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{max(top + 10, top + plot_h - h - 3):.1f}" '
                f'text-anchor="middle" class="count">{int(count)}</text>'
            )
    for i in range(0, bins + 1, max(1, bins // 5)):
        x = left + i * bar_w
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">'
            f"{html.escape(tick_format.format(edges[i]))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- per-image pictures ------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    """What the page shows for one result folder."""

    key: str
    folder: Path
    source: str | None = None  # as shown: relative to the results folder where it can be
    size: tuple[int, int] | None = None
    classes: tuple[str, ...] = ()
    fractions: dict[str, float] = dataclasses.field(default_factory=dict)
    worn: float | None = None  # share of the picture covered by anything worn
    pictures: dict[str, str] = dataclasses.field(default_factory=dict)  # kind -> relative
    links: dict[str, str] = dataclasses.field(default_factory=dict)  # kind -> relative
    labels_from_file: bool = False  # the labels picture is the folder's labels.png
    shown: dict[str, float] = dataclasses.field(default_factory=dict)  # share drawn on top
    notes: tuple[str, ...] = ()
    problem: str | None = None


def _thumb_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    h, w = shape
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize_rgb(
    image: npt.NDArray[np.uint8], shape: tuple[int, int], *, nearest: bool = False
) -> npt.NDArray[np.uint8]:
    from PIL import Image

    if image.shape[:2] == shape:
        return image
    pil = Image.fromarray(np.ascontiguousarray(image))
    # label colours must not blend into colours no class has
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    return np.asarray(pil.resize((shape[1], shape[0]), method))


def _encode(array: npt.NDArray[np.uint8], fmt: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(array))
    if fmt == "JPEG":
        pil.save(buf, format="JPEG", quality=85)
    else:
        pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _shown_source(source: str | None, root: Path) -> str | None:
    """A local photo's path relative to the results folder (URLs as they are), so the
    page reads the same wherever the folders are and shows no home directory."""
    if not source or "://" in source:
        return source
    try:
        return _relative(Path(source), root)
    except ValueError:  # another drive on Windows
        return source


def _outlined(photo: npt.NDArray[np.uint8], labels: npt.NDArray[np.integer[Any]],
              names: Sequence[str]) -> npt.NDArray[np.uint8]:  # fmt: skip
    """The review overlay: a light fill and a 2-pixel outline in each class's colour,
    ringed in near-black, so every region stays visible whatever its garment's colour
    (a red top under the red ``tops`` fill still shows its outline on the dark ring)."""
    from scipy import ndimage as ndi  # lazy: scipy loads when a report is drawn

    picture = overlay(photo, labels, classes=names, alpha=0.35, outline=2)
    inside = labels > 0
    ring = ndi.binary_dilation(inside, iterations=2) & ~inside  # 2 pixels just outside
    picture[ring] = picture[ring] // 4
    return picture


def _label_picture(
    folder: Path, labels: npt.NDArray[np.integer[Any]], names: Sequence[str],
    shape: tuple[int, int],
) -> tuple[npt.NDArray[np.uint8], bool]:  # fmt: skip
    """The folder's ``labels.png`` (made by ``clothseg labelmap``) at thumbnail size, or
    the same picture drawn from the masks when there is none; and which it is."""
    from PIL import Image

    path = folder / _FULL_SIZE["labels"]
    if path.is_file():
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))  # the palette holds the class colours
            return _resize_rgb(rgb, shape, nearest=True), True
        except (OSError, ValueError) as exc:
            logger.warning("report: %s cannot be shown (%s); drawing labels", path, exc)
    palette = np.zeros((len(names) + 1, 3), np.uint8)
    palette[1:] = [class_color(n) for n in names] if names else np.zeros((0, 3))
    return palette[labels], False


def _render_entry(
    item: BatchItem, index: int, files_dir: Path, page_dir: Path, root: Path, thumb_size: int
) -> _Entry:
    """Load one result and write its pictures; problems are shown, never raised."""

    folder = Path(item.source)
    entry = _Entry(key=item.key, folder=folder)
    try:
        result = SegmentationResult.load(folder)
    except Exception as exc:  # a damaged folder is reported on the page
        entry.problem = f"{type(exc).__name__}: {exc}"
        return entry
    masks = result_masks(result)
    worn = list(wearable_classes(masks, None))
    entry.source, entry.notes = _shown_source(result.source, root), result.notes
    entry.size = (result.shape[1], result.shape[0])
    entry.classes = masks.classes
    entry.fractions = {name: c.fraction for name, c in coverage(masks).items()}
    entry.worn = coverage({"worn": merge(masks, worn)})["worn"].fraction
    for kind, name in _FULL_SIZE.items():
        if (folder / name).is_file():
            entry.links[kind] = _relative(folder / name, page_dir)
    small = resize_mask(masks, _thumb_shape(result.shape, thumb_size))
    names = list(small.classes)
    labels = label_map(small, names, priority=LABEL_PRIORITY)
    drawn = np.bincount(labels.ravel(), minlength=len(names) + 1)[1:] / max(1, labels.size)
    entry.shown = {name: float(share) for name, share in zip(names, drawn, strict=True)}
    label_rgb, entry.labels_from_file = _label_picture(folder, labels, names, small.shape)
    stem = f"{index:05d}"
    try:
        photo = load_photo(result, folder=folder)
    except Exception as exc:  # photo moved: show the masks alone, say why
        entry.problem = f"photo not shown: {type(exc).__name__}: {exc}"
        pictures = {"masks": small.to_rgb(), "labels": label_rgb}
    else:
        thumb = _resize_rgb(photo, small.shape)
        pictures = {
            "photo": thumb,
            "overlay": _outlined(thumb, labels, names),
            "labels": label_rgb,
            "cutout": cutout(thumb, merge(small, worn)),
        }
    for kind, array in pictures.items():
        fmt = "JPEG" if kind in ("photo", "overlay") else "PNG"
        path = files_dir / f"{stem}-{kind}.{'jpg' if fmt == 'JPEG' else 'png'}"
        atomic_write_bytes(path, _encode(array, fmt))
        entry.pictures[kind] = _relative(path, page_dir)
    return entry


# -- failures ------------------------------------------------------------------------------


def _failures(root: Path) -> list[dict[str, str]]:
    """Latest failed record of every manifest in ``root``, segment first."""
    rows = []
    manifests = sorted(
        root.glob("manifest*.jsonl"), key=lambda p: (p.name != "manifest.jsonl", p.name)
    )
    for path in manifests:
        command = "segment" if path.name == "manifest.jsonl" else path.stem.split("-", 1)[1]
        for source, rec in read_manifest(path).items():
            if rec.get("status") != "failed":  # done, or a file passed over (not an image)
                continue
            err = rec.get("error") or {}
            rows.append({
                "command": command,
                "source": _shown_source(str(source), root) or "",
                "key": str(rec.get("key", "")),
                "type": str(err.get("type", "")),
                "message": str(err.get("message", "")),
            })  # fmt: skip
    return rows


# -- the page ------------------------------------------------------------------------------

_CSS = """
*,*::before,*::after{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
padding:20px 24px;max-width:1400px;color:#222}
@media (max-width:600px){body{padding:12px 10px}}
h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:18px;margin:28px 0 8px}
.meta{color:#666;margin:0 0 16px}
.notice{background:#fff4d6;border:1px solid #e0b84c;border-radius:4px;padding:8px 12px}
.charts{display:flex;flex-wrap:wrap;gap:24px}
.charts>figure{flex:0 1 520px;min-width:0}
.charts svg{display:block;width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#333}svg text.title{font-weight:600;font-size:13px}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}th{background:#f4f4f4}
.item{border-top:1px solid #ddd;padding:12px 0}
.item h3{font-size:15px;margin:0 0 6px;overflow-wrap:anywhere}
.row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.pair{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;min-width:0;max-width:100%}
figure{margin:0;min-width:0;max-width:100%}figcaption{color:#666;font-size:12px}
figure img{display:block;max-width:100%;height:auto;border:1px solid #ccc}
.legend{list-style:none;margin:0;padding:0;font-size:12px;font-variant-numeric:tabular-nums}
.legend li{display:flex;align-items:center;gap:6px;white-space:nowrap}
.legend .sw{display:inline-block;width:14px;height:14px;flex:none;border:1px solid #222}
.legend li.zero{color:#aaa}.legend li.zero .sw{opacity:.35}.legend li.under{color:#666}
@media (min-width:1000px){.row figure img{max-width:290px}}
.checker{background-color:#fff;background-image:linear-gradient(45deg,#ccc 25%,transparent 25%),
linear-gradient(-45deg,#ccc 25%,transparent 25%),linear-gradient(45deg,transparent 75%,#ccc 75%),
linear-gradient(-45deg,transparent 75%,#ccc 75%);background-size:16px 16px;
background-position:0 0,0 8px,8px -8px,-8px 0}
.problem{color:#a40;overflow-wrap:anywhere}.note{color:#555;overflow-wrap:anywhere}
@media (max-width:600px){
.failures,.failures tbody,.failures tr,.failures td{display:block;width:auto}
.failures colgroup,.failures tr.head{display:none}
.failures tr{border:1px solid #ddd;margin:0 0 8px;padding:4px 0}
.failures td{border:0;padding:1px 8px}
.failures td::before{content:attr(data-label) ": ";color:#666}}
"""

#: Captions of the per-image pictures, in page order.
_CAPTIONS = {
    "photo": "photo",
    "overlay": "overlay (classes outlined)",
    "masks": "masks",
    "labels": "labels",
    "cutout": "cutout",
}


def _legend(entry: _Entry) -> str:
    """The colour of every class, with its share of the picture: first the classes the
    overlay shows (most area first), then those found but drawn over by more specific
    ones (``clothes`` under ``tops``), then those asked for and not found, greyed."""
    esc = html.escape
    found = [c for c, f in entry.fractions.items() if f > 0]
    on_top = sorted((c for c in found if entry.shown.get(c, 0) > 0), key=lambda c: -entry.shown[c])
    beneath = sorted((c for c in found if c not in on_top), key=lambda c: -entry.fractions[c])
    absent = [c for c in entry.classes if entry.fractions.get(c, 0) == 0]
    items = []
    for name in on_top + beneath + absent:
        share = entry.fractions.get(name, 0.0)
        css = ' class="zero"' if share == 0 else ' class="under"' if name in beneath else ""
        hint = ' title="drawn over by a more specific class"' if name in beneath else ""
        under = " (under)" if name in beneath else ""
        items.append(
            f'<li{css}{hint}><span class="sw" style="background:{_hex(class_color(name))}">'
            f"</span>{esc(name)} {share:.1%}{under}</li>"
        )
    return f'<ul class="legend" aria-label="colour legend">{"".join(items)}</ul>'


def _figure(entry: _Entry, kind: str) -> str:
    esc = html.escape
    rel = entry.pictures[kind]
    css = ' class="checker"' if kind == "cutout" else ""
    img = f'<img{css} src="{esc(rel)}" alt="{kind} of {esc(entry.key)}" loading="lazy">'
    link = entry.links.get(kind)
    if link is not None:
        img = f'<a href="{esc(link)}">{img}</a>'
    caption = _CAPTIONS[kind]
    if kind == "labels":
        caption = "label PNG" if entry.labels_from_file else "labels (no label PNG yet)"
    return f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>"


def _entry_html(entry: _Entry) -> str:
    esc = html.escape
    out = [f'<article class="item" id="{esc(entry.key)}"><h3>{esc(entry.key)}</h3>']
    if entry.source:
        size = f" · {entry.size[0]} × {entry.size[1]}" if entry.size else ""
        out.append(f'<div class="note">{esc(entry.source)}{size}</div>')
    if entry.problem:
        out.append(f'<div class="problem">{esc(entry.problem)}</div>')
    out.append('<div class="row">')
    legend = _legend(entry) if entry.fractions else ""
    for kind in _CAPTIONS:
        if kind not in entry.pictures:
            continue
        figure = _figure(entry, kind)
        if kind in ("overlay", "masks") and legend:
            # the legend sits beside the picture whose colours it explains
            figure, legend = f'<div class="pair">{figure}{legend}</div>', ""
        out.append(figure)
    out.append(legend)  # no coloured picture (an unreadable folder): the legend alone
    out.append("</div>")
    for note in entry.notes:
        out.append(f'<div class="note">note: {esc(note)}</div>')
    out.append("</article>")
    return "".join(out)


#: Up to this many images the worn share is drawn per image; beyond, as a histogram.
_PER_IMAGE_BARS = 12


def _charts(entries: Sequence[_Entry], columns: Sequence[str]) -> str:

    per_image = {
        e.key: {c: Coverage(0, f, None, None) for c, f in e.fractions.items()}
        for e in entries
        if e.fractions
    }
    if not per_image:
        return "<p>No results to chart.</p>"
    summary = summarize(per_image)
    names = [c for c in columns if c in summary]
    presence = svg_bar_chart(
        names,
        [summary[c]["presence_rate"] for c in names],
        title="Images where the class appears",
        max_value=1.0,
    )
    share = svg_bar_chart(
        names,
        [summary[c]["mean_fraction_present"] or 0.0 for c in names],
        title="Mean share of the picture, where present",
        value_format="{:.1%}",
    )
    worn = [(e.key, e.worn) for e in entries if e.worn is not None]
    title = "Share of the picture worn (garments, bag, shoes, acc)"
    if len(worn) <= _PER_IMAGE_BARS:
        # a histogram of a handful of values is mostly empty bins: show each image
        worn_chart = svg_bar_chart(
            [k for k, _ in worn],
            [v for _, v in worn],
            title=title,
            colors=[_WORN_COLOR] * len(worn),
            max_value=1.0,
        )
    else:
        worn_chart = svg_histogram([v for _, v in worn], bins=10, title=title)
    return (
        f'<div class="charts"><figure>{presence}</figure><figure>{share}</figure>'
        f"<figure>{worn_chart}</figure></div>"
    )


def _count(n: int, noun: str) -> str:
    """``"1 failure"``, ``"3 failures"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


#: The failure table's columns: manifest field -> heading (also each cell's label on a
#: phone, where the rows become cards).
_FAILURE_COLUMNS = {"command": "step", "source": "input", "type": "error", "message": "reason"}


def _failures_html(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return "<p>None.</p>"
    esc = html.escape
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-label="{label}">{esc(r[field])}</td>'
            for field, label in _FAILURE_COLUMNS.items()
        )
        + "</tr>"
        for r in rows
    )
    widths = "".join(f'<col style="width:{w}%">' for w in (12, 33, 20, 35))
    head = "".join(f"<th>{label}</th>" for label in _FAILURE_COLUMNS.values())
    return (
        f'<table class="failures"><colgroup>{widths}</colgroup>'
        f'<tr class="head">{head}</tr>{body}</table>'
    )


def build_report(
    results: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    title: str | None = None,
    thumb_size: int = 320,
    max_images: int | None = None,
    workers: int = 4,
    notice: str | None = None,
) -> Path:
    """Write the review page of a results folder.

    Parameters
    ----------
    results
        The output folder of ``clothseg segment`` (result folders and manifests).
    out
        The HTML file (default ``<results>/report.html``); its pictures go to
        ``report_files/`` beside it, replacing an earlier report's.
    title
        Page title (default: the folder's name).
    thumb_size
        Longest side of the pictures, in pixels.
    max_images
        Show (and chart) at most this many images, in key order; the failures table
        still lists every failure.
    workers
        Threads making pictures.
    notice
        A sentence shown in a box under the title, for what a reader must know first
        (the demo says there when its masks are replayed recordings).

    Returns
    -------
    pathlib.Path
        The HTML file.

    Raises
    ------
    InputNotFoundError
        ``results`` is not a folder, or holds no saved result (an empty page helps
        nobody; the message says where the failures are when there are some).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from clothseg_tools import MaskSet
    >>> from clothseg_tools.result import SegmentationResult
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> masks = MaskSet({"tops": np.eye(8, dtype=bool)})
    >>> _ = SegmentationResult(masks, source=str(root / "gone.jpg")).save(root / "a")
    >>> page = build_report(root)
    >>> page.name, "photo not shown" in page.read_text()
    ('report.html', True)
    """
    root = Path(results)
    items = require_results(root)
    page = Path(out) if out is not None else root / REPORT_NAME
    page_dir = page.parent.resolve()
    files_dir = page_dir / REPORT_FILES
    if files_dir.is_dir():
        shutil.rmtree(files_dir)  # pictures of an earlier report may no longer apply
    files_dir.mkdir(parents=True, exist_ok=True)
    shown = items if max_images is None else items[: max(0, int(max_images))]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        entries = list(
            pool.map(
                lambda pair: _render_entry(
                    pair[1], pair[0], files_dir, page_dir, root.resolve(), thumb_size
                ),
                enumerate(shown),
            )
        )
    seen = {c for e in entries for c in e.fractions}
    columns = [c for c in CLASSES if c in seen] + sorted(seen - set(CLASSES))
    failures = _failures(root)
    name = title or root.resolve().name
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    esc = html.escape
    more = f" (showing {len(shown)})" if len(shown) < len(items) else ""
    notice_html = f'<p class="notice" role="note">{esc(notice)}</p>' if notice else ""
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(name)} · clothseg report</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(name)}</h1>"
        f'<p class="meta">{_count(len(items), "result")}{more} · '
        f"{_count(len(failures), 'failure')} · "
        f"made {esc(stamp)}</p>{notice_html}"
        f"<h2>Dataset coverage</h2>{_charts(entries, columns)}"
        f"<h2>Failures</h2>{_failures_html(failures)}"
        f"<h2>Images</h2>{''.join(_entry_html(e) for e in entries)}"
        "</body></html>\n"
    )
    atomic_write_bytes(page, doc.encode("utf-8"))
    return page
