"""The demo: the whole batch job, offline, on sample photos.

:func:`run_demo` writes sample photos (scikit-image's pictures of people, which ship
with the package, plus a few generated from them and one drawn figure), segments them
with the local engine, runs the post-processing (overlays, cutouts, label maps,
statistics) and writes the review report. Rerunning it resumes: finished steps are
skipped. Where the local engine cannot be installed (mediapipe has no wheel for the
Python), the demo replays the local engine's recorded results of the same photos, which
ship with the package, and says so in the terminal and on the report.

Examples
--------
>>> import tempfile
>>> names = [p.name for p in sample_photos(tempfile.mkdtemp())]
>>> names[:2]
['astronaut.png', 'cameraman.png']
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._io import atomic_write_bytes, encode_png
from .batch import BatchSummary, Progress, discover_inputs, discover_results, run_job
from .batch.coverage import stats_job, write_dataset_stats
from .batch.post import cutout_job, labelmap_job, overlay_job
from .batch.runner import available_cpus
from .batch.segment import segment_batch
from .engines.replay import PARTS_DIR, ReplayEngine, record
from .masks import MaskSet
from .report import build_report

if TYPE_CHECKING:
    from .engines.base import Engine

__all__ = ["RECORDINGS", "DemoResult", "replay_recordings", "run_demo", "sample_photos"]

#: The local engine's results of the sample photos (one MaskSet folder per photo, named by
#: its path without extension, with a ``parts/`` folder of garment instances), made by
#: ``docs/_tools/demo_recordings.py``.
RECORDINGS = Path(__file__).with_name("data") / "demo_recordings"

#: What the terminal and the report say when the demo replays :data:`RECORDINGS`.
REPLAY_NOTICE = (
    "Replayed results: the local engine (mediapipe) is not installed on this Python, so the "
    "demo shows the local engine's recorded results of these sample photos. Your own photos "
    "need the local engine (Python 3.10 to 3.12), the onnx engine or the service."
)


@dataclasses.dataclass
class DemoResult:
    """Where the demo put things, and how each step went.

    Attributes
    ----------
    photos : pathlib.Path
        The sample photos.
    results : pathlib.Path
        The result folders, post-processing outputs and manifests.
    report : pathlib.Path or None
        The HTML review page; ``None`` when Ctrl-C stopped the demo first.
    summaries : dict of str to BatchSummary
        Per step (``segment``, ``overlay``, ``cutout``, ``labelmap``, ``stats``).
    replayed : bool
        The masks are the packaged recordings, not a live engine's.
    """

    photos: Path
    results: Path
    report: Path | None
    summaries: dict[str, BatchSummary]
    replayed: bool = False

    @property
    def exit_code(self) -> int:
        """The worst exit code of the steps (0 when every image went through)."""
        return max((s.exit_code for s in self.summaries.values()), default=0)


def _jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _drawn_figure() -> npt.NDArray[np.uint8]:
    """A flat drawing of a person in a red top and blue trousers on a gradient.

    Models trained on photos may not see a person in it; the demo shows what the
    engine then reports.
    """
    from skimage.draw import disk, polygon

    h, w = 480, 360
    ramp = np.linspace(40, 200, h, dtype=np.float32)[:, None]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = ramp.astype(np.uint8)
    img[..., 1] = (ramp * 0.9).astype(np.uint8)
    img[..., 2] = 220
    rr, cc = disk((80, 180), 42, shape=(h, w))
    img[rr, cc] = (224, 172, 140)  # head
    rr, cc = polygon([125, 125, 280, 280], [110, 250, 240, 120], shape=(h, w))
    img[rr, cc] = (200, 30, 40)  # top
    rr, cc = polygon([125, 250, 260, 140], [110, 100, 70, 60], shape=(h, w))
    img[rr, cc] = (200, 30, 40)  # left sleeve
    rr, cc = polygon([125, 250, 260, 140], [250, 260, 290, 300], shape=(h, w))
    img[rr, cc] = (200, 30, 40)  # right sleeve
    rr, cc = polygon(
        [280, 280, 460, 460, 300, 460, 460], [120, 240, 240, 190, 180, 170, 120], shape=(h, w)
    )
    img[rr, cc] = (30, 50, 140)  # trousers
    return img


def sample_photos(folder: str | os.PathLike[str]) -> list[Path]:
    """Write the demo's photos into ``folder`` and return their paths.

    The photos: scikit-image's ``astronaut`` and ``camera`` (the cameraman, made
    RGB), which ship with scikit-image and need no download; the astronaut mirrored
    and cropped to a portrait JPEG; the cameraman on a wider canvas; and a drawn
    figure. Files already holding the same bytes are left untouched, so a rerun of the
    demo resumes instead of starting over.

    Returns
    -------
    list of pathlib.Path
        In a fixed order.
    """
    from skimage import data

    astronaut = np.ascontiguousarray(data.astronaut()[..., :3])
    camera = np.repeat(data.camera()[:, :, None], 3, axis=2)
    wide = np.empty((512, 768, 3), np.uint8)
    wide[:] = np.linspace(90, 170, 768, dtype=np.uint8)[None, :, None]
    wide[:, 128:640] = camera
    photos = {
        "astronaut.png": encode_png(astronaut),
        "cameraman.png": encode_png(camera),
        "generated/astronaut_mirrored_portrait.jpg": _jpeg(
            np.ascontiguousarray(astronaut[:, ::-1][:, 64:448])
        ),
        "generated/cameraman_wide.png": encode_png(wide),
        "generated/drawn_figure.png": encode_png(_drawn_figure()),
    }
    out = Path(folder)
    paths = []
    for name, payload in photos.items():
        path = out / name
        if not (path.is_file() and path.read_bytes() == payload):
            atomic_write_bytes(path, payload)
        paths.append(path)
    return paths


def replay_recordings(
    photos_dir: str | os.PathLike[str],
    photos: list[Path],
    replay_dir: str | os.PathLike[str],
) -> Path:
    """Make a replay folder that answers each sample photo with its packaged recording.

    Replay records are keyed by the photo's bytes, and the bytes of a PNG or JPEG
    written here depend on the Pillow and zlib versions installed, so the records are
    keyed afresh from the photos just written rather than shipped under fixed keys.

    Parameters
    ----------
    photos_dir
        The folder :func:`sample_photos` wrote into.
    photos
        Its return value.
    replay_dir
        Where to write the replay records (created when missing).

    Returns
    -------
    pathlib.Path
        ``replay_dir``, ready for ``get_engine("replay", replay_dir=...)``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from clothseg_tools.engines.replay import ReplayEngine
    >>> tmp = Path(tempfile.mkdtemp())
    >>> photos = sample_photos(tmp / "photos")
    >>> engine = ReplayEngine(replay_recordings(tmp / "photos", photos, tmp / "replay"))
    >>> all(engine.has_record(p.read_bytes()) for p in photos)
    True
    """

    base = Path(photos_dir)
    for photo in photos:
        recorded = RECORDINGS / photo.relative_to(base).with_suffix("")
        parts = recorded / PARTS_DIR
        record(
            replay_dir,
            photo.read_bytes(),
            MaskSet.load(recorded),
            MaskSet.load(parts) if parts.is_dir() else None,
        )
    return Path(replay_dir)


def _local_engine_installed() -> bool:
    import importlib.util

    # find_spec, not import: importing mediapipe takes about a second
    return importlib.util.find_spec("mediapipe") is not None


def run_demo(
    out: str | os.PathLike[str] = "clothseg-demo",
    *,
    engine: str | Engine = "local",
    workers: int | None = None,
    progress: Callable[[str], Progress] | None = None,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Segment the sample photos, post-process them and write the report.

    Ctrl-C stops after the images in flight; the result then has no report and a
    rerun resumes.

    Parameters
    ----------
    out
        Folder for ``photos/``, ``results/`` and ``results/report.html``.
    engine
        The in-process engine: ``"local"``, or any engine name or instance that
        :func:`~clothseg_tools.batch.segment.segment_batch` accepts. ``"local"`` where
        mediapipe is not installed replays the packaged recordings (see
        :func:`replay_recordings`); ``DemoResult.replayed`` then says so.
    workers
        Items processed at once (default: the CPU cores available; the engine is
        CPU-bound).
    progress
        ``progress(step) -> Progress`` for each step's bar.
    log
        Receives one line per step.

    Returns
    -------
    DemoResult

    Raises
    ------
    EngineUnavailableError
        The local engine's extra is not installed (the message says how to install it).
    """

    workers = workers or available_cpus()
    base = Path(out)
    photos_dir, results = base / "photos", base / "results"
    say = log or (lambda _message: None)

    def bar(step: str) -> Progress | None:
        return progress(step) if progress is not None else None

    say(f"Writing sample photos to {photos_dir}")
    photos = sample_photos(photos_dir)
    replayed = engine == "local" and not _local_engine_installed()
    if replayed:
        say(REPLAY_NOTICE)
        engine = ReplayEngine(replay_recordings(photos_dir, photos, base / "replay"))
    items = discover_inputs([photos_dir])
    say(f"Segmenting {len(items)} photos with the {getattr(engine, 'name', engine)} engine")
    summaries = {
        "segment": segment_batch(
            items,
            results,
            engine=engine,
            class_type=4,
            output_type=3,
            workers=workers,
            progress=bar("segment"),
        )
    }
    folders = discover_results(results)
    steps = {
        "overlay": overlay_job(results),
        "cutout": cutout_job(results, decontaminate=True),
        "labelmap": labelmap_job(results),
        "stats": stats_job(results),
    }
    if summaries["segment"].interrupted:
        return DemoResult(photos_dir, results, None, summaries, replayed)
    for step, job in steps.items():
        say(f"Running {step}")
        summaries[step] = run_job(job, folders, workers=workers, progress=bar(step))
        if summaries[step].interrupted:
            return DemoResult(photos_dir, results, None, summaries, replayed)
    write_dataset_stats(steps["stats"], folders)
    say("Writing the report")
    report = build_report(
        results,
        title="clothseg demo (replayed)" if replayed else "clothseg demo",
        workers=workers,
        notice=REPLAY_NOTICE if replayed else None,
    )
    return DemoResult(photos_dir, results, report, summaries, replayed)
