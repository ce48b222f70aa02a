"""Post-processing jobs over saved result folders: merge, label map, cutout, background
and overlay (coverage statistics are in :mod:`~clothseg_tools.batch.coverage`).

Each job reads every result folder under a root (see
:func:`~clothseg_tools.batch.discover.discover_results`), writes one file per folder to
``<out>/<key>/<name>`` (``out`` defaults to the root, so outputs sit beside the masks),
and keeps its own manifest ``<out>/manifest-<command>.jsonl`` with the same resume rules
as segmentation: an output is trusted while its checksum, the job's options and the
result it was made from (``result.json``'s checksum) are unchanged.

Jobs that need the photo (cutout, background, overlay) read it from the result's
``source``; masks and photo must have the same size (nothing is resized silently).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import limits
from .._convert import as_image, check_same_shape
from .._io import atomic_write_bytes, encode_png, read_regular_file
from ..classes import CLASSES, GARMENT_CLASSES, LABEL_PRIORITY, canonical_class
from ..decode import download
from ..inputs import open_photo
from ..masks import MaskSet
from ..result import SegmentationResult, folder_fingerprint
from .discover import BatchItem, is_url
from .runner import ItemOutput, Job, sha256_file

__all__ = [
    "DEFAULT_NAMES",
    "WEARABLE_CLASSES",
    "background_job",
    "cutout_job",
    "encode_image",
    "image_job",
    "labelmap_job",
    "load_photo",
    "merge_job",
    "output_path",
    "overlay_job",
    "parse_classes",
    "parse_color",
    "result_fingerprint",
    "result_masks",
    "wearable_classes",
]

#: Output file name of each command, inside the item's folder.
DEFAULT_NAMES: dict[str, str] = {
    "merge": "merged.png",
    "labelmap": "labels.png",
    "cutout": "cutout.png",
    "background": "background.png",
    "overlay": "overlay.png",
    "stats": "coverage.json",
}

#: What merge, cutout and background keep by default: everything worn or carried.
WEARABLE_CLASSES: tuple[str, ...] = (*GARMENT_CLASSES, "bag", "shoes", "acc")


def parse_classes(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"tops, Bottoms"`` -> ``("tops", "bottoms")``; ``None`` or ``""`` -> ``None``.

    Aliases are resolved (``accessories`` -> ``acc``); names outside the vocabulary
    (per-garment parts such as ``tops_0``) are kept.

    Examples
    --------
    >>> parse_classes("tops, Accessories")
    ('tops', 'acc')
    >>> parse_classes("") is None
    True
    """
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(canonical_class(p) for p in parts if p.strip())
    return names or None


def parse_color(text: str) -> tuple[int, int, int]:
    """A colour from ``#rrggbb``, ``#rgb``, ``r,g,b`` or a name Pillow knows.

    Examples
    --------
    >>> parse_color("#ff8000"), parse_color("0, 128, 255"), parse_color("white")
    ((255, 128, 0), (0, 128, 255), (255, 255, 255))
    """
    from PIL import ImageColor

    raw = text.strip()
    if "," in raw:
        try:
            values = [int(v) for v in raw.split(",")]
        except ValueError:
            values = []
        if len(values) == 3 and all(0 <= v <= 255 for v in values):
            return (values[0], values[1], values[2])
        raise ValueError(f"Colour {text!r} must be three numbers 0..255 like 255,255,255.")
    try:
        rgb = ImageColor.getrgb(raw)
    except ValueError:
        raise ValueError(
            f"Unknown colour {text!r}; use #rrggbb, r,g,b or a name such as white."
        ) from None
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def output_path(out_dir: str | os.PathLike[str], item: BatchItem, name: str) -> tuple[Path, str]:
    """Where a job writes ``name`` for ``item``: ``(absolute path, path relative to out)``.

    Examples
    --------
    >>> p, rel = output_path("out", BatchItem("/r/a/b", "a/b"), "cutout.png")
    >>> rel, p.as_posix()
    ('a/b/cutout.png', 'out/a/b/cutout.png')
    """
    rel = name if item.key in ("", ".") else f"{item.key}/{name}"
    return Path(out_dir) / rel, rel


def result_fingerprint(item: BatchItem) -> str | None:
    """The result folder's fingerprint: a re-segmented image is redone."""
    return folder_fingerprint(item.source)


