"""COCO RLE and try-on masks: speed against the baseline, on the same data.

1. ``encode_rle`` / ``decode_rle`` against pycocotools' ``mask.encode`` /
   ``mask.decode`` on square masks of 1024 and 4096 px. pycocotools is timed with the
   ``np.asfortranarray`` call its users must make (it takes Fortran-ordered uint8
   only); ``encode_rle`` takes the same C-ordered uint8 mask as it is. Outputs are
   checked to be identical. Target: at most 2x pycocotools' time.
   Masks: "garments" (smooth outlines, a few hundred runs per column: what
   segmentation gives) and, as a worst case, "noise" (every pixel a coin flip, a run
   per two pixels), which no segmentation produces but shows the per-run cost.
2. ``tryon_mask`` on a synthetic person with the twelve classes at 1024 and 4096 px
   (square), with and without keypoints. Target: under 0.2 s and 2 s.
3. Dataset exports, items per second over ``--items`` result folders (default 1,000) of
   1024 px, built in a temporary folder (the synthetic person, all twelve classes, two
   per-garment parts, a JPEG photo): COCO (RLE), YOLO (polygons, photos copied), CVAT
   (ZIP), Label Studio (brush RLE, photos copied), Hugging Face parquet; and the
   readers back (COCO, CVAT, YOLO).
4. ``brush_rle`` against Label Studio's reference encoder
   (``label_studio_converter.brush.mask2rle``) on the same masks; outputs asserted
   identical.

Times are the best of several runs. Run: ``.venv/bin/python benchmarks/bench_export.py``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as coco_mask
from skimage.draw import ellipse, polygon

from clothseg_tools import CLASSES, MaskSet, SegmentationResult, decode_rle, encode_rle, tryon_mask
from clothseg_tools import export as ex


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def garment_mask(n: int, seed: int) -> np.ndarray:
    """Smooth blobs: a few ellipses with wavy outlines and holes, 0/255 uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:n, :n]
    angle = np.arctan2(yy - n / 2, xx - n / 2)
    r = np.hypot(yy - n / 2, xx - n / 2)
    m = r < n * (0.3 + 0.03 * np.sin(7 * angle + rng.random() * 6))
    for _ in range(6):
        (cy, cx), (ry, rx) = rng.uniform(0.1, 0.9, 2) * n, rng.uniform(0.03, 0.12, 2) * n
        m[ellipse(cy, cx, ry, rx, shape=m.shape)] ^= True
    return m.astype(np.uint8) * 255


def noise_mask(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, n)) < 0.5).astype(np.uint8) * 255


def bench_rle(n: int, kind: str, repeat: int) -> None:
    mask = (garment_mask if kind == "garments" else noise_mask)(n, seed=n)
    binary01 = mask // 255  # what pycocotools users hold (0/1 uint8)

    ours = encode_rle(mask)
    theirs = coco_mask.encode(np.asfortranarray(binary01))
    assert ours["counts"].encode() == theirs["counts"], "encode_rle differs from pycocotools"
    assert np.array_equal(decode_rle(ours), coco_mask.decode(theirs).astype(bool))

    t_ours = best_of(lambda: encode_rle(mask), repeat)
    t_base = best_of(lambda: coco_mask.encode(np.asfortranarray(binary01)), repeat)
    print(
        f"  encode {n:>4} {kind:<8} encode_rle {t_ours * 1e3:8.2f} ms   pycocotools "
        f"{t_base * 1e3:8.2f} ms   ratio {t_ours / t_base:5.2f}x   identical: yes"
    )
    t_ours = best_of(lambda: decode_rle(ours), repeat)
    t_base = best_of(lambda: coco_mask.decode(theirs), repeat)
    print(
        f"  decode {n:>4} {kind:<8} decode_rle {t_ours * 1e3:8.2f} ms   pycocotools "
        f"{t_base * 1e3:8.2f} ms   ratio {t_ours / t_base:5.2f}x   identical: yes"
    )


