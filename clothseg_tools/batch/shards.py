"""Shards: one batch split into N independent runs, for array jobs on many machines.

``--shard K/N`` runs a stable K-th of N shares of a batch. An item belongs to the
shard picked by a hash of its key (its path relative to the batch's root, see
:mod:`~clothseg_tools.batch.discover`), not by its place in a listing, so adding
files never moves an item to another shard. Each shard appends to its own manifest
part (``manifest.K-of-N.jsonl``), marks itself running while it works
(``manifest.K-of-N.running``) and done when it has reached every item
(``manifest.K-of-N.done``). Readers of the folder read all parts as one
(:func:`~clothseg_tools.batch.manifest.read_manifests`); :func:`shard_states` tells
which shards are done, running, stopped or missing.

Examples
--------
>>> from clothseg_tools.batch import BatchItem
>>> shard = Shard.parse("2/3")
>>> shard.label, shard.pair
('2-of-3', (2, 3))
>>> items = [BatchItem(f"/p/{i}.jpg", str(i)) for i in range(300)]
>>> sizes = [len(Shard(k, 3).select(items)) for k in (1, 2, 3)]
>>> sum(sizes), all(80 < n < 120 for n in sizes)
(300, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._io import atomic_write_json
from ..errors import ConfigurationError
from .discover import BatchItem
from .manifest import manifest_files, manifest_path, read_manifest

__all__ = ["Shard", "ShardState", "shard_of", "shard_states"]


def shard_of(key: str, count: int) -> int:
    """The shard (1..count) that the item with output key ``key`` belongs to.

    The first 8 bytes of the key's SHA-256, modulo ``count``: the same on every
    machine, Python version and run.

    Examples
    --------
    >>> shard_of("shop1/shirt", 4), shard_of("shop1/shirt", 4) == shard_of("shop1/shirt", 4)
    (4, True)
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