def load_photo(
    result: SegmentationResult, *, folder: str | os.PathLike[str] | None = None
) -> npt.NDArray[np.uint8]:
    """The photo a result was made from, as the (H, W, 3) uint8 array it was segmented as.

    Raises
    ------
    FileNotFoundError
        The result does not name its photo, or the photo has moved.
    InputError
        The photo no longer passes the input checks.
    ShapeMismatchError
        The photo's size differs from the masks' (it was replaced after segmenting).
    """
    where = f" of {folder}" if folder is not None else ""
    source = result.source
    if not source:
        raise FileNotFoundError(f"The result{where} does not record its photo's location.")
    if is_url(source):
        if "#query-sha256=" in source:
            raise FileNotFoundError(
                f"The photo{where} came from a signed link that was not kept; "
                "segment a local copy to post-process it."
            )

        data = download(source, max_bytes=limits.MAX_FILE_BYTES, what="image")
    else:
        path = Path(source)
        try:
            data = read_regular_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"The photo {source} of the result{where} is no longer there; put it back "
                "or segment it again from its new place."
            ) from None
    photo = open_photo(data, name=Path(source).name).pixels  # checked and decoded once
    check_same_shape(result.shape, photo.shape, what="the masks", other="the photo")
    return photo


def encode_image(array: npt.NDArray[np.uint8], name: str) -> bytes:
    """PNG, or JPEG (quality 95, no alpha) when ``name`` ends with .jpg / .jpeg."""
    if name.lower().endswith((".jpg", ".jpeg")):
        from PIL import Image

        rgb = array[..., :3] if array.ndim == 3 else array
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=95)
        return buf.getvalue()
    return encode_png(array)


def result_masks(result: SegmentationResult) -> MaskSet:
    """The class masks, or the per-garment parts when only those were asked for
    (``output_type=2``)."""
    if len(result.masks) == 0 and result.parts is not None and len(result.parts):
        return result.parts
    return result.masks


def wearable_classes(masks: MaskSet, classes: Sequence[str] | None) -> tuple[str, ...]:
    """The classes to merge: the given ones, else every wearable class the set has.

    Per-garment parts count by their class (``tops_0`` is worn); a set with no
    wearable class at all gives all its classes.

    Examples
    --------
    >>> ms = MaskSet({"hair": np.zeros((1, 1), bool), "tops": np.zeros((1, 1), bool)})
    >>> wearable_classes(ms, None), wearable_classes(ms, ["hair"])
    (('tops',), ('hair',))
    """
    if classes:
        return tuple(classes)
    worn = tuple(c for c in masks.classes if canonical_class(c).split("_")[0] in WEARABLE_CLASSES)
    return worn or masks.classes


Produce = Callable[[BatchItem, SegmentationResult], npt.NDArray[np.uint8]]


def image_job(
    command: str,
    produce: Produce,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    options: dict[str, Any] | None = None,
) -> Job:
    """A job that writes one image per result folder, made by ``produce(item, result)``.

    Parameters
    ----------
    command
        The command's name (names the manifest).
    produce
        Returns the (H, W), (H, W, 3) or (H, W, 4) uint8 picture for one result.
    out_dir
        Output root.
    name
        The output file name (default :data:`DEFAULT_NAMES` of the command).
    options
        Recorded in the manifest; changing them redoes earlier outputs.
    """
    filename = name or DEFAULT_NAMES[command]
    out = Path(out_dir)

    def work(item: BatchItem) -> ItemOutput:
        t0 = time.perf_counter()
        result = SegmentationResult.load(item.source)
        t1 = time.perf_counter()
        picture = produce(item, result)
        t2 = time.perf_counter()
        path, rel = output_path(out, item, filename)
        data = encode_image(picture, filename)
        atomic_write_bytes(path, data)
        return ItemOutput(
            checksums={rel: hashlib.sha256(data).hexdigest()},
            timings={"load": t1 - t0, "compute": t2 - t1, "write": time.perf_counter() - t2},
        )

    return Job(
        command,
        work,
        out,
        options={**(options or {}), "name": filename},
        fingerprint=result_fingerprint,
        manifest_name=_manifest_name(command, filename),
    )


def _manifest_name(command: str, filename: str) -> str:
    """Outputs under another file name keep their own manifest (they are other files).

    Examples
    --------
    >>> _manifest_name("cutout", "cutout.png"), _manifest_name("cutout", "dress.png")
    ('cutout', 'cutout-dress.png')
    """
    return command if filename == DEFAULT_NAMES.get(command) else f"{command}-{filename}"


