"""The Ray executor on a local Ray started by the tests: the same results as a local run
and as shards, a killed worker loses nothing and duplicates nothing, an interrupted run
resumes, and one rate limit holds across all workers against the project's own server.

Starting Ray costs seconds, so these tests are few and share one Ray per module (the
first test starts and stops its own, to check that a run without an address does).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

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

from clothseg_tools.batch import (
    BatchItem,
    ItemOutput,
    Job,
    discover_inputs,
    file_checksums,
    read_manifests,
    run_job,
)
from clothseg_tools.batch.ray_executor import RayExecutor
from clothseg_tools.batch.segment import segment_batch

ray = pytest.importorskip("ray", reason="the Ray executor needs the [ray] extra")

HERE = Path(__file__).resolve().parent
KEY = "ray-test-key-3141"


@pytest.fixture(scope="module")
def worker_path() -> Iterator[None]:
    """Ray workers inherit the environment: they import this package and these helpers."""
    paths = [str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH", "")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
        yield


@pytest.fixture(scope="module")
def local_ray(worker_path: None) -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray")
    make_photos(root / "photos", root / "rec", 30)
    return root / "photos", root / "rec"


def segment(photos: tuple[Path, Path], out: Path, *extra: object) -> None:
    cli("segment", photos[0], "--out", out, "--engine", "replay", "--replay-dir", photos[1],
        "-q", *extra, code=1)  # fmt: skip


def test_without_an_address_the_run_starts_and_stops_its_own_ray(
    worker_path: None, photos: tuple[Path, Path], tmp_path: Path
) -> None:
    assert not ray.is_initialized()
    segment(photos, tmp_path / "out", "--executor", "ray", "-w", "2")
    assert not ray.is_initialized()
    assert len(read_manifests(tmp_path / "out")) == 31


def test_local_ray_and_three_shards_give_the_same_folder(
    local_ray: None, photos: tuple[Path, Path], tmp_path: Path
) -> None:
    local, on_ray, shards = tmp_path / "local", tmp_path / "ray", tmp_path / "shards"
    segment(photos, local, "-w", "2")
    segment(photos, on_ray, "--executor", "ray", "-w", "2")
    for k in (1, 2, 3):
        cli("segment", photos[0], "--out", shards, "--engine", "replay", "--replay-dir",
            photos[1], "-q", "--shard", f"{k}/3", code=None)  # fmt: skip
    assert folder_files(on_ray) == folder_files(local) == folder_files(shards)
    assert manifest_view(on_ray) == manifest_view(local) == manifest_view(shards)
    assert Counter(manifest_lines(on_ray)) == Counter(manifest_lines(local))
    # a post-processing command on Ray, and in shards on Ray
    cli("overlay", local, "-q")
    cli("overlay", on_ray, "-q", "--executor", "ray", "-w", "2")
    for k in (1, 2):
        cli("overlay", shards, "-q", "--executor", "ray", "--shard", f"{k}/2", "-w", "4")
    assert folder_files(on_ray) == folder_files(local) == folder_files(shards)
    assert manifest_view(on_ray, "overlay") == manifest_view(local, "overlay")
    assert manifest_view(shards, "overlay") == manifest_view(local, "overlay")


def test_import_and_coco_on_ray_equal_a_local_run_and_three_shards(
    local_ray: None, photos: tuple[Path, Path], tmp_path: Path
) -> None:
    maps = tmp_path / "maps"
    make_maps(maps, 10)
    runs = {name: tmp_path / name for name in ("local", "ray", "shards")}

    def import_maps(out: Path, *extra: object, code: int | None = 1) -> None:
        cli("import", maps, "--labels", "lip", "--out", out, "-q", *extra, code=code)

    import_maps(runs["local"], "-w", "2")
    import_maps(runs["ray"], "--executor", "ray", "-w", "2")
    for k in (1, 2, 3):
        import_maps(runs["shards"], "--shard", f"{k}/3", code=None)
    assert folder_files(runs["ray"]) == folder_files(runs["local"]) == folder_files(runs["shards"])
    views = [manifest_view(out, "import") for out in runs.values()]
    assert views[0] == views[1] == views[2] and len(views[0]) == 11
    # one COCO file from a folder of results: in one process, on Ray, in shards on Ray
    results = tmp_path / "results"
    segment(photos, results, "--output-type", "3")
    cli("coco", results, "-o", runs["local"] / "coco.json", "-q")
    cli("coco", results, "-o", runs["ray"] / "coco.json", "-q", "--executor", "ray", "-w", "2")
    for k in (1, 2, 3):
        cli("coco", results, "-o", runs["shards"] / "coco.json", "-q", "--executor", "ray",
            "--shard", f"{k}/3", "-w", "2")  # fmt: skip
    files = [(out / "coco.json").read_bytes() for out in runs.values()]
    assert files[0] == files[1] == files[2]
    assert len(json.loads(files[0])["images"]) == 30
    assert manifest_view(runs["ray"], "coco") == manifest_view(runs["shards"], "coco")
    assert len(manifest_lines(runs["shards"], "coco")) == 30


class KillOnce:
    """Writes ``<key>.txt``; the first time it meets ``victim``, its worker is killed
    (SIGKILL, as the out-of-memory killer does), unless ``always``."""

    def __init__(self, out: Path, victim: str, *, always: bool = False) -> None:
        self.out, self.victim, self.always = out, victim, always

    def __call__(self, item: BatchItem) -> ItemOutput:
        if item.source == self.victim:
            flag = self.out / "killed-once"
            if self.always or not flag.exists():
                flag.write_text("x")
                os.kill(os.getpid(), signal.SIGKILL)
        path = self.out / f"{item.key}.txt"
        path.write_text(item.source)
        # how many times each item ran: a worker's death must not hide a second write
        with open(self.out / "writes.log", "a") as fh:
            fh.write(item.key + "\n")
        return ItemOutput(checksums=file_checksums(self.out, [f"{item.key}.txt"]))


def items_of(n: int) -> list[BatchItem]:
    return [BatchItem(f"src{i:03d}", f"k{i:03d}") for i in range(n)]


def lines_per_source(out: Path, command: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in (out / f"manifest-{command}.jsonl").read_text().splitlines():
        counts[json.loads(line)["source"]] += 1
    return counts


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    local_ray: None, tmp_path: Path
) -> None:
    items = items_of(40)
    executor = RayExecutor(2, chunk=8)
    summary = run_job(Job("kill", KillOnce(tmp_path, "src013"), tmp_path), items,
                      executor=executor, workers=2)  # fmt: skip
    assert executor.replaced == 1
    assert summary.done == 40 and summary.failed == 0
    assert lines_per_source(tmp_path, "kill") == Counter(i.source for i in items)
    # items of the dead worker's task whose record had not reached the driver ran
    # again elsewhere (same bytes, written atomically); nothing outside that task did
    writes = Counter((tmp_path / "writes.log").read_text().split())
    assert set(writes) == {i.key for i in items}
    again = {k for k, n in writes.items() if n > 1}
    assert again <= {f"k{i:03d}" for i in range(8, 16)}
    assert all((tmp_path / f"{i.key}.txt").read_text() == i.source for i in items)


def test_an_item_that_kills_every_worker_is_recorded_as_failed(
    local_ray: None, tmp_path: Path
) -> None:
    items = items_of(6)
    executor = RayExecutor(2, chunk=3)
    job = Job("poison", KillOnce(tmp_path, "src004", always=True), tmp_path)
    summary = run_job(job, items, executor=executor, workers=2)
    assert (summary.done, summary.failed) == (5, 1)
    assert dict(summary.errors) == {"WorkerLostError": 1}
    assert lines_per_source(tmp_path, "poison") == Counter(i.source for i in items)


def test_an_interrupted_ray_run_resumes_like_a_local_one(
    local_ray: None, photos: tuple[Path, Path], tmp_path: Path
) -> None:
    items = discover_inputs([photos[0]])
    stop = threading.Event()
    first = segment_batch(items, tmp_path, engine="replay", replay_dir=photos[1], workers=2,
                          executor=RayExecutor(2, chunk=4), stop=stop,
                          progress=StopAfter(3, stop))  # fmt: skip
    assert first.interrupted and first.not_started > 0
    recorded = len(read_manifests(tmp_path))
    assert recorded == first.done + first.failed < 31
    rest = segment_batch(items, tmp_path, engine="replay", replay_dir=photos[1], workers=2)
    assert rest.skipped + rest.failed_before == recorded
    assert len(manifest_lines(tmp_path)) == 31  # every item recorded once


def test_one_rate_limit_holds_across_all_ray_workers(
    local_ray: None, photos: tuple[Path, Path], tmp_path: Path
) -> None:
    import requests

    from clothseg_tools.server import run_in_thread

    items = [i for i in discover_inputs([photos[0]]) if i.source.endswith(".png")][:10]
    rate = 10.0
    with run_in_thread(
        engine="replay",
        engine_options={"replay_dir": str(photos[1])},
        api_keys=(KEY,),
        test_controls=True,
        workers=2,
    ) as url:
        summary = segment_batch(items, tmp_path, engine="remote", api_key=KEY, base_url=url,
                                workers=2, rate_limit=rate, executor="ray")  # fmt: skip
        tasks = requests.get(url + "/_clothseg/tasks", timeout=10).json()["data"]["tasks"]
    assert summary.done == 10
    stamps = sorted(float(t["created_at"]) for t in tasks)
    assert len(stamps) == 10
    # 10 starts at 10/s from two workers together: 0.9 s at least (one bucket per
    # worker would have let them through in about half that)
    assert stamps[-1] - stamps[0] >= 9 / rate * 0.9
    assert KEY not in (tmp_path / "manifest.jsonl").read_text()


# Ray Data warns about its own deprecated settings when it starts
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")
def test_segment_dataset_adds_rle_coverage_and_folder_to_each_row(
    local_ray: None, photos: tuple[Path, Path], tmp_path: Path
) -> None:
    import numpy as np

    from clothseg_tools import SegmentationResult, decode_rle, segment_dataset

    files = sorted(photos[0].rglob("*.*"))[:5]  # four photos and the broken file
    by_path = ray.data.from_items([{"path": str(p), "id": i} for i, p in enumerate(files)])
    out = segment_dataset(by_path, engine="replay", replay_dir=photos[1], out_dir=tmp_path,
                          class_type=4, concurrency=1)  # fmt: skip
    rows = {r["path"]: r for r in out.take_all()}
    assert set(rows) == {str(p) for p in files}
    broken = rows[str(photos[0] / "broken0.jpg")]
    assert broken["error"].startswith("ImageDecodeError") and broken["folder"] is None
    good = [r for r in rows.values() if r["error"] is None]
    assert len(good) == 4
    for row in good:
        saved = SegmentationResult.load(row["folder"])
        assert saved.source == row["path"] == row["source"]
        assert list(row["classes"]) == list(saved.masks.classes)
        for name, rle, fraction in zip(row["classes"], row["rle"], row["coverage"], strict=True):
            mask = saved.masks[name] >= 128
            assert np.array_equal(decode_rle(rle).astype(bool), mask)
            assert fraction == pytest.approx(mask.mean())
    # encoded bytes in, without a path: the same masks
    pair = files[1:3]
    by_bytes = ray.data.from_items([{"bytes": p.read_bytes(), "n": i} for i, p in enumerate(pair)])
    again = segment_dataset(by_bytes, engine="replay", replay_dir=photos[1], class_type=4,
                            concurrency=1).take_all()  # fmt: skip
    for row in again:
        expected = rows[str(pair[row["n"]])]
        assert row["error"] is None and row["folder"] is None
        assert row["rle"] == expected["rle"] and row["coverage"] == expected["coverage"]
