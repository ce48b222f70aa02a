"""The Ray executor: a batch's items on the workers of a Ray cluster (``--executor ray``).

The driver (the process that runs ``clothseg``) plans the batch as usual, then hands
the items to long-lived worker actors in tasks of a few dozen items. Each actor
builds the job once, so an engine's model loads once per worker, not per image.
Workers write their outputs straight into the results folder (shared storage on a
cluster) with the same atomic writes as a local run, and stream one manifest record
back per item as it ends; the driver appends it to the manifest at once, so an
interrupted run resumes exactly like a local one.

With ``rate_limit`` the item starts of all workers together keep to it: one token
bucket lives in a small actor that every worker asks for its slot, because a
service's quota is per key, not per machine.

A worker that dies (killed, out of memory, its node lost) loses nothing: the items
of its task that had not reported are handed to a new worker; those that had
reported keep their single manifest line. An item that takes down two workers in a
row is recorded as failed (``WorkerLostError``) instead of killing a third.

Without an address a local Ray is started, sized by ``workers``, and shut down at
the end; with ``address`` (``ray start --head`` printed it) the run joins that
cluster and leaves it running.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._pool import RateLimiter
from ..errors import ConfigurationError
from .discover import BatchItem
from .executor import Executor, ExecutorRun, Job, now_iso, run_item
from .manifest import Manifest

__all__ = ["DEFAULT_CHUNK", "RayExecutor", "WorkerLostError"]

logger = logging.getLogger("clothseg_tools")

#: Items per task: enough to hide a round trip, few enough to spread the work well.
DEFAULT_CHUNK = 24
#: Seconds to wait for the workers to start (a model may load, a node may boot).
_START_TIMEOUT = 600.0
#: A task whose worker died this many times with the same item first is not retried.
_MAX_LOSSES = 2


class WorkerLostError(RuntimeError):
    """The worker processing an item died (twice): recorded as the item's failure."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigurationError(
            "--executor ray needs Ray: pip install 'clothseg_tools[ray]'."
        ) from None
    return ray


class _SharedLimiter:
    """The worker's side of the shared token bucket: ask the bucket actor, then wait."""

    def __init__(self, bucket: Any) -> None:
        self._bucket = bucket

    def acquire(self) -> None:
        ray = _ray()
        delay = float(ray.get(self._bucket.reserve.remote()))
        if delay > 0:
            time.sleep(delay)


class _Bucket:
    """Actor holding the one :class:`RateLimiter` of a run."""

    def __init__(self, rate: float) -> None:
        self._limiter = RateLimiter(rate)

    def reserve(self) -> float:
        return self._limiter.reserve()


