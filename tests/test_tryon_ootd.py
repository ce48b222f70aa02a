"""The ``ootd`` try-on preset: OOTDiffusion's agnostic-mask rules on synthetic ATR + neck
parsing maps with OpenPose keypoints made here (see ``_ootd_support``)."""

from pathlib import Path

import numpy as np
import pytest
from _ootd_support import (
    BAG,
    BASE_POSE,
    BELT,
    DRESS,
    FACE,
    GLASSES,
    HAIR,
    HAT,
    LARM,
    LLEG,
    LSHOE,
    NECK,
    PANTS,
    RARM,
    RLEG,
    RSHOE,
    SCARF,
    SKIRT,
    UPPER,
    Outfit,
    figure,
    iou,
    reference_cases,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from clothseg_tools import MaskSet, Parsing, tryon_mask
from clothseg_tools.errors import KeypointError
from clothseg_tools.labelsets import get_labelset
from clothseg_tools.tryon import _ootd as R
from clothseg_tools.tryon import _ootd_sources as S
from clothseg_tools.tryon._ootd_front import _label_map

CATEGORIES = ("upper_body", "lower_body", "dresses")
MODEL_TYPES = ("hd", "dc")


def mask_of(outfit=None, category="upper_body", model_type="hd", *, neck=True, scale=1.0):
    lab, _, kp = figure(outfit, scale)
    small = R.resize_nearest(lab, R.WORK_SIZE)
    pts = R.openpose_points(kp)
    return small, R.agnostic_mask(small, category, pts, model_type=model_type, neck=neck)


# -- primitives ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(src=st.integers(1, 300), dst=st.integers(1, 300))
def test_nearest_indices_pick_the_pixels_pillow_picks(src, dst):
    strip = (np.arange(src) % 251).astype(np.uint8)[None, :]
    resized = np.asarray(Image.fromarray(strip).resize((dst, 1), Image.Resampling.NEAREST))[0]
    assert (strip[0, R.nearest_indices(src, dst)] == resized).all()


@settings(max_examples=30, deadline=None)
@given(
    mask=arrays(bool, st.tuples(st.integers(3, 40), st.integers(3, 40)), elements=st.booleans()),
    iterations=st.integers(1, 5),
)
def test_square_dilation_matches_opencv(mask, iterations):
    cv2 = pytest.importorskip("cv2")
    want = cv2.dilate(mask.astype(np.float32), np.ones((5, 5), np.uint16), iterations=iterations)
    assert (R.dilate_square(mask, 5, iterations) == (want > 0)).all()


@settings(max_examples=40, deadline=None)
@given(mask=arrays(bool, st.tuples(st.integers(3, 30), st.integers(3, 30)), elements=st.booleans()))
def test_fill_from_border_matches_a_flood_fill_from_the_corner(mask):
    cv2 = pytest.importorskip("cv2")
    img = (mask * 255).astype(np.uint8)
    img[[0, -1], :] = 0
    img[:, [0, -1]] = 0
    before = img.copy()
    cv2.floodFill(img, np.zeros((img.shape[0] + 2, img.shape[1] + 2), np.uint8), (0, 0), 255)
    want = (before > 0) | (img == 0)
    assert (R.fill_from_border(mask) == want).all()


def test_fill_from_border_fills_a_ring_but_not_a_diagonal_gap():
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert R.fill_from_border(ring)[2:7, 2:7].all()
    # background that only touches the outside diagonally is still a hole (4-connectivity)
    diag = np.zeros((7, 7), bool)
    diag[1:6, 1:6] = True
    diag[3, 3] = False
    diag[2, 2] = False
    assert R.fill_from_border(diag)[3, 3] and R.fill_from_border(diag)[2, 2]
    # the frame itself is always cleared
    assert not R.fill_from_border(np.ones((5, 5), bool))[0].any()


def test_largest_region_ranks_by_outline_area_not_pixel_count():
    m = np.zeros((20, 40), bool)
    m[2, 2:32] = True  # a 30-pixel line: its outline encloses nothing
    m[8:13, 10:15] = True  # a 25-pixel block
    kept = R.largest_region(m)
    assert kept[8:13, 10:15].all() and not kept[2].any()


def test_largest_region_joins_diagonal_neighbours_and_keeps_the_first_on_a_tie():
    m = np.zeros((10, 10), bool)
    m[1, 1] = m[2, 2] = True  # one region through the corner
    assert R.largest_region(m).sum() == 2
    twins = np.zeros((6, 12), bool)
    twins[1:4, 1:4] = True
    twins[1:4, 7:10] = True
    assert R.largest_region(twins)[1:4, 1:4].all() and not R.largest_region(twins)[:, 6:].any()


def test_coordinates_wrap_like_the_reference_uint16_cast():
    assert R._as_uint16(np.array([[-5.5, 3.9], [70000.2, 0.2]])) == [65531, 3, 4464, 0]


def test_drawn_arm_width_shoulder_disk_and_flat_wrist_end():
    arm = R.draw_arm(np.array([100.0, 100]), np.array([100.0, 150]), np.array([100.0, 200]), 60,
                     (300, 200))  # fmt: skip
    cols = np.flatnonzero(arm[150])
    assert 58 <= cols.size <= 62 and abs(cols.mean() - 100) <= 1
    assert arm[72, 100] and not arm[66, 100]  # shoulder disk of radius 30
    assert arm[199, 100] and not arm[203, 100]  # no round cap at the wrist


def test_drawn_arm_direction_matters_as_in_pillow():
    pts = [np.array(p, float) for p in ((150.0, 116), (136.0, 184), (126.4, 258.4))]
    a = R.draw_arm(*pts, 60, (512, 384))
    b = R.draw_arm(*pts, 60, (512, 384), from_wrist=True)
    assert iou(a, b) > 0.95  # the same arm, drawn from the other end


@pytest.mark.parametrize(
    ("flat", "expect"),
    [
        ([3.0, 4.0] * 18, (3.0, 4.0)),
        ([3.0, 4.0, 0.9] * 18, (3.0, 4.0)),
        ([3.0, 4.0, 0.0] * 18, (0.0, 0.0)),  # zero confidence: missing
        ([3.0, 4.0, 0.5] * 25, (3.0, 4.0)),  # BODY_25 shares the arm points
    ],
)
def test_openpose_layouts(flat, expect):
    assert tuple(R.openpose_points({"pose_keypoints_2d": flat})[4]) == expect


def test_openpose_bad_length_is_a_keypoint_error():
    with pytest.raises(KeypointError, match="18 or 25 points"):
        S.work_points({"pose_keypoints_2d": [1.0] * 10}, (512, 384), R.WORK_SIZE)


# -- the rules, by category -----------------------------------------------------------------

OUTFITS = {
    "long sleeves, pants": Outfit("long", "pants"),
    "short sleeves, shorts": Outfit("short", "shorts"),
    "no sleeves, skirt": Outfit("none", "skirt"),
    "dress": Outfit("short", "dress"),
    "accessories": Outfit("long", "pants", hat=True, glasses=True, bag=True, belt=True,
                          scarf=True),
}  # fmt: skip


@pytest.mark.parametrize("outfit", OUTFITS.values(), ids=OUTFITS.keys())
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("category", CATEGORIES)
def test_fixed_labels_are_never_painted(outfit, category, model_type):
    lab, m = mask_of(outfit, category, model_type)
    for fixed in (HAT, GLASSES, FACE, LSHOE, RSHOE, BAG):
        assert not m[lab == fixed].any(), fixed
    if category == "upper_body":
        assert not m[np.isin(lab, (PANTS, SKIRT))].any()
    if category == "lower_body":
        assert not m[np.isin(lab, (UPPER, LARM, RARM))].any()


@pytest.mark.parametrize("outfit", OUTFITS.values(), ids=OUTFITS.keys())
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("category", CATEGORIES)
def test_the_garment_of_the_category_is_painted(outfit, category, model_type):
    lab, m = mask_of(outfit, category, model_type)
    garment = {
        "upper_body": (UPPER, DRESS),
        "lower_body": (PANTS, SKIRT, LLEG, RLEG),
        "dresses": (UPPER, DRESS, PANTS, SKIRT),
    }[category]
    if category == "lower_body" and outfit.bottom == "dress":
        pytest.skip("two bare legs under a dress: see test_only_the_largest_region_stays")
    assert m[np.isin(lab, garment)].mean() > 0.99


def test_only_the_largest_region_stays():
    # lower_body on a dress: the dress is not the garment, the legs are, and their
    # dilations do not meet; the larger leg stays, the other is dropped
    lab, m = mask_of(Outfit("short", "dress"), "lower_body")
    left, right = m[lab == LLEG].mean(), m[lab == RLEG].mean()
    assert sorted([left, right]) == [0.0, 1.0]
    assert not m[lab == DRESS].all()


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_hands_outside_the_drawn_arm_are_kept(model_type):
    lab, m = mask_of(Outfit("none", "pants"), "upper_body", model_type)
    pts = R.openpose_points(figure()[2])
    for sh, el, wr, arm in ((2, 3, 4, RARM), (5, 6, 7, LARM)):
        reach = pts[el] + 1.2 * (pts[wr] - pts[el])
        drawn = R.draw_arm(pts[sh], pts[el], reach, R.ARM_WIDTH[model_type], lab.shape,
                           from_wrist=arm == LARM)  # fmt: skip
        hand = (lab == arm) & ~drawn
        assert hand.sum() > 50
        assert not m[hand].any()
        assert m[(lab == arm) & drawn].all()


def test_hd_arms_are_wider_than_dc_arms():
    _, hd = mask_of(Outfit("none", "pants"), "upper_body", "hd")
    _, dc = mask_of(Outfit("none", "pants"), "upper_body", "dc")
    assert hd.sum() > dc.sum()
    row = round(BASE_POSE[3][1])  # across the right elbow
    # the outer edge moves by half the width difference, (60 - 45) / 2 px
    outer = np.flatnonzero(dc[row])[0] - np.flatnonzero(hd[row])[0]
    assert outer == pytest.approx(7.5, abs=1)


@pytest.mark.parametrize("category", ("upper_body", "dresses"))
def test_a_missing_wrist_keeps_the_parsed_arm_and_no_hand(category):
    outfit = Outfit("none", "pants", missing=(4,))
    lab, m = mask_of(outfit, category)
    right = lab == RARM
    assert m[right].all()  # the whole parsed arm is painted, hand included
    assert not m[(lab == LARM) & (np.arange(lab.shape[0])[:, None] > 300)].any()  # left hand kept
    # on that side the painted arm follows the parsed arm grown by 8 px, not a drawn line
    grown = R.dilate_square(right, 5, 4)
    side = np.zeros_like(m)
    side[150:, :130] = True  # below the shoulder, outside the torso's reach
    assert ((m & side) == (grown & side)).all()


def test_lower_body_ignores_keypoints():
    lab, _, kp = figure(Outfit("long", "pants"))
    small = R.resize_nearest(lab, R.WORK_SIZE)
    with_kp = R.agnostic_mask(small, "lower_body", R.openpose_points(kp))
    assert (with_kp == R.agnostic_mask(small, "lower_body", None)).all()


def test_neck_rule_paints_the_neck_only_with_a_neck_label():
    lab, with_neck = mask_of(Outfit("none", "pants"), "upper_body", neck=True)
    _, without = mask_of(Outfit("none", "pants"), "upper_body", neck=False)
    neck = lab == NECK
    assert with_neck[neck].sum() > without[neck].sum()
    assert not with_neck[lab == FACE].any()


def test_hair_belts_and_scarves_are_painted_only_where_the_dilation_reaches():
    outfit = Outfit("long", "pants", belt=True, scarf=True, hat=False)
    lab, m = mask_of(outfit, "upper_body")
    assert m[lab == SCARF].any()  # inside the painted top: not protected
    assert not m[lab == BELT].all()  # the belt's lower edge is over the kept pants line
    top_of_hair = (lab == HAIR) & (np.arange(lab.shape[0])[:, None] < 40)
    assert not m[top_of_hair].any()  # far from every painted region


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_result_is_one_region_without_holes(category, model_type):
    from skimage.measure import label

    _, m = mask_of(Outfit("short", "skirt", bag=True), category, model_type)
    assert label(m, connectivity=2).max() == 1
    assert (R.fill_from_border(m) == m).all()


# -- hand-derived masks ----------------------------------------------------------------------


def test_lower_body_by_hand():
    lab = np.zeros((512, 384), np.uint8)
    lab[150:300, 140:241] = UPPER
    lab[300:400, 150:231] = PANTS
    lab[400:420, 150:231] = LSHOE
    m = R.agnostic_mask(lab, "lower_body", None)
    # pants grown by 10 px (5 x 5 square, 5 times), minus the top above and the shoes
    # below, which leaves two 10 px strips beside the shoes
    want = np.zeros_like(m)
    want[300:410, 140:241] = True
    want[400:410, 150:231] = False
    assert (m == want).all()


def test_upper_body_by_hand():
    lab = np.zeros((512, 384), np.uint8)
    lab[100:200, 150:231] = UPPER
    lab[200:300, 160:221] = SKIRT
    lab[30:90, 170:211] = FACE
    pts = np.zeros((18, 2))  # no arms: both wrists missing
    m = R.agnostic_mask(lab, "upper_body", pts)
    want = np.zeros_like(m)
    want[90:200, 140:241] = True  # the top grown by 10 px, minus the face and the skirt
    want[200:210, 140:160] = want[200:210, 221:241] = True  # beside the skirt
    assert (m == want).all()


def test_vertical_arm_by_hand():
    lab = np.zeros((512, 384), np.uint8)
    lab[100:260, 85:116] = RARM
    pts = np.zeros((18, 2))
    pts[2], pts[3], pts[4] = (100, 100), (100, 150), (100, 200)  # shoulder, elbow, wrist
    m = R.agnostic_mask(lab, "upper_body", pts, model_type="hd")
    y, x = np.mgrid[:512, :384]
    # arm: 60 px wide from the shoulder to the wrist pushed to y = 210, a disk of radius
    # 30 on the shoulder; grown by 8 px (4 times the 5 x 5 square)
    rect = (abs(x - 100) <= 38) & (y >= 92) & (y <= 218)
    dx = np.maximum(abs(x - 100) - 8, 0)
    dy = np.maximum(abs(y - 100) - 8, 0)
    disk = np.hypot(dx, dy) <= 30
    hand = (lab == RARM) & (y > 211)
    want = (rect | disk) & ~hand
    assert iou(m, want) > 0.98
    assert not m[hand].any()


# -- agreement with the reference ------------------------------------------------------------

REFERENCE = Path(__file__).parent / "data" / "ootd_reference.npz"


def test_masks_agree_with_the_reference_implementation():
    """``data/ootd_reference.npz`` holds the masks OOTDiffusion's own ``get_mask_location``
    (levihsu/OOTDiffusion, run/utils_ootd.py, with its OpenCV and Pillow calls) made for
    ``reference_cases()``: 16 outfits, sources of 0.75x, 1x and 2x 384 x 512, every
    category and model type. The preset returns them at the source's size; the
    reference's 384 x 512 masks are upscaled the way its pipeline does (nearest)."""
    stored = np.load(REFERENCE)
    scores = {}
    for case, outfit, scale, category, model_type in reference_cases():
        lab, _, kp = figure(outfit, scale)
        h, w = lab.shape
        ref = np.unpackbits(stored[case])[: 512 * 384].reshape(512, 384).astype(bool)
        got = tryon_mask(
            Parsing(lab, "ootd"), category, keypoints=kp, preset="ootd", model_type=model_type
        )
        assert got.shape == (h, w)
        scores[case] = iou(got, R.resize_nearest(ref, (w, h)))
    values = np.array(list(scores.values()))
    assert len(values) == 96
    assert values.mean() >= 0.99, sorted(scores.items(), key=lambda kv: kv[1])[:5]
    assert values.min() >= 0.97, sorted(scores.items(), key=lambda kv: kv[1])[:5]


# ATR labels as the service's twelve classes (what a MaskSet of the same figure holds)
SERVICE_CLASSES = {
    "face": [FACE],
    "hair": [HAIR],
    "head": [FACE, HAIR, HAT],
    "tops": [UPPER],
    "bottoms": [PANTS, SKIRT],
    "dress": [DRESS],
    "acc": [GLASSES, BELT, SCARF],
    "shoes": [LSHOE, RSHOE],
    "body": [LARM, RARM, LLEG, RLEG, NECK],
    "bag": [BAG],
}


def test_a_maskset_with_named_keypoints_comes_close_to_the_reference():
    """From the twelve classes the arms, legs and neck are guessed from ``body`` and the
    skeleton, so the agreement is lower than from an ATR map, but still close."""
    stored = np.load(REFERENCE)
    scores = []
    for case, outfit, scale, category, model_type in reference_cases():
        if model_type == "dc":
            continue  # the body split is the same for both; half the cases suffice
        lab, pose, _ = figure(outfit, scale)
        h, w = lab.shape
        ms = MaskSet({name: np.isin(lab, ids) for name, ids in SERVICE_CLASSES.items()})
        named = {S.BODY_18[i]: p for i, p in pose.items()}
        got = tryon_mask(ms, category, keypoints=named, preset="ootd", model_type=model_type)
        ref = np.unpackbits(stored[case])[: 512 * 384].reshape(512, 384).astype(bool)
        scores.append(iou(got, R.resize_nearest(ref, (w, h))))
    assert np.mean(scores) >= 0.98
    assert min(scores) >= 0.94


def test_named_keypoints_are_scaled_from_the_source_and_openpose_from_its_frame():
    pts = S.work_points({"right_wrist": (300, 400, 0.9), "left_wrist": (1, 2, 0.0)}, (1024, 768),
                        (384, 512))  # fmt: skip
    assert pts[4].tolist() == [150.0, 200.0]
    assert pts[7].tolist() == [0.0, 0.0]  # zero score: missing
    flat = [0.0, 0.0] * 18
    flat[8:10] = [100.0, 200.0]
    pts = S.work_points(
        {"pose_keypoints_2d": flat}, (1024, 768), (768, 1024), keypoint_size=(384, 512)
    )
    assert pts[4].tolist() == [200.0, 400.0]


def test_neck_point_defaults_to_between_the_shoulders():
    pts = S.work_points({"right_shoulder": (100, 100), "left_shoulder": (200, 120)}, (512, 384),
                        (384, 512))  # fmt: skip
    assert pts[1].tolist() == [150.0, 110.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"preset": "viton"}, ValueError, "preset must be"),
        ({"preset": "ootd", "model_type": "xl"}, ValueError, "model_type"),
        ({"preset": "ootd", "hull": True}, ValueError, "hull only apply"),
        ({"preset": "ootd", "dilate": 0.05, "keep": ["acc"]}, ValueError, "dilate, keep"),
        ({"preset": "ootd", "work_size": 512}, ValueError, "width, height"),
        ({"preset": "ootd", "work_size": (8, 8)}, ValueError, "at least 16"),
        ({"preset": "ootd", "keypoints": None}, KeypointError, "draws the arms"),
        ({"preset": "ootd", "keypoints": [(1, 2)]}, KeypointError, "mapping of names"),
        ({"preset": "ootd", "keypoints": {"left_wrist": "x"}}, KeypointError, "left_wrist"),
        ({"preset": "default", "work_size": (384, 512)}, ValueError, "one number"),
    ],
)
def test_bad_options_say_what_to_do(kwargs, error, match):
    lab, _, _ = figure()
    ms = MaskSet({name: np.isin(lab, ids) for name, ids in SERVICE_CLASSES.items()})
    with pytest.raises(error, match=match):
        tryon_mask(ms, "upper_body", **kwargs)


