"""The mediapipe models of the local engine: loading, reuse per thread, and running them.

Every model ships inside the ``mediapipe`` wheel (``mediapipe==0.10.21``, the newest
release that still carries the "solutions" graphs and their ``.tflite`` files), so
nothing is downloaded at run time. Four models run on each image:

- pose landmarks with a person segmentation mask (33 body points),
- the full-range face detector, to count the people in the picture,
- the face mesh (478 points) on a crop around the head the pose found,
- selfie segmentation, whose foreground includes objects the person holds.

mediapipe graphs are not safe to share between threads, so each thread gets its own
set, built on first use and kept for the life of the thread (:func:`thread_models`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "FACE_OVAL",
    "Observations",
    "PoseIndex",
    "ThreadModels",
    "observe",
    "release_thread_models",
    "thread_models",
]

logger = logging.getLogger("clothseg_tools")

# TensorFlow Lite and glog read these at import; setdefault keeps a user's own choice.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mediapipe as mp  # noqa: E402 - after the log-level variables above
from mediapipe.python.solutions import face_mesh_connections  # noqa: E402

FloatArray = npt.NDArray[np.float32]

# Side of the head crop the face mesh sees: its detector wants a face that fills the
# frame, and the mesh model itself runs at 192 px, so more would only cost time.
_MESH_INPUT = 320


class PoseIndex:
    """Indices of the mediapipe pose landmarks the engine uses."""

    NOSE = 0
    LEFT_EYE = 2
    RIGHT_EYE = 5
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_HAND = (17, 19, 21)  # pinky, index, thumb
    RIGHT_HAND = (18, 20, 22)
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT = 31
    RIGHT_FOOT = 32
    HEAD = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def _ordered_loop(edges: frozenset[tuple[int, int]]) -> tuple[int, ...]:
    """Walk a closed chain of landmark edges into one ordered polygon."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    start = min(neighbours)
    loop = [start]
    prev, cur = -1, start
    while True:
        nxt = next(n for n in neighbours[cur] if n != prev)
        if nxt == start:
            break
        loop.append(nxt)
        prev, cur = cur, nxt
    return tuple(loop)


#: Face-mesh landmark indices of the face oval, in polygon order.
FACE_OVAL: tuple[int, ...] = _ordered_loop(face_mesh_connections.FACEMESH_FACE_OVAL)


@dataclass(frozen=True)
class Observations:
    """What the models saw in one working-resolution image.

    Attributes
    ----------
    person : ndarray
        (h, w) float32 in 0..1: the pose model's segmentation of the person it tracks.
    foreground : ndarray
        (h, w) float32 in 0..1: selfie segmentation (people and what they hold).
    pose : ndarray or None
        (33, 3) float32: x, y in working pixels and the landmark's visibility; None
        when no person was found.
    face : ndarray or None
        (478, 2) float32 face-mesh points in working pixels; None when the mesh
        found no face.
    face_boxes : ndarray
        (n, 4) float32 boxes (x0, y0, x1, y1) of the faces the full-range face
        detector found, largest first: roughly, the people in the picture.
    """

    person: FloatArray
    foreground: FloatArray
    pose: FloatArray | None
    face: FloatArray | None
    face_boxes: FloatArray

    @property
    def faces_found(self) -> int:
        """How many faces the detector found."""
        return int(self.face_boxes.shape[0])


class ThreadModels:
    """One thread's set of mediapipe graphs (use :func:`thread_models`)."""

    def __init__(self) -> None:
        solutions: Any = mp.solutions
        with _stderr_to_log("loading the local engine's models"):
            self.pose = solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,  # the only pose model the wheel carries
                enable_segmentation=True,
                min_detection_confidence=0.5,
            )
            self.face_mesh = solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=0.3,
            )
            self.face_detection = solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.5
            )
            self.selfie = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            self._open: tuple[Any, ...] = (
                self.pose,
                self.face_mesh,
                self.face_detection,
                self.selfie,
            )
            # The graphs finish starting (and log) on their first frame: run one now,
            # on a real photo, so that the pose and face-mesh paths both start here.
            self._warm_up()

    def _warm_up(self) -> None:
        import skimage.data

        photo = np.ascontiguousarray(skimage.data.astronaut()[::2, ::2])
        self.pose.process(photo)
        self.face_mesh.process(photo)
        self.face_detection.process(photo)
        self.selfie.process(photo)

    def close(self) -> None:
        """Release the graphs (once; later calls do nothing)."""
        models, self._open = self._open, ()
        for model in models:
            model.close()

    def __del__(self) -> None:
        # mediapipe graphs hold their Python callbacks from C++, so the garbage
        # collector never frees them: without this, every thread that ends leaks its
        # graphs' worker threads. A thread's models are dropped when the thread ends.
        # Not at interpreter exit: closing a graph then can deadlock, and the process
        # is going away anyway.
        if sys.is_finalizing():
            return
        with contextlib.suppress(Exception):
            self.close()


_local = threading.local()
_stderr_lock = threading.Lock()


def thread_models() -> ThreadModels:
    """The calling thread's models, loaded on first use and then reused.

    Examples
    --------
    >>> thread_models() is thread_models()
    True
    """
    models: ThreadModels | None = getattr(_local, "models", None)
    if models is None:
        models = ThreadModels()
        _local.models = models
    return models


def release_thread_models() -> None:
    """Close the calling thread's models (they are rebuilt on next use)."""
    models: ThreadModels | None = getattr(_local, "models", None)
    if models is not None:
        _local.models = None
        models.close()


