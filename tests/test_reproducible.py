"""Result folders written by a batch are the same bytes every run: the measured timings
and the service's task go to the manifest line, not to ``result.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _scale_support import cli, folder_files, make_maps, make_photos

from clothseg_tools import SegmentationResult
from clothseg_tools.batch import read_manifests

KEY = "repro-key-2718"


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    root, rec = tmp_path / "photos", tmp_path / "rec"
    make_photos(root, rec, 5)
    return root, rec


def result_docs(out: Path) -> dict[str, dict]:
    return {
        p.parent.relative_to(out).as_posix(): json.loads(p.read_text())
        for p in out.rglob("result.json")
    }


def test_two_runs_of_a_batch_write_the_same_bytes(photos, tmp_path: Path) -> None:
    root, rec = photos
    runs = [tmp_path / "one", tmp_path / "two"]
    for out, workers in zip(runs, ("1", "2"), strict=True):
        cli("segment", root, "--out", out, "--engine", "replay", "--replay-dir", rec,
            "-q", "-w", workers, "--output-type", "3", code=1)  # fmt: skip
    assert folder_files(runs[0]) == folder_files(runs[1])
    docs = result_docs(runs[0])
    assert len(docs) == 5
    assert all("timings" not in d and "task" not in d for d in docs.values())
    # the timings are in the manifest, per item
    records = read_manifests(runs[0])
    done = [r for r in records.values() if r["status"] == "done"]
    assert len(done) == 5
    assert all({"decode", "segment", "save"} <= set(r["timings"]) for r in done)
    # the folder still reads back whole, checksums verified
    loaded = SegmentationResult.load(runs[0] / docs.popitem()[0])
    assert loaded.timings == {} and loaded.task is None and len(loaded.parts)


def test_the_service_task_is_recorded_in_the_manifest_not_the_folder(
    photos, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    from clothseg_tools.server import run_in_thread

    root, rec = photos
    runs = [tmp_path / "one", tmp_path / "two"]
    with run_in_thread(engine="replay", engine_options={"replay_dir": str(rec)},
                       api_keys=(KEY,)) as url:  # fmt: skip
        for out in runs:
            cli("segment", root, "--out", out, "--engine", "remote", "--api-key", KEY,
                "--base-url", url, "-q", "-w", "2", code=1)  # fmt: skip
    assert folder_files(runs[0]) == folder_files(runs[1])
    assert all("task" not in d for d in result_docs(runs[0]).values())
    tasks = []
    for out in runs:
        done = [r for r in read_manifests(out).values() if r["status"] == "done"]
        assert len(done) == 5
        assert all(r["task"]["state"] == 1 and r["task"]["created_at"] for r in done)
        tasks += [r["task"]["task_id"] for r in done]
        assert KEY not in (out / "manifest.jsonl").read_text()
    assert len(set(tasks)) == 10  # each run made its own tasks; the folders do not say


def test_import_writes_the_same_bytes_every_run(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    make_maps(maps, 3, bad=0)
    runs = [tmp_path / "one", tmp_path / "two"]
    for out in runs:
        cli("import", maps, "--labels", "lip", "--out", out, "-q")
    assert folder_files(runs[0]) == folder_files(runs[1])
    assert all("timings" not in d for d in result_docs(runs[0]).values())
    records = read_manifests(runs[0], "import")
    assert all(set(r["timings"]) == {"read", "save"} for r in records.values())
