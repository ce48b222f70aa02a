"""The try-on mask job over saved result folders: one mask PNG per folder.

Follows the post-processing conventions of :mod:`~clothseg_tools.batch.post` (output
beside the masks or under ``--out``, a manifest per output name, resume while the
result's ``result.json`` and the options are unchanged). The pose keypoints come
from the result (``result.json``, written by engines with a pose such as the local
engine); the ``ootd`` preset needs them for ``upper_body`` and ``dresses``, and reads
the result's parsing map (``parsing.png``, from the onnx engine or ``clothseg
import``) when it has one, its twelve classes otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..engines import get_engine
from ..errors import KeypointError
from ..masks import MaskSet
from ..parsing import Parsing
from ..result import SegmentationResult
from ..tryon import CATEGORIES, tryon_mask
from .discover import BatchItem
from .post import image_job, load_photo, result_masks
from .runner import Job

__all__ = ["PRESETS", "tryon_job", "tryon_name"]

#: The try-on presets, as ``tryon_mask(preset=...)`` spells them.
PRESETS: tuple[str, ...] = ("default", "ootd")


def tryon_name(category: str, preset: str = "default", model_type: str = "hd") -> str:
    """The default output file name: one per category, preset and model type.

    Examples
    --------
    >>> tryon_name("upper_body"), tryon_name("dresses", "ootd", "dc")
    ('tryon_upper_body.png', 'tryon_dresses_ootd_dc.png')
    """
    if preset == "default":
        return f"tryon_{category}.png"
    return f"tryon_{category}_{preset}_{model_type}.png"


def tryon_job(
    out_dir: str | os.PathLike[str],
    *,
    category: str,
    preset: str = "default",
    model_type: str = "hd",
    name: str | None = None,
    detect_pose: bool = False,
) -> Job:
    """A try-on mask (0 or 255) per result folder.

    Parameters
    ----------
    out_dir
        Output root.
    category
        ``"upper_body"``, ``"lower_body"`` or ``"dresses"``.
    preset
        ``"default"`` or ``"ootd"`` (see :func:`~clothseg_tools.tryon_mask`).
    model_type
        ``"hd"`` or ``"dc"``, for the ``ootd`` preset.
    name
        Output file name (default :func:`tryon_name`).
    detect_pose
        When a result has no keypoints and the preset needs them, find them in its
        photo with the local engine's pose model (needs the ``[local]`` extra).

    Raises
    ------
    ValueError
        Unknown category, preset or model type.
    """
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}.")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}.")
    if model_type not in ("hd", "dc"):
        raise ValueError(f"model_type must be 'hd' or 'dc', got {model_type!r}.")
    filename = name or tryon_name(category, preset, model_type)

    def produce(item: BatchItem, result: SegmentationResult) -> npt.NDArray[np.uint8]:
        keypoints = result.keypoints
        if preset == "ootd" and category != "lower_body" and not keypoints:
            keypoints = _photo_keypoints(item, result) if detect_pose else None
            if not keypoints:
                found = " and none were found in its photo" if detect_pose else ""
                raise KeypointError(
                    f"{item.source} has no pose keypoints{found}, which the ootd preset "
                    f"needs for {category}; segment the photo with the local engine "
                    "(clothseg segment --engine local), which saves them, or pass "
                    "--detect-pose."
                )
        # the ootd rules read the fine label map when the engine made one (onnx, import)
        source: MaskSet | Parsing = result_masks(result)
        if preset == "ootd" and result.parsing is not None:
            source = result.parsing
        mask = tryon_mask(
            source,
            category,
            keypoints=keypoints,
            preset=preset,
            model_type=model_type,
        )
        return mask.astype(np.uint8) * np.uint8(255)

    options: dict[str, object] = {"category": category, "preset": preset}
    if preset == "ootd":
        options["model_type"] = model_type
        options["detect_pose"] = detect_pose
    job = image_job("tryon", produce, out_dir, name=filename, options=options)
    # one manifest per output file: masks of other categories or presets are other files
    return dataclasses.replace(
        job, manifest_name=f"tryon-{Path(filename).stem.removeprefix('tryon_')}"
    )


def _photo_keypoints(
    item: BatchItem, result: SegmentationResult
) -> dict[str, tuple[float, float]] | None:
    """The pose keypoints of the result's photo, from the local engine's pose model."""
    get_engine("local")  # the typed error naming the [local] extra when it is missing
    # lazy: the local engine's models (mediapipe) load only when a pose is wanted
    from ..engines.local.engine import detect_keypoints

    return detect_keypoints(load_photo(result, folder=item.source))
