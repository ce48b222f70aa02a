"""``tryon_mask(..., preset="ootd")``: the source and keypoints in, the reference's mask
out at the source's size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import KeypointError
from ..masks import MaskSet
from ..parsing import Parsing
from . import _ootd as R
from . import _ootd_sources as S

__all__ = ["ootd_mask"]


def _pair(size: Any) -> tuple[int, int]:
    """A (width, height) working size, checked."""
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(
            f"work_size for the ootd preset must be (width, height), got {size!r}."
        ) from None
    if min(w, h) < 16:
        raise ValueError(f"work_size must be at least 16 x 16 px, got {w} x {h}.")
    return w, h


def _label_map(
    source: Any,
    points: npt.NDArray[np.float64] | None,
    work_size: tuple[int, int],
    level: int,
) -> tuple[npt.NDArray[np.int16], bool]:
    """The ootd label map at the working size, and whether the neck rule applies."""
    if isinstance(source, MaskSet):
        return S.labels_from_masks(source, points, work_size, level), True
    if isinstance(source, Parsing):
        labelset = source.labelset
        return S.labels_from_parsing(
            source.labels, labelset.name, labelset.labels, points, work_size
        )
    raise TypeError(
        "The ootd preset reads a Parsing (any label set) or a MaskSet, got "
        f"{type(source).__name__}; wrap a label array as Parsing(labels, 'ootd')."
    )


def source_shape(source: Any) -> tuple[int, int]:
    """(H, W) of a MaskSet or a Parsing."""
    shape = source.shape
    return int(shape[0]), int(shape[1])


def ootd_mask(
    source: Any,
    category: str,
    *,
    keypoints: Mapping[str, Any] | None = None,
    model_type: str = "hd",
    keypoint_size: tuple[int, int] | None = None,
    work_size: tuple[int, int] | None = None,
    level: int = 128,
) -> npt.NDArray[np.bool_]:
    """OOTDiffusion's agnostic mask at the source's size (see ``tryon_mask``)."""
    if model_type not in R.ARM_WIDTH:
        raise ValueError(f"model_type must be 'hd' or 'dc', got {model_type!r}.")
    size = work_size or R.WORK_SIZE
    shape = source_shape(source)
    points = S.work_points(keypoints, shape, size, keypoint_size=keypoint_size)
    if points is None and category != "lower_body":
        raise KeypointError(
            f"The ootd preset draws the arms from pose keypoints for {category}; pass "
            "keypoints (names to (x, y) pixels, or an OpenPose dict). The local engine "
            "returns them (EngineOutput.keypoints, saved in result.json)."
        )
    labels, neck = _label_map(source, points, size, level)
    region = R.agnostic_mask(labels, category, points, model_type=model_type, neck=neck)
    return np.asarray(R.resize_nearest(region, (shape[1], shape[0])), bool)
