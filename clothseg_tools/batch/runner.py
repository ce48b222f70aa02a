"""Running one job over many items: resume plan, executor, manifest, summary.

The runner is what every batch command shares. :func:`run_job` reads the job's
manifest (with all its shard parts), decides per item whether it is complete
(:func:`plan_job`), hands the rest to an executor (threads here, or Ray workers; see
:mod:`~clothseg_tools.batch.executor`), appends one manifest line per item as it ends,
and returns a :class:`BatchSummary`. How it runs (workers, resume, rate limit, shard,
executor) travels as one :class:`BatchOptions`.

An item's function raising any ``Exception`` makes that item a failed line, with the
exception's type and message; the batch carries on. ``KeyboardInterrupt`` (Ctrl-C)
stops new items from starting, lets the ones in flight finish and record themselves,
and returns a summary marked ``interrupted``.

Examples
--------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> def work(item):
...     if item.source == "bad":
...         raise ValueError("cannot read it")
...     path = out / item.key / "x.txt"
...     path.parent.mkdir(parents=True, exist_ok=True)
...     _ = path.write_text(item.source)
...     return ItemOutput(checksums=file_checksums(out, [f"{item.key}/x.txt"]))
>>> items = [BatchItem("good", "g"), BatchItem("bad", "b")]
>>> summary = run_job(Job("demo", work, out), items)
>>> summary.done, summary.failed, summary.exit_code
(1, 1, 1)
>>> run_job(Job("demo", work, out), items).skipped   # the rerun trusts verified outputs
1
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._pool import RateLimiter
from ..errors import ConfigurationError
from .discover import BatchItem
from .executor import (
    Executor,
    ExecutorRun,
    ItemOutput,
    Job,
    Limiter,
    LocalExecutor,
    file_checksums,
    now_iso,
    run_item,
    sha256_file,
)
from .manifest import Manifest, manifest_path, read_manifests
from .ray_executor import RayExecutor  # imports ray itself only when a run uses it
from .shards import Shard

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BatchOptions",
    "BatchSummary",
    "Executor",
    "ExecutorRun",
    "ItemOutput",
    "Job",
    "Limiter",
    "LocalExecutor",
    "Plan",
    "Progress",
    "RateLimiter",
    "available_cpus",
    "file_checksums",
    "now_iso",
    "plan_job",
    "run_item",
    "run_job",
    "sha256_file",
]

logger = logging.getLogger("clothseg_tools")

#: Every item is done.
EXIT_OK = 0
#: Some items failed (now, or in an earlier run and not retried).
EXIT_FAILED = 1
#: Usage or configuration error: nothing ran.
EXIT_USAGE = 2
#: Stopped by Ctrl-C before every item was reached (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask or cgroup share, at least 1).

    CPU-bound work (the in-process engines, post-processing) gains nothing from more
    threads than this: they only contend for the same cores.

    Examples
    --------
    >>> available_cpus() >= 1
    True
    """
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13+: honours affinity
    if counter is not None:
        return max(1, counter() or 1)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclasses.dataclass
class Plan:
    """Which items a run does, and why the others are skipped.

    Attributes
    ----------
    run : list of BatchItem
        Items to process, in order.
    complete : list of BatchItem
        Skipped: a verified output from an earlier run.
    failed_before : list of (BatchItem, dict)
        Skipped: failed earlier with the same input and options (``retry_failed``
        reruns them); the dict is the manifest record.
    """

    run: list[BatchItem] = dataclasses.field(default_factory=list)
    complete: list[BatchItem] = dataclasses.field(default_factory=list)
    failed_before: list[tuple[BatchItem, dict[str, Any]]] = dataclasses.field(default_factory=list)


def _outputs_intact(out_dir: Path, checksums: Mapping[str, str]) -> bool:
    for rel, expected in checksums.items():
        path = out_dir / rel
        try:
            if sha256_file(path) != expected:
                return False
        except OSError:
            return False
    return True


def plan_job(
    job: Job,
    items: Sequence[BatchItem],
    *,
    records: Mapping[str, Mapping[str, Any]] | None = None,
    overwrite: bool = False,
    retry_failed: bool = False,
) -> Plan:
    """Decide which items need work, comparing each with its latest manifest record.

    An item is skipped as complete when its record says ``done`` with the same
    options and input fingerprint, and every output file still has its recorded
    checksum. An item that failed with the same options and input is skipped unless
    ``retry_failed``. Everything else runs; ``overwrite`` runs everything.

    Parameters
    ----------
    job
        The job.
    items
        All items of the batch.
    records
        ``source -> latest record``; read from the job's manifest and all its shard
        parts (:func:`~clothseg_tools.batch.manifest.read_manifests`) when ``None``.
    overwrite, retry_failed
        See above.

    Returns
    -------
    Plan
    """
    if records is None:
        records = read_manifests(job.out_dir, job.manifest_name or job.command)
    plan = Plan()
    options = _jsonable(job.options)
    for item in items:
        rec = records.get(item.source)
        if overwrite or rec is None or rec.get("key") != item.key:
            plan.run.append(item)
            continue
        same = rec.get("options") == options and rec.get("fingerprint") == job.fingerprint(item)
        if not same:
            plan.run.append(item)
        elif rec.get("status") == "failed":
            if retry_failed:
                plan.run.append(item)
            else:
                plan.failed_before.append((item, dict(rec)))
        elif rec.get("status") == "done" and _outputs_intact(
            job.out_dir, rec.get("checksums") or {}
        ):
            plan.complete.append(item)
        else:
            plan.run.append(item)
    return plan