def test_lower_body_needs_no_keypoints_and_other_sources_are_refused():
    lab, _, _ = figure(Outfit("long", "pants"))
    ms = MaskSet({name: np.isin(lab, ids) for name, ids in SERVICE_CLASSES.items()})
    m = tryon_mask(ms, "lower_body", preset="ootd")
    assert m[lab == PANTS].all() and not m[lab == UPPER].any()
    with pytest.raises(TypeError, match="Parsing"):
        tryon_mask(lab, "lower_body", preset="ootd")


def test_default_preset_is_unchanged_by_the_new_options():
    lab, pose, _ = figure()
    ms = MaskSet({name: np.isin(lab, ids) for name, ids in SERVICE_CLASSES.items()})
    named = {S.BODY_18[i]: p for i, p in pose.items()}
    a = tryon_mask(ms, "upper_body", keypoints=named)
    b = tryon_mask(ms, "upper_body", keypoints=named, preset="default", work_size=512)
    assert (a == b).all()


@pytest.mark.parametrize("work_size", [(192, 256), (768, 1024)])
def test_other_working_sizes_scale_the_rules(work_size):
    lab, _, kp = figure(Outfit("none", "skirt"), 2.0)
    base = tryon_mask(Parsing(lab, "ootd"), "upper_body", keypoints=kp, preset="ootd")
    other = tryon_mask(
        Parsing(lab, "ootd"), "upper_body", keypoints=kp, preset="ootd", work_size=work_size
    )
    # the arm width follows the working height, the 5 x 5 kernels stay in pixels (as
    # in the reference): close, not equal
    assert other.shape == base.shape
    assert iou(base, other) > 0.8
    assert other[lab == UPPER].all()
    assert other[np.isin(lab, (FACE, SKIRT))].mean() < 0.02  # edges of coarse pixels only


