"""Running one function over many items: resume plan, worker threads, manifest, summary.

The runner is what every batch command shares. A :class:`Job` names the command, the
per-item function and the options that decide whether an earlier output still counts.
:func:`run_job` reads the job's manifest, decides per item whether it is complete
(:func:`plan_job`), runs the rest on a thread pool, appends one manifest line per item
as it ends, and returns a :class:`BatchSummary`.

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
import datetime as _dt
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from .._io import sha256_file
from .discover import BatchItem
from .manifest import Manifest, manifest_path, read_manifest

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BatchSummary",
    "ItemOutput",
    "Job",
    "Plan",
    "Progress",
    "RateLimiter",
    "available_cpus",
    "file_checksums",
    "plan_job",
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


def file_checksums(root: str | os.PathLike[str], relpaths: Iterable[str]) -> dict[str, str]:
    """``{relpath: sha256}`` of files under ``root`` (``/``-separated relative paths)."""
    base = Path(root)
    return {rel: sha256_file(base / rel) for rel in relpaths}


@dataclasses.dataclass(frozen=True)
class ItemOutput:
    """What an item's function reports when it succeeds.

    Attributes
    ----------
    checksums : dict of str to str
        ``/``-separated path relative to the job's output folder -> SHA-256 of every
        file the item wrote; a rerun trusts the item only while these still match.
    timings : dict of str to float
        Seconds per stage, recorded in the manifest.
    notes : tuple of str
        Remarks recorded in the manifest (``"no person found"``).
    """

    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _no_fingerprint(item: BatchItem) -> str | None:
    return None


@dataclasses.dataclass
class Job:
    """A batch command: its name, its per-item function and what makes outputs current.

    Attributes
    ----------
    command : str
        ``"segment"``, ``"cutout"``...; names the manifest (see
        :func:`~clothseg_tools.batch.manifest.manifest_path`).
    work : callable
        ``work(item) -> ItemOutput``; called from worker threads.
    out_dir : pathlib.Path
        Where outputs and the manifest go.
    options : dict
        JSON-able options; an earlier output made with other options is redone.
    fingerprint : callable
        ``fingerprint(item) -> str | None`` describing the input's current state
        (size and mtime of a photo, checksum of a result); a change redoes the item.
    manifest_name : str or None
        Names the manifest instead of ``command``, for jobs whose outputs are tracked
        apart (a cutout written under another file name).
    """

    command: str
    work: Callable[[BatchItem], ItemOutput]
    out_dir: Path
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: Callable[[BatchItem], str | None] = _no_fingerprint
    manifest_name: str | None = None

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)

    @property
    def manifest_path(self) -> Path:
        """This job's manifest file (named after ``manifest_name`` or the command)."""
        return manifest_path(self.out_dir, self.manifest_name or self.command)


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
        ``source -> latest record``; read from the job's manifest when ``None``.
    overwrite, retry_failed
        See above.

    Returns
    -------
    Plan
    """
    if records is None:
        records = read_manifest(job.manifest_path)
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


class RateLimiter:
    """Spaces item starts at least ``1 / per_second`` seconds apart, across threads.

    Examples
    --------
    >>> limiter = RateLimiter(1000.0)
    >>> t0 = time.perf_counter(); _ = [limiter.acquire() for _ in range(5)]
    >>> time.perf_counter() - t0 >= 0.004
    True
    """

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise ValueError(f"rate limit must be above 0 per second, got {per_second!r}.")
        self.interval = 1.0 / float(per_second)
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for this caller's slot."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            time.sleep(delay)


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


def now_iso() -> str:
    """The time now in UTC, as manifest lines record it (``finished_at``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _run_one(
    job: Job,
    item: BatchItem,
    options: dict[str, Any],
    limiter: RateLimiter | None,
    manifest: Manifest,
) -> dict[str, Any]:
    """Run one item and record it; never raises for the item's own errors."""
    if limiter is not None:
        limiter.acquire()
    start = time.perf_counter()
    record: dict[str, Any] = {"source": item.source, "key": item.key, "command": job.command}
    try:
        fingerprint = job.fingerprint(item)
        output = job.work(item)
    except Exception as exc:  # one bad item must never end the batch
        logger.debug("%s failed on %s", job.command, item.source, exc_info=True)
        record.update(
            status="failed",
            error={"type": type(exc).__name__, "message": str(exc) or repr(exc)},
            seconds=round(time.perf_counter() - start, 6),
            timings={},
            notes=[],
            checksums={},
            fingerprint=_safe_fingerprint(job, item),
        )
    else:
        record.update(
            status="done",
            error=None,
            seconds=round(time.perf_counter() - start, 6),
            timings={k: round(float(v), 6) for k, v in output.timings.items()},
            notes=list(output.notes),
            checksums=dict(output.checksums),
            fingerprint=fingerprint,
        )
    record["options"] = options
    record["finished_at"] = now_iso()
    manifest.append(record)
    if record["status"] == "done":
        stages = ", ".join(f"{k} {v:.3f}" for k, v in record["timings"].items())
        logger.info(
            "%s %s: done in %.3f s%s",
            job.command,
            item.key,
            record["seconds"],
            f" ({stages})" if stages else "",
        )
    else:
        logger.info(
            "%s %s: failed in %.3f s: %s",
            job.command,
            item.key,
            record["seconds"],
            record["error"]["type"],
        )
    return record


def _safe_fingerprint(job: Job, item: BatchItem) -> str | None:
    try:
        return job.fingerprint(item)
    except Exception:
        return None


def run_job(
    job: Job,
    items: Sequence[BatchItem],
    *,
    workers: int = 1,
    overwrite: bool = False,
    retry_failed: bool = False,
    rate_limit: float | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> BatchSummary:
    """Run ``job`` over ``items``: skip what is complete, record every item that ends.

    Parameters
    ----------
    job
        What to do per item.
    items
        The batch (see :func:`~clothseg_tools.batch.discover.discover_inputs`).
    workers
        Items processed at once (threads).
    overwrite
        Redo every item.
    retry_failed
        Redo items that failed before (otherwise they stay failed and are skipped).
    rate_limit
        At most this many item starts per second (``None``: no limit).
    progress
        Receives start / advance / close calls.
    stop
        Setting this event stops new items from starting, like Ctrl-C.

    Returns
    -------
    BatchSummary

    Notes
    -----
    ``KeyboardInterrupt`` in the calling thread stops new items; the items in flight
    finish and are recorded before this returns. A second interrupt while waiting for
    them is raised as usual (their files are still written atomically).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    started = time.perf_counter()
    plan = plan_job(job, items, overwrite=overwrite, retry_failed=retry_failed)
    summary = BatchSummary(
        job.command,
        total=len(items),
        skipped=len(plan.complete),
        failed_before=len(plan.failed_before),
        manifest=job.manifest_path,
    )
    for _, rec in plan.failed_before:
        summary.errors[str((rec.get("error") or {}).get("type", "Error"))] += 1
    limiter = RateLimiter(rate_limit) if rate_limit else None
    options = _jsonable(job.options)
    if progress is not None:
        progress.start(len(plan.run), skipped=len(plan.complete) + len(plan.failed_before))
    try:
        with Manifest(job.manifest_path) as manifest:
            _drive(job, plan.run, options, limiter, manifest, workers, summary, progress, stop)
    finally:
        if progress is not None:
            progress.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _drive(
    job: Job,
    run: list[BatchItem],
    options: dict[str, Any],
    limiter: RateLimiter | None,
    manifest: Manifest,
    workers: int,
    summary: BatchSummary,
    progress: Progress | None,
    stop: threading.Event | None,
) -> None:
    """Feed items to the pool a few at a time so Ctrl-C leaves little to cancel."""
    pending: Iterator[BatchItem] = iter(run)
    in_flight: dict[Future[dict[str, Any]], BatchItem] = {}
    started = 0

    def account(fut: Future[dict[str, Any]]) -> None:
        record = fut.result()
        summary.records.append(record)
        if record["status"] == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.errors[record["error"]["type"]] += 1
        if progress is not None:
            progress.advance(record)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clothseg") as pool:
        try:
            while True:
                while len(in_flight) < 2 * workers and not (stop and stop.is_set()):
                    item = next(pending, None)
                    if item is None:
                        break
                    fut = pool.submit(_run_one, job, item, options, limiter, manifest)
                    in_flight[fut] = item
                    started += 1
                if not in_flight:
                    break
                finished, _ = wait(list(in_flight), timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in finished:
                    del in_flight[fut]
                    account(fut)
        except KeyboardInterrupt:
            summary.interrupted = True
            # queued items have not started: cancel them; running ones finish and record
            for fut in list(in_flight):
                if fut.cancel():
                    del in_flight[fut]
                    started -= 1
            for fut in list(in_flight):
                del in_flight[fut]
                account(fut)  # waits for it; _run_one records the item itself
    if stop is not None and stop.is_set():
        summary.interrupted = True
    summary.not_started = len(run) - started