def _jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as they read back from JSON (tuples become lists), for comparison."""
    import json

    return dict(json.loads(json.dumps(dict(options), default=str)))


class Progress(Protocol):
    """What the runner reports to a progress display (the CLI's is a tqdm bar)."""

    def start(self, total: int, *, skipped: int) -> None:
        """``total`` items will run; ``skipped`` were complete or failed before."""

    def advance(self, record: Mapping[str, Any]) -> None:
        """One item ended; ``record`` is its manifest line."""

    def close(self) -> None:
        """The run ended (also after Ctrl-C)."""


@dataclasses.dataclass
class BatchSummary:
    """How a run went.

    Attributes
    ----------
    command : str
        The job's command.
    total : int
        Items in the batch.
    done, failed : int
        Items that ended done / failed in this run.
    skipped : int
        Items complete from an earlier run.
    failed_before : int
        Earlier failures not retried (still counted as failures by :attr:`exit_code`).
    not_started : int
        Items not reached because of Ctrl-C.
    errors : collections.Counter
        Error type name -> count, over this run's and the earlier failures.
    interrupted : bool
        Whether Ctrl-C stopped the run.
    seconds : float
        Wall time of the run.
    manifest : pathlib.Path
        The manifest file.
    records : list of dict
        The manifest lines this run appended, in finishing order.
    passed_over : list of dict
        Files the batch's discovery passed over (not supported images), as their
        manifest lines (``status`` ``"skipped"`` with a ``reason``); they do not
        change :attr:`exit_code`.
    """

    command: str
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    failed_before: int = 0
    not_started: int = 0
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    interrupted: bool = False
    seconds: float = 0.0
    manifest: Path = Path()
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    passed_over: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some failed, 130 interrupted before the end."""
        if self.interrupted and self.not_started:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if (self.failed or self.failed_before) else EXIT_OK

    def table(self) -> str:
        """A plain-text summary table: done, skipped, failed, and failures by error type.

        Examples
        --------
        >>> s = BatchSummary("segment", 3, done=1, failed=2, seconds=2.0,
        ...                  errors=Counter({"ImageDecodeError": 2}))
        >>> print(s.table())
        segment: 3 items in 2.0 s (1.5 items/s)
          done                        1
          failed                      2
          failures by error type:
            ImageDecodeError          2
        """
        ran = self.done + self.failed
        rate = f" ({ran / self.seconds:.1f} items/s)" if self.seconds > 0 and ran else ""
        lines = [f"{self.command}: {self.total} items in {self.seconds:.1f} s{rate}"]
        rows = [
            ("done", self.done),
            ("skipped (complete)", self.skipped),
            ("failed", self.failed),
            ("failed before", self.failed_before),
            ("not started", self.not_started),
            ("skipped (not an image)", len(self.passed_over)),
        ]
        width = 26
        lines += [f"  {label:<{width}}{n:>3}" for label, n in rows if n or label == "done"]
        if self.errors:
            lines.append("  failures by error type:")
            for name, n in sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    {name:<{width - 2}}{n:>3}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How a batch runs, as opposed to what it computes: one object that the CLI, the
    batch functions and :func:`run_job` pass on unchanged.

    Attributes
    ----------
    workers : int
        Items processed at once (threads, or Ray workers).
    overwrite : bool
        Redo every item.
    retry_failed : bool
        Redo items that failed before (otherwise they stay failed and are skipped).
    rate_limit : float or None
        At most this many item starts per second, evenly spaced, over all workers
        together (see :class:`~clothseg_tools.batch.RateLimiter`).
    shard : Shard or None
        Run only this shard's stable share of the items (``"K/N"`` is parsed).
    executor : str or Executor
        ``"local"`` (threads), ``"ray"`` or an :class:`Executor`.
    ray_address : str or None
        The Ray cluster to join with ``executor="ray"`` (default: a local Ray sized by
        ``workers``, shut down at the end).

    Raises
    ------
    ValueError
        ``workers`` below 1 or ``rate_limit`` not above 0.
    ConfigurationError
        A malformed shard or an unknown executor.

    Examples
    --------
    >>> BatchOptions(workers=8, shard="2/4").shard
    Shard(index=2, count=4)
    >>> dataclasses.replace(BatchOptions(), retry_failed=True).retry_failed
    True
    """

    workers: int = 1
    overwrite: bool = False
    retry_failed: bool = False
    rate_limit: float | None = None
    shard: Shard | None = None
    executor: str | Executor = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if int(self.workers) < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}.")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate limit must be above 0 per second, got {self.rate_limit!r}.")
        if isinstance(self.shard, str):
            object.__setattr__(self, "shard", Shard.parse(self.shard))
        if self.executor is None:
            object.__setattr__(self, "executor", "local")
        if not isinstance(self.executor, Executor) and self.executor not in ("local", "ray"):
            raise ConfigurationError(
                f"Unknown executor {self.executor!r}; choose 'local' or 'ray'."
            )