# -- Parsing sources in other label sets ------------------------------------------------------

OOTD_NAMES = get_labelset("ootd").labels


def convert(lab, target, fallback):
    """The ootd map ``lab`` in label set ``target``: each label by its name, or by
    ``fallback`` (ootd name -> target name) where the set has no such label."""
    ls = get_labelset(target)
    table = np.array([ls.index(fallback.get(n, n)) for n in OOTD_NAMES], np.uint8)
    return Parsing(table[lab], target)


def ootd_run(lab, category, kp, *, neck):
    small = R.resize_nearest(lab, R.WORK_SIZE)
    return R.agnostic_mask(small, category, R.openpose_points(kp), neck=neck)


@pytest.mark.parametrize("category", CATEGORIES)
def test_an_atr_parsing_is_read_as_is_without_the_neck_rule(category):
    lab, _, kp = figure(Outfit("short", "skirt", hat=True, bag=True))
    atr = lab.copy()
    atr[atr == NECK] = FACE  # the ATR parser calls the neck face
    got = tryon_mask(Parsing(atr, "atr"), category, keypoints=kp, preset="ootd")
    assert (got == ootd_run(atr, category, kp, neck=False)).all()
    assert not got[lab == NECK].any()  # face to ATR: fixed, as in the reference


@pytest.mark.parametrize("category", CATEGORIES)
def test_lip_and_cihp_parsings_take_the_atr_roles_by_name(category):
    lab, _, kp = figure(Outfit("long", "pants", hat=True, glasses=True, scarf=True))
    lip = convert(lab, "lip", {"Neck": "Face", "Belt": "Background", "Bag": "Background"})
    no_neck = lab.copy()
    no_neck[no_neck == NECK] = FACE
    got = tryon_mask(lip, category, keypoints=kp, preset="ootd")
    assert (got == ootd_run(no_neck, category, kp, neck=False)).all()
    # CIHP's torso skin is the neck label's role
    cihp = convert(lab, "cihp", {"Neck": "Torso-skin", "Belt": "Background", "Bag": "Background"})
    got = tryon_mask(cihp, category, keypoints=kp, preset="ootd")
    assert (got == ootd_run(lab, category, kp, neck=True)).all()