def person(n: int) -> tuple[MaskSet, dict[str, tuple[float, float]]]:
    """A front-facing figure filling an n x n picture, all twelve classes."""
    s = n / 400
    shape = (n, n)
    m = {c: np.zeros(shape, bool) for c in CLASSES}

    def poly(name: str, pts: list[tuple[float, float]]) -> None:
        m[name][polygon([(y * s) for _, y in pts], [(x * s) for x, _ in pts], shape)] = True

    def ell(name: str, cy: float, cx: float, ry: float, rx: float) -> None:
        m[name][ellipse(cy * s, cx * s, ry * s, rx * s, shape=shape)] = True

    def limb(name: str, a: tuple[float, float], b: tuple[float, float], width: float) -> None:
        pa, pb = np.array(a), np.array(b)
        d = pb - pa
        nrm = np.array([-d[1], d[0]]) / np.hypot(*d) * width / 2
        poly(name, [tuple(pa + nrm), tuple(pb + nrm), tuple(pb - nrm), tuple(pa - nrm)])

    kp = {
        "left_shoulder": (230, 85),
        "right_shoulder": (170, 85),
        "left_elbow": (238, 140),
        "right_elbow": (162, 140),
        "left_wrist": (242, 190),
        "right_wrist": (158, 190),
        "left_hip": (218, 195),
        "right_hip": (182, 195),
        "left_knee": (216, 280),
        "right_knee": (184, 280),
        "left_ankle": (216, 360),
        "right_ankle": (184, 360),
    }
    limb("body", (200, 60), (200, 90), 22)
    for side in ("left", "right"):
        limb("body", kp[f"{side}_shoulder"], kp[f"{side}_elbow"], 20)
        limb("body", kp[f"{side}_elbow"], kp[f"{side}_wrist"], 17)
        wx, wy = kp[f"{side}_wrist"]
        ell("body", wy + 12, wx, 14, 8)
        limb("body", kp[f"{side}_hip"], kp[f"{side}_knee"], 30)
        limb("body", kp[f"{side}_knee"], kp[f"{side}_ankle"], 22)
        ell("shoes", 372, kp[f"{side}_ankle"][0], 10, 16)
    ell("face", 45, 200, 24, 18)
    ell("hair", 28, 200, 16, 22)
    ell("head", 12, 200, 6, 26)
    ell("acc", 40, 200, 4, 14)
    poly("tops", [(168, 80), (232, 80), (225, 200), (175, 200)])
    poly(
        "bottoms",
        [
            (164, 196),
            (236, 196),
            (236, 300),
            (228, 356),
            (204, 356),
            (200, 250),
            (196, 356),
            (172, 356),
            (164, 300),
        ],
    )
    ell("bag", 230, 270, 25, 18)
    ell("others", 380, 40, 15, 30)
    m["clothes"] = m["tops"] | m["bottoms"]
    for c in ("tops", "bottoms", "face", "shoes", "bag"):
        m["body"] &= ~m[c]
    masks = {c: v.astype(np.uint8) * 255 for c, v in m.items()}
    return MaskSet(masks), {k: (x * s, y * s) for k, (x, y) in kp.items()}


def bench_tryon(n: int, repeat: int) -> None:
    ms, kp = person(n)
    target = 0.2 if n <= 1024 else 2.0
    for category in ("upper_body", "lower_body", "dresses"):
        for keypoints in (None, kp):
            t = best_of(partial(tryon_mask, ms, category, keypoints=keypoints), repeat)
            label = "keypoints" if keypoints else "geometry"
            print(
                f"  tryon_mask {n:>4} {category:<10} {label:<9} {t * 1e3:8.1f} ms   "
                f"target < {target * 1e3:.0f} ms   {'ok' if t < target else 'SLOW'}"
            )