def _executor(batch: BatchOptions) -> Executor:
    if isinstance(batch.executor, Executor):
        return batch.executor
    if batch.executor == "ray":
        return RayExecutor(batch.workers, address=batch.ray_address)
    return LocalExecutor(batch.workers)


def run_job(
    job: Job,
    items: Sequence[BatchItem],
    batch: BatchOptions | None = None,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    **settings: Any,
) -> BatchSummary:
    """Run ``job`` over ``items``: skip what is complete, record every item that ends.

    Parameters
    ----------
    job
        What to do per item.
    items
        The batch (see :func:`~clothseg_tools.batch.discover.discover_inputs`).
    batch
        How to run it: workers, resume, rate limit, shard, executor
        (:class:`BatchOptions`; default one worker, resuming, on threads).
    progress
        Receives start / advance / close calls.
    stop
        Setting this event stops new items from starting, like Ctrl-C.
    **settings
        :class:`BatchOptions` fields that replace ``batch``'s (``workers=4``,
        ``shard="1/3"``, ``executor="ray"`` ...).

    Returns
    -------
    BatchSummary
        Counts over this shard's items when a shard is given. With a shard, the run
        records into the manifest part ``manifest.K-of-N.jsonl`` and marks the shard
        done at the end (see :mod:`~clothseg_tools.batch.shards`).

    Notes
    -----
    ``KeyboardInterrupt`` in the calling thread stops new items; the items in flight
    finish and are recorded before this returns. A second interrupt while waiting for
    them is raised as usual (their files are still written atomically).
    """
    batch = dataclasses.replace(batch or BatchOptions(), **settings)
    started = time.perf_counter()
    part = batch.shard
    if part is not None:
        items = part.select(items)
    name = job.manifest_name or job.command
    path = manifest_path(job.out_dir, name, part.pair if part is not None else None)
    # a shard needs only its own items' records: 1/N of a huge manifest in memory
    records = read_manifests(job.out_dir, name, part.holds_record if part is not None else None)
    plan = plan_job(
        job, items, records=records, overwrite=batch.overwrite, retry_failed=batch.retry_failed
    )
    summary = BatchSummary(
        job.command,
        total=len(items),
        skipped=len(plan.complete),
        failed_before=len(plan.failed_before),
        manifest=path,
    )
    for _, rec in plan.failed_before:
        summary.errors[str((rec.get("error") or {}).get("type", "Error"))] += 1
    runner = _executor(batch)
    if progress is not None:
        progress.start(len(plan.run), skipped=len(plan.complete) + len(plan.failed_before))
    try:
        if part is not None:
            part.mark_running(job.out_dir, name)
        with Manifest(path) as manifest:
            _drive(job, plan.run, runner, manifest, summary, progress, stop, batch.rate_limit)
    finally:
        if progress is not None:
            progress.close()
        summary.seconds = time.perf_counter() - started
        if part is not None:
            part.mark_finished(job.out_dir, name, summary)
    return summary


def _drive(
    job: Job,
    run: list[BatchItem],
    executor: Executor,
    manifest: Manifest,
    summary: BatchSummary,
    progress: Progress | None,
    stop: threading.Event | None,
    rate_limit: float | None,
) -> None:
    """Count the records the executor yields, into the summary and the progress bar."""

    def account(record: dict[str, Any]) -> None:
        summary.records.append(record)
        if record["status"] == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.errors[record["error"]["type"]] += 1
        if progress is not None:
            progress.advance(record)

    options = _jsonable(job.options)
    records = executor.run(
        job, run, options=options, rate_limit=rate_limit, manifest=manifest, stop=stop
    )
    try:
        for record in records:
            account(record)
    except KeyboardInterrupt:
        # Ctrl-C landed here, between two records: hand it to the executor so that it
        # stops new items and yields the ones in flight
        summary.interrupted = True
        try:
            account(records.throw(KeyboardInterrupt()))
            for record in records:
                account(record)
        except (StopIteration, KeyboardInterrupt):
            pass
    if executor.interrupted or (stop is not None and stop.is_set()):
        summary.interrupted = True
    summary.not_started = len(run) - executor.started
