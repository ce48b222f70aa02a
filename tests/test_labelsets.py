"""Label sets: the published orders, every label's classes, names, registry and matching."""

from __future__ import annotations

import json

import numpy as np
import pytest

import clothseg_tools as cst
from clothseg_tools.classes import CLASSES
from clothseg_tools.errors import LabelSetError, LabelSetMatchError
from clothseg_tools.labelsets import (
    LABELSETS,
    LabelSet,
    get_labelset,
    guess_classes,
    load_labelset,
    make_labelset,
    match_labelset,
    normalize_label,
    register_labelset,
)

# Short codes for the expected tables below, written out by hand from the published
# orders (SCHP simple_extractor.py, OOTDiffusion parsing_api.py, CIHP_PGN, FASHN).
N = ()
HAIR = ("hair", "head")
FACE = ("face", "head")
HEAD = ("head",)
TOP = ("clothes", "tops")
BOT = ("clothes", "bottoms")
DRS = ("clothes", "dress")
ACC = ("acc",)
BODY = ("body",)
SHOE = ("shoes",)
BAG = ("bag",)

ATR = [
    ("Background", N), ("Hat", ACC), ("Hair", HAIR), ("Sunglasses", ACC),
    ("Upper-clothes", TOP), ("Skirt", BOT), ("Pants", BOT), ("Dress", DRS), ("Belt", ACC),
    ("Left-shoe", SHOE), ("Right-shoe", SHOE), ("Face", FACE), ("Left-leg", BODY),
    ("Right-leg", BODY), ("Left-arm", BODY), ("Right-arm", BODY), ("Bag", BAG),
    ("Scarf", ACC),
]  # fmt: skip
LIP = [
    ("Background", N), ("Hat", ACC), ("Hair", HAIR), ("Glove", ACC), ("Sunglasses", ACC),
    ("Upper-clothes", TOP), ("Dress", DRS), ("Coat", TOP), ("Socks", ACC), ("Pants", BOT),
    ("Jumpsuits", DRS), ("Scarf", ACC), ("Skirt", BOT), ("Face", FACE), ("Left-arm", BODY),
    ("Right-arm", BODY), ("Left-leg", BODY), ("Right-leg", BODY), ("Left-shoe", SHOE),
    ("Right-shoe", SHOE),
]  # fmt: skip
TABLES = {
    "atr": ATR,
    "ootd": [*ATR, ("Neck", BODY)],
    "lip": LIP,
    "cihp": [*LIP[:10], ("Torso-skin", BODY), *LIP[11:]],
    "pascal_person_part": [
        ("Background", N), ("Head", HEAD), ("Torso", BODY), ("Upper Arms", BODY),
        ("Lower Arms", BODY), ("Upper Legs", BODY), ("Lower Legs", BODY),
    ],
    "fashn": [
        ("background", N), ("face", FACE), ("hair", HAIR), ("top", TOP), ("dress", DRS),
        ("skirt", BOT), ("pants", BOT), ("belt", ACC), ("bag", BAG), ("hat", ACC),
        ("scarf", ACC), ("glasses", ACC), ("arms", BODY), ("hands", BODY), ("legs", BODY),
        ("feet", BODY), ("torso", BODY), ("jewelry", ACC),
    ],
}  # fmt: skip
SIZES = {"atr": 18, "ootd": 19, "lip": 20, "cihp": 20, "pascal_person_part": 7, "fashn": 18}