class _Counts(Protocol):
    total: int
    done: int
    failed: int
    skipped: int
    failed_before: int
    not_started: int
    interrupted: bool
    seconds: float


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (both counted from 1, as ``--shard K/N`` writes them).

    Raises
    ------
    ConfigurationError
        ``index`` outside ``1..count``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.index, int) and isinstance(self.count, int)) or not (
            1 <= self.index <= self.count
        ):
            raise ConfigurationError(
                f"A shard is K/N with 1 <= K <= N (shard 1/4 ... 4/4 of four), got "
                f"{self.index}/{self.count}."
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` -> ``Shard(K, N)``.

        Raises
        ------
        ConfigurationError
            Not two whole numbers ``K/N`` with ``1 <= K <= N``.

        Examples
        --------
        >>> Shard.parse(" 3/8 ")
        Shard(index=3, count=8)
        """
        k, sep, n = str(text).strip().partition("/")
        if not sep or not k.strip().isdigit() or not n.strip().isdigit():
            raise ConfigurationError(
                f"--shard takes K/N, this run's number K out of N shards (e.g. 3/8), "
                f"got {text!r}."
            )
        return cls(int(k), int(n))

    @property
    def pair(self) -> tuple[int, int]:
        """``(K, N)``."""
        return (self.index, self.count)

    @property
    def label(self) -> str:
        """``"K-of-N"``, as in the manifest part's name."""
        return f"{self.index}-of-{self.count}"

    def holds(self, item: BatchItem) -> bool:
        """Whether ``item`` belongs to this shard."""
        return shard_of(item.key, self.count) == self.index

    def holds_record(self, record: Mapping[str, Any]) -> bool:
        """Whether a manifest record is of one of this shard's items (by its key)."""
        key = record.get("key")
        return isinstance(key, str) and shard_of(key, self.count) == self.index

    def select(self, items: Sequence[BatchItem]) -> list[BatchItem]:
        """This shard's items, in their order."""
        return [item for item in items if self.holds(item)]

    # -- markers ----------------------------------------------------------------------

    def marker(self, out_dir: str | os.PathLike[str], command: str, state: str) -> Path:
        """``manifest[-command].K-of-N.<state>`` beside the shard's manifest part."""
        return manifest_path(out_dir, command, self.pair).with_suffix(f".{state}")

    def mark_running(self, out_dir: str | os.PathLike[str], command: str) -> None:
        """Say that this shard works now: host, process and start time.

        A done marker of an earlier run of this shard is removed: the shard is
        running again (more files, ``--retry-failed``).
        """
        with contextlib.suppress(FileNotFoundError):
            self.marker(out_dir, command, "done").unlink()
        atomic_write_json(
            self.marker(out_dir, command, "running"),
            {"host": socket.gethostname(), "pid": os.getpid(), "started_at": _now()},
        )

    def mark_finished(
        self, out_dir: str | os.PathLike[str], command: str, summary: _Counts
    ) -> None:
        """Remove the running marker; write the done marker if every item was reached."""
        if not summary.interrupted:
            atomic_write_json(
                self.marker(out_dir, command, "done"),
                {
                    "shard": self.label,
                    "items": summary.total,
                    "done": summary.done + summary.skipped,
                    "failed": summary.failed + summary.failed_before,
                    "seconds": round(summary.seconds, 3),
                    "host": socket.gethostname(),
                    "finished_at": _now(),
                },
            )
        with contextlib.suppress(FileNotFoundError):
            self.marker(out_dir, command, "running").unlink()


@dataclasses.dataclass
class ShardState:
    """What a results folder says about one shard of a command.

    Attributes
    ----------
    shard : Shard
        Which one.
    state : str
        ``done`` (reached every item), ``running`` (its marker is there and, when it
        runs on this host, its process is alive), ``stopped`` (began, then stopped
        before the end: Ctrl-C, a killed job), or ``missing`` (never began).
    done, failed : int
        Items done / failed in its manifest part.
    detail : str
        Host and time of the marker, when there is one.
    """

    shard: Shard
    state: str
    done: int = 0
    failed: int = 0
    detail: str = ""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _alive(info: dict[str, Any]) -> bool:
    """False only when the marker names a process of this host that is gone."""
    if info.get("host") != socket.gethostname():
        return True  # another machine's process: its marker is all there is to go by
    try:
        os.kill(int(info.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def shard_states(out_dir: str | os.PathLike[str], command: str = "segment") -> list[ShardState]:
    """The state of every shard of ``command`` that a results folder knows of.

    The shard count comes from the parts and markers present; a folder holding runs
    with different counts lists each count's shards.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> from clothseg_tools.batch import BatchSummary
    >>> Shard(1, 2).mark_finished(root, "segment", BatchSummary("segment", 2, done=2))
    >>> [(s.shard.label, s.state) for s in shard_states(root)]
    [('1-of-2', 'done'), ('2-of-2', 'missing')]
    """
    root = Path(out_dir)
    counts: set[int] = set()
    for file in manifest_files(root):
        if file.command == command and file.shard is not None:
            counts.add(file.shard[1])
    for state in ("running", "done"):
        stem = manifest_path(root, command).stem
        for path in root.glob(f"{stem}.*-of-*.{state}"):
            middle = path.name[len(stem) + 1 : -len(state) - 1]
            k, _, n = middle.partition("-of-")
            if k.isdigit() and n.isdigit():
                counts.add(int(n))
    states = []
    for count in sorted(counts):
        for index in range(1, count + 1):
            states.append(_state(root, command, Shard(index, count)))
    return states


def _state(root: Path, command: str, shard: Shard) -> ShardState:
    part = manifest_path(root, command, shard.pair)
    records = read_manifest(part)
    done = sum(1 for r in records.values() if r.get("status") == "done")
    failed = sum(1 for r in records.values() if r.get("status") == "failed")
    result = ShardState(shard, "missing", done=done, failed=failed)
    finished = _read_json(shard.marker(root, command, "done"))
    running = _read_json(shard.marker(root, command, "running"))
    if running is not None:
        where = f"{running.get('host')} pid {running.get('pid')}"
        if _alive(running):
            result.state = "running"
            result.detail = f"on {where} since {running.get('started_at')}"
        else:
            result.state = "stopped"
            result.detail = f"{where} is gone (started {running.get('started_at')})"
    elif finished is not None:
        result.state = "done"
        result.detail = f"on {finished.get('host')} at {finished.get('finished_at')}"
    elif part.exists():
        result.state = "stopped"
        result.detail = "began, but did not reach every item; run it again to finish"
    return result