def build_results(root: Path, n: int, size: int = 1024) -> Path:
    """n result folders of the synthetic person; one written, the rest copied."""
    from PIL import Image

    ms, _ = person(size)
    tops = ms["tops"]
    left, right = tops.copy(), tops.copy()
    left[:, size // 2 :] = 0
    right[:, : size // 2] = 0
    photo = root / "photo.jpg"
    rgb = np.stack([ms.stack().max(axis=0)] * 3, axis=-1) // 2 + 60
    Image.fromarray(rgb.astype(np.uint8)).save(photo, quality=90)
    first = root / "results" / "r00000"
    SegmentationResult(ms, {"tops_0": left, "tops_1": right}, source=str(photo)).save(first)
    for i in range(1, n):
        shutil.copytree(first, root / "results" / f"r{i:05d}")
    return root / "results"


def bench_formats(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        results = build_results(root, n)
        print(f"  built {n} result folders of 1024 px in {time.perf_counter() - t0:.1f} s")
        exports: list[tuple[str, Callable[[], Any]]] = [
            ("coco (rle)", lambda: ex.export_coco(results, root / "coco.json")),
            ("yolo", lambda: ex.export_yolo(results, root / "yolo")),
            ("cvat (zip)", lambda: ex.export_cvat(results, root / "cvat.zip")),
            ("labelstudio (brush)", lambda: ex.export_labelstudio(results, root / "ls")),
            ("hf (parquet)", lambda: ex.export_hf(results, root / "hf")),
        ]
        for name, run in exports:
            t0 = time.perf_counter()
            run()
            t = time.perf_counter() - t0
            print(f"  export {name:<20} {n / t:8.1f} items/s   ({t:6.1f} s for {n})")
        readers = [
            ("coco", lambda: ex.read_coco(root / "coco.json")),
            ("cvat", lambda: ex.read_cvat(root / "cvat.zip")),
            ("yolo", lambda: ex.read_yolo(root / "yolo")),
        ]
        for name, read in readers:
            t0 = time.perf_counter()
            count = sum(1 for _ in read())
            t = time.perf_counter() - t0
            assert count == n
            print(f"  read   {name:<20} {n / t:8.1f} items/s   ({t:6.1f} s for {n})")


def bench_brush(n: int, kind: str, repeat: int) -> None:
    from label_studio_converter import brush

    mask = (garment_mask if kind == "garments" else noise_mask)(n, seed=n)
    ours = ex.brush_rle(mask)
    assert ours == brush.mask2rle(mask), "brush_rle differs from Label Studio's encoder"
    t_ours = best_of(lambda: ex.brush_rle(mask), repeat)
    t_base = best_of(lambda: brush.mask2rle(mask), 1 if kind == "noise" else repeat)
    print(
        f"  brush {n:>4} {kind:<8} brush_rle {t_ours * 1e3:8.2f} ms   label_studio_converter "
        f"{t_base * 1e3:9.1f} ms   ratio {t_ours / t_base:6.4f}x   identical: yes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--items", type=int, default=1000, help="result folders to export")
    parser.add_argument(
        "--only", choices=["rle", "tryon", "formats", "brush"], help="run one section"
    )
    args = parser.parse_args()
    if args.only in (None, "brush"):
        print("Label Studio brush RLE vs label_studio_converter.brush.mask2rle:")
        for n, kind in ((1024, "garments"), (4096, "garments"), (1024, "noise")):
            bench_brush(n, kind, args.repeat)
    if args.only in (None, "formats"):
        print(f"Dataset exports and readers ({args.items} items of 1024 x 1024):")
        bench_formats(args.items)
    if args.only not in (None, "rle", "tryon"):
        return
    if args.only in (None, "rle"):
        print("COCO RLE vs pycocotools (pycocotools timed with np.asfortranarray):")
        for n in (1024, 4096):
            for kind in ("garments", "noise"):
                bench_rle(n, kind, args.repeat)
    if args.only in (None, "tryon"):
        print("tryon_mask (12 classes, square picture):")
        for n in (1024, 4096):
            bench_tryon(n, args.repeat)


if __name__ == "__main__":
    main()
