"""The local engine's regression set: photos of people and regions marked by hand.

``tests/data/local_engine_regions.json`` names the photos (the demo's sample photos,
matplotlib's portrait of Grace Hopper, and crops, mirrors, rescales and composites
of them) and, on each, boxes whose truth was marked by hand:

- ``{"box": [x0, y0, x1, y1], "is": "face"}``: at least ``min`` (default 0.5) of the
  box's pixels are ``face`` (mask >= 128);
- ``{"box": ..., "not": "tops"}``: at most ``max`` (default 0.1) of them are ``tops``;
- ``{"box": ..., "is": "background"}``: at most ``max`` (default 0.05) of them belong to
  any class (nothing of the person reaches there).

A photo is built from a ``source`` or ``from`` another photo of the set, then
``steps`` in order; the boxes of the photo it came from follow the steps (mirrored,
cropped, scaled, shifted), so a region is marked once, on the original. A step:

- ``["mirror"]``, ``["crop", [x0, y0, x1, y1]]``, ``["scale", f]``,
  ``["pad", [left, top, right, bottom], grey]``, ``["jpeg", quality]``;
- ``["paste", photo, polygon, scale, [dx, dy]]``: the polygon of another photo of the
  set, scaled, pasted with its top-left corner at (dx, dy). The pasted photo's regions
  lying inside the polygon come along; this photo's regions the paste covers (more
  than a tenth of a box) are dropped.

A region marked ``"known": "why"`` is a mistake the engine still makes (the tests
expect it to fail, and fail when it stops failing); a photo's ``"known"`` list marks
regions it inherited: ``{"kind": "is", "label": "tops", "note": "coat tails", "why":
"..."}``.

Run as a script to print the per-class agreement of the current engine:
``PYTHONPATH=$PWD python tests/_local_regions.py``.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SET_PATH = Path(__file__).parent / "data" / "local_engine_regions.json"

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Region:
    """One marked box and what must hold there."""

    photo: str
    box: Box
    kind: str  # "is" or "not"
    label: str  # a class name, or "background"
    limit: float  # min share for "is", max share for "not" (and for background)
    note: str = ""
    known: str = ""  # why the engine still gets it wrong (the test expects a failure)

    @property
    def id(self) -> str:
        x0, y0, x1, y1 = (round(v) for v in self.box)
        return f"{self.photo}:{self.kind}-{self.label}@{x0},{y0},{x1},{y1}"


@dataclass
class Photo:
    name: str
    image: np.ndarray
    regions: list[Region] = field(default_factory=list)


def _source(spec: str) -> np.ndarray:
    kind, _, name = spec.partition(":")
    if kind == "skimage":
        import skimage.data

        img = getattr(skimage.data, name)()
    elif kind == "matplotlib":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(name) as f:
            img = np.asarray(Image.open(f).convert("RGB"))
    else:
        raise ValueError(f"unknown photo source {spec!r}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _region(photo: str, raw: dict[str, Any]) -> Region:
    kind = "is" if "is" in raw else "not"
    label = raw[kind]
    if kind == "is" and label != "background":
        limit = raw.get("min", 0.5)
    else:
        limit = raw.get("max", 0.05 if label == "background" else 0.1)
    return Region(
        photo,
        tuple(float(v) for v in raw["box"]),  # type: ignore[arg-type]
        "not" if label == "background" else kind,
        label,
        float(limit),
        raw.get("note", ""),
        raw.get("known", ""),
    )


def _moved(regions: Iterable[Region], photo: str, fn, shape: tuple[int, int]) -> list[Region]:
    """Regions with their boxes mapped by ``fn`` and clipped; mostly-outside ones dropped."""
    h, w = shape
    out = []
    for r in regions:
        x0, y0, x1, y1 = fn(r.box)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        area = (x1 - x0) * (y1 - y0)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx1 <= cx0 or cy1 <= cy0 or (cx1 - cx0) * (cy1 - cy0) < 0.6 * area:
            continue
        out.append(Region(photo, (cx0, cy0, cx1, cy1), r.kind, r.label, r.limit, r.note, r.known))
    return out


def _step(photo: Photo, step: list[Any], built: dict[str, Photo]) -> Photo:
    import cv2  # with the local engine's extra only (this module is imported without it)

    img, regions = photo.image, photo.regions
    h, w = img.shape[:2]
    op = step[0]
    if op == "mirror":
        img = img[:, ::-1]
        fn = lambda b: (w - b[2], b[1], w - b[0], b[3])  # noqa: E731
        return Photo(photo.name, img, _moved(regions, photo.name, fn, (h, w)))
    if op == "crop":
        x0, y0, x1, y1 = step[1]
        img = img[y0:y1, x0:x1]
        fn = lambda b: (b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0)  # noqa: E731
        return Photo(photo.name, img, _moved(regions, photo.name, fn, img.shape[:2]))
    if op == "scale":
        f = float(step[1])
        size = (round(w * f), round(h * f))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        fn = lambda b: tuple(v * f for v in b)  # noqa: E731
        return Photo(photo.name, img, _moved(regions, photo.name, fn, img.shape[:2]))
    if op == "pad":
        left, top, right, bottom = step[1]
        out = np.empty((h + top + bottom, w + left + right, 3), np.uint8)
        out[:] = np.linspace(step[2][0], step[2][1], out.shape[1]).astype(np.uint8)[None, :, None]
        out[top : top + h, left : left + w] = img
        fn = lambda b: (b[0] + left, b[1] + top, b[2] + left, b[3] + top)  # noqa: E731
        return Photo(photo.name, out, _moved(regions, photo.name, fn, out.shape[:2]))
    if op == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, format="JPEG", quality=int(step[1]))
        return Photo(photo.name, np.asarray(Image.open(buf).convert("RGB")), regions)
    if op == "paste":
        return _paste(photo, built[step[1]], step[2], float(step[3]), step[4])
    raise ValueError(f"unknown step {step!r}")


def _paste(
    photo: Photo, other: Photo, polygon: list[list[float]], f: float, at: list[int]
) -> Photo:
    import cv2

    img = photo.image.copy()
    h, w = img.shape[:2]
    src = cv2.resize(
        other.image,
        (round(other.image.shape[1] * f), round(other.image.shape[0] * f)),
        interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC,
    )
    poly = np.asarray(polygon, np.float64) * f
    mask = np.zeros(src.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], (255,), cv2.LINE_AA, shift=4)
    # a slightly soft edge, as a careful cut-out would have
    mask = cv2.GaussianBlur(mask, (3, 3), 0)
    dx, dy = at
    sy0, sx0 = max(0, -dy), max(0, -dx)
    ty0, tx0 = max(0, dy), max(0, dx)
    hh = min(src.shape[0] - sy0, h - ty0)
    ww = min(src.shape[1] - sx0, w - tx0)
    alpha = mask[sy0 : sy0 + hh, sx0 : sx0 + ww, None].astype(np.float32) / 255
    target = img[ty0 : ty0 + hh, tx0 : tx0 + ww].astype(np.float32)
    blended = target * (1 - alpha) + src[sy0 : sy0 + hh, sx0 : sx0 + ww] * alpha
    img[ty0 : ty0 + hh, tx0 : tx0 + ww] = np.round(blended).astype(np.uint8)
    covered = np.zeros((h, w), bool)
    covered[ty0 : ty0 + hh, tx0 : tx0 + ww] = mask[sy0 : sy0 + hh, sx0 : sx0 + ww] > 0

    def covered_share(b: Box) -> float:
        x0, y0, x1, y1 = (round(v) for v in b)
        return float(covered[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0

    keep = [r for r in photo.regions if covered_share(r.box) <= 0.1]
    fn = lambda b: (b[0] * f + dx, b[1] * f + dy, b[2] * f + dx, b[3] * f + dy)  # noqa: E731
    inside = []
    for r in _moved(other.regions, photo.name, fn, (h, w)):
        x0, y0, x1, y1 = (round(v) for v in r.box)
        if covered[y0:y1, x0:x1].all():
            inside.append(replace(r, known=""))  # a known mistake belongs to its photo
    return Photo(photo.name, img, keep + inside)


def load_set(path: Path = SET_PATH) -> list[Photo]:
    """Build every photo of the set, with its regions."""
    spec = json.loads(path.read_text())
    built: dict[str, Photo] = {}
    for entry in spec["photos"]:
        name = entry["name"]
        if "source" in entry:
            photo = Photo(name, _source(entry["source"]))
        else:
            base = built[entry["from"]]
            photo = Photo(name, base.image, [Region(name, *_fields(r)) for r in base.regions])
        for step in entry.get("steps", []):
            photo = _step(photo, step, built)
        photo.regions += [_region(name, raw) for raw in entry.get("regions", [])]
        for mark in entry.get("known", []):
            photo.regions = [
                replace(r, known=mark["why"])
                if (r.kind, r.label, r.note) == (mark["kind"], mark["label"], mark["note"])
                else r
                for r in photo.regions
            ]
        photo.image = np.ascontiguousarray(photo.image)
        built[name] = photo
    return list(built.values())


def _fields(r: Region) -> tuple[Any, ...]:
    return (r.box, r.kind, r.label, r.limit, r.note, r.known)


def share(masks: Any, region: Region) -> float:
    """The share of the region's box that is of its label (any class for background)."""
    x0, y0, x1, y1 = (round(v) for v in region.box)
    if region.label == "background":
        on = masks.stack()[:, y0:y1, x0:x1].max(axis=0) >= 128
    else:
        on = masks[region.label][y0:y1, x0:x1] >= 128
    return float(on.mean())


