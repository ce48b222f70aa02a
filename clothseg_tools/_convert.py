"""All dtype and argument conversion of the numpy core, in one place.

Public functions accept masks as uint8 (0..255, soft) or bool arrays and images as a
path, a PIL image or an (H, W, 3|4) uint8 array. They convert with the helpers here so
that every function says the same thing about the same mistake.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from .errors import ShapeMismatchError
from .inputs import read_image, scale_deep_image

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "ImageLike",
    "MaskLike",
    "as_bool",
    "as_image",
    "as_mask",
    "check_same_shape",
]

MaskLike = Union["npt.NDArray[np.uint8]", "npt.NDArray[np.bool_]"]
ImageLike = Union[str, "os.PathLike[str]", "PILImage.Image", "npt.NDArray[np.uint8]"]


def as_mask(mask: Any, *, name: str = "mask") -> npt.NDArray[np.uint8]:
    """Return ``mask`` as an (H, W) uint8 array: bool becomes 0/255, uint8 is not copied.

    Raises
    ------
    ValueError
        For other dtypes or a number of dimensions other than 2.

    Examples
    --------
    >>> as_mask(np.array([[True, False]]))
    array([[255,   0]], dtype=uint8)
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (H, W) array, but got shape {arr.shape}. "
            "Pass one mask at a time, or a MaskSet for several."
        )
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        # view as uint8 then scale: one pass, no float temporaries
        out = arr.view(np.uint8) * np.uint8(255)
        return out
    raise ValueError(
        f"{name} must be uint8 (0..255) or bool, but got dtype {arr.dtype}. "
        "Convert with (mask > 0.5).astype(bool) or np.clip(mask * 255, 0, 255).astype(np.uint8)."
    )


def as_bool(mask: Any, *, level: int = 128, name: str = "mask") -> npt.NDArray[np.bool_]:
    """Return ``mask`` as an (H, W) bool array; uint8 masks are ``>= level``.

    Examples
    --------
    >>> as_bool(np.array([[0, 127, 128, 255]], dtype=np.uint8))
    array([[False, False,  True,  True]])
    """
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (H, W) array, but got shape {arr.shape}.")
        return arr
    return as_mask(arr, name=name) >= level


def as_image(image: Any, *, name: str = "image", allow_alpha: bool = True) -> npt.NDArray[np.uint8]:
    """Return an image as an (H, W, 3) or (H, W, 4) uint8 array.

    Accepts a path, a PIL image, or an array (grey (H, W) arrays become RGB). PIL
    images in other modes are converted to RGB (or RGBA when they carry alpha).

    Examples
    --------
    >>> as_image(np.zeros((2, 3), np.uint8)).shape
    (2, 3, 3)
    """
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        image = read_image(image)
    if isinstance(image, Image.Image):
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):
            # Pillow's own conversion clips 16-bit and float data to 255; scale it
            # the way masks are scaled instead.
            image = Image.fromarray(scale_deep_image(image))
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        mode = "RGBA" if (has_alpha and allow_alpha) else "RGB"
        if image.mode != mode:
            image = image.convert(mode)
        return np.asarray(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 array, but got dtype {arr.dtype}. "
            "Scale floats with np.clip(img * 255, 0, 255).astype(np.uint8)."
        )
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in ((3, 4) if allow_alpha else (3,)):
        allowed = "(H, W, 3) or (H, W, 4)" if allow_alpha else "(H, W, 3)"
        raise ValueError(f"{name} must have shape {allowed}, but got shape {arr.shape}.")
    return arr


def check_same_shape(
    a: tuple[int, ...], b: tuple[int, ...], *, what: str = "mask", other: str = "image"
) -> None:
    """Raise :class:`ShapeMismatchError` naming both shapes when ``a[:2] != b[:2]``.

    Nothing in the library resizes silently; this is the one message users see.

    Examples
    --------
    >>> check_same_shape((4, 5), (4, 5, 3))
    >>> check_same_shape((4, 5), (5, 4, 3))
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.ShapeMismatchError: mask has shape (4, 5) but image has shape (5, 4); ...
    """
    if tuple(a[:2]) != tuple(b[:2]):
        raise ShapeMismatchError(
            f"{what} has shape {tuple(a[:2])} but {other} has shape {tuple(b[:2])}; "
            "they must match. Resize one with clothseg_tools.resize_mask first."
        )
