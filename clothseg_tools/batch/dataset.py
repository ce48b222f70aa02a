"""Segmentation inside a user's own Ray Data pipeline: :func:`segment_dataset`.

Where the CLI writes result folders, a pipeline often wants rows: a
``ray.data.Dataset`` of image paths or bytes in, the same dataset out with each
image's classes, their COCO RLE masks and coverage, and, when asked, the folder the
full result was saved to. Each Ray worker of the map builds its engine once, as the
executor's workers do; against the remote service one rate limit holds across them.

Examples
--------
>>> import ray                                                   # doctest: +SKIP
>>> ds = ray.data.read_binary_files("s3://photos/", include_paths=True)  # doctest: +SKIP
>>> out = segment_dataset(ds, engine="local", class_type=1)       # doctest: +SKIP
>>> out.write_parquet("s3://labels/")                             # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..contract import KEY_ENV, OPTION_NAMES, Options
from ..errors import ConfigurationError
from ..export.rle import encode_rle
from ..stats import coverage
from .discover import BatchItem
from .post import result_masks
from .ray_executor import _Bucket
from .segment import choose_backend, make_segmenter

__all__ = ["DATASET_COLUMNS", "segment_dataset"]

#: Columns :func:`segment_dataset` adds to each row.
DATASET_COLUMNS = ("source", "classes", "rle", "coverage", "folder", "error")


def _key(source: str, data: bytes | None) -> str:
    """A folder name unique per input: the file's stem and a hash of where it came from."""
    stem = PurePosixPath(source).stem if source else "image"
    digest = hashlib.sha256((source or "").encode() + (data or b"")[:65536]).hexdigest()
    return f"{stem or 'image'}-{digest[:12]}"


