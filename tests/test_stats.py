import contextlib
import csv
import io
import json
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi
from skimage.measure import regionprops

from clothseg_tools import (
    Coverage,
    MaskSet,
    coverage,
    coverage_table,
    dice,
    iou,
    summarize,
)
from clothseg_tools import stats as stats_module
from clothseg_tools.errors import ShapeMismatchError
from clothseg_tools.stats import COVERAGE_COLUMNS


@contextlib.contextmanager
def block_bytes(n):
    old = stats_module._COVERAGE_BLOCK_BYTES
    stats_module._COVERAGE_BLOCK_BYTES = n
    try:
        yield
    finally:
        stats_module._COVERAGE_BLOCK_BYTES = old


def regionprops_reference(mask):
    """(pixels, bbox as (x0, y0, x1, y1), centroid as (x, y)) from scikit-image."""
    props = regionprops(mask.astype(np.uint8))
    if not props:
        return 0, None, None
    (p,) = props
    r0, c0, r1, c1 = p.bbox
    cy, cx = p.centroid
    return int(p.area), (c0, r0, c1, r1), (cx, cy)


@given(
    stack=st.tuples(st.integers(1, 4), st.integers(1, 14), st.integers(1, 14)).flatmap(
        lambda s: arrays(np.uint8, s, elements=st.sampled_from([0, 0, 0, 90, 127, 128, 255]))
    ),
    min_value=st.sampled_from([1, 128, 255]),
    block=st.sampled_from([1, 50, 1 << 22]),
)
@settings(max_examples=80, deadline=None)
def test_coverage_matches_regionprops(stack, min_value, block):
    with block_bytes(block):
        result = coverage(stack, min_value=min_value)
    assert list(result) == [str(i) for i in range(len(stack))]
    h, w = stack.shape[1:]
    for i, cov in enumerate(result.values()):
        pixels, bbox, centroid = regionprops_reference(stack[i] >= min_value)
        assert cov.pixels == pixels
        assert cov.fraction == pytest.approx(pixels / (h * w))
        assert cov.bbox == bbox
        if centroid is None:
            assert cov.centroid is None
        else:
            assert cov.centroid == pytest.approx(centroid)
        assert cov.components is None


def test_coverage_on_a_larger_maskset_crosses_blocks():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :500]
    masks = {}
    for name in ("tops", "bottoms", "dress", "hair"):
        cy, cx, r = rng.uniform(50, 250), rng.uniform(50, 450), rng.uniform(20, 80)
        d = np.hypot(yy - cy, xx - cx)
        masks[name] = np.clip((r - d) * 20 + 128, 0, 255).astype(np.uint8)
    masks["bag"] = np.zeros((300, 500), np.uint8)
    ms = MaskSet(masks)
    with block_bytes(1 << 12):
        result = coverage(ms)
    for name, cov in result.items():
        pixels, bbox, centroid = regionprops_reference(ms[name] >= 128)
        assert (cov.pixels, cov.bbox) == (pixels, bbox)
        assert cov.centroid == (None if centroid is None else pytest.approx(centroid))


def test_bbox_and_centroid_conventions():
    m = np.zeros((10, 20), bool)
    m[2:5, 3:9] = True  # rows 2..4, columns 3..8
    (cov,) = coverage(m[None]).values()
    x0, y0, x1, y1 = cov.bbox
    assert (x0, y0, x1, y1) == (3, 2, 9, 5)  # exclusive ends
    assert m[y0:y1, x0:x1].all() and m[y0:y1, x0:x1].sum() == cov.pixels
    assert cov.centroid == (5.5, 3.0)  # (x, y)


def test_empty_classes_give_zeros_and_none():
    ms = MaskSet({"tops": np.zeros((4, 4), np.uint8), "hair": np.full((4, 4), 127, np.uint8)})
    for cov in coverage(ms, components=True).values():
        assert cov == Coverage(0, 0.0, None, None, 0)
    assert coverage(MaskSet({}, shape=(3, 3))) == {}


@given(
    mask=arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))),
    connectivity=st.sampled_from([1, 2]),
)
@settings(max_examples=50, deadline=None)
def test_components_match_scipy_labeling(mask, connectivity):
    structure = ndi.generate_binary_structure(2, connectivity)
    _, expected = ndi.label(mask, structure=structure)
    (cov,) = coverage({"m": mask}, components=True, connectivity=connectivity).values()
    assert cov.components == expected


def test_coverage_refuses_bad_options():
    m = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"1\.\.255"):
        coverage(m, min_value=0)
    with pytest.raises(ValueError, match="connectivity"):
        coverage(m, connectivity=3)
    with pytest.raises(ValueError, match=r"mask\[None\]"):
        coverage(np.zeros((2, 2), np.uint8))


