"""Shared geometry of one working-resolution image: colours, person, pose, face frame.

Everything here is in working pixels (x right, y down). The helpers are small and
vectorized; :mod:`.parsing` and :mod:`.garments` build the classes from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .models import FACE_OVAL, PoseIndex

__all__ = ["FaceFrame", "Scene", "SkinModel", "fill_polygon", "lab_image"]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

# Face-mesh landmarks: top of the forehead and bottom of the chin.
_MESH_TOP, _MESH_CHIN = 10, 152


def lab_image(rgb: npt.NDArray[np.uint8]) -> FloatArray:
    """CIE Lab (L 0..100, a and b about -100..100) of an RGB uint8 image, float32.

    Examples
    --------
    >>> lab = lab_image(np.full((1, 1, 3), 255, np.uint8))
    >>> round(float(lab[0, 0, 0]))
    100
    """
    scaled = rgb.astype(np.float32)
    scaled *= np.float32(1 / 255)
    return np.asarray(cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab), np.float32)


def fill_polygon(shape: tuple[int, int], points: npt.ArrayLike) -> FloatArray:
    """A filled, anti-aliased polygon as a float32 (h, w) mask in 0..1.

    Examples
    --------
    >>> m = fill_polygon((10, 10), [(2, 2), (7, 2), (7, 7), (2, 7)])
    >>> float(m[4, 4]), float(m[0, 0])
    (1.0, 0.0)
    """
    canvas = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(points, np.float64) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pts], (255,), lineType=cv2.LINE_AA, shift=4)
    out = canvas.astype(np.float32)
    out *= np.float32(1 / 255)
    return out


@dataclass(frozen=True)
class Scene:
    """One image at working resolution and what the pose says about the person."""

    lab: FloatArray  # (h, w, 3)
    person: FloatArray  # (h, w) 0..1
    pose: FloatArray  # (33, 3): x, y, visibility

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.person.shape[0]), int(self.person.shape[1]))

    def point(self, i: int) -> FloatArray:
        return self.pose[i, :2]

    def visible(self, i: int, level: float = 0.5) -> bool:
        """Landmark ``i`` is seen (not just guessed) and lies inside the picture."""
        x, y, vis = self.pose[i]
        h, w = self.shape
        return bool(vis >= level and -0.02 * w <= x <= 1.02 * w and -0.02 * h <= y <= 1.02 * h)

    @property
    def shoulder_width(self) -> float:
        """Shoulder-to-shoulder distance, floored at 4% of the picture's long side."""
        d = float(np.linalg.norm(self.point(11) - self.point(12)))
        return max(d, 0.04 * max(self.shape))


class SkinModel:
    """A Gaussian model of skin chroma (Lab a, b) with a lightness floor.

    Parameters
    ----------
    mean
        Mean (a, b).
    cov
        2x2 covariance of (a, b).
    min_lightness
        Pixels darker than this (L) are not skin.
    learned
        True when the model comes from the photo's own face.
    min_chroma
        Pixels greyer than this (chroma, the length of (a, b)) are not skin: white
        straps and collars are near the origin of (a, b), where a broad skin
        model may still reach.
    """

    def __init__(
        self,
        mean: npt.ArrayLike,
        cov: npt.ArrayLike,
        *,
        min_lightness: float,
        learned: bool,
        min_chroma: float = 0.0,
    ):
        self.mean = np.asarray(mean, np.float32)
        self.inv_cov = np.linalg.inv(np.asarray(cov, np.float64)).astype(np.float32)
        self.min_lightness = float(min_lightness)
        self.min_chroma = float(min_chroma)
        self.learned = learned

    #: Mahalanobis distances where skin probability starts to fall and reaches zero.
    NEAR, FAR = 2.0, 3.0

    @classmethod
    def generic(cls) -> SkinModel:
        """A broad prior over human skin tones, for photos without a visible face."""
        return cls(
            (14.0, 18.0),
            ((36.0, 10.0), (10.0, 64.0)),
            min_lightness=15.0,
            learned=False,
            min_chroma=6.0,
        )

    @classmethod
    def from_pixels(cls, lab: FloatArray) -> SkinModel | None:
        """Learn the model from (n, 3) Lab samples of a face; None if too few.

        Eyes, brows and lips are a minority of a face: the model keeps the 70% of
        samples closest to the median chroma, and widens that trimmed spread back.
        """
        if lab.shape[0] < 40:
            return None
        ab = lab[:, 1:].astype(np.float64)
        median = np.median(ab, axis=0)
        dist = np.linalg.norm(ab - median, axis=1)
        core = ab[dist <= np.quantile(dist, 0.7)]
        # trimming to 70% shrinks a Gaussian's variance about 2x; the floor keeps a
        # flat-lit face from giving a model too narrow to accept its own neck
        cov = np.cov(core, rowvar=False) * 2.0 + np.eye(2) * 4.0
        lightness = lab[:, 0]
        min_l = max(float(np.quantile(lightness, 0.05)) * 0.45, 8.0)
        # skin keeps a good part of its colour in shade; white and grey cloth do not
        min_c = max(0.5 * float(np.linalg.norm(core.mean(axis=0))), 4.0)
        return cls(core.mean(axis=0), cov, min_lightness=min_l, learned=True, min_chroma=min_c)

    def distance(self, lab: FloatArray) -> FloatArray:
        """Mahalanobis distance of each Lab pixel's chroma from skin (any leading shape).

        Pixels darker than the lightness floor or greyer than the chroma floor get
        infinity.
        """
        a, b = lab[..., 1], lab[..., 2]
        da = a - self.mean[0]
        db = b - self.mean[1]
        ia, ib, ic = self.inv_cov[0, 0], self.inv_cov[0, 1], self.inv_cov[1, 1]
        d2 = da * da * ia + 2 * ib * da * db + db * db * ic
        d = np.sqrt(d2, out=d2)
        d[lab[..., 0] < self.min_lightness] = np.inf
        if self.min_chroma > 0:
            d[a * a + b * b < np.float32(self.min_chroma**2)] = np.inf
        return d

    def probability(self, lab: FloatArray) -> FloatArray:
        """Skin probability of each Lab pixel, float32 in 0..1 (any leading shape)."""
        p = (np.float32(self.FAR) - self.distance(lab)) * np.float32(1 / (self.FAR - self.NEAR))
        return np.clip(p, 0.0, 1.0, out=p)


