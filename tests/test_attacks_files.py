"""Attacks through the file system, each reproduced as a regression test: files written
with a mode nobody else can read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clothseg_tools._io import atomic_write_bytes, atomic_write_json, write_png
from clothseg_tools.masks import MaskSet

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
