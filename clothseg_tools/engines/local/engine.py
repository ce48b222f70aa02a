"""``LocalEngine``: all twelve classes offline, from the mediapipe models in the wheel.

The work happens at two resolutions. The models and the parsing logic run on a copy
of the photo whose long side is the *working size* (512 pixels by default). Only the
final soft masks are made at the source resolution, by the fast guided filter
(:mod:`.refine`), which lets each mask's edge follow the photo.

The API's effort options spend more time where it helps:

- ``quality=2``: a larger working size (768), and the person and foreground masks
  averaged with those of the mirrored picture (a second model run);
- ``detail_mode=2``: the guided filter follows colour edges, not only grey ones, and
  refines in two steps (to twice the working size, then to full size).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from skimage.measure import label

from ..._version import __version__
from ...classes import CLASSES
from ...errors import ConfigurationError
from ...masks import MaskSet
from .._parts import PART_CLASSES, split_parts
from ..base import Engine, EngineOutput
from .models import observe, release_thread_models, thread_models
from .parsing import LEAVES, Parsing, parse
from .refine import GuidedUpsampler, to_uint8

__all__ = ["CLASS_LEAVES", "LocalEngine", "detect_keypoints", "pose_keypoints", "render"]

logger = logging.getLogger("clothseg_tools")

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

#: Each API class as the sum of the engine's leaves.
CLASS_LEAVES: dict[str, tuple[str, ...]] = {
    "hair": ("hair",),
    "face": ("face",),
    "head": ("face", "hair"),
    "clothes": ("tops", "bottoms", "dress"),
    "tops": ("tops",),
    "bottoms": ("bottoms",),
    "dress": ("dress",),
    "bag": ("bag",),
    "shoes": ("shoes",),
    "acc": ("acc",),
    "body": ("body",),
    "others": ("others",),
}

# Guided-filter regularisation for a guide in 0..1: edges with a local standard
# deviation well above sqrt(eps) (about 6 grey levels of 255) are followed.
_EPS = 5e-4


class LocalEngine(Engine):
    """Offline segmentation of the most prominent person into the twelve API classes.

    Parameters
    ----------
    working_size
        Long side, in pixels, at which the models and the parsing logic run.
    fine_working_size
        The same for ``quality=2`` (see the module notes for what else it does).

    Raises
    ------
    ConfigurationError
        A working size outside 128..2048.

    Notes
    -----
    Models are loaded once per thread and kept (see :mod:`.models`), so one engine
    may serve several worker threads. :meth:`last_timings` gives the calling thread's
    model and post-processing seconds of its latest image.

    Examples
    --------
    >>> import numpy as np
    >>> engine = LocalEngine()
    >>> out = engine.segment(np.zeros((64, 48, 3), np.uint8), classes=["tops", "face"])
    >>> out.masks.classes, out.masks.shape, out.notes
    (('tops', 'face'), (64, 48), ('no person found; every mask is empty',))
    """

    name = "local"

    def __init__(self, *, working_size: int = 512, fine_working_size: int = 768) -> None:
        for key, value in (
            ("working_size", working_size),
            ("fine_working_size", fine_working_size),
        ):
            if not isinstance(value, int) or not 128 <= value <= 2048:
                raise ConfigurationError(
                    f"{key} must be an integer from 128 to 2048 pixels, got {value!r}."
                )
        self.working_size = working_size
        self.fine_working_size = fine_working_size
        self._timings = threading.local()

    def __repr__(self) -> str:
        return (
            f"LocalEngine(working_size={self.working_size}, "
            f"fine_working_size={self.fine_working_size})"
        )

    def identity(self) -> dict[str, Any]:
        """This package's and MediaPipe's versions and the working sizes: what decides
        the masks besides the photo and the API options.

        A batch records it with every item, so a run resumed after an upgrade redoes
        the items the older engine made and the dataset comes from one engine.

        Examples
        --------
        >>> sorted(LocalEngine().identity())
        ['fine_working_size', 'mediapipe', 'version', 'working_size']
        """
        return {
            "version": __version__,
            "mediapipe": metadata.version("mediapipe"),
            "working_size": self.working_size,
            "fine_working_size": self.fine_working_size,
        }

    def last_timings(self) -> dict[str, float]:
        """Seconds spent on the calling thread's latest image: ``model`` and ``post``."""
        return dict(getattr(self._timings, "value", {}))

    def _segment(
        self,
        image: UInt8Array,
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        unknown = [c for c in classes if c not in CLASS_LEAVES]
        if unknown:
            raise ValueError(
                f"The local engine has no class {unknown}; choose from {', '.join(CLASSES)}."
            )
        start = time.perf_counter()
        size = self.fine_working_size if quality >= 2 else self.working_size
        work = _downscale(image, size)
        obs = observe(image, work, mirror=quality >= 2)
        models_done = time.perf_counter()
        parsing = parse(work, obs)
        notes = list(parsing.notes)
        if obs.pose is not None and obs.faces_found > 1:
            notes.append(f"{obs.faces_found} people found; segmented the most prominent one only")
        masks, parts = render(image, work, parsing, classes, detail=detail_mode >= 2)
        # the pose as the parsing trusted it: a joint dragged off the person is unseen
        keypoints = pose_keypoints(parsing.pose, work.shape[:2], image.shape[:2])
        done = time.perf_counter()
        self._timings.value = {"model": models_done - start, "post": done - models_done}
        logger.debug(
            "local engine: %dx%d image, model %.3f s, post %.3f s, details %s",
            image.shape[1],
            image.shape[0],
            models_done - start,
            done - models_done,
            parsing.details,
        )
        return EngineOutput(masks, parts, tuple(notes), keypoints)

    def close(self) -> None:
        """Release the calling thread's models (they are reloaded on next use)."""
        release_thread_models()


# A landmark the pose model reports with less visibility than this is a guess (an
# occluded or off-picture joint), which try-on rules must treat as missing.
_SEEN = 0.5


def pose_keypoints(
    pose: FloatArray | None, work_shape: tuple[int, ...], image_shape: tuple[int, ...]
) -> dict[str, tuple[float, float]] | None:
    """The pose landmarks the model saw, by MediaPipe name, in source-image pixels.

    Landmarks below :data:`_SEEN` visibility or outside the picture are left out.

    Examples
    --------
    >>> pose = np.zeros((33, 3), np.float32); pose[0] = (10, 20, 0.9); pose[15] = (5, 5, 0.1)
    >>> pose_keypoints(pose, (100, 50), (200, 100))
    {'nose': (20.0, 40.0)}
    """
    if pose is None:
        return None
    from mediapipe.python.solutions.pose import PoseLandmark

    sy = image_shape[0] / work_shape[0]
    sx = image_shape[1] / work_shape[1]
    h, w = image_shape[0], image_shape[1]
    out: dict[str, tuple[float, float]] = {}
    for mark in PoseLandmark:
        x, y, seen = (float(v) for v in pose[mark.value])
        x, y = x * sx, y * sy
        if seen >= _SEEN and 0 <= x < w and 0 <= y < h:
            out[mark.name.lower()] = (round(x, 2), round(y, 2))
    return out


def detect_keypoints(
    image: UInt8Array, *, size: int = 512
) -> dict[str, tuple[float, float]] | None:
    """Only the pose: the keypoints :class:`LocalEngine` would return for ``image``.

    For results made without a pose (the service, an ONNX parser) that a try-on rule
    needs keypoints for. Runs the pose model alone, on a copy whose long side is at
    most ``size``.

    Returns
    -------
    dict or None
        As ``EngineOutput.keypoints``; ``None`` when no person is found.
    """
    work = _downscale(image, size)
    out = thread_models().pose.process(work)
    if out.pose_landmarks is None:
        return None
    h, w = work.shape[:2]
    pose = np.array([(p.x * w, p.y * h, p.visibility) for p in out.pose_landmarks.landmark],
                    dtype=np.float32)  # fmt: skip
    return pose_keypoints(pose, work.shape[:2], image.shape[:2])


def _downscale(image: UInt8Array, size: int) -> UInt8Array:
    """``image`` with its long side at most ``size`` (area-averaged), else itself."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(image)
    new = (max(round(w * scale), 1), max(round(h * scale), 1))
    return np.asarray(cv2.resize(image, new, interpolation=cv2.INTER_AREA), np.uint8)


def _guide(rgb: UInt8Array, *, colour: bool) -> FloatArray:
    """Guide image in 0..1: grey, or RGB when ``colour``."""
    src = rgb if colour else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = src.astype(np.float32)
    out *= np.float32(1 / 255)
    return out


def render(
    image: UInt8Array,
    work: UInt8Array,
    parsing: Parsing,
    classes: Sequence[str],
    *,
    detail: bool = False,
) -> tuple[MaskSet, dict[str, UInt8Array]]:
    """Full-resolution soft masks of ``classes`` and per-garment parts.

    Parameters
    ----------
    image
        The source (H, W, 3) uint8 image.
    work
        The working-resolution copy the parsing ran on.
    parsing
        Its leaf confidences.
    classes
        The classes to return, in order.
    detail
        Guide by colour and refine in two steps (``detail_mode=2``).

    Returns
    -------
    masks : MaskSet
        (H, W) uint8 masks in ``classes`` order.
    parts : dict
        ``"tops_0"``... one mask per connected garment region, largest first.
    """
    H, W = image.shape[:2]
    needed = [leaf for leaf in LEAVES if any(leaf in CLASS_LEAVES[c] for c in classes)]
    full = _upsample_leaves(image, work, parsing, needed, detail=detail)
    stack = np.empty((len(classes), H, W), np.uint8)
    for i, name in enumerate(classes):
        members = CLASS_LEAVES[name]
        # saturating sums of rounded leaves: a composite is never below its members
        np.copyto(stack[i], full[members[0]])
        for leaf in members[1:]:
            cv2.add(stack[i], full[leaf], dst=stack[i])
    masks = MaskSet.from_stack(stack, list(classes))
    parts: dict[str, UInt8Array] = {}
    for name in PART_CLASSES:
        if name in classes:
            parts.update(_parts(name, masks[name], parsing.leaf(name)))
    return masks, parts


def _upsample_leaves(
    image: UInt8Array,
    work: UInt8Array,
    parsing: Parsing,
    names: Sequence[str],
    *,
    detail: bool,
) -> dict[str, UInt8Array]:
    """The named leaves at full resolution, guided by the image, as uint8."""
    H, W = image.shape[:2]
    out = {name: np.zeros((H, W), np.uint8) for name in names}
    if not names or not parsing.leaves.any():
        return out
    radius = max(2, round(max(work.shape[:2]) / 192))
    upsampler = GuidedUpsampler(_guide(work, colour=detail), radius=radius, eps=_EPS)
    leaves = [parsing.leaf(name) for name in names]
    if detail and work.shape[:2] != (H, W):
        # a first step to up to twice the working size, then a second from there
        mid_size = min(2 * max(work.shape[:2]), max(H, W))
        mid = _downscale(image, mid_size)
        guide_mid = _guide(mid, colour=True)
        mid_leaves = []
        for leaf in leaves:
            m = np.zeros(mid.shape[:2], np.float32)
            (y0, y1, x0, x1), q = upsampler.upsample(leaf, guide_mid)
            m[y0:y1, x0:x1] = np.clip(q, 0.0, 1.0)
            mid_leaves.append(m)
        leaves = mid_leaves
        upsampler = GuidedUpsampler(guide_mid, radius=radius, eps=_EPS)
    guide_full = _guide(image, colour=detail)
    for name, leaf in zip(names, leaves, strict=True):
        (y0, y1, x0, x1), q = upsampler.upsample(leaf, guide_full)
        if y1 > y0 and x1 > x0:
            out[name][y0:y1, x0:x1] = to_uint8(q)
    return out


def _parts(name: str, mask: UInt8Array, leaf: FloatArray) -> dict[str, UInt8Array]:
    """Split a garment mask into its connected regions (``tops_0``, ``tops_1``...),
    found on the working grid and weighted by the garment's confidence."""
    return split_parts(name, mask, label(leaf >= 0.5, connectivity=2), leaf)
