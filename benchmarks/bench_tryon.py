"""Speed of the ``ootd`` try-on preset, beside OpenCV doing the same steps and beside the
``default`` preset on the same masks.

Run: ``.venv/bin/python benchmarks/bench_tryon.py`` (``--sizes 1024`` for a quick run).

The preset's steps (square dilation, hole filling from the border, the largest region)
are written with scikit-image and numpy; OpenCV (installed with mediapipe) is the
named baseline for each, run in this process on the same 384 x 512 arrays after
checking both give the same pixels. The whole preset is then timed against the
``default`` preset on a synthetic figure at each source size. Times are the best of
several runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from _common import best_time
from PIL import Image, ImageDraw

import clothseg_tools as cst
from clothseg_tools.tryon import _ootd as R


def figure(size: int) -> tuple[cst.MaskSet, dict[str, tuple[float, float]]]:
    """A standing figure (top, trousers, skin, face, shoes) with its keypoints, at a
    height of ``size`` px."""
    s = size / 512
    pose = {"right_shoulder": (150, 116), "right_elbow": (136, 184), "right_wrist": (128, 246),
            "left_shoulder": (234, 116), "left_elbow": (248, 184), "left_wrist": (256, 246),
            "right_hip": (168, 250), "right_knee": (166, 350), "right_ankle": (166, 450),
            "left_hip": (216, 250), "left_knee": (218, 350), "left_ankle": (218, 450)}  # fmt: skip
    w, h = round(384 * s), size

    def layer(draw_fn: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
        img = Image.new("L", (w, h))
        draw_fn(ImageDraw.Draw(img))
        return np.asarray(img) > 0

    def limbs(d: ImageDraw.ImageDraw) -> None:
        for a, b, c in (("right_shoulder", "right_elbow", "right_wrist"),
                        ("left_shoulder", "left_elbow", "left_wrist"),
                        ("right_hip", "right_knee", "right_ankle"),
                        ("left_hip", "left_knee", "left_ankle")):  # fmt: skip
            pts = [(pose[k][0] * s, pose[k][1] * s) for k in (a, b, c)]
            d.line(pts, fill=1, width=round(26 * s), joint="curve")

    masks = {
        "body": layer(limbs),
        "face": layer(lambda d: d.ellipse([168 * s, 32 * s, 216 * s, 96 * s], fill=1)),
        "tops": layer(lambda d: d.polygon([(146 * s, 108 * s), (238 * s, 108 * s),
                                            (228 * s, 262 * s), (156 * s, 262 * s)], fill=1)),
        "bottoms": layer(lambda d: d.rectangle([154 * s, 250 * s, 230 * s, 440 * s], fill=1)),
        "shoes": layer(lambda d: d.rectangle([140 * s, 445 * s, 244 * s, 470 * s], fill=1)),
    }  # fmt: skip
    masks["body"] &= ~(masks["tops"] | masks["bottoms"])
    return cst.MaskSet(masks), {k: (x * s, y * s) for k, (x, y) in pose.items()}


def bench_steps(repeat: int) -> None:
    import cv2

    ms, _ = figure(512)
    garment = R.resize_nearest(ms["tops"] >= 128, R.WORK_SIZE)
    kernel = np.ones((5, 5), np.uint16)
    ours = R.dilate_square(garment, 5, 5)
    theirs = cv2.dilate(garment.astype(np.float32), kernel, iterations=5) > 0
    assert (ours == theirs).all()
    rows = [
        (
            "dilate 5x5 x5",
            best_time(lambda: R.dilate_square(garment, 5, 5), repeat),
            best_time(lambda: cv2.dilate(garment.astype(np.float32), kernel, iterations=5), repeat),
        )
    ]
    region = ours & ~R.resize_nearest(ms["face"] >= 128, R.WORK_SIZE)

    def flood() -> np.ndarray:
        img = np.where(region, 255, 0).astype(np.uint8)
        img[[0, -1]] = 0
        img[:, [0, -1]] = 0
        before = img.copy()
        cv2.floodFill(img, np.zeros((img.shape[0] + 2, img.shape[1] + 2), np.uint8), (0, 0), 255)
        return (before > 0) | (img == 0)

    assert (R.fill_from_border(region) == flood()).all()
    ours_fill = best_time(lambda: R.fill_from_border(region), repeat)
    rows.append(("fill from border", ours_fill, best_time(flood, repeat)))

    def contours() -> np.ndarray:
        found, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        i = max(range(len(found)), key=lambda j: abs(cv2.contourArea(found[j])))
        out = np.zeros(region.shape, np.uint8)
        cv2.drawContours(out, found, i, 255, -1)
        return out > 0

    assert (R.largest_region(region) == contours()).all()
    ours_region = best_time(lambda: R.largest_region(region), repeat)
    rows.append(("largest region", ours_region, best_time(contours, repeat)))
    print("step (384 x 512)       ours ms   OpenCV ms   ratio")
    for name, a, b in rows:
        print(f"{name:20s} {a * 1e3:9.2f} {b * 1e3:11.2f} {a / b:7.2f}x")


def bench_sizes(sizes: list[int], repeat: int) -> None:
    print("\nsource (h x w)     ootd ms   default ms   ootd / default")
    for size in sizes:
        ms, kp = figure(size)

        def ootd(ms: cst.MaskSet = ms, kp: dict = kp) -> np.ndarray:
            return cst.tryon_mask(ms, "upper_body", keypoints=kp, preset="ootd")

        def default(ms: cst.MaskSet = ms, kp: dict = kp) -> np.ndarray:
            return cst.tryon_mask(ms, "upper_body", keypoints=kp)

        a, b = best_time(ootd, repeat), best_time(default, repeat)
        shape = f"{ms.shape[0]} x {ms.shape[1]}"
        print(f"{shape:16s} {a * 1e3:9.1f} {b * 1e3:12.1f} {a / b:12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench_steps(args.repeat)
    bench_sizes(args.sizes, args.repeat)


if __name__ == "__main__":
    main()
