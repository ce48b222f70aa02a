"""Parsing: label maps with their label set, masks, soft class masks, index PNG files."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from clothseg_tools import CLASSES, MaskSet, Parsing
from clothseg_tools.errors import LabelSetError
from clothseg_tools.labelsets import LABELSETS, get_labelset, make_labelset

SETS = ["atr", "ootd", "lip", "cihp", "pascal_person_part", "fashn"]


def _members(labelset, cls):
    """Label indices whose classes include ``cls`` (from the set's classes, not its table)."""
    ls = get_labelset(labelset)
    return [i for i, name in enumerate(ls.labels) if cls in ls.classes[name]]


@st.composite
def label_maps(draw):
    name = draw(st.sampled_from(SETS))
    n = len(LABELSETS[name])
    shape = draw(st.tuples(st.integers(1, 12), st.integers(1, 12)))
    labels = draw(arrays(np.uint8, shape, elements=st.integers(0, n - 1)))
    return name, labels


@settings(max_examples=60, deadline=None)
@given(label_maps())
def test_hard_masks_are_the_labels_of_each_class(case):
    name, labels = case
    ms = Parsing(labels, name).to_maskset()
    assert ms.classes == CLASSES and ms.shape == labels.shape
    for cls in CLASSES:
        expected = np.isin(labels, _members(name, cls)).astype(np.uint8) * 255
        np.testing.assert_array_equal(ms[cls], expected, err_msg=cls)


@st.composite
def soft_parsings(draw):
    name, labels = draw(label_maps())
    n = len(LABELSETS[name])
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 6))
    raw = draw(arrays(np.float32, (n, h, w), elements=st.floats(0.0625, 1.0, width=32)))
    return name, labels, raw / raw.sum(axis=0, keepdims=True)


@settings(max_examples=60, deadline=None)
@given(soft_parsings())
def test_soft_masks_keep_the_hierarchy_and_range(case):
    name, labels, probs = case
    ms = Parsing(labels, name, probs=probs).to_maskset()
    s = ms.stack().astype(np.int32)
    idx = {c: i for i, c in enumerate(CLASSES)}
    parts = s[idx["tops"]] + s[idx["bottoms"]] + s[idx["dress"]]
    assert np.all(np.abs(s[idx["clothes"]] - parts) <= 3)  # sums, up to rounding
    for child in ("tops", "bottoms", "dress"):
        assert np.all(s[idx[child]] <= s[idx["clothes"]] + 1)
    for child in ("face", "hair"):
        assert np.all(s[idx[child]] <= s[idx["head"]] + 1)
    # all classes that never share a label are a partition of at most the whole pixel
    leaves = ("head", "clothes", "bag", "shoes", "acc", "body", "others")
    assert np.all(sum(s[idx[c]] for c in leaves) <= 255 + len(leaves))


@settings(max_examples=60, deadline=None)
@given(soft_parsings())
def test_soft_masks_at_the_probs_resolution_are_rounded_sums(case):
    name, _, probs = case
    labels = probs.argmax(axis=0).astype(np.uint8)
    ms = Parsing(labels, name, probs=probs).to_maskset()
    table = get_labelset(name).class_table().astype(np.float32)
    expected = np.einsum("nc,nhw->chw", table, probs.astype(np.float64)) * 255
    assert np.all(np.abs(ms.stack() - np.clip(expected, 0, 255)) <= 0.51)


@settings(max_examples=40, deadline=None)
@given(label_maps())
def test_one_hot_probs_give_the_hard_masks(case):
    name, labels = case
    n = len(LABELSETS[name])
    one_hot = (np.arange(n)[:, None, None] == labels[None]).astype(np.float32)
    soft = Parsing(labels, name, probs=one_hot).to_maskset()
    assert soft == Parsing(labels, name).to_maskset()


def test_upsampling_aligns_pixel_centres_like_segformer():
    # a 1 x 2 probability map upsampled to 1 x 4: align_corners=False samples the source
    # at (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped weights 0, .25, .75, 1
    probs = np.zeros((20, 1, 2), np.float32)
    probs[5] = [[0.0, 1.0]]  # Upper-clothes
    probs[0] = 1 - probs[5]
    ms = Parsing(np.zeros((1, 4), np.uint8), "lip", probs=probs).to_maskset(["tops"])
    np.testing.assert_array_equal(ms["tops"], [[0, 64, 191, 255]])


