import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageFilter, ImageOps

from clothseg_tools import (
    CLASSES,
    PALETTE,
    MaskSet,
    cutout,
    estimate_foreground,
    label_map,
    overlay,
    replace_background,
)
from clothseg_tools import ops as ops_module
from clothseg_tools.errors import ShapeMismatchError

BLOCK_BYTES = st.sampled_from([1, 13, 200, ops_module._BLOCK_BYTES])


@contextlib.contextmanager
def block_bytes(n):
    old = ops_module._BLOCK_BYTES
    ops_module._BLOCK_BYTES = n
    try:
        yield
    finally:
        ops_module._BLOCK_BYTES = old


@st.composite
def image_and_mask(draw, max_side=12):
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    img = draw(arrays(np.uint8, (h, w, 3)))
    # any value; mostly 0/255 with a few soft pixels (the select-then-blend path); all hard
    elements = draw(st.sampled_from(["any", "mostly_hard", "hard"]))
    values = {
        "any": st.integers(0, 255),
        "mostly_hard": st.sampled_from([0, 0, 0, 255, 255, 255, 1, 128, 254]),
        "hard": st.sampled_from([0, 255]),
    }[elements]
    mask = draw(arrays(np.uint8, (h, w), elements=values))
    return img, mask


def reference_blend(fg, bg, a):
    a = a.astype(np.int64)[..., None]
    return ((fg.astype(np.int64) * a + bg.astype(np.int64) * (255 - a) + 127) // 255).astype(
        np.uint8
    )


# -- cutout ---------------------------------------------------------------------------


@given(im=image_and_mask(), block=BLOCK_BYTES)
@settings(max_examples=60, deadline=None)
def test_cutout_alpha_is_the_mask_and_colours_are_untouched(im, block):
    img, mask = im
    with block_bytes(block):
        out = cutout(img, mask)
    assert out.shape == (*mask.shape, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], mask)
    np.testing.assert_array_equal(out[..., :3], img)  # straight alpha: no dark halo


def test_cutout_equals_pillow_putalpha():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (31, 45), dtype=np.uint8)
    ref = Image.fromarray(img)
    ref.putalpha(Image.fromarray(mask))
    np.testing.assert_array_equal(cutout(Image.fromarray(img), mask), np.asarray(ref))


def test_cutout_multiplies_an_existing_alpha():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[..., 3] = [255, 128, 0]
    out = cutout(rgba, np.array([[128, 255, 255]], np.uint8))
    np.testing.assert_array_equal(out[0, :, 3], [128, 128, 0])


def test_cutout_composited_by_pillow_matches_replace_background():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    bg_rgba = Image.fromarray(np.dstack([bg, np.full((20, 30), 255, np.uint8)]))
    composed = Image.alpha_composite(bg_rgba, Image.fromarray(cutout(img, mask)))
    diff = np.asarray(composed)[..., :3].astype(int) - replace_background(img, mask, bg)
    assert np.abs(diff).max() <= 1


def test_cutout_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeMismatchError, match=r"\(2, 3\).*\(3, 2\)") as exc:
        cutout(np.zeros((3, 2, 3), np.uint8), np.zeros((2, 3), np.uint8))
    assert isinstance(exc.value, ValueError)


# -- replace_background ---------------------------------------------------------------


@given(im=image_and_mask(), block=BLOCK_BYTES, data=st.data())
@settings(max_examples=80, deadline=None)
def test_replace_background_is_the_rounded_blend(im, block, data):
    img, mask = im
    bg = data.draw(arrays(np.uint8, img.shape))
    with block_bytes(block):
        out = replace_background(img, mask, bg)
    np.testing.assert_array_equal(out, reference_blend(img, bg, mask))
    pil = Image.composite(Image.fromarray(img), Image.fromarray(bg), Image.fromarray(mask))
    assert np.abs(np.asarray(pil).astype(int) - out).max(initial=0) <= 1


