"""Try-on masks on synthetic parsing maps whose right answer is known by construction."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.draw import ellipse, polygon

from clothseg_tools import MaskSet, agnostic_image, garment_mask, tryon_mask
from clothseg_tools.errors import ShapeMismatchError

CATEGORIES = ("upper_body", "lower_body", "dresses")

# A front-facing figure on a 400 x 240 canvas (x, y), scaled as asked.
KEYPOINTS = {
    "nose": (120, 45),
    "left_shoulder": (150, 85), "right_shoulder": (90, 85),
    "left_elbow": (158, 140), "right_elbow": (82, 140),
    "left_wrist": (162, 190), "right_wrist": (78, 190),
    "left_hip": (138, 195), "right_hip": (102, 195),
    "left_knee": (136, 280), "right_knee": (104, 280),
    "left_ankle": (136, 360), "right_ankle": (104, 360),
}  # fmt: skip


def figure(scale=1.0, outfit="top_pants"):
    """Masks, keypoints and the known regions (hands, elbows, shins) of a figure."""
    h, w = int(400 * scale), int(240 * scale)
    m = {
        k: np.zeros((h, w), bool)
        for k in ("hair", "face", "tops", "bottoms", "dress", "shoes", "body", "acc")
    }
    known = {k: np.zeros((h, w), bool) for k in ("hands", "elbows", "shins")}

    def poly(target, pts):
        rr, cc = polygon([p[1] * scale for p in pts], [p[0] * scale for p in pts], (h, w))
        target[rr, cc] = True

    def ell(target, cy, cx, ry, rx):
        target[ellipse(cy * scale, cx * scale, ry * scale, rx * scale, shape=(h, w))] = True

    def limb(target, a, b, width):
        a, b = np.array(a, float), np.array(b, float)
        d = b - a
        n = np.array([-d[1], d[0]]) / np.hypot(*d) * width / 2
        poly(target, [a + n, b + n, b - n, a - n])

    limb(m["body"], (120, 60), (120, 90), 22)  # neck
    for side in ("left", "right"):
        sh, el, wr = (KEYPOINTS[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist"))
        limb(m["body"], sh, el, 20)
        limb(m["body"], el, wr, 17)
        ell(known["elbows"], el[1], el[0], 5, 5)
        ell(known["hands"], wr[1] + 12, wr[0], 14, 8)
        hip, kn, an = (KEYPOINTS[f"{side}_{j}"] for j in ("hip", "knee", "ankle"))
        limb(m["body"], hip, kn, 30)
        limb(m["body"], kn, an, 22)
        ell(known["shins"], 330, kn[0], 6, 5)
        ell(m["shoes"], 372, an[0] + (4 if side == "left" else -4), 10, 16)
    m["body"] |= known["hands"]
    ell(m["face"], 45, 120, 24, 18)
    ell(m["hair"], 28, 120, 16, 22)
    ell(m["acc"], 40, 120, 4, 14)  # glasses
    m["hair"] &= ~m["face"]
    if outfit == "top_pants":
        poly(m["tops"], [(88, 80), (152, 80), (145, 200), (95, 200)])
        limb(m["tops"], KEYPOINTS["left_shoulder"], (156, 125), 26)
        limb(m["tops"], KEYPOINTS["right_shoulder"], (84, 125), 26)
        poly(
            m["bottoms"],
            [
                (84, 196),
                (156, 196),
                (156, 300),
                (148, 356),
                (124, 356),
                (120, 250),
                (116, 356),
                (92, 356),
                (84, 300),
            ],
        )
        known["shins"][:] = False  # under the trousers
    else:
        poly(m["dress"], [(88, 80), (152, 80), (145, 190), (165, 300), (75, 300)])
    for k in ("tops", "bottoms", "dress", "face", "shoes"):
        m["body"] &= ~m[k]
    m["tops"] &= ~m["bottoms"]
    m["face"] &= ~m["acc"]
    for k in known:
        known[k] &= m["body"]
    kp = {k: (x * scale, y * scale) for k, (x, y) in KEYPOINTS.items()}
    return MaskSet(m), kp, known


@pytest.fixture(scope="module")
def top_pants():
    return figure(1.0, "top_pants")


@pytest.fixture(scope="module")
def dress():
    return figure(1.0, "dress")


OPTIONS = [{}, {"hull": True}, {"box": True}, {"dilate": 0.1}, {"fill_holes": False}]


@pytest.mark.parametrize("outfit", ["top_pants", "dress"])
@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("use_keypoints", [False, True])
@pytest.mark.parametrize("options", OPTIONS)
def test_protected_regions_are_never_masked(outfit, category, use_keypoints, options):
    ms, kp, known = figure(1.0, outfit)
    mask = tryon_mask(ms, category, keypoints=kp if use_keypoints else None, **options)
    assert mask.dtype == np.bool_ and mask.shape == ms.shape
    for name in ("face", "hair", "shoes", "acc"):
        assert not mask[ms[name] > 0].any(), name
    assert not mask[known["hands"]].any()
    if category == "upper_body":
        assert not mask[ms["bottoms"] > 0].any()
    if category == "lower_body":
        assert not mask[ms["tops"] > 0].any()
        assert not mask[known["elbows"]].any()  # arms are kept when trousers change


@pytest.mark.parametrize("use_keypoints", [False, True])
def test_replacing_tops_masks_the_top_and_arms_only(top_pants, use_keypoints):
    ms, kp, known = top_pants
    mask = tryon_mask(ms, "upper_body", keypoints=kp if use_keypoints else None)
    assert mask[ms["tops"] > 0].all()
    assert mask[known["elbows"]].all()  # a long sleeve may cover bare arms
    assert not mask[ms["bottoms"] > 0].any()
    garment = garment_mask(ms, "upper_body")
    np.testing.assert_array_equal(garment, ms["tops"] > 0)


@pytest.mark.parametrize("use_keypoints", [False, True])
def test_replacing_bottoms_masks_trousers_and_legs(dress, top_pants, use_keypoints):
    ms, kp, known = top_pants
    mask = tryon_mask(ms, "lower_body", keypoints=kp if use_keypoints else None)
    assert mask[ms["bottoms"] > 0].all()
    ms, kp, known = dress
    mask = tryon_mask(ms, "lower_body", keypoints=kp if use_keypoints else None)
    assert mask[known["shins"]].all()  # bare legs a new skirt or trousers may cover
    hip = int(KEYPOINTS["left_hip"][1]) + 15
    dress_mask = ms["dress"] > 0
    assert mask[hip:][dress_mask[hip:]].all()  # the dress below the hips
    assert not mask[:80][dress_mask[:80]].any()  # but not its top


def test_dress_is_split_at_the_hip_keypoints(dress):
    ms, kp, _ = dress
    hip = int(KEYPOINTS["left_hip"][1])
    upper = garment_mask(ms, "upper_body", keypoints=kp)
    lower = garment_mask(ms, "lower_body", keypoints=kp)
    full = garment_mask(ms, "dresses", keypoints=kp)
    np.testing.assert_array_equal(upper | lower, full)
    assert not (upper & lower).any()
    rows_up, rows_low = np.flatnonzero(upper.any(1)), np.flatnonzero(lower.any(1))
    assert abs(rows_up[-1] + 1 - hip) <= 1 and abs(rows_low[0] - hip) <= 1


def test_dresses_cover_everything_worn_but_not_hands_or_feet(top_pants):
    ms, kp, known = top_pants
    for keypoints in (None, kp):
        mask = tryon_mask(ms, "dresses", keypoints=keypoints)
        assert mask[(ms["tops"] > 0) | (ms["bottoms"] > 0)].all()
        assert mask[known["elbows"]].all()
        assert not mask[known["hands"]].any() and not mask[ms["shoes"] > 0].any()


@pytest.mark.parametrize("category", CATEGORIES)
def test_mask_grows_with_the_image_in_proportion(category):
    small, kp_small, _ = figure(1.0)
    large, kp_large, _ = figure(2.0)
    a = tryon_mask(small, category, keypoints=kp_small).sum()
    b = tryon_mask(large, category, keypoints=kp_large).sum()
    assert b / a == pytest.approx(4.0, rel=0.06)


def test_dilation_is_a_fraction_of_the_image_side(top_pants):
    ms, _, _ = top_pants
    tops = ms["tops"] > 0
    from scipy import ndimage

    worn = tops | (ms["body"] > 0)  # the top and the skin it may cover
    distance = ndimage.distance_transform_edt(~worn)
    for dilate in (0.02, 0.05):
        mask = tryon_mask(ms, "upper_body", dilate=dilate)
        radius = dilate * max(ms.shape)
        outside = mask & ~worn
        # grows about `radius` into the background, never much farther
        assert distance[outside].max() <= radius + 2 * (max(ms.shape) / 512 + 1)
        assert distance[outside].max() >= radius - 2
    # without dilation, only the top and skin, up to the work resolution's blocks
    bare = tryon_mask(ms, "upper_body", dilate=0)
    assert distance[bare].max() <= 1


def test_holes_are_filled_and_strays_dropped():
    h, w = 200, 200
    tops = np.zeros((h, w), bool)
    tops[40:160, 50:150] = True
    tops[90:110, 90:110] = False  # a hole the segmentation missed
    tops[5:10, 190:195] = True  # a stray blob far away
    near = np.zeros((h, w), bool)
    near[40:160, 153:158] = True  # a strip 3 px from the garment
    ms = MaskSet({"tops": tops | near})
    mask = tryon_mask(ms, "upper_body", dilate=0.01)
    assert mask[90:110, 90:110].all()
    assert not mask[5:10, 190:195].any()
    assert mask[near].all()
    open_hole = tryon_mask(ms, "upper_body", dilate=0, fill_holes=False)
    assert not open_hole[95:105, 95:105].any()


def test_hull_and_box_grow_the_region_but_protect_last(top_pants):
    ms, kp, known = top_pants
    base = tryon_mask(ms, "upper_body", keypoints=kp)
    hull = tryon_mask(ms, "upper_body", keypoints=kp, hull=True)
    box = tryon_mask(ms, "upper_body", keypoints=kp, box=True)
    assert (base <= hull).all() and (hull <= box).all()
    assert hull.sum() > base.sum() and box.sum() > hull.sum()
    rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
    protected = (ms["face"] > 0) | (ms["hair"] > 0) | (ms["bottoms"] > 0) | known["hands"]
    corner = np.zeros_like(box)
    corner[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    assert not (box & protected).any()
    assert (box | protected | (ms["acc"] > 0))[corner].mean() > 0.98


def test_keep_protects_more_classes():
    h, w = 100, 100
    tops = np.zeros((h, w), bool)
    tops[20:80, 20:80] = True
    belt = np.zeros((h, w), bool)
    belt[70:75, 20:80] = True
    ms = MaskSet({"tops": tops, "acc": belt})
    assert tryon_mask(ms, "upper_body")[belt].all()  # an accessory on the body goes
    assert not tryon_mask(ms, "upper_body", keep=("acc",))[belt].any()


def test_clothes_stands_in_without_finer_classes():
    h, w = 200, 100
    clothes = np.zeros((h, w), bool)
    clothes[40:190, 20:80] = True
    ms = MaskSet({"clothes": clothes})
    upper = tryon_mask(ms, "upper_body", dilate=0)
    lower = tryon_mask(ms, "lower_body", dilate=0)
    assert upper[45, 20:80].all() and not upper[185].any()
    assert lower[185, 20:80].all() and not lower[45].any()


def test_hidden_keypoints_are_ignored(top_pants):
    ms, kp, _ = top_pants
    hidden = {k: (x, y, 0) for k, (x, y) in kp.items()}
    np.testing.assert_array_equal(
        tryon_mask(ms, "upper_body", keypoints=hidden), tryon_mask(ms, "upper_body")
    )
    visible = {k: (x, y, 0.9) for k, (x, y) in kp.items()}
    np.testing.assert_array_equal(
        tryon_mask(ms, "upper_body", keypoints=visible), tryon_mask(ms, "upper_body", keypoints=kp)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"category": "shoes"}, "category must be one of"),
        ({"category": "upper_body", "dilate": 0.9}, "dilate"),
        ({"category": "upper_body", "work_size": 4}, "work_size"),
        ({"category": "upper_body", "keypoints": {"left_wrist": (1,)}}, "keypoint"),
    ],
)
def test_bad_arguments(top_pants, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tryon_mask(top_pants[0], **kwargs)


def test_empty_and_tiny_sets_do_not_fail():
    assert not tryon_mask(MaskSet({}, shape=(5, 7)), "dresses").any()
    one = MaskSet({"tops": np.ones((1, 1), bool)})
    assert tryon_mask(one, "upper_body").tolist() == [[True]]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(16, 90),
    st.integers(16, 90),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "face",
                    "hair",
                    "head",
                    "tops",
                    "bottoms",
                    "dress",
                    "shoes",
                    "bag",
                    "body",
                    "acc",
                    "clothes",
                ]
            ),
            st.floats(0, 1),
            st.floats(0, 1),
            st.floats(0, 1),
            st.floats(0, 1),
        ),
        max_size=12,
    ),
    st.sampled_from(CATEGORIES),
    st.booleans(),
    st.booleans(),
)
def test_protection_holds_on_random_layouts(h, w, boxes, category, hull, box):
    masks = {}
    for name, y0, x0, y1, x1 in boxes:
        m = masks.setdefault(name, np.zeros((h, w), bool))
        ya, yb = sorted((int(y0 * h), int(y1 * h)))
        xa, xb = sorted((int(x0 * w), int(x1 * w)))
        m[ya : yb + 1, xa : xb + 1] = True
    ms = MaskSet(masks, shape=(h, w))
    mask = tryon_mask(ms, category, hull=hull, box=box, work_size=32)
    never = np.zeros((h, w), bool)
    for name in ("face", "hair", "head", "shoes", "bag"):
        never |= ms.get_or_empty(name) > 0
    if category == "upper_body":
        never |= ms.get_or_empty("bottoms") > 0
    if category == "lower_body":
        never |= ms.get_or_empty("tops") > 0
    assert not (mask & never).any()
    garment = garment_mask(ms, category)
    if not (hull or box):
        # everything masked lies within the dilation of garment and skin
        radius = 0.02 * max(h, w) + 2 * -(-max(h, w) // 32)
        from scipy import ndimage

        reach = ndimage.distance_transform_edt(~(garment | (ms.get_or_empty("body") > 0)))
        assert (reach[mask] <= radius + 1).all()


def test_agnostic_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    mask = np.zeros((6, 5), bool)
    mask[1:3, 1:4] = True
    out = agnostic_image(img, mask)
    assert out.shape == img.shape and out is not img
    assert (out[mask][:, :3] == 128).all()
    np.testing.assert_array_equal(out[~mask], img[~mask])
    np.testing.assert_array_equal(out[..., 3], img[..., 3])  # alpha kept
    soft = np.zeros((6, 5), np.uint8)
    soft[0, 0] = 128
    blended = agnostic_image(img[..., :3], soft, fill=(0, 0, 0))
    np.testing.assert_allclose(blended[0, 0], img[0, 0, :3].astype(float) * 127 / 255, atol=1)
    with pytest.raises(ShapeMismatchError, match=r"\(5, 6\).*\(6, 5\)"):
        agnostic_image(img, np.zeros((5, 6), bool))
    with pytest.raises(ValueError, match="fill"):
        agnostic_image(img, mask, fill=(300, 0, 0))
