"""Compositing: cutouts, background replacement, review overlays, foreground colours.

All blending is integer arithmetic on uint8 data:
``out = (fg * a + bg * (255 - a) + 127) // 255`` computed in uint16, which is the
correctly rounded value of ``fg * a/255 + bg * (1 - a/255)`` (Pillow's
``Image.composite`` agrees within one level). Work runs in row blocks; pixels whose
alpha is exactly 0 or 255 take a select-only path and only soft pixels are blended,
which is what makes mostly-hard segmentation masks cheap.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools import cutout, replace_background
>>> img = np.full((2, 2, 3), 200, np.uint8)
>>> mask = np.array([[0, 255], [128, 255]], np.uint8)
>>> cutout(img, mask)[..., 3]
array([[  0, 255],
       [128, 255]], dtype=uint8)
>>> replace_background(img, mask, (0, 0, 0))[..., 0]
array([[  0, 200],
       [100, 200]], dtype=uint8)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _foreground
from ._convert import as_image, as_mask, check_same_shape
from .classes import CLASSES, LABEL_PRIORITY, class_color
from .masks import MaskSet
from .ops import _masks_stack, _row_step, label_map

__all__ = ["cutout", "estimate_foreground", "overlay", "replace_background"]

# Above this share of soft pixels in a row block, blending the whole block is cheaper
# than selecting and then gathering the soft pixels (measured at 4096 x 4096).
_SOFT_SHARE_FOR_FULL_BLEND = 0.10
_CHANNEL_OFFSETS = np.arange(3)


def _rgb_and_alpha(image: Any, mask: Any) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The image's RGB (C-contiguous) and the effective alpha: the mask, times the
    image's own alpha when it has one."""
    img = as_image(image)
    alpha = as_mask(mask)
    check_same_shape(alpha.shape, img.shape, what="mask", other="image")
    if img.shape[2] == 4:
        prod = img[..., 3].astype(np.uint16) * alpha
        prod += 127
        alpha = (prod // 255).astype(np.uint8)
        img = img[..., :3]
    return np.ascontiguousarray(img), alpha


def _pack_rgba(rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Interleave (H, W, 3) RGB and (H, W) alpha into (H, W, 4).

    Three-byte pixels make numpy copy channel by channel; instead each pixel's RGB is
    read as one little-endian uint32 at a 3-byte stride (its 4th byte belongs to the
    next pixel and is masked off) and the alpha is OR-ed into the top byte.
    """
    h, w = alpha.shape
    n = h * w
    out = np.empty((h, w, 4), np.uint8)
    if n == 0:
        return out
    o32 = out.view("<u4").reshape(-1)
    a = alpha.reshape(-1)
    # the last pixel's 4-byte read would run past the buffer: it is copied by hand
    words: npt.NDArray[np.uint32] = np.ndarray(
        (n - 1,), dtype="<u4", buffer=rgb.reshape(-1), strides=(3,)
    )
    step = _row_step(1, 4) * 4
    for s in range(0, n - 1, step):
        e = min(s + step, n - 1)
        block = o32[s:e]
        np.left_shift(a[s:e], 24, out=block, dtype="<u4")
        block |= words[s:e] & 0x00FFFFFF
    flat = out.reshape(-1, 4)
    flat[-1, :3] = rgb.reshape(-1, 3)[-1]
    flat[-1, 3] = a[-1]
    return out


def _blend(
    fg: npt.NDArray[np.uint8], bg: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """``(fg * a + bg * (255 - a) + 127) // 255`` per channel, in row blocks.

    ``bg`` is (H, W, 3), or (3,) for a plain colour.
    """
    h, w = alpha.shape
    out = np.empty((h, w, 3), np.uint8)
    colour = bg.ndim == 1
    if colour:
        bg_row = np.ascontiguousarray(np.broadcast_to(bg, (w, 3)))
    step = _row_step(w, 6)
    sel = np.empty((step, w, 3), np.uint8)
    x = np.empty((step, w), np.uint16)
    y = np.empty((step, w), np.uint16)
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        n = r1 - r0
        a, f, o = alpha[r0:r1], fg[r0:r1], out[r0:r1]
        b = np.broadcast_to(bg_row, (n, w, 3)) if colour else bg[r0:r1]
        soft = np.flatnonzero((a - np.uint8(1)) < np.uint8(254))  # 1 <= a <= 254
        if soft.size > _SOFT_SHARE_FOR_FULL_BLEND * a.size:
            _blend_block(f, b, a, o, x[:n], y[:n])
            continue
        # hard pixels: o = a == 255 ? f : b, as b ^ ((f ^ b) & m) with m = 0xFF or 0
        m = sel[:n]
        full = (a == 255).view(np.uint8)
        for c in range(3):
            m[..., c] = full
        np.negative(m, out=m)
        np.bitwise_xor(f, b, out=o)
        o &= m
        o ^= b
        if soft.size:
            i3 = ((soft * 3)[:, None] + _CHANNEL_OFFSETS).reshape(-1)
            a3 = np.repeat(a.reshape(-1)[soft], 3).astype(np.uint16)
            v = f.reshape(-1)[i3] * a3
            a3 ^= 255  # 255 - a
            bv = np.tile(bg.astype(np.uint16), soft.size) if colour else b.reshape(-1)[i3]
            v += bv * a3
            v += 127
            v //= 255
            o.reshape(-1)[i3] = v
    return out


def _blend_block(
    f: npt.NDArray[np.uint8],
    b: npt.NDArray[np.uint8],
    a: npt.NDArray[np.uint8],
    o: npt.NDArray[np.uint8],
    x: npt.NDArray[np.uint16],
    y: npt.NDArray[np.uint16],
) -> None:
    """Blend every pixel of one block, a channel at a time (long inner loops)."""
    inv = np.subtract(np.uint8(255), a)
    for c in range(3):
        np.multiply(f[..., c], a, out=x, dtype=np.uint16)
        np.multiply(b[..., c], inv, out=y, dtype=np.uint16)
        x += y
        x += 127
        # v // 255 == (v + (v >> 8) + 1) >> 8 for every v <= 255 * 255 + 127 (checked
        # exhaustively): shifts instead of a division
        np.right_shift(x, 8, out=y)
        x += y
        x += 1
        x >>= 8
        np.copyto(o[..., c], x, casting="unsafe")


def cutout(image: Any, mask: Any, *, decontaminate: bool = False) -> npt.NDArray[np.uint8]:
    """Cut the masked subject out: an (H, W, 4) RGBA image with straight alpha.

    The colour channels are the image's own colours (not multiplied by alpha), so
    soft edges keep their colour instead of fading to black: no dark halo when the
    cutout is composited onto a light background.

    Parameters
    ----------
    image
        Path, PIL image or (H, W, 3|4) uint8 array. An alpha channel of the image is
        multiplied into the mask.
    mask
        (H, W) uint8 or bool; becomes the alpha channel.
    decontaminate
        Replace the colours with :func:`estimate_foreground`'s, removing the old
        background's colour from soft edges (hair, fuzzy sleeves).

    Returns
    -------
    numpy.ndarray
        (H, W, 4) uint8 RGBA.

    Raises
    ------
    ShapeMismatchError
        Mask and image differ in (H, W) (a ``ValueError`` naming both shapes).

    Examples
    --------
    >>> img = np.zeros((1, 2, 3), np.uint8); img[..., 0] = 250
    >>> cutout(img, np.array([[255, 64]], np.uint8))
    array([[[250,   0,   0, 255],
            [250,   0,   0,  64]]], dtype=uint8)
    """
    rgb, alpha = _rgb_and_alpha(image, mask)
    if decontaminate:
        rgb = estimate_foreground(rgb, alpha)
    return _pack_rgba(rgb, alpha)


def _background_array(
    background: Any, rgb: npt.NDArray[np.uint8], *, fit: str | None, blur_radius: float
) -> npt.NDArray[np.uint8]:
    """The background as an (H, W, 3) array or a (3,) colour."""
    from PIL import Image, ImageColor, ImageFilter, ImageOps

    if isinstance(background, str) and background == "blur":
        blurred = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(blur_radius))
        return np.asarray(blurred)
    if isinstance(background, str) and not background.lower().endswith(_IMAGE_SUFFIXES):
        try:
            return np.array(ImageColor.getrgb(background)[:3], np.uint8)
        except ValueError:
            raise ValueError(
                f"background {background!r} is neither 'blur', a colour name or #hex, nor an "
                "image path with a known extension."
            ) from None
    if isinstance(background, (int, np.integer)) and not isinstance(background, bool):
        background = (int(background),) * 3
    if isinstance(background, (tuple, list)) or (
        isinstance(background, np.ndarray) and background.ndim == 1
    ):
        values = [int(v) for v in background]
        if len(values) not in (3, 4) or not all(0 <= v <= 255 for v in values):
            raise ValueError(
                f"A background colour must be 3 (or 4) values in 0..255, got {background!r}."
            )
        return np.array(values[:3], np.uint8)
    bg = as_image(background, name="background")[..., :3]
    if bg.shape[:2] != rgb.shape[:2]:
        if fit != "cover":
            check_same_shape(bg.shape, rgb.shape, what="background", other="image")
        h, w = rgb.shape[:2]
        covered = ImageOps.fit(
            Image.fromarray(np.ascontiguousarray(bg)), (w, h), method=Image.Resampling.BICUBIC
        )
        return np.asarray(covered)
    return np.ascontiguousarray(bg)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def replace_background(
    image: Any,
    mask: Any,
    background: Any = (255, 255, 255),
    *,
    fit: str | None = None,
    blur_radius: float = 20.0,
) -> npt.NDArray[np.uint8]:
    """Composite the masked subject over a new background.

    Every pixel is ``(fg * a + bg * (255 - a) + 127) // 255`` with ``a`` the mask,
    integer arithmetic in uint16 (Pillow's ``Image.composite`` agrees within one level).

    Parameters
    ----------
    image
        Path, PIL image or (H, W, 3|4) uint8 array; an alpha channel is multiplied
        into the mask.
    mask
        (H, W) uint8 or bool; 255 keeps the image, 0 shows the background.
    background
        An RGB colour (tuple of 3 ints, a grey level int, a colour name or ``"#rrggbb"``),
        an image of the same size (path, PIL image, array), or ``"blur"`` for the image
        itself blurred.
    fit
        ``"cover"`` scales a background image of another size to cover the frame and
        crops the centre; ``None`` (default) refuses a size mismatch.
    blur_radius
        Gaussian radius in pixels for ``background="blur"``.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 RGB.

    Raises
    ------
    ShapeMismatchError
        Mask, image or (without ``fit="cover"``) background differ in (H, W).
    ValueError
        A background that is none of the accepted kinds.

    Examples
    --------
    >>> img = np.full((1, 3, 3), 255, np.uint8)
    >>> replace_background(img, np.array([[0, 51, 255]], np.uint8), "black")[..., 1]
    array([[  0,  51, 255]], dtype=uint8)
    """
    if fit not in (None, "cover"):
        raise ValueError(f"fit must be None or 'cover', got {fit!r}.")
    rgb, alpha = _rgb_and_alpha(image, mask)
    bg = _background_array(background, rgb, fit=fit, blur_radius=blur_radius)
    return _blend(rgb, bg, alpha)


def _edges(labels: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.bool_]:
    """Labelled pixels with a 4-neighbour of another label, grown to ``width`` pixels."""
    edge = np.zeros(labels.shape, np.bool_)
    dh = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    dv = labels[1:] != labels[:-1]
    edge[1:] |= dv
    edge[:-1] |= dv
    if width > 1:
        from scipy import ndimage as ndi

        edge = ndi.binary_dilation(edge, np.ones((3, 3), bool), iterations=width - 1)
    edge &= labels > 0
    return edge


def overlay(
    image: Any,
    masks: Any,
    *,
    alpha: float = 0.5,
    outline: bool | int = True,
    classes: Sequence[str] | None = None,
    priority: Sequence[str] | None = LABEL_PRIORITY,
    min_value: int = 128,
) -> npt.NDArray[np.uint8]:
    """A review picture: each class painted over the image in its palette colour.

    Parameters
    ----------
    image
        Path, PIL image or (H, W, 3|4) uint8 array.
    masks
        A MaskSet, ``{name: mask}`` mapping or (C, H, W) stack (turned into labels with
        :func:`~clothseg_tools.label_map`, so overlaps show the class that wins there),
        or an (H, W) integer label map (0 = background, ``i`` = ``classes[i - 1]``).
    alpha
        Opacity of the colour fill, 0..1.
    outline
        Draw each region's boundary in full colour: ``True`` for 1 pixel, an int for
        that many pixels, ``False`` for none.
    classes
        Class names for the labels. For masks: which classes to draw (default all). For
        a label map: the names of labels 1, 2, ... (default
        :data:`~clothseg_tools.CLASSES`, the label PNG convention).
    priority
        For masks: where classes overlap, the earliest here is drawn. The default,
        :data:`~clothseg_tools.classes.LABEL_PRIORITY`, shows ``tops`` rather than the
        ``clothes`` that contains it and ``face`` rather than ``head``; ``None`` uses
        ``classes`` order.
    min_value
        Mask value at which a class covers a pixel.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 RGB.

    Examples
    --------
    >>> img = np.zeros((1, 3, 3), np.uint8)
    >>> labels = np.array([[0, 5, 5]], np.uint8)  # 5 = "tops" in CLASSES
    >>> overlay(img, labels, alpha=1.0, outline=False)[0, :, 0]
    array([  0, 214, 214], dtype=uint8)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha!r}.")
    rgb = np.ascontiguousarray(as_image(image)[..., :3])
    if isinstance(masks, Mapping) and not isinstance(masks, MaskSet):
        masks = MaskSet(masks)
    if isinstance(masks, MaskSet) or np.ndim(masks) != 2:
        _, set_names = _masks_stack(masks)
        names = list(set_names if classes is None else classes)
        labels = label_map(masks, names, priority=priority, min_value=min_value)
    else:
        labels = np.asarray(masks)
        names = list(CLASSES if classes is None else classes)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"A label map must be an integer array, got dtype {labels.dtype}.")
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) > len(names)):
            raise ValueError(
                f"labels hold values {int(labels.min())}..{int(labels.max())} but only "
                f"{len(names)} class names were given; pass classes=[...] for every label."
            )
    check_same_shape(labels.shape, rgb.shape, what="labels", other="image")
    palette = np.zeros((len(names) + 1, 3), np.uint8)
    palette[1:] = [class_color(n) for n in names] if names else np.zeros((0, 3))
    colour = palette[labels]
    weight = np.where(labels > 0, np.uint8(round(alpha * 255)), np.uint8(0))
    width = int(outline)
    if width > 0:
        weight[_edges(labels, width)] = 255
    return _blend(colour, rgb, weight)