class _SegmentRows:
    """The map's callable class: one segmenter per Ray worker, rows in, rows out."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        column: str | None,
        out_dir: str | None,
        level: int,
        bucket: Any,
    ) -> None:
        self.segmenter = make_segmenter(**spec)
        self.column = column
        self.out_dir = Path(out_dir) if out_dir else None
        self.level = level
        self.bucket = bucket

    def _wait_turn(self) -> None:
        if self.bucket is not None:
            import time

            import ray

            delay = float(ray.get(self.bucket.reserve.remote()))
            if delay > 0:
                time.sleep(delay)

    def _one(self, path: str | None, data: bytes | None) -> dict[str, Any]:
        source = path or ""
        row: dict[str, Any] = {
            "source": source,
            "classes": [],
            "rle": [],
            "coverage": [],
            "folder": None,
            "error": None,
        }
        try:
            self._wait_turn()
            if data is not None:
                result = self.segmenter.segment_data(data, source or "<bytes>")
            else:
                result = self.segmenter(BatchItem(str(path), _key(source, None)))
            masks = result_masks(result)
            names = list(masks.classes)
            cov = coverage(masks, min_value=self.level)
            row["classes"] = names
            row["rle"] = [encode_rle(masks[n], level=self.level) for n in names]
            row["coverage"] = [float(cov[n].fraction) for n in names]
            if self.out_dir is not None:
                folder = self.out_dir / _key(source, data)
                result.save(folder)
                row["folder"] = str(folder)
        except Exception as exc:  # one bad image must not end the pipeline
            row["error"] = f"{type(exc).__name__}: {exc}"
        return row

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        columns = batch.column_names
        paths = batch.column("path").to_pylist() if "path" in columns else None
        data = batch.column(self.column).to_pylist() if self.column else None
        if data is None and paths is None:
            raise ConfigurationError(
                "segment_dataset needs a 'path' column of image paths, a 'bytes' column of "
                f"encoded images, or column=NAME; this dataset has {columns}."
            )
        count = batch.num_rows
        rows = [
            self._one(
                paths[i] if paths is not None else None, data[i] if data is not None else None
            )
            for i in range(count)
        ]
        rle = pa.list_(pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())]))
        added = {
            "source": pa.array([r["source"] for r in rows], pa.string()),
            "classes": pa.array([r["classes"] for r in rows], pa.list_(pa.string())),
            "rle": pa.array([r["rle"] for r in rows], rle),
            "coverage": pa.array([r["coverage"] for r in rows], pa.list_(pa.float64())),
            "folder": pa.array([r["folder"] for r in rows], pa.string()),
            "error": pa.array([r["error"] for r in rows], pa.string()),
        }
        for name, values in added.items():
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, values)
        return batch


def segment_dataset(
    ds: Any,
    *,
    engine: str = "auto",
    options: Options | None = None,
    column: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    concurrency: int | None = None,
    batch_size: int = 16,
    rate_limit: float | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    replay_dir: str | os.PathLike[str] | None = None,
    engine_options: Mapping[str, Any] | None = None,
    min_value: int = 128,
    **option_values: Any,
) -> Any:
    """Segment every image of a ``ray.data.Dataset``; return it with the masks added.

    Parameters
    ----------
    ds
        Rows with a ``path`` column (image paths on storage every worker sees) and/or
        a ``bytes`` column of encoded images (``ray.data.read_binary_files`` gives
        both with ``include_paths=True``).
    engine
        ``"auto"``, ``"remote"``, ``"local"``, ``"replay"`` or ``"onnx"``; built once
        per worker.
    options
        The API's options (:class:`~clothseg_tools.contract.Options`); single fields
        may also be given as keywords (``class_type=4``).
    column
        The column of image bytes (default ``"bytes"`` when present, else paths are
        read).
    out_dir
        Also save each full result folder under this folder (shared storage); the
        ``folder`` column then names it.
    concurrency
        Workers of the map (default: between 1 and this machine's CPU count, as Ray
        Data scales the pool).
    batch_size
        Rows per call of a worker.
    rate_limit
        At most this many images per second over all workers (remote service).
    api_key, base_url, replay_dir, engine_options
        As for :func:`~clothseg_tools.batch.segment.segment_batch`.
    min_value
        Mask value at which a pixel counts for the RLE and the coverage.

    Returns
    -------
    ray.data.Dataset
        The input's columns plus ``source``, ``classes`` (list of names), ``rle``
        (COCO RLE per class, in ``classes`` order), ``coverage`` (fraction of the image
        per class), ``folder`` (or null) and ``error`` (``"Type: message"``, or null
        for a segmented image). Lazy, like every Ray dataset.

    Raises
    ------
    ConfigurationError
        Ray is not installed, or the backend cannot be set up.
    """
    try:
        import ray
    except ImportError:
        raise ConfigurationError(
            "segment_dataset needs Ray Data: pip install 'clothseg_tools[ray]'."
        ) from None
    unknown = set(option_values) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"segment_dataset() got unexpected keyword arguments: {sorted(unknown)}")
    opts = Options.from_mapping({**(options or Options()).as_dict(), **option_values})
    backend = choose_backend(engine, api_key=api_key or os.environ.get(KEY_ENV))
    spec: dict[str, Any] = {
        "backend": backend,
        "api_options": opts.as_dict(),
        "api_key": api_key,
        "base_url": base_url,
        "replay_dir": str(replay_dir) if replay_dir is not None else None,
        "engine_options": dict(engine_options or {}),
    }
    # set up once here too: a missing key or extra fails now, not on every worker
    make_segmenter(**spec).close()
    names = ds.columns()
    chosen = column or ("bytes" if "bytes" in names else None)
    if chosen is not None and chosen not in names:
        raise ConfigurationError(f"The dataset has no column {chosen!r}; it has {names}.")
    bucket = None
    if rate_limit:
        bucket = ray.remote(num_cpus=0)(_Bucket).remote(float(rate_limit))
    pool: int | tuple[int, int] = (
        int(concurrency) if concurrency is not None else (1, max(1, os.cpu_count() or 1))
    )
    return ds.map_batches(
        _SegmentRows,
        fn_constructor_kwargs={
            "spec": spec,
            "column": chosen,
            "out_dir": str(out_dir) if out_dir is not None else None,
            "level": int(min_value),
            "bucket": bucket,
        },
        batch_size=int(batch_size),
        batch_format="pyarrow",
        concurrency=pool,
    )
