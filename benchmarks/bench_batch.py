"""Batch throughput of the ``clothseg`` command.

1. ``clothseg segment`` over 100 images against the local server (replay engine), with
   ``--workers 8`` against ``--workers 1`` (the baseline): images/s and the ratio.
   The replay engine answers in a few milliseconds, far faster than a real
   segmentation service (which spends a second or more per image), so the server adds
   a fixed latency to every API request (its ``latency=<s>`` fault, a test control) to
   model a remote service: 0.3 s by default (``--latency``); the output says how much.
   Without it the run is bound by this machine's CPU (PNG encoding and decoding on both
   ends, two cores shared by client and server), not by waiting, and threads cannot
   help much.
2. ``clothseg stats`` over 1000 result folders: folders/s, with ``--workers 4`` and
   ``--workers 1``.

Both sides of each comparison run in this process's children, on the same data, one
after the other. Run: ``.venv/bin/python benchmarks/bench_batch.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import smooth_photo

from clothseg_tools import MaskSet
from clothseg_tools.engines.replay import record
from clothseg_tools.result import SegmentationResult

KEY = "bench-key"


def cli(*args: object, env: dict[str, str] | None = None) -> float:
    """Run ``clothseg`` in a child process; return its wall time in seconds."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "clothseg_tools.cli", *map(str, args)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"clothseg {args[0]} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def blob_masks(rng: np.random.Generator, shape: tuple[int, int]) -> MaskSet:
    """Garment-like masks: soft-edged blobs, as a segmentation service returns."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (min(h, w) / 3)
    body = np.clip((1.0 - dist) * 8 * 255, 0, 255).astype(np.uint8)
    upper = np.where(yy < cy, body, 0).astype(np.uint8)
    return MaskSet({
        "clothes": body, "tops": upper, "bottoms": body - upper,
        "dress": np.zeros(shape, np.uint8), "acc": np.zeros(shape, np.uint8),
    })  # fmt: skip


def make_photos(root: Path, rec: Path, n: int, shape: tuple[int, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = root / f"{i:03d}.jpg"
        Image.fromarray(smooth_photo(rng, shape)).save(path, format="JPEG", quality=90)
        record(rec, path.read_bytes(), blob_masks(rng, shape))


def bench_segment(tmp: Path, n: int, latency: float, shape: tuple[int, int]) -> None:
    from clothseg_tools.server import run_in_thread

    photos, rec = tmp / "photos", tmp / "rec"
    make_photos(photos, rec, n, shape)
    faults = {f"latency={latency}": 1.0} if latency > 0 else {}
    with run_in_thread(
        engine="replay",
        engine_options={"replay_dir": rec},
        api_keys=(KEY,),
        faults=faults,
        test_controls=bool(faults),
        workers=8,
    ) as url:
        env = dict(os.environ, CLOTHSEG_API_KEY=KEY, CLOTHSEG_BASE_URL=url)
        rates = {}
        for workers in (1, 8):
            out = tmp / f"out-w{workers}"
            seconds = cli("segment", photos, "--out", out, "--workers", workers, "-q", env=env)
            rates[workers] = n / seconds
            print(
                f"  --workers {workers}: {n} images in {seconds:6.2f} s = "
                f"{rates[workers]:6.1f} images/s"
            )
            shutil.rmtree(out)
    print(f"  ratio workers 8 / workers 1: {rates[8] / rates[1]:.2f}x (target >= 4x)")


def make_results(root: Path, n: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        SegmentationResult(blob_masks(rng, shape), source=f"photo{i}.jpg", engine="bench").save(
            root / f"part{i // 100}" / f"r{i:04d}"
        )


def bench_stats(tmp: Path, n: int, shape: tuple[int, int]) -> None:
    results = tmp / "results"
    t0 = time.perf_counter()
    make_results(results, n, shape)
    print(
        f"  ({n} result folders of {shape[1]}x{shape[0]} masks made in "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    env = dict(os.environ)
    for workers in (1, 4):
        seconds = cli("stats", results, "--workers", workers, "-q", "--overwrite", env=env)
        print(
            f"  --workers {workers}: {n} folders in {seconds:6.2f} s = {n / seconds:7.1f} folders/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument(
        "--latency", type=float, default=0.3, help="seconds the server adds to every API request"
    )
    parser.add_argument("--folders", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmpdir:
        tmp = Path(tmpdir)
        print(
            f"clothseg segment: {args.images} JPEG photos of 512x384 against the local "
            f"server (replay engine, +{args.latency * 1000:.0f} ms per API request to "
            "model a remote service)"
        )
        bench_segment(tmp, args.images, args.latency, (384, 512))
        print(f"clothseg stats: {args.folders} result folders")
        bench_stats(tmp, args.folders, (256, 192))


if __name__ == "__main__":
    main()
