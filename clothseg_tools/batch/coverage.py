"""The coverage statistics job over result folders, and the dataset files made from it.

:func:`stats_job` writes ``coverage.json`` into each result's folder (pixels, fraction,
box, centroid per class, from :func:`~clothseg_tools.coverage`); after the run,
:func:`write_dataset_stats` gathers them into ``stats.csv`` (one row per image and
class), ``stats_summary.csv`` and ``stats.json`` (the per-class dataset summary of
:func:`~clothseg_tools.summarize`), so a resumed run still reports on every image.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, atomic_write_json
from ..result import SegmentationResult
from .discover import BatchItem
from .manifest import read_manifest
from .post import DEFAULT_NAMES, output_path, result_fingerprint, result_masks
from .runner import ItemOutput, Job

__all__ = [
    "STATS_CSV",
    "STATS_JSON",
    "STATS_SUMMARY_CSV",
    "read_coverage",
    "stats_job",
    "write_dataset_stats",
]

#: Dataset-level outputs of the stats job, in the output root.
STATS_CSV = "stats.csv"
STATS_SUMMARY_CSV = "stats_summary.csv"
STATS_JSON = "stats.json"
_SUMMARY_COLUMNS = (
    "images", "present", "presence_rate", "mean_fraction", "median_fraction",
    "mean_fraction_present",
)  # fmt: skip


def stats_job(
    out_dir: str | os.PathLike[str],
    *,
    min_value: int = 128,
    components: bool = False,
) -> Job:
    """Coverage of every class per image, saved as ``<out>/<key>/coverage.json``.

    See :func:`write_dataset_stats` for the dataset files made from them.
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..stats import coverage

    out = Path(out_dir)
    filename = DEFAULT_NAMES["stats"]

    def work(item: BatchItem) -> ItemOutput:
        t0 = time.perf_counter()
        result = SegmentationResult.load(item.source)
        t1 = time.perf_counter()
        cov = coverage(result_masks(result), min_value=min_value, components=components)
        h, w = result.shape
        doc = {
            "image": item.key,
            "source": result.source,
            "size": [w, h],
            "classes": {name: c.to_dict() for name, c in cov.items()},
        }
        data = (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        path, rel = output_path(out, item, filename)
        atomic_write_bytes(path, data)
        return ItemOutput(
            checksums={rel: hashlib.sha256(data).hexdigest()},
            timings={"load": t1 - t0, "compute": time.perf_counter() - t1},
        )

    return Job(
        "stats",
        work,
        out,
        options={"min_value": int(min_value), "components": bool(components)},
        fingerprint=result_fingerprint,
    )


def _coverage_from_dict(d: dict[str, Any]) -> Any:
    # lazy: keeps the clothseg command's start-up fast
    from ..stats import Coverage

    return Coverage(
        pixels=int(d["pixels"]),
        fraction=float(d["fraction"]),
        bbox=None if d.get("bbox") is None else tuple(d["bbox"]),
        centroid=None if d.get("centroid") is None else tuple(d["centroid"]),
        components=d.get("components"),
    )


def read_coverage(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{class: Coverage}`` from a ``coverage.json`` written by the stats job."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: _coverage_from_dict(d) for name, d in doc["classes"].items()}


def write_dataset_stats(job: Job, items: Sequence[BatchItem]) -> tuple[Path, Path]:
    """Gather the per-image coverage files into ``stats.csv`` and ``stats.json``.

    Uses every item whose latest stats record is ``done`` (from this run or an earlier
    one); failed items are listed in ``stats.json`` with their reasons.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The CSV (one row per image and class, columns of
        :func:`~clothseg_tools.coverage_table`) and the JSON (``summary`` per class
        from :func:`~clothseg_tools.summarize`, ``images``, ``failed``,
        ``per_image``). The summary is also written as ``stats_summary.csv``.
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..stats import COVERAGE_COLUMNS, coverage_table, summarize

    records = read_manifest(job.manifest_path)
    per_image: dict[str, dict[str, Any]] = {}
    failed = []
    for item in items:
        rec = records.get(item.source)
        if rec is None:
            continue
        if rec.get("status") != "done":
            failed.append({"image": item.key, "error": rec.get("error")})
            continue
        path, _ = output_path(job.out_dir, item, DEFAULT_NAMES["stats"])
        per_image[item.key] = read_coverage(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COVERAGE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(coverage_table(per_image))
    csv_path = job.out_dir / STATS_CSV
    json_path = job.out_dir / STATS_JSON
    atomic_write_bytes(csv_path, buf.getvalue().encode("utf-8"))
    summary = summarize(per_image)
    buf = io.StringIO()
    summary_writer = csv.writer(buf, lineterminator="\n")
    summary_writer.writerow(["class", *_SUMMARY_COLUMNS])
    for name, row in summary.items():
        summary_writer.writerow(
            [name, *("" if row[c] is None else row[c] for c in _SUMMARY_COLUMNS)]
        )
    atomic_write_bytes(job.out_dir / STATS_SUMMARY_CSV, buf.getvalue().encode("utf-8"))
    atomic_write_json(
        json_path,
        {
            "images": len(per_image),
            "summary": summary,
            "failed": failed,
            "per_image": {
                key: {name: c.to_dict() for name, c in cov.items()}
                for key, cov in per_image.items()
            },
        },
    )
    return csv_path, json_path
