"""Shards: a stable 1/N of a batch per run, manifest parts read as one, done markers,
``clothseg shards``; three shards give the same results as one run."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _scale_support import (
    StopAfter,
    cli,
    folder_files,
    make_maps,
    make_photos,
    manifest_lines,
    manifest_view,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from clothseg_tools.batch import (
    BatchItem,
    Shard,
    discover_results,
    read_manifest,
    read_manifests,
    shard_states,
)
from clothseg_tools.batch.shards import shard_of
from clothseg_tools.errors import ConfigurationError
from clothseg_tools.report import build_report


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    root, rec = tmp_path / "photos", tmp_path / "rec"
    make_photos(root, rec, 14)
    return root, rec


def segment(photos: tuple[Path, Path], out: Path, *extra: object, code: int | None = 1) -> None:
    root, rec = photos
    cli("segment", root, "--out", out, "--engine", "replay", "--replay-dir", rec, "-q", *extra,
        code=code)  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=40),
       count=st.integers(1, 9))  # fmt: skip
def test_shards_split_every_batch_exactly_once(keys: list[str], count: int) -> None:
    items = [BatchItem(f"/p/{i}", key) for i, key in enumerate(keys)]
    parts = [Shard(k, count).select(items) for k in range(1, count + 1)]
    assert sorted(i.source for p in parts for i in p) == sorted(i.source for i in items)


def test_adding_files_never_moves_an_item_to_another_shard() -> None:
    before = {f"shop/{i}": shard_of(f"shop/{i}", 5) for i in range(200)}
    # the listing grows and reorders; each key keeps its shard (hash of the key, not position)
    grown = [f"new/{i}" for i in range(50)] + list(reversed(before))
    assert all(shard_of(k, 5) == before[k] for k in grown if k in before)
    assert set(Counter(before.values())) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("text", ["3", "0/3", "4/3", "a/b", "1/0", "-1/2", ""])
def test_bad_shard_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"K/N|1 <= K <= N"):
        Shard.parse(text)


def test_bad_shard_on_the_command_line_is_a_usage_error(photos, tmp_path: Path) -> None:
    result = cli("segment", photos[0], "--out", tmp_path / "o", "--shard", "4/3", code=2)
    assert "1 <= K <= N" in result.output


def test_three_shards_one_after_another_equal_one_run(photos, tmp_path: Path) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    segment(photos, whole)
    for k in (1, 2, 3):
        segment(photos, split, "--shard", f"{k}/3", code=None)
    assert folder_files(split) == folder_files(whole)
    assert manifest_view(split) == manifest_view(whole)
    assert sorted(p.name for p in split.glob("manifest*")) == [
        "manifest.1-of-3.done", "manifest.1-of-3.jsonl", "manifest.2-of-3.done",
        "manifest.2-of-3.jsonl", "manifest.3-of-3.done", "manifest.3-of-3.jsonl",
    ]  # fmt: skip
    # every item in exactly one part
    assert Counter(manifest_lines(split)) == Counter(manifest_lines(whole))
    # post-processing in shards too, read back as one by the dataset summary
    for k in (1, 2):
        cli("merge", split, "--shard", f"{k}/2", "-q")
    cli("merge", whole, "-q")
    assert folder_files(split) == folder_files(whole)
    assert manifest_view(split, "merge") == manifest_view(whole, "merge")


def test_resume_reads_every_part(photos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    segment(photos, out, "--shard", "1/2", code=None)
    part = read_manifests(out)
    done_in_part = sum(r["status"] == "done" for r in part.values())
    assert 0 < len(part) < 15
    # an unsharded run trusts what the shard did and does only the rest
    result = cli("segment", photos[0], "--out", out, "--engine", "replay", "--replay-dir",
                 photos[1], code=1)  # fmt: skip
    assert f"{'skipped (complete)':<26}{done_in_part:>3}" in result.output
    assert f"{'done':<26}{14 - done_in_part:>3}" in result.output
    records = read_manifests(out)
    assert len(records) == 15
    assert len(manifest_lines(out)) == 15  # nothing done twice
    # --retry-failed finds the failure wherever it was recorded
    again = cli("segment", photos[0], "--out", out, "--engine", "replay", "--replay-dir",
                photos[1], "--retry-failed", "--shard", "1/1", code=1)  # fmt: skip
    assert "failed                      1" in again.output
    assert "done                        0" in again.output


def test_states_done_stopped_missing_and_the_shards_command(photos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    segment(photos, out, "--shard", "1/3", code=None)
    # shard 2 began and was killed: its part holds a line, its running marker names a
    # process of this host that is gone
    part = out / "manifest.2-of-3.jsonl"
    part.write_text('{"source": "/x.png", "key": "x", "status": "done"}\n')
    gone = {"host": socket.gethostname(), "pid": 999999999}
    (out / "manifest.2-of-3.running").write_text(json.dumps(gone))
    states = {s.shard.index: s for s in shard_states(out)}
    assert [states[k].state for k in (1, 2, 3)] == ["done", "stopped", "missing"]
    assert states[2].done == 1
    result = cli("shards", out, code=1)
    lines = result.output.splitlines()
    assert any("1-of-3" in line and "done" in line for line in lines)
    assert any("2-of-3" in line and "stopped" in line for line in lines)
    assert any("3-of-3" in line and "missing" in line for line in lines)
    assert "1 of 3 shards done" in result.output
    # finishing the others makes the whole run done
    (out / "manifest.2-of-3.running").unlink()
    for k in (2, 3):
        segment(photos, out, "--shard", f"{k}/3", code=None)
    assert "3 of 3 shards done" in cli("shards", out, code=0).output
    assert "no sharded run" in cli("shards", tmp_path, code=1).output


def test_running_marker_while_a_shard_works(photos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    Shard(2, 2).mark_running(out, "segment")
    assert [s.state for s in shard_states(out)] == ["missing", "running"]


def test_stats_and_report_read_all_parts(photos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for k in (1, 2, 3):
        segment(photos, out, "--shard", f"{k}/3", code=None)
    first = cli("stats", out, "--shard", "1/2", "-q", code=None)
    assert first.exit_code in (0, 1)
    assert not (out / "stats.json").exists()  # written by the last shard to finish
    cli("stats", out, "--shard", "2/2", "-q", code=None)
    summary = json.loads((out / "stats.json").read_text())
    assert summary["images"] == 14
    page = build_report(out, out=tmp_path / "report.html", workers=1)
    text = page.read_text(encoding="utf-8")
    assert "broken0.jpg" in text  # the failure recorded in one shard's part


# -- import and coco in shards ---------------------------------------------------------------


def import_maps(maps: Path, out: Path, *extra: object, code: int | None = 1) -> Any:
    return cli("import", maps, "--labels", "lip", "--out", out, "-q", *extra, code=code)


def test_import_in_three_shards_equals_one_run(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    make_maps(maps, 12)
    whole, split = tmp_path / "whole", tmp_path / "split"
    import_maps(maps, whole)
    for k in (1, 2, 3):
        import_maps(maps, split, "--shard", f"{k}/3", code=None)
    assert folder_files(split) == folder_files(whole)
    assert len([p for p in folder_files(whole) if p.endswith("result.json")]) == 12
    assert manifest_view(split, "import") == manifest_view(whole, "import")
    assert Counter(manifest_lines(split, "import")) == Counter(manifest_lines(whole, "import"))
    assert sorted(p.name for p in split.glob("manifest*")) == [
        f"manifest-import.{k}-of-3.{ext}" for k in (1, 2, 3) for ext in ("done", "jsonl")
    ]
    listing = cli("shards", split, code=0).output
    assert "import     3 of 3 shards done" in listing


def test_an_interrupted_import_shard_resumes_without_redoing_anything(tmp_path: Path) -> None:
    from clothseg_tools.batch.importing import import_batch

    maps = tmp_path / "maps"
    make_maps(maps, 24, bad=0)
    out = tmp_path / "out"
    share = Shard(2, 3)
    mine = [p for p in maps.rglob("*.png") if share.holds(BatchItem("", key_of(maps, p)))]
    assert len(mine) >= 4
    stop = threading.Event()
    first = import_batch(maps, out, labels="lip", shard="2/3", stop=stop,
                         progress=StopAfter(2, stop))  # fmt: skip
    assert first.interrupted and 2 <= first.done < len(mine)
    assert [s.state for s in shard_states(out, "import")] == ["missing", "stopped", "missing"]
    import_maps(maps, out, "--shard", "2/3", code=0)
    records = read_manifests(out, "import")
    assert len(records) == len(mine)
    assert len(manifest_lines(out, "import")) == len(mine)  # nothing done twice
    done = read_manifest(out / "manifest-import.2-of-3.jsonl")
    assert all(r["status"] == "done" for r in done.values())
    states = {s.shard.index: s.state for s in shard_states(out, "import")}
    assert states == {1: "missing", 2: "done", 3: "missing"}


def key_of(root: Path, path: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


@pytest.fixture
def results(photos, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    segment(photos, out, "--output-type", "3")
    return out


def test_coco_in_three_shards_is_the_file_of_one_run(results: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.json"
    cli("coco", results, "-o", whole, "-q")
    split = tmp_path / "split" / "coco.json"
    for k in (1, 2):
        shard = cli("coco", results, "-o", split, "--shard", f"{k}/3")
        assert "coco.json is written by the last shard to finish" in shard.output
        assert not split.exists()
    last = cli("coco", results, "-o", split, "--shard", "3/3")
    assert f"COCO: {split} (14 images" in last.output
    assert split.read_bytes() == whole.read_bytes()
    assert json.loads(whole.read_bytes())["annotations"]  # not an empty comparison
    listing = cli("shards", split.parent, code=0).output
    assert "coco       3 of 3 shards done" in listing
    # a shard run again redoes nothing, and writes the same file again
    again = cli("coco", results, "-o", split, "--shard", "1/3")
    assert f"{'done':<26}{0:>3}" in again.output and "skipped (complete)" in again.output
    assert split.read_bytes() == whole.read_bytes()
    # semantic polygons, into the results folder itself (the default file name)
    semantic = ("--mode", "semantic", "--encoding", "polygon", "--no-parts")
    cli("coco", results, "-o", whole, "-q", *semantic)
    for k in (1, 2):
        cli("coco", results, "--shard", f"{k}/2", "-q", *semantic)
    assert (results / "coco.json").read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in results.glob("manifest-coco*")) == [
        f"manifest-coco.{k}-of-2.{ext}" for k in (1, 2) for ext in ("done", "jsonl")
    ]


def test_an_interrupted_coco_shard_resumes(results: Path, tmp_path: Path) -> None:
    from clothseg_tools.batch.coco import coco_batch
    from clothseg_tools.export import export_coco

    path = tmp_path / "c" / "coco.json"
    items = discover_results(results)
    stop = threading.Event()
    first = coco_batch(items, path, shard="1/2", stop=stop, progress=StopAfter(2, stop))
    assert first.summary.interrupted and first.written is None
    assert [s.state for s in shard_states(path.parent, "coco")] == ["stopped", "missing"]
    rest = cli("coco", results, "-o", path, "--shard", "1/2")
    assert f"{'skipped (complete)':<26}{first.summary.done:>3}" in rest.output
    cli("coco", results, "-o", path, "--shard", "2/2")
    assert path.read_bytes() == export_coco(results, tmp_path / "whole.json").read_bytes()
    assert Counter(manifest_lines(path.parent, "coco")) == Counter(i.source for i in items)


def test_a_failed_result_holds_the_sharded_coco_file_back(results: Path, tmp_path: Path) -> None:
    meta = sorted(results.rglob("result.json"))[3]
    good = meta.read_bytes()
    meta.write_text("{not json")
    path = tmp_path / "c" / "coco.json"
    outputs = [cli("coco", results, "-o", path, "--shard", f"{k}/2", code=None) for k in (1, 2)]
    assert outputs[-1].exit_code == 1
    assert "coco.json is not written: of 14 results, 1 failed" in outputs[-1].output
    assert not path.exists()
    # repaired: the shards run again, redo that one result and write the file
    meta.write_bytes(good)
    for k in (1, 2):
        cli("coco", results, "-o", path, "--shard", f"{k}/2", code=None)
    cli("coco", results, "-o", tmp_path / "whole.json", "-q")
    assert path.read_bytes() == (tmp_path / "whole.json").read_bytes()
