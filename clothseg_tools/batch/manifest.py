"""The batch manifest: one JSON line per finished item, appended as each one ends.

Each line is written with a single ``write`` call, flushed and fsynced before the next
item is reported, so after a crash (even ``kill -9``) the file holds every finished item
and at most one cut-off last line, which :func:`read_manifest` skips. A later line for
the same source supersedes an earlier one, so reruns only ever append.

A line looks like::

    {"source": "/data/photos/a.jpg", "key": "a", "status": "done", "error": null,
     "seconds": 0.41, "timings": {...}, "checksums": {"a/result.json": "<sha256>", ...},
     "options": {...}, "fingerprint": "...", "command": "segment", "finished_at": "..."}

and for a failure ``"status": "failed", "error": {"type": "ImageDecodeError",
"message": "..."}``. An item segmented by the remote service also records its
``"task"`` (id, times). Timings and task live here, not in the result folder's
``result.json``, so two runs of the same batch write byte-identical folders.

A run split into shards (``--shard K/N``) writes one part per shard,
``manifest.K-of-N.jsonl`` (``manifest-<command>.K-of-N.jsonl`` for the other
commands), so shards on different machines never append to one file. Every reader of a
results folder goes through :func:`read_manifests`, which reads the plain manifest and
all its parts as one.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "manifest.jsonl"
>>> with Manifest(path) as m:
...     m.append({"source": "a.jpg", "key": "a", "status": "done"})
...     m.append({"source": "a.jpg", "key": "a", "status": "failed"})
>>> read_manifest(path)["a.jpg"]["status"]
'failed'
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..contract import scrub_secrets

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "ManifestFile",
    "manifest_files",
    "manifest_keys",
    "manifest_path",
    "read_manifest",
    "read_manifests",
]

logger = logging.getLogger("clothseg_tools")

#: File name of the segmentation manifest inside the output folder.
MANIFEST_NAME = "manifest.jsonl"


#: ``manifest[-<command>][.K-of-N].jsonl``
_FILE_NAME = re.compile(r"^manifest(?:-(?P<command>.+?))?(?:\.(?P<k>\d+)-of-(?P<n>\d+))?\.jsonl$")


def manifest_path(
    out_dir: str | os.PathLike[str],
    command: str = "segment",
    shard: tuple[int, int] | None = None,
) -> Path:
    """The manifest of ``command`` in ``out_dir`` (of shard ``(K, N)`` when given).

    ``segment`` writes ``manifest.jsonl``; post-processing commands write
    ``manifest-<command>.jsonl`` beside it, so each keeps its own resume state. Shard
    K of N writes its own part, ``manifest.K-of-N.jsonl``.

    Examples
    --------
    >>> manifest_path("out").as_posix(), manifest_path("out", "cutout").as_posix()
    ('out/manifest.jsonl', 'out/manifest-cutout.jsonl')
    >>> manifest_path("out", "segment", (2, 8)).name, manifest_path("out", "stats", (1, 3)).name
    ('manifest.2-of-8.jsonl', 'manifest-stats.1-of-3.jsonl')
    """
    stem = "manifest" if command == "segment" else f"manifest-{command}"
    part = f".{shard[0]}-of-{shard[1]}" if shard is not None else ""
    return Path(out_dir) / f"{stem}{part}.jsonl"


class ManifestFile(NamedTuple):
    """A manifest file found in a results folder.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    command : str
        The manifest's name: ``"segment"``, ``"cutout"``, ``"cutout-dress.png"`` ...
    shard : tuple of (int, int) or None
        ``(K, N)`` for the part of shard K of N, ``None`` for the plain manifest.
    """

    path: Path
    command: str
    shard: tuple[int, int] | None


def manifest_files(out_dir: str | os.PathLike[str]) -> list[ManifestFile]:
    """Every manifest file directly in ``out_dir``: segment first, then by name and shard.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("manifest-cutout.jsonl", "manifest.2-of-3.jsonl", "manifest.jsonl"):
    ...     _ = (root / name).write_text("")
    >>> [(f.command, f.shard) for f in manifest_files(root)]
    [('segment', None), ('segment', (2, 3)), ('cutout', None)]
    """
    found = []
    root = Path(out_dir)
    if not root.is_dir():
        return []
    for path in root.glob("manifest*.jsonl"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            continue
        shard = (int(match["k"]), int(match["n"])) if match["k"] else None
        found.append(ManifestFile(path, match["command"] or "segment", shard))
    found.sort(key=lambda f: (f.command != "segment", f.command, f.shard or (0, 0)))
    return found


def read_manifests(
    out_dir: str | os.PathLike[str],
    command: str = "segment",
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """The latest record per source of ``command``, over its manifest and all shard parts.

    This is how every reader of a results folder (resume, ``stats``, ``report``,
    ``--retry-failed``, ``clothseg shards``) sees a run, whether it ran in one process
    or in shards on many machines. Where two files hold the same source (a folder
    first run whole, later in shards), the record that finished last wins. ``keep``
    filters records as they are read (see :func:`read_manifest`).

    Returns
    -------
    dict of str to dict
        ``source -> record``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with Manifest(manifest_path(root, "segment", (1, 2))) as m:
    ...     m.append({"source": "a.jpg", "status": "done", "finished_at": "2026-01-01T10:00"})
    >>> with Manifest(manifest_path(root, "segment", (2, 2))) as m:
    ...     m.append({"source": "b.jpg", "status": "failed", "finished_at": "2026-01-01T10:01"})
    >>> {s: r["status"] for s, r in read_manifests(root).items()}
    {'a.jpg': 'done', 'b.jpg': 'failed'}
    """
    merged: dict[str, dict[str, Any]] = {}
    for file in manifest_files(out_dir):
        if file.command != command:
            continue
        for source, record in read_manifest(file.path, keep).items():
            earlier = merged.get(source)
            if earlier is None or str(record.get("finished_at", "")) >= str(
                earlier.get("finished_at", "")
            ):
                merged[source] = record
    return merged


def read_manifest(
    path: str | os.PathLike[str], keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, dict[str, Any]]:
    """The latest record per source; a missing file reads as empty.

    Lines that do not parse (a line cut off by a crash) are skipped with a warning.
    With ``keep``, only records it accepts are kept (a shard keeps its own items, so a
    run of millions holds 1/N of the manifest in memory).

    Returns
    -------
    dict of str to dict
        ``source -> record``, in the order sources first appeared.
    """
    records: dict[str, dict[str, Any]] = {}
    if not Path(path).is_file():
        return records
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                source = record["source"]
            except (ValueError, KeyError, TypeError):
                logger.warning("%s line %d is not a manifest record; skipped.", path, number)
                continue
            if keep is None or keep(record):
                records[str(source)] = record
    return records


class Manifest:
    """Append-only writer of a manifest file, safe to share between threads.

    Parameters
    ----------
    path
        The ``.jsonl`` file; created with its folder when missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None

    def open(self) -> Manifest:
        """Open for appending (done by :meth:`append` when needed)."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "ab")  # noqa: SIM115 - kept open across appends
            # a crash can leave a last line without its newline; never glue onto it
            if fh.tell() > 0:
                with open(self.path, "rb") as check:
                    check.seek(-1, os.SEEK_END)
                    if check.read(1) != b"\n":
                        fh.write(b"\n")
            self._fh = fh
        return self

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and make it durable before returning."""
        text = json.dumps(record, ensure_ascii=False, sort_keys=False)
        # every live API key is hidden, whichever field carries it (an error, a source)
        line = (scrub_secrets(text) + "\n").encode("utf-8")
        with self._lock:
            fh = self.open()._fh
            assert fh is not None
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> Manifest:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def manifest_keys(out_dir: str | os.PathLike[str], command: str = "segment") -> dict[str, str]:
    """``source -> output key`` of every item recorded for ``command``, over all parts.

    What discovery needs to keep keys stable across runs, without holding whole records
    (a few hundred bytes per item instead of about a kilobyte).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with Manifest(manifest_path(root, "segment", (1, 2))) as m:
    ...     m.append({"source": "/p/a.jpg", "key": "a", "status": "done"})
    >>> manifest_keys(root)
    {'/p/a.jpg': 'a'}
    """
    keys: dict[str, str] = {}

    def remember(record: dict[str, Any]) -> bool:
        if isinstance(record.get("key"), str):
            keys[str(record["source"])] = record["key"]
        return False  # nothing else is kept

    for file in manifest_files(out_dir):
        if file.command == command:
            read_manifest(file.path, remember)
    return keys
