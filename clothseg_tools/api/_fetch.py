"""Result downloads: every mask and the per-garment ZIP of a finished task, at once.

Result links expire after an hour, so all of a task's downloads are submitted together
to the client's download threads and share its pooled session. Masks arrive as links,
raw base64 or data URIs (:func:`clothseg_tools.decode.decode_mask` reads all three);
the ZIP is read by :mod:`clothseg_tools.zipmasks` and its entries named ``<class>_<i>``.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np
import numpy.typing as npt
import requests

from ..classes import canonical_class
from ..decode import decode_mask, download
from ..errors import MaskDecodeError, ShapeMismatchError
from ..masks import MaskSet
from ..result import SegmentationResult
from ..task import Task
from ..zipmasks import group_parts, read_mask_zip
from ._upload import is_url

__all__ = ["DOWNLOAD_THREADS", "download_result", "parts_from_zip"]

#: Threads downloading mask links, shared by every task of a client.
DOWNLOAD_THREADS = 16


def download_result(
    task: Task,
    *,
    session: requests.Session,
    timeout: tuple[float, float],
    pool: Executor,
    source: str | None = None,
    options: Mapping[str, Any] | None = None,
    source_size: tuple[int, int] | None = None,
) -> SegmentationResult:
    """Download and decode every mask and the ZIP of a finished ``task`` in parallel.

    Parameters
    ----------
    task
        A finished task.
    session, timeout
        Used for every download (links are fetched without the API key).
    pool
        Threads that run the downloads.
    source, options
        Recorded in the result.
    source_size
        (H, W) of the source image, when known.

    Raises
    ------
    ResultExpiredError
        A link is past its hour (403/404/410): query the task again.
    MaskDecodeError, MaskZipError
        A mask or the ZIP does not decode.
    ShapeMismatchError
        A mask is not the source image's size.
    """
    start = time.perf_counter()
    mask_jobs = {
        canonical_class(name): pool.submit(_decode_value, value, name, session, timeout)
        for name, value in task.class_masks.items()
    }
    zip_job = (
        pool.submit(_read_zip, task.clothes_masks, session, timeout) if task.clothes_masks else None
    )
    masks = {name: job.result() for name, job in mask_jobs.items()}
    parts = zip_job.result() if zip_job is not None else {}
    shape = _result_shape(masks, parts, source_size, task)
    return SegmentationResult(
        masks=MaskSet(masks, shape=shape),
        parts=MaskSet(parts, shape=shape),
        task=task,
        source=source,
        options=dict(options or {}),
        timings={"download": time.perf_counter() - start},
        notes=() if masks or parts else ("the service returned no masks",),
        engine="remote",
    )


def _decode_value(
    value: str, name: str, session: requests.Session, timeout: tuple[float, float]
) -> npt.NDArray[np.uint8]:

    # a value from the service never names a local file: the decoder itself refuses
    # paths, on the same normalised text it would read
    return decode_mask(value, name=name, session=session, timeout=timeout, allow_paths=False)


def _read_zip(
    value: str, session: requests.Session, timeout: tuple[float, float]
) -> dict[str, npt.NDArray[np.uint8]]:

    if is_url(value):
        data = download(value, session=session, timeout=timeout, what="mask ZIP")
    else:
        data = _inline_bytes(value)
    return parts_from_zip(data)


def parts_from_zip(data: bytes) -> dict[str, npt.NDArray[np.uint8]]:
    """Per-garment masks of a ZIP, named ``<class>_<i>`` in the ZIP's natural order.

    Examples
    --------
    >>> import numpy as np
    >>> from clothseg_tools.zipmasks import write_mask_zip
    >>> m = np.zeros((2, 2), np.uint8)
    >>> sorted(parts_from_zip(write_mask_zip({"tops/0.png": m, "tops/1.png": m, "dress-0.png": m})))
    ['dress_0', 'tops_0', 'tops_1']
    """

    parts: dict[str, npt.NDArray[np.uint8]] = {}
    for cls, members in group_parts(read_mask_zip(data)).items():
        for i, mask in enumerate(members.values()):
            parts[f"{cls}_{i}"] = mask
    return parts


def _result_shape(
    masks: Mapping[str, npt.NDArray[np.uint8]],
    parts: Mapping[str, npt.NDArray[np.uint8]],
    source_size: tuple[int, int] | None,
    task: Task,
) -> tuple[int, int]:
    shapes = {("mask " + n): m.shape for n, m in masks.items()}
    shapes.update({("part " + n): m.shape for n, m in parts.items()})
    expected = source_size or next(iter(shapes.values()), (0, 0))
    for name, shape in shapes.items():
        if tuple(shape) != tuple(expected):
            where = "the source image" if source_size else "the first mask"
            raise ShapeMismatchError(
                f"Task {task.task_id}: {name} has shape {tuple(shape)} but {where} has shape "
                f"{tuple(expected)}; the service must return masks at the source image's size."
            )
    return int(expected[0]), int(expected[1])


def _inline_bytes(value: str) -> bytes:
    """Bytes of a base64 value or ``data:`` URI (a ZIP sent inline instead of a link)."""
    text = value.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MaskDecodeError(
            "clothes_masks is neither an http(s) link nor valid base64; the service's answer "
            "is malformed."
        ) from exc
