"""The engine interface: an image in, a MaskSet (and per-garment parts) out.

Engines know nothing of HTTP. The server runs them behind the API contract and the CLI
runs them in-process. An engine is any object with a ``name`` and a ``segment`` method
of the signature below; subclass :class:`Engine` for the shared argument checks.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools.engines.base import EngineOutput
>>> from clothseg_tools import MaskSet
>>> out = EngineOutput(MaskSet({}, shape=(2, 2)), {})
>>> masks, parts = out.masks, out.parts
>>> out.notes, out.keypoints
((), None)
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..masks import MaskSet
from ..parsing import Parsing

__all__ = ["Engine", "EngineOutput"]


class EngineOutput(NamedTuple):
    """What an engine returns for one image.

    Attributes
    ----------
    masks : MaskSet
        One soft uint8 mask per requested class, at the source image's (H, W).
    parts : dict of str to ndarray
        Per-garment instance masks (``"tops_0"``, ``"dress_0"`` ...), each (H, W)
        uint8; empty when the engine does not subdivide.
    notes : tuple of str
        Plain-language remarks a user should see (``"no person found"``, ``"2 people
        found; segmented the most prominent"``).
    keypoints : dict of str to (float, float), or None
        Pose keypoints of the person segmented, ``(x, y)`` in the source image's pixels,
        by MediaPipe / COCO name (``"left_wrist"``, ``"right_hip"`` ...), only the
        points the engine saw; ``None`` when the engine has no pose. Try-on masks
        (``tryon_mask(..., keypoints=...)``) read them.
    parsing : Parsing or None
        The fine label map (arms, legs, neck...) when the engine has one (the ``onnx``
        engine), at the image's (H, W); ``None`` otherwise.
    """

    masks: MaskSet
    parts: dict[str, npt.NDArray[np.uint8]]
    notes: tuple[str, ...] = ()
    keypoints: dict[str, tuple[float, float]] | None = None
    parsing: Parsing | None = None


class Engine(abc.ABC):
    """Base class of segmentation engines.

    Subclasses implement :meth:`_segment`; :meth:`segment` checks arguments and that
    the output has exactly the requested classes at the image's shape.
    """

    #: Registry name (``"local"``, ``"replay"``...).
    name: str = ""
    #: True for an engine that looks images up by their encoded file bytes (replay):
    #: callers holding an in-memory array then encode it for this engine only.
    keys_on_bytes: bool = False
    #: Whether one instance may serve several threads at once. Batches and the server
    #: build one engine per worker thread unless this is true.
    thread_safe: bool = False

    def segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: Sequence[str],
        detail_mode: int = 1,
        quality: int = 1,
        image_bytes: bytes | None = None,
    ) -> EngineOutput:
        """Segment one RGB image.

        Parameters
        ----------
        image
            (H, W, 3) uint8 RGB array (already decoded and size-checked).
        classes
            The classes to return, in order (see ``CLASS_TYPES``).
        detail_mode, quality
            The API options (1 or 2); engines may spend more effort on 2.
        image_bytes
            The original encoded bytes, for engines that key on them (replay).

        Returns
        -------
        EngineOutput
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"engine input must be an (H, W, 3) uint8 RGB array, got shape {image.shape} "
                f"and dtype {image.dtype}."
            )
        out = self._segment(
            image,
            classes=tuple(classes),
            detail_mode=int(detail_mode),
            quality=int(quality),
            image_bytes=image_bytes,
        )
        if out.masks.shape != image.shape[:2]:
            raise AssertionError(
                f"engine {self.name!r} returned masks of shape {out.masks.shape} for an "
                f"image of shape {image.shape[:2]}"
            )
        if out.parsing is not None and out.parsing.shape != image.shape[:2]:
            raise AssertionError(
                f"engine {self.name!r} returned a parsing of shape {out.parsing.shape} for "
                f"an image of shape {image.shape[:2]}"
            )
        return out

    @abc.abstractmethod
    def _segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        """Engine-specific work; see :meth:`segment`."""

    def identity(self) -> dict[str, Any]:
        """What, beside its name and the API options, decides this engine's output.

        Batches record it with every manifest line, so a rerun with another model in
        the same results folder redoes the items instead of keeping masks the new model
        did not make. Engines with nothing to add (the default) return an empty dict;
        values must be JSON types and the same on every machine (a model's checksum,
        not its path).

        Examples
        --------
        >>> from clothseg_tools.engines import get_engine
        >>> get_engine("replay", replay_dir=".").identity()
        {}
        """
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Release models or files the engine holds."""