def test_registry_has_the_published_sets():
    assert {n: len(s) for n, s in LABELSETS.items() if n in SIZES} == SIZES


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_label_in_order_with_its_classes(name):
    ls = get_labelset(name)
    assert ls.name == name
    assert list(ls.labels) == [label for label, _ in TABLES[name]]
    assert [tuple(sorted(ls.classes[label])) for label in ls.labels] == [
        tuple(sorted(c)) for _, c in TABLES[name]
    ]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_class_table_agrees_with_classes_and_the_hierarchy(name):
    ls = get_labelset(name)
    table = ls.class_table()
    assert table.shape == (len(ls), 12) and table.dtype == bool
    assert not table.flags.writeable
    for i, label in enumerate(ls.labels):
        assert [CLASSES[j] for j in np.flatnonzero(table[i])] == list(ls.classes[label])
    col = {c: table[:, CLASSES.index(c)] for c in CLASSES}
    # garments lie within clothes; face and hair within head; nothing is "others"
    for garment in ("tops", "bottoms", "dress"):
        assert not (col[garment] & ~col["clothes"]).any()
    assert not ((col["face"] | col["hair"]) & ~col["head"]).any()
    assert not col["others"].any()
    assert not table[0].any()  # background


def test_hat_and_scarf_are_accessories_only():
    for name in ("atr", "lip", "fashn"):
        ls = get_labelset(name)
        assert ls.classes[ls.labels[ls.index("hat")]] == ("acc",)
        assert ls.classes[ls.labels[ls.index("scarf")]] == ("acc",)


@pytest.mark.parametrize(
    "spelling", ["Upper-clothes", "upper_clothes", "UPPER CLOTHES", "upperclothes"]
)
def test_index_ignores_case_and_separators(spelling):
    assert get_labelset("atr").index(spelling) == 4


def test_index_of_an_unknown_name_lists_the_labels_and_suggests():
    with pytest.raises(LabelSetError, match=r"'Left-arms' is not a label of the 'lip' set.*Left-"):
        get_labelset("lip").index("Left-arms")


def test_get_labelset_names_aliases_and_errors():
    assert get_labelset("ATR") is LABELSETS["atr"]
    assert get_labelset("pascal").name == "pascal_person_part"
    ls = LABELSETS["lip"]
    assert get_labelset(ls) is ls
    with pytest.raises(LabelSetError, match=r"Unknown label set 'viton'; use one of atr, ootd"):
        get_labelset("viton")


def test_labelset_is_frozen_hashable_and_read_only():
    ls = get_labelset("atr")
    with pytest.raises(AttributeError):
        ls.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ls.classes["Hat"] = ("head",)  # type: ignore[index]
    assert hash(ls) == hash(LabelSet("atr", ls.labels, ls.classes))
    assert ls == LabelSet("atr", ls.labels, ls.classes)


@pytest.mark.parametrize(
    ("labels", "classes", "match"),
    [
        ((), {}, "has no labels"),
        (("bg", "Bg"), {"bg": (), "Bg": ()}, r"names \['Bg', 'bg'\] more than once"),
        (("bg", "top"), {"bg": ()}, r"missing \['top'\]"),
        (("bg",), {"bg": (), "x": ()}, r"not labels \['x'\]"),
        (("bg", "top"), {"bg": (), "top": ("shirts",)}, r"maps to \['shirts'\], which are not"),
    ],
)
def test_malformed_sets_are_refused(labels, classes, match):
    with pytest.raises(LabelSetError, match=match):
        LabelSet("bad", labels, classes)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Background", ()),
        ("UpperClothes", ("clothes", "tops")),
        ("Torso-skin", ("body",)),
        ("Lower Legs", ("body",)),
        ("Right-shoe", ("shoes",)),
        ("leftShoe", ("shoes",)),
        ("jacket", ("clothes", "tops")),
        ("jumpsuit", ("clothes", "dress")),
        ("Sunglasses", ("acc",)),
        ("necklace", ("acc",)),
        ("handbag", ("bag",)),
        ("neck", ("body",)),
        ("cape", None),
        ("hair shoe", None),  # words that disagree
    ],
)
def test_guess_classes(name, expected):
    assert guess_classes(name) == expected