def test_upsampling_matches_opencv_half_pixel_resize():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    raw = rng.random((18, 7, 5), dtype=np.float32) + 0.05
    probs = raw / raw.sum(axis=0)
    ms = Parsing(np.zeros((45, 31), np.uint8), "atr", probs=probs).to_maskset(["tops", "head"])
    for cls in ("tops", "head"):
        sums = probs[_members("atr", cls)].sum(axis=0)
        ref = cv2.resize(sums, (31, 45), interpolation=cv2.INTER_LINEAR) * 255
        assert np.abs(ms[cls].astype(np.float32) - ref).max() <= 1.0


def test_a_region_stays_where_it_is_after_upsampling():
    # tops on the left 3 of 8 low-res columns -> the left 3/8 of the picture, no shift
    probs = np.zeros((18, 4, 8), np.float32)
    probs[4, :, :3] = 1
    probs[0, :, 3:] = 1
    tops = Parsing(np.zeros((40, 80), np.uint8), "atr", probs=probs).to_maskset(["tops"])["tops"]
    half = tops >= 128
    assert half[:, :30].all() and not half[:, 30:].any()


def test_probs_extent_maps_a_partly_covered_grid():
    # the map covers 2 of 4 probability columns (a padded model input); its last pixels
    # sample between columns 1 and 2, so column 2 is tops too, and column 3 padding
    probs = np.zeros((18, 1, 4), np.float32)
    probs[4, :, :3] = 1
    probs[0, :, 3:] = 1
    labels = np.zeros((1, 6), np.uint8)
    full = Parsing(labels, "atr", probs=probs[:, :, :2]).to_maskset(["tops"])
    part = Parsing(labels, "atr", probs=probs, probs_extent=(1, 2)).to_maskset(["tops"])
    assert full == part and full["tops"].min() == 255
    with pytest.raises(ValueError, match=r"probs_extent=\(1, 5\) must lie within"):
        Parsing(labels, "atr", probs=probs, probs_extent=(1, 5))
    with pytest.raises(ValueError, match="pass both or neither"):
        Parsing(labels, "atr", probs_extent=(1, 2))


