"""Speed of the local engine: seconds per image at 512, 1024 and 4096 pixels.

The photo is scikit-image's astronaut (512 x 512), resized to each long side (the
4096 one is upscaled: the engine's cost depends on the pixel count, not the detail).
For each size and effort setting it prints the median of several runs, split into
model time (the mediapipe models, on the working-size copy) and post-processing time
(parsing at working size, guided upsampling to full size, garment parts), against
two baselines measured in this process on the same data:

- the model time itself (``post/model``; target: at most 1 at 1024 pixels);
- plain bilinear upsampling of the same class confidences (``guided/bilinear``), the
  cheapest way to bring them to full size, to show what the edge refinement costs.

Targets on a 2-core machine: under 0.5 s per image at 1024, under 3 s at 4096, for the
default options. Run: ``.venv/bin/python benchmarks/bench_local_engine.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import skimage.data

from clothseg_tools.classes import CLASSES
from clothseg_tools.engines.local import CLASS_LEAVES, LocalEngine
from clothseg_tools.engines.local.engine import _downscale, render
from clothseg_tools.engines.local.models import observe
from clothseg_tools.engines.local.parsing import LEAVES, parse

TARGETS = {1024: 0.5, 4096: 3.0}


def photo(long_side: int) -> np.ndarray:
    img = skimage.data.astronaut()
    return cv2.resize(img, (long_side, long_side), interpolation=cv2.INTER_CUBIC)


def median_run(engine: LocalEngine, img: np.ndarray, repeats: int, **options: int):
    """Median total, model and post seconds over ``repeats`` runs (after one warm-up)."""
    engine.segment(img, classes=CLASSES, **options)
    total, model, post = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        engine.segment(img, classes=CLASSES, **options)
        total.append(time.perf_counter() - t0)
        timings = engine.last_timings()
        model.append(timings["model"])
        post.append(timings["post"])
    return statistics.median(total), statistics.median(model), statistics.median(post)


def bilinear_render(img: np.ndarray, parsing) -> dict[str, np.ndarray]:
    """The baseline: each class's leaves resized bilinearly, summed, as uint8."""
    H, W = img.shape[:2]
    full = {}
    for i, name in enumerate(LEAVES):
        up = cv2.resize(parsing.leaves[i], (W, H), interpolation=cv2.INTER_LINEAR)
        full[name] = cv2.convertScaleAbs(np.maximum(up, 0.0), alpha=255.0)
    out = {}
    for name in CLASSES:
        members = CLASS_LEAVES[name]
        mask = full[members[0]].copy()
        for leaf in members[1:]:
            cv2.add(mask, full[leaf], dst=mask)
        out[name] = mask
    return out


def refine_ratio(engine: LocalEngine, img: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds of guided rendering and of the bilinear baseline, same parsing."""
    work = _downscale(img, engine.working_size)
    parsing = parse(work, observe(img, work))
    guided, plain = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        render(img, work, parsing, CLASSES)
        guided.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bilinear_render(img, parsing)
        plain.append(time.perf_counter() - t0)
    return statistics.median(guided), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per setting")
    args = parser.parse_args()
    engine = LocalEngine()
    print(f"local engine, astronaut photo, median of {args.repeats} runs (seconds per image)")
    header = (
        f"{'size':>6} {'options':<22} {'total':>7} {'model':>7} {'post':>7} "
        f"{'post/model':>10} {'target':>12}"
    )
    print(header)
    print("-" * len(header))
    for size in (512, 1024, 4096):
        img = photo(size)
        repeats = args.repeats if size < 4096 else max(2, args.repeats // 2)
        settings = [("default", {})]
        settings += [("detail_mode=2", {"detail_mode": 2}), ("quality=2", {"quality": 2})]
        for label, options in settings:
            total, model, post = median_run(engine, img, repeats, **options)
            target = ""
            if size in TARGETS and not options:
                ok = total < TARGETS[size] and (size != 1024 or post <= model)
                target = f"< {TARGETS[size]:.1f} s {'ok' if ok else 'MISSED'}"
            print(
                f"{size:>6} {label:<22} {total:7.3f} {model:7.3f} {post:7.3f} "
                f"{post / model:10.2f} {target:>12}"
            )
    print()
    print("edge refinement against plain bilinear upsampling (same confidences, render only)")
    for size in (512, 1024, 4096):
        img = photo(size)
        guided, plain = refine_ratio(engine, img, max(2, args.repeats // 2))
        print(
            f"{size:>6}  guided {guided:7.3f} s  bilinear {plain:7.3f} s  "
            f"guided/bilinear {guided / plain:5.2f}x"
        )


if __name__ == "__main__":
    main()
