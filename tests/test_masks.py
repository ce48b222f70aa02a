import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clothseg_tools import MaskSet
from clothseg_tools.errors import ShapeMismatchError


def test_bool_becomes_0_255_and_uint8_is_kept():
    a = np.array([[True, False]])
    b = np.array([[7, 200]], np.uint8)
    ms = MaskSet({"tops": a, "hair": b})
    assert ms.classes == ("tops", "hair")
    np.testing.assert_array_equal(ms["tops"], [[255, 0]])
    np.testing.assert_array_equal(ms["hair"], [[7, 200]])
    assert ms["tops"].dtype == np.uint8


def test_mismatched_shapes_name_both():
    with pytest.raises(ShapeMismatchError, match=r"\(2, 3\).*\(3, 2\)") as exc:
        MaskSet({"tops": np.zeros((3, 2), np.uint8), "hair": np.zeros((2, 3), np.uint8)})
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (np.zeros((2, 2), np.float64), "dtype float64"),
        (np.zeros((2, 2), np.int32), "dtype int32"),
        (np.zeros((2, 2, 3), np.uint8), "2-D"),
        (np.zeros(4, np.uint8), "2-D"),
    ],
)
def test_refuses_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        MaskSet({"tops": mask})


def test_empty_needs_shape():
    with pytest.raises(ValueError, match="shape"):
        MaskSet({})
    ms = MaskSet({}, shape=(3, 4))
    assert ms.shape == (3, 4) and len(ms) == 0 and ms.stack().shape == (0, 3, 4)


def test_stack_is_contiguous_and_not_copied():
    s = np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    ms = MaskSet.from_stack(s, ["a", "b", "c"])
    assert np.shares_memory(ms.stack(), s)
    assert np.shares_memory(ms.stack(["b", "c"]), s)  # consecutive run: a view
    assert ms.stack(["b", "c"]).flags.c_contiguous
    sel = ms.stack(["c", "a"])
    assert sel.flags.c_contiguous
    np.testing.assert_array_equal(sel, s[[2, 0]])
    with pytest.raises(KeyError, match="'z'"):
        ms.stack(["z"])


def test_masks_are_read_only():
    ms = MaskSet({"a": np.zeros((2, 2), np.uint8)})
    with pytest.raises(ValueError):
        ms["a"][0, 0] = 1


def test_from_stack_checks():
    with pytest.raises(ValueError, match="2 masks but 1 class"):
        MaskSet.from_stack(np.zeros((2, 3, 3), np.uint8), ["a"])
    with pytest.raises(ValueError, match="3-D"):
        MaskSet.from_stack(np.zeros((3, 3), np.uint8), ["a"])
    ms = MaskSet.from_stack(np.ones((1, 2, 2), bool), ["a"])
    assert ms["a"].max() == 255


def test_select_drop_with_rename():
    ms = MaskSet({"a": np.zeros((2, 2), bool), "b": np.ones((2, 2), bool)})
    assert ms.select(["b"]).classes == ("b",)
    assert ms.select(["b", "x"], missing="skip").classes == ("b",)
    z = ms.select(["x"], missing="zeros")
    assert z["x"].sum() == 0
    assert ms.drop(["a"]).classes == ("b",)
    assert ms.with_masks({"a": np.ones((2, 2), bool)})["a"].min() == 255
    assert ms.rename({"a": "tops"}).classes == ("tops", "b")
    with pytest.raises(KeyError):
        ms.select(["x"])


def test_to_rgb_uses_palette_of_strongest_class():
    tops = np.zeros((2, 2), np.uint8)
    hair = np.zeros((2, 2), np.uint8)
    tops[0, 0] = 255
    hair[0, 0] = 100
    hair[1, 1] = 255
    rgb = MaskSet({"tops": tops, "hair": hair}).to_rgb()
    assert tuple(rgb[0, 0]) == (214, 39, 40)
    assert tuple(rgb[1, 1]) == (140, 86, 75)
    assert tuple(rgb[0, 1]) == (0, 0, 0)


def test_repr_png_is_a_png():
    ms = MaskSet({"tops": np.eye(8, dtype=bool)})
    assert ms._repr_png_().startswith(b"\x89PNG")
    assert "tops" in repr(ms)


@settings(max_examples=25, deadline=None)
@given(
    stack=arrays(np.uint8, st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9))),
)
def test_save_load_round_trip(tmp_path_factory, stack):
    names = ["tops", "hair", "bag", "acc"][: stack.shape[0]]
    ms = MaskSet.from_stack(stack.copy(), names)
    folder = tmp_path_factory.mktemp("ms")
    ms.save(folder)
    back = MaskSet.load(folder)
    assert back == ms
    assert back.classes == ms.classes
    # atomic writes leave no temporary files behind
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_load_folder_without_index_reads_known_classes_in_order(tmp_path):
    from clothseg_tools._io import write_png

    hair = np.eye(4, dtype=np.uint8) * 255
    tops = np.full((4, 4), 7, np.uint8)
    write_png(tmp_path / "tops.png", tops)
    write_png(tmp_path / "hair.png", hair)
    write_png(tmp_path / "notes.png", tops)  # not a class name: ignored
    ms = MaskSet.load(tmp_path)
    assert ms.classes == ("hair", "tops")  # CLASSES order, not file order
    np.testing.assert_array_equal(ms["hair"], hair)
    np.testing.assert_array_equal(ms["tops"], tops)


def test_load_converts_masks_written_by_other_tools(tmp_path):
    from PIL import Image

    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "tops.png")  # 16-bit
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = grey
    Image.fromarray(rgba).save(tmp_path / "hair.png")  # white through alpha
    ms = MaskSet.load(tmp_path)
    np.testing.assert_array_equal(ms["tops"], grey)
    np.testing.assert_array_equal(ms["hair"], grey)


def test_load_errors(tmp_path):
    from clothseg_tools.errors import MaskDecodeError

    with pytest.raises(FileNotFoundError):
        MaskSet.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"masks\.json"):
        MaskSet.load(tmp_path)
    ms = MaskSet({"tops": np.eye(3, dtype=bool), "hair": np.zeros((3, 3), bool)})
    ms.save(tmp_path / "a")
    (tmp_path / "a" / "hair.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    with pytest.raises(MaskDecodeError, match=r"hair\.png"):
        MaskSet.load(tmp_path / "a")
    ms.save(tmp_path / "b")
    MaskSet({"hair": np.zeros((2, 5), bool)}).save(tmp_path / "c")
    (tmp_path / "b" / "hair.png").write_bytes((tmp_path / "c" / "hair.png").read_bytes())
    with pytest.raises(ShapeMismatchError, match=r"\(2, 5\).*\(3, 3\)"):
        MaskSet.load(tmp_path / "b")
    (tmp_path / "b" / "masks.json").write_text("{not json")
    with pytest.raises(MaskDecodeError, match="not a valid MaskSet index"):
        MaskSet.load(tmp_path / "b")


def test_save_load_keeps_odd_class_names(tmp_path):
    ms = MaskSet({"tops/0": np.eye(2, dtype=bool), "scarf 1": np.ones((2, 2), bool)})
    back = MaskSet.load(ms.save(tmp_path))
    assert back == ms
