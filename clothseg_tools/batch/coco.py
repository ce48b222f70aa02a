"""``clothseg coco`` as a batch: one COCO JSON made in shards or on Ray workers.

A COCO file is one document with ids running over every image, so a shard cannot
write its share of it directly. Instead each result's share (its image entry and
annotations, without ids: :func:`~clothseg_tools.export.coco.image_entry`) is written
atomically as a small JSON file under ``.<name>.parts/`` beside the COCO file, with a
manifest line like every batch item, so a stopped shard resumes where it stopped and
redoes nothing done. When the last shard finishes (every shard of the run has its done
marker), it puts the shares together in the order an unsharded export reads the
results (natural order of their relative paths) and writes the COCO file, ids given in
that order: byte for byte the file ``export_coco`` writes for the same results.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from clothseg_tools import MaskSet
>>> from clothseg_tools.batch import discover_results
>>> from clothseg_tools.export import export_coco
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for i in range(4):
...     _ = MaskSet({"tops": np.eye(3, dtype=bool)}).save(root / "res" / f"p{i}")
>>> items = discover_results(root / "res")
>>> [coco_batch(items, root / "coco.json", shard=f"{k}/2").written is not None for k in (1, 2)]
[False, True]
>>> whole = export_coco(root / "res", root / "whole.json")
>>> whole.read_bytes() == (root / "coco.json").read_bytes()
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, read_regular_file
from ..export._source import natural_key, result_item
from ..export.coco import check_coco_options, coco_document, image_entry, write_coco
from .discover import BatchItem
from .post import result_fingerprint
from .runner import BatchOptions, BatchSummary, ItemOutput, Job, Progress, plan_job, run_job
from .shards import shard_states

__all__ = ["COCO_NAME", "CocoRun", "assemble_coco", "coco_batch", "coco_job"]

#: The COCO file ``clothseg coco`` writes into the results folder by default.
COCO_NAME = "coco.json"


def _parts_dir(path: Path) -> str:
    """The hidden folder beside ``path`` holding each result's share (one per item)."""
    return f".{path.name}.parts"


