"""The review report in a real browser (Debian's Chromium through Playwright): at a
1400 px window and a 420 px phone screen every picture loads, nothing passes the right
edge, and each overlay has its colour legend beside it. Skipped, with the reason, where
the browser or Playwright is not installed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.batch import discover_inputs, discover_results, run_job
from clothseg_tools.batch.post import cutout_job, labelmap_job, overlay_job
from clothseg_tools.batch.segment import segment_batch
from clothseg_tools.engines.base import Engine, EngineOutput
from clothseg_tools.report import build_report

TOOLS = Path(__file__).resolve().parents[1] / "docs" / "_tools"
WIDTHS = (1400, 420)


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_tools_report_screenshot", TOOLS / "report_screenshot.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


shots = _load_tool()
pytestmark = pytest.mark.skipif(shots.unavailable() is not None, reason=str(shots.unavailable()))


class Figure(Engine):
    """A person-like layout: hair, face, a top, trousers and shoes, scaled to the photo."""

    name = "figure"

    def _segment(self, image: Any, *, classes: Any, **_: Any) -> EngineOutput:
        h, w = image.shape[:2]
        boxes = {
            "hair": (0.05, 0.15, 0.35, 0.65),
            "face": (0.12, 0.25, 0.4, 0.6),
            "tops": (0.25, 0.55, 0.25, 0.75),
            "bottoms": (0.55, 0.9, 0.3, 0.7),
            "shoes": (0.9, 1.0, 0.3, 0.7),
        }
        found = {}
        for name, (y0, y1, x0, x1) in boxes.items():
            m = np.zeros((h, w), np.uint8)
            m[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = 255
            found[name] = m
        empty = np.zeros((h, w), np.uint8)
        return EngineOutput(MaskSet({c: found.get(c, empty) for c in classes}), {})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with every kind of picture, a failure, and long names."""
    root = tmp_path_factory.mktemp("browser")
    photos = root / "photos"
    rng = np.random.default_rng(0)
    names = [
        "look-01.jpg",
        "portrait.png",
        "wide.png",
        "a-very-long-folder-name-from-a-camera-import/and-an-even-longer-file-name-0001.png",
    ]
    shapes = [(400, 300), (300, 300), (200, 640), (360, 270)]
    for name, shape in zip(names, shapes, strict=True):
        path = photos / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        if name.endswith(".jpg"):
            Image.fromarray(pixels).save(path, quality=90)
        else:
            path.write_bytes(encode_png(pixels))
    (photos / "broken-upload-with-a-long-name-that-keeps-going-and-going.png").write_bytes(
        b"\x89PNG\r\n\x1a\n not a picture"
    )
    results = root / "results"
    summary = segment_batch(discover_inputs([photos]), results, engine=Figure(), class_type=4)
    assert (summary.done, summary.failed) == (4, 1)
    folders = discover_results(results)
    for job in (overlay_job(results), cutout_job(results), labelmap_job(results)):
        run_job(job, folders)
    return build_report(results, title="Spring catalogue, first shoot of the season")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with shots.chromium() as running:
        yield running


@pytest.mark.parametrize("width", WIDTHS)
def test_every_picture_loads_nothing_overflows_and_each_overlay_has_its_legend(
    report: Path, browser: Any, width: int
) -> None:
    seen = shots.inspect(browser, report, width)
    assert seen["width"] == width
    broken = [img["src"] for img in seen["images"] if not img["ok"]]
    assert seen["images"] and broken == []
    assert len(seen["images"]) == 4 * 4  # photo, overlay, label PNG, cutout per image
    assert seen["scrollWidth"] <= width, seen["overflowing"]
    assert seen["overflowing"] == []
    assert seen["articles"] == 4
    assert len(seen["pairs"]) == 4
    for pair in seen["pairs"]:
        assert pair is not None and pair["visible"] and pair["beside"]
        assert pair["items"] == 12  # class_type 4: every class has its colour


def test_the_check_sees_a_picture_that_does_not_load(report: Path, browser: Any) -> None:
    files = sorted((report.parent / "report_files").glob("*-labels.png"))
    moved = files[0].with_suffix(".gone")
    files[0].rename(moved)
    try:
        seen = shots.inspect(browser, report, 420)
    finally:
        moved.rename(files[0])
    broken = [img["src"] for img in seen["images"] if not img["ok"]]
    assert broken == [f"report_files/{files[0].name}"]
