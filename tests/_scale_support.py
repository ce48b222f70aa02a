"""Helpers of the scaling tests: a folder of photos with replay records, and comparisons
of result folders and manifests made by different executors and shards."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from clothseg_tools import MaskSet, Parsing
from clothseg_tools._io import encode_png
from clothseg_tools.batch import manifest_path, read_manifests
from clothseg_tools.cli import main
from clothseg_tools.engines.replay import record

#: Manifest fields that say when and how fast, not what: they differ between any two runs.
_VOLATILE = {"seconds", "timings", "finished_at"}


def make_photos(root: Path, rec: Path, count: int, *, bad: int = 1) -> list[Path]:
    """``count`` photos in nested folders, recorded for the replay engine, plus ``bad``
    files that are not images (so failures take part in every comparison)."""
    paths = []
    for i in range(count):
        path = root / f"set{i % 3}" / f"p{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        path.write_bytes(encode_png(img))
        masks = MaskSet({"tops": img[..., 0] > 128, "hair": (img[..., 2] // 2).astype(np.uint8)})
        record(rec, path.read_bytes(), masks, {"tops_0": img[..., 1] > 200})
        paths.append(path)
    for j in range(bad):
        (root / f"broken{j}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return paths


def make_maps(root: Path, count: int, *, bad: int = 1) -> list[Path]:
    """``count`` LIP parsing maps in nested folders, plus ``bad`` maps with a value outside
    the label set (they fail alone, so failures take part in every comparison)."""
    paths = []
    for i in range(count):
        labels = np.random.default_rng(100 + i).integers(0, 20, (12, 16)).astype(np.uint8)
        path = root / f"shop{i % 3}" / f"m{i:03d}.png"
        Parsing(labels, "lip").save(path)
        paths.append(path)
    for j in range(bad):
        root.mkdir(parents=True, exist_ok=True)
        (root / f"bad{j}.png").write_bytes(encode_png(np.full((12, 16), 250, np.uint8)))
    return paths


class StopAfter:
    """A progress display that stops the run (as Ctrl-C would) after ``n`` items."""

    def __init__(self, n: int, stop: threading.Event) -> None:
        self.n, self.stop, self.seen = n, stop, 0

    def start(self, total: int, *, skipped: int) -> None:
        pass

    def advance(self, record: Mapping[str, Any]) -> None:
        self.seen += 1
        if self.seen >= self.n:
            self.stop.set()

    def close(self) -> None:
        pass


def cli(*args: object, code: int | None = 0) -> Any:
    """Run ``clothseg`` with ``args``; check the exit code (unless ``None``)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result


def folder_files(out: Path) -> dict[str, bytes]:
    """Every output file under ``out`` by relative path, byte for byte; manifests and
    shard markers left out (they record when and where a run went)."""
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and not path.name.startswith("manifest")
    }


def manifest_view(out: Path, command: str = "segment") -> dict[str, dict[str, Any]]:
    """The merged manifest of ``command`` without the fields that measure time.

    Post-processing records are keyed by output key: their sources are the result
    folders of ``out`` itself (another path for each compared run).
    """
    view = {}
    for source, rec in read_manifests(out, command).items():
        rec = {k: v for k, v in rec.items() if k not in _VOLATILE}
        if command != "segment":
            source = rec.pop("key")
            rec.pop("source")
        view[source] = rec
    return view


def manifest_lines(out: Path, command: str = "segment") -> list[str]:
    """The sources of every line of every manifest file of ``command`` (duplicates kept)."""
    sources = []
    stem = manifest_path(out, command).stem
    for path in sorted(out.glob(f"{stem}*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                sources.append(json.loads(line)["source"])
    return sources
