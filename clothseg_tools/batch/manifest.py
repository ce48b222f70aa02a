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
"message": "..."}``.

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
import threading
from pathlib import Path
from typing import IO, Any

from ..contract import scrub_secrets

__all__ = ["MANIFEST_NAME", "Manifest", "manifest_path", "read_manifest"]

logger = logging.getLogger("clothseg_tools")

#: File name of the segmentation manifest inside the output folder.
MANIFEST_NAME = "manifest.jsonl"


def manifest_path(out_dir: str | os.PathLike[str], command: str = "segment") -> Path:
    """The manifest of ``command`` in ``out_dir``.

    ``segment`` writes ``manifest.jsonl``; post-processing commands write
    ``manifest-<command>.jsonl`` beside it, so each keeps its own resume state.

    Examples
    --------
    >>> manifest_path("out").as_posix(), manifest_path("out", "cutout").as_posix()
    ('out/manifest.jsonl', 'out/manifest-cutout.jsonl')
    """
    name = MANIFEST_NAME if command == "segment" else f"manifest-{command}.jsonl"
    return Path(out_dir) / name


def read_manifest(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The latest record per source; a missing file reads as empty.

    Lines that do not parse (a line cut off by a crash) are skipped with a warning.

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
