import contextlib
import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from scipy import ndimage as ndi
from skimage.morphology import remove_small_objects

from clothseg_tools import (
    CLASSES,
    MaskSet,
    clean,
    feather,
    label_map,
    masks_from_labels,
    merge,
    resize_mask,
    threshold,
)
from clothseg_tools import ops as ops_module

#: Block sizes in bytes: tiny ones make small arrays cross many (ragged) block edges.
BLOCK_BYTES = st.sampled_from([1, 7, 40, ops_module._BLOCK_BYTES])


@contextlib.contextmanager
def block_bytes(n):
    old = ops_module._BLOCK_BYTES
    ops_module._BLOCK_BYTES = n
    try:
        yield
    finally:
        ops_module._BLOCK_BYTES = old


def stacks(max_c=5, max_side=9, values=None):
    """(C, H, W) uint8 stacks; ``values`` restricts the pixel values (to force ties)."""
    elements = st.sampled_from(values) if values else st.integers(0, 255)
    return st.tuples(
        st.integers(1, max_c), st.integers(1, max_side), st.integers(1, max_side)
    ).flatmap(lambda shape: arrays(np.uint8, shape, elements=elements))


# -- merge ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("max", lambda s: s.max(axis=0)),
        ("sum", lambda s: np.minimum(s.astype(np.int64).sum(axis=0), 255)),
    ],
)
@given(stack=stacks(), block=BLOCK_BYTES)
@settings(max_examples=40, deadline=None)
def test_merge_matches_numpy(mode, reference, stack, block):
    with block_bytes(block):
        np.testing.assert_array_equal(merge(stack, mode=mode), reference(stack))


@given(stack=stacks(max_c=6), data=st.data())
@settings(max_examples=40, deadline=None)
def test_merge_is_order_independent(stack, data):
    ms = MaskSet.from_stack(stack, [f"c{i}" for i in range(len(stack))])
    order = data.draw(st.permutations(ms.classes))
    for mode in ("max", "sum"):
        np.testing.assert_array_equal(merge(ms, order, mode=mode), merge(ms, mode=mode))


def test_merge_selects_classes_by_name_or_position():
    s = np.array([[[10]], [[20]], [[30]]], np.uint8)
    ms = MaskSet.from_stack(s, ["tops", "bottoms", "dress"])
    assert merge(ms, ["tops", "bottoms"])[0, 0] == 20
    assert merge(ms, [0, -1])[0, 0] == 30
    assert merge({"a": s[0], "b": s[1]}, ["a"])[0, 0] == 10


def test_merge_treats_absent_vocabulary_classes_as_empty():
    ms = MaskSet({"tops": np.full((2, 2), 9, np.uint8)})
    np.testing.assert_array_equal(merge(ms, ["tops", "dress"]), np.full((2, 2), 9))
    assert not merge(ms, ["dress", "bag"]).any()
    with pytest.raises(KeyError, match="'topz'"):
        merge(ms, ["topz"])


def test_merge_sum_saturates_with_many_classes():
    stack = np.full((300, 2, 3), 200, np.uint8)
    stack[:, 0, 0] = 0
    stack[0, 0, 0] = 1
    out = merge(stack, mode="sum")
    assert out[0, 0] == 1 and (out.ravel()[1:] == 255).all()


def test_merge_bool_stack_and_errors():
    s = np.zeros((2, 2, 2), bool)
    s[1, 0, 0] = True
    assert merge(s)[0, 0] == 255
    with pytest.raises(ValueError, match="mode"):
        merge(s, mode="mean")
    with pytest.raises(ValueError, match=r"mask\[None\]"):
        merge(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        merge(np.zeros((1, 3, 3), np.float32))


# -- threshold ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [0, 0, 1, 1, 1]),
        ({"level": 0}, [1, 1, 1, 1, 1]),
        ({"level": 255}, [0, 0, 0, 0, 1]),
        ({"level": 127}, [0, 1, 1, 1, 1]),
        ({"hysteresis": (100, 200)}, [0, 1, 1, 1, 1]),
        ({"hysteresis": (128, 255)}, [0, 0, 1, 1, 1]),
    ],
)
def test_threshold_levels(kwargs, expected):
    m = np.array([[0, 127, 128, 200, 255]], np.uint8)
    np.testing.assert_array_equal(threshold(m, **kwargs), np.array([expected], bool))