FASHN_NAMES = {
    "Upper-clothes": "top", "Sunglasses": "glasses", "Neck": "torso",
    "Left-arm": "arms", "Right-arm": "arms", "Left-leg": "legs", "Right-leg": "legs",
    "Left-shoe": "feet", "Right-shoe": "feet",
}  # fmt: skip


@pytest.mark.parametrize("category", CATEGORIES)
def test_fashn_arms_and_legs_without_a_side_are_split_by_the_skeleton(category):
    lab, _, kp = figure(Outfit("none", "shorts", bag=True, belt=True))
    fashn = convert(lab, "fashn", FASHN_NAMES)
    labels, neck = _label_map(fashn, R.openpose_points(kp), R.WORK_SIZE, 128)
    small = R.resize_nearest(lab, R.WORK_SIZE)
    assert neck
    for side in (LARM, RARM, LLEG, RLEG):
        assert iou(labels == side, small == side) > 0.97, side
    got = tryon_mask(fashn, category, keypoints=kp, preset="ootd")
    assert iou(got, ootd_run(lab, category, kp, neck=True)) > 0.99


def test_pascal_person_part_paints_the_torso_and_keeps_the_head():
    lab, _, kp = figure(Outfit("short", "pants"))
    pascal = np.zeros_like(lab)
    pascal[np.isin(lab, (FACE, HAIR, HAT, NECK))] = 1  # Head
    pascal[np.isin(lab, (UPPER, DRESS))] = 2  # Torso
    pascal[np.isin(lab, (LARM, RARM))] = 3  # Upper Arms
    pascal[np.isin(lab, (LLEG, RLEG, PANTS))] = 5  # Upper Legs
    got = tryon_mask(Parsing(pascal, "pascal_person_part"), "upper_body", keypoints=kp,
                     preset="ootd")  # fmt: skip
    assert got[pascal == 2].all() and not got[pascal == 1].any()