@given(im=image_and_mask(), colour=st.tuples(*[st.integers(0, 255)] * 3), block=BLOCK_BYTES)
@settings(max_examples=60, deadline=None)
def test_replace_background_with_a_colour(im, colour, block):
    img, mask = im
    with block_bytes(block):
        out = replace_background(img, mask, colour)
    expected = reference_blend(img, np.broadcast_to(colour, img.shape), mask)
    np.testing.assert_array_equal(out, expected)


@given(im=image_and_mask())
@settings(max_examples=30, deadline=None)
def test_full_mask_returns_the_image_and_empty_mask_the_background(im):
    img, _ = im
    full = np.full(img.shape[:2], 255, np.uint8)
    np.testing.assert_array_equal(replace_background(img, full, (1, 2, 3)), img)
    np.testing.assert_array_equal(replace_background(img, full.astype(bool), "blur"), img)
    out = replace_background(img, np.zeros(img.shape[:2], bool), (1, 2, 3))
    np.testing.assert_array_equal(out, np.broadcast_to([1, 2, 3], img.shape))


@pytest.mark.parametrize(
    ("background", "rgb"),
    [
        ((10, 20, 30), (10, 20, 30)),
        ([10, 20, 30, 255], (10, 20, 30)),
        (np.array([10, 20, 30]), (10, 20, 30)),
        (128, (128, 128, 128)),
        ("white", (255, 255, 255)),
        ("#00ff80", (0, 255, 128)),
    ],
)
def test_background_colour_forms(background, rgb):
    img = np.zeros((2, 2, 3), np.uint8)
    out = replace_background(img, np.zeros((2, 2), np.uint8), background)
    np.testing.assert_array_equal(out, np.broadcast_to(rgb, (2, 2, 3)))


@pytest.mark.parametrize(
    ("background", "match"),
    [
        ("not-a-colour", "colour name"),
        ((1, 2), "3 .or 4. values"),
        ((0, 0, 300), "0..255"),
    ],
)
def test_background_refuses(background, match):
    with pytest.raises(ValueError, match=match):
        replace_background(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), bool), background)


def test_blur_background_is_the_blurred_image_behind_the_subject():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    mask = np.zeros((24, 24), np.uint8)
    mask[8:16, 8:16] = 255
    out = replace_background(img, mask, "blur", blur_radius=3)
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(3)))
    np.testing.assert_array_equal(out[mask == 0], blurred[mask == 0])
    np.testing.assert_array_equal(out[mask == 255], img[mask == 255])


