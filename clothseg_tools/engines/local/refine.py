"""Edge-aware upsampling: the guided filter of He, Sun and Tang, built from box filters.

The models see the photo through a 256-pixel grid, so their confidences are blurred at
that scale. A guided filter fits, in every small window, a linear model
``q = a * I + b`` from the guide image ``I`` to the confidence ``p``; where the window
holds an edge of the photo the fit follows it, so the output edge follows the photo,
not the model's grid. The fast variant (He and Sun, 2015) fits ``a`` and ``b`` at the
low resolution and applies them at full resolution, which costs a bilinear resize and
a multiply-add per output pixel.

Only the box around a confidence map's support is filtered: outside it every window
fit is ``a = b = 0``, so the output there is exactly zero. The filter is linear in
``p``, so confidences that sum to one per pixel still do after filtering.

Examples
--------
>>> import numpy as np
>>> guide = np.zeros((32, 32), np.float32); guide[:, 16:] = 1
>>> blurry = np.clip((np.arange(32, dtype=np.float32) - 8) / 16, 0, 1)[None].repeat(32, 0)
>>> sharp = guided_filter(guide, blurry, radius=4, eps=1e-4)
>>> bool(sharp[:, 10].max() < 0.2 and sharp[:, 21].min() > 0.8)
True
"""

from __future__ import annotations

from math import gcd

import cv2
import numpy as np
import numpy.typing as npt

from ..._convert import check_same_shape

__all__ = [
    "Box",
    "GuidedUpsampler",
    "box_mean",
    "guided_filter",
    "to_uint8",
]

FloatArray = npt.NDArray[np.float32]
#: (y0, y1, x0, x1), half-open.
Box = tuple[int, int, int, int]


def box_mean(x: FloatArray, radius: int) -> FloatArray:
    """Mean over a (2r+1) x (2r+1) window, per channel (borders reflected).

    Parameters
    ----------
    x
        (h, w) or (h, w, c) float32 array.
    radius
        Window radius r >= 0 in pixels.

    Examples
    --------
    >>> float(box_mean(np.ones((5, 5), np.float32), 2)[0, 0])
    1.0
    """
    k = 2 * int(radius) + 1
    out = cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)
    return np.asarray(out, np.float32).reshape(x.shape)


