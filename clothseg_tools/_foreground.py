"""Foreground colour estimation for soft mattes (the engine behind
:func:`clothseg_tools.estimate_foreground`).

Two published methods, both vectorized numpy in float32:

``multilevel``
    Germer, Uelwer, Conrad, Harmeling, "Fast Multi-Level Foreground Estimation"
    (ICPR 2020), the method pymatting's ``estimate_foreground_ml`` implements. Per
    pixel it solves the 2 x 2 least-squares system that asks ``a F + (1 - a) B`` to
    reproduce the image while F and B stay smooth where alpha is smooth, coarse to
    fine over an image pyramid. Two changes make it fast in numpy without changing
    what it converges to: sweeps are red-black Gauss-Seidel (all pixels of one
    checkerboard colour at once), and at the large levels only the band where alpha
    varies is swept; a pixel of alpha 1 is its own foreground colour, exactly. Large
    levels get three sweeps where pymatting does two Gauss-Seidel iterations: the
    sweeps are cheap, and the third brings the colour error below pymatting's
    (benchmarks/bench_core.py measures both).
``blur_fusion``
    Forte and Pitié, "Approximate Fast Foreground Colour Estimation" (ICIP 2021),
    two-pass variant: box-filtered alpha-weighted means of F and B, then a
    correction that makes the composite reproduce the image. Fewer steps, rougher
    colours in wide soft regions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["blur_fusion", "multilevel"]

F32 = npt.NDArray[np.float32]


def _box(x: F32, r: int) -> F32:
    """Mean over an r x r window per channel (running sums: cost independent of r)."""
    from scipy import ndimage as ndi

    size = (r, r) if x.ndim == 2 else (r, r, 1)
    out: F32 = ndi.uniform_filter(x, size=size, mode="mirror")
    return out


def _blur_fusion_pass(image: F32, fg: F32, bg: F32, alpha: F32, r: int) -> tuple[F32, F32]:
    """One pass: local alpha-weighted means of F and B, then the correction that makes
    ``a F + (1 - a) B`` reproduce the image."""
    eps = np.float32(1e-5)
    a3 = alpha[..., None]
    blur_a = _box(alpha, r)[..., None]
    blur_f = _box(fg * a3, r)
    blur_f /= blur_a + eps
    inv = np.float32(1) - a3
    blur_b = _box(bg * inv, r)
    blur_b /= (np.float32(1) - blur_a) + eps
    # F = blur_f + a (I - a blur_f - (1 - a) blur_b), in place
    resid = image - a3 * blur_f
    resid -= inv * blur_b
    resid *= a3
    resid += blur_f
    np.clip(resid, 0, 1, out=resid)
    return resid, blur_b


def blur_fusion(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8], *, radius: int, refine_radius: int
) -> npt.NDArray[np.uint8]:
    """Two-pass blur-fusion foreground of an (H, W, 3) uint8 image and (H, W) uint8 alpha."""
    scale = np.float32(1 / 255)
    img = rgb.astype(np.float32)
    img *= scale
    a = alpha.astype(np.float32)
    a *= scale
    fg, bg = _blur_fusion_pass(img, img, img, a, radius)
    fg, _ = _blur_fusion_pass(img, fg, bg, a, refine_radius)
    fg *= np.float32(255)
    np.rint(fg, out=fg)
    return fg.astype(np.uint8)


def _nearest_index(n_dst: int, n_src: int) -> npt.NDArray[np.intp]:
    """Source index of each destination index for nearest resizing (pymatting's rule)."""
    return np.minimum(np.arange(n_dst) * n_src // n_dst, n_src - 1)


def _varying(a: F32) -> npt.NDArray[np.bool_]:
    """Pixels whose alpha is soft or differs from a 4-neighbour."""
    out = (a > 0) & (a < 1)
    dx = a[:, 1:] != a[:, :-1]
    out[:, 1:] |= dx
    out[:, :-1] |= dx
    dy = a[1:] != a[:-1]
    out[1:] |= dy
    out[:-1] |= dy
    return out


def _dilate(mask: npt.NDArray[np.bool_], steps: int) -> npt.NDArray[np.bool_]:
    """Grow ``mask`` by ``steps`` pixels in 4-connectivity (a diamond)."""
    out = mask
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _sweep_level(
    fb: F32,
    image: F32,
    a: F32,
    idx: npt.NDArray[np.intp],
    *,
    iterations: int,
    regularization: float,
    gradient_weight: float,
) -> None:
    """Red-black Gauss-Seidel sweeps over the pixels ``idx`` of one level, in place.

    ``fb`` is planar (6, h, w): F's three channels, then B's. ``image`` is (3, k) for
    the k pixels of ``idx``.
    """
    h, w = a.shape
    y, x = np.divmod(idx, w)
    # clamped 4-neighbours, as flat indices (outside the image: the pixel itself)
    neighbours = (
        y * w + np.maximum(x - 1, 0),
        y * w + np.minimum(x + 1, w - 1),
        np.maximum(y - 1, 0) * w + x,
        np.minimum(y + 1, h - 1) * w + x,
    )
    af = a.reshape(-1)
    a0 = af[idx]
    weights = [np.float32(regularization) + np.float32(gradient_weight) * np.abs(a0 - af[q])
               for q in neighbours]  # fmt: skip
    total = weights[0] + weights[1] + weights[2] + weights[3]
    a1 = np.float32(1) - a0
    # the per-pixel 2 x 2 system [[a0² + t, a0 a1], [a0 a1, a1² + t]], inverted once
    m00, m11, m01 = a0 * a0 + total, a1 * a1 + total, a0 * a1
    det = m00 * m11 - m01 * m01
    inv00, inv01, inv11 = m11 / det, -m01 / det, m00 / det
    rhs = np.concatenate([a0 * image, a1 * image])
    flat = fb.reshape(6, -1)
    red = ((x + y) & 1) == 0
    halves = []
    for sel in (red, ~red):
        halves.append((
            idx[sel], [q[sel] for q in neighbours], [wt[sel] for wt in weights],
            rhs[:, sel], inv00[sel], inv01[sel], inv11[sel],
        ))  # fmt: skip
    for _ in range(iterations):
        for ii, qs, ws, r, c00, c01, c11 in halves:
            acc = r.copy()
            for q, wt in zip(qs, ws, strict=True):
                acc += wt * flat.take(q, axis=1)
            sf, sb = acc[:3], acc[3:]
            new = np.empty_like(acc)
            np.multiply(c00, sf, out=new[:3])
            new[:3] += c01 * sb
            np.multiply(c11, sb, out=new[3:])
            new[3:] += c01 * sf
            np.clip(new, 0, 1, out=new)
            flat[:, ii] = new


def multilevel(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    *,
    regularization: float = 1e-5,
    gradient_weight: float = 1.0,
    small_iterations: int = 10,
    big_iterations: int = 3,
    small_size: int = 32,
) -> npt.NDArray[np.uint8]:
    """Multi-level foreground of an (H, W, 3) uint8 image and (H, W) uint8 alpha."""
    h0, w0 = alpha.shape
    planar = np.ascontiguousarray(np.moveaxis(rgb, 2, 0))  # (3, H, W) uint8
    flat_rgb = planar.reshape(3, -1)
    a_full = alpha.astype(np.float32)
    a_full *= np.float32(1 / 255)
    # start from the mean colours of the clearly-foreground and clearly-background pixels
    fb = np.concatenate([_mean_colour(flat_rgb, alpha.reshape(-1) > 229),
                         _mean_colour(flat_rgb, alpha.reshape(-1) < 26)])  # fmt: skip
    levels = max(1, int(np.ceil(np.log2(max(h0, w0, 2)))))
    for level in range(levels + 1):
        h, w = round(h0 ** (level / levels)), round(w0 ** (level / levels))
        ys, xs = _nearest_index(h, h0), _nearest_index(w, w0)
        a = a_full if (h, w) == (h0, w0) else a_full[np.ix_(ys, xs)]
        fb = fb.take(_nearest_index(h, fb.shape[1]), axis=1)
        fb = fb.take(_nearest_index(w, fb.shape[2]), axis=2)
        if h <= small_size and w <= small_size:
            iterations = small_iterations
            idx = np.arange(h * w)
        else:
            iterations = big_iterations
            # a red-black sweep carries information two pixels: beyond this band the
            # sweeps cannot reach the pixels whose alpha varies
            idx = np.flatnonzero(_dilate(_varying(a), 2 * iterations))
        if idx.size:
            yy, xx = np.divmod(idx, w)
            image = flat_rgb[:, ys[yy] * w0 + xs[xx]].astype(np.float32)
            image *= np.float32(1 / 255)
            _sweep_level(
                fb, image, a, idx, iterations=iterations,
                regularization=regularization, gradient_weight=gradient_weight,
            )  # fmt: skip
    f = fb[:3]
    out = np.moveaxis(f, 0, 2)
    out *= np.float32(255)
    result = np.rint(out).astype(np.uint8)
    # where alpha is 1 the image is the foreground, exactly (the sweeps only smooth it)
    np.copyto(result, rgb, where=(alpha == 255)[..., None])
    return result


def _mean_colour(flat_rgb: npt.NDArray[np.uint8], where: npt.NDArray[np.bool_]) -> F32:
    """(3, 1, 1) mean colour in 0..1 of the selected pixels (0 when none).

    Only a starting guess for the coarsest level, so a float32 matrix product (one
    BLAS pass, rounding far below a colour level) is precise enough.
    """
    count = np.count_nonzero(where)
    total = np.zeros(3, np.float32)
    step = 1 << 20  # bounded float32 copies on large images
    for s in range(0, where.size, step):
        total += flat_rgb[:, s : s + step].astype(np.float32) @ where[s : s + step].astype(
            np.float32
        )
    return (total / (255.0 * (count + 1e-5))).astype(np.float32).reshape(3, 1, 1)