@contextlib.contextmanager
def _stderr_to_log(what: str) -> Iterator[None]:
    """Send what native code writes to stderr while ``what`` runs to the debug log.

    TensorFlow Lite and absl write start-up chatter straight to file descriptor 2,
    where no Python setting reaches it. The redirection lasts only while a thread's
    models start (once per thread); the captured text is logged, not dropped.
    """
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no usable stderr: nothing to protect
            yield
            return
        with tempfile.TemporaryFile() as sink:
            try:
                os.dup2(sink.fileno(), 2)
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace").strip()
        if text:
            logger.debug("native output while %s:\n%s", what, text)


def observe(
    image: npt.NDArray[np.uint8], work: npt.NDArray[np.uint8], *, mirror: bool = False
) -> Observations:
    """Run the models on one image.

    Parameters
    ----------
    image
        The full-resolution (H, W, 3) uint8 RGB image; the face mesh runs on a crop
        of it around the head, so small faces in large photos keep their detail.
    work
        The same image at working resolution (h, w, 3); pose, face detection and
        selfie segmentation run on it, and every coordinate returned is in it.
    mirror
        Also segment the mirrored picture and average the two person masks (and
        the two foregrounds): the models' errors are not symmetric, so the average
        is steadier. Costs a second pose and selfie run.

    Returns
    -------
    Observations
    """
    models = thread_models()
    h, w = work.shape[:2]
    work = np.ascontiguousarray(work)
    pose_out = models.pose.process(work)
    foreground = np.asarray(models.selfie.process(work).segmentation_mask, dtype=np.float32)
    boxes = _face_boxes(models.face_detection.process(work).detections, w, h)
    if pose_out.pose_landmarks is None or pose_out.segmentation_mask is None:
        return Observations(np.zeros((h, w), np.float32), foreground, None, None, boxes)
    pose = np.array(
        [(p.x * w, p.y * h, p.visibility) for p in pose_out.pose_landmarks.landmark],
        dtype=np.float32,
    )
    person = np.asarray(pose_out.segmentation_mask, dtype=np.float32)
    if mirror:
        person, foreground = _mirror_average(models, work, person, foreground)
    scale = np.array([image.shape[1] / w, image.shape[0] / h], dtype=np.float32)
    face = _face_mesh(models, image, pose, scale=scale)
    if face is None:
        # a face the head crop missed may still be found in the whole picture
        face = _face_mesh_points(models, work)
    return Observations(person, foreground, pose, face, boxes)


def _mirror_average(
    models: ThreadModels, work: npt.NDArray[np.uint8], person: FloatArray, foreground: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Average the person and foreground masks with those of the mirrored picture.

    With several people the mirrored run may pick someone else: its person mask is
    used only when it mostly overlaps the first one.
    """
    flipped = np.ascontiguousarray(work[:, ::-1])
    out = models.pose.process(flipped)
    fg = np.asarray(models.selfie.process(flipped).segmentation_mask, np.float32)[:, ::-1]
    foreground = (foreground + fg) * np.float32(0.5)
    if out.segmentation_mask is None:
        return person, foreground
    other = np.asarray(out.segmentation_mask, np.float32)[:, ::-1]
    a, b = person > 0.5, other > 0.5
    union = int((a | b).sum())
    if union and (a & b).sum() / union > 0.7:
        person = (person + other) * np.float32(0.5)
    return person, foreground


def _face_boxes(detections: Any, w: int, h: int) -> FloatArray:
    """(n, 4) pixel boxes of face detections, largest first."""
    boxes = []
    for det in detections or ():
        rel = det.location_data.relative_bounding_box
        x0, y0 = rel.xmin * w, rel.ymin * h
        boxes.append((x0, y0, x0 + rel.width * w, y0 + rel.height * h))
    arr = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    area = (arr[:, 2] - arr[:, 0]) * (arr[:, 3] - arr[:, 1])
    return arr[np.argsort(-area, kind="stable")]


def _face_mesh(
    models: ThreadModels,
    image: npt.NDArray[np.uint8],
    pose: FloatArray,
    *,
    scale: FloatArray,
) -> FloatArray | None:
    """Face mesh on a square crop of ``image`` around the pose's head points.

    The mesh's own detector only finds faces that fill a good part of its input, so
    the crop is about three head-widths wide. Returns points in working pixels.
    """
    head = pose[list(PoseIndex.HEAD), :2] * scale
    ear_span = float(np.linalg.norm(head[7] - head[8]))
    eye_span = float(np.linalg.norm(head[2] - head[5]))
    size = max(ear_span * 3.0, eye_span * 6.0, 32.0)
    cx, cy = head.mean(axis=0)
    H, W = image.shape[:2]
    x0, y0 = int(max(cx - size / 2, 0)), int(max(cy - size / 2, 0))
    x1, y1 = int(min(cx + size / 2, W)), int(min(cy + size / 2, H))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    crop = image[y0:y1, x0:x1]
    zoom = _MESH_INPUT / max(crop.shape[:2])
    size_out = (max(round(crop.shape[1] * zoom), 1), max(round(crop.shape[0] * zoom), 1))
    resized = np.asarray(
        cv2.resize(crop, size_out, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR),
        np.uint8,
    )
    points = _face_mesh_points(models, resized)
    if points is None:
        return None
    points *= np.array([crop.shape[1] / size_out[0], crop.shape[0] / size_out[1]], np.float32)
    points += np.array([x0, y0], np.float32)
    return points / scale


def _face_mesh_points(models: ThreadModels, rgb: npt.NDArray[np.uint8]) -> FloatArray | None:
    """The face mesh's 478 points in ``rgb``'s pixels, or None."""
    out = models.face_mesh.process(np.ascontiguousarray(rgb))
    if not out.multi_face_landmarks:
        return None
    h, w = rgb.shape[:2]
    marks = out.multi_face_landmarks[0].landmark
    return np.array([(p.x * w, p.y * h) for p in marks], dtype=np.float32)