def test_register_guesses_uses_given_and_refuses_unmappable():
    ls = register_labelset("test-shop", ["bg", "shirt", "cape"], {"Cape": ["acc", "clothes"]})
    try:
        assert LABELSETS["test-shop"] is ls
        assert get_labelset("test-shop") is ls
        assert ls.classes == {"bg": (), "shirt": ("clothes", "tops"), "cape": ("clothes", "acc")}
        with pytest.raises(LabelSetError, match="already registered; pass replace=True"):
            register_labelset("test-shop", ["bg"])
        assert register_labelset("test-shop", ["bg"], replace=True).labels == ("bg",)
    finally:
        from clothseg_tools import labelsets

        labelsets._REGISTRY.pop("test-shop", None)
    with pytest.raises(LabelSetError, match=r"label\(s\) \['cape', 'widget'\].*\"cape\": \["):
        register_labelset("test-bad", ["bg", "cape", "widget"])
    assert "test-bad" not in LABELSETS
    with pytest.raises(LabelSetError, match="built-in label set"):
        register_labelset("atr", ["bg"])
    with pytest.raises(LabelSetError, match=r"classes= names \['hat'\], which are not labels"):
        make_labelset("x", ["bg"], {"hat": "acc"})


def test_registry_view_is_read_only():
    with pytest.raises(TypeError):
        LABELSETS["x"] = LABELSETS["atr"]  # type: ignore[index]


def test_load_labelset_from_json_and_config(tmp_path):
    spec = tmp_path / "mine.json"
    spec.write_text(json.dumps({"labels": ["bg", "coat", "gizmo"], "classes": {"gizmo": "acc"}}))
    ls = load_labelset(spec)
    assert (ls.name, ls.labels, ls.classes["coat"], ls.classes["gizmo"]) == (
        "mine", ("bg", "coat", "gizmo"), ("clothes", "tops"), ("acc",)
    )
    assert get_labelset(str(spec)).labels == ls.labels  # a .json path works wherever a name does
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"id2label": {"1": "Hair", "0": "Background", "2": "Face"}}))
    assert load_labelset(config, name="face3").labels == ("Background", "Hair", "Face")
    roundtrip = tmp_path / "rt.json"
    roundtrip.write_text(json.dumps(get_labelset("cihp").to_json()))
    assert load_labelset(roundtrip).classes == get_labelset("cihp").classes


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        ("{nope", "not readable JSON"),
        ("[1, 2]", "must hold an object with 'labels'"),
        ('{"id2label": {"0": "bg", "2": "hair"}}', r"0\.\.1 without gaps, got indices \[0, 2\]"),
    ],
)
def test_load_labelset_errors(tmp_path, content, match):
    path = tmp_path / "set.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LabelSetError, match=match):
        load_labelset(path)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_match_finds_each_set_from_its_own_names_in_other_spellings(name):
    names = [label.upper().replace("-", "_") for label, _ in TABLES[name]]
    assert match_labelset(names) is LABELSETS[name]
    id2label = {str(i): n.lower().replace("-", " ") for i, n in enumerate(names)}
    assert match_labelset(id2label) is LABELSETS[name]


def test_segformer_b2_clothes_config_matches_atr():
    # the id2label of the published segformer_b2_clothes config.json
    id2label = {str(i): n for i, n in enumerate(label for label, _ in ATR)}
    assert match_labelset(id2label).name == "atr"


def test_no_match_names_the_closest_sets():
    names = [label for label, _ in LIP]
    names[10] = "Romper"
    with pytest.raises(LabelSetMatchError, match=r"20 label names.*match no known") as exc:
        match_labelset(names)
    assert [ls.name for ls in exc.value.closest][:2] in (["lip", "cihp"], ["cihp", "lip"])
    assert "first differs at index 10: 'Romper' vs 'Jumpsuits'" in str(exc.value)
    assert "--labels" in str(exc.value)
    assert isinstance(exc.value, LabelSetError) and isinstance(exc.value, ValueError)


def test_public_names():
    for name in ("LabelSet", "LABELSETS", "get_labelset", "register_labelset", "match_labelset",
                 "load_labelset"):  # fmt: skip
        assert name in cst.__all__
    assert normalize_label(" Left - Arm ") == "leftarm"