def test_hysteresis_keeps_only_regions_touching_a_strong_pixel():
    m = np.zeros((5, 12), np.uint8)
    m[1:4, 1:4] = 150  # weak region with one strong pixel: kept
    m[2, 2] = 250
    m[1:4, 7:10] = 150  # weak region alone: dropped
    out = threshold(m, hysteresis=(100, 200))
    assert out[1:4, 1:4].all() and not out[:, 5:].any()


def test_otsu_splits_a_bimodal_mask():
    rng = np.random.default_rng(1)
    truth = rng.random((40, 40)) < 0.4
    m = np.where(truth, rng.integers(190, 240, truth.shape), rng.integers(10, 60, truth.shape))
    np.testing.assert_array_equal(threshold(m.astype(np.uint8), "otsu"), truth)
    # a constant mask has no split: the fixed level decides
    assert threshold(np.full((3, 3), 200, np.uint8), "otsu").all()
    assert not threshold(np.full((3, 3), 20, np.uint8), "otsu").any()


def test_threshold_passes_bool_through_and_refuses_bad_input():
    b = np.array([[True, False]])
    assert threshold(b) is b
    m = np.zeros((2, 2), np.uint8)
    for kwargs, match in [
        ({"level": 256}, "0..255"),
        ({"level": "median"}, "otsu"),
        ({"hysteresis": (200, 100)}, "low <= high"),
    ]:
        with pytest.raises(ValueError, match=match):
            threshold(m, **kwargs)
    with pytest.raises(ValueError, match="float64"):
        threshold(np.zeros((2, 2)))


# -- label_map ------------------------------------------------------------------------


def reference_label_map(stack, order, min_value, mode):
    """Plain per-pixel Python: the documented rule, one pixel at a time."""
    h, w = stack.shape[1:]
    out = np.zeros((h, w), np.uint8)
    for y in range(h):
        for x in range(w):
            reaching = [i for i in order if stack[i, y, x] >= min_value]
            if not reaching:
                continue
            if mode == "priority":
                winner = reaching[0]
            else:
                top = max(int(stack[i, y, x]) for i in reaching)
                winner = next(i for i in reaching if stack[i, y, x] == top)
            out[y, x] = winner + 1
    return out


@given(
    stack=stacks(values=[0, 60, 127, 128, 200, 255]),
    mode=st.sampled_from(["priority", "soft"]),
    min_value=st.sampled_from([1, 60, 128, 255]),
    block=BLOCK_BYTES,
    data=st.data(),
)
@settings(max_examples=80, deadline=None)
def test_label_map_matches_per_pixel_reference(stack, mode, min_value, block, data):
    names = [f"c{i}" for i in range(len(stack))]
    ms = MaskSet.from_stack(stack, names)
    order = data.draw(st.permutations(range(len(stack))))
    expected = reference_label_map(stack, order, min_value, mode)
    with block_bytes(block):
        got = label_map(ms, priority=[names[i] for i in order], min_value=min_value, mode=mode)
        np.testing.assert_array_equal(got, expected)
        # the same rule with priority given as positions, on a plain stack
        got = label_map(stack, priority=list(order), min_value=min_value, mode=mode)
        np.testing.assert_array_equal(got, expected)


@given(mask=arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12))))
@settings(max_examples=40, deadline=None)
def test_label_map_of_one_class_equals_its_threshold(mask):
    for mode in ("priority", "soft"):
        labels = label_map({"tops": mask}, mode=mode)
        np.testing.assert_array_equal(labels == 1, threshold(mask))
        assert labels.max(initial=0) <= 1


