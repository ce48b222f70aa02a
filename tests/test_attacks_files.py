"""Attacks through the file system, each reproduced as a regression test: files written
with a mode nobody else can read, and FIFOs, sockets, devices and link loops named like
photos (a FIFO hung ``clothseg segment`` for good)."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from clothseg_tools._io import atomic_write_bytes, atomic_write_json, encode_png, write_png
from clothseg_tools.batch import read_manifest, scan_inputs
from clothseg_tools.cli import main
from clothseg_tools.decode import decode_mask, read_image
from clothseg_tools.engines.replay import record
from clothseg_tools.errors import NotAFileError
from clothseg_tools.inputs import load_input
from clothseg_tools.masks import MaskSet
from clothseg_tools.zipmasks import read_mask_zip

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(
    tmp_path: Path, umask: None, mask: int, expected: int
) -> None:
    os.umask(mask)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    write_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    for name in ("a.bin", "a.json", "a.png"):
        assert _mode(tmp_path / name) == expected, name


def test_a_saved_result_is_readable_by_others(tmp_path: Path, umask: None) -> None:
    ms = MaskSet({"tops": np.full((2, 2), 255, np.uint8)})
    ms.save(tmp_path / "out")
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files
    assert all(_mode(p) == 0o644 for p in files)


def test_a_rewrite_takes_the_mode_of_a_new_file(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary left


def test_a_planted_temporary_name_is_not_reused(
    tmp_path: Path, umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clothseg_tools._io as io_module

    names = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(io_module.secrets, "token_hex", lambda n: next(names))
    planted = tmp_path / ".a.bin.aaaa.tmp"
    planted.write_bytes(b"someone else's")
    atomic_write_bytes(tmp_path / "a.bin", b"mine")
    assert planted.read_bytes() == b"someone else's"
    assert (tmp_path / "a.bin").read_bytes() == b"mine"


# -- FIFOs, sockets, devices and link loops named like photos ------------------------------------


def _photo_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))


def _finishes(fn: Callable[[], object], seconds: float = 60.0) -> object:
    """Run ``fn`` on a thread and return its result; a read that blocks fails the test
    instead of hanging it (a FIFO without a writer blocks its reader forever)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the call blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


@pytest.fixture
def odd_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder with a photo and a FIFO, a socket, a device link and a link loop, all
    named like photos."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "real.png").write_bytes(_photo_png(0))
    os.mkfifo(folder / "pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.jpg"))
    (folder / "zero.jpg").symlink_to("/dev/zero")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    try:
        yield folder
    finally:
        server.close()


REASONS = {
    "pipe.jpg": "a FIFO (named pipe), not a regular file",
    "sock.jpg": "a socket, not a regular file",
    "zero.jpg": "a character device, not a regular file",
    "loop.jpg": "a symbolic link that loops, not a regular file",
}


def test_discovery_passes_over_non_regular_files_saying_what_they_are(odd_folder: Path) -> None:
    found = _finishes(lambda: scan_inputs([odd_folder]))
    assert [Path(i.source).name for i in found.items] == ["real.png"]  # type: ignore[attr-defined]
    reasons = {Path(s.source).name: s.reason for s in found.skipped}  # type: ignore[attr-defined]
    assert reasons == REASONS


def test_a_glob_passes_them_over_too(odd_folder: Path) -> None:
    found = _finishes(lambda: scan_inputs([str(odd_folder / "*.*")]))
    assert [Path(i.source).name for i in found.items] == ["real.png"]  # type: ignore[attr-defined]
    assert {Path(s.source).name for s in found.skipped} == set(REASONS)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("pipe.jpg", "is a FIFO (named pipe), not a regular file"),
        ("sock.jpg", "is a socket, not a regular file"),
        ("zero.jpg", "is a character device, not a regular file"),
        ("loop.jpg", "is a symbolic link that loops"),
    ],
)
def test_reading_one_fails_at_once_with_what_it_is(odd_folder: Path, name: str, what: str) -> None:
    path = odd_folder / name
    for read in (
        lambda: load_input(path),
        lambda: read_image(path),
        lambda: decode_mask(path),
        lambda: read_mask_zip(path),
    ):
        with pytest.raises(NotAFileError, match=re.escape(what)):
            _finishes(read)


def test_segment_over_the_folder_records_them_and_finishes(
    odd_folder: Path, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    record(records, (odd_folder / "real.png").read_bytes(), _masks())
    out = tmp_path / "out"
    result = _finishes(lambda: _segment(odd_folder, out, records))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    manifest = read_manifest(out / "manifest.jsonl")
    assert manifest[str(odd_folder / "real.png")]["status"] == "done"
    for name, reason in REASONS.items():
        line = manifest[str(odd_folder / name)]
        assert (line["status"], line["reason"]) == ("skipped", reason)


def test_naming_a_fifo_directly_says_what_it_is(odd_folder: Path, tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    out = tmp_path / "out"
    result = _finishes(lambda: _segment(odd_folder / "pipe.jpg", out, records))
    assert "does not exist" not in result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    [line] = read_manifest(out / "manifest.jsonl").values()
    assert line["status"] == "failed"
    assert "NotAFileError" in json.dumps(line)
    assert "is a FIFO (named pipe), not a regular file" in json.dumps(line)


def _masks() -> MaskSet:
    return MaskSet({"tops": np.full((24, 32), 255, np.uint8)})


def _segment(source: Path, out: Path, records: Path) -> Any:
    return CliRunner().invoke(
        main,
        [
            "segment",
            str(source),
            "--out",
            str(out),
            "--engine",
            "replay",
            "--replay-dir",
            str(records),
        ],
    )
