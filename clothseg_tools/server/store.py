"""The task store: task records, their input bytes and result files.

:class:`MemoryStore` keeps everything in memory. :class:`DiskStore` (``--data-dir``)
keeps the same records in memory for fast reads and writes every change through to
disk: a SQLite index of records plus one file per input and per result, each written
atomically. A task is *accepted* once its input file and its index row are committed;
a restart then finds it again: finished tasks keep serving their results until they
expire, and tasks that were queued or processing are queued again.

Layout of a data folder::

    <data_dir>/tasks.sqlite3          index: one JSON record per task, expired ids
    <data_dir>/inputs/<task_id>       image bytes of tasks not yet finished
    <data_dir>/results/<task_id>/     <class>.png masks and clothes_masks.zip

Examples
--------
>>> store = MemoryStore()
>>> rec = TaskRecord.new(class_type=1, output_type=1, detail_mode=1, quality=1)
>>> store.add(rec, b"image bytes")
>>> store.get(rec.task_id) is rec, store.input_bytes(rec.task_id)
(True, b'image bytes')
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from ..contract import STATE_FAILED, STATE_PROCESSING, STATE_QUEUED, STATE_SUCCEEDED

__all__ = [
    "STATE_FAILED",
    "STATE_PROCESSING",
    "STATE_QUEUED",
    "STATE_SUCCEEDED",
    "DiskStore",
    "MemoryStore",
    "TaskRecord",
    "open_store",
]

logger = logging.getLogger("clothseg_tools.server")


#: How long the ids of expired tasks are remembered (to answer 410, not 404, for links).
TOMBSTONE_SECONDS = 86400.0


@dataclasses.dataclass
class TaskRecord:
    """One task. Persisted fields are the dataclass fields; the rest lives in memory.

    Attributes
    ----------
    task_id : str
        Random UUID.
    token : str
        Secret that signs the task's result links.
    state, status, message
        Task state (see the ``STATE_*`` constants), the status code a finished task
        is answered with (200, or 422/500 for a failure) and its message.
    files : list of str
        Result file names (``tops.png``, ``clothes_masks.zip``) once succeeded.
    expires_at : float or None
        Unix time after which the task and its links are gone.
    """

    task_id: str
    token: str
    created_at: float
    class_type: int
    output_type: int
    detail_mode: int
    quality: int
    progression: str = "immediate"
    corrupt_mask: bool = False
    expire_after: float | None = None
    state: int = STATE_QUEUED
    status: int = 200
    message: str = "success"
    processed_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    classes: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)
    engine_seconds: float | None = None
    # in memory only: status reads so far and the highest progress reported
    reads: int = dataclasses.field(default=0, compare=False)
    reported_progress: int = dataclasses.field(default=0, compare=False)

    _MEMORY_ONLY = ("reads", "reported_progress")

    @classmethod
    def new(cls, **fields: Any) -> TaskRecord:
        """A queued record with a fresh id, token and creation time."""
        return cls(
            task_id=str(uuid.uuid4()),
            token=secrets.token_urlsafe(24),
            created_at=time.time(),
            **fields,
        )

    @property
    def is_finished(self) -> bool:
        """True once the task succeeded or failed."""
        return self.state in (STATE_SUCCEEDED, STATE_FAILED)

    def is_expired(self, now: float) -> bool:
        """True when the task's lifetime is over."""
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self) -> str:
        """The persisted fields as JSON."""
        data = dataclasses.asdict(self)
        for name in self._MEMORY_ONLY:
            data.pop(name, None)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TaskRecord:
        """Read :meth:`to_json` back (unknown keys from newer versions are ignored)."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class MemoryStore:
    """Tasks, inputs and results in memory; safe to use from several threads."""

    persistent = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskRecord] = {}
        self._inputs: dict[str, bytes] = {}
        self._results: dict[str, dict[str, bytes]] = {}
        self._expired: dict[str, float] = {}

    # -- records --------------------------------------------------------------------

    def add(self, rec: TaskRecord, image_bytes: bytes) -> None:
        """Accept a new task with its input image."""
        with self._lock:
            self._tasks[rec.task_id] = rec
            self._inputs[rec.task_id] = image_bytes

    def get(self, task_id: str) -> TaskRecord | None:
        """The record of ``task_id``, or ``None``."""
        return self._tasks.get(task_id)

    def save(self, rec: TaskRecord) -> None:
        """Persist changes made to ``rec`` (a no-op in memory)."""

    def input_bytes(self, task_id: str) -> bytes | None:
        """The image bytes of a task not yet finished."""
        return self._inputs.get(task_id)

    def drop_input(self, task_id: str) -> None:
        """Forget a finished task's input."""
        with self._lock:
            self._inputs.pop(task_id, None)

    def tasks(self) -> list[TaskRecord]:
        """All current records, oldest first."""
        with self._lock:
            return sorted(self._tasks.values(), key=lambda r: r.created_at)

    def pending(self) -> list[TaskRecord]:
        """Records not yet finished, oldest first (queued again after a restart)."""
        return [r for r in self.tasks() if not r.is_finished]

    # -- results --------------------------------------------------------------------

    def put_results(self, rec: TaskRecord, files: dict[str, bytes]) -> None:
        """Store a task's result files (before the record says it succeeded)."""
        with self._lock:
            self._results[rec.task_id] = dict(files)

    def result(self, task_id: str, name: str) -> bytes | None:
        """One result file, or ``None``."""
        return self._results.get(task_id, {}).get(name)

    # -- expiry ---------------------------------------------------------------------

    def was_expired(self, task_id: str) -> bool:
        """True when ``task_id`` existed and has expired."""
        return task_id in self._expired

    def expire(self, task_id: str, now: float | None = None) -> None:
        """Remove a task and its files now, remembering that it expired."""
        with self._lock:
            if self._tasks.pop(task_id, None) is None:
                return
            self._inputs.pop(task_id, None)
            self._results.pop(task_id, None)
            self._expired[task_id] = time.time() if now is None else now
        self.discard_files(task_id)

    def purge(self, now: float | None = None) -> int:
        """Expire every task past its lifetime; returns how many were removed."""
        now = time.time() if now is None else now
        with self._lock:
            due = [r.task_id for r in self._tasks.values() if r.is_expired(now)]
            stale = [t for t, at in self._expired.items() if now - at > TOMBSTONE_SECONDS]
            for task_id in stale:
                del self._expired[task_id]
        for task_id in due:
            self.expire(task_id, now)
        self._forget_tombstones(stale)
        return len(due)

    def clear(self) -> None:
        """Remove every task, result and expiry memory (test reset)."""
        with self._lock:
            ids = list(self._tasks)
            self._tasks.clear()
            self._inputs.clear()
            self._results.clear()
            self._expired.clear()
        for task_id in ids:
            self.discard_files(task_id)

    def close(self) -> None:
        """Release files and connections."""

    def discard_files(self, task_id: str) -> None:
        """Drop a task's input and results (the task itself is already gone)."""
        with self._lock:
            self._inputs.pop(task_id, None)
            self._results.pop(task_id, None)

    def _forget_tombstones(self, task_ids: list[str]) -> None:
        pass