@given(
    labels=st.tuples(st.integers(1, 10), st.integers(1, 10)).flatmap(
        lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 4))
    ),
    block=BLOCK_BYTES,
)
@settings(max_examples=40, deadline=None)
def test_masks_from_labels_inverts_label_map_for_disjoint_masks(labels, block):
    names = ["hair", "face", "tops", "dress"]
    with block_bytes(block):
        ms = masks_from_labels(labels, names)
    assert ms.classes == tuple(names)
    np.testing.assert_array_equal(ms.stack().max(axis=0) > 0, labels > 0)
    np.testing.assert_array_equal(label_map(ms), labels)
    assert masks_from_labels(label_map(ms), names) == ms


def test_label_map_keeps_vocabulary_ids_stable():
    tops = np.zeros((2, 3), bool)
    tops[0] = True
    ms = MaskSet({"tops": tops, "dress": ~tops})
    labels = label_map(ms, CLASSES)
    assert set(np.unique(labels)) == {CLASSES.index("tops") + 1, CLASSES.index("dress") + 1}


def test_label_map_labels_follow_classes_not_priority():
    s = np.full((3, 1, 1), 255, np.uint8)
    ms = MaskSet.from_stack(s, ["a", "b", "c"])
    assert label_map(ms, ["c", "b"])[0, 0] == 1
    assert label_map(ms, ["c", "b"], priority=["b"])[0, 0] == 2
    # names outside classes are ignored, so one global priority list serves subsets
    assert label_map(ms, ["a", "c"], priority=["b", "c", "zzz"])[0, 0] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_value": 0}, ValueError, "1..255"),
        ({"mode": "argmax"}, ValueError, "mode"),
        ({"priority": ["a", "a"]}, ValueError, "twice"),
        ({"classes": ["nope"]}, KeyError, "nope"),
        ({"classes": [5]}, KeyError, "out of range"),
    ],
)
def test_label_map_refuses(kwargs, error, match):
    ms = MaskSet({"a": np.zeros((2, 2), bool), "b": np.zeros((2, 2), bool)})
    with pytest.raises(error, match=match):
        label_map(ms, **kwargs)


def test_label_map_refuses_more_than_255_classes():
    with pytest.raises(ValueError, match="255"):
        label_map(np.zeros((256, 1, 1), np.uint8))


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([[0, 3]]), r"0\.\.3.*0\.\.2"),
        (np.array([[-1, 0]]), "-1"),
        (np.array([[0.0, 1.0]]), "integer"),
        (np.array([0, 1]), "2-D"),
    ],
)
def test_masks_from_labels_refuses(labels, match):
    with pytest.raises(ValueError, match=match):
        masks_from_labels(labels, ["a", "b"])


# -- clean ----------------------------------------------------------------------------


def test_clean_removes_specks_with_their_halo_and_fills_pinholes():
    m = np.zeros((20, 20), np.uint8)
    m[2:12, 2:12] = 255
    m[6, 6] = 0  # pinhole
    m[5, 5] = 100  # soft dent inside: below level, part of no hole (touches nothing)
    m[16, 16] = 255  # speck
    m[15:18, 15:18][m[15:18, 15:18] == 0] = 40  # its faint halo
    m[2:12, 12] = 90  # soft edge of the big object: kept as it is
    out = clean(m, min_size=5)
    assert out[6, 6] == 255 and out[5, 5] == 255  # both are holes (< level, enclosed)
    assert not out[14:, 14:].any()  # speck and halo gone
    np.testing.assert_array_equal(out[2:12, 12], 90)
    assert out.dtype == np.uint8


def test_clean_keeps_large_holes_and_border_background():
    m = np.full((12, 12), 255, np.uint8)
    m[3:8, 3:8] = 0  # a 25-pixel hole
    m[0, 0] = 0  # background touching the border: never a hole
    assert (clean(m, max_hole=25)[3:8, 3:8] == 0).all()
    assert (clean(m, max_hole=26)[3:8, 3:8] == 255).all()
    assert (clean(m, max_hole=math.inf)[3:8, 3:8] == 255).all()
    assert clean(m, max_hole=math.inf)[0, 0] == 0
    assert (clean(m, fill_holes=False)[3:8, 3:8] == 0).all()


