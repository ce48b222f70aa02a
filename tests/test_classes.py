import pytest

from clothseg_tools import classes
from clothseg_tools.classes import (
    CLASS_TYPES,
    CLASSES,
    PALETTE,
    canonical_class,
    canonical_classes,
    class_color,
    classes_for_type,
)


def test_classes_match_api_md_order():
    assert CLASSES == (
        "hair",
        "face",
        "head",
        "clothes",
        "tops",
        "bottoms",
        "dress",
        "bag",
        "shoes",
        "acc",
        "body",
        "others",
    )
    assert CLASS_TYPES[4] == CLASSES


@pytest.mark.parametrize(
    ("class_type", "expected"),
    [
        (1, ("clothes", "tops", "bottoms", "dress", "acc")),
        (2, ("clothes", "tops", "bottoms", "dress", "bag", "shoes", "acc")),
        (3, ("hair", "face", "head", "body")),
        ("4", CLASSES),
    ],
)
def test_classes_for_type(class_type, expected):
    assert classes_for_type(class_type) == expected


@pytest.mark.parametrize("bad", [0, 5, "x", None])
def test_classes_for_type_refuses(bad):
    with pytest.raises(ValueError, match="class_type must be one of 1, 2, 3, 4"):
        classes_for_type(bad)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Accessories", "acc"),
        ("ACC", "acc"),
        (" Tops ", "tops"),
        ("dresses", "dress"),
        ("scarf", "scarf"),
        ("upper-clothes", "tops"),
    ],
)
def test_canonical_class(name, expected):
    assert canonical_class(name) == expected


def test_canonical_classes_strict_refuses_unknown():
    with pytest.raises(ValueError, match="Unknown class name"):
        canonical_classes(["tops", "scarf"])
    assert canonical_classes(["tops", "scarf"], strict=False) == ("tops", "scarf")


def test_palette_has_twelve_distinct_colours():
    assert list(PALETTE) == list(CLASSES)
    colours = list(PALETTE.values())
    assert len(set(colours)) == 12
    # clearly distinct: every pair differs by a visible amount, none is black
    for i, a in enumerate(colours):
        assert sum(a) > 60
        for b in colours[i + 1 :]:
            assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) >= 60


def test_class_color_is_stable_for_unknown_names():
    assert class_color("scarf_1") == class_color("scarf_1")
    assert all(0 <= v <= 255 for v in class_color("zzzzzzzzzz"))
    assert class_color("Tops") == classes.PALETTE["tops"]
