"""The onnx engine on real ONNX models built here, whose answers are known."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
from _onnx_support import (
    ATR_NAMES,
    BLUE,
    GREEN,
    RED,
    colour_parser,
    expected_probs,
    export_folder,
    regions_photo,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import clothseg_tools as cst
from clothseg_tools import CLASSES
from clothseg_tools.engines.onnx import OnnxEngine
from clothseg_tools.errors import ModelError
from clothseg_tools.result import segment_with_engine


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory):
    return export_folder(tmp_path_factory.mktemp("dyn") / "seg", colour_parser())


@pytest.fixture(scope="module")
def fixed_model(tmp_path_factory):
    return export_folder(tmp_path_factory.mktemp("fix") / "seg", colour_parser(size=(64, 64)))


@pytest.fixture(scope="module")
def dynamic_engine(dynamic_model):
    return cst.get_engine("onnx", model=dynamic_model)


@pytest.fixture(scope="module")
def fixed_engine(fixed_model):
    return cst.get_engine("onnx", model=fixed_model)


# -- which class each region becomes ------------------------------------------------------


@pytest.mark.parametrize("which", ["dynamic_engine", "fixed_engine"])
@pytest.mark.parametrize(
    ("h", "w", "cell"),
    [(64, 48, 8), (48, 64, 8), (256, 128, 16), (128, 256, 16), (640, 320, 80)],
)
@pytest.mark.parametrize("transpose", [False, True])
def test_each_region_becomes_its_label_exactly(request, which, h, w, cell, transpose):
    # stripes whose edges fall on the model's 4-pixel logit grid: with the aspect ratio
    # kept and the padding cropped, every pixel gets its stripe's label, on both axes
    engine = request.getfixturevalue(which)
    photo, labels = regions_photo(h, w, cell)
    if transpose:
        photo, labels = photo.transpose(1, 0, 2).copy(), labels.T.copy()
    out = engine.segment(photo, classes=CLASSES)
    np.testing.assert_array_equal(out.parsing.labels, labels)
    expected = cst.Parsing(labels, "atr").to_maskset()
    for cls in CLASSES:  # the soft masks, thresholded, are the same regions
        np.testing.assert_array_equal(out.masks[cls] >= 128, expected[cls] > 0, err_msg=cls)
    assert out.masks["clothes"][labels == RED].min() >= 128  # tops within clothes
    assert out.masks["head"][labels == BLUE].min() >= 128  # face within head


@pytest.mark.parametrize(("h", "w", "cell"), [(1000, 600, 200), (300, 517, 100), (997, 600, 150)])
def test_boundaries_off_the_grid_stay_in_place(dynamic_engine, h, w, cell):
    # the photo's scale to the model is not a whole number: each boundary still lands
    # within a quarter of a logit cell of where it is (a half-pixel shift of the logit
    # grid, the classic align-corners mistake, would move all of them by half a cell)
    photo, labels = regions_photo(h, w, cell)
    out = dynamic_engine.segment(photo, classes=["tops"])
    logit_cell = 4 * max(h, w) / 64
    row, truth = out.parsing.labels[h // 2].astype(int), labels[h // 2].astype(int)
    found = np.flatnonzero(np.diff(row)) + 1
    expected = np.flatnonzero(np.diff(truth)) + 1
    assert len(found) == len(expected)
    assert np.abs(found - expected).max() <= logit_cell / 4


def test_soft_values_are_the_summed_probabilities(dynamic_engine):
    colour = (200, 60, 0)
    photo = np.zeros((40, 56, 3), np.uint8)
    photo[:] = colour
    out = dynamic_engine.segment(photo, classes=CLASSES)
    p = expected_probs(np.array(colour) / 255)
    for cls, labels in [("tops", [RED]), ("bottoms", [GREEN]), ("clothes", [RED, GREEN]),
                        ("face", [BLUE]), ("head", [BLUE])]:  # fmt: skip
        want = 255 * p[labels].sum()
        got = out.masks[cls].astype(float)
        assert np.abs(got - want).max() <= 1.0, (cls, want, got.min(), got.max())
    assert out.parsing.probs is not None
    np.testing.assert_allclose(out.parsing.probs[:, 3, 3], p, atol=2e-3)


def test_no_person_found_note(dynamic_engine):
    out = dynamic_engine.segment(np.zeros((32, 32, 3), np.uint8), classes=["tops"])
    assert out.notes == ("no person found",)
    assert out.masks["tops"].max() == 0


# -- effort options -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["dynamic_engine", "fixed_engine"])
def test_quality_2_averages_the_mirror_image_back_in_place(request, which):
    engine = request.getfixturevalue(which)
    photo, labels = regions_photo(96, 64, 8)  # not symmetric: a missing flip-back shows
    one = engine.segment(photo, classes=CLASSES, quality=1)
    two = engine.segment(photo, classes=CLASSES, quality=2)
    np.testing.assert_array_equal(two.parsing.labels, labels)
    assert np.abs(two.masks.stack().astype(int) - one.masks.stack()).max() <= 1


@pytest.mark.parametrize("which", ["dynamic_engine", "fixed_engine"])
def test_detail_mode_2_resolves_what_the_model_size_cannot(request, which):
    # 8-pixel stripes of a 256-pixel photo are half a logit cell at the model's size
    # (64), and a whole one at twice its size (larger input, or 3 x 3 tiles)
    engine = request.getfixturevalue(which)
    photo, labels = regions_photo(256, 256, 8)
    coarse = engine.segment(photo, classes=["tops"], detail_mode=1)
    fine = engine.segment(photo, classes=["tops"], detail_mode=2)
    assert (coarse.parsing.labels != labels).mean() > 0.2
    np.testing.assert_array_equal(fine.parsing.labels, labels)
    assert fine.notes == ()


def test_detail_mode_2_on_a_fixed_model_with_a_fractional_stride(tmp_path):
    # a 60-pixel input pooled by 8 gives 7 logits: 60/7 is no whole pixel, so tiles cannot
    # be placed on the grid; the engine runs once and says so
    folder = export_folder(tmp_path / "odd", colour_parser(size=(60, 60), stride=8))
    engine = OnnxEngine(folder)
    out = engine.segment(np.zeros((50, 40, 3), np.uint8), classes=["tops"], detail_mode=2)
    assert any("ran once at its own size" in n for n in out.notes)


# -- layouts, dtypes, folders and names -----------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        colour_parser(channels_last=True),
        colour_parser(float16=True),
        colour_parser(size=(64, 64), channels_last=True),
    ],
    ids=["nhwc", "float16", "nhwc-fixed"],
)
def test_input_layout_and_type_are_read_from_the_model(tmp_path, model):
    engine = OnnxEngine(export_folder(tmp_path / "m", model))
    photo, labels = regions_photo(64, 48, 8)
    np.testing.assert_array_equal(engine.segment(photo, classes=["tops"]).parsing.labels, labels)


def test_a_bare_onnx_file_with_keyword_options(tmp_path):
    path = tmp_path / "parser.onnx"
    onnx.save(colour_parser(), path)
    engine = cst.get_engine("onnx", model=path, labels="atr", size=64, mean=(0, 0, 0),
                            std=(1, 1, 1))  # fmt: skip
    assert engine.spec.size == (64, 64) and engine.labelset.name == "atr"
    photo, labels = regions_photo(64, 48, 8)
    np.testing.assert_array_equal(engine.segment(photo, classes=["tops"]).parsing.labels, labels)
    # with ImageNet normalisation (the default without a processor config) the colours
    # move and the answer changes: the options really are applied
    plain = cst.get_engine("onnx", model=path, labels="atr", size=64)
    assert plain.spec.mean == pytest.approx((0.485, 0.456, 0.406))
    assert not np.array_equal(plain.segment(photo, classes=["tops"]).parsing.labels, labels)


def test_optimum_folder_needs_no_flags(dynamic_model):
    assert sorted(p.name for p in dynamic_model.iterdir()) == [
        "config.json", "model.onnx", "preprocessor_config.json"
    ]  # fmt: skip
    engine = OnnxEngine(dynamic_model)
    assert engine.labelset is cst.LABELSETS["atr"]
    spec = engine.spec
    assert (spec.size, spec.fixed, spec.channels_last) == ((64, 64), False, False)
    assert engine.spec.mean == (0.0, 0.0, 0.0) and engine.spec.rescale == pytest.approx(1 / 255)


def test_id2label_in_other_spellings_is_matched(tmp_path):
    id2label = {str(i): n.lower().replace("-", "_") for i, n in enumerate(ATR_NAMES)}
    engine = OnnxEngine(export_folder(tmp_path / "m", colour_parser(), id2label=id2label))
    assert engine.labelset.name == "atr"


def test_labels_option_as_names_makes_a_set(tmp_path):
    names = ["bg", *[f"part{i}" for i in range(1, 18)]]
    names[RED], names[GREEN], names[BLUE] = "shirt", "trousers", "face"
    classes = {n: () for n in names if n.startswith("part")}
    shop = cst.register_labelset("test-onnx-shop", names, classes, replace=True)
    try:
        path = tmp_path / "m.onnx"
        onnx.save(colour_parser(), path)
        engine = OnnxEngine(path, labels="test-onnx-shop", size=64, mean=(0, 0, 0), std=(1, 1, 1))
        assert engine.labelset is shop
        photo, _ = regions_photo(64, 48, 8)
        out = engine.segment(photo, classes=["tops", "bottoms"])
        assert out.parsing.mask("shirt").any() and out.masks["tops"].max() == 255
    finally:
        from clothseg_tools import labelsets

        labelsets._REGISTRY.pop("test-onnx-shop", None)


# -- errors ------------------------------------------------------------------------------------


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(ModelError, match=r"Model .*nowhere does not exist\. Pass a \.onnx file"):
        cst.get_engine("onnx", model=tmp_path / "nowhere")


def test_folder_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty has no \.onnx file.*model\.onnx"):
        OnnxEngine(tmp_path / "empty")


def test_damaged_model_file(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match=r"bad\.onnx could not be loaded as an ONNX model"):
        OnnxEngine(tmp_path / "bad.onnx", labels="atr")


def test_output_channels_that_do_not_match_the_labels(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(colour_parser(size=(64, 64)), path)
    match = r"m\.onnx: the output 'logits' has shape \[1, 18, 16, 16\], but label set 'lip' has"
    with pytest.raises(ModelError, match=match + r" 20 labels.*\(1, 20, h, w\)"):
        OnnxEngine(path, labels="lip")
    # a dynamic output is checked with one run when the model loads
    onnx.save(colour_parser(), path)
    with pytest.raises(ModelError, match=r"shape \[1, 18, 16, 16\], but label set 'cihp' has 20"):
        OnnxEngine(path, labels="cihp", size=64)


def test_no_labels_anywhere(tmp_path):
    folder = export_folder(tmp_path / "m", colour_parser(), id2label=None)
    with pytest.raises(ModelError, match=r"no label names.*config\.json.*labels='atr', --labels"):
        OnnxEngine(folder)


def test_unmatched_id2label_names_the_config_and_closest_sets(tmp_path):
    id2label = {str(i): n for i, n in enumerate(ATR_NAMES)}
    id2label["17"] = "Necktie"
    folder = export_folder(tmp_path / "m", colour_parser(), id2label=id2label)
    match = r"config\.json: the model's id2label does not match.*"
    with pytest.raises(ModelError, match=match + r"atr \(18 labels, first differs at index 17: "
                       r"'Necktie' vs 'Scarf'\)"):  # fmt: skip
        OnnxEngine(folder)


def test_size_against_a_fixed_input(fixed_model):
    with pytest.raises(ModelError, match=r"fixed input of 64 x 64 pixels, but size=128"):
        OnnxEngine(fixed_model, size=128)


def test_unavailable_provider(dynamic_model):
    with pytest.raises(ModelError, match=r"\['NoSuchExecutionProvider'\] are not available"):
        OnnxEngine(dynamic_model, providers=["NoSuchExecutionProvider"])
    assert OnnxEngine(dynamic_model, providers=["CPUExecutionProvider"]).labelset.name == "atr"


def test_bad_preprocessor_config(tmp_path):
    folder = export_folder(tmp_path / "m", colour_parser())
    prep = json.loads((folder / "preprocessor_config.json").read_text())
    prep["image_std"] = [0.2, 0.2]
    prep["do_normalize"] = True
    (folder / "preprocessor_config.json").write_text(json.dumps(prep))
    with pytest.raises(ModelError, match=r"std must be three numbers \(R, G, B\), got \[0\.2, 0"):
        OnnxEngine(folder)


# -- sharing one engine ------------------------------------------------------------------------


def test_one_session_is_safe_across_threads(dynamic_engine):
    photos = [regions_photo(64 + 8 * i, 48, 8)[0] for i in range(6)]
    alone = [dynamic_engine.segment(p, classes=CLASSES) for p in photos]
    barrier = threading.Barrier(6)

    def run(i):
        barrier.wait()  # all threads call the session at the same moment
        return [dynamic_engine.segment(photos[(i + k) % 6], classes=CLASSES) for k in range(3)]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(6)))
    for i, outs in enumerate(results):
        for k, out in enumerate(outs):
            expected = alone[(i + k) % 6]
            assert out.masks == expected.masks and out.parsing == expected.parsing


def test_segment_with_engine_gives_a_result(dynamic_engine, tmp_path):
    photo, labels = regions_photo(64, 48, 8)
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "p.png")
    result = segment_with_engine(dynamic_engine, tmp_path / "p.png", class_type=4)
    assert result.engine == "onnx" and result.masks.classes == CLASSES
    np.testing.assert_array_equal(result.masks["bottoms"] >= 128, labels == GREEN)


# -- per-garment parts ---------------------------------------------------------------------


def test_separate_garments_become_parts_that_add_up_to_the_mask(dynamic_engine):
    # a large red top on the left, a smaller red one on the right, green trousers below
    photo = np.zeros((96, 128, 3), np.uint8)
    photo[8:56, 8:64] = (255, 0, 0)
    photo[8:40, 88:120] = (255, 0, 0)
    photo[64:92, 16:112] = (0, 255, 0)
    out = dynamic_engine.segment(photo, classes=CLASSES)
    assert set(out.parts) == {"tops_0", "tops_1", "bottoms_0"}
    big, small = out.parts["tops_0"], out.parts["tops_1"]
    tops = out.masks["tops"] >= 128
    assert tops[12:52, 12:60].all() and tops[12:36, 92:116].all()  # soft at the edges
    # each top's part is the class mask on its own side of the gap between them
    np.testing.assert_array_equal(big >= 128, tops & (np.arange(128) < 76))
    np.testing.assert_array_equal(small >= 128, tops & (np.arange(128) >= 76))
    # disjoint, and together exactly the class mask
    assert not (big.astype(bool) & small.astype(bool)).any()
    np.testing.assert_array_equal(big + small, out.masks["tops"])
    np.testing.assert_array_equal(out.parts["bottoms_0"], out.masks["bottoms"])


def test_parts_are_saved_with_the_result(dynamic_engine, tmp_path):
    photo, _ = regions_photo(64, 64, 16)
    result = segment_with_engine(dynamic_engine, photo, class_type=4, output_type=3)
    assert result.parts.classes == ("tops_0", "bottoms_0")  # one red, one green stripe
    loaded = cst.SegmentationResult.load(result.save(tmp_path / "r"))
    assert loaded.parts.classes == result.parts.classes


def test_a_coat_over_a_shirt_is_two_parts():
    from clothseg_tools.engines._parts import parsing_parts

    lip = cst.LABELSETS["lip"]
    labels = np.zeros((40, 60), np.uint8)
    labels[5:35, 10:50] = lip.index("Coat")
    labels[8:30, 25:35] = lip.index("Upper-clothes")  # the shirt, inside the open coat
    parsing = cst.Parsing(labels, lip)
    parts = parsing_parts(parsing, parsing.to_maskset(["tops"]))
    assert set(parts) == {"tops_0", "tops_1"}
    np.testing.assert_array_equal(parts["tops_0"] > 0, labels == lip.index("Coat"))
    np.testing.assert_array_equal(parts["tops_1"] > 0, labels == lip.index("Upper-clothes"))


@settings(max_examples=60, deadline=None)
@given(
    cells=arrays(
        np.uint8,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.sampled_from([0, 4, 5, 6, 7]),
    ),
    scale=st.integers(1, 300),
)
def test_parts_always_partition_their_class(cells, scale):
    # any ATR map, at sizes beyond the grid garments are found on (up to 1800 px)
    from clothseg_tools.engines._parts import parsing_parts

    labels = np.kron(cells, np.ones((scale, scale), np.uint8))
    parsing = cst.Parsing(labels, "atr")
    masks = parsing.to_maskset(["tops", "bottoms", "dress"])
    parts = parsing_parts(parsing, masks)
    for name in ("tops", "bottoms", "dress"):
        mine = [parts[k] for k in sorted(parts) if k.rsplit("_", 1)[0] == name]
        assert [f"{name}_{i}" for i in range(len(mine))] == sorted(
            (k for k in parts if k.rsplit("_", 1)[0] == name),
            key=lambda k: int(k.rsplit("_", 1)[1]),
        )
        if not mine:
            continue
        total = np.zeros(labels.shape, np.uint16)
        for part in mine:
            assert part.shape == labels.shape and part.dtype == np.uint8
            total += part > 0
        assert total.max() <= 1  # disjoint
        np.testing.assert_array_equal(np.sum(mine, axis=0, dtype=np.uint16), masks[name])