def test_coverage_to_dict_is_json_ready():
    (cov,) = coverage({"tops": np.eye(3, dtype=bool)}, components=True).values()
    d = json.loads(json.dumps(cov.to_dict()))
    assert d == {
        "pixels": 3,
        "fraction": pytest.approx(1 / 3),
        "bbox": [0, 0, 3, 3],
        "centroid": [1.0, 1.0],
        "components": 1,
    }
    with pytest.raises(AttributeError):
        cov.pixels = 4  # frozen


# -- iou / dice -----------------------------------------------------------------------


def reference_scores(a, b):
    sa = {(y, x) for y, x in zip(*np.nonzero(a), strict=True)}
    sb = {(y, x) for y, x in zip(*np.nonzero(b), strict=True)}
    if not sa and not sb:
        return 1.0, 1.0
    return len(sa & sb) / len(sa | sb), 2 * len(sa & sb) / (len(sa) + len(sb))


@given(
    pair=st.tuples(st.integers(1, 10), st.integers(1, 10)).flatmap(
        lambda s: st.tuples(arrays(bool, s), arrays(bool, s))
    )
)
@settings(max_examples=60, deadline=None)
def test_iou_and_dice_match_set_arithmetic(pair):
    a, b = pair
    expected_iou, expected_dice = reference_scores(a, b)
    assert iou(a, b) == pytest.approx(expected_iou)
    assert dice(a, b) == pytest.approx(expected_dice)
    assert iou(a, b) == iou(b, a) and dice(a, a) == 1.0


@pytest.mark.parametrize(
    ("a", "b", "expected_iou", "expected_dice"),
    [
        (np.zeros((2, 2), bool), np.zeros((2, 2), bool), 1.0, 1.0),  # both empty
        (np.ones((2, 2), bool), np.zeros((2, 2), bool), 0.0, 0.0),
        (np.array([[255, 127]], np.uint8), np.array([[128, 0]], np.uint8), 1.0, 1.0),
        (np.array([[255, 200]], np.uint8), np.array([[True, False]]), 0.5, 2 / 3),
    ],
)
def test_iou_dice_table(a, b, expected_iou, expected_dice):
    assert iou(a, b) == pytest.approx(expected_iou)
    assert dice(a, b) == pytest.approx(expected_dice)


def test_iou_level_and_shape_mismatch():
    a = np.array([[100, 200]], np.uint8)
    assert iou(a, a > 0, level=100) == 1.0
    assert iou(a, a > 0) == 0.5
    with pytest.raises(ShapeMismatchError, match=r"\(1, 2\).*\(2, 1\)"):
        dice(a, a.T)


# -- summaries and tables -------------------------------------------------------------


def test_summarize_dataset():
    per_image = {
        "a.jpg": coverage({"tops": np.eye(4, dtype=bool), "dress": np.zeros((4, 4), bool)}),
        "b.jpg": coverage({"tops": np.ones((4, 4), bool), "dress": np.ones((4, 4), bool)}),
        "c.jpg": coverage({"tops": np.zeros((4, 4), bool)}),
    }
    s = summarize(per_image)
    assert list(s) == ["tops", "dress"]
    tops = s["tops"]
    assert (tops["images"], tops["present"]) == (3, 2)
    assert tops["presence_rate"] == pytest.approx(2 / 3)
    assert tops["mean_fraction"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert tops["median_fraction"] == pytest.approx(statistics.median([0.25, 1.0, 0.0]))
    assert tops["mean_fraction_present"] == pytest.approx(0.625)
    dress = s["dress"]
    assert (dress["images"], dress["present"], dress["presence_rate"]) == (2, 1, 0.5)
    assert summarize(list(per_image.values())) == s
    empty = summarize([{"bag": Coverage(0, 0.0, None, None)}])["bag"]
    assert empty["mean_fraction_present"] is None and empty["presence_rate"] == 0.0


def test_coverage_table_writes_a_csv():
    per_image = {
        "a.jpg": coverage({"tops": np.eye(4, dtype=bool), "dress": np.zeros((4, 4), bool)}),
        "b.jpg": coverage({"tops": np.ones((4, 4), bool)}, components=True),
    }
    rows = coverage_table(per_image)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COVERAGE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    back = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [(r["image"], r["class"]) for r in back] == [
        ("a.jpg", "tops"),
        ("a.jpg", "dress"),
        ("b.jpg", "tops"),
    ]
    assert back[0] == {
        "image": "a.jpg", "class": "tops", "pixels": "4", "fraction": "0.25", "x0": "0",
        "y0": "0", "x1": "4", "y1": "4", "cx": "1.5", "cy": "1.5", "components": "",
    }  # fmt: skip
    assert back[1]["x0"] == "" and back[1]["cx"] == "" and back[2]["components"] == "1"
    single = coverage_table(per_image["a.jpg"], image="a.jpg")
    assert single == rows[:2]
    assert coverage_table(per_image["a.jpg"])[0]["image"] == ""