class GuidedUpsampler:
    """The fast guided filter for one guide: fit at low resolution, apply higher up.

    Parameters
    ----------
    guide
        (h, w) grey or (h, w, 3) colour float32 guide in 0..1 at the low resolution.
    radius
        Window radius in low-resolution pixels.
    eps
        Regularisation: edges whose local variance is well above ``eps`` are
        followed; flatter regions are smoothed.

    Examples
    --------
    >>> big = np.zeros((64, 64), np.float32); big[:, 37:] = 1
    >>> small = cv2.resize(big, (16, 16), interpolation=cv2.INTER_AREA)
    >>> (y0, y1, x0, x1), q = GuidedUpsampler(small, radius=2, eps=1e-4).upsample(small, big)
    >>> (y0, y1, x0, x1)  # the columns left of x0 are exactly 0
    (0, 64, 12, 64)
    >>> bool(q[:, 33 - x0].max() < 0.2 and q[:, 40 - x0].min() > 0.8)
    True
    """

    def __init__(self, guide: FloatArray, *, radius: int, eps: float) -> None:
        g = np.asarray(guide, np.float32)
        self.guide = g[:, :, None] if g.ndim == 2 else g
        self.radius = int(radius)
        self.eps = float(eps)
        self.mean = box_mean(self.guide, self.radius)
        if self.guide.shape[2] == 1:
            var = box_mean(self.guide * self.guide, self.radius) - self.mean * self.mean
            self.inv: FloatArray = 1.0 / (var + np.float32(eps))
        else:
            self.inv = self._inverse_covariance()

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.guide.shape[0]), int(self.guide.shape[1]))

    def _inverse_covariance(self) -> FloatArray:
        """Per-pixel inverse of the windowed 3x3 colour covariance plus eps * identity.

        The matrices are symmetric: the inverse is kept as its six distinct entries
        (rr, rg, rb, gg, gb, bb), computed by cofactors, which is many times faster
        than a batched ``np.linalg.inv``.
        """
        g, m, r = self.guide, self.mean, self.radius
        pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
        prods = np.stack([g[:, :, i] * g[:, :, j] for i, j in pairs], axis=2)
        cov = box_mean(prods, r)
        for k, (i, j) in enumerate(pairs):
            cov[:, :, k] -= m[:, :, i] * m[:, :, j]
        eps = np.float32(self.eps)
        rr, rg, rb, gg, gb, bb = (cov[:, :, k] for k in range(6))
        rr += eps
        gg += eps
        bb += eps
        inv = np.empty_like(cov)
        inv[:, :, 0] = gg * bb - gb * gb
        inv[:, :, 1] = rb * gb - rg * bb
        inv[:, :, 2] = rg * gb - rb * gg
        inv[:, :, 3] = rr * bb - rb * rb
        inv[:, :, 4] = rb * rg - rr * gb
        inv[:, :, 5] = rr * gg - rg * rg
        det = rr * inv[:, :, 0] + rg * inv[:, :, 1] + rb * inv[:, :, 2]
        inv /= det[:, :, None]
        return inv

    def fit(self, src: FloatArray, box: Box | None = None) -> tuple[FloatArray, FloatArray]:
        """Window-averaged coefficients ``a`` (h, w, c) and ``b`` (h, w) of ``src``.

        With ``box``, ``src`` is the crop of the full low-resolution map to it.
        """
        y0, y1, x0, x1 = box if box is not None else (0, self.shape[0], 0, self.shape[1])
        g = self.guide[y0:y1, x0:x1]
        mean_g = self.mean[y0:y1, x0:x1]
        inv = self.inv[y0:y1, x0:x1]
        r = self.radius
        mean_p = box_mean(src, r)
        cov = box_mean(g * src[:, :, None], r)
        cov -= mean_g * mean_p[:, :, None]
        if g.shape[2] == 1:
            a = cov * inv
        else:
            c0, c1, c2 = cov[:, :, 0], cov[:, :, 1], cov[:, :, 2]
            i = [inv[:, :, k] for k in range(6)]
            a = np.stack(
                [
                    i[0] * c0 + i[1] * c1 + i[2] * c2,
                    i[1] * c0 + i[3] * c1 + i[4] * c2,
                    i[2] * c0 + i[4] * c1 + i[5] * c2,
                ],
                axis=2,
            )
        b = mean_p - (a * mean_g).sum(axis=2)
        return box_mean(a, r), box_mean(b, r)

    def upsample(
        self, src: FloatArray, guide: FloatArray, *, level: float = 1e-3
    ) -> tuple[Box, FloatArray]:
        """Filter ``src`` (low resolution) and apply it at ``guide``'s resolution.

        Parameters
        ----------
        src
            (h, w) float32 confidence at the low resolution.
        guide
            (H, W) or (H, W, c) float32 guide at the output resolution, the same
            kind (grey or colour) as the low-resolution guide.
        level
            Values below this count as zero when finding ``src``'s support.

        Returns
        -------
        box : tuple
            (y0, y1, x0, x1) of the output grid that can be non-zero; empty
            (``y0 == y1``) when ``src`` is zero everywhere.
        q : ndarray
            float32 values of that box (not clipped to 0..1).

        Raises
        ------
        ShapeMismatchError
            ``src`` does not have the low-resolution guide's shape.
        """
        check_same_shape(src.shape, self.shape, what="src", other="low-resolution guide")
        g = np.asarray(guide, np.float32)
        g = g[:, :, None] if g.ndim == 2 else g
        H, W = g.shape[:2]
        low, high = self._boxes(src, level, (H, W))
        if low is None or high is None:
            return (0, 0, 0, 0), np.zeros((0, 0), np.float32)
        y0, y1, x0, x1 = low
        a, b = self.fit(np.ascontiguousarray(src[y0:y1, x0:x1]), low)
        Y0, Y1, X0, X1 = high
        size = (X1 - X0, Y1 - Y0)
        q = np.asarray(cv2.resize(b, size, interpolation=cv2.INTER_LINEAR), np.float32)
        a_up = np.asarray(cv2.resize(a, size, interpolation=cv2.INTER_LINEAR), np.float32)
        a_up = a_up.reshape(Y1 - Y0, X1 - X0, -1)
        a_up *= g[Y0:Y1, X0:X1]
        q += a_up.sum(axis=2) if a_up.shape[2] > 1 else a_up[:, :, 0]
        return high, q

    def _boxes(
        self, src: FloatArray, level: float, out_shape: tuple[int, int]
    ) -> tuple[Box | None, Box | None]:
        """Low-resolution box around ``src``'s support and the matching output box.

        The margin (2r + 2 pixels) covers the two box filters and the bilinear
        kernel, so both boxes are exact: outside them the output is zero. Box
        edges are snapped to pixels that fall on whole output pixels, so resizing
        the crop gives what resizing the whole map and cropping would.
        """
        nz = src > level
        rows = np.flatnonzero(nz.any(axis=1))
        if rows.size == 0:
            return None, None
        cols = np.flatnonzero(nz.any(axis=0))
        margin = 2 * self.radius + 2
        h, w = self.shape
        H, W = out_shape
        ys = _aligned_span(rows[0] - margin, rows[-1] + 1 + margin, h, H)
        xs = _aligned_span(cols[0] - margin, cols[-1] + 1 + margin, w, W)
        return (ys[0], ys[1], xs[0], xs[1]), (ys[2], ys[3], xs[2], xs[3])