def test_cover_fit_scales_and_crops_other_sizes():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 40), bool)
    with pytest.raises(ShapeMismatchError, match=r"\(50, 30\).*\(20, 40\)"):
        replace_background(img, mask, bg)
    out = replace_background(img, mask, Image.fromarray(bg), fit="cover")
    expected = ImageOps.fit(Image.fromarray(bg), (40, 20), method=Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(out, np.asarray(expected))
    with pytest.raises(ValueError, match="fit"):
        replace_background(img, mask, bg, fit="stretch")


def test_replace_background_takes_pil_images_and_rgba():
    img = np.full((2, 2, 4), 100, np.uint8)
    img[..., 3] = [[255, 0], [255, 0]]  # the image's own transparency hides it too
    out = replace_background(Image.fromarray(img), np.full((2, 2), 255, np.uint8), (0, 0, 0))
    np.testing.assert_array_equal(out[..., 0], [[100, 0], [100, 0]])


# -- overlay --------------------------------------------------------------------------


def test_overlay_paints_labels_in_palette_colours():
    img = np.full((4, 6, 3), 40, np.uint8)
    labels = np.zeros((4, 6), np.uint8)
    labels[:, 3:] = CLASSES.index("dress") + 1
    full = overlay(img, labels, alpha=1.0, outline=False)
    np.testing.assert_array_equal(full[:, 3:], np.broadcast_to(PALETTE["dress"], (4, 3, 3)))
    np.testing.assert_array_equal(full[:, :3], img[:, :3])
    half = overlay(img, labels, alpha=0.5, outline=False)
    a = np.full((4, 6), 128, np.uint8) * (labels > 0)
    np.testing.assert_array_equal(
        half, reference_blend(np.broadcast_to(PALETTE["dress"], img.shape), img, a)
    )
    assert (overlay(img, labels, alpha=0.0, outline=False) == img).all()


def test_overlay_outline_marks_region_boundaries():
    img = np.zeros((6, 6, 3), np.uint8)
    labels = np.zeros((6, 6), np.uint8)
    labels[1:5, 1:5] = 1
    out = overlay(img, labels, alpha=0.0, outline=True, classes=["tops"])
    painted = (out != 0).any(axis=2)
    ring = np.zeros((6, 6), bool)
    ring[1:5, 1:5] = True
    ring[2:4, 2:4] = False
    np.testing.assert_array_equal(painted, ring)
    np.testing.assert_array_equal(out[1, 1], PALETTE["tops"])
    thick = (overlay(img, labels, alpha=0.0, outline=2, classes=["tops"]) != 0).any(axis=2)
    np.testing.assert_array_equal(thick, labels > 0)  # 2 pixels fill a 4x4 square


def test_overlay_of_masks_equals_overlay_of_their_label_map():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ms = MaskSet({c: rng.integers(0, 256, (16, 16), dtype=np.uint8) for c in ("hair", "bag")})
    expected = overlay(img, label_map(ms), classes=ms.classes)
    np.testing.assert_array_equal(overlay(img, ms), expected)
    np.testing.assert_array_equal(overlay(img, dict(ms.items())), expected)


def test_overlay_refuses_unknown_labels_and_shapes():
    img = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="classes="):
        overlay(img, np.full((2, 2), 3), classes=["a", "b"])
    with pytest.raises(ShapeMismatchError):
        overlay(img, np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        overlay(img, np.zeros((2, 2), np.uint8), alpha=2)


# -- estimate_foreground --------------------------------------------------------------


def synthetic_matte(size=96, seed=0):
    """Known foreground and background fields and a soft matte: image = aF + (1-a)B."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    fg = np.stack([0.8 + 0.1 * xx, 0.3 + 0.2 * yy, 0.2 + 0.0 * xx], axis=2)
    bg = np.stack([0.1 + 0.0 * xx, 0.4 + 0.3 * xx, 0.9 - 0.2 * yy], axis=2)
    bg += rng.normal(0, 0.02, bg.shape)
    d = np.hypot(yy - 0.5, xx - 0.5)
    alpha = np.clip((0.3 - d) / 0.15, 0, 1)
    a = np.rint(alpha * 255).astype(np.uint8)
    af = a[..., None] / 255
    img = np.rint(np.clip(af * fg + (1 - af) * bg, 0, 1) * 255).astype(np.uint8)
    return img, a, np.rint(np.clip(fg, 0, 1) * 255)


@pytest.mark.parametrize(("method", "gain"), [("multilevel", 20), ("blur_fusion", 3)])
def test_estimate_foreground_removes_background_bleed(method, gain):
    img, a, fg = synthetic_matte()
    est = estimate_foreground(img, a, method=method)
    assert est.shape == img.shape and est.dtype == np.uint8
    soft = (a > 0) & (a < 255)
    raw_error = np.abs(img[soft] - fg[soft]).mean()
    est_error = np.abs(est[soft] - fg[soft]).mean()
    assert est_error < raw_error / gain
    # where the matte is opaque the image is the foreground
    np.testing.assert_array_equal(est[a == 255], img[a == 255])


def test_multilevel_estimate_is_as_good_as_pymatting():
    pymatting = pytest.importorskip("pymatting")
    for seed in (0, 1):
        img, a, fg = synthetic_matte(seed=seed)
        visible = a > 0
        ours = estimate_foreground(img, a)
        ref = np.rint(pymatting.estimate_foreground_ml(img / 255.0, a / 255.0) * 255)
        ours_error = np.abs(ours[visible] - fg[visible]).mean()
        ref_error = np.abs(ref[visible] - fg[visible]).mean()
        assert ours_error <= 1.05 * ref_error


def test_cutout_decontaminate_uses_the_estimate():
    img, a, _ = synthetic_matte(48)
    out = cutout(img, a, decontaminate=True)
    np.testing.assert_array_equal(out[..., 3], a)
    np.testing.assert_array_equal(out[..., :3], estimate_foreground(img, a))


def test_estimate_foreground_checks_inputs():
    with pytest.raises(ShapeMismatchError):
        estimate_foreground(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8))
    blank = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="radius"):
        estimate_foreground(blank, np.zeros((4, 4), bool), method="blur_fusion", radius=0)
    with pytest.raises(ValueError, match="method"):
        estimate_foreground(blank, np.zeros((4, 4), bool), method="closed_form")


@pytest.mark.parametrize("method", ["multilevel", "blur_fusion"])
@pytest.mark.parametrize("shape", [(0, 4), (1, 1), (1, 7), (5, 1), (2, 3), (40, 33)])
def test_estimate_foreground_any_shape_and_constant_mattes(method, shape):
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    opaque = estimate_foreground(img, np.full(shape, 255, np.uint8), method=method)
    np.testing.assert_array_equal(opaque, img)
    soft = estimate_foreground(img, rng.integers(0, 256, shape, dtype=np.uint8), method=method)
    assert soft.shape == img.shape and soft.dtype == np.uint8
    estimate_foreground(img, np.zeros(shape, np.uint8), method=method)


# -- image files ----------------------------------------------------------------------


def test_paths_are_read_as_images(tmp_path):
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "photo.png")
    Image.fromarray(bg).save(tmp_path / "backdrop.PNG")
    np.testing.assert_array_equal(cutout(tmp_path / "photo.png", mask), cutout(img, mask))
    fitted = ImageOps.fit(Image.fromarray(bg), (16, 12), method=Image.Resampling.BICUBIC)
    expected = replace_background(img, mask, np.asarray(fitted))
    for backdrop in (tmp_path / "backdrop.PNG", str(tmp_path / "backdrop.PNG")):
        got = replace_background(str(tmp_path / "photo.png"), mask, backdrop, fit="cover")
        np.testing.assert_array_equal(got, expected)
    labels = np.zeros((12, 16), np.uint8)
    np.testing.assert_array_equal(overlay(tmp_path / "photo.png", labels), img)


def test_overlay_shows_the_specific_class_inside_clothes():
    # tops lies inside clothes, face inside head: a review picture must show the
    # specific class, or every top would look like generic clothes.
    img = np.zeros((2, 2, 3), np.uint8)
    clothes = np.array([[255, 255], [0, 0]], np.uint8)
    tops = np.array([[255, 0], [0, 0]], np.uint8)
    head = np.array([[0, 0], [255, 255]], np.uint8)
    face = np.array([[0, 0], [255, 0]], np.uint8)
    ms = MaskSet({"head": head, "face": face, "clothes": clothes, "tops": tops})
    out = overlay(img, ms, alpha=1.0, outline=False)
    assert tuple(out[0, 0]) == PALETTE["tops"]
    assert tuple(out[0, 1]) == PALETTE["clothes"]
    assert tuple(out[1, 0]) == PALETTE["face"]
    assert tuple(out[1, 1]) == PALETTE["head"]
    # priority=None falls back to the set's own order
    plain = overlay(img, ms, alpha=1.0, outline=False, priority=None)
    assert tuple(plain[0, 0]) == PALETTE["clothes"]
    assert tuple(plain[1, 0]) == PALETTE["head"]