def skimage_remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """scikit-image's removal of 8-connected objects under ``min_size`` pixels: 0.26
    renamed the bound (``max_size``, the largest size removed); Python 3.10 stops at 0.25."""
    if "max_size" in inspect.signature(remove_small_objects).parameters:
        return remove_small_objects(mask, max_size=min_size - 1, connectivity=2)
    return remove_small_objects(mask, min_size=min_size, connectivity=2)


@given(mask=arrays(bool, st.tuples(st.integers(1, 16), st.integers(1, 16))),
       min_size=st.integers(0, 6))  # fmt: skip
@settings(max_examples=60, deadline=None)
def test_clean_matches_scikit_image_and_scipy_on_binary_masks(mask, min_size):
    # objects: 8-connected, removed below min_size pixels
    expected = skimage_remove_small(mask, min_size)
    got = clean(mask, min_size=min_size, fill_holes=False)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, expected if min_size > 0 else mask)
    # holes: 4-connected background not reaching the border
    np.testing.assert_array_equal(
        clean(mask, min_size=0, max_hole=math.inf), ndi.binary_fill_holes(mask)
    )


# -- feather --------------------------------------------------------------------------


def test_feather_makes_a_monotone_symmetric_ramp():
    m = np.zeros((8, 64), np.uint8)
    m[:, 32:] = 255
    out = feather(m, 3)
    row = out[4].astype(int)
    assert (np.diff(row) >= 0).all() and row[0] == 0 and row[-1] == 255
    assert 0 < row[31] < 255 and 0 < row[32] < 255
    assert abs(row[31] + row[32] - 255) <= 2  # centred on the old edge
    inverted = feather(255 - m, 3).astype(int)
    assert np.abs(inverted + out - 255).max() <= 1


@pytest.mark.parametrize("value", [0, 255, 77])
def test_feather_keeps_constant_masks(value):
    m = np.full((10, 10), value, np.uint8)
    np.testing.assert_array_equal(feather(m, 4), m)


def test_feather_zero_radius_copies_and_bool_works():
    m = np.eye(4, dtype=bool)
    out = feather(m, 0)
    np.testing.assert_array_equal(out, m * np.uint8(255))
    with pytest.raises(ValueError, match=">= 0"):
        feather(m, -1)


# -- resize_mask ----------------------------------------------------------------------


@given(mask=arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6))),
       fy=st.integers(1, 4), fx=st.integers(1, 4))  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_nearest_upscale_by_integer_factors_repeats_pixels(mask, fy, fx):
    h, w = mask.shape
    out = resize_mask(mask, (h * fy, w * fx), method="nearest")
    np.testing.assert_array_equal(out, np.repeat(np.repeat(mask, fy, 0), fx, 1))


def test_resize_bilinear_matches_pillow_and_keeps_constants():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(m).resize((5, 7), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(resize_mask(m, (7, 5)), expected)
    np.testing.assert_array_equal(
        resize_mask(np.full((9, 9), 200, np.uint8), (4, 20)), np.full((4, 20), 200)
    )


def test_resize_mask_kinds():
    b = np.zeros((4, 4), bool)
    b[:2] = True
    assert resize_mask(b, (8, 8), method="nearest").dtype == np.bool_
    assert resize_mask(b, (8, 8)).dtype == np.uint8
    image = np.zeros((8, 2, 3), np.uint8)
    assert resize_mask(b, image.shape).shape == (8, 2)
    ms = MaskSet({"tops": b, "dress": ~b})
    small = resize_mask(ms, (2, 2), method="nearest")
    assert isinstance(small, MaskSet) and small.shape == (2, 2)
    assert small.classes == ("tops", "dress")
    np.testing.assert_array_equal(small["tops"], [[255, 255], [0, 0]])
    with pytest.raises(ValueError, match="method"):
        resize_mask(b, (2, 2), method="cubic")
    with pytest.raises(ValueError, match="positive"):
        resize_mask(b, (0, 2))


def test_merge_accepts_one_class_name():
    ms = MaskSet({"tops": np.full((1, 2), 7, np.uint8), "dress": np.full((1, 2), 9, np.uint8)})
    np.testing.assert_array_equal(merge(ms, "tops"), [[7, 7]])
