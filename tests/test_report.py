"""The HTML report: every referenced file exists (checked without a browser), the page
shows each image, the dataset charts and every failure; the SVG chart helpers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from clothseg_tools import MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.batch import discover_inputs, discover_results, run_job
from clothseg_tools.batch.post import cutout_job, overlay_job
from clothseg_tools.batch.segment import segment_batch
from clothseg_tools.engines.base import Engine, EngineOutput
from clothseg_tools.report import build_report, svg_bar_chart, svg_histogram


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def parse(page: Path) -> _Refs:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def referenced_files(page: Path) -> list[Path]:
    """Files the page points to; fails on anything that would need the network."""
    files = []
    for ref in parse(page).refs:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, f"not offline: {ref}"
        if parts.path:
            files.append((page.parent / unquote(parts.path)).resolve())
    return files


class Bands(Engine):
    """Deterministic engine: tops on the upper half, bottoms on the lower third."""

    name = "bands"

    def _segment(self, image, *, classes, **_):
        h, w = image.shape[:2]
        tops = np.zeros((h, w), np.uint8)
        tops[: h // 2] = 255
        bottoms = np.zeros((h, w), np.uint8)
        bottoms[2 * h // 3 :] = 200
        found = {"tops": tops, "bottoms": bottoms}
        masks = MaskSet({c: found.get(c, np.zeros((h, w), np.uint8)) for c in classes})
        return EngineOutput(masks, {}, ("synthetic",))


@pytest.fixture
def results(tmp_path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(["one.png", "two.png", "<b>odd & name.png", "sub/three.png"]):
        path = photos / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(encode_png(np.full((30 + i, 40, 3), 40 * i, np.uint8)))
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "results"
    summary = segment_batch(discover_inputs([photos]), out, engine=Bands())
    assert (summary.done, summary.failed) == (4, 1)
    return out


def test_every_file_the_report_references_exists(results):
    folders = discover_results(results)
    run_job(overlay_job(results), folders)
    run_job(cutout_job(results), folders)
    page = build_report(results)
    refs = referenced_files(page)
    assert refs and all(p.is_file() for p in refs), [p for p in refs if not p.is_file()]
    # per image a photo, an overlay and a cutout picture, plus links to full-size outputs
    pictures = [p for p in refs if p.parent.name == "report_files"]
    assert len(pictures) == 3 * 4
    assert sum(p.name == "overlay.png" for p in refs) == 4


def test_page_shows_each_image_its_coverage_the_charts_and_the_failures(results):
    text = build_report(results, title="Batch 7").read_text()
    assert text.count('<article class="item"') == 4
    assert text.count("<svg") == 3
    assert "Batch 7" in text
    assert "ImageDecodeError" in text and "broken.png" in text
    # the coverage row: tops on the upper half of each photo
    assert re.search(r"<th>tops</th>", text) and "50.0%" in text
    assert "note: synthetic" in text


def test_names_are_escaped(results):
    parser = parse(build_report(results))
    text = (results / "report.html").read_text()
    assert "<b>odd" not in text and "&lt;b&gt;odd &amp; name" in text
    assert "b" not in parser.tags  # the file name did not become markup


def test_a_moved_photo_is_said_and_its_masks_are_shown(results, tmp_path):
    (tmp_path / "photos" / "one.png").unlink()
    page = build_report(results)
    text = page.read_text()
    assert "photo not shown: FileNotFoundError" in text
    assert all(p.is_file() for p in referenced_files(page))
    assert any(p.name.endswith("-masks.png") for p in referenced_files(page))


def test_report_elsewhere_and_fewer_images(results, tmp_path):
    page = build_report(results, out=tmp_path / "review" / "index.html", max_images=2)
    refs = referenced_files(page)
    assert all(p.is_file() for p in refs)
    assert page.read_text().count('<article class="item"') == 2
    # an older report's pictures do not linger
    build_report(results, out=tmp_path / "review" / "index.html", max_images=1)
    assert len(list((tmp_path / "review" / "report_files").iterdir())) == 3


@pytest.mark.parametrize(
    ("values", "max_value", "widths"),
    [
        ([1.0, 0.5, 0.0], None, [370.0, 185.0, 0.0]),
        ([0.2, 0.1], 1.0, [74.0, 37.0]),
        ([0.0, 0.0], None, [0.0, 0.0]),
    ],
)
def test_bar_lengths_are_proportional(values, max_value, widths):
    svg = svg_bar_chart(["tops", "dress", "hair"][: len(values)], values, max_value=max_value)
    found = [float(w) for w in re.findall(r'<rect x="90" y="\d+" width="([\d.]+)"', svg)]
    assert found == widths


def test_bar_chart_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="2 labels but 1 values"):
        svg_bar_chart(["a", "b"], [1.0])


def test_histogram_counts_every_value():
    svg = svg_histogram([0.05, 0.05, 0.5, 0.95, 1.0], bins=4)
    titles = re.findall(r"<title>[^<]*: (\d+)</title>", svg)
    assert list(map(int, titles)) == [2, 0, 1, 2]


def test_charts_are_well_formed_svg(results):
    import xml.etree.ElementTree as ET

    text = build_report(results).read_text()
    charts = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    assert len(charts) == 3
    for svg in charts:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and root.get("width")