class _Worker:
    """Actor running items of one job; the job (and its engine) is built once."""

    def __init__(self, job: Job, options: Mapping[str, Any], bucket: Any) -> None:
        self._job = job
        self._options = dict(options)
        self._limiter = _SharedLimiter(bucket) if bucket is not None else None

    def ready(self) -> bool:
        return True

    def run(self, items: list[BatchItem]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield run_item(self._job, item, self._options, self._limiter)


@dataclass
class _Task:
    """A chunk on its way: the worker running it and the items not yet reported."""

    slot: int
    waiting: collections.OrderedDict[str, BatchItem] = field(
        default_factory=collections.OrderedDict
    )


class RayExecutor(Executor):
    """Items on Ray worker actors, locally or on a cluster.

    Parameters
    ----------
    workers
        Worker actors (each takes ``cpus_per_worker`` CPUs); also the CPU count of the
        local Ray started when there is no ``address``.
    address
        A running cluster's address (``ray://host:10001`` or ``host:6379``); ``None``
        starts a local Ray for the run (or uses the one this process already started).
    chunk
        Items per task.
    cpus_per_worker
        CPUs Ray reserves for each worker actor (below 1 for the remote service,
        whose workers mostly wait on the network).

    Examples
    --------
    >>> ex = RayExecutor(2, chunk=16)
    >>> ex.workers, ex.chunk, ex.address is None
    (2, 16, True)
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        *,
        address: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        cpus_per_worker: float = 1.0,
    ) -> None:
        super().__init__(workers)
        if int(chunk) < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}.")
        self.address = address
        self.chunk = int(chunk)
        self.cpus_per_worker = float(cpus_per_worker)
        #: Workers started to replace ones that died, in the last run.
        self.replaced = 0
        #: Seconds the last run spent starting its workers (building the job, loading
        #: the engine), before the first item.
        self.start_seconds = 0.0

    # -- Ray's lifetime -----------------------------------------------------------------

    def _connect(self) -> bool:
        """Join or start Ray; return whether this run started it (and must stop it)."""
        ray = _ray()
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs["num_cpus"] = max(1, round(self.workers * self.cpus_per_worker))
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise ConfigurationError(
                f"Could not reach the Ray cluster at {self.address}: {exc}. Start it with "
                "'ray start --head' and pass the address it prints."
            ) from None
        return True

    def _actors(self, ray: Any) -> int:
        """Workers to start: ``workers``, but no more than the cluster's CPUs can hold
        (an actor that cannot be placed would wait forever)."""
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        fits = int(cpus // self.cpus_per_worker) if self.cpus_per_worker > 0 else self.workers
        if 0 < fits < self.workers:
            logger.warning(
                "The Ray cluster has %g CPUs: starting %d workers instead of %d.",
                cpus,
                fits,
                self.workers,
            )
            return fits
        return self.workers

    def execute(self, work: ExecutorRun) -> Generator[dict[str, Any], None, None]:
        self.replaced = 0
        if not work.items:
            return
        ray = _ray()
        owns = self._connect()
        worker_cls = ray.remote(num_cpus=self.cpus_per_worker, max_restarts=0)(_Worker)
        bucket = (
            ray.remote(num_cpus=0)(_Bucket).remote(float(work.rate_limit))
            if work.rate_limit
            else None
        )
        began = time.perf_counter()
        pool = _Pool(self, ray, worker_cls, work, bucket, self._actors(ray))
        self.start_seconds = time.perf_counter() - began
        try:
            yield from pool.drive()
        finally:
            pool.close()
            if bucket is not None:
                with contextlib.suppress(Exception):
                    ray.kill(bucket)
            if owns:
                ray.shutdown()


class _Pool:
    """The driver's loop: chunks to workers, records back, lost work handed on."""

    def __init__(
        self,
        executor: RayExecutor,
        ray: Any,
        worker_cls: Any,
        work: ExecutorRun,
        bucket: Any,
        actors: int,
    ) -> None:
        self.ex = executor
        self.ray = ray
        self.work = work
        self.job = work.job
        self.options = dict(work.options)
        self._new = lambda: worker_cls.remote(self.job, self.options, bucket)
        self.workers: list[Any] = []
        self.tasks: dict[Any, _Task] = {}
        self.busy: set[int] = set()
        self.losses: collections.Counter[str] = collections.Counter()
        #: More replacements than this means workers cannot live at all: give up.
        self.max_replaced = 4 * executor.workers + 8
        lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
        self.lost_errors = (*lost, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError)
        try:
            self.workers = [self._new() for _ in range(actors)]
            # a job that cannot be rebuilt on a worker fails here, once, not per item
            ray.get([w.ready.remote() for w in self.workers], timeout=_START_TIMEOUT)
        except Exception as exc:
            self.close()
            raise ConfigurationError(
                f"The Ray workers could not start the {self.job.command} job: "
                f"{type(exc).__name__}: {exc}. Is clothseg_tools (with the engine's extra) "
                "installed on every node?"
            ) from None

    def _submit(self, slot: int, chunk: list[BatchItem]) -> None:
        gen = self.workers[slot].run.options(num_returns="streaming").remote(chunk)
        self.tasks[gen] = _Task(slot, collections.OrderedDict((i.source, i) for i in chunk))
        self.busy.add(slot)

    def drive(self) -> Generator[dict[str, Any], None, None]:
        items, manifest, stop = self.work.items, self.work.manifest, self.work.stop
        size = self.ex.chunk
        queue: collections.deque[list[BatchItem]] = collections.deque(
            list(items[i : i + size]) for i in range(0, len(items), size)
        )
        stopping = False
        while queue or self.tasks:
            try:
                if not stopping and not (stop is not None and stop.is_set()):
                    for slot in range(len(self.workers)):
                        if slot not in self.busy and queue:
                            chunk = queue.popleft()
                            self._submit(slot, chunk)
                            self.ex.started += len(chunk)
                if not self.tasks:
                    break
                ready, _ = self.ray.wait(list(self.tasks), num_returns=1, timeout=0.25)
                for gen in ready:
                    yield from self._collect(gen, queue, manifest)
            except KeyboardInterrupt:
                if stopping:
                    raise  # a second Ctrl-C: stop waiting (outputs are written atomically)
                # no new tasks; the ones running finish and are recorded
                self.ex.interrupted = stopping = True
                self.ex.started -= sum(len(c) for c in queue)
                queue.clear()

    def _collect(
        self, gen: Any, queue: collections.deque[list[BatchItem]], manifest: Manifest
    ) -> Iterator[dict[str, Any]]:
        task = self.tasks[gen]
        try:
            ref = next(gen)
            record = self.ray.get(ref)
        except StopIteration:
            del self.tasks[gen]
            self.busy.discard(task.slot)
            return
        except self.lost_errors as exc:
            del self.tasks[gen]
            yield from self._lost(task, queue, manifest, exc)
            return
        task.waiting.pop(str(record["source"]), None)
        manifest.append(record)
        yield record

    def _lost(
        self,
        task: _Task,
        queue: collections.deque[list[BatchItem]],
        manifest: Manifest,
        exc: BaseException,
    ) -> Iterator[dict[str, Any]]:
        """A worker died: replace it; its unreported items go to the front of the queue."""
        logger.warning(
            "A Ray worker died with %d items unreported; handing them to a new worker (%s).",
            len(task.waiting),
            type(exc).__name__,
        )
        self.ex.replaced += 1
        if self.ex.replaced > self.max_replaced:
            raise ConfigurationError(
                f"{self.ex.replaced} Ray workers died during this run; stopping. Check the "
                "nodes' memory and the Ray logs (ray logs --help)."
            )
        with contextlib.suppress(Exception):
            self.ray.kill(self.workers[task.slot])
        self.workers[task.slot] = self._new()
        self.busy.discard(task.slot)
        rest = list(task.waiting.values())
        if rest:
            first = rest[0]  # the item in progress when it died
            self.losses[first.source] += 1
            if self.losses[first.source] >= _MAX_LOSSES:
                rest = rest[1:]
                record = self._lost_record(first)
                manifest.append(record)
                yield record
        if rest:
            queue.appendleft(rest)

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                self.ray.kill(worker)

    def _lost_record(self, item: BatchItem) -> dict[str, Any]:
        """The manifest line of an item that took its workers down with it."""
        try:
            fingerprint = self.job.fingerprint(item)
        except Exception:
            fingerprint = None
        return {
            "source": item.source,
            "key": item.key,
            "command": self.job.command,
            "status": "failed",
            "error": {
                "type": WorkerLostError.__name__,
                "message": (
                    f"The worker processing it died {_MAX_LOSSES} times (out of memory, or "
                    "a crash inside the engine); run it alone to see why, then "
                    "--retry-failed."
                ),
            },
            "seconds": 0.0,
            "timings": {},
            "notes": [],
            "checksums": {},
            "fingerprint": fingerprint,
            "options": self.options,
            "finished_at": now_iso(),
        }
