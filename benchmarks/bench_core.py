"""Speed and memory of the vectorized core, side by side with the obvious alternatives.

Run: ``.venv/bin/python benchmarks/bench_core.py`` (add ``--sizes 1024`` for a quick run).

Every comparison runs both sides in this process on the same data and first checks
that they agree. Times are the best of several runs (the least disturbed by other
work on the machine). Each operation's time is also printed as a multiple of a plain
``np.copyto`` of the bytes it must read: the memory-bandwidth floor.
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import best_time
from PIL import Image
from skimage.measure import regionprops

import clothseg_tools as cst
from clothseg_tools import composite

N_CLASSES = 12
MIB = 1024 * 1024


_floor_cache: dict[int, float] = {}


def copy_floor(nbytes: int, repeat: int) -> float:
    """Time of np.copyto over ``nbytes`` (pages touched first, so no page faults)."""
    if nbytes not in _floor_cache:
        src = np.ones(nbytes, np.uint8)
        dst = np.zeros(nbytes, np.uint8)
        _floor_cache[nbytes] = best_time(lambda: np.copyto(dst, src), repeat + 2)
    return _floor_cache[nbytes]


def peak_extra_bytes(fn: Callable[[], Any]) -> int:
    """Peak memory allocated while ``fn`` runs (numpy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- data ---------------------------------------------------------------------------


def make_masks(size: int, rng: np.random.Generator) -> cst.MaskSet:
    """Twelve overlapping soft-edged blobs, like a segmentation result: mostly 0/255
    with a ramp of a few pixels at every edge."""
    yy, xx = np.ogrid[:size, :size]
    masks = {}
    for name in cst.CLASSES[:N_CLASSES]:
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ry, rx = rng.uniform(0.08, 0.3, 2) * size
        dist = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        # signed distance to the ellipse in pixels (approx.), a 4-pixel ramp
        masks[name] = np.clip((1 - dist) * min(ry, rx) * 64 + 128, 0, 255).astype(np.uint8)
    return cst.MaskSet(masks)


def smooth_field(size: int, rng: np.random.Generator, base: tuple[float, float, float]):
    """A colour field with texture at several scales, values in 0..1."""
    from scipy import ndimage as ndi

    out = np.zeros((size, size, 3)) + np.array(base)
    for scale, amp in ((size / 16, 0.25), (size / 64, 0.1), (size / 256, 0.04)):
        noise = ndi.gaussian_filter(rng.normal(0, 1, (size, size, 3)), (scale, scale, 0))
        out += amp * noise / (noise.std() + 1e-9)
    return np.clip(out, 0, 1)


def make_matte(size: int, rng: np.random.Generator):
    """Image = a F + (1 - a) B with known F: a garment-like shape with a 2-pixel soft
    edge and a band of hair-like strands of partial alpha."""
    fg = smooth_field(size, rng, (0.75, 0.35, 0.25))
    bg = smooth_field(size, rng, (0.2, 0.5, 0.8))
    yy, xx = np.mgrid[:size, :size] / size
    dist = np.minimum(
        np.hypot((yy - 0.55) / 0.35, (xx - 0.5) / 0.25),
        np.hypot((yy - 0.25) / 0.12, (xx - 0.5) / 0.12),
    )
    signed = (1 - dist) * size * 0.25
    alpha = np.clip(signed / 2.0 + 0.5, 0, 1)
    hair = (yy < 0.3) & (np.abs(signed) < size * 0.04)
    strands = (np.sin(xx * size * 1.3 + np.sin(yy * 40) * 3) * 0.5 + 0.5) ** 4
    alpha = np.where(hair, np.clip(alpha * 0.3 + strands * 0.7, 0, 1), alpha)
    a8 = np.rint(alpha * 255).astype(np.uint8)
    af = a8[..., None] / 255
    image = np.rint(np.clip(af * fg + (1 - af) * bg, 0, 1) * 255).astype(np.uint8)
    return image, a8, fg * 255


# -- baselines ----------------------------------------------------------------------


def label_map_where_loop(stack: np.ndarray, min_value: int = 128) -> np.ndarray:
    """The straightforward version: one full-size np.where per class."""
    out = np.zeros(stack.shape[1:], np.uint8)
    for i in reversed(range(len(stack))):
        out = np.where(stack[i] >= min_value, np.uint8(i + 1), out)
    return out


def coverage_regionprops(stack: np.ndarray, min_value: int = 128) -> list:
    """What a user does for overlapping masks: regionprops on each thresholded mask."""
    out = []
    for mask in stack:
        props = regionprops((mask >= min_value).astype(np.uint8))
        out.append((props[0].area, props[0].bbox, props[0].centroid) if props else None)
    return out


# -- report -------------------------------------------------------------------------


def row(name: str, ours: float, floor: float, baseline: float | None = None, base_name=""):
    text = f"  {name:<34} {ours * 1e3:9.1f} ms  {ours / floor:6.1f}x copyto"
    if baseline is not None:
        text += f"   {base_name} {baseline * 1e3:9.1f} ms"
    print(text)


def bench_size(size: int, repeat: int, rng: np.random.Generator) -> None:
    ms = make_masks(size, rng)
    stack = ms.stack()
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = cst.merge(ms, ["clothes", "tops", "bottoms", "dress"])
    soft = np.count_nonzero((mask > 0) & (mask < 255)) / mask.size
    print(
        f"\n== {size} x {size}, {N_CLASSES} classes: stack {stack.nbytes / MIB:.1f} MiB, "
        f"cutout mask {soft:.1%} soft pixels =="
    )
    stack_floor = copy_floor(stack.nbytes, repeat)
    print(f"  np.copyto of the stack's bytes: {stack_floor * 1e3:.1f} ms")

    # label_map
    assert np.array_equal(cst.label_map(ms), label_map_where_loop(stack))
    ours = best_time(lambda: cst.label_map(ms), repeat)
    base = best_time(lambda: label_map_where_loop(stack), repeat)
    row("label_map (priority)", ours, stack_floor, base, "np.where loop")
    soft_t = best_time(lambda: cst.label_map(ms, mode="soft"), repeat)
    row("label_map (soft)", soft_t, stack_floor)
    peak = peak_extra_bytes(lambda: cst.label_map(ms))
    base_peak = peak_extra_bytes(lambda: label_map_where_loop(stack))
    print(f"  RATIO label_map speed-up vs np.where loop: {base / ours:.2f}x (target >= 2x at 4096)")
    print(
        f"  RATIO label_map peak extra memory: {peak / MIB:.1f} MiB = "
        f"{peak / stack.nbytes:.3f} x the uint8 stack (target <= 1.5x); "
        f"np.where loop: {base_peak / stack.nbytes:.3f} x"
    )

    # merge
    ours = best_time(lambda: cst.merge(ms), repeat)
    base = best_time(lambda: stack.max(axis=0), repeat)
    row("merge (max)", ours, stack_floor, base, "stack.max(axis=0)")

    # coverage
    ref = coverage_regionprops(stack)
    got = cst.coverage(ms)
    for (area, bbox, centroid), cov in zip(ref, got.values(), strict=True):
        assert cov.pixels == area and cov.bbox == (bbox[1], bbox[0], bbox[3], bbox[2])
        assert np.allclose(cov.centroid, centroid[::-1])
    ours = best_time(lambda: cst.coverage(ms), repeat)
    base = best_time(lambda: coverage_regionprops(stack), max(1, repeat // 2))
    row("coverage (pixels, bbox, centroid)", ours, stack_floor, base, "regionprops")
    print(f"  RATIO coverage speed-up vs regionprops per class: {base / ours:.2f}x (target >= 5x)")
    with_comp = best_time(lambda: cst.coverage(ms, components=True), 1)
    row("coverage (+ components)", with_comp, stack_floor)

    # cutout vs Pillow putalpha
    pil_img, pil_bg, pil_mask = Image.fromarray(img), Image.fromarray(bg), Image.fromarray(mask)

    def pillow_cutout() -> Image.Image:
        out = pil_img.copy()
        out.putalpha(pil_mask)
        return out

    assert np.array_equal(cst.cutout(img, mask), np.asarray(pillow_cutout()))
    floor4 = copy_floor(4 * mask.size, repeat)
    ours = best_time(lambda: cst.cutout(img, mask), repeat)
    base = best_time(pillow_cutout, repeat)
    row("cutout", ours, floor4, base, "Pillow copy+putalpha")
    print(f"  RATIO cutout time / Pillow putalpha: {ours / base:.2f} (target <= 1.5 at 4096)")

    # replace_background vs Pillow composite
    pil_out = np.asarray(Image.composite(pil_img, pil_bg, pil_mask)).astype(int)
    assert np.abs(cst.replace_background(img, mask, bg) - pil_out).max() <= 1
    floor7 = copy_floor(7 * mask.size, repeat)
    ours = best_time(lambda: cst.replace_background(img, mask, bg), repeat)
    base = best_time(lambda: Image.composite(pil_img, pil_bg, pil_mask), repeat)
    row("replace_background (image)", ours, floor7, base, "Pillow composite")
    print(f"  RATIO replace_background time / Pillow composite: {ours / base:.2f} (target <= 1.5)")
    # the same without the select-then-blend fast path for 0/255 pixels
    saved = composite._SOFT_SHARE_FOR_FULL_BLEND
    composite._SOFT_SHARE_FOR_FULL_BLEND = -1.0
    try:
        full = best_time(lambda: cst.replace_background(img, mask, bg), repeat)
    finally:
        composite._SOFT_SHARE_FOR_FULL_BLEND = saved
    row("replace_background, no fast path", full, floor7)
    print(f"  RATIO fast path for 0/255 pixels: {full / ours:.2f}x faster than blending all")
    colour = (30, 160, 90)
    ours = best_time(lambda: cst.replace_background(img, mask, colour), repeat)
    base = best_time(
        lambda: Image.composite(pil_img, Image.new("RGB", pil_img.size, colour), pil_mask), repeat
    )
    row("replace_background (colour)", ours, floor4, base, "Pillow composite")
    print(f"  RATIO replace_background(colour) / Pillow: {ours / base:.2f}")


def bench_foreground(size: int, repeat: int, rng: np.random.Generator) -> None:
    from pymatting import estimate_foreground_ml

    image, alpha, truth = make_matte(size, rng)
    visible = alpha > 0
    soft = visible & (alpha < 255)
    print(
        f"\n== estimate_foreground, {size} x {size} synthetic matte "
        f"({soft.mean():.1%} soft pixels, known foreground) =="
    )
    # numba compiles on the first call: keep that out of the timing
    estimate_foreground_ml(np.zeros((8, 8, 3)), np.zeros((8, 8)))
    image_f, alpha_f = image / 255.0, alpha / 255.0
    floor = copy_floor(4 * alpha.size, repeat)
    runs = {
        "multilevel (ours, default)": lambda: cst.estimate_foreground(image, alpha),
        "blur_fusion (ours)": lambda: cst.estimate_foreground(image, alpha, method="blur_fusion"),
        "pymatting estimate_foreground_ml": lambda: estimate_foreground_ml(image_f, alpha_f) * 255,
    }
    times, errors = {}, {}
    for name, fn in runs.items():
        est = np.rint(fn()).astype(np.float64)
        errors[name] = (
            np.abs(est[visible] - truth[visible]).mean(),
            np.abs(est[soft] - truth[soft]).mean(),
        )
        times[name] = best_time(fn, repeat)
        print(
            f"  {name:<34} {times[name] * 1e3:9.1f} ms  {times[name] / floor:6.1f}x copyto   "
            f"mean abs error: {errors[name][0]:.3f} (alpha > 0), {errors[name][1]:.2f} (soft)"
        )
    raw = np.abs(image[soft] - truth[soft]).mean()
    print(f"  (the image itself, no estimation: {raw:.2f} on soft pixels)")
    ours, ref = "multilevel (ours, default)", "pymatting estimate_foreground_ml"
    print(
        f"  RATIO estimate_foreground time / pymatting: {times[ours] / times[ref]:.2f}; "
        f"error / pymatting's: {errors[ours][0] / errors[ref][0]:.2f} (alpha > 0), "
        f"{errors[ours][1] / errors[ref][1]:.2f} (soft) (targets < 1 and <= 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--foreground-size", type=int, default=1024)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, Pillow {Image.__version__}; best of several runs")
    for size in args.sizes:
        bench_size(size, repeat=7 if size <= 1024 else 3, rng=rng)
    bench_foreground(args.foreground_size, repeat=5, rng=rng)


if __name__ == "__main__":
    main()
