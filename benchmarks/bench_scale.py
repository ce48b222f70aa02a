"""Executors compared on this machine: the local thread pool (the baseline) against Ray.

1. A post-processing command (``overlay``: reads the photo and the masks, writes a PNG)
   over 2,000 result folders.
2. ``segment`` with the local (mediapipe) engine over 200 photos.

For each: items/s of the local executor and of the Ray executor with 1 and 2 workers,
Ray's overhead per item in milliseconds (Ray with 1 worker against local with 1 worker,
same data, without the workers' start), and the scaling from 1 to 2 workers of each
executor. Ray itself is started once, before the timings, and the start of each run's
workers (building the job, loading the engine) is printed apart: a run pays both once.
All runs are in this process, one after another, on the same inputs, each redoing every
item (``overwrite``).

Run: ``python benchmarks/bench_scale.py`` (``--quick`` for 200 folders and 20 photos;
``--folders`` and ``--photos`` set the counts).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import smooth_photo
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools.batch import BatchOptions, BatchSummary, discover_inputs, discover_results
from clothseg_tools.batch.post import overlay_job
from clothseg_tools.batch.segment import segment_batch
from clothseg_tools.result import SegmentationResult


def make_results(root: Path, n: int, shape: tuple[int, int]) -> None:
    """``n`` result folders, each with its photo (overlay reads it)."""
    rng = np.random.default_rng(0)
    h, w = shape
    yy = np.mgrid[0:h, 0:w][0]
    for i in range(n):
        path = root / "photos" / f"{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = smooth_photo(rng, shape, radii=(10, 60))
        Image.fromarray(picture).save(path, format="JPEG", quality=90)
        cut = int(rng.integers(h // 3, 2 * h // 3))
        tops = np.where(yy < cut, 255, 0).astype(np.uint8)
        masks = MaskSet({"clothes": np.full(shape, 255, np.uint8), "tops": tops,
                         "bottoms": 255 - tops})  # fmt: skip
        SegmentationResult(masks, source=str(path), engine="bench").save(
            root / "results" / f"part{i // 100}" / f"r{i:04d}"
        )


def make_photos(root: Path, n: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        picture = smooth_photo(rng, shape, radii=(10, 60))
        Image.fromarray(picture).save(root / f"{i:03d}.jpg", quality=90)


def timed(run: Callable[[BatchOptions], BatchSummary], n: int, label: str) -> dict[str, float]:
    """items/s of ``run`` for local and Ray executors, 1 and 2 workers."""
    from clothseg_tools.batch.ray_executor import RayExecutor

    rates: dict[str, float] = {}
    for executor in ("local", "ray"):
        for workers in (1, 2):
            runner = RayExecutor(workers) if executor == "ray" else executor
            t0 = time.perf_counter()
            summary = run(BatchOptions(workers=workers, executor=runner, overwrite=True))
            seconds = time.perf_counter() - t0
            start = runner.start_seconds if isinstance(runner, RayExecutor) else 0.0
            assert summary.done + summary.failed == n, summary.table()
            rates[f"{executor}{workers}"] = n / (seconds - start)
            print(f"  {label} {executor:<5} workers {workers}: {n} in {seconds - start:7.2f} s"
                  f" = {n / (seconds - start):7.1f} items/s"
                  + (f" (+{start:.1f} s starting the workers)" if start else ""))  # fmt: skip
    overhead = (1 / rates["ray1"] - 1 / rates["local1"]) * 1000
    print(f"  Ray overhead per item (1 worker, workers' start not counted): {overhead:+.1f} ms")
    for executor in ("local", "ray"):
        print(f"  scaling 1 -> 2 workers, {executor}: "
              f"{rates[executor + '2'] / rates[executor + '1']:.2f}x")  # fmt: skip
    print(f"  ratio Ray / local, 2 workers: {rates['ray2'] / rates['local2']:.2f}x")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="200 folders and 20 photos")
    parser.add_argument("--skip-segment", action="store_true", help="only the overlay part")
    args = parser.parse_args()
    if args.quick:
        args.folders, args.photos = 200, 20
    import ray

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        make_results(tmp, args.folders, (256, 192))
        print(f"{args.folders} result folders of 192x256 made in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"Ray started in {time.perf_counter() - t0:.1f} s (not counted below)")
        try:
            folders = discover_results(tmp / "results")
            job = overlay_job(tmp / "results")
            print("overlay over result folders:")
            from clothseg_tools.batch import run_job

            timed(lambda b: run_job(job, folders, b), len(folders), "overlay")
            if not args.skip_segment:
                make_photos(tmp / "to-segment", args.photos, (384, 288))
                items = discover_inputs([tmp / "to-segment"])
                print("segment with the local engine:")
                timed(
                    lambda b: segment_batch(items, tmp / "seg", batch=b, engine="local"),
                    len(items),
                    "segment",
                )
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