def test_unknown_labels_are_kept_like_background():
    roles = S.label_roles("mine", ["background", "jewelry", "Upper_Clothes", "left arm", "wings"])
    assert roles.tolist() == [0, 0, UPPER, LARM, 0]


def test_the_default_preset_reads_a_parsing_through_its_classes():
    lab, _, _ = figure(Outfit("long", "pants"))
    p = Parsing(lab, "ootd")
    assert (tryon_mask(p, "lower_body") == tryon_mask(p.to_maskset(), "lower_body")).all()


@settings(max_examples=25, deadline=None)
@given(
    jitter=st.lists(st.tuples(st.floats(-25, 25), st.floats(-25, 25)), min_size=18, max_size=18),
    category=st.sampled_from(CATEGORIES),
    model_type=st.sampled_from(MODEL_TYPES),
    missing=st.sets(st.sampled_from([4, 7]), max_size=2),
)
def test_any_pose_keeps_the_fixed_labels_and_gives_one_solid_region(
    jitter, category, model_type, missing
):
    from skimage.measure import label

    points = zip(BASE_POSE.items(), jitter, strict=True)
    pose = {k: (x + dx, y + dy) for (k, (x, y)), (dx, dy) in points}
    outfit = Outfit("short", "skirt", hat=True, glasses=True, bag=True, missing=tuple(missing),
                    pose=pose)  # fmt: skip
    lab, m = mask_of(outfit, category, model_type)
    assert not m[np.isin(lab, (HAT, GLASSES, FACE, LSHOE, RSHOE, BAG))].any()
    assert label(m, connectivity=2).max() <= 1
    assert (R.fill_from_border(m) == m).all()


def test_side_less_arms_fall_back_to_the_midline_without_both_limbs():
    lab, _, kp = figure(Outfit("none", "pants", missing=(2, 3, 4)))  # right arm not found
    fashn = convert(lab, "fashn", FASHN_NAMES)
    labels, _ = _label_map(fashn, R.openpose_points(kp), R.WORK_SIZE, 128)
    small = R.resize_nearest(lab, R.WORK_SIZE)
    assert (labels[small == RARM] == RARM).all() and (labels[small == LARM] == LARM).all()


def test_a_missing_elbow_draws_the_forearm_to_the_corner_as_the_reference_does():
    # the wrist is there, so the arm is drawn; the missing elbow is OpenPose's (0, 0)
    _, m = mask_of(Outfit("long", "pants", missing=(6,)), "upper_body")
    assert m[:20, :20].any()  # the line reaches the top-left corner
    _, whole = mask_of(Outfit("long", "pants"), "upper_body")
    assert not whole[:20, :20].any()

