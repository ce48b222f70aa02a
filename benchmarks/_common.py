"""What several benchmarks share: the best-of-n timer and a photo-like test picture.

The scripts run as ``python benchmarks/bench_x.py``, which puts this folder first on
``sys.path``, so they import it as ``_common``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def smooth_photo(
    rng: np.random.Generator, shape: tuple[int, int], radii: tuple[int, int] = (20, 90)
) -> np.ndarray:
    """A photo-like picture: smooth gradients and four flat discs of radius in
    ``radii``, not noise (which no codec or mask compresses like a photo)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = (127 + 60 * np.sin(a * xx / 40 + b * yy / 55 + c)).astype(np.uint8)
    for _ in range(4):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(*radii)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    return img
