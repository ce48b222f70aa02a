"""Decoding 12 masks of 2048 x 2048 sent as base64 PNG, as the service's class_masks are.

Compares ``decode_masks`` against
  (a) a plain loop: ``np.asarray(Image.open(BytesIO(b64decode(v))))`` per mask, and
  (b) Pillow's decode alone of the same PNG bytes (``Image.open(...).load()``),
both in this process on the same data. Targets: single-threaded overhead over (b) at
most 10 %; with workers=2 at least 1.6x faster than (a).

Run: .venv/bin/python benchmarks/bench_decode.py [--repeat N]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from clothseg_tools.decode import decode_masks

SIDE = 2048
NAMES = ("hair", "face", "head", "clothes", "tops", "bottoms", "dress", "bag", "shoes", "acc",
         "body", "others")  # fmt: skip


def realistic_mask(seed: int, side: int = SIDE) -> np.ndarray:
    """A few elliptical blobs with soft (ramped) edges, like a garment mask."""
    rng = np.random.default_rng(seed)
    yy = np.arange(side, dtype=np.float32)[:, None]
    xx = np.arange(side, dtype=np.float32)[None, :]
    acc = np.zeros((side, side), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(0.2, 0.8, 2) * side
        ry, rx = rng.uniform(0.04, 0.3, 2) * side
        d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        # a ramp about 8 px wide around the blob's rim: the soft edge
        edge = np.clip((1.0 - d) * min(ry, rx) / 8.0 + 0.5, 0.0, 1.0)
        np.maximum(acc, edge, out=acc)
    return np.rint(acc * 255).astype(np.uint8)


def png_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")  # zlib level 6, as most encoders
    return buf.getvalue()


def timed_round_robin(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Time each function ``repeat`` times, taking turns, so that load from other
    processes on a shared machine falls on all of them alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(repeat):
        for label, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    masks = [realistic_mask(i) for i in range(len(NAMES))]
    pngs = [png_bytes(m) for m in masks]
    values = {n: base64.b64encode(p).decode("ascii") for n, p in zip(NAMES, pngs, strict=True)}

    def plain_loop() -> list[np.ndarray]:
        return [np.asarray(Image.open(io.BytesIO(base64.b64decode(v)))) for v in values.values()]

    def pillow_decode_only() -> None:
        for p in pngs:
            Image.open(io.BytesIO(p)).load()

    # same result as the plain loop, or the comparison means nothing
    ms = decode_masks(values, workers=2)
    for name, ref in zip(NAMES, plain_loop(), strict=True):
        assert np.array_equal(ms[name], ref), name

    runs = timed_round_robin(
        {
            "(b) Pillow decode only": pillow_decode_only,
            "(a) plain loop b64+open+asarray": plain_loop,
            "decode_masks workers=1": lambda: decode_masks(values, workers=1),
            "decode_masks workers=2": lambda: decode_masks(values, workers=2),
        },
        args.repeat,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    total_mb = sum(map(len, values.values())) / 1e6
    print(
        f"{len(NAMES)} masks {SIDE}x{SIDE}, base64 PNG {total_mb:.2f} MB total; "
        f"{os.cpu_count()} CPUs, load average {load:.2f}; best and median of "
        f"{args.repeat} interleaved runs"
    )
    for label, times in runs.items():
        print(f"  {label:34s} best {min(times) * 1e3:7.1f} ms   median "
              f"{statistics.median(times) * 1e3:7.1f} ms")  # fmt: skip
    best = {k: min(v) for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    for kind, t in (("best", best), ("median", med)):
        overhead = t["decode_masks workers=1"] / t["(b) Pillow decode only"] - 1
        speedup = t["(a) plain loop b64+open+asarray"] / t["decode_masks workers=2"]
        print(
            f"{kind:6s}: single-threaded overhead over (b) {overhead * 100:+.1f} % "
            f"(target <= 10 %); workers=2 speedup over (a) {speedup:.2f}x (target >= 1.6x)"
        )


if __name__ == "__main__":
    main()