def merge_job(
    out_dir: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    name: str | None = None,
) -> Job:
    """One soft mask per image: the pixel-wise maximum of ``classes``.

    ``classes`` defaults to every wearable class in the result (garments, bag, shoes,
    accessories).
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..ops import merge

    def produce(item: BatchItem, result: SegmentationResult) -> npt.NDArray[np.uint8]:
        masks = result_masks(result)
        return merge(masks, list(wearable_classes(masks, classes)))

    return image_job("merge", produce, out_dir, name=name, options={"classes": list(classes or ())})


def labelmap_job(
    out_dir: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    priority: Sequence[str] | None = None,
    min_value: int = 128,
    name: str | None = None,
) -> Job:
    """A palette label PNG per image (0 background, ``i`` = ``1 + index in classes``).

    ``classes`` defaults to the full vocabulary, so label ids mean the same class in
    every image of the dataset whatever classes each result holds (per-garment parts
    such as ``tops_0`` get labels only when named in ``classes``). Where classes
    overlap, the earliest in ``priority`` wins (see :func:`~clothseg_tools.label_map`);
    the default, :data:`~clothseg_tools.classes.LABEL_PRIORITY`, keeps ``tops``,
    ``bottoms`` and ``dress`` visible inside ``clothes``.
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..export import save_label_png
    from ..ops import label_map

    label_classes = tuple(classes) if classes else CLASSES
    filename = name or DEFAULT_NAMES["labelmap"]
    out = Path(out_dir)

    def work(item: BatchItem) -> ItemOutput:
        result = SegmentationResult.load(item.source)
        path, rel = output_path(out, item, filename)
        labels = label_map(
            result_masks(result),
            list(label_classes),
            priority=list(priority or LABEL_PRIORITY),
            min_value=min_value,
        )
        save_label_png(labels, path, classes=label_classes)
        return ItemOutput(checksums={rel: sha256_file(path)})

    return Job(
        "labelmap",
        work,
        out,
        options={
            "classes": list(label_classes),
            "priority": list(priority or LABEL_PRIORITY),
            "min_value": int(min_value),
            "name": filename,
        },
        fingerprint=result_fingerprint,
        manifest_name=_manifest_name("labelmap", filename),
    )


def cutout_job(
    out_dir: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    decontaminate: bool = False,
    name: str | None = None,
) -> Job:
    """An RGBA cutout per image: the photo with the merged ``classes`` as alpha.

    ``decontaminate`` re-estimates the colours at soft edges so the old background
    does not bleed into them (:func:`~clothseg_tools.estimate_foreground`).
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..composite import cutout
    from ..ops import merge

    def produce(item: BatchItem, result: SegmentationResult) -> npt.NDArray[np.uint8]:
        photo = load_photo(result, folder=item.source)
        masks = result_masks(result)
        alpha = merge(masks, list(wearable_classes(masks, classes)))
        return cutout(photo, alpha, decontaminate=decontaminate)

    return image_job(
        "cutout",
        produce,
        out_dir,
        name=name,
        options={"classes": list(classes or ()), "decontaminate": decontaminate},
    )


def background_job(
    out_dir: str | os.PathLike[str],
    *,
    background: tuple[int, int, int] | str | os.PathLike[str] = (255, 255, 255),
    classes: Sequence[str] | None = None,
    blur_radius: float | None = None,
    name: str | None = None,
) -> Job:
    """The photo with everything but ``classes`` replaced.

    Parameters
    ----------
    out_dir
        Output root.
    background
        An RGB colour, ``"blur"`` (the photo itself, blurred), or the path of an
        image; an image is scaled to cover each photo and centre-cropped to its size
        (``fit="cover"`` of :func:`~clothseg_tools.replace_background`).
    classes
        What to keep (default: every wearable class).
    blur_radius
        Blur strength for ``"blur"`` (default: the library's).
    name
        Output file name (``.jpg`` writes JPEG).
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..composite import replace_background
    from ..ops import merge

    backdrop: Any = background
    option: Any = list(background) if isinstance(background, tuple) else str(background)
    if not isinstance(background, (tuple, str)) or (
        isinstance(background, str) and background != "blur"
    ):
        # read the picture once, not once per photo; it is fitted to each photo's size
        backdrop = as_image(os.fspath(background), allow_alpha=False)
        option = {
            "image": str(Path(os.fspath(background)).resolve()),
            "sha256": sha256_file(os.fspath(background)),
        }
    radius = {} if blur_radius is None else {"blur_radius": float(blur_radius)}

    def produce(item: BatchItem, result: SegmentationResult) -> npt.NDArray[np.uint8]:
        photo = load_photo(result, folder=item.source)
        masks = result_masks(result)
        keep = merge(masks, list(wearable_classes(masks, classes)))
        return replace_background(photo, keep, backdrop, fit="cover", **radius)

    return image_job(
        "background",
        produce,
        out_dir,
        name=name,
        options={"background": option, "classes": list(classes or ()), "blur_radius": blur_radius},
    )


def overlay_job(
    out_dir: str | os.PathLike[str],
    *,
    alpha: float = 0.5,
    classes: Sequence[str] | None = None,
    name: str | None = None,
) -> Job:
    """A review picture per image: the photo with each class tinted in its colour."""
    # lazy: keeps the clothseg command's start-up fast
    from ..composite import overlay

    def produce(item: BatchItem, result: SegmentationResult) -> npt.NDArray[np.uint8]:
        photo = load_photo(result, folder=item.source)
        masks = result_masks(result)
        shown = [c for c in classes if c in masks] if classes else None
        return overlay(photo, masks, alpha=alpha, classes=shown)

    return image_job(
        "overlay",
        produce,
        out_dir,
        name=name,
        options={"alpha": float(alpha), "classes": list(classes or ())},
    )
