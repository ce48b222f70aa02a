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
    # per image a photo, an overlay, the labels and a cutout, plus links to full-size outputs
    pictures = [p for p in refs if p.parent.name == "report_files"]
    assert len(pictures) == 4 * 4
    assert sum(p.name == "overlay.png" for p in refs) == 4


def test_page_shows_each_image_its_coverage_the_charts_and_the_failures(results):
    text = build_report(results, title="Batch 7").read_text()
    assert text.count('<article class="item"') == 4
    assert text.count("<svg") == 3
    assert "Batch 7" in text and "4 results · 1 failure · made" in text
    assert "ImageDecodeError" in text and "broken.png" in text
    # the legend: tops on the upper half of each photo (of 30 to 33 rows)
    shares = re.findall(r"</span>tops (\d+\.\d)%</li>", text)
    assert len(shares) == 4 and "50.0" in shares
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
    assert len(list((tmp_path / "review" / "report_files").iterdir())) == 4


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


# -- legend, label PNG, relative paths, layout helpers, the worn chart ---------------------


class _Figures(HTMLParser):
    """Per article: the legend items (class, colour) and which pictures sit in a pair."""

    def __init__(self) -> None:
        super().__init__()
        self.articles: list[dict] = []
        self._in_pair = 0
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article":
            self.articles.append({"pairs": [], "legend": [], "captions": []})
        if not self.articles:
            return
        art = self.articles[-1]
        if tag == "div" and a.get("class") == "pair":
            self._in_pair, self._depth = 1, 0
            art["pairs"].append([])
        elif tag == "div" and self._in_pair:
            self._depth += 1
        if self._in_pair and tag == "img":
            art["pairs"][-1].append(a["alt"].split(" ")[0])
        if self._in_pair and tag == "ul" and a.get("class") == "legend":
            art["pairs"][-1].append("legend")
        if tag == "span" and a.get("class") == "sw":
            art["legend"].append(a["style"].split(":")[1])

    def handle_endtag(self, tag):
        if tag == "div" and self._in_pair:
            if self._depth:
                self._depth -= 1
            else:
                self._in_pair = 0


def test_each_overlay_has_its_colour_legend_beside_it(results):
    from clothseg_tools.classes import PALETTE

    parser = _Figures()
    parser.feed(build_report(results).read_text())
    assert len(parser.articles) == 4
    for art in parser.articles:
        assert art["pairs"] == [["overlay", "legend"]]
        # tops and bottoms found, first; the other asked classes after them, greyed
        expected = ["tops", "bottoms", "clothes", "dress", "acc"]
        assert art["legend"] == ["#{:02x}{:02x}{:02x}".format(*PALETTE[c]) for c in expected]


def test_the_label_png_is_shown_once_labelmap_made_it(results):
    from PIL import Image

    from clothseg_tools.batch.post import labelmap_job
    from clothseg_tools.classes import PALETTE

    page = build_report(results)
    assert "labels (no label PNG yet)" in page.read_text()
    run_job(labelmap_job(results), discover_results(results))
    page = build_report(results)
    text = page.read_text()
    assert text.count("<figcaption>label PNG</figcaption>") == 4
    shown = [p for p in referenced_files(page) if p.name.endswith("-labels.png")]
    assert len(shown) == 4
    links = [p for p in referenced_files(page) if p.name == "labels.png"]
    assert len(links) == 4  # each picture links to the full-size label PNG
    # nearest-neighbour thumbnails: only class colours (and background), no blends
    colours = {tuple(c) for c in np.asarray(Image.open(shown[0]).convert("RGB")).reshape(-1, 3)}
    assert colours <= {(0, 0, 0), PALETTE["tops"], PALETTE["bottoms"]}
    assert PALETTE["tops"] in colours


def test_paths_on_the_page_are_relative_to_the_results_folder(results, tmp_path):
    text = build_report(results).read_text()
    assert str(tmp_path) not in text
    assert "../photos/one.png" in text  # the photo, as seen from the results folder
    assert "../photos/broken.png" in text  # the failure table too


def test_overlay_outlines_stay_visible_on_a_garment_of_the_class_colour():
    from clothseg_tools.classes import CLASSES, PALETTE
    from clothseg_tools.report import _outlined

    # a red top, exactly the tops colour, on a photo of the same red
    photo = np.empty((20, 20, 3), np.uint8)
    photo[:] = PALETTE["tops"]
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = CLASSES.index("tops") + 1
    picture = _outlined(photo, labels, CLASSES).astype(int)
    ring = picture[3:5, 5:15]  # just outside the top
    assert (ring.max(axis=-1) <= max(PALETTE["tops"]) // 4 + 1).all()
    assert (picture[0, 0] == PALETTE["tops"]).all()  # far from it: the photo as it was


def test_worn_share_is_drawn_per_image_for_a_handful_and_as_a_histogram_for_many(results):
    text = build_report(results).read_text()
    worn = re.findall(r"<svg.*?</svg>", text, flags=re.S)[2]
    assert "Share of the picture worn" in worn
    # four images: four labelled bars, one per image key
    for key in ("one", "two", "sub/three"):
        assert f">{key}</text>" in worn
    many = svg_histogram(np.linspace(0, 1, 40), bins=10, title="t")
    assert many.count('class="count"') == 10  # each bar says its count


def test_long_bar_labels_widen_the_label_column_and_keep_their_end():
    long = "shop-42/summer/2024/models/a-very-long-file-name"
    svg = svg_bar_chart([long, "b"], [0.5, 0.25], colors=[(0, 0, 0)] * 2)
    assert ">…" + long[-27:] + "</text>" in svg
    x = float(re.search(r'<rect x="([\d.]+)"', svg)[1])
    assert 90 < x <= 260