def test_mask_of_names():
    labels = np.array([[14, 15, 0], [13, 2, 5]])
    p = Parsing(labels, "lip")
    np.testing.assert_array_equal(p.mask("Left-arm", "right arm"), [[1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(p.mask("face"), [[0, 0, 0], [1, 0, 0]])
    assert p.mask().dtype == bool and not p.mask().any()
    with pytest.raises(LabelSetError, match="not a label of the 'lip' set"):
        p.mask("Neck")


def test_properties_are_read_only_and_do_not_alias_the_input():
    labels = np.array([[1, 2]], np.int64)
    probs = np.full((19, 1, 1), 1 / 19, np.float64)
    p = Parsing(labels, "ootd", probs=probs)
    assert p.labels.dtype == np.uint8 and p.probs is not None and p.probs.dtype == np.float32
    assert not p.labels.flags.writeable and not p.probs.flags.writeable
    labels[0, 0] = 0
    assert p.labels[0, 0] == 1
    assert p.labelset is LABELSETS["ootd"] and p.shape == (1, 2)
    assert repr(p) == "Parsing(shape=(1, 2), labelset='ootd', probs)"
    own = np.array([[1]], np.uint8)
    Parsing(own, "atr")
    assert own.flags.writeable  # the caller's array is never frozen


def test_to_maskset_classes_order_and_aliases():
    p = Parsing(np.array([[4, 6]]), "atr")
    ms = p.to_maskset(["pants", "Upper_clothes", "accessories"])
    assert isinstance(ms, MaskSet)
    assert ms.classes == ("bottoms", "tops", "acc")
    np.testing.assert_array_equal(ms.stack(), [[[0, 255]], [[255, 0]], [[0, 0]]])
    with pytest.raises(ValueError, match="Unknown class name"):
        p.to_maskset(["sleeves"])


@pytest.mark.parametrize(
    ("labels", "labelset", "match"),
    [
        (np.array([[0, 25]]), "lip", r"value 25, outside label set 'lip' of 20 labels \(0\.\.19\)"),
        (np.array([[-1, 0]]), "atr", r"value -1, outside label set 'atr' of 18 labels"),
        (np.array([[18]]), "atr", r"Sets with room for 18: ootd, lip, cihp"),
    ],
)  # fmt: skip
def test_values_outside_the_set_are_named(labels, labelset, match):
    with pytest.raises(LabelSetError, match=match):
        Parsing(labels, labelset)


@pytest.mark.parametrize(
    ("labels", "probs", "error", "match"),
    [
        (np.zeros((2, 2, 1), np.uint8), None, ValueError, r"2-D \(H, W\) array.*\(2, 2, 1\)"),
        (np.zeros((2, 2), np.float32), None, ValueError, "must hold integers.*float32"),
        (np.zeros((2, 2), np.uint8), np.zeros((7, 2, 2)), LabelSetError, "7 channels.*'atr' has"),
        (np.zeros((2, 2), np.uint8), np.zeros((18, 2)), ValueError, r"\(C, h, w\)"),
        (np.zeros((2, 2), np.uint8), np.full((18, 1, 1), 3.5), LabelSetError, "logits.*softmax"),
        (np.zeros((2, 2), np.uint8), np.zeros((18, 1, 1), np.int64), ValueError, "floating point"),
    ],
)  # fmt: skip
def test_bad_arrays_get_fix_it_messages(labels, probs, error, match):
    with pytest.raises(error, match=match):
        Parsing(labels, "atr", probs=probs)


def test_a_batch_of_one_is_accepted_as_probs():
    probs = np.full((1, 18, 2, 2), 1 / 18, np.float32)
    assert Parsing(np.zeros((2, 2), np.uint8), "atr", probs=probs).probs.shape == (18, 2, 2)


def test_unknown_labelset_name():
    with pytest.raises(LabelSetError, match="Unknown label set 'lipp'"):
        Parsing(np.zeros((1, 1), np.uint8), "lipp")


# -- files ------------------------------------------------------------------------------


def _lip_map():
    labels = np.zeros((6, 5), np.uint8)
    labels[1:3] = 13
    labels[3:] = 5
    labels[5, 4] = 19
    return labels


def test_save_writes_a_palette_png_that_loads_back(tmp_path):
    p = Parsing(_lip_map(), "lip")
    p.save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as img:
        assert img.mode == "P"
        assert img.getpalette()[3 * 13 : 3 * 14] == [192, 0, 128]  # SCHP/VOC colour of 13
    assert Parsing.load(tmp_path / "a.png", "lip") == p
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (lambda a: Image.fromarray(a, mode="L"), "L"),
        (lambda a: Image.fromarray(a.astype(np.uint16)), "I;16"),
    ],
)
def test_grey_8_and_16_bit_maps_load(tmp_path, make, mode):
    img = make(_lip_map())
    assert img.mode == mode
    img.save(tmp_path / "g.png")
    np.testing.assert_array_equal(Parsing.load(tmp_path / "g.png", "lip").labels, _lip_map())


def test_sets_over_256_labels_use_16_bit_files(tmp_path):
    names = [f"part{i}" for i in range(300)]
    big = make_labelset("parts300", names, dict.fromkeys(names, ("body",)))
    labels = np.array([[0, 299], [256, 7]], np.uint16)
    p = Parsing(labels, big)
    assert p.labels.dtype == np.uint16
    p.save(tmp_path / "big.png")
    assert Parsing.load(tmp_path / "big.png", big) == p


def test_colour_pictures_and_wrong_sets_are_refused_with_the_file_name(tmp_path):
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(LabelSetError, match=r"rgb\.png is a RGB picture, not an index map"):
        Parsing.load(tmp_path / "rgb.png", "lip")
    Parsing(_lip_map(), "lip").save(tmp_path / "lip.png")
    with pytest.raises(LabelSetError, match=r"lip\.png: The parsing map holds the value 19, out"):
        Parsing.load(tmp_path / "lip.png", "atr")


def test_soft_post_processing_allocates_about_one_stack():
    # 18 labels at a quarter of the picture's size: the peak beyond the final uint8
    # stack is a few block-sized temporaries, because no full-size float channel is
    # ever made
    rng = np.random.default_rng(0)
    raw = rng.random((18, 512, 512), dtype=np.float32)
    p = Parsing(np.zeros((2048, 2048), np.uint8), "atr", probs=raw / raw.sum(axis=0))
    stack_bytes = 12 * 2048 * 2048
    tracemalloc.start()
    try:
        p.to_maskset()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 1.5 * stack_bytes
