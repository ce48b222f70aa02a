"""The default ``--workers`` of an in-process engine: one per core against the old fixed 4.

The local engine is CPU-bound, so threads beyond the cores only contend for them:
``segment_batch`` with ``workers=None`` (the default, :func:`available_cpus`) against
``workers=4`` (the baseline, the default before it followed the engine) and
``workers=1``, on the same photos (``clothseg demo``'s samples, repeated to ``--photos``),
one after the other in this process, each into a fresh output folder. Prints seconds per
run and the ratio of each to the baseline (below 1: faster than the baseline).

Run: ``.venv/bin/python benchmarks/bench_workers.py [--photos 12] [--repeat 2]``
(needs the ``[local]`` extra).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from clothseg_tools.batch import discover_inputs
from clothseg_tools.batch.runner import available_cpus
from clothseg_tools.batch.segment import segment_batch
from clothseg_tools.demo import sample_photos


def photos(folder: Path, count: int) -> Path:
    """``count`` photos: the demo's samples, copied under new names until there are enough."""
    samples = sample_photos(folder / "samples")
    out = folder / "photos"
    out.mkdir()
    for i in range(count):
        src = samples[i % len(samples)]
        shutil.copyfile(src, out / f"{i:03d}{src.suffix}")
    return out


def run(inputs: Path, out: Path, workers: int | None) -> float:
    items = discover_inputs([inputs])
    t0 = time.perf_counter()
    summary = segment_batch(items, out, engine="local", class_type=4, workers=workers)
    seconds = time.perf_counter() - t0
    if summary.failed:
        raise SystemExit(f"{summary.failed} photos failed: {dict(summary.errors)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting (best kept)")
    args = parser.parse_args()
    cores = available_cpus()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = photos(Path(tmp), args.photos)
        run(inputs, Path(tmp) / "warm-up", 1)  # imports and model files in the OS cache
        settings = {"baseline: workers=4": 4, f"default: workers={cores}": None, "workers=1": 1}
        best: dict[str, float] = {}
        for r in range(args.repeat):
            for name, workers in settings.items():
                seconds = run(inputs, Path(tmp) / f"{r}-{workers}", workers)
                best[name] = min(best.get(name, seconds), seconds)
    base = best["baseline: workers=4"]
    print(f"{args.photos} photos, local engine, class_type 4, {cores} cores available")
    for name, seconds in best.items():
        print(f"  {name:<24} {seconds:6.2f} s   ratio to baseline {seconds / base:.2f}")


if __name__ == "__main__":
    main()