def holds(masks: Any, region: Region) -> tuple[bool, float]:
    value = share(masks, region)
    ok = value >= region.limit if region.kind == "is" else value <= region.limit
    return ok, value


def evaluate(engine: Any) -> list[tuple[Region, bool, float]]:
    """Segment every photo of the set and check each of its regions."""
    from clothseg_tools.classes import CLASSES

    results = []
    for photo in load_set():
        masks = engine.segment(photo.image, classes=CLASSES).masks
        for region in photo.regions:
            ok, value = holds(masks, region)
            results.append((region, ok, value))
    return results


def agreement(results: list[tuple[Region, bool, float]]) -> dict[str, tuple[int, int]]:
    """Per class (``background`` for the empty boxes): regions that hold, regions."""
    table: dict[str, list[int]] = {}
    for region, ok, _ in results:
        row = table.setdefault(region.label, [0, 0])
        row[0] += int(ok)
        row[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(table.items())}


def main() -> None:
    from clothseg_tools.engines.local import LocalEngine

    results = evaluate(LocalEngine())
    verbose = "-v" in sys.argv
    for region, ok, value in results:
        if verbose or not ok:
            print(f"{'ok  ' if ok else 'FAIL'} {region.id:60s} {value:5.2f}  {region.note}")
    table = agreement(results)
    total = sum(v[0] for v in table.values()), sum(v[1] for v in table.values())
    print(f"{'class':<12}{'agree':>8}{'of':>5}{'share':>8}")
    for name, (good, n) in table.items():
        print(f"{name:<12}{good:>8}{n:>5}{good / n:>8.0%}")
    print(f"{'all':<12}{total[0]:>8}{total[1]:>5}{total[0] / total[1]:>8.0%}")


if __name__ == "__main__":
    main()
