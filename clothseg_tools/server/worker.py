"""Runs tasks: a pool of engine threads, result encoding, and what status reads reveal.

Engine calls are CPU work, so they never run on the event loop: each task runs on one
of ``workers`` threads, and each thread builds its own engine instance (engines need
not be thread-safe; one whose ``thread_safe`` is true, such as the onnx engine's single
session, is shared by all). Decoding the image, running the engine, encoding the PNG masks
and the per-garment ZIP, and writing the results all happen on that thread; the event
loop only awaits the task's future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .._io import encode_png
from ..classes import CLASS_TYPES, GARMENT_CLASSES
from ..engines import Engine
from ..errors import EngineError, InputError, NoRecordError
from ..inputs import decode_input_image
from ..zipmasks import part_class, write_mask_zip
from .settings import ServerSettings, parse_progression
from .store import (
    STATE_FAILED,
    STATE_PROCESSING,
    STATE_QUEUED,
    STATE_SUCCEEDED,
    MemoryStore,
    TaskRecord,
)

__all__ = ["ZIP_NAME", "TaskRunner", "reveal"]

logger = logging.getLogger("clothseg_tools.server")

#: File name of the per-garment ZIP among a task's results.
ZIP_NAME = "clothes_masks.zip"


class TaskRunner:
    """Queue of tasks and the engine threads that run them.

    Parameters
    ----------
    settings
        Server settings (workers, TTL, queue size).
    store
        Where records, inputs and results live.
    engine_factory
        Builds one engine; called once per worker thread.
    first_engine
        An engine already built (the app builds one at start-up to fail early on a bad
        configuration); the first worker thread uses it.
    """

    def __init__(
        self,
        settings: ServerSettings,
        store: MemoryStore,
        engine_factory: Callable[[], Engine],
        *,
        first_engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._factory = engine_factory
        self._spare = [first_engine] if first_engine is not None else []
        self._engines: list[Engine] = list(self._spare)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="clothseg-engine"
        )
        self._futures: dict[str, asyncio.Future[None]] = {}
        self._pending = 0
        # running mean of the engine's time, for progress estimates and Retry-After
        self.mean_seconds = 0.5

    # -- queue ----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet finished."""
        return self._pending

    def is_full(self) -> bool:
        """True when no more tasks may be queued."""
        return self._pending >= self.settings.max_queue

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's expected drain time."""
        drain = self._pending * self.mean_seconds / self.settings.workers
        return max(1, math.ceil(drain))

    def submit(self, rec: TaskRecord) -> asyncio.Future[None]:
        """Queue ``rec`` on the engine threads; the future completes when it finished.

        Must be called from the event loop.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            self._pending += 1
        future = loop.run_in_executor(self._pool, self._run, rec.task_id)
        self._futures[rec.task_id] = future

        def done(_: asyncio.Future[None]) -> None:
            with self._lock:
                self._pending -= 1
            self._futures.pop(rec.task_id, None)

        future.add_done_callback(done)
        return future

    def future(self, task_id: str) -> asyncio.Future[None] | None:
        """The future of a queued or running task, if any."""
        return self._futures.get(task_id)

    def shutdown(self) -> None:
        """Stop taking work, finish running tasks, and close the engines.

        Tasks still queued stay queued in the store; a persistent store runs them
        after the next start.
        """
        self._pool.shutdown(wait=True, cancel_futures=True)
        for engine in self._engines:
            try:
                engine.close()
            except Exception:  # a failing close must not stop the others
                logger.exception("closing engine %r failed", engine)

    # -- work (engine threads) ------------------------------------------------------

    def _engine(self) -> Engine:
        engine: Engine | None = getattr(self._local, "engine", None)
        if engine is None:
            with self._lock:
                if self._engines and getattr(self._engines[0], "thread_safe", False):
                    engine = self._engines[0]  # one model serves every thread
                else:
                    engine = self._spare.pop() if self._spare else None
            if engine is None:
                engine = self._factory()
                with self._lock:
                    self._engines.append(engine)
            self._local.engine = engine
        return engine

    def _run(self, task_id: str) -> None:
        rec = self.store.get(task_id)
        if rec is None or rec.is_finished:
            return  # reset, or expired while queued
        rec.processed_at = time.time()
        rec.state = STATE_PROCESSING  # last: readers on the event loop see a whole update
        self.store.save(rec)
        data = self.store.input_bytes(task_id)
        try:
            if data is None:
                raise EngineError("The task's image is missing from the store; create it again.")
            files, seconds = self._segment(rec, data)
        except (InputError, NoRecordError) as exc:
            self._finish(rec, status=422, message=str(exc))
            return
        except EngineError as exc:
            self._finish(rec, status=500, message=f"The engine failed on this image: {exc}")
            return
        except Exception as exc:
            logger.exception("task %s: the engine raised", task_id)
            self._finish(
                rec,
                status=500,
                message=f"The engine failed on this image ({type(exc).__name__}: {exc}); "
                "try again, and report the problem if it persists.",
            )
            return
        self.mean_seconds += 0.2 * (seconds - self.mean_seconds)
        rec.engine_seconds = seconds
        self.store.put_results(rec, files)
        self._finish(rec, status=200, message="success", files=list(files))

    def _segment(self, rec: TaskRecord, data: bytes) -> tuple[dict[str, bytes], float]:

        image = decode_input_image(data)
        classes = CLASS_TYPES[rec.class_type]
        start = time.perf_counter()
        out = self._engine().segment(
            image,
            classes=classes,
            detail_mode=rec.detail_mode,
            quality=rec.quality,
            image_bytes=data,
        )
        seconds = time.perf_counter() - start
        files: dict[str, bytes] = {}
        if rec.output_type in (1, 3):
            masks = out.masks.select(classes, missing="zeros")
            for name in classes:
                files[f"{name}.png"] = encode_png(masks[name])
        if rec.output_type in (2, 3):
            files[ZIP_NAME] = _garment_zip(out.parts)
        if rec.corrupt_mask:
            # cut every file in half: it still looks like a PNG/ZIP, but will not decode
            files = {name: body[: max(1, len(body) // 2)] for name, body in files.items()}
        rec.classes = list(classes) if rec.output_type in (1, 3) else []
        return files, seconds

    def _finish(
        self, rec: TaskRecord, *, status: int, message: str, files: list[str] | None = None
    ) -> None:
        if self.store.get(rec.task_id) is not rec:
            self.store.discard_files(rec.task_id)  # reset while running: drop the work
            return
        now = time.time()
        ttl = self.settings.result_ttl
        if rec.expire_after is not None and rec.expire_after > 0:
            ttl = rec.expire_after
        rec.status, rec.message = status, message
        rec.files = files or []
        rec.completed_at, rec.expires_at = now, now + ttl
        # the state goes last: a status read on the event loop never sees "succeeded"
        # before the files, times and status that go with it
        rec.state = STATE_SUCCEEDED if status == 200 else STATE_FAILED
        self.store.save(rec)
        self.store.drop_input(rec.task_id)
        if status != 200:
            logger.info("task %s failed with %d: %s", rec.task_id, status, message)


def _garment_zip(parts: dict[str, Any]) -> bytes:
    """The per-garment ZIP: one PNG per instance of a garment class."""

    garments = {name: mask for name, mask in parts.items() if part_class(name) in GARMENT_CLASSES}
    return write_mask_zip(garments, layout="flat")


def reveal(
    rec: TaskRecord, now: float, *, mean_seconds: float, count_read: bool
) -> tuple[int, int]:
    """The (state, progress) a status read shows, applying the task's progression.

    A finished task is shown as finished only once its progression allows it
    (``time``: enough seconds since creation; ``manual``: enough status reads once
    the engine is done);
    until then it shows as processing with rising progress. Progress never goes
    down between reads.

    Parameters
    ----------
    rec
        The task (its read counter and reported progress are updated).
    now
        Current Unix time.
    mean_seconds
        Typical engine time, to estimate progress while the engine runs.
    count_read
        Count this as a status read (for ``manual`` progression).
    """
    spec = parse_progression(rec.progression)
    # only reads of a finished task count: reads made while a slow engine still runs would
    # otherwise use up the progression, and a loaded machine would change what clients see
    if count_read and rec.is_finished:
        rec.reads += 1
    if rec.is_finished:
        if spec.kind == "time" and now < rec.created_at + spec.value:
            progress = int(99 * (now - rec.created_at) / spec.value)
        elif spec.kind == "manual" and rec.reads <= spec.value:
            # each of the n reads shows more than the last, even after a slow engine's
            # own estimate climbed high while it ran: a client's progress callback
            # (called on a change) then sees every one of them
            progress = max(int(99 * rec.reads / (spec.value + 1)), rec.reported_progress + 1)
        else:
            return rec.state, 100
    elif rec.state == STATE_QUEUED:
        return STATE_QUEUED, rec.reported_progress
    else:
        started = rec.processed_at or now
        progress = 1 + int(94 * min(1.0, (now - started) / max(mean_seconds, 1e-3)))
    progress = max(rec.reported_progress, min(progress, 99))
    rec.reported_progress = progress
    return STATE_PROCESSING, progress