def _aligned_span(lo: int, hi: int, n: int, big: int) -> tuple[int, int, int, int]:
    """Widen [lo, hi) of an n-grid to ends that land on whole pixels of a big-grid.

    Returns the low span and the matching span of the big grid. With ``n`` and
    ``big`` sharing few factors the span may widen to the whole axis.

    Examples
    --------
    >>> _aligned_span(5, 9, 512, 4096)
    (5, 9, 40, 72)
    >>> _aligned_span(1, 3, 4, 6)
    (0, 4, 0, 6)
    """
    unit = n // gcd(n, big)
    lo = max(lo // unit * unit, 0)
    hi = min(-(-hi // unit) * unit, n)
    return lo, hi, lo * big // n, hi * big // n


def guided_filter(guide: FloatArray, src: FloatArray, *, radius: int, eps: float) -> FloatArray:
    """The guided filter of ``src`` by ``guide`` at one resolution.

    Parameters
    ----------
    guide
        (h, w) grey or (h, w, 3) colour float32 image in 0..1.
    src
        (h, w) float32 confidence to filter.
    radius
        Window radius in pixels.
    eps
        Regularisation (see :class:`GuidedUpsampler`).

    Returns
    -------
    ndarray
        (h, w) float32.

    Raises
    ------
    ShapeMismatchError
        ``guide`` and ``src`` differ in (h, w).

    Examples
    --------
    >>> flat = np.full((8, 8), 0.5, np.float32)
    >>> bool(np.allclose(guided_filter(flat, flat, radius=2, eps=1e-3), 0.5))
    True
    """
    check_same_shape(src.shape, guide.shape, what="src", other="guide")
    up = GuidedUpsampler(guide, radius=radius, eps=eps)
    a, b = up.fit(np.asarray(src, np.float32))
    return b + (a * up.guide).sum(axis=2)


def to_uint8(q: FloatArray) -> npt.NDArray[np.uint8]:
    """Confidences in 0..1 (values outside are clipped) -> uint8 0..255, rounded.

    ``q`` is overwritten (its negative values are zeroed).

    Examples
    --------
    >>> to_uint8(np.array([[-0.5, 0.5, 2.0]], np.float32))
    array([[  0, 128, 255]], dtype=uint8)
    """
    np.maximum(q, 0.0, out=q)
    # convertScaleAbs rounds and saturates at 255 in one multithreaded pass
    return np.asarray(cv2.convertScaleAbs(q, alpha=255.0), np.uint8)