class DiskStore(MemoryStore):
    """A :class:`MemoryStore` written through to ``data_dir`` (see the module docstring).

    Parameters
    ----------
    data_dir
        Folder for the index and files (created when missing).
    """

    persistent = True

    def __init__(self, data_dir: str | Path) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        (self.data_dir / "inputs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "results").mkdir(parents=True, exist_ok=True)
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(
            self.data_dir / "tasks.sqlite3", check_same_thread=False, isolation_level=None
        )
        with self._db_lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a task answered as accepted survives a crash right after the answer
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, record TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS expired (task_id TEXT PRIMARY KEY, at REAL NOT NULL)"
            )
        self._load()

    def _load(self) -> None:
        with self._db_lock:
            rows = self._db.execute("SELECT record FROM tasks").fetchall()
            expired = self._db.execute("SELECT task_id, at FROM expired").fetchall()
        self._expired.update({task_id: at for task_id, at in expired})
        for (text,) in rows:
            try:
                rec = TaskRecord.from_json(text)
            except (ValueError, TypeError) as exc:
                logger.warning("skipping an unreadable task record in %s: %s", self.data_dir, exc)
                continue
            if not rec.is_finished:
                data = self._input_path(rec.task_id)
                if not data.is_file():
                    logger.warning("task %s lost its input file; dropping it", rec.task_id)
                    self._delete_row(rec.task_id)
                    continue
                # whatever was running when the server stopped starts again from the queue
                rec.state, rec.processed_at = STATE_QUEUED, None
            self._tasks[rec.task_id] = rec
        logger.info("loaded %d task(s) from %s", len(self._tasks), self.data_dir)

    def _input_path(self, task_id: str) -> Path:
        return self.data_dir / "inputs" / task_id

    def _result_dir(self, task_id: str) -> Path:
        return self.data_dir / "results" / task_id

    def _write_row(self, rec: TaskRecord) -> None:
        with self._db_lock:
            self._db.execute(
                "INSERT OR REPLACE INTO tasks (task_id, record) VALUES (?, ?)",
                (rec.task_id, rec.to_json()),
            )

    def _delete_row(self, task_id: str) -> None:
        with self._db_lock:
            self._db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))

    def add(self, rec: TaskRecord, image_bytes: bytes) -> None:
        # the input first: a row without its input would be a task that cannot run
        atomic_write_bytes(self._input_path(rec.task_id), image_bytes)
        self._write_row(rec)
        with self._lock:
            self._tasks[rec.task_id] = rec

    def save(self, rec: TaskRecord) -> None:
        if rec.task_id in self._tasks:
            self._write_row(rec)

    def input_bytes(self, task_id: str) -> bytes | None:
        try:
            return self._input_path(task_id).read_bytes()
        except FileNotFoundError:
            return None

    def drop_input(self, task_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._input_path(task_id).unlink()

    def put_results(self, rec: TaskRecord, files: dict[str, bytes]) -> None:
        folder = self._result_dir(rec.task_id)
        for name, data in files.items():
            atomic_write_bytes(folder / name, data)

    def result(self, task_id: str, name: str) -> bytes | None:
        rec = self._tasks.get(task_id)
        if rec is None or name not in rec.files:
            return None
        try:
            return (self._result_dir(task_id) / name).read_bytes()
        except FileNotFoundError:
            return None

    def expire(self, task_id: str, now: float | None = None) -> None:
        at = time.time() if now is None else now
        super().expire(task_id, at)
        with self._db_lock:
            self._db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))
            self._db.execute(
                "INSERT OR REPLACE INTO expired (task_id, at) VALUES (?, ?)", (task_id, at)
            )

    def clear(self) -> None:
        super().clear()
        with self._db_lock:
            self._db.execute("DELETE FROM tasks")
            self._db.execute("DELETE FROM expired")
        for sub in ("inputs", "results"):
            shutil.rmtree(self.data_dir / sub, ignore_errors=True)
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    def discard_files(self, task_id: str) -> None:
        super().discard_files(task_id)
        self.drop_input(task_id)
        shutil.rmtree(self._result_dir(task_id), ignore_errors=True)

    def _forget_tombstones(self, task_ids: list[str]) -> None:
        if task_ids:
            with self._db_lock:
                self._db.executemany(
                    "DELETE FROM expired WHERE task_id = ?", [(t,) for t in task_ids]
                )


def open_store(data_dir: str | Path | None) -> MemoryStore:
    """A :class:`DiskStore` for ``data_dir``, or a :class:`MemoryStore` when it is ``None``."""
    return MemoryStore() if data_dir is None else DiskStore(data_dir)
