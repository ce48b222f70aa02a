"""What runs a batch's items: the job, one item's run, and the executors.

A :class:`Job` names a command, its per-item function and the options that decide
whether an earlier output still counts. :func:`run_item` runs one item and returns its
manifest record, never raising for the item's own errors. An :class:`Executor` runs
many items and yields their records as they end: :class:`LocalExecutor` on threads
here, :class:`~clothseg_tools.batch.ray_executor.RayExecutor` on Ray workers. The
planning, counting and shards around them are in :mod:`~clothseg_tools.batch.runner`.

Examples
--------
>>> job = Job("demo", lambda item: ItemOutput(notes=("seen",)), "out")
>>> record = run_item(job, BatchItem("a.jpg", "a"), {})
>>> record["status"], record["notes"]
('done', ['seen'])
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as _dt
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._io import sha256_file
from .._pool import RateLimiter, ThreadLoop
from .discover import BatchItem
from .manifest import Manifest, manifest_path

__all__ = [
    "Executor",
    "ExecutorRun",
    "ItemOutput",
    "Job",
    "Limiter",
    "LocalExecutor",
    "file_checksums",
    "now_iso",
    "run_item",
    "sha256_file",
]

logger = logging.getLogger("clothseg_tools")


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
    task : dict or None
        The service's task of the item (id, times), recorded in the manifest as
        ``task``; the result folder leaves it out, so that it is the same every run.
    """

    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    task: Mapping[str, Any] | None = None


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


def now_iso() -> str:
    """The time now in UTC, as manifest lines record it (``finished_at``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def run_item(
    job: Job, item: BatchItem, options: Mapping[str, Any], limiter: Limiter | None = None
) -> dict[str, Any]:
    """Run one item and return its manifest record; never raises for the item's own errors.

    This is the unit every executor runs, on a thread here or in a Ray worker far away;
    the executor appends the record to the manifest.
    """
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
        if output.task is not None:
            record["task"] = dict(output.task)
    record["options"] = dict(options)
    record["finished_at"] = now_iso()
    _log(job, item, record)
    return record


def _log(job: Job, item: BatchItem, record: Mapping[str, Any]) -> None:
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


def _safe_fingerprint(job: Job, item: BatchItem) -> str | None:
    try:
        return job.fingerprint(item)
    except Exception:
        return None


class Limiter(Protocol):
    """What :func:`run_item` needs of a rate limiter (a :class:`RateLimiter`, or the
    Ray executor's limiter shared by every worker)."""

    def acquire(self) -> None:
        """Block until the caller may start one item."""


@dataclasses.dataclass(frozen=True)
class ExecutorRun:
    """One run of an executor: the items, the job they are for, and what every executor
    needs around them. :meth:`Executor.run` builds it and hands it to
    :meth:`Executor.execute`.

    Attributes
    ----------
    job : Job
        What to do per item.
    items : sequence of BatchItem
        The items to run (those the plan left to do), in order.
    options : dict
        The job's options as JSON, recorded in every item's manifest line.
    manifest : Manifest
        Where each item's record is appended as the item ends.
    rate_limit : float or None
        At most this many item starts per second, over all workers together.
    stop : threading.Event or None
        Once set, no new item starts (as after Ctrl-C).
    """

    job: Job
    items: Sequence[BatchItem]
    options: Mapping[str, Any]
    manifest: Manifest
    rate_limit: float | None = None
    stop: threading.Event | None = None


class Executor(abc.ABC):
    """Where a batch's items run. Subclasses implement :meth:`execute`.

    :func:`run_job` plans the batch, then iterates ``executor.run(...)`` for the records
    of the items as they end, and counts them; the executor runs the items, appends
    each record to the manifest as it ends, and keeps :attr:`started` and
    :attr:`interrupted` up to date. Ctrl-C inside :meth:`execute` stops new items and
    yields the ones in flight once they end, then sets :attr:`interrupted`.

    Attributes
    ----------
    workers : int
        Items processed at once.
    started : int
        Items of the last run handed to a worker.
    interrupted : bool
        Whether Ctrl-C stopped the last run.
    """

    name = "executor"

    def __init__(self, workers: int = 1) -> None:
        if int(workers) < 1:
            raise ValueError(f"workers must be at least 1, got {workers}.")
        self.workers = int(workers)
        self.started = 0
        self.interrupted = False

    def run(
        self,
        job: Job,
        items: Sequence[BatchItem],
        *,
        options: Mapping[str, Any],
        rate_limit: float | None = None,
        manifest: Manifest,
        stop: threading.Event | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """Run ``items``; yield each one's manifest record (already appended) as it ends.

        The parameters are those of :class:`ExecutorRun`. The counters start again
        from zero.
        """
        self.started, self.interrupted = 0, False
        work = ExecutorRun(job, items, dict(options), manifest, rate_limit, stop)
        return self.execute(work)

    @abc.abstractmethod
    def execute(self, work: ExecutorRun) -> Generator[dict[str, Any], None, None]:
        """Run ``work.items`` as :meth:`run` says (the counters are already reset)."""


class LocalExecutor(Executor):
    """Items on a pool of threads in this process (the default).

    Examples
    --------
    >>> LocalExecutor(4).workers
    4
    """

    name = "local"

    def execute(self, work: ExecutorRun) -> Generator[dict[str, Any], None, None]:
        limiter = RateLimiter(work.rate_limit) if work.rate_limit else None

        def one(item: BatchItem) -> dict[str, Any]:
            record = run_item(work.job, item, work.options, limiter)
            # appended by the worker itself: recorded even if the caller is interrupted
            work.manifest.append(record)
            return record

        with ThreadLoop(one, work.items, workers=self.workers, stop=work.stop) as loop:
            try:
                for record in loop:
                    self.started = loop.started
                    yield record
            except KeyboardInterrupt:
                self.interrupted = True
                yield from loop.drain()  # running items finish and record themselves
            self.started = loop.started