@dataclass(frozen=True)
class FaceFrame:
    """The face as an oriented box: centre, up and right unit vectors, half-sizes.

    Face coordinates of a pixel: ``s`` along ``right`` in half-widths, ``t`` along
    ``up`` in half-heights, so the chin is at t = -1 and the top of the face oval
    (the forehead) at t = +1.
    """

    centre: FloatArray
    up: FloatArray
    half_width: float
    half_height: float
    oval: FloatArray  # (n, 2) polygon
    measured: bool  # True for a face-mesh outline, False for one estimated from the pose

    @property
    def right(self) -> FloatArray:
        # image coordinates have y down: right is up rotated a quarter turn clockwise
        return np.array([-self.up[1], self.up[0]], np.float32)

    @classmethod
    def from_mesh(cls, mesh: FloatArray) -> FaceFrame:
        top, chin = mesh[_MESH_TOP], mesh[_MESH_CHIN]
        up = top - chin
        height = float(np.linalg.norm(up))
        up = up / max(height, 1e-6)
        centre = (top + chin) / 2
        oval = mesh[list(FACE_OVAL)]
        right = np.array([-up[1], up[0]], np.float32)
        half_width = float(np.abs((oval - centre) @ right).max())
        return cls(centre, up, max(half_width, 1.0), max(height / 2, 1.0), oval, True)

    @classmethod
    def from_pose(cls, scene: Scene) -> FaceFrame | None:
        """An elliptical face from the pose's eyes, ears and mouth (no mesh found)."""
        if not (
            scene.visible(PoseIndex.NOSE)
            and scene.visible(PoseIndex.LEFT_EYE)
            and scene.visible(PoseIndex.RIGHT_EYE)
        ):
            return None
        eyes = (scene.point(PoseIndex.LEFT_EYE) + scene.point(PoseIndex.RIGHT_EYE)) / 2
        mouth = (scene.point(PoseIndex.MOUTH_LEFT) + scene.point(PoseIndex.MOUTH_RIGHT)) / 2
        up = eyes - mouth
        up = up / max(float(np.linalg.norm(up)), 1e-6)
        ear_span = float(np.linalg.norm(scene.point(7) - scene.point(8)))
        eye_span = float(np.linalg.norm(scene.point(2) - scene.point(5)))
        half_width = max(ear_span * 0.45, eye_span * 1.1, 2.0)
        half_height = half_width * 1.3
        # the eyes sit a little above the middle of the face
        centre = eyes - up * np.float32(half_height * 0.25)
        angles = np.linspace(0, 2 * np.pi, 36, endpoint=False, dtype=np.float32)
        right = np.array([-up[1], up[0]], np.float32)
        oval = (
            centre
            + np.cos(angles)[:, None] * right * half_width
            + np.sin(angles)[:, None] * up * half_height
        )
        return cls(
            centre.astype(np.float32),
            up.astype(np.float32),
            half_width,
            half_height,
            oval.astype(np.float32),
            False,
        )

    def window(self, shape: tuple[int, int], reach: float) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) box around the face, ``reach`` face half-heights each way."""
        r = reach * max(self.half_height, self.half_width)
        cx, cy = float(self.centre[0]), float(self.centre[1])
        h, w = shape
        return (
            int(max(cy - r, 0)),
            int(min(cy + r + 1, h)),
            int(max(cx - r, 0)),
            int(min(cx + r + 1, w)),
        )

    def coords(self, box: tuple[int, int, int, int]) -> tuple[FloatArray, FloatArray]:
        """Face coordinates (s, t) of every pixel of ``box``, each (y1-y0, x1-x0)."""
        y0, y1, x0, x1 = box
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] - self.centre[1]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - self.centre[0]
        right = self.right
        s = (xs * right[0] + ys * right[1]) / np.float32(self.half_width)
        t = (xs * self.up[0] + ys * self.up[1]) / np.float32(self.half_height)
        return s.astype(np.float32), t.astype(np.float32)