def estimate_foreground(
    image: Any,
    alpha: Any,
    *,
    method: str = "multilevel",
    radius: int = 90,
    refine_radius: int = 6,
) -> npt.NDArray[np.uint8]:
    """Foreground colours without the old background bleeding through soft edges.

    A soft pixel's colour mixes the subject's colour F with the background's B:
    ``I = a F + (1 - a) B``. This recovers F, so a cutout can be put on a new
    background without a fringe of the old one (colour decontamination).

    Parameters
    ----------
    image
        Path, PIL image or (H, W, 3|4) uint8 array (an alpha channel is ignored).
    alpha
        (H, W) uint8 or bool matte.
    method
        ``"multilevel"`` (default): multi-level foreground estimation (Germer et al.,
        ICPR 2020; the method of pymatting's ``estimate_foreground_ml``), vectorized
        with red-black sweeps restricted to where alpha varies. ``"blur_fusion"``:
        two-pass blur-fusion (Forte & Pitié, ICIP 2021), box filters only; rougher
        in wide soft regions.
    radius, refine_radius
        Box sizes in pixels of the two blur-fusion passes (``"blur_fusion"`` only).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 foreground colours. Where ``alpha`` is 255 they are the
        image's colours; where it is 0 they extend the nearby foreground.

    Raises
    ------
    ShapeMismatchError
        Image and alpha differ in (H, W).
    ValueError
        An unknown method or a radius below 1.

    Examples
    --------
    >>> fg, bg = np.array([200, 40, 40]), np.array([0, 0, 255])
    >>> a = np.zeros((5, 10), np.uint8); a[:, 4:] = 255; a[:, 4] = 128
    >>> img = np.rint(fg * (a[..., None] / 255) + bg * (1 - a[..., None] / 255)).astype(np.uint8)
    >>> err = lambda x: int(np.abs(x[2, 4] - fg).max())  # worst channel error, soft column
    >>> err(img), err(estimate_foreground(img, a))
    (107, 0)
    """

    if method not in ("multilevel", "blur_fusion"):
        raise ValueError(f"method must be 'multilevel' or 'blur_fusion', got {method!r}.")
    if radius < 1 or refine_radius < 1:
        raise ValueError(f"radius and refine_radius must be >= 1, got {radius}, {refine_radius}.")
    rgb = np.ascontiguousarray(as_image(image)[..., :3])
    a8 = as_mask(alpha)
    check_same_shape(a8.shape, rgb.shape, what="alpha", other="image")
    if rgb.size == 0:
        return rgb.copy()
    if method == "blur_fusion":
        return _foreground.blur_fusion(
            rgb, a8, radius=int(radius), refine_radius=int(refine_radius)
        )
    return _foreground.multilevel(rgb, a8)