def _entry_file(parts: str, key: str) -> str:
    """``parts/<ab>/<sha256 of key>.json``: any key (``"."`` too) becomes a plain name."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{parts}/{digest[:2]}/{digest}.json"


def coco_job(
    path: str | os.PathLike[str],
    *,
    mode: str = "instances",
    encoding: str = "rle",
    parts: bool = True,
    level: int = 128,
    tolerance: float = 0.25,
) -> Job:
    """The :class:`Job` writing each result's share of the COCO file ``path``.

    The shares and the manifest (``manifest-coco.jsonl``, or
    ``manifest-coco-<name>.jsonl`` for another file name) go to ``path``'s folder.
    Options are those of :func:`~clothseg_tools.export.export_coco`.
    """
    target = Path(path)
    out = target.parent
    parts_dir = _parts_dir(target)
    settings: dict[str, Any] = {
        "mode": mode,
        "encoding": encoding,
        "parts": bool(parts),
        "level": int(level),
        "tolerance": float(tolerance),
    }
    check_coco_options(mode, encoding)  # before the batch starts, not item by item

    def work(item: BatchItem) -> ItemOutput:
        t0 = time.perf_counter()
        result = result_item(item.source, item.key)
        t1 = time.perf_counter()
        entry = image_entry(result, **settings)
        data = (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        rel = _entry_file(parts_dir, item.key)
        atomic_write_bytes(out / rel, data)
        return ItemOutput(
            checksums={rel: hashlib.sha256(data).hexdigest()},
            timings={"load": t1 - t0, "encode": time.perf_counter() - t1},
        )

    name = "coco" if target.name == COCO_NAME else f"coco-{target.name}"
    return Job(
        "coco",
        work,
        out,
        options={**settings, "file": target.name},
        fingerprint=result_fingerprint,
        manifest_name=name,
    )


@dataclasses.dataclass
class CocoRun:
    """How a :func:`coco_batch` run went.

    Attributes
    ----------
    summary : BatchSummary
        The batch over this run's (or shard's) results.
    written : pathlib.Path or None
        The COCO file, when this run wrote it.
    waiting : str
        Why it did not, when it did not: other shards still to finish, or results
        that failed or are not done (then the file would leave images out).
    incomplete : bool
        Every shard finished, yet results failed or are missing: the COCO file is not
        written until they are redone (``--retry-failed``, or the shards rerun).
    images, annotations : int
        What the written file holds.
    """

    summary: BatchSummary
    written: Path | None = None
    waiting: str = ""
    incomplete: bool = False
    images: int = 0
    annotations: int = 0


def assemble_coco(job: Job, items: Sequence[BatchItem], path: str | os.PathLike[str]) -> CocoRun:
    """Write the COCO file ``path`` from the shares of ``items``, if every one is done.

    The shares are read in the order an unsharded export reads the results (natural
    order of their relative paths) and given ids in that order. Each share is checked
    against its manifest record first (same options, same result, same checksum).

    Returns
    -------
    CocoRun
        ``written`` set, or ``incomplete`` with the reason in ``waiting``. Its summary
        is empty: the caller sets it.
    """
    plan = plan_job(job, items)
    outcome = CocoRun(BatchSummary(job.command, len(items)))
    target = Path(path)
    if plan.failed_before or plan.run:
        problems = []
        if plan.failed_before:
            problems.append(f"{len(plan.failed_before)} failed (see the manifest)")
        if plan.run:
            problems.append(f"{len(plan.run)} not done (new or changed since their shard ran)")
        outcome.incomplete = True
        outcome.waiting = (
            f"{target.name} is not written: of {len(items)} results, {' and '.join(problems)}; "
            "rerun with --retry-failed, or rerun the shards, to finish it."
        )
        return outcome
    by_key = {item.key: item for item in items}

    def entries() -> Any:
        for key in sorted(by_key, key=natural_key):
            rel = _entry_file(_parts_dir(target), key)
            yield json.loads(read_regular_file(job.out_dir / rel))

    doc = coco_document(entries(), mode=str(job.options["mode"]))
    outcome.written = write_coco(doc, target)
    outcome.images, outcome.annotations = len(doc["images"]), len(doc["annotations"])
    return outcome


def coco_batch(
    items: Sequence[BatchItem],
    path: str | os.PathLike[str],
    batch: BatchOptions | None = None,
    *,
    mode: str = "instances",
    encoding: str = "rle",
    parts: bool = True,
    level: int = 128,
    tolerance: float = 0.25,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    **settings: Any,
) -> CocoRun:
    """Export ``items`` (result folders, from
    :func:`~clothseg_tools.batch.discover.discover_results`) as the COCO file ``path``,
    resumably, in shards or on Ray.

    Parameters
    ----------
    items
        The result folders, keyed by their path relative to the results root.
    path
        The COCO file; each result's share and the manifest go beside it.
    batch
        How it runs (:class:`~clothseg_tools.batch.BatchOptions`: workers, resume,
        shard, executor).
    mode, encoding, parts, level, tolerance
        As for :func:`~clothseg_tools.export.export_coco`.
    progress, stop
        See :func:`~clothseg_tools.batch.runner.run_job`.
    **settings
        :class:`~clothseg_tools.batch.BatchOptions` fields replacing ``batch``'s.

    Returns
    -------
    CocoRun
        The batch's summary, and the COCO file when this run wrote it: an unsharded
        run, or the last shard to finish, with every result done.
    """
    run = dataclasses.replace(batch or BatchOptions(), **settings)
    job = coco_job(
        path, mode=mode, encoding=encoding, parts=parts, level=level, tolerance=tolerance
    )
    summary = run_job(job, items, run, progress=progress, stop=stop)
    if summary.interrupted:
        return CocoRun(summary, waiting=f"{Path(path).name} is not written yet (interrupted)")
    shard = run.shard
    if shard is not None:
        name = job.manifest_name or job.command
        states = [s for s in shard_states(job.out_dir, name) if s.shard.count == shard.count]
        if not all(s.state == "done" for s in states):
            waiting = sum(s.state != "done" for s in states)
            return CocoRun(
                summary,
                waiting=f"{Path(path).name} is written by the last shard to finish "
                f"({waiting} of {shard.count} still to finish)",
            )
    outcome = assemble_coco(job, items, path)
    outcome.summary = summary
    return outcome
